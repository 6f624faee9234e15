"""JSON data as it lives inside definitions: deeply immutable and hashable.

Definitions are frozen and hashable, so JSON values written in a workflow
(`input`, `set`, `result`, condition values…) are stored *frozen*: mappings
become :class:`FrozenDict` and lists become tuples. :func:`thaw` turns them
back into plain ``dict``/``list`` data, which is what ctx and stores hold.
"""

from __future__ import annotations

import math
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from typing import Any, TypeVar

__all__ = ["FrozenDict", "JsonTypeError", "freeze", "is_json", "thaw"]

K = TypeVar("K")
V = TypeVar("V")


class FrozenDict(Mapping[K, V]):
    """An immutable, hashable mapping that keeps insertion order."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(data) if data is not None else {}
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    # The dict's own views: Mapping's would call __getitem__ per key (a step's input
    # is resolved from its FrozenDict on every run).
    def keys(self) -> KeysView[K]:
        return self._data.keys()

    def values(self) -> ValuesView[V]:
        return self._data.values()

    def items(self) -> ItemsView[K, V]:
        return self._data.items()

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"


class JsonTypeError(TypeError):
    """A value is not JSON data; ``path`` says where it is (``a.b[2]``)."""

    def __init__(self, path: str, value: object) -> None:
        self.path = path
        self.value = value
        where = f" at {path}" if path else ""
        super().__init__(
            f"{type(value).__name__} value{where} is not JSON data "
            "(use strings, numbers, booleans, null, lists and mappings with string keys)"
        )


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def freeze(value: Any, path: str = "") -> Any:
    """Return ``value`` as frozen JSON data.

    Raises:
        JsonTypeError: ``value`` holds something that is not JSON data.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise JsonTypeError(path, value)
        return value
    if isinstance(value, Mapping):
        frozen = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise JsonTypeError(_join(path, repr(key)), key)
            frozen[key] = freeze(item, _join(path, key))
        return FrozenDict(frozen)
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item, _join(path, i)) for i, item in enumerate(value))
    raise JsonTypeError(path, value)


def thaw(value: Any) -> Any:
    """Return frozen JSON data as plain ``dict``/``list`` data (a new copy)."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(item) for item in value]
    return value


def is_json(value: Any) -> bool:
    """Whether ``value`` is JSON data (plain or frozen)."""
    try:
        freeze(value)
    except JsonTypeError:
        return False
    return True
