"""Transform ops: ``map``, ``select``, ``sort``… applied in order to JSON data, never code.

Each op has an argument parser, shared by :func:`check_transform` (before anything runs)
and :func:`apply`, and a runner. Field paths are relative to each element (``""`` or
``"."`` is the element itself); ``$`` references in arguments read the outer scope.

``select``, ``reject`` and ``count`` take a condition ``{field, op, value}`` or, as in
the Ruby gem, a mapping ``{path: value, …}`` that holds when every path equals its
value; ``map`` takes a mapping of output keys to paths, or one path (like ``pluck``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ..errors import FlowkitError
from .conditions import (
    ConditionError,
    check_condition,
    compare,
    describe,
    unknown_op,
)
from .references import Scope, has_references, is_reference, plain, resolve, walk

__all__ = ["TRANSFORM_OPS", "TransformError", "apply", "check_transform"]


class TransformError(FlowkitError):
    """A transform op cannot be applied; the message starts with the op's name.

    Attributes:
        op: the op that failed.
    """

    def __init__(self, op: str, message: str) -> None:
        self.op = op
        super().__init__(message)


class _Problem(Exception):
    """A problem with an op's argument or input; :func:`apply` adds the op's name."""


@attrs.frozen
class _Condition:
    field: str
    op: str
    value: Any

    def holds(self, element: Any, right: Any) -> bool:
        try:
            return compare(self.op, walk(element, self.field), right)
        except ConditionError:
            return False


@attrs.frozen
class _Filter:
    """The argument of ``select``, ``reject`` and ``count``: conditions that must all hold."""

    conditions: tuple[_Condition, ...]

    def test(self, scope: Scope) -> Callable[[Any], bool]:
        """Whether an element passes, with the conditions' values resolved once."""
        pairs = [(condition, resolve(condition.value, scope)) for condition in self.conditions]
        return lambda element: all(condition.holds(element, right) for condition, right in pairs)


@attrs.frozen
class _SortKey:
    by: str
    descending: bool


# --- argument parsers -----------------------------------------------------------------------


def _flag(arg: Any) -> None:
    if arg is not None and arg is not True:
        raise _Problem(f"takes no argument (null or true), got {describe(arg)}")


def _relative(path: str, what: str) -> str:
    if has_references(path):
        raise _Problem(f"{what} {path!r} is relative to each element; write it without '$'")
    return path


def _path(arg: Any) -> str:
    if not isinstance(arg, str):
        raise _Problem(f"needs a field path, got {describe(arg)}")
    return _relative(arg, "field path")


def _optional_path(arg: Any) -> str:
    return "" if arg is None or arg is True else _path(arg)


def _count(minimum: int) -> Callable[[Any], int | None]:
    def parse(arg: Any) -> int | None:
        if arg is None or arg is True:
            return None
        if isinstance(arg, bool) or not isinstance(arg, int) or arg < minimum:
            raise _Problem(f"needs null, true or a whole number of at least {minimum}, got {arg!r}")
        return arg

    return parse


def _shown(arg: Any) -> str:
    return "an empty mapping" if isinstance(arg, Mapping) and not arg else describe(arg)


def _condition(arg: Mapping[str, Any]) -> _Condition:
    unknown = sorted(set(arg) - {"field", "op", "value"})
    if unknown:
        raise _Problem(f"unknown condition key {unknown[0]!r} (expected field, op, value)")
    field, op, value = arg.get("field"), arg.get("op"), arg.get("value")
    if not isinstance(field, str):
        raise _Problem(f"condition 'field' must be a field path, got {describe(field)}")
    if not isinstance(op, str):
        raise _Problem(f"condition 'op' must be a condition op name, got {describe(op)}")
    problems = check_condition(op, value)
    if problems:
        raise _Problem(problems[0])
    return _Condition(_relative(field, "condition field"), op, value)


def _equal(field: Any, value: Any) -> _Condition:
    if not isinstance(field, str):
        raise _Problem(f"key {field!r} must be a field path (a string)")
    return _Condition(_relative(field, "field path"), "eq", value)


def _filter(arg: Any) -> _Filter:
    """A condition ``{field, op, value}``, or the gem's ``{path: value, …}`` (all equal)."""
    if not isinstance(arg, Mapping) or not arg:
        raise _Problem(
            "needs a condition {field, op, value} or a mapping of field paths to values, "
            f"got {_shown(arg)}"
        )
    if "field" in arg or "op" in arg:
        return _Filter((_condition(arg),))
    return _Filter(tuple(_equal(field, value) for field, value in arg.items()))


def _optional_filter(arg: Any) -> _Filter | None:
    return None if arg is None or arg is True else _filter(arg)


