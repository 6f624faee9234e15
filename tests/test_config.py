"""Settings: precedence, configuration files, bad values and change notification."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowkit import config as _config
from flowkit.config import ENV_VARS, Settings, configure, on_change, reset, settings
from flowkit.errors import ConfigError
from flowkit.frozen import FrozenDict


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test starts in an empty directory, with no FLOWKIT_* variables and no overrides."""
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    reset()
    yield project
    reset()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults() -> None:
    current = settings()
    assert current == Settings()
    assert current.store == "sqlite:///flowkit.db"
    assert current.executor == "inline"
    assert current.broker is None
    assert current.lease_seconds == 30.0
    assert current.services == {}
    assert current.workflows == ()
    assert current.imports == ()
    assert current.store_options == {}
    assert current.source is None
    hash(current)


# --- precedence -----------------------------------------------------------------------------

LEVELS = ("file", "env", "configure")


@pytest.mark.parametrize(
    ("levels", "winner"),
    [
        ((), "default"),
        (("file",), "file"),
        (("env",), "env"),
        (("configure",), "configure"),
        (("file", "env"), "env"),
        (("env", "configure"), "configure"),
        (("file", "configure"), "configure"),
        (("file", "env", "configure"), "configure"),
    ],
)
@pytest.mark.parametrize(
    ("key", "values"),
    [
        (
            "store",
            {
                "default": "sqlite:///flowkit.db",
                "file": "sqlite:////srv/flowkit/file.db",
                "env": "redis://env:6379/0",
                "configure": "memory://",
            },
        ),
        ("executor", {"default": "inline", "file": "thread", "env": "dramatiq", "configure": "x"}),
        (
            "broker",
            {"default": None, "file": "redis://f", "env": "amqp://e", "configure": "redis://c"},
        ),
        ("lease_seconds", {"default": 30.0, "file": 1.5, "env": 2.5, "configure": 3.5}),
        ("max_recoveries", {"default": 5, "file": 2, "env": 3, "configure": 4}),
        ("retention", {"default": None, "file": "30d", "env": "7d", "configure": "1h"}),
        ("retention_interval", {"default": 3600.0, "file": 60, "env": 90, "configure": "5m"}),
    ],
)
def test_each_level_beats_the_next(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    key: str,
    values: dict[str, Any],
    levels: tuple[str, ...],
    winner: str,
) -> None:
    if "file" in levels:
        value = values["file"]
        literal = f'"{value}"' if isinstance(value, str) else repr(value)
        write(isolated / "pyproject.toml", f"[tool.flowkit]\n{key} = {literal}\n")
    if "env" in levels:
        monkeypatch.setenv(ENV_VARS[key], str(values["env"]))
    if "configure" in levels:
        configure(**{key: values["configure"]})
    # Compared as the setting holds it (a duration such as "30d" is held in seconds).
    assert getattr(settings(), key) == getattr(Settings(**{key: values[winner]}), key)


