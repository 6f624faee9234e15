"""The one cattrs converter that turns plain data into definitions and back.

Structuring is strict (a number is not a string, a typo'd key is an error) and
reports every problem at once: cattrs collects the errors of a step and
:func:`cattrs.transform_error` turns them into key paths, which are mapped back
to step ids and YAML lines.

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
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ..errors import ValidationError
from ..frozen import FrozenDict, JsonTypeError, freeze, thaw
from .fields import KEY, STEPS
from .kinds import extensions, kind, kinds
from .model import InputDef, SourceLocation, StepDef, WorkflowDef
from .problems import Problem, did_you_mean

__all__ = [
    "InvalidValue",
    "converter",
    "error_messages",
    "freeze_value",
    "structure_workflow",
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


def type_name(value: object) -> str:
    """``a string``, ``an integer``… for messages about a value of the wrong type."""
    return {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }.get(type(value), "a list" if isinstance(value, list) else "a mapping")


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


def _structure_step(raw: Any, _type: Any = StepDef) -> StepDef:
    if not isinstance(raw, Mapping):
        raise InvalidValue(f"a step must be a mapping with 'id' and 'type', got {raw!r}")
    step_id = raw.get("id")
    step_type = raw.get("type")
    problems = []
    if not isinstance(step_id, str) or not step_id:
        problems.append("every step needs an 'id' (a non-empty string)")
    registered = kind(step_type) if isinstance(step_type, str) else None
    if registered is None:
        if step_type is None:
            problems.append("missing 'type'")
        else:
            known = sorted(kinds())
            hint = did_you_mean(str(step_type), known) or f" (known types: {', '.join(known)})"
            problems.append(f"unknown step type {step_type!r}{hint}")
    for key in ("next", "on_error"):
        if key in raw and not (raw[key] is None or isinstance(raw[key], str)):
            problems.append(f"'{key}' must be a step id, got {raw[key]!r}")
    if problems:
        raise InvalidValue("; ".join(problems))
    assert registered is not None
    assert isinstance(step_id, str)
    config = converter.structure(
        {key: value for key, value in raw.items() if key not in STEP_KEYS}, registered.config
    )
    return StepDef(
        id=step_id,
        type=registered.name,
        config=config,
        next=raw.get("next"),
        on_error=raw.get("on_error"),
        source=SourceLocation(file=getattr(raw, "file", None), line=_line(raw)),
    )


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
            f"unknown key '{key}'{did_you_mean(key, accepted)}" for key in sorted(exc.extra_fields)
        )
    if isinstance(exc, KeyError):
        return "missing required key"
    if isinstance(exc, (TypeError, ValueError)) and str(exc):
        return _message(exc)
    return f"invalid value ({type(exc).__name__}: {exc})"


def error_messages(exc: BaseException) -> list[str]:
    """What cattrs found wrong while structuring an attrs class, one ``key: problem`` each.

    For extensions that structure their own values with :data:`converter`.
    """
    out = []
    for message in cattrs.transform_error(exc, format_exception=_format):
        text, _, path = message.rpartition(" @ ")
        path = path.removeprefix("$").removeprefix(".")
        if text == "missing required key":
            out.append(f"missing required key '{path}'")
        else:
            out.append(f"{path}: {text}" if path else text)
    return out


def _message(exc: BaseException) -> str:
    """The message of an exception; attrs' validators pass (message, attribute, ...)."""
    if len(exc.args) > 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _locate(raw_step: Any, path: str) -> tuple[list[str], Any, str]:
    """Follow a cattrs path (``$.do[1].retries``) through raw data.

    Returns the nested step ids passed through, the innermost raw step and the
    remaining key path (``retries``).
    """
    ids: list[str] = []
    node, step_node, keys = raw_step, raw_step, []
    for name, index in _TOKEN.findall(path):
        if name:
            keys.append(name)
            node = node.get(name) if isinstance(node, Mapping) else None
        else:
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
            if keys and keys[-1] in _nested_step_keys() and isinstance(node, Mapping):
                ids.append(str(node.get("id", f"#{index}")))
                step_node, keys = node, []
            else:
                keys[-1:] = [f"{keys[-1]}[{index}]"] if keys else [f"[{index}]"]
    return ids, step_node, ".".join(keys)


def _nested_step_keys() -> set[str]:
    """The YAML keys under which registered step types hold nested steps (``do``, ``branches``)."""
    return {
        field.metadata.get(KEY, field.name)
        for known in kinds().values()
        if attrs.has(known.config)
        for field in attrs.fields(known.config)
        if field.metadata.get(STEPS)
    }


def _problems_from(
    exc: BaseException, raw_step: Any, step_id: str, workflow_id: str | None, file: str | None
) -> Iterator[Problem]:
    for message in cattrs.transform_error(exc, format_exception=_format):
        text, _, path = message.rpartition(" @ ")
        ids, step_node, key = _locate(raw_step, path)
        where = ":".join([step_id, *ids])
        if key.startswith("[") or not key:
            detail = text
        elif text == "missing required key":
            detail = f"missing required key '{key}'"
        else:
            detail = f"{key}: {text}"
        yield Problem(
            detail,
            workflow_id=workflow_id,
            step_id=where,
            location=SourceLocation(file=file, line=_line(step_node)),
        )