def _mapping(arg: Any) -> str | Mapping[str, str]:
    if isinstance(arg, str):
        return _relative(arg, "field path")
    if not isinstance(arg, Mapping) or not arg:
        raise _Problem(
            f"needs a field path or a mapping of output keys to field paths, got {_shown(arg)}"
        )
    for key, path in arg.items():
        if not isinstance(path, str):
            raise _Problem(f"value for {key!r} must be a field path or a reference, got {path!r}")
    return arg


def _sort_key(arg: Any) -> _SortKey:
    if not isinstance(arg, Mapping):
        return _SortKey(_optional_path(arg), descending=False)
    unknown = sorted(set(arg) - {"by", "order"})
    if unknown:
        raise _Problem(f"unknown key {unknown[0]!r} (expected by, order)")
    order = arg.get("order", "asc")
    if order not in ("asc", "desc"):
        raise _Problem(f"unknown order {order!r} (expected 'asc' or 'desc')")
    return _SortKey(_optional_path(arg.get("by")), descending=order == "desc")


def _keys(arg: Any) -> tuple[str, ...]:
    if isinstance(arg, str):
        return (arg,)
    if isinstance(arg, (list, tuple)) and all(isinstance(key, str) for key in arg):
        return tuple(arg)
    raise _Problem(f"needs a key or a list of keys, got {describe(arg)}")


def _merge_arg(arg: Any) -> Any:
    if arg is None or isinstance(arg, Mapping):
        return arg
    if is_reference(arg):
        return arg
    raise _Problem(f"needs a mapping or a reference to one, got {arg!r}")


# --- input checks ---------------------------------------------------------------------------


def _list(data: Any, expected: str = "a list") -> Sequence[Any]:
    if not isinstance(data, (list, tuple)):
        raise _Problem(f"expected {expected}, got {describe(data)}")
    return data


