"""Settings: which store, executor and broker to use, and where services and workflows live.

Each setting comes from the first of these that sets it:

1. :func:`configure` (process-wide overrides, kept until :func:`reset`);
2. the environment: ``FLOWKIT_STORE``, ``FLOWKIT_EXECUTOR``, ``FLOWKIT_BROKER``,
   ``FLOWKIT_LEASE_SECONDS``, ``FLOWKIT_MAX_RECOVERIES``, ``FLOWKIT_RETENTION``,
   ``FLOWKIT_RETENTION_INTERVAL`` (empty variables are ignored);
3. a configuration file, found by walking up from the working directory: in
   each directory a ``flowkit.toml`` (top-level keys) wins over a
   ``pyproject.toml`` with a ``[tool.flowkit]`` table; a ``pyproject.toml``
   without that table does not stop the search;
4. the defaults of :class:`Settings`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from .definitions import did_you_mean, seconds
from .errors import ConfigError
from .frozen import FrozenDict
from .services import parse_import_path

__all__ = [
    "ENV_VARS",
    "Settings",
    "configure",
    "find_config_file",
    "on_change",
    "reset",
    "settings",
]

_log = logging.getLogger("flowkit")

DEFAULT_STORE = "sqlite:///flowkit.db"

ENV_VARS: Mapping[str, str] = FrozenDict(
    {
        "store": "FLOWKIT_STORE",
        "executor": "FLOWKIT_EXECUTOR",
        "broker": "FLOWKIT_BROKER",
        "lease_seconds": "FLOWKIT_LEASE_SECONDS",
        "max_recoveries": "FLOWKIT_MAX_RECOVERIES",
        "retention": "FLOWKIT_RETENTION",
        "retention_interval": "FLOWKIT_RETENTION_INTERVAL",
    }
)
"""Setting name → the environment variable that sets it."""


# --- checking values ------------------------------------------------------------------------


class _Bad(Exception):
    """A value does not fit its setting; ``key`` may name a part (``services.Shop``)."""

    def __init__(self, expected: str, value: Any, key: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.value = value
        self.key = key


def _kind(value: Any) -> str:
    names = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "nothing",
        list: "a list",
        tuple: "a list",
        dict: "a table",
    }
    return names.get(type(value), f"a {type(value).__name__}")


def _url(value: Any, expected: str) -> str:
    if not isinstance(value, str) or "://" not in value:
        raise _Bad(expected, value)
    return value


def _store(value: Any) -> str:
    return _url(value, "a store URL such as 'sqlite:///flowkit.db' or 'redis://localhost:6379/0'")


def _broker(value: Any) -> str | None:
    if value is None:
        return None
    return _url(value, "a broker URL such as 'redis://localhost:6379/0' or 'amqp://localhost'")


def _executor(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad("an executor name such as 'inline', 'thread' or 'dramatiq'", value)
    return value


def _services(value: Any) -> FrozenDict[str, str]:
    expected = "a table of service names to import paths ('package.module:attr')"
    if not isinstance(value, Mapping):
        raise _Bad(expected, value)
    for name, path in value.items():
        if not isinstance(name, str) or not name:
            raise _Bad("a non-empty service name", name, "services")
        try:
            parse_import_path(path)
        except ValueError:
            raise _Bad(
                "an import path such as 'package.module:attr' or 'package.module'",
                path,
                f"services.{name}",
            ) from None
    return value if isinstance(value, FrozenDict) else FrozenDict(value)


def _strings(value: Any, key: str, expected: str, check: Callable[[str], bool]) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise _Bad(expected, value)
    for index, item in enumerate(items):
        if not isinstance(item, str) or not check(item):
            raise _Bad(expected, item, f"{key}[{index}]")
    return tuple(items)


def _is_path(entry: str) -> bool:
    """Whether a ``workflows`` entry is a file path or glob (else a ``module[:attr]`` name)."""
    return (
        any(char in entry for char in "/\\*?[")
        or entry.endswith((".yml", ".yaml"))
        or entry in (".", "..")
    )


def _importable(entry: str) -> bool:
    try:
        parse_import_path(entry)
    except ValueError:
        return False
    return True


def _workflows(value: Any) -> tuple[str, ...]:
    return _strings(
        value,
        "workflows",
        "a list of YAML paths or globs ('flows/*.yml') and 'module' or 'module:attr' names",
        lambda entry: _is_path(entry) or _importable(entry),
    )


def _imports(value: Any) -> tuple[str, ...]:
    return _strings(
        value,
        "imports",
        "a list of module names ('shop.services')",
        lambda entry: _importable(entry) and ":" not in entry,
    )


def _lease_seconds(value: Any) -> float:
    expected = "a positive number of seconds"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(expected, value)
    if not math.isfinite(value) or value <= 0:
        raise _Bad(expected, value)
    return float(value)


def _max_recoveries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Bad("a positive integer", value)
    return value


_DURATION = "a duration such as '30d', '12h' or 'P30D' (or a number of seconds)"


def _duration(value: Any) -> float:
    try:
        duration = seconds(value)
    except ValueError:
        raise _Bad(_DURATION, value) from None
    if duration <= 0:
        raise _Bad(f"longer than zero: {_DURATION}", value)
    return float(duration)


def _retention(value: Any) -> float | None:
    return None if value is None else _duration(value)


def _store_options(value: Any) -> FrozenDict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise _Bad("a table of options for the store adapter", value)
    return value if isinstance(value, FrozenDict) else FrozenDict(value)


def _dashboard_users(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise _Bad("the path of a file of name:hash lines", value)
    return value


def _source(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _Bad("a string or None", value)
    return value


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "store": _store,
    "executor": _executor,
    "broker": _broker,
    "services": _services,
    "workflows": _workflows,
    "imports": _imports,
    "lease_seconds": _lease_seconds,
    "max_recoveries": _max_recoveries,
    "retention": _retention,
    "retention_interval": _duration,
    "store_options": _store_options,
    "dashboard_users": _dashboard_users,
}
SETTING_NAMES = tuple(_CHECKS)


def _normalize(key: str, value: Any, origin: str) -> Any:
    """``value`` checked and normalized for setting ``key``; errors name ``origin``."""
    check: Callable[[Any], Any] = _CHECKS.get(key, _source)
    try:
        return check(value)
    except _Bad as bad:
        raise ConfigError(
            f"{origin}: '{bad.key or key}' must be {bad.expected}, "
            f"got {_kind(bad.value)} {bad.value!r}"
        ) from None


# Named functions, so that mypy's attrs plugin can read the converters' types.
def _to_store(value: Any) -> str:
    return _normalize("store", value, "Settings")  # type: ignore[no-any-return]


def _to_executor(value: Any) -> str:
    return _normalize("executor", value, "Settings")  # type: ignore[no-any-return]


def _to_broker(value: Any) -> str | None:
    return _normalize("broker", value, "Settings")  # type: ignore[no-any-return]


def _to_services(value: Any) -> Mapping[str, str]:
    return _normalize("services", value, "Settings")  # type: ignore[no-any-return]


def _to_workflows(value: Any) -> tuple[str, ...]:
    return _normalize("workflows", value, "Settings")  # type: ignore[no-any-return]


def _to_imports(value: Any) -> tuple[str, ...]:
    return _normalize("imports", value, "Settings")  # type: ignore[no-any-return]


def _to_lease_seconds(value: Any) -> float:
    return _normalize("lease_seconds", value, "Settings")  # type: ignore[no-any-return]


def _to_max_recoveries(value: Any) -> int:
    return _normalize("max_recoveries", value, "Settings")  # type: ignore[no-any-return]


def _to_retention(value: Any) -> float | None:
    return _normalize("retention", value, "Settings")  # type: ignore[no-any-return]


def _to_retention_interval(value: Any) -> float:
    return _normalize("retention_interval", value, "Settings")  # type: ignore[no-any-return]


def _to_store_options(value: Any) -> Mapping[str, Any]:
    return _normalize("store_options", value, "Settings")  # type: ignore[no-any-return]


def _to_dashboard_users(value: Any) -> str | None:
    return _normalize("dashboard_users", value, "Settings")  # type: ignore[no-any-return]


def _to_source(value: Any) -> str | None:
    return _normalize("source", value, "Settings")  # type: ignore[no-any-return]


@attrs.frozen(kw_only=True)
class Settings:
    """The effective configuration (see :func:`settings`).

    Attributes:
        store: the store URL (``sqlite:///flowkit.db``, ``redis://…``, ``memory://``).
        executor: ``inline``, ``thread``, ``dramatiq`` or an executor from an entry point.
        broker: the broker URL for distributed executors, or None.
        services: service name → import path (``"shop.services:OrderService"``),
            imported the first time a step calls that service.
        workflows: YAML paths/globs and ``module`` / ``module:attr`` names where
            workflows are found; paths from a file are relative to its directory.
        imports: modules to import so that they register services and workflows.
        lease_seconds: how long a process owns an execution it advances.
        max_recoveries: how many times ``recover`` takes over an execution whose
            step never reached its next checkpoint before it fails the execution.
        retention: how long finished executions are kept, in seconds (given
            as a duration such as ``"30d"``); workers prune older ones. None
            (the default) keeps them forever.
        retention_interval: how often a worker process prunes, at most
            (default one hour).
        store_options: passed to the store adapter (pool settings, ``prefix``…).
        dashboard_users: a file of ``name:hash`` lines, the users who may sign in
            to ``flowkit dashboard`` (``FLOWKIT_DASHBOARD_USERS`` wins over it).
        source: the file the file-level settings came from, or None.

    Raises:
        ConfigError: a value has the wrong type or form.
    """

    store: str = attrs.field(default=DEFAULT_STORE, converter=_to_store)
    executor: str = attrs.field(default="inline", converter=_to_executor)
    broker: str | None = attrs.field(default=None, converter=_to_broker)
    services: Mapping[str, str] = attrs.field(factory=FrozenDict, converter=_to_services)
    workflows: tuple[str, ...] = attrs.field(default=(), converter=_to_workflows)
    imports: tuple[str, ...] = attrs.field(default=(), converter=_to_imports)
    lease_seconds: float = attrs.field(default=30.0, converter=_to_lease_seconds)
    max_recoveries: int = attrs.field(default=5, converter=_to_max_recoveries)
    retention: float | None = attrs.field(default=None, converter=_to_retention)
    retention_interval: float = attrs.field(default=3600.0, converter=_to_retention_interval)
    store_options: Mapping[str, Any] = attrs.field(
        factory=FrozenDict, converter=_to_store_options, hash=False
    )
    dashboard_users: str | None = attrs.field(default=None, converter=_to_dashboard_users)
    source: str | None = attrs.field(default=None, converter=_to_source)


# --- configuration files --------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from None


def find_config_file(cwd: Path | None = None) -> tuple[Path, str, Mapping[str, Any]] | None:
    """The nearest configuration file, walking up from ``cwd`` (default: the working directory).

    Returns:
        ``(path, origin, table)``: the file, how messages name it (``…/pyproject.toml
        [tool.flowkit]``) and its flowkit table; None when there is none.

    Raises:
        ConfigError: a file on the way is not valid TOML, or ``[tool.flowkit]``
            is not a table.
    """
    start = Path(os.path.abspath(Path.cwd() if cwd is None else cwd))
    for directory in (start, *start.parents):
        candidate = directory / "flowkit.toml"
        if candidate.is_file():
            return candidate, str(candidate), _read_toml(candidate)
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            tool = _read_toml(candidate).get("tool")
            table = tool.get("flowkit") if isinstance(tool, dict) else None
            if table is None:
                continue
            origin = f"{candidate} [tool.flowkit]"
            if not isinstance(table, dict):
                raise ConfigError(f"{origin}: must be a table, got {_kind(table)} {table!r}")
            return candidate, origin, table
    return None


def _file_settings(cwd: Path) -> tuple[dict[str, Any], str | None]:
    found = find_config_file(cwd)
    if found is None:
        return {}, None
    path, origin, table = found
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _CHECKS:
            raise ConfigError(
                f"{origin}: unknown key '{key}'{did_you_mean(key, SETTING_NAMES)} "
                f"(known keys: {', '.join(SETTING_NAMES)})"
            )
        values[key] = _normalize(key, value, origin)
    store = values.get("store")
    if isinstance(store, str) and store.startswith("sqlite:///") and store[10:11] not in ("", "/"):
        # A relative SQLite file in a configuration file is next to that file.
        values["store"] = f"sqlite:///{path.parent / store[10:]}"
    users = values.get("dashboard_users")
    if users is not None and not Path(users).is_absolute():
        values["dashboard_users"] = str(path.parent / users)  # next to the file, too
    if "workflows" in values:
        base = path.parent
        values["workflows"] = tuple(
            str(base / entry) if _is_path(entry) and not Path(entry).is_absolute() else entry
            for entry in values["workflows"]
        )
    return values, origin


def _env_settings(env: Mapping[str, str | None]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, var in ENV_VARS.items():
        text = env.get(var)
        if text:
            value: Any = text
            if key == "lease_seconds":
                with contextlib.suppress(ValueError):
                    value = float(text)
            elif key == "max_recoveries":
                with contextlib.suppress(ValueError):
                    value = int(text)
            elif key in ("retention", "retention_interval"):
                with contextlib.suppress(ValueError):
                    value = float(text)  # else a duration with a unit
            values[key] = _normalize(key, value, f"environment variable {var}")
    return values


# --- the process-wide state -----------------------------------------------------------------

_lock = threading.RLock()
_overrides: dict[str, Any] = {}
_cached: tuple[tuple[Any, ...], Settings] | None = None
_last: Settings | None = None
_listeners: list[Callable[[], None]] = []


def _notify() -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener()
        except Exception:  # a failing listener must not break configuration
            _log.exception("a settings listener failed")


def settings(cwd: Path | None = None) -> Settings:
    """The effective settings: :func:`configure`, then environment, then file, then defaults.

    The result is cached until :func:`configure` or :func:`reset` is called, an
    environment variable changes, or another ``cwd`` is asked for. Files are
    read again only then.

    Args:
        cwd: where the search for a configuration file starts (default: the
            working directory).

    Raises:
        ConfigError: an environment variable or the configuration file holds a
            bad value or an unknown key, or the file is not valid TOML.
    """
    global _cached, _last
    where = os.path.abspath(Path.cwd() if cwd is None else cwd)
    env = {var: os.environ.get(var) for var in ENV_VARS.values()}
    with _lock:
        key = (where, tuple(env.values()))
        if _cached is not None and _cached[0] == key:
            return _cached[1]
        file_values, origin = _file_settings(Path(where))
        merged = {**file_values, **_env_settings(env), **_overrides}
        result = Settings(**merged, source=origin)
        changed = _last is not None and _last != result
        _cached, _last = (key, result), result
    if changed:
        _notify()
    return result


def configure(**kwargs: Any) -> Settings:
    """Set process-wide settings, which win over environment variables and files.

    Successive calls accumulate; passing None for a setting drops its
    override. ``configure()`` without arguments changes nothing and returns the
    current settings. Listeners registered with :func:`on_change` are called
    when anything was passed.

    Args:
        **kwargs: any of ``store``, ``executor``, ``broker``, ``services``,
            ``workflows``, ``imports``, ``lease_seconds``, ``max_recoveries``,
            ``retention``, ``retention_interval`` and ``store_options``, as
            described in :class:`Settings`.

    Returns:
        The effective settings after the change.

    Raises:
        ConfigError: an unknown setting name or a bad value (or, when computing
            the result, a bad environment variable or configuration file).
    """
    for key in kwargs:
        if key not in _CHECKS:
            raise ConfigError(
                f"flowkit.configure(): unknown setting '{key}'{did_you_mean(key, SETTING_NAMES)} "
                f"(settings: {', '.join(SETTING_NAMES)})"
            )
    checked = {
        key: _normalize(key, value, "flowkit.configure()")
        for key, value in kwargs.items()
        if value is not None
    }
    if kwargs:
        global _cached, _last
        with _lock:
            for key, value in kwargs.items():
                if value is None:
                    _overrides.pop(key, None)
                else:
                    _overrides[key] = checked[key]
            _cached = _last = None  # listeners are told here, not again by settings()
        _notify()
    return settings()


def reset() -> None:
    """Drop every :func:`configure` override and the cached settings (for tests).

    Listeners stay registered and are called.
    """
    global _cached, _last
    with _lock:
        _overrides.clear()
        _cached = None
        _last = None
    _notify()


def on_change(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback()`` whenever the settings may have changed.

    That is on :func:`configure` with arguments, on :func:`reset`, and when
    :func:`settings` finds different values than it last returned (an
    environment variable or the working directory changed). Exceptions raised
    by ``callback`` are logged and ignored.

    Returns:
        A function that unregisters ``callback``.
    """
    with _lock:
        _listeners.append(callback)

    def remove() -> None:
        with _lock:
            if callback in _listeners:
                _listeners.remove(callback)

    return remove