# --- workflows ------------------------------------------------------------------------------


def _structure_inputs(raw: Any, problems: list[tuple[str, int | None]]) -> tuple[InputDef, ...]:
    """The declared inputs; appends ``(message, line)`` for each problem."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        problems.append(("'inputs' must be a mapping of input name to its spec", _line(raw)))
        return ()
    inputs = []
    for name, spec in raw.items():
        line = _line(spec) or _line(raw)
        if isinstance(spec, str):
            spec = {"type": spec}
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            problems.append(
                (f"input '{name}': expected a mapping of {', '.join(INPUT_KEYS)}", line)
            )
            continue
        unknown = [key for key in spec if key not in INPUT_KEYS]
        for key in unknown:
            problems.append(
                (f"input '{name}': unknown key '{key}'{did_you_mean(key, INPUT_KEYS)}", line)
            )
        if unknown:
            continue
        try:
            inputs.append(converter.structure({"name": name, **spec}, InputDef))
        except (ClassValidationError, IterableValidationError) as exc:
            for detail in error_messages(exc):
                problems.append((f"input '{name}': {detail}", line))
        except (ValueError, TypeError) as exc:
            problems.append((f"input '{name}': {_message(exc)}", line))
    return tuple(inputs)


def structure_workflow(raw: Any, *, file: str | None = None) -> WorkflowDef:
    """Build a :class:`WorkflowDef` from plain data.

    Raises:
        ValidationError: the data does not have the shape of a workflow; every
            structural problem is listed.
    """
    if not isinstance(raw, Mapping):
        raise ValidationError(
            [Problem(f"a workflow must be a mapping, got {type_name(raw)}", location=_at(file))]
        )
    workflow_id = raw.get("id") if isinstance(raw.get("id"), str) and raw.get("id") else None
    problems: list[str] = []

    def problem(message: str) -> None:
        problems.append(Problem(message, workflow_id=workflow_id, location=_at(file)))

    registered = extensions()
    for key in raw:
        if key not in WORKFLOW_KEYS and key not in registered:
            problem(f"unknown top-level key '{key}'{did_you_mean(str(key), WORKFLOW_KEYS)}")
    if workflow_id is None:
        if raw.get("id") is None:
            problem("missing 'id' (a non-empty string naming the workflow)")
        else:
            problem(f"'id' must be a non-empty string naming the workflow, got {raw['id']!r}")

    fields: dict[str, Any] = {}
    for key in ("name", "version", "description", "timeout"):
        if raw.get(key) is None:
            continue
        value = raw[key]
        if key == "version" and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        expected = float if key == "timeout" else str
        try:
            fields[key] = converter.structure(value, expected)
        except InvalidValue as exc:
            problem(f"'{key}': {exc}")

    input_problems: list[tuple[str, int | None]] = []
    fields["inputs"] = _structure_inputs(raw.get("inputs"), input_problems)
    for message, line in input_problems:
        problems.append(
            Problem(message, workflow_id=workflow_id, location=SourceLocation(file=file, line=line))
        )

    steps: list[StepDef] = []
    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        problem("'steps' must be a non-empty list of steps")
        raw_steps = []
    for index, raw_step in enumerate(raw_steps):
        step_id = raw_step.get("id") if isinstance(raw_step, Mapping) else None
        label = step_id if isinstance(step_id, str) and step_id else f"#{index + 1}"
        try:
            steps.append(_structure_step(raw_step))
        except (ClassValidationError, IterableValidationError) as exc:
            problems.extend(_problems_from(exc, raw_step, label, workflow_id, file))
        except (InvalidValue, ValueError, TypeError) as exc:
            problems.append(
                Problem(
                    str(exc),
                    workflow_id=workflow_id,
                    step_id=label,
                    location=SourceLocation(file=file, line=_line(raw_step)),
                )
            )

    structured: dict[str, Any] = {}
    for key, ext in registered.items():
        if key in raw:
            try:
                structured[key] = ext.structure(raw[key])
            except (ValueError, TypeError) as exc:
                problem(f"'{key}': {exc}")

    if problems or workflow_id is None:
        raise ValidationError(problems, subject=_subject(workflow_id))
    try:
        return WorkflowDef(
            id=workflow_id,
            steps=tuple(steps),
            extensions=FrozenDict(structured),
            source=_at(file),
            **fields,
        )
    except (ValueError, TypeError) as exc:
        raise ValidationError(
            [Problem(str(exc), workflow_id=workflow_id, location=_at(file))],
            subject=_subject(workflow_id),
        ) from None


def _at(file: str | None) -> SourceLocation | None:
    return SourceLocation(file=file) if file else None


def _subject(workflow_id: str | None) -> str:
    return f"workflow '{workflow_id}'" if workflow_id else "workflow"


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
