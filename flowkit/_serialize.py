"""The one cattrs converter that turns plain data into definitions and back.

Structuring is strict (a number is not a string, a typo'd key is an error) and
reports every problem at once: cattrs collects the errors of a step and
:func:`cattrs.transform_error` turns them into key paths, which are mapped back
to step ids and YAML lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, get_origin

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from . import _registry
from ._definitions import (
    InputDef,
    OutputSpec,
    SourceLocation,
    StepDef,
    TransformOp,
    Wait,
    WorkflowDef,
)
from ._problems import Problem, did_you_mean
from .errors import ValidationError
from .frozen import FrozenDict, JsonTypeError, freeze, thaw

__all__ = ["converter", "structure_workflow", "unstructure_workflow"]

STEP_KEYS = ("id", "type", "next", "on_error")
WORKFLOW_KEYS = ("id", "name", "version", "description", "timeout", "inputs", "steps")
INPUT_KEYS = ("type", "required", "default", "description")

converter = cattrs.Converter(forbid_extra_keys=True)


class _KeyError(ValueError):
    """Raised by our hooks when the message should be shown as is."""


# --- strict scalars -------------------------------------------------------------------------


def _type_name(value: object) -> str:
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
            raise _KeyError(f"expected {label}, got {_type_name(value)} {value!r}")
        return value

    return structure


converter.register_structure_hook(str, _strict(str, "a string"))
converter.register_structure_hook(int, _strict(int, "an integer"))
converter.register_structure_hook(float, _strict(float, "a number"))
converter.register_structure_hook(bool, _strict(bool, "true or false"))


def _structure_frozen_mapping(value: Any, _type: Any) -> FrozenDict[str, Any]:
    if not isinstance(value, Mapping):
        raise _KeyError(f"expected a mapping, got {_type_name(value)} {value!r}")
    frozen: FrozenDict[str, Any] = _freeze(value)
    return frozen


def _freeze(value: Any) -> Any:
    try:
        return freeze(value)
    except JsonTypeError as exc:
        raise _KeyError(str(exc)) from None


def _is_frozen_dict(tp: Any) -> bool:
    return tp is FrozenDict or get_origin(tp) is FrozenDict


converter.register_structure_hook_func(_is_frozen_dict, _structure_frozen_mapping)
converter.register_structure_hook_func(lambda t: t is Any, lambda v, _t: _freeze(v))


def _structure_str_tuple(value: Any, _type: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise _KeyError(f"expected a name or a list of names, got {value!r}")
    return tuple(items)


converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _structure_str_tuple)


_structure_output_mapping = make_dict_structure_fn(
    OutputSpec, converter, _cattrs_forbid_extra_keys=True
)


def _structure_output(value: Any, _type: Any) -> OutputSpec:
    if isinstance(value, str):
        return OutputSpec(key=value)
    if isinstance(value, Mapping):
        return _structure_output_mapping(value, OutputSpec)
    raise _KeyError(f"expected a name or {{key, schema}}, got {value!r}")


converter.register_structure_hook(OutputSpec, _structure_output)


def _structure_wait(value: Any, _type: Any) -> Any:
    if value in ("all", "any") or (
        isinstance(value, int) and not isinstance(value, bool) and value >= 1
    ):
        return value
    raise _KeyError(f"expected 'all', 'any' or a positive number of branches, got {value!r}")


converter.register_structure_hook_func(lambda t: t == Wait, _structure_wait)


def _structure_transform_ops(value: Any, _type: Any) -> tuple[TransformOp, ...]:
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list) and all(
        isinstance(item, Mapping) and len(item) == 1 for item in value
    ):
        pairs = [next(iter(item.items())) for item in value]
    else:
        raise _KeyError(
            f"expected a mapping of op: argument, or a list of one-key mappings, got {value!r}"
        )
    return tuple(TransformOp(op=str(op), arg=_freeze(arg)) for op, arg in pairs)


converter.register_structure_hook_func(
    lambda t: t == tuple[TransformOp, ...], _structure_transform_ops
)


def _unstructure_transform_ops(ops: tuple[TransformOp, ...]) -> Any:
    names = [op.op for op in ops]
    if len(set(names)) == len(names):
        return {op.op: thaw(op.arg) for op in ops}
    return [{op.op: thaw(op.arg)} for op in ops]


converter.register_unstructure_hook_func(
    lambda t: t == tuple[TransformOp, ...], _unstructure_transform_ops
)
converter.register_unstructure_hook_func(
    lambda t: isinstance(t, type) and issubclass(t, FrozenDict), thaw
)
converter.register_unstructure_hook(
    OutputSpec,
    lambda spec: (
        spec.key if spec.schema is None else {"key": spec.key, "schema": thaw(spec.schema)}
    ),
)


# --- config classes: renamed keys, omitted defaults -----------------------------------------


def _renames(cls: type[Any]) -> dict[str, Any]:
    return {
        field.name: override(rename=field.metadata[_registry.KEY])
        for field in attrs.fields(cls)
        if _registry.KEY in field.metadata
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
    return [field.metadata.get(_registry.KEY, field.name) for field in attrs.fields(cls)]


# --- steps ----------------------------------------------------------------------------------


def _line(raw: object) -> int | None:
    line = getattr(raw, "line", None)
    return line if isinstance(line, int) else None


def _structure_step(raw: Any, _type: Any = StepDef) -> StepDef:
    if not isinstance(raw, Mapping):
        raise _KeyError(f"a step must be a mapping with 'id' and 'type', got {raw!r}")
    step_id = raw.get("id")
    kind = raw.get("type")
    problems = []
    if not isinstance(step_id, str) or not step_id:
        problems.append("every step needs an 'id' (a non-empty string)")
    registered = _registry.step_type(kind) if isinstance(kind, str) else None
    if registered is None:
        if kind is None:
            problems.append("missing 'type'")
        else:
            known = sorted(_registry.step_types())
            hint = did_you_mean(str(kind), known) or f" (known types: {', '.join(known)})"
            problems.append(f"unknown step type {kind!r}{hint}")
    for key in ("next", "on_error"):
        if key in raw and not (raw[key] is None or isinstance(raw[key], str)):
            problems.append(f"'{key}' must be a step id, got {raw[key]!r}")
    if problems:
        raise _KeyError("; ".join(problems))
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
        if any(kind.config is exc.cl for kind in _registry.step_types().values()):
            accepted += STEP_KEYS
        return "; ".join(
            f"unknown key '{key}'{did_you_mean(key, accepted)}" for key in sorted(exc.extra_fields)
        )
    if isinstance(exc, KeyError):
        return "missing required key"
    if isinstance(exc, (TypeError, ValueError)) and str(exc):
        return _message(exc)
    return f"invalid value ({type(exc).__name__}: {exc})"


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
            if keys and keys[-1] in _NESTED_STEP_KEYS and isinstance(node, Mapping):
                ids.append(str(node.get("id", f"#{index}")))
                step_node, keys = node, []
            else:
                keys[-1:] = [f"{keys[-1]}[{index}]"] if keys else [f"[{index}]"]
    return ids, step_node, ".".join(keys)


_NESTED_STEP_KEYS = ("do", "branches")


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
            for message in cattrs.transform_error(exc, format_exception=_format):
                text, _, path = message.rpartition(" @ ")
                key = path.removeprefix("$").removeprefix(".")
                detail = f"{key}: {text}" if key else text
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
            [Problem(f"a workflow must be a mapping, got {_type_name(raw)}", location=_at(file))]
        )
    workflow_id = raw.get("id") if isinstance(raw.get("id"), str) and raw.get("id") else None
    problems: list[str] = []

    def problem(message: str) -> None:
        problems.append(Problem(message, workflow_id=workflow_id, location=_at(file)))

    registered = _registry.extensions()
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
        except _KeyError as exc:
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
        except (_KeyError, ValueError, TypeError) as exc:
            problems.append(
                Problem(
                    str(exc),
                    workflow_id=workflow_id,
                    step_id=label,
                    location=SourceLocation(file=file, line=_line(raw_step)),
                )
            )

    extensions: dict[str, Any] = {}
    for key, ext in registered.items():
        if key in raw:
            try:
                extensions[key] = ext.structure(raw[key])
            except (ValueError, TypeError) as exc:
                problem(f"'{key}': {exc}")

    if problems or workflow_id is None:
        raise ValidationError(problems, subject=_subject(workflow_id))
    try:
        return WorkflowDef(
            id=workflow_id,
            steps=tuple(steps),
            extensions=FrozenDict(extensions),
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
    registered = _registry.extensions()
    for key, value in wf.extensions.items():
        ext = registered.get(key)
        data[key] = ext.unstructure(value) if ext else thaw(value)
    data["steps"] = [_unstructure_step(step) for step in wf.steps]
    return data
