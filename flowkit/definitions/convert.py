"""The one cattrs converter that turns plain data into definitions and back.

Structuring is strict (a number is not a string, a typo'd key is an error) and
reports every problem at once: cattrs collects the errors of a step and
:func:`cattrs.transform_error` turns them into key paths. :func:`read_workflow`
goes on past every problem, keeping what it could read of each step (a
:class:`Reading`), so that the validator still checks the graph around it.

Step types whose config holds values of their own shape (a ``call``'s output, a
``transform``'s ops) register hooks on :data:`converter` next to their config
class; a hook raises :class:`InvalidValue` with the message users should see.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, get_origin

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ..frozen import FrozenDict, JsonTypeError, freeze, thaw
from .fields import KEY, STEPS
from .kinds import StepKind, extensions, kind, kinds
from .model import InputDef, SourceLocation, StepDef, WorkflowDef
from .problems import Problem, closest, did_you_mean

__all__ = [
    "NO_ID",
    "UNREAD",
    "InvalidValue",
    "Reading",
    "converter",
    "error_messages",
    "freeze_value",
    "read_workflow",
    "type_name",
    "unstructure_workflow",
    "yaml_keys",
]

STEP_KEYS = ("id", "type", "next", "on_error")
WORKFLOW_KEYS = ("id", "name", "version", "description", "timeout", "inputs", "steps")
INPUT_KEYS = ("type", "required", "default", "description")

converter = cattrs.Converter(forbid_extra_keys=True)


class InvalidValue(ValueError):
    """Raised by structure hooks: the message is shown to users as it is."""


# --- strict scalars -------------------------------------------------------------------------


_TYPE_NAMES: tuple[tuple[type[Any] | tuple[type[Any], ...], str], ...] = (
    (bool, "a boolean"),
    (str, "a string"),
    (int, "an integer"),
    (float, "a number"),
    (Mapping, "a mapping"),
    ((list, tuple), "a list"),
)


def type_name(value: object) -> str:
    """``a string``, ``an integer``… for messages about a value of the wrong type."""
    if value is None:
        return "null"
    return next(
        (name for kind, name in _TYPE_NAMES if isinstance(value, kind)), type(value).__name__
    )


def _strict(kind: type[Any], label: str) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _type: Any) -> Any:
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise InvalidValue(f"expected {label}, got {type_name(value)} {value!r}")
        return value

    return structure


converter.register_structure_hook(str, _strict(str, "a string"))
converter.register_structure_hook(int, _strict(int, "an integer"))
converter.register_structure_hook(float, _strict(float, "a number"))
converter.register_structure_hook(bool, _strict(bool, "true or false"))


def _structure_frozen_mapping(value: Any, _type: Any) -> FrozenDict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidValue(f"expected a mapping, got {type_name(value)} {value!r}")
    frozen: FrozenDict[str, Any] = freeze_value(value)
    return frozen


def freeze_value(value: Any) -> Any:
    """``value`` as frozen JSON data, or :class:`InvalidValue` saying where it is not JSON."""
    try:
        return freeze(value)
    except JsonTypeError as exc:
        raise InvalidValue(str(exc)) from None


def _is_frozen_dict(tp: Any) -> bool:
    return tp is FrozenDict or get_origin(tp) is FrozenDict


converter.register_structure_hook_func(_is_frozen_dict, _structure_frozen_mapping)
converter.register_structure_hook_func(lambda t: t is Any, lambda v, _t: freeze_value(v))


def _structure_str_tuple(value: Any, _type: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise InvalidValue(f"expected a name or a list of names, got {value!r}")
    return tuple(items)


converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _structure_str_tuple)
converter.register_unstructure_hook_func(
    lambda t: isinstance(t, type) and issubclass(t, FrozenDict), thaw
)


# --- config classes: renamed keys, omitted defaults -----------------------------------------


def _renames(cls: type[Any]) -> dict[str, Any]:
    return {
        field.name: override(rename=field.metadata[KEY])
        for field in attrs.fields(cls)
        if KEY in field.metadata
    }


def _is_config(cls: Any) -> bool:
    return isinstance(cls, type) and attrs.has(cls) and cls not in (StepDef, WorkflowDef)


converter.register_structure_hook_factory(
    _is_config,
    lambda cls: make_dict_structure_fn(
        cls, converter, _cattrs_forbid_extra_keys=True, **_renames(cls)
    ),
)
converter.register_unstructure_hook_factory(
    _is_config,
    lambda cls: make_dict_unstructure_fn(
        cls, converter, _cattrs_omit_if_default=True, **_renames(cls)
    ),
)


def yaml_keys(cls: type[Any]) -> list[str]:
    """The YAML keys a config class accepts."""
    return [field.metadata.get(KEY, field.name) for field in attrs.fields(cls)]


# --- steps ----------------------------------------------------------------------------------


def _line(raw: object) -> int | None:
    line = getattr(raw, "line", None)
    return line if isinstance(line, int) else None


def _structure_step(value: Any, _type: Any) -> StepDef:
    """Nested steps are read on their own before their step's config (see :func:`read_workflow`)."""
    if not isinstance(value, StepDef):
        raise InvalidValue(f"nested steps are read with flowkit.parse, got {value!r}")
    return value