def _dict(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise _Problem(f"expected a dict, got {describe(data)}")
    return data


def _not_dict(index: int, element: Any) -> _Problem:
    return _Problem(f"element {index} is {describe(element)}, not a dict")


# --- runners --------------------------------------------------------------------------------


def _map(data: Any, arg: str | Mapping[str, str], scope: Scope) -> list[Any]:
    if isinstance(arg, str):
        return _pluck(data, arg, scope)
    constants = {key: resolve(path, scope) for key, path in arg.items() if has_references(path)}
    return [
        {
            key: constants[key] if key in constants else walk(element, path)
            for key, path in arg.items()
        }
        for element in _list(data)
    ]


def _keeping(keep: bool) -> Callable[[Any, _Filter, Scope], list[Any]]:
    def run(data: Any, arg: _Filter, scope: Scope) -> list[Any]:
        test = arg.test(scope)
        return [element for element in _list(data) if test(element) is keep]

    return run


def _pluck(data: Any, path: str, _scope: Scope) -> list[Any]:
    return [walk(element, path) for element in _list(data)]


def _first(data: Any, count: int | None, _scope: Scope) -> Any:
    items = _list(data)
    if count is None:
        return items[0] if items else None
    return list(items[:count])


def _last(data: Any, count: int | None, _scope: Scope) -> Any:
    items = _list(data)
    if count is None:
        return items[-1] if items else None
    return list(items[len(items) - count :]) if count else []


def _flatten_into(out: list[Any], items: Sequence[Any], depth: int) -> None:
    for item in items:
        if depth > 0 and isinstance(item, (list, tuple)):
            _flatten_into(out, item, depth - 1)
        else:
            out.append(item)


def _flatten(data: Any, depth: int | None, _scope: Scope) -> list[Any]:
    out: list[Any] = []
    _flatten_into(out, _list(data), 1 if depth is None else depth)
    return out


def _compact(data: Any, _arg: None, _scope: Scope) -> Any:
    if isinstance(data, Mapping):
        return {key: value for key, value in data.items() if value is not None}
    return [element for element in _list(data, "a list or dict") if element is not None]


def _canonical(value: Any) -> Any:
    """A hashable form of JSON data: equal forms mean JSON-equal values (``1`` is not ``True``)."""
    if isinstance(value, Mapping):
        return ("dict", frozenset((key, _canonical(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_canonical(item) for item in value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ("number", value)
    return value


def _uniq(data: Any, path: str, _scope: Scope) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for element in _list(data):
        key = _canonical(walk(element, path))
        if key not in seen:
            seen.add(key)
            out.append(element)
    return out


def _reverse(data: Any, _arg: None, _scope: Scope) -> Any:
    if isinstance(data, str):
        return data[::-1]
    return list(reversed(_list(data, "a list or str")))


def _sort_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "str"
    raise _Problem(f"cannot order {describe(value)}")


def _sort(data: Any, key: _SortKey, _scope: Scope) -> list[Any]:
    keyed = [(walk(element, key.by), element) for element in _list(data)]
    present = [pair for pair in keyed if pair[0] is not None]
    kinds = sorted({_sort_kind(value) for value, _ in present})
    if len(kinds) > 1:
        raise _Problem(f"cannot order {' and '.join(kinds)} values together")
    present.sort(key=lambda pair: pair[0], reverse=key.descending)
    return [element for _, element in present] + [
        element for value, element in keyed if value is None
    ]


def _count_run(data: Any, arg: _Filter | None, scope: Scope) -> int:
    if arg is not None:
        test = arg.test(scope)
        return sum(1 for element in _list(data) if test(element))
    if isinstance(data, (list, tuple, Mapping, str)):
        return len(data)
    raise _Problem(f"expected a list, dict or str, got {describe(data)}")


def _sum(data: Any, path: str, _scope: Scope) -> int | float:
    total: int | float = 0
    for index, element in enumerate(_list(data)):
        value = walk(element, path)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            where = f"element {index}" + (f" field {path!r}" if path not in ("", ".") else "")
            raise _Problem(f"{where} is {describe(value)}, not a number")
        total += value
    return total


def _keys_run(data: Any, _arg: None, _scope: Scope) -> list[str]:
    return list(_dict(data))


def _values(data: Any, _arg: None, _scope: Scope) -> list[Any]:
    return list(_dict(data).values())


def _each_dict(
    data: Any, function: Callable[[Mapping[str, Any]], dict[str, Any]]
) -> dict[str, Any] | list[dict[str, Any]]:
    if isinstance(data, Mapping):
        return function(data)
    out = []
    for index, element in enumerate(_list(data, "a dict or a list of dicts")):
        if not isinstance(element, Mapping):
            raise _not_dict(index, element)
        out.append(function(element))
    return out


def _pick(data: Any, keys: tuple[str, ...], _scope: Scope) -> Any:
    return _each_dict(data, lambda item: {key: item[key] for key in keys if key in item})


def _omit(data: Any, keys: tuple[str, ...], _scope: Scope) -> Any:
    return _each_dict(data, lambda item: {k: v for k, v in item.items() if k not in keys})


def _merge(data: Any, arg: Any, scope: Scope) -> dict[str, Any]:
    if arg is None:
        merged: dict[str, Any] = {}
        for index, element in enumerate(_list(data, "a list of dicts")):
            if not isinstance(element, Mapping):
                raise _not_dict(index, element)
            merged.update(element)
        return merged
    extra = resolve(arg, scope)
    if not isinstance(extra, Mapping):
        raise _Problem(f"{arg!r} resolved to {describe(extra)}, not a dict")
    return {**_dict(data), **extra}


_Parser = Callable[[Any], Any]
_Runner = Callable[[Any, Any, Scope], Any]

_OPS: dict[str, tuple[_Parser, _Runner]] = {
    "map": (_mapping, _map),
    "select": (_filter, _keeping(keep=True)),
    "reject": (_filter, _keeping(keep=False)),
    "pluck": (_path, _pluck),
    "first": (_count(0), _first),
    "last": (_count(0), _last),
    "flatten": (_count(1), _flatten),
    "compact": (_flag, _compact),
    "uniq": (_optional_path, _uniq),
    "reverse": (_flag, _reverse),
    "sort": (_sort_key, _sort),
    "count": (_optional_filter, _count_run),
    "sum": (_optional_path, _sum),
    "keys": (_flag, _keys_run),
    "values": (_flag, _values),
    "pick": (_keys, _pick),
    "omit": (_keys, _omit),
    "merge": (_merge_arg, _merge),
}

TRANSFORM_OPS: frozenset[str] = frozenset(_OPS)


def apply(data: Any, ops: Sequence[tuple[str, Any]], scope: Scope) -> Any:
    """Apply ``ops`` in order to ``data`` (not changed) and return new plain JSON data.

    Raises:
        TransformError: an op is unknown, its argument has the wrong shape, or its input
            has the wrong type; the message starts with the op's name.
    """
    result = data
    for op, arg in ops:
        entry = _OPS.get(op)
        if entry is None:
            raise TransformError(op, unknown_op("transform", op, TRANSFORM_OPS))
        parse, run = entry
        try:
            result = run(result, parse(arg), scope)
        except _Problem as exc:
            raise TransformError(op, f"{op}: {exc}") from None
    return plain(result)


def check_transform(op: str, arg: Any) -> list[str]:
    """Return the problems visible before running transform ``op`` with ``arg``."""
    entry = _OPS.get(op)
    if entry is None:
        return [unknown_op("transform", op, TRANSFORM_OPS)]
    try:
        entry[0](arg)
    except _Problem as exc:
        return [f"{op}: {exc}"]
    return []
