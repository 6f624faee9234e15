"""What a service returns, made JSON data (one cattrs converter) and checked against a schema."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import inspect
import json
import math
import uuid
from collections.abc import Mapping, Sequence, Set
from decimal import Decimal
from pathlib import PurePath
from typing import Any

import attrs
import cattrs
import jsonschema
import jsonschema.validators

from ..errors import ExecutionError
from ..frozen import FrozenDict
from ..limits import MAX_DEPTH, format_path

__all__ = ["json_converter", "to_json", "validate_output"]

# --- output conversion ----------------------------------------------------------------------

_OBJECT_HINT = "return dicts, lists, str, numbers, bools, None, or attrs/dataclass instances"
_FINITE_HINT = "JSON has no NaN or infinity"


class _NotJson(Exception):
    """A value is not JSON data; ``path`` collects the keys on the way up (innermost first)."""

    def __init__(self, tail: str) -> None:
        super().__init__(tail)
        self.tail = tail
        self.path: list[str | int] = []


def _not_json(desc: str, hint: str = _OBJECT_HINT) -> _NotJson:
    return _NotJson(f"is {desc}, which is not JSON data ({hint})")


def _a(name: str) -> str:
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def _describe(value: Any) -> _NotJson:
    if isinstance(value, float):
        return _not_json(f"the float {value!r}", _FINITE_HINT)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _not_json(
            f"{_a(type(value).__name__)} object", "decode bytes to str, e.g. with base64"
        )
    if isinstance(value, type):
        return _not_json(f"the class {value.__qualname__}")
    if inspect.isroutine(value):
        return _not_json(f"the function {getattr(value, '__qualname__', value)!r}")
    return _not_json(_a(type(value).__qualname__))


def _decimal(value: Decimal) -> int | float:
    if not value.is_finite():
        raise _not_json(f"Decimal('{value}')", _FINITE_HINT)
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def _iso(value: _dt.date | _dt.time) -> str:
    return value.isoformat()


def _is_record(cls: Any) -> bool:
    return isinstance(cls, type) and (attrs.has(cls) or dataclasses.is_dataclass(cls))


def _record(value: Any) -> dict[str, Any]:
    """attrs/dataclass instances, one level deep: the walker converts the field values.

    This does not need the field annotations, so classes defined in functions or
    with unresolvable string annotations work too.
    """
    cls = type(value)
    fields = attrs.fields(cls) if attrs.has(cls) else dataclasses.fields(value)
    return {field.name: getattr(value, field.name) for field in fields}


json_converter = cattrs.Converter()
"""The one converter that unstructures service results (see :func:`to_json`)."""
json_converter.register_unstructure_hook_func(_is_record, _record)
json_converter.register_unstructure_hook(_dt.datetime, _iso)
json_converter.register_unstructure_hook(_dt.date, _iso)
json_converter.register_unstructure_hook(_dt.time, _iso)
json_converter.register_unstructure_hook(Decimal, _decimal)
json_converter.register_unstructure_hook(uuid.UUID, str)
json_converter.register_unstructure_hook(PurePath, str)
json_converter.register_unstructure_hook(enum.Enum, lambda member: member.value)

_SCALARS = frozenset({str, int, bool, type(None)})
_isfinite = math.isfinite


def _key(key: Any) -> str:
    if isinstance(key, enum.Enum):
        value = key.value
        return str.__str__(value) if isinstance(value, str) else key.name
    if isinstance(key, str):
        return str.__str__(key)
    return _raise_key(key)


def _raise_key(key: Any) -> str:
    raise _NotJson(
        f"has the key {key!r} ({_a(type(key).__name__)}), which is not JSON data "
        "(mapping keys must be str)"
    )


def _collision(key: Any, text: str) -> _NotJson:
    return _NotJson(
        f"has two keys that both become '{text}' ({key!r} is one), so it is not JSON data "
        "(make the keys distinct)"
    )


def _mapping(value: Mapping[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    renamed = False
    for key, item in value.items():
        if type(key) is not str:
            text = _key(key)
            if text in out:
                raise _collision(key, text)
            key, renamed = text, True
        elif renamed and key in out:
            raise _collision(key, key)
        kind = type(item)
        if kind in _SCALARS or (kind is float and _isfinite(item)):
            out[key] = item
        else:
            try:
                out[key] = _walk(item)
            except _NotJson as exc:
                exc.path.append(key)
                raise
    return out


def _sequence(value: Sequence[Any] | Set[Any]) -> list[Any]:
    out = []
    for index, item in enumerate(value):
        kind = type(item)
        if kind in _SCALARS or (kind is float and _isfinite(item)):
            out.append(item)
        else:
            try:
                out.append(_walk(item))
            except _NotJson as exc:
                exc.path.append(index)
                raise
    return out


def _walk(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        return _mapping(value)
    if kind is list:
        return _sequence(value)
    if kind is float:
        if _isfinite(value):
            return value
        raise _describe(value)
    if kind is tuple:
        return _sequence(value)
    return _convert(value)


def _convert(value: Any) -> Any:
    """The slow path: subclasses, sets and everything the cattrs converter knows."""
    if isinstance(value, enum.Enum):
        return _walk(value.value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):  # bool is handled by the fast path
        return int.__int__(value)
    if isinstance(value, float):
        if _isfinite(value):
            return float.__float__(value)
        raise _describe(value)
    if isinstance(value, Mapping):
        return _mapping(value)
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return _sequence(value)
    if isinstance(value, Set):
        items = _sequence(value)
        try:
            return sorted(items)
        except TypeError:  # mixed or unorderable items keep their iteration order
            return items
    try:
        converted = json_converter.unstructure(value)
    except _NotJson:
        raise
    except Exception as exc:
        raise _not_json(_a(type(value).__qualname__), f"converting it failed: {exc}") from exc
    if converted is value or type(converted) is type(value):
        raise _describe(value)
    return _walk(converted)


def to_json(value: Any, where: str) -> Any:
    """Convert what a service returned into JSON data: a new copy with str keys.

    attrs classes and dataclasses become dicts; ``datetime``/``date``/``time``
    ISO-8601 text (naive datetimes stay naive); ``Decimal`` an int when integral,
    else a float; ``UUID`` and ``Path`` str; an ``Enum`` its value; tuples lists;
    sets sorted lists (in iteration order when unorderable); Enum mapping keys
    their str value (else their name). Plain JSON takes a fast path.

    Args:
        value: what the service returned.
        where: who returned it, for messages (``"step 'charge'"``).

    Raises:
        ExecutionError: ``value`` holds something that is not JSON data; the
            message names ``where`` and the path (``output.items[2].price``).
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    try:
        return _walk(value)
    except _NotJson as exc:
        path = format_path("output", exc.path[::-1])
        raise ExecutionError(f"{where}: {path} {exc.tail}") from None
    except RecursionError:
        raise ExecutionError(
            f"{where}: output nests deeper than {MAX_DEPTH} levels of lists and mappings, "
            "or contains itself, so it cannot be stored (flatten the data)"
        ) from None


