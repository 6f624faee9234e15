"""Reading workflows from YAML, dicts and files, and writing them back: the public functions.

``parse`` builds a definition (shape only), ``check`` lists every problem,
``load`` does both and raises; ``to_dict``/``to_yaml`` write a definition back.
``check`` and ``load`` go on past problems of shape: the graph and the
references of what could be read are checked too.
YAML aliases may repeat at most :data:`MAX_ALIAS_NODES` nodes in all, so that a
small file cannot expand to a huge one ("billion laughs").
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

import yaml

from ..errors import NotFoundError, ValidationError
from .convert import Reading, read_workflow, unstructure_workflow
from .model import SourceLocation, WorkflowDef
from .problems import Problem
from .validate import problems_in

__all__ = ["MAX_ALIAS_NODES", "Source", "check", "load", "parse", "to_dict", "to_yaml"]

MAX_ALIAS_NODES = 10_000
"""How many nodes YAML aliases may repeat in one file, in all (``*a`` repeats every
node of the value anchored as ``&a``: a list of three strings is four nodes)."""

Source = str | os.PathLike[str] | Mapping[str, Any] | WorkflowDef
"""Anything :func:`parse` accepts: a path, YAML text, a dict or a definition."""

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_STR = "tag:yaml.org,2002:str"


class _Mapping(dict[str, Any]):
    """A YAML mapping that remembers where it was written."""

    file: str | None = None
    line: int | None = None


def _without_base_60(tag: str, regexp: re.Pattern[str]) -> tuple[str, re.Pattern[str]]:
    """YAML 1.1 reads ``12:30`` as the base-60 number 750; keep such text a string."""
    if tag in (_INT, _FLOAT):
        return tag, re.compile("(?!.*:)" + regexp.pattern, regexp.flags)
    return tag, regexp


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """The safe loader, keeping dates as strings and remembering lines."""

    file: str | None = None

    yaml_implicit_resolvers: ClassVar[dict[Any, list[tuple[str, Any]]]] = {
        first: [_without_base_60(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Mapping:
    loader.flatten_mapping(node)
    mapping = _Mapping()
    mapping.file = loader.file
    mapping.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str) and isinstance(key_node, yaml.ScalarNode):
            key = key_node.value  # `on:` or `1:` stay the text that was written
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r} (each key may appear once)",
                key_node.start_mark,
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Dumper(_BaseDumper):  # type: ignore[valid-type,misc]
    """The safe dumper, writing multi-line strings as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _keep_version_text(node: yaml.Node | None) -> None:
    """Read a plain top-level ``version: 1.10`` as the text written, not the float 1.1."""
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        if (
            isinstance(key_node, yaml.ScalarNode)
            and key_node.value == "version"
            and isinstance(value_node, yaml.ScalarNode)
            and not value_node.style  # plain: None (Python loader) or '' (C loader)
            and value_node.tag in (_INT, _FLOAT)
        ):
            value_node.tag = _STR


class _Mark(Protocol):
    line: int
    column: int


def _location(mark: _Mark | None, file: str | None) -> SourceLocation:
    return SourceLocation(
        file=file or "<string>",
        line=None if mark is None else mark.line + 1,
        column=None if mark is None else mark.column + 1,
    )


def _check_aliases(text: str, file: str | None) -> None:
    """Refuse aliases that repeat more than MAX_ALIAS_NODES nodes in all.

    Reads the events, not the nodes: an alias's node is the anchor's node, which
    no longer says where the alias was written.
    """
    sizes: dict[str | None, int] = {}  # anchor -> nodes of its value, aliases expanded
    open_anchors: list[str | None] = []  # the anchor of each collection being read
    open_sizes: list[int] = []  # the nodes read so far in each of them
    repeated = 0
    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            open_anchors.append(event.anchor)
            open_sizes.append(1)
            continue
        if isinstance(event, yaml.AliasEvent):
            # An undefined alias, or one inside its own anchor, is the loader's to refuse.
            anchor, size = None, sizes.get(event.anchor, 0)
            repeated += size
            if repeated > MAX_ALIAS_NODES:
                raise _too_many_aliases(event, file)
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size = event.anchor, 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size = open_anchors.pop(), open_sizes.pop()
        else:
            continue  # stream and document events
        if anchor is not None:
            sizes[anchor] = size
        if open_sizes:
            open_sizes[-1] += size


def _too_many_aliases(event: yaml.AliasEvent, file: str | None) -> ValidationError:
    message = (
        f"YAML aliases repeat more than {MAX_ALIAS_NODES} nodes in all, at '*{event.anchor}' "
        "(the limit for a workflow file); write the repeated values out, "
        "or alias fewer and smaller values"
    )
    problem = Problem(message, location=_location(event.start_mark, file))
    return ValidationError([problem], subject="YAML")


