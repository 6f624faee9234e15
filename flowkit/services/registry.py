"""Services: the Python callables that ``call`` steps invoke, found by name in a registry.

A ``call`` step names a *service* and a *method*. Services live in a
:class:`ServiceRegistry`, filled by :func:`service` / :func:`register_service`,
by ``@wf.step``, or by configuration mapping names to import paths. A name that
is neither registered nor configured is an error: workflow text can never make
flowkit import or call arbitrary Python.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
import threading
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar, cast, overload

from ..definitions import did_you_mean
from ..errors import ConfigError, NotFoundError

__all__ = [
    "ServiceRegistry",
    "default_registry",
    "parse_import_path",
    "register_service",
    "service",
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
        entry = self._entries.get(name)  # one dict read is atomic: no lock for the usual case
        if entry is not None:
            return entry
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


def _a(name: str) -> str:
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


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