def test_a_relative_sqlite_file_in_a_config_file_is_next_to_that_file(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(isolated / "flowkit.toml", 'store = "sqlite:///runs.db"\n')
    (isolated / "sub").mkdir()
    monkeypatch.chdir(isolated / "sub")
    assert settings().store == f"sqlite:///{isolated / 'runs.db'}"


def test_settings_from_a_file_are_combined_with_the_others(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        isolated / "pyproject.toml",
        """
        [project]
        name = "shop"

        [tool.flowkit]
        store = "sqlite:///shop.db"
        executor = "thread"
        imports = ["shop.services"]
        lease_seconds = 10

        [tool.flowkit.services]
        OrderService = "shop.services:OrderService"

        [tool.flowkit.store_options]
        pool_size = 5
        """,
    )
    monkeypatch.setenv("FLOWKIT_EXECUTOR", "dramatiq")
    monkeypatch.setenv("FLOWKIT_BROKER", "")  # empty variables are ignored
    configure(broker="redis://localhost:6379/1")
    current = settings()
    assert current == Settings(
        store=f"sqlite:///{isolated / 'shop.db'}",
        executor="dramatiq",
        broker="redis://localhost:6379/1",
        services={"OrderService": "shop.services:OrderService"},
        imports=("shop.services",),
        lease_seconds=10.0,
        store_options={"pool_size": 5},
        source=f"{isolated / 'pyproject.toml'} [tool.flowkit]",
    )
    assert type(current.lease_seconds) is float


# --- finding the file -----------------------------------------------------------------------


def test_flowkit_toml_wins_over_pyproject_in_the_same_directory(isolated: Path) -> None:
    write(isolated / "pyproject.toml", '[tool.flowkit]\nstore = "sqlite:///pyproject.db"\n')
    write(isolated / "flowkit.toml", 'store = "sqlite:///flowkit-toml.db"\n')
    current = settings()
    assert current.store == f"sqlite:///{isolated / 'flowkit-toml.db'}"
    assert current.source == str(isolated / "flowkit.toml")


def test_the_nearest_file_wins(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated / "flowkit.toml", 'store = "sqlite:///outer.db"\n')
    inner = isolated / "packages" / "inner"
    write(inner / "pyproject.toml", '[tool.flowkit]\nstore = "sqlite:///inner.db"\n')
    monkeypatch.chdir(inner / "..")
    assert settings().store == f"sqlite:///{isolated / 'outer.db'}"
    monkeypatch.chdir(inner)
    assert settings().store == f"sqlite:///{inner / 'inner.db'}"


def test_a_pyproject_without_a_flowkit_table_does_not_stop_the_search(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(isolated / "pyproject.toml", '[tool.flowkit]\nexecutor = "thread"\n')
    inner = isolated / "sub"
    write(inner / "pyproject.toml", '[project]\nname = "sub"\n')
    monkeypatch.chdir(inner)
    assert settings().executor == "thread"


def test_settings_accepts_a_cwd(isolated: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write(other / "flowkit.toml", 'executor = "thread"\n')
    assert settings(cwd=other).executor == "thread"
    assert settings().executor == "inline"


def test_workflow_paths_are_relative_to_the_config_file(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        isolated / "flowkit.toml",
        'workflows = ["flows/*.yml", "order.yaml", "shop.flows", "shop.flows:orders", '
        '"/abs/x.yml", "./more"]\n',
    )
    monkeypatch.chdir(write(isolated / "deep" / "x.txt", "").parent)
    assert settings().workflows == (
        str(isolated / "flows/*.yml"),
        str(isolated / "order.yaml"),
        "shop.flows",
        "shop.flows:orders",
        "/abs/x.yml",
        str(isolated / "more"),
    )


def test_configured_workflows_are_kept_as_given() -> None:
    assert configure(workflows=["flows/a.yml", "shop"]).workflows == ("flows/a.yml", "shop")
    assert configure(workflows="one.yml").workflows == ("one.yml",)


# --- bad values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "stroe = 'sqlite:///x.db'",
            "unknown key 'stroe' (did you mean 'store'?) (known keys: store, executor, broker, "
            "services, workflows, imports, lease_seconds, max_recoveries, retention, "
            "retention_interval, store_options, dashboard_users)",
        ),
        (
            "source = 'x'",
            "unknown key 'source' (did you mean 'store'?) (known keys: store, executor, broker, "
            "services, workflows, imports, lease_seconds, max_recoveries, retention, "
            "retention_interval, store_options, dashboard_users)",
        ),
        (
            "store = 1",
            "'store' must be a store URL such as 'sqlite:///flowkit.db' or "
            "'redis://localhost:6379/0', got an integer 1",
        ),
        (
            "store = 'flowkit.db'",
            "'store' must be a store URL such as 'sqlite:///flowkit.db' or "
            "'redis://localhost:6379/0', got a string 'flowkit.db'",
        ),
        (
            "executor = ''",
            "'executor' must be an executor name such as 'inline', 'thread' or 'dramatiq', "
            "got a string ''",
        ),
        (
            "broker = 'localhost'",
            "'broker' must be a broker URL such as 'redis://localhost:6379/0' or "
            "'amqp://localhost', got a string 'localhost'",
        ),
        (
            "services = ['a']",
            "'services' must be a table of service names to import paths "
            "('package.module:attr'), got a list ['a']",
        ),
        (
            "services = {Shop = 'shop services'}",
            "'services.Shop' must be an import path such as 'package.module:attr' or "
            "'package.module', got a string 'shop services'",
        ),
        (
            "workflows = ['a.yml', 3]",
            "'workflows[1]' must be a list of YAML paths or globs ('flows/*.yml') and 'module' "
            "or 'module:attr' names, got an integer 3",
        ),
        (
            "workflows = 3",
            "'workflows' must be a list of YAML paths or globs ('flows/*.yml') and 'module' "
            "or 'module:attr' names, got an integer 3",
        ),
        (
            "imports = ['shop:services']",
            "'imports[0]' must be a list of module names ('shop.services'), "
            "got a string 'shop:services'",
        ),
        (
            "lease_seconds = 0",
            "'lease_seconds' must be a positive number of seconds, got an integer 0",
        ),
        (
            "lease_seconds = true",
            "'lease_seconds' must be a positive number of seconds, got a boolean True",
        ),
        (
            "lease_seconds = nan",
            "'lease_seconds' must be a positive number of seconds, got a number nan",
        ),
        (
            "retention = '30 days'",
            "'retention' must be a duration such as '30d', '12h' or 'P30D' (or a number of "
            "seconds), got a string '30 days'",
        ),
        (
            "retention_interval = 0",
            "'retention_interval' must be longer than zero: a duration such as '30d', '12h' or "
            "'P30D' (or a number of seconds), got an integer 0",
        ),
        (
            "store_options = 'pool'",
            "'store_options' must be a table of options for the store adapter, got a string 'pool'",
        ),
    ],
)
@pytest.mark.parametrize("kind", ["flowkit.toml", "pyproject.toml"])
def test_bad_file_values_name_the_file_and_key(
    isolated: Path, kind: str, text: str, message: str
) -> None:
    if kind == "flowkit.toml":
        path = write(isolated / kind, text + "\n")
        origin = str(path)
    else:
        path = write(isolated / kind, f"[tool.flowkit]\n{text}\n")
        origin = f"{path} [tool.flowkit]"
    with pytest.raises(ConfigError) as caught:
        settings()
    assert str(caught.value) == f"{origin}: {message}"


