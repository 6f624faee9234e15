"""Services: the Python callables that ``call`` steps invoke, and the boundary around them.

A ``call`` step names a *service* and a *method*. Services live in a
:class:`ServiceRegistry`, filled by :func:`service` / :func:`register_service`,
by ``@wf.step``, or by configuration mapping names to import paths. A name that
is neither registered nor configured is an error: workflow text can never make
flowkit import or call arbitrary Python.

This module also owns the two conversions at the service boundary:
:func:`bind_arguments` turns a step's resolved ``input`` into call arguments,
and :func:`to_json` turns what the service returned into JSON data (with one
cattrs converter), which :func:`validate_output` checks against a JSON Schema.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import enum
import importlib
import inspect
import json
import math
import re
import threading
import types
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from decimal import Decimal
from pathlib import PurePath
from typing import Any, TypeVar, cast, overload

import attrs
import cattrs
import jsonschema
import jsonschema.validators

from ._problems import did_you_mean
from .errors import ConfigError, ExecutionError, NotFoundError
from .frozen import FrozenDict

__all__ = [
    "ServiceRegistry",
    "bind_arguments",
    "default_registry",
    "json_converter",
    "parse_import_path",
    "register_service",
    "service",
    "to_json",
    "validate_output",
]

_T = TypeVar("_T")
_Named = TypeVar("_Named", bound=Callable[..., Any] | types.ModuleType)

# --- import paths ---------------------------------------------------------------------------

_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_IMPORT_PATH = re.compile(rf"({_DOTTED})(?::({_DOTTED}))?")


def parse_import_path(path: object) -> tuple[str, str | None]:
    """Split ``"package.module:attr.sub"`` into ``("package.module", "attr.sub")``.

    A path without ``:`` names a module: ``("package.module", None)``.

    Raises:
        ValueError: ``path`` is not a str of that form.
    """
    match = _IMPORT_PATH.fullmatch(path) if isinstance(path, str) else None
    if match is None:
        raise ValueError(
            f"{path!r} is not an import path (expected 'package.module' or 'package.module:attr')"
        )
    return match.group(1), match.group(2)


def _import(path: str) -> object:
    module_name, attr = parse_import_path(path)
    obj: object = importlib.import_module(module_name)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


# --- the registry ---------------------------------------------------------------------------


class _Functions(dict[str, Callable[..., Any]]):
    """A service made of loose callables: registered functions or a mapping."""


def _is_function(obj: object) -> bool:
    return inspect.isroutine(obj) and not isinstance(obj, type)


def _public(name: str) -> bool:
    return not name.startswith("_")


def _entry_for(name: str, obj: object) -> object:
    """What the registry stores for ``obj``: mappings and functions become namespaces."""
    if not isinstance(name, str):
        raise TypeError(f"a service name must be a str, got {type(name).__name__} {name!r}")
    if not name:
        raise ValueError("a service name must not be empty")
    if _is_function(obj):
        return _Functions({_function_name(obj): cast("Callable[..., Any]", obj)})
    if isinstance(obj, Mapping):
        functions = _Functions()
        for key, item in obj.items():
            if not isinstance(key, str) or not key:
                raise TypeError(
                    f"service '{name}': method names must be non-empty str, got {key!r}"
                )
            if not callable(item):
                raise TypeError(
                    f"service '{name}': method '{key}' must be callable, "
                    f"got {type(item).__name__} {item!r}"
                )
            functions[key] = item
        return functions
    if obj is None:
        raise TypeError(f"service '{name}': cannot register None")
    return obj


def _function_name(fn: object) -> str:
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise TypeError(
            f"cannot register {fn!r} as a method: it has no usable __name__ "
            "(register a mapping {'method': fn} instead)"
        )
    return name


class ServiceRegistry:
    """Maps service names to the objects whose methods ``call`` steps invoke.

    A name is either *registered* (an object given with :meth:`register`) or
    *configured* (an import path given with :meth:`configure`, imported the
    first time the name is resolved). A registered name wins over a configured
    one. All methods are thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._entries: dict[str, object] = {}
        self._paths: dict[str, str] = {}
        self._imported: dict[str, object] = {}

    # -- filling --------------------------------------------------------------------------

    def register(self, name: str, obj: object) -> None:
        """Register ``obj`` as the service ``name``.

        ``obj`` may be a class (instantiated once per call, except for
        classmethods and staticmethods), a module (its public functions; only
        the names in ``__all__`` when it defines one, else only callables
        defined in that module), a mapping of method name to callable, any
        object with methods, or a plain function. A function is *added* to the
        service's function namespace as a method named ``fn.__name__``, so
        several functions can make up one service; any other object replaces
        what was registered under ``name``.

        Raises:
            TypeError: ``name`` is not a str, a mapping holds something that is
                not callable, or a function has no usable ``__name__``.
            ValueError: ``name`` is empty.
        """
        entry = _entry_for(name, obj)
        with self._lock:
            current = self._entries.get(name)
            if type(current) is _Functions and type(entry) is _Functions and _is_function(obj):
                current.update(entry)
            else:
                self._entries[name] = entry

    def unregister(self, name: str) -> None:
        """Forget the registration of ``name`` (its configured path, if any, stays).

        Does nothing when ``name`` is not registered.
        """
        with self._lock:
            self._entries.pop(name, None)

    @contextlib.contextmanager
    def override(self, name: str, obj: object) -> Iterator[None]:
        """Replace the service ``name`` by ``obj`` inside a ``with`` block (for tests).

        Unlike :meth:`register`, a function replaces the whole service (the
        service then has that one method); pass a mapping to stub several
        methods. The previous registration, or its absence, is restored on exit.

        Raises:
            TypeError: as :meth:`register`.
            ValueError: as :meth:`register`.
        """
        entry = _entry_for(name, obj)
        with self._lock:
            previous = self._entries.get(name)
            if type(previous) is _Functions:
                previous = _Functions(previous)
            self._entries[name] = entry
        try:
            yield
        finally:
            with self._lock:
                if previous is None:
                    self._entries.pop(name, None)
                else:
                    self._entries[name] = previous

    def configure(self, paths: Mapping[str, str]) -> None:
        """Map service names to import paths, replacing the previous mapping.

        ``{"OrderService": "shop.services:OrderService", "Shop": "shop.services"}``:
        each path is imported the first time its name is resolved, and only if
        the name is not registered. This is the only way a name leads to an import.

        Raises:
            ConfigError: a name or a path is malformed.
        """
        checked: dict[str, str] = {}
        for name, path in paths.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"services: a service name must be a non-empty str, got {name!r}")
            try:
                parse_import_path(path)
            except ValueError as exc:
                raise ConfigError(f"services.{name}: {exc}") from None
            checked[name] = path
        with self._lock:
            self._imported = {
                name: obj
                for name, obj in self._imported.items()
                if checked.get(name) == self._paths.get(name)
            }
            self._paths = checked

    def names(self) -> list[str]:
        """Every registered or configured service name, sorted."""
        with self._lock:
            return sorted(self._entries.keys() | self._paths.keys())

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._entries or name in self._paths

    # -- lookup ---------------------------------------------------------------------------

    def get(self, name: str) -> object:
        """The object behind the service ``name``, importing a configured path if needed.

        Registered functions and mappings come back as a ``dict`` of callables.

        Raises:
            NotFoundError: the name is neither registered nor configured.
            ConfigError: its configured import path cannot be imported.
        """
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None:
                return entry
            path = self._paths.get(name)
            cached = self._imported.get(name)
        if cached is not None:
            return cached
        if path is None:
            raise NotFoundError(
                f"unknown service '{name}': register it with @flowkit.service('{name}') or "
                f"flowkit.register_service('{name}', obj), or map it in configuration "
                f'(services = {{{name} = "module:attr"}}){did_you_mean(name, self.names())}'
            )
        try:
            obj = _import(path)
            entry = _entry_for(name, obj)
        except Exception as exc:
            raise ConfigError(
                f"service '{name}': cannot import '{path}' (from the services configuration): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        with self._lock:
            registered = self._entries.get(name)  # importing may have registered the name
            if registered is not None:
                return registered
            if self._paths.get(name) == path:
                self._imported[name] = entry
        return entry

    def resolve(self, service: str, method: str) -> Callable[..., Any]:
        """The callable to invoke for ``service.method`` in one call.

        A class is instantiated for each resolve (one instance per call), unless
        ``method`` is a classmethod or staticmethod. Names starting with ``_``
        are never callable.

        Raises:
            NotFoundError: unknown service or method, or a private method name.
            ConfigError: the service's configured import path cannot be imported.
            Exception: whatever a service class's constructor raises propagates.
        """
        if not isinstance(method, str) or not method or not _public(method):
            raise NotFoundError(
                f"service '{service}': method {method!r} cannot be called "
                "(names starting with '_' are private to the service)"
            )
        obj = self.get(service)
        if type(obj) is _Functions:
            found = obj.get(method)
            if found is None:
                raise _no_method(service, method, obj.keys())
            return found
        if isinstance(obj, type):
            return _class_method(obj, service, method)
        if isinstance(obj, types.ModuleType):
            return _module_function(obj, service, method)
        attr = getattr(obj, method, None)
        if attr is None or not callable(attr):
            raise _no_method(service, method, _callable_names(obj), attr)
        return attr  # type: ignore[no-any-return]


def _no_method(
    service: str, method: str, candidates: Iterable[str], found: object = None
) -> NotFoundError:
    if found is not None:
        detail = f" ({method!r} is {_a(type(found).__name__)}, not a method)"
    else:
        detail = did_you_mean(method, [name for name in candidates if _public(name)])
    return NotFoundError(f"service '{service}' has no method '{method}'{detail}")


def _callable_names(obj: object) -> list[str]:
    names = []
    for name in dir(obj):
        if _public(name):
            with contextlib.suppress(Exception):
                if callable(getattr(obj, name)):
                    names.append(name)
    return names


def _class_attr(cls: type, method: str) -> tuple[bool, object]:
    for klass in cls.__mro__:
        if method in vars(klass):
            return True, vars(klass)[method]
    return False, None


def _class_method(cls: type, service: str, method: str) -> Callable[..., Any]:
    found, attr = _class_attr(cls, method)
    if isinstance(attr, (staticmethod, classmethod)):
        return getattr(cls, method)  # type: ignore[no-any-return]
    if not found or not (callable(attr) or hasattr(attr, "__get__")):
        candidates = {
            name
            for klass in cls.__mro__
            for name, value in vars(klass).items()
            if callable(value) or isinstance(value, (staticmethod, classmethod))
        }
        raise _no_method(service, method, sorted(candidates), attr if found else None)
    bound = getattr(cls(), method)
    if not callable(bound):
        raise _no_method(service, method, (), bound)
    return bound  # type: ignore[no-any-return]


def _module_exports(module: types.ModuleType) -> list[str]:
    exported = getattr(module, "__all__", None)
    if exported is not None:
        return [name for name in exported if isinstance(name, str)]
    return [
        name
        for name, value in vars(module).items()
        if callable(value) and getattr(value, "__module__", None) == module.__name__
    ]


def _module_function(module: types.ModuleType, service: str, method: str) -> Callable[..., Any]:
    exports = _module_exports(module)
    attr = getattr(module, method, None) if method in exports else None
    if attr is None or not callable(attr):
        raise _no_method(service, method, exports, attr)
    return attr  # type: ignore[no-any-return]


default_registry = ServiceRegistry()
"""The process-wide registry behind :func:`service` and :func:`register_service`."""


def register_service(name: str, obj: object) -> None:
    """Register ``obj`` as the service ``name`` in the default registry.

    See :meth:`ServiceRegistry.register` for what ``obj`` may be.

    Raises:
        TypeError: ``name`` is not a str or ``obj`` cannot be a service.
        ValueError: ``name`` is empty.
    """
    default_registry.register(name, obj)


@overload
def service(name: _Named, /) -> _Named: ...


@overload
def service(name: str | None = None, /) -> Callable[[_T], _T]: ...


def service(name: Any = None, /) -> Any:
    """Register a class, function or module as a service of the default registry.

    Use ``@service("OrderService")``, or ``@service()`` / ``@service`` to use the
    object's ``__name__``; call it directly on a module: ``service("Shop")(shop)``.
    The object is returned unchanged, so decorated functions stay plain callables.
    Decorating several functions with the same name makes one service with one
    method per function.

    Raises:
        TypeError: no name is given and the object has no ``__name__``.
    """
    if name is not None and not isinstance(name, str):
        return service(None)(name)

    def decorate(obj: _T) -> _T:
        key = name
        if key is None:
            key = getattr(obj, "__name__", None)
            if not isinstance(key, str):
                raise TypeError(f"{obj!r} has no __name__: use @flowkit.service('Name')")
        default_registry.register(key, obj)
        return obj

    return decorate


# --- calling convention ---------------------------------------------------------------------

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class _Signature:
    """What :func:`bind_arguments` needs to know about a callable's parameters."""

    __slots__ = (
        "after_first",
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
    sig = _signature(fn)
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


_SIMPLE_KEY = re.compile(r"[A-Za-z_][\w-]*")


def _format_path(root: str, parts: Sequence[str | int]) -> str:
    text = root
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _SIMPLE_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


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
        path = _format_path("output", exc.path[::-1])
        raise ExecutionError(f"{where}: {path} {exc.tail}") from None
    except RecursionError:
        raise ExecutionError(
            f"{where}: output is nested too deeply or contains itself, so it is not JSON data"
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
        path = _format_path("", list(error.absolute_path))
        problems.append(f"{path}: {message}" if path else message)
    if problems:
        raise ExecutionError(f"{where}: output does not match its schema: {'; '.join(problems)}")
