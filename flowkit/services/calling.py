"""The calling convention: how a step's resolved ``input`` becomes a service's arguments."""

from __future__ import annotations

import inspect
import types
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = ["bind_arguments", "prepare_call"]

# --- calling convention ---------------------------------------------------------------------

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class _Signature:
    """What :func:`bind_arguments` needs to know about a callable's parameters."""

    __slots__ = (
        "after_first",
        "is_async",
        "keywords",
        "known",
        "name",
        "positional",
        "required",
        "required_by_keyword",
        "required_positional_only",
        "var_keyword",
    )

    def __init__(self, fn: object, parameters: Sequence[inspect.Parameter] | None) -> None:
        self.name = getattr(fn, "__qualname__", None) or repr(fn)
        self.is_async = inspect.iscoroutinefunction(fn)
        self.known = parameters is not None
        params = list(parameters or ())
        named_positional = [p.name for p in params if p.kind in _POSITIONAL]
        self.positional = bool(named_positional) or any(
            p.kind is inspect.Parameter.VAR_POSITIONAL for p in params
        )
        self.keywords = frozenset(p.name for p in params if p.kind in _KEYWORD)
        self.var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        required = [
            p for p in params if p.default is inspect.Parameter.empty and p.kind not in _VARIADIC
        ]
        self.required = tuple(p.name for p in required)
        # Required positional-only parameters cannot be given by keyword: they stay missing.
        self.required_by_keyword = tuple(p.name for p in required if p.kind in _KEYWORD)
        self.required_positional_only = tuple(p.name for p in required if p.kind not in _KEYWORD)
        first = named_positional[0] if named_positional else None
        self.after_first = tuple(name for name in self.required if name != first)


_function_signatures: weakref.WeakKeyDictionary[Any, _Signature] = weakref.WeakKeyDictionary()
_method_signatures: weakref.WeakKeyDictionary[Any, _Signature] = weakref.WeakKeyDictionary()


def _parameters(fn: Any) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # some builtins have no introspectable signature
        return None


def _signature(fn: Any) -> _Signature:
    kind = type(fn)
    if kind is types.FunctionType:
        found = _function_signatures.get(fn)
        if found is None:
            found = _function_signatures[fn] = _Signature(fn, _parameters(fn))
        return found
    if kind is types.MethodType and type(fn.__func__) is types.FunctionType:
        func = fn.__func__
        found = _method_signatures.get(func)
        if found is None:
            found = _method_signatures[func] = _Signature(fn, _parameters(fn))
        return found
    try:  # classes, callable objects, partials, builtins…
        found = _function_signatures.get(fn)
        if found is None:
            found = _function_signatures[fn] = _Signature(fn, _parameters(fn))
        return found
    except TypeError:  # not weakly referenceable or not hashable: analyse every time
        return _Signature(fn, _parameters(fn))


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _missing(sig: _Signature, missing: Sequence[str], why: str) -> TypeError:
    noun = "argument" if len(missing) == 1 else "arguments"
    return TypeError(f"{sig.name}() is missing required {noun} {_quoted(missing)}{why}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def bind_arguments(fn: Callable[..., Any], value: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The ``(args, kwargs)`` to call ``fn`` with for a step's resolved ``input``.

    - A non-empty mapping becomes keyword arguments when ``fn`` has ``**kwargs``
      or every key names a parameter that accepts a keyword.
    - Otherwise ``value`` is passed as the single positional argument when ``fn``
      takes a positional parameter; an empty mapping is passed that way too.
    - ``fn`` is called without arguments when it takes none, and when ``value``
      is None (or an empty mapping) and ``fn`` requires nothing.

    The analysis of ``fn``'s signature is cached per function (per ``__func__``
    for bound methods).

    Raises:
        TypeError: ``fn`` would be missing required arguments, or it takes no
            argument (or only keywords) and ``value`` cannot be given to it.
    """
    return _bind(_signature(fn), value)


def prepare_call(
    fn: Callable[..., Any], value: Any
) -> tuple[tuple[Any, ...], dict[str, Any], bool]:
    """:func:`bind_arguments`, and whether ``fn`` is a coroutine function, from one
    lookup of its cached signature (a service call asks both).

    Raises:
        TypeError: as :func:`bind_arguments`.
    """
    sig = _signature(fn)
    args, kwargs = _bind(sig, value)
    return args, kwargs, sig.is_async


def _bind(sig: _Signature, value: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if not sig.known:
        return ((), {}) if value is None else ((value,), {})
    if isinstance(value, Mapping):
        if value:
            if sig.var_keyword or value.keys() <= sig.keywords:
                missing = [name for name in sig.required_by_keyword if name not in value]
                missing += sig.required_positional_only
                if missing:
                    keys = _quoted([str(key) for key in value])
                    raise _missing(sig, missing, f" (the input mapping has keys {keys})")
                if sig.var_keyword and not all(isinstance(key, str) for key in value):
                    raise TypeError(f"{sig.name}(): keyword argument names must be str")
                return (), dict(value)
        elif not sig.positional:
            if sig.required:
                raise _missing(sig, sig.required, " (the input mapping is empty)")
            return (), {}
    if value is None and not sig.required:
        return (), {}
    if sig.positional:
        if sig.after_first:
            if isinstance(value, Mapping) and value:
                unknown = [str(key) for key in value if key not in sig.keywords]
                why = (
                    f": the input mapping was passed as one positional argument because "
                    f"its key{'s' if len(unknown) > 1 else ''} {_quoted(unknown)} "
                    f"match{'' if len(unknown) > 1 else 'es'} no parameter"
                )
            else:
                why = f" (the input {_short(value)} fills only the first parameter)"
            raise _missing(sig, sig.after_first, why)
        return (value,), {}
    if sig.required:
        raise _missing(sig, sig.required, " (give the step a mapping input with these keys)")
    if sig.keywords or sig.var_keyword:
        raise TypeError(
            f"{sig.name}() accepts only keyword arguments, but the step's input is "
            f"{_short(value)}: give the step a mapping input"
        )
    raise TypeError(
        f"{sig.name}() takes no arguments, but the step's input is {_short(value)}: "
        "remove the step's input or add a parameter"
    )
