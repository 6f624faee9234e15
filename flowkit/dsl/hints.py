"""Checking a ``@wf.step`` function's arguments against its type hints when a step calls it."""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["checked"]

F = TypeVar("F", bound=Callable[..., Any])


def checked(fn: F, where: str) -> F:
    """``fn`` wrapped to check its arguments against its type hints when a step calls it."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: nothing to check against
        return fn
    signature = inspect.signature(fn)
    checks = {
        name: hint
        for name, hint in hints.items()
        if name != "return" and name in signature.parameters and _checkable(hint)
    }
    if not checks:
        return fn

    def verify(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        bound = signature.bind_partial(*args, **kwargs)
        problems = []
        for name, value in bound.arguments.items():
            hint = checks.get(name)
            if hint is not None and not _matches(value, hint):
                problems.append(
                    f"parameter '{name}' expects {_hint_name(hint)}, got "
                    f"{type(value).__name__} {value!r:.60}"
                )
        if problems:
            raise TypeError(f"{where}: {'; '.join(problems)}")

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def checked_async(*args: Any, **kwargs: Any) -> Any:
            verify(args, kwargs)
            return await fn(*args, **kwargs)

        return checked_async  # type: ignore[return-value]

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        verify(args, kwargs)
        return fn(*args, **kwargs)

    return checked  # type: ignore[return-value]


_SIMPLE = (str, int, float, bool, list, dict, tuple, type(None))


def _checkable(hint: Any) -> bool:
    if hint in _SIMPLE:
        return True
    origin = typing.get_origin(hint)
    if origin in (list, dict, tuple):
        return True
    if origin in (typing.Union, types.UnionType):
        return all(_checkable(arg) for arg in typing.get_args(hint))
    return False


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    target = origin or hint
    if target is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if target is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if target in (list, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, target)


def _hint_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
