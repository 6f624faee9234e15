"""Workflows known by id, so executions can be resumed and recovered anywhere."""

from __future__ import annotations

import functools
import glob
import hashlib
import importlib
import threading
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from ..errors import ConfigError, NotFoundError
from ..records import encode_json
from .loading import load, to_dict
from .model import WorkflowDef

__all__ = [
    "WorkflowRegistry",
    "default_registry",
    "definition_hash",
    "import_module",
    "import_workflows",
    "register",
    "workflows_in",
]


@functools.lru_cache(maxsize=512)
def definition_hash(wf: WorkflowDef) -> str:
    """A stable hash of a definition's content (its canonical JSON)."""
    canonical = encode_json(_sorted(to_dict(wf)))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _sorted(value: object) -> object:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


class WorkflowRegistry:
    """Definitions by id (latest registration wins) and by definition hash.

    Configured sources (YAML paths, globs, ``module`` or ``module:attr``) are
    loaded lazily the first time an unknown id is looked up.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, WorkflowDef] = {}
        self._by_hash: dict[str, WorkflowDef] = {}
        self._sources: list[tuple[str, Path]] = []

    def register(self, wf: WorkflowDef) -> WorkflowDef:
        """Make ``wf`` known by its id and by its definition hash."""
        digest = definition_hash(wf)
        with self._lock:
            self._by_id[wf.id] = wf
            self._by_hash[digest] = wf
        return wf

    def add_sources(self, sources: Iterable[str], base: Path) -> None:
        """Remember where to look for workflows not registered yet."""
        with self._lock:
            self._sources.extend((source, base) for source in sources)

    def get(self, workflow_id: str, digest: str | None = None) -> WorkflowDef:
        """The definition for an execution: by hash when known, else by id.

        Raises:
            NotFoundError: no definition with that id is known in this process.
        """
        found = self._find(workflow_id, digest)
        if found is None:
            self._load_sources()
            found = self._find(workflow_id, digest)
        if found is None:
            raise NotFoundError(
                f"workflow '{workflow_id}' is not known in this process: on the command line "
                "pass --workflow FILE|MODULE:ATTR or -m MODULE (a module that defines it); in "
                "Python call flowkit.register(wf) or pass workflow=...; or list its file or "
                "module under 'workflows' in [tool.flowkit] / flowkit.toml"
            )
        return found

    def definitions(self) -> list[WorkflowDef]:
        """Every definition known by id (configured sources loaded first), sorted by id."""
        self._load_sources()
        with self._lock:
            return [self._by_id[key] for key in sorted(self._by_id)]

    def _find(self, workflow_id: str, digest: str | None) -> WorkflowDef | None:
        if digest is not None and digest in self._by_hash:
            candidate = self._by_hash[digest]
            if candidate.id == workflow_id:
                return candidate
        return self._by_id.get(workflow_id)

    def _load_sources(self) -> None:
        with self._lock:
            sources, self._sources = self._sources, []
        for source, base in sources:
            for wf in _load_source(source, base):
                self.register(wf)


def _load_source(source: str, base: Path) -> list[WorkflowDef]:
    if source.endswith((".yml", ".yaml")) or "/" in source or "*" in source:
        pattern = source if Path(source).is_absolute() else str(base / source)
        paths = sorted(Path(match) for match in glob.glob(pattern, recursive=True))
        if not paths and not glob.has_magic(pattern):
            paths = [Path(pattern)]  # load() reports the missing file
        return [load(path) for path in paths]
    module_name, _, attr = source.partition(":")
    module = import_module(module_name)
    if attr:
        wf = _definition_of(getattr(module, attr, None))
        if wf is None:
            raise ConfigError(f"'{source}' is not a workflow (expected a WorkflowDef or Workflow)")
        return [wf]
    return workflows_in(module)


def import_module(name: str) -> ModuleType:
    """Import a user's module (it may register services and workflows as it runs).

    Raises:
        ConfigError: it cannot be imported, or raised while it ran; the message
            says which and why, without a traceback.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module '{name}': {exc}") from exc
    except Exception as exc:  # the module itself raised
        raise ConfigError(f"cannot import module '{name}': {type(exc).__name__}: {exc}") from exc


def workflows_in(module: ModuleType) -> list[WorkflowDef]:
    """The workflows a module defines at its top level: each ``WorkflowDef``, and the
    definition of each Python ``Workflow`` (anything with a ``definition`` that is one)."""
    found = (_definition_of(value) for value in vars(module).values())
    return [wf for wf in found if wf is not None]


def _definition_of(value: object) -> WorkflowDef | None:
    if isinstance(value, WorkflowDef):
        return value
    if isinstance(value, type | ModuleType):
        return None  # a class's `definition` is a descriptor, not a workflow
    definition = getattr(value, "definition", None)
    return definition if isinstance(definition, WorkflowDef) else None


default_registry = WorkflowRegistry()


def import_workflows(
    modules: Iterable[str], registry: WorkflowRegistry = default_registry
) -> list[WorkflowDef]:
    """Import ``modules`` and register the workflows each defines in ``registry``.

    This is what ``-m MODULE`` and the ``imports`` setting do: the modules
    register their services as they are imported, and their workflows are
    registered here.

    Raises:
        ConfigError: a module cannot be imported.
    """
    registered = []
    for name in modules:
        for wf in workflows_in(import_module(name)):
            registered.append(registry.register(wf))
    return registered


def register(wf: object) -> WorkflowDef:
    """Make a workflow known by id to this process (sub-workflows, resumes, workers).

    Accepts a :class:`WorkflowDef`, a Python-DSL ``Workflow``, or anything
    :func:`flowkit.load` accepts.
    """
    definition = getattr(wf, "definition", wf)
    if not isinstance(definition, WorkflowDef):
        definition = load(definition)  # type: ignore[arg-type]
    return default_registry.register(definition)