def test_a_flowkit_table_that_is_not_a_table(isolated: Path) -> None:
    path = write(isolated / "pyproject.toml", "[tool]\nflowkit = 1\n")
    with pytest.raises(ConfigError) as caught:
        settings()
    assert str(caught.value) == f"{path} [tool.flowkit]: must be a table, got an integer 1"


def test_invalid_toml_names_the_file_and_line(isolated: Path) -> None:
    path = write(isolated / "flowkit.toml", "store = \n")
    with pytest.raises(ConfigError) as caught:
        settings()
    assert str(caught.value).startswith(f"{path}: invalid TOML: ")
    assert "line 1" in str(caught.value)


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        (
            "FLOWKIT_LEASE_SECONDS",
            "soon",
            "environment variable FLOWKIT_LEASE_SECONDS: 'lease_seconds' must be a positive "
            "number of seconds, got a string 'soon'",
        ),
        (
            "FLOWKIT_LEASE_SECONDS",
            "-1",
            "environment variable FLOWKIT_LEASE_SECONDS: 'lease_seconds' must be a positive "
            "number of seconds, got a number -1.0",
        ),
        (
            "FLOWKIT_STORE",
            "runs.db",
            "environment variable FLOWKIT_STORE: 'store' must be a store URL such as "
            "'sqlite:///flowkit.db' or 'redis://localhost:6379/0', got a string 'runs.db'",
        ),
    ],
)
def test_bad_environment_variables(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, message: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as caught:
        settings()
    assert str(caught.value) == message


def test_lease_seconds_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWKIT_LEASE_SECONDS", "12")
    assert settings().lease_seconds == 12.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"stor": "memory://"},
            "flowkit.configure(): unknown setting 'stor' (did you mean 'store'?) (settings: "
            "store, executor, broker, services, workflows, imports, lease_seconds, "
            "max_recoveries, retention, retention_interval, store_options, dashboard_users)",
        ),
        (
            {"executer": "thread"},
            "flowkit.configure(): unknown setting 'executer' (did you mean 'executor'?) "
            "(settings: store, executor, broker, services, workflows, imports, lease_seconds, "
            "max_recoveries, retention, retention_interval, store_options, dashboard_users)",
        ),
        (
            {"lease_seconds": "10"},
            "flowkit.configure(): 'lease_seconds' must be a positive number of seconds, "
            "got a string '10'",
        ),
        (
            {"services": {"S": "bad path"}},
            "flowkit.configure(): 'services.S' must be an import path such as "
            "'package.module:attr' or 'package.module', got a string 'bad path'",
        ),
    ],
)
def test_bad_configure_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configure(**kwargs)
    assert str(caught.value) == message
    assert settings() == Settings()  # nothing was applied


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"store": 3}, "Settings: 'store' must be a store URL"),
        ({"workflows": [None]}, "Settings: 'workflows[0]' must be a list"),
        ({"source": 1}, "Settings: 'source' must be a string or None, got an integer 1"),
    ],
)
def test_settings_validates_its_fields(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        Settings(**kwargs)


def test_settings_normalizes_collections() -> None:
    made = Settings(workflows=["a.yml"], services={"S": "m:a"}, store_options={"prefix": "fk"})
    assert made.workflows == ("a.yml",)
    assert isinstance(made.services, FrozenDict)
    assert made.store_options == {"prefix": "fk"}
    assert made == Settings(
        workflows=("a.yml",), services={"S": "m:a"}, store_options={"prefix": "fk"}
    )


# --- configure, caching and listeners -------------------------------------------------------


def test_configure_accumulates_and_none_drops_an_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOWKIT_BROKER", "amqp://env")
    configure(store="memory://")
    configure(executor="thread", broker="redis://c")
    current = configure()
    assert (current.store, current.executor, current.broker) == ("memory://", "thread", "redis://c")
    assert configure(broker=None).broker == "amqp://env"
    reset()
    assert settings().store == "sqlite:///flowkit.db"


def test_settings_are_cached_until_something_changes(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = settings()
    assert settings() is first
    write(isolated / "flowkit.toml", 'executor = "thread"\n')
    assert settings() is first  # files are not watched
    monkeypatch.setenv("FLOWKIT_STORE", "memory://")
    second = settings()
    assert (second.store, second.executor) == ("memory://", "thread")
    configure(lease_seconds=5)
    assert settings().lease_seconds == 5.0


def test_listeners_hear_about_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    remove = on_change(lambda: calls.append("changed"))
    try:
        settings()
        configure()  # no arguments: nothing changes
        assert calls == []
        configure(store="memory://")
        assert calls == ["changed"]
        reset()
        assert calls == ["changed"] * 2
        settings()
        monkeypatch.setenv("FLOWKIT_EXECUTOR", "thread")
        settings()  # the environment changed the result
        assert calls == ["changed"] * 3
        settings()
        assert calls == ["changed"] * 3
    finally:
        remove()
    configure(store="memory://")
    assert calls == ["changed"] * 3


def test_a_failing_listener_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise RuntimeError("boom")

    remove = on_change(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="flowkit"):
            assert configure(executor="thread").executor == "thread"
    finally:
        remove()
    assert "a settings listener failed" in caplog.text
    assert "boom" in caplog.text


def test_no_state_leaks_between_tests() -> None:
    assert not _config._overrides