# --- output schemas -------------------------------------------------------------------------

_MAX_MESSAGE = 200


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON data")


_MAX_VALIDATORS = 512
_validators: dict[str, Any] = {}
# Fast path: the same schema object (definitions are frozen) → its validator. The entry
# keeps the schema alive, so its id cannot be reused while the entry exists.
_validators_by_id: dict[int, tuple[object, Any]] = {}


def _validator(schema: Mapping[str, Any]) -> Any:
    """The compiled validator for ``schema``, cached by the schema's canonical JSON."""
    known = _validators_by_id.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), default=_plain)
    found = _validators.get(canonical)
    if found is None:
        plain = json.loads(json.dumps(schema, default=_plain))  # keeps the author's key order
        cls = jsonschema.validators.validator_for(plain)
        cls.check_schema(plain)
        found = cls(plain)
        if len(_validators) >= _MAX_VALIDATORS:
            _validators.clear()
        _validators[canonical] = found
    if isinstance(schema, FrozenDict):  # immutable: safe to remember by identity
        if len(_validators_by_id) >= _MAX_VALIDATORS:
            _validators_by_id.clear()
        _validators_by_id[id(schema)] = (schema, found)
    return found


def validate_output(value: Any, schema: Mapping[str, Any], where: str) -> None:
    """Check a step's output against a JSON Schema, reporting every mismatch at once.

    The validator is compiled once per schema (keyed by its canonical JSON);
    the draft follows ``$schema`` (2020-12 when absent). ``format`` is an
    annotation only, as the JSON Schema specification defaults to.

    Raises:
        ExecutionError: ``value`` does not match (``step 'x': output does not
            match its schema: total: 'abc' is not of type 'number'; …``), or the
            schema itself is not a valid JSON Schema.
    """
    try:
        validator = _validator(schema)
    except jsonschema.SchemaError as exc:
        raise ExecutionError(f"{where}: the output schema is not valid: {exc.message}") from None
    except (TypeError, ValueError) as exc:
        raise ExecutionError(f"{where}: the output schema is not valid: {exc}") from None
    problems = []
    for error in validator.iter_errors(value):
        message = error.message
        if len(message) > _MAX_MESSAGE:
            message = f"{message[: _MAX_MESSAGE - 3]}..."
        path = format_path("", list(error.absolute_path))
        problems.append(f"{path}: {message}" if path else message)
    if problems:
        raise ExecutionError(f"{where}: output does not match its schema: {'; '.join(problems)}")