def _unstructure_step(step: StepDef) -> dict[str, Any]:
    data: dict[str, Any] = {"id": step.id, "type": step.type}
    config = converter.unstructure(step.config, type(step.config))
    # cattrs puts required keys first; write them in field order (a loop's `do` last)
    order = yaml_keys(type(step.config)) if attrs.has(type(step.config)) else []
    data.update(sorted(config.items(), key=lambda item: _position(order, item[0])))
    if step.next is not None:
        data["next"] = step.next
    if step.on_error is not None:
        data["on_error"] = step.on_error
    return data


def _position(order: list[str], key: str) -> int:
    return order.index(key) if key in order else len(order)


converter.register_structure_hook(StepDef, _structure_step)
converter.register_unstructure_hook(StepDef, _unstructure_step)


# --- turning cattrs errors into problems ----------------------------------------------------


def _format(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        accepted = yaml_keys(exc.cl) if attrs.has(exc.cl) else []
        if any(known.config is exc.cl for known in kinds().values()):
            accepted += STEP_KEYS
        return "; ".join(
            f"unknown key '{key}'{did_you_mean(key, accepted)}"
            for key in sorted(str(key) for key in exc.extra_fields)
        )
    if isinstance(exc, KeyError):
        return "missing required key"
    if isinstance(exc, (TypeError, ValueError)) and str(exc):
        return _message(exc)
    return f"invalid value ({type(exc).__name__}: {exc})"


_FIRST_KEY = re.compile(r"[^.\[]*")


def error_messages(exc: BaseException) -> list[str]:
    """What cattrs found wrong while structuring an attrs class, one ``key: problem`` each.

    Keys are named as written in YAML (``as``, not ``as_``). For extensions
    that structure their own values with :data:`converter`.
    """
    names = _yaml_names(exc.cl) if isinstance(exc, ClassValidationError) else {}
    out = []
    for message in cattrs.transform_error(exc, format_exception=_format):
        text, _, path = message.rpartition(" @ ")
        path = path.removeprefix("$").removeprefix(".")
        first = _FIRST_KEY.match(path)
        if first is not None and first.group() in names:
            path = names[first.group()] + path[first.end() :]
        if text == "missing required key":
            out.append(f"missing required key '{path}'")
        else:
            out.append(f"{path}: {text}" if path else text)
    return out


def _yaml_names(cls: type[Any]) -> dict[str, str]:
    """The YAML key of each field of an attrs class, by field name."""
    if not attrs.has(cls):
        return {}
    return {field.name: field.metadata.get(KEY, field.name) for field in attrs.fields(cls)}


def _bad_keys(exc: BaseException) -> set[Any]:
    """The keys whose values cattrs could not structure, unknown keys included."""
    if not isinstance(exc, ClassValidationError):
        return set()
    names = _yaml_names(exc.cl)
    with_notes, without_notes = exc.group_exceptions()
    keys: set[Any] = {names.get(note.name, note.name) for _, note in with_notes}
    for error in without_notes:
        if isinstance(error, ForbiddenExtraKeysError):
            keys.update(error.extra_fields)
    return keys


def _message(exc: BaseException) -> str:
    """The message of an exception; attrs' validators pass (message, attribute, ...)."""
    if len(exc.args) > 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


# --- workflows ------------------------------------------------------------------------------

UNREAD = "(unread)"
"""The ``type`` of a step whose config could not be read (its ``config`` is None);
no step type has this name."""
NO_ID = "(no id)"
"""The ``id`` of a workflow read without one; :attr:`Reading.workflow_id` is None."""


@attrs.frozen(kw_only=True)
class Reading:
    """A workflow read from plain data, as far as it could be read.

    A step with problems is kept, so that the validator still checks the graph
    and the references around it: without the keys that could not be read, or,
    when its config cannot be read at all, with the type :data:`UNREAD` and no
    config. A step without an id is named ``#2`` after its place in its list.

    Attributes:
        workflow: the definition; complete when there are no problems.
        workflow_id: the workflow's id; None when it has none.
        problems: what could not be read, in the order found.
        partial: the steps read in part, by path (``loop:inner``), each with the
            words (keys and text) of what could not be read: the steps it may
            lead to and the names it may set are among them.
        unnamed: the paths of steps read without an id (nothing can lead to them).
        unread_extensions: extension keys whose value could not be read.
    """

    workflow: WorkflowDef
    workflow_id: str | None = attrs.field(
        default=attrs.Factory(lambda self: self.workflow.id, takes_self=True)
    )
    problems: tuple[Problem, ...] = ()
    partial: Mapping[str, frozenset[str]] = attrs.field(factory=dict)
    unnamed: frozenset[str] = frozenset()
    unread_extensions: frozenset[str] = frozenset()


def read_workflow(raw: Any, *, file: str | None = None) -> Reading:
    """Read a workflow from plain data, going on past every problem (see :class:`Reading`)."""
    if not isinstance(raw, Mapping):
        problem = Problem(f"a workflow must be a mapping, got {type_name(raw)}", location=_at(file))
        empty = WorkflowDef(id=NO_ID, steps=(), source=_at(file))
        return Reading(workflow=empty, workflow_id=None, problems=(problem,))
    return _Reader(raw, file).read()


def _words(value: Any) -> Iterator[str]:
    """The keys and text in plain data, at any depth."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


class _Reader:
    """Reads one workflow mapping, noting each problem and going on."""

    def __init__(self, raw: Mapping[Any, Any], file: str | None) -> None:
        self.raw = raw
        self.file = file
        self.workflow_id = _text(raw.get("id"))
        self.problems: list[Problem] = []
        self.partial: dict[str, frozenset[str]] = {}
        self.unnamed: set[str] = set()

    def report(self, message: str, *, step: str | None = None, line: int | None = None) -> None:
        location = SourceLocation(file=self.file, line=line) if line is not None else _at(self.file)
        self.problems.append(
            Problem(message, workflow_id=self.workflow_id, step_id=step, location=location)
        )

    def read(self) -> Reading:
        registered = extensions()
        for key in self.raw:
            if key not in WORKFLOW_KEYS and key not in registered:
                self.report(f"unknown top-level key '{key}'{did_you_mean(str(key), WORKFLOW_KEYS)}")
        if self.workflow_id is None:
            if self.raw.get("id") is None:
                self.report("missing 'id' (a non-empty string naming the workflow)")
            else:
                self.report(
                    f"'id' must be a non-empty string naming the workflow, got {self.raw['id']!r}"
                )
        fields = self.metadata()
        inputs = self.inputs(self.raw.get("inputs"))
        raw_steps = self.raw.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            self.report("'steps' must be a non-empty list of steps")
            raw_steps = []
        steps = self.steps(raw_steps, "")
        structured: dict[str, Any] = {}
        unread: set[str] = set()
        for key, ext in registered.items():
            if key in self.raw:
                try:
                    structured[key] = ext.structure(self.raw[key])
                except (ValueError, TypeError) as exc:
                    self.report(f"'{key}': {exc}")
                    unread.add(key)
        workflow = WorkflowDef(
            id=self.workflow_id or NO_ID,
            steps=steps,
            inputs=inputs,
            extensions=FrozenDict(structured),
            source=_at(self.file),
            **fields,
        )
        return Reading(
            workflow=workflow,
            workflow_id=self.workflow_id,
            problems=tuple(self.problems),
            partial=self.partial,
            unnamed=frozenset(self.unnamed),
            unread_extensions=frozenset(unread),
        )

    def metadata(self) -> dict[str, Any]:
        """``name``, ``version``, ``description`` and ``timeout``: those that can be read."""
        fields: dict[str, Any] = {}
        for key in ("name", "version", "description", "timeout"):
            value: Any = self.raw.get(key)
            if value is None:
                continue
            if key == "version" and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            try:
                if key != "timeout":  # the field reads a duration ("1h") itself
                    value = converter.structure(value, str)
                WorkflowDef(id=NO_ID, steps=(), **{key: value})  # the field's own checks
            except InvalidValue as exc:
                self.report(f"'{key}': {exc}")
            except (ValueError, TypeError) as exc:
                self.report(_message(exc))
            else:
                fields[key] = value
        return fields

    def inputs(self, raw: Any) -> tuple[InputDef, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, Mapping):
            self.report("'inputs' must be a mapping of input name to its spec", line=_line(raw))
            return ()
        inputs = (self.input(name, spec, _line(spec) or _line(raw)) for name, spec in raw.items())
        return tuple(spec for spec in inputs if spec is not None)

    def input(self, name: Any, spec: Any, line: int | None) -> InputDef | None:
        """One declared input; one with problems is kept by its name alone."""
        if isinstance(spec, str):
            spec = {"type": spec}
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            messages = [f"expected a mapping of {', '.join(INPUT_KEYS)}"]
        else:
            messages = [
                f"unknown key '{key}'{did_you_mean(str(key), INPUT_KEYS)}"
                for key in spec
                if key not in INPUT_KEYS
            ]
        if not messages:
            try:
                return converter.structure({"name": name, **spec}, InputDef)
            except (ClassValidationError, ValueError, TypeError) as exc:
                messages = error_messages(exc)
        for message in messages:
            self.report(f"input '{name}': {message}", line=line)
        return InputDef(name=name) if isinstance(name, str) and name else None

    def steps(self, raw_steps: list[Any], prefix: str) -> tuple[StepDef, ...]:
        """The steps of one list (the top level, a loop's body…); ``prefix`` is ``loop:``."""
        return tuple(self.step(raw, f"#{place}", prefix) for place, raw in enumerate(raw_steps, 1))

    def step(self, raw: Any, placeholder: str, prefix: str) -> StepDef:
        """One step, read as far as it can be (see :class:`Reading`)."""
        given = _text(raw.get("id")) if isinstance(raw, Mapping) else None
        step_id = given or placeholder
        path = prefix + step_id
        line = _line(raw)
        if given is None:
            self.unnamed.add(path)
        if not isinstance(raw, Mapping):
            self.report(
                f"a step must be a mapping with 'id' and 'type', got {raw!r}", step=path, line=line
            )
            self.partial[path] = frozenset(_words(raw))
            return StepDef(id=step_id, type=UNREAD, config=None)
        if given is None:
            self.report("every step needs an 'id' (a non-empty string)", step=path, line=line)
        unread: dict[Any, Any] = {}
        for key in ("next", "on_error"):
            value = raw.get(key)
            if value is not None and _text(value) is None:
                self.report(f"'{key}' must be a step id, got {value!r}", step=path, line=line)
                unread[key] = value
        step_type = raw.get("type")
        known = self.step_kind(step_type, path, line)
        own = {key: value for key, value in raw.items() if key not in STEP_KEYS}
        if known is not None:
            config, left_out = self.config(own, known.config, path, line)
            unread.update(left_out)
        else:
            known, config = self.as_likely_type(step_type, own, path, line)
            if config is None:
                unread.update(own)
        if unread or config is None:
            self.partial[path] = frozenset(_words(unread))
        return StepDef(
            id=step_id,
            type=known.name if known is not None and config is not None else UNREAD,
            config=config,
            next=None if "next" in unread else raw.get("next"),
            on_error=None if "on_error" in unread else raw.get("on_error"),
            source=SourceLocation(file=self.file, line=line),
        )

    def step_kind(self, step_type: Any, path: str, line: int | None) -> StepKind | None:
        """The registered type named ``step_type``; reports it when there is none."""
        if isinstance(step_type, str) and (found := kind(step_type)) is not None:
            return found
        if step_type is None:
            message = "missing 'type'"
        elif not isinstance(step_type, str):
            message = f"'type' must be the name of a step type, got {step_type!r}"
        else:
            known = sorted(kinds())
            hint = did_you_mean(step_type, known) or f" (known types: {', '.join(known)})"
            message = f"unknown step type {step_type!r}{hint}"
        self.report(message, step=path, line=line)
        return None

    def as_likely_type(
        self, step_type: Any, raw: dict[Any, Any], path: str, line: int | None
    ) -> tuple[StepKind | None, Any]:
        """The type a misspelt ``step_type`` likely names, and the step's config read as
        that type, when every key fits it; else ``(None, None)``."""
        likely = closest(step_type, kinds()) if isinstance(step_type, str) else None
        if likely is None:
            return None, None
        found = kinds()[likely]
        trial = _Reader(self.raw, self.file)  # what does not fit is no problem of this step
        config, left_out = trial.config(raw, found.config, path, line)
        if trial.problems or left_out:
            return None, None
        return found, config

    def config(
        self, raw: dict[Any, Any], cls: type[Any], path: str, line: int | None
    ) -> tuple[Any, dict[Any, Any]]:
        """A step's config, and the keys left out of it because they could not be read.

        Nested steps are read first, each on its own; their problems are listed
        after the step's own.
        """
        given = dict(raw)
        left_out: dict[Any, Any] = {}
        start = len(self.problems)
        for key in _steps_keys(cls):
            if isinstance(raw.get(key), list):
                given[key] = self.steps(raw[key], f"{path}:")
            elif key in raw:
                self.report(
                    f"{key}: expected a list of steps, got {type_name(raw[key])}",
                    step=path,
                    line=line,
                )
                given[key], left_out[key] = (), raw[key]
        nested = self.problems[start:]
        del self.problems[start:]
        config, bad = self.structure(given, cls, path, line)
        self.problems.extend(nested)
        if config is None:
            return None, raw
        return config, {**left_out, **{key: raw[key] for key in bad}}

    def structure(
        self, given: dict[Any, Any], cls: type[Any], path: str, line: int | None
    ) -> tuple[Any, set[Any]]:
        """``given`` as a ``cls``, and the keys left out; None when it cannot be read.

        A config with problems is read again without the keys that had them;
        when that fails too (what still fails may follow from what was left
        out), it cannot be read.
        """
        try:
            return converter.structure(given, cls), set()
        except (ClassValidationError, ValueError, TypeError) as exc:
            for message in error_messages(exc):
                self.report(message, step=path, line=line)
            bad = _bad_keys(exc) & given.keys()
        if not bad:
            return None, bad
        kept = {key: value for key, value in given.items() if key not in bad}
        try:
            return converter.structure(kept, cls), bad
        except (ClassValidationError, ValueError, TypeError):
            return None, bad


def _text(value: Any) -> str | None:
    """``value`` if it is a non-empty string (an id), else None."""
    return value if isinstance(value, str) and value else None


def _steps_keys(cls: type[Any]) -> list[str]:
    """The YAML keys under which a config class holds nested steps (``do``, ``branches``)."""
    return [
        field.metadata.get(KEY, field.name)
        for field in attrs.fields(cls)
        if field.metadata.get(STEPS)
    ]


def _at(file: str | None) -> SourceLocation | None:
    return SourceLocation(file=file) if file else None


def unstructure_workflow(wf: WorkflowDef) -> dict[str, Any]:
    """Plain JSON-compatible data for ``wf``; defaults are left out."""
    data: dict[str, Any] = {"id": wf.id}
    if wf.name is not None:
        data["name"] = wf.name
    data["version"] = wf.version
    if wf.description is not None:
        data["description"] = wf.description
    if wf.timeout is not None:
        data["timeout"] = wf.timeout
    if wf.inputs:
        data["inputs"] = {spec.name: converter.unstructure(spec, InputDef) for spec in wf.inputs}
        for spec_data in data["inputs"].values():
            del spec_data["name"]
    registered = extensions()
    for key, value in wf.extensions.items():
        ext = registered.get(key)
        data[key] = ext.unstructure(value) if ext else thaw(value)
    data["steps"] = [_unstructure_step(step) for step in wf.steps]
    return data