def _read_yaml(text: str, file: str | None) -> Any:
    try:
        if "*" in text:  # no alias without one
            _check_aliases(text, file)
        return _construct(text, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = " ".join(part for part in (exc.context, exc.problem) if part)
        problem = Problem(f"YAML syntax error: {detail}", location=_location(mark, file))
        raise ValidationError([problem], subject="YAML") from None
    except yaml.reader.ReaderError as exc:  # a character YAML text may not hold
        raise _unacceptable(text, text.find(chr(exc.character)), file) from None
    except UnicodeEncodeError as exc:  # a lone surrogate, which the C parser cannot encode
        raise _unacceptable(text, exc.start, file) from None


def _construct(text: str, file: str | None) -> Any:
    loader = _Loader(text)
    loader.file = file
    try:
        node = loader.get_single_node()
        _keep_version_text(node)
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def _unacceptable(text: str, index: int, file: str | None) -> ValidationError:
    """The character at ``index`` cannot be read as YAML: a problem at its line and column."""
    location = SourceLocation(
        file=file or "<string>",
        line=text.count("\n", 0, index) + 1,
        column=index - text.rfind("\n", 0, index),
    )
    message = (
        f"YAML syntax error: unacceptable character #x{ord(text[index]):04x}: "
        "special characters are not allowed"
    )
    return ValidationError([Problem(message, location=location)], subject="YAML")


def _looks_like_path(text: str) -> bool:
    if "\n" in text or ":" in text.split(os.sep)[-1]:
        return False
    if text.endswith((".yml", ".yaml", ".json")):
        return True
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # too long for a file name, or holding a NUL: YAML text
        return False


def _read(src: Source) -> Reading:
    """Read ``src`` as far as it can be read.

    Raises:
        ValidationError: YAML that cannot be parsed, or a file that is not UTF-8.
        NotFoundError: ``src`` names a file that does not exist.
    """
    if isinstance(src, WorkflowDef):
        return Reading(workflow=src)
    if isinstance(src, os.PathLike) or (isinstance(src, str) and _looks_like_path(src)):
        path = Path(src)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFoundError(f"workflow file not found: {path}") from None
        except UnicodeDecodeError as exc:
            problem = Problem(
                f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})",
                location=SourceLocation(file=str(path)),
            )
            raise ValidationError([problem], subject="YAML") from None
        return read_workflow(_read_yaml(text, str(path)), file=str(path))
    if isinstance(src, str):
        return read_workflow(_read_yaml(src, None))
    return read_workflow(src)  # a mapping, or something that is not a workflow at all


def _subject(reading: Reading) -> str:
    return f"workflow '{reading.workflow_id}'" if reading.workflow_id else "workflow"


def _errors(problems: list[Problem]) -> list[str]:
    return [problem for problem in problems if problem.severity == "error"]


def parse(src: Source) -> WorkflowDef:
    """Build a definition from a path, YAML text or a dict, without validating it.

    Only the shape is checked (types of keys, unknown keys, known step types);
    use :func:`load` or :func:`check` for everything else.

    Raises:
        ValidationError: YAML syntax errors (with line and column), or data that
            does not have the shape of a workflow (anything that is not a
            mapping included); every problem of shape is listed.
        NotFoundError: ``src`` names a file that does not exist.
    """
    reading = _read(src)
    if reading.problems:
        raise ValidationError(reading.problems, subject=_subject(reading))
    return reading.workflow


def load(src: Source) -> WorkflowDef:
    """Parse and validate a workflow (a path, YAML text, a dict or a definition).

    Warnings do not stop it (see :func:`check`).

    Raises:
        ValidationError: anything is wrong; ``.problems`` lists every problem:
            those of shape and those of the graph they would hide.
        NotFoundError: ``src`` names a file that does not exist.
    """
    reading = _read(src)
    errors = _errors(problems_in(reading))
    if errors:
        raise ValidationError(errors, subject=_subject(reading))
    return reading.workflow


def check(src: Source, *, warnings: bool = False) -> list[str]:
    """Every problem in a workflow definition, sorted by line; an empty list when it is valid.

    Each is a :class:`~flowkit.definitions.Problem`.

    Args:
        src: a :class:`WorkflowDef`, or anything :func:`parse` accepts.
        warnings: list warnings too: what the workflow says but never uses
            (``severity == "warning"``); they do not make it invalid.

    Raises:
        NotFoundError: ``src`` names a file that does not exist.
    """
    try:
        reading = _read(src)
    except ValidationError as exc:
        return exc.problems
    found = problems_in(reading)
    return list(found) if warnings else _errors(found)


def to_dict(wf: WorkflowDef) -> dict[str, Any]:
    """Plain JSON-compatible data; ``parse(to_dict(wf)) == wf``."""
    return unstructure_workflow(wf)


def to_yaml(wf: WorkflowDef) -> str:
    """YAML text; ``parse(to_yaml(wf)) == wf``."""
    text: str = yaml.dump(
        to_dict(wf), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
    )
    return text
