"""Choosing adapters: a store by URL scheme (:func:`connect`), a driver by name.

Built-in adapters and third-party ones are found the same way, through the
``flowkit.stores`` and ``flowkit.executors`` entry points; an adapter's module
(and the library it needs) is imported only when a URL or a name selects it,
and a missing library gives an error naming the extra to install.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from .abc import Driver, Store
from .definitions import did_you_mean
from .errors import ConfigError

__all__ = ["connect", "make_driver", "optional_import", "scheme_of"]


def optional_import(module: str, *, extra: str, purpose: str) -> Any:
    """Import an adapter's optional dependency, or explain which extra installs it.

    Raises:
        ConfigError: the module is not installed.
    """
    try:
        return import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{purpose} needs the '{module}' package: pip install 'flowkit-workflows[{extra}]' "
            f"(or pip install -e '.[{extra}]' from the source tree)"
        ) from exc


# --- choosing an adapter by URL ------------------------------------------------------------------

_BUILTIN_STORES = {
    "memory": "flowkit.backends.memory:MemoryStore",
    "sqlite": "flowkit.backends.sqlalchemy:SQLStore",
    "postgresql": "flowkit.backends.sqlalchemy:SQLStore",
    "postgres": "flowkit.backends.sqlalchemy:SQLStore",
    "mysql": "flowkit.backends.sqlalchemy:SQLStore",
    "mariadb": "flowkit.backends.sqlalchemy:SQLStore",
    "redis": "flowkit.backends.redis:RedisStore",
    "rediss": "flowkit.backends.redis:RedisStore",
    "unix": "flowkit.backends.redis:RedisStore",
}


def scheme_of(url: str) -> str:
    """The adapter-selecting scheme of a URL: ``postgresql+psycopg://…`` → ``postgresql``."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        scheme, sep, _ = url.partition(":")
    if not sep or not scheme:
        raise ConfigError(
            f"not a store URL: {url!r} (expected e.g. 'sqlite:///flowkit.db', "
            "'postgresql+psycopg://host/db', 'redis://localhost:6379/0' or 'memory://')"
        )
    return scheme.split("+", 1)[0].lower()


def _load_adapter(group: str, name: str, builtin: dict[str, str]) -> Callable[..., Any]:
    for point in entry_points(group=group, name=name):
        loaded: Callable[..., Any] = point.load()
        return loaded
    target = builtin.get(name)
    if target is None:
        known = sorted({*builtin, *(point.name for point in entry_points(group=group))})
        raise ConfigError(
            f"no adapter for {name!r} in {group}{did_you_mean(name, known)} "
            f"(known: {', '.join(known)})"
        )
    module_name, _, attr = target.partition(":")
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ConfigError(f"the {name!r} adapter ({module_name}) is not available") from exc
    found: Callable[..., Any] = getattr(module, attr)
    return found


def connect(url: str, **options: Any) -> Store:
    """Open the store a URL names, such as ``sqlite:///runs.db`` or ``redis://localhost/0``.

    Args:
        url: the store URL; its scheme picks the adapter.
        **options: passed to the adapter (e.g. ``prefix=`` for table or key prefixes).

    Raises:
        ConfigError: no adapter handles the scheme, or the adapter's optional
            dependency is not installed (the message names the extra to install).
    """
    factory = _load_adapter("flowkit.stores", scheme_of(url), _BUILTIN_STORES)
    store: Store = factory(url, **options)
    return store


_BUILTIN_DRIVERS = {
    "inline": "flowkit.engine.drivers:InlineDriver",
    "thread": "flowkit.engine.drivers:ThreadDriver",
    "dramatiq": "flowkit.backends.dramatiq:DramatiqDriver",
}


def make_driver(spec: str | Driver) -> Driver:
    """The driver named by ``spec`` (through the ``flowkit.executors`` entry points).

    Raises:
        ConfigError: no driver has that name, or the library it needs is missing.
    """
    if isinstance(spec, Driver):
        return spec
    factory = _load_adapter("flowkit.executors", spec, _BUILTIN_DRIVERS)
    made = factory()
    if not isinstance(made, Driver):
        raise ConfigError(f"executor '{spec}' is a {type(made).__name__}, not a flowkit Driver")
    return made
