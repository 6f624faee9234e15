"""The store protocol every backend implements, and :func:`connect`.

Stores are chosen by URL scheme. Built-in adapters and third-party ones are
found the same way, through the ``flowkit.stores`` entry points; the adapter's
module (and its driver) is imported only when a URL selects it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from .errors import ConfigError
from .records import Entry, Execution, Status

__all__ = ["Store", "connect", "optional_import", "scheme_of"]


@runtime_checkable
class Store(Protocol):
    """Where executions and their entries are kept (SPEC §10).

    Every method is safe to call from several threads, and from several
    processes on the same database. Every store passes the conformance suite
    in :mod:`flowkit.testing.conformance`, which pins this contract:

    - Times must be timezone-aware (a naive one raises ``ValueError``) and
      come back in UTC with their microseconds.
    - JSON fields come back as the JSON data that went in: types kept apart
      (``True`` is not ``1``), ints of any size exact, mapping key order kept,
      tuples as lists. Data that is not JSON raises ``TypeError`` (NaN and
      infinities ``ValueError``) before anything is written.
    - The checks in ``flowkit.backends._common`` run before the store is
      touched, so every store refuses the same bad arguments the same way.
    """

    def create(self, execution: Execution) -> None:
        """Store a new execution (its entries start after ``execution.seq``).

        Raises:
            ConflictError: an execution with this id already exists; nothing was written.
            ValueError: a time is naive, or a value is NaN or infinite.
            TypeError: a value is not JSON data.
        """

    def load(self, execution_id: str) -> Execution | None:
        """The execution with this id, or None."""

    def checkpoint(
        self, execution: Execution, entries: Sequence[Entry], expected_version: int
    ) -> None:
        """Replace the execution and append ``entries``, atomically.

        ``execution.version`` is ``expected_version + 1``. The write happens
        only if the stored version is ``expected_version``; either the record
        and all entries are written, or nothing is. ``input``, ``id``,
        ``workflow_id``, ``parent_id`` and ``created_at`` never change after
        :meth:`create`: a store does not rewrite them and ignores the values a
        checkpoint passes for them (the engine keeps the input out of ctx for
        that reason, so a large input costs nothing per step).

        Checks on the arguments alone raise ``ValueError`` before the store
        is touched (``check_checkpoint`` in ``flowkit.backends._common``):
        ``execution.version == expected_version + 1``; every entry has
        ``execution_id == execution.id`` and ``id == f"{execution.id}:{seq}"``;
        the entries' seqs are consecutive, from 1 or more, in order; and
        ``execution.seq`` is the last entry's seq. Checks against the stored
        state raise ``ConflictError``.

        Raises:
            ConflictError: the execution does not exist, its stored version is
                not ``expected_version``, or the entries do not continue its
                log (``execution.seq - len(entries)`` is not the stored
                ``seq``); nothing was written.
            ValueError: the arguments are inconsistent (above), a time is
                naive, or a value is NaN or infinite; nothing was written.
            TypeError: a value is not JSON data; nothing was written.
        """

    def entries(self, execution_id: str, *, after: int = 0) -> list[Entry]:
        """The entries with ``seq > after``, in ``seq`` order (none for an unknown id).

        Reads only those entries, not the whole log.
        """

    def find(
        self,
        *,
        workflow_id: str | None = None,
        status: Status | str | None = None,
        limit: int = 100,
    ) -> list[Execution]:
        """Executions matching the filters, most recently updated first.

        Ties on ``updated_at`` are ordered by id, descending (code-point order).

        Raises:
            ValueError: the status is unknown, or ``limit`` is negative.
        """

    def delete(self, execution_id: str) -> bool:
        """Delete an execution and its entries; False if it did not exist."""

    def due(self, now: datetime, *, limit: int = 100) -> list[Execution]:
        """Halted executions whose ``wake_at`` is at or before ``now``, earliest first.

        Ties are ordered by id, ascending.

        Raises:
            ValueError: ``now`` is naive, or ``limit`` is negative.
        """

    def stale(self, now: datetime, *, limit: int = 100) -> list[Execution]:
        """Running executions whose lease expired at or before ``now``, oldest first.

        Ties are ordered by id, ascending.

        Raises:
            ValueError: ``now`` is naive, or ``limit`` is negative.
        """

    def close(self) -> None:
        """Release connections the store opened itself.

        Closing twice is fine; any other call afterwards raises
        ``FlowkitError("store is closed")``.
        """


def optional_import(module: str, *, extra: str, purpose: str) -> Any:
    """Import an adapter's optional dependency, or explain which extra installs it.

    Raises:
        ConfigError: the module is not installed.
    """
    from importlib import import_module

    try:
        return import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{purpose} needs the '{module}' package: pip install 'flowkit-workflows[{extra}]' "
            f"(or pip install -e '.[{extra}]' from the source tree)"
        ) from exc


# --- choosing an adapter by URL ------------------------------------------------------------------

_BUILTIN_STORES = {
    "memory": "flowkit.backends.memory:MemoryStore",
    "sqlite": "flowkit.backends.sqlalchemy:SQLStore",
    "postgresql": "flowkit.backends.sqlalchemy:SQLStore",
    "postgres": "flowkit.backends.sqlalchemy:SQLStore",
    "mysql": "flowkit.backends.sqlalchemy:SQLStore",
    "mariadb": "flowkit.backends.sqlalchemy:SQLStore",
    "redis": "flowkit.backends.redis:RedisStore",
    "rediss": "flowkit.backends.redis:RedisStore",
    "unix": "flowkit.backends.redis:RedisStore",
}


def scheme_of(url: str) -> str:
    """The adapter-selecting scheme of a URL: ``postgresql+psycopg://…`` → ``postgresql``."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        scheme, sep, _ = url.partition(":")
    if not sep or not scheme:
        raise ConfigError(
            f"not a store URL: {url!r} (expected e.g. 'sqlite:///flowkit.db', "
            "'postgresql+psycopg://host/db', 'redis://localhost:6379/0' or 'memory://')"
        )
    return scheme.split("+", 1)[0].lower()


def _load_adapter(group: str, name: str, builtin: dict[str, str]) -> Callable[..., Any]:
    for point in entry_points(group=group, name=name):
        loaded: Callable[..., Any] = point.load()
        return loaded
    target = builtin.get(name)
    if target is None:
        known = sorted({*builtin, *(point.name for point in entry_points(group=group))})
        raise ConfigError(f"no adapter for {name!r} in {group} (known: {', '.join(known)})")
    module_name, _, attr = target.partition(":")
    from importlib import import_module

    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ConfigError(f"the {name!r} adapter ({module_name}) is not available") from exc
    found: Callable[..., Any] = getattr(module, attr)
    return found


def connect(url: str, **options: Any) -> Store:
    """Open the store a URL names, such as ``sqlite:///runs.db`` or ``redis://localhost/0``.

    Args:
        url: the store URL; its scheme picks the adapter.
        **options: passed to the adapter (e.g. ``prefix=`` for table or key prefixes).

    Raises:
        ConfigError: no adapter handles the scheme, or the adapter's optional
            dependency is not installed (the message names the extra to install).
    """
    factory = _load_adapter("flowkit.stores", scheme_of(url), _BUILTIN_STORES)
    store: Store = factory(url, **options)
    return store
