"""The service registry, the calling convention, output conversion and output schemas."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import inspect
import math
import re
import sys
import textwrap
import types
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

import attrs
import pytest

from flowkit.errors import ConfigError, ExecutionError, NotFoundError
from flowkit.frozen import FrozenDict
from flowkit.services import (
    ServiceRegistry,
    bind_arguments,
    default_registry,
    register_service,
    service,
    to_json,
    validate_output,
)

# --- registry forms -------------------------------------------------------------------------


class Counter:
    """A class service that counts its instances."""

    created = 0

    def __init__(self) -> None:
        Counter.created += 1

    def me(self) -> int:
        return id(self)

    def _secret(self) -> str:
        return "secret"

    limit = 3


class NoInit:
    """A class service that must never be instantiated."""

    def __init__(self) -> None:
        raise AssertionError("instantiated")

    @classmethod
    def make(cls, value: int) -> str:
        return f"{cls.__name__}:{value}"

    @staticmethod
    def double(value: int) -> int:
        return value * 2


class Wallet:
    """An instance service."""

    def __init__(self) -> None:
        self.balance = 10

    def pay(self, amount: int) -> int:
        self.balance -= amount
        return self.balance


def charge(amount: int) -> int:
    return amount


def refund(amount: int) -> int:
    return -amount


@pytest.fixture
def registry() -> ServiceRegistry:
    return ServiceRegistry()


@pytest.fixture
def module_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, str], str]]:
    """Write ``name.py`` with ``source`` into a directory on sys.path; return the name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


def test_a_class_is_instantiated_once_per_resolve(registry: ServiceRegistry) -> None:
    registry.register("Counter", Counter)
    before = Counter.created
    first = registry.resolve("Counter", "me")
    second = registry.resolve("Counter", "me")
    assert Counter.created == before + 2
    assert first() != second()
    assert first() == first()  # one instance behind one resolve


@pytest.mark.parametrize(("method", "arg", "expected"), [("make", 4, "NoInit:4"), ("double", 4, 8)])
def test_classmethods_and_staticmethods_do_not_instantiate(
    registry: ServiceRegistry, method: str, arg: int, expected: object
) -> None:
    registry.register("NoInit", NoInit)
    assert registry.resolve("NoInit", method)(arg) == expected


def test_an_instance_keeps_its_state_between_calls(registry: ServiceRegistry) -> None:
    wallet = Wallet()
    registry.register("Wallet", wallet)
    assert registry.resolve("Wallet", "pay")(3) == 7
    assert registry.resolve("Wallet", "pay")(3) == 4
    assert wallet.balance == 4


def test_a_mapping_of_callables(registry: ServiceRegistry) -> None:
    registry.register("Pay", {"charge": charge, "refund": refund})
    assert registry.resolve("Pay", "refund")(5) == -5


def test_functions_under_one_name_make_one_service(registry: ServiceRegistry) -> None:
    registry.register("Pay", charge)
    registry.register("Pay", refund)
    assert registry.resolve("Pay", "charge") is charge
    assert registry.resolve("Pay", "refund") is refund


def test_a_function_adds_to_a_registered_mapping(registry: ServiceRegistry) -> None:
    registry.register("Pay", {"charge": charge})
    registry.register("Pay", refund)
    assert registry.resolve("Pay", "charge") is charge
    assert registry.resolve("Pay", "refund") is refund


@pytest.mark.parametrize("replacement", [Wallet, Wallet(), {"pay": charge}])
def test_a_non_function_replaces_the_service(
    registry: ServiceRegistry, replacement: object
) -> None:
    registry.register("Pay", charge)
    registry.register("Pay", replacement)
    with pytest.raises(NotFoundError, match="has no method 'charge'"):
        registry.resolve("Pay", "charge")
    assert callable(registry.resolve("Pay", "pay"))


def test_a_module_exposes_its_own_functions_only(
    registry: ServiceRegistry, module_dir: Callable[[str, str], str]
) -> None:
    name = module_dir(
        "fk_shop",
        """
        from os.path import join

        def total(items):
            return sum(items)

        def _hidden():
            return 1
        """,
    )
    module = __import__(name)
    registry.register("Shop", module)
    assert registry.resolve("Shop", "total")([1, 2]) == 3
    with pytest.raises(NotFoundError, match="service 'Shop' has no method 'join'"):
        registry.resolve("Shop", "join")  # imported, not defined there


def test_a_module_with_all_exposes_exactly_all(
    registry: ServiceRegistry, module_dir: Callable[[str, str], str]
) -> None:
    name = module_dir(
        "fk_all",
        """
        from os.path import basename
        __all__ = ["basename"]

        def total(items):
            return sum(items)
        """,
    )
    registry.register("Files", __import__(name))
    assert registry.resolve("Files", "basename")("/a/b.txt") == "b.txt"
    with pytest.raises(NotFoundError, match="has no method 'total'"):
        registry.resolve("Files", "total")


def _module_service() -> object:
    module = types.ModuleType("fk_private")
    module._secret = lambda: 1  # type: ignore[attr-defined]
    return module


@pytest.mark.parametrize(
    "obj",
    [Counter, Wallet(), {"_secret": charge}, _module_service()],
    ids=["class", "instance", "mapping", "module"],
)
@pytest.mark.parametrize("method", ["_secret", "__init__", "__class__", ""])
def test_private_names_are_never_callable(
    registry: ServiceRegistry, obj: object, method: str
) -> None:
    registry.register("S", obj)
    with pytest.raises(NotFoundError) as caught:
        registry.resolve("S", method)
    assert str(caught.value) == (
        f"service 'S': method {method!r} cannot be called "
        "(names starting with '_' are private to the service)"
    )


def test_unknown_service_message_with_hint(registry: ServiceRegistry) -> None:
    registry.register("OrderService", Counter)
    with pytest.raises(NotFoundError) as caught:
        registry.resolve("OrderServise", "me")
    assert str(caught.value) == (
        "unknown service 'OrderServise': register it with @flowkit.service('OrderServise') or "
        "flowkit.register_service('OrderServise', obj), or map it in configuration "
        "(services = {OrderServise = \"module:attr\"}) (did you mean 'OrderService'?)"
    )
    assert isinstance(caught.value, LookupError)


def test_unknown_service_without_close_names(registry: ServiceRegistry) -> None:
    with pytest.raises(NotFoundError) as caught:
        registry.resolve("Payments", "charge")
    assert str(caught.value).endswith('(services = {Payments = "module:attr"})')


@pytest.mark.parametrize(
    ("obj", "method", "message"),
    [
        (Counter, "mee", "service 'S' has no method 'mee' (did you mean 'me'?)"),
        (Counter, "limit", "service 'S' has no method 'limit' ('limit' is an int, not a method)"),
        (Wallet(), "pai", "service 'S' has no method 'pai' (did you mean 'pay'?)"),
        (
            Wallet(),
            "balance",
            "service 'S' has no method 'balance' ('balance' is an int, not a method)",
        ),
        ({"charge": charge}, "charg", "service 'S' has no method 'charg' (did you mean 'charge'?)"),
        (charge, "nothing", "service 'S' has no method 'nothing'"),
        (NoInit, "mro", "service 'S' has no method 'mro'"),
    ],
)
def test_unknown_methods(registry: ServiceRegistry, obj: object, method: str, message: str) -> None:
    registry.register("S", obj)
    with pytest.raises(NotFoundError) as caught:
        registry.resolve("S", method)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("name", "obj", "error", "message"),
    [
        (1, Counter, TypeError, "a service name must be a str, got int 1"),
        ("", Counter, ValueError, "a service name must not be empty"),
        ("S", None, TypeError, "service 'S': cannot register None"),
        ("S", {"x": 1}, TypeError, "service 'S': method 'x' must be callable, got int 1"),
        ("S", lambda: 1, TypeError, "has no usable __name__"),
    ],
)
def test_bad_registrations(
    registry: ServiceRegistry, name: Any, obj: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        registry.register(name, obj)


def test_override_restores_the_previous_registration(registry: ServiceRegistry) -> None:
    registry.register("Pay", charge)
    with registry.override("Pay", {"charge": refund}):
        assert registry.resolve("Pay", "charge") is refund
        registry.register("Pay", charge)  # adds to the stub while overridden
    assert registry.resolve("Pay", "charge") is charge
    with pytest.raises(NotFoundError):
        registry.resolve("Pay", "refund")


def test_override_of_an_absent_name_removes_it_afterwards(registry: ServiceRegistry) -> None:
    def use_and_fail() -> None:
        with registry.override("Pay", charge):
            assert registry.resolve("Pay", "charge") is charge
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        use_and_fail()
    assert "Pay" not in registry
    assert registry.names() == []


def test_override_beats_a_configured_path(
    registry: ServiceRegistry, module_dir: Callable[[str, str], str]
) -> None:
    name = module_dir("fk_real", "def charge(amount):\n    return 'real'\n")
    registry.configure({"Pay": name})
    with registry.override("Pay", {"charge": lambda amount: "stub"}):
        assert registry.resolve("Pay", "charge")(1) == "stub"
    assert registry.resolve("Pay", "charge")(1) == "real"


def test_unregister_and_names(registry: ServiceRegistry) -> None:
    registry.register("B", charge)
    registry.register("A", Counter)
    registry.configure({"C": "some.module"})
    assert registry.names() == ["A", "B", "C"]
    registry.unregister("B")
    registry.unregister("B")  # no error
    assert registry.names() == ["A", "C"]


# --- configured import paths ----------------------------------------------------------------


def test_configured_paths_are_imported_lazily(
    registry: ServiceRegistry, module_dir: Callable[[str, str], str]
) -> None:
    name = module_dir(
        "fk_orders",
        """
        class OrderService:
            def place(self, order_id):
                return f"placed {order_id}"
        """,
    )
    registry.configure({"Orders": f"{name}:OrderService"})
    assert name not in sys.modules
    assert registry.resolve("Orders", "place")("o1") == "placed o1"
    assert name in sys.modules


def test_a_configured_module_path(
    registry: ServiceRegistry, module_dir: Callable[[str, str], str]
) -> None:
    name = module_dir("fk_pay", "def charge(amount):\n    return amount * 2\n")
    registry.configure({"Pay": name})
    assert registry.resolve("Pay", "charge")(2) == 4


def test_only_configured_names_are_imported(
    registry: ServiceRegistry, module_dir: Callable[[str, str], str]
) -> None:
    name = module_dir("fk_unlisted", "def run():\n    return 1\n")
    with pytest.raises(NotFoundError, match=f"unknown service '{name}'"):
        registry.resolve(name, "run")
    with pytest.raises(NotFoundError):
        registry.resolve(f"{name}:run", "run")
    assert name not in sys.modules


def test_a_module_that_registers_itself_while_imported(
    registry: ServiceRegistry, module_dir: Callable[[str, str], str]
) -> None:
    name = module_dir(
        "fk_selfreg",
        """
        from flowkit.services import default_registry

        def ping():
            return "pong"

        default_registry.register("fk_selfreg_service", ping)
        """,
    )
    default_registry.configure({"fk_selfreg_service": name})
    try:
        assert default_registry.resolve("fk_selfreg_service", "ping")() == "pong"
    finally:
        default_registry.unregister("fk_selfreg_service")
        default_registry.configure({})


@pytest.mark.parametrize(
    ("path", "underlying"),
    [
        ("fk_missing_module_xyz", "ModuleNotFoundError: No module named 'fk_missing_module_xyz'"),
        ("fk_broken", "ZeroDivisionError: division by zero"),
        ("fk_attr:Nope", "AttributeError: module 'fk_attr' has no attribute 'Nope'"),
    ],
)
def test_a_configured_path_that_fails_to_import(
    registry: ServiceRegistry,
    module_dir: Callable[[str, str], str],
    path: str,
    underlying: str,
) -> None:
    module_dir("fk_broken", "1 / 0\n")
    module_dir("fk_attr", "x = 1\n")
    registry.configure({"S": path})
    with pytest.raises(ConfigError) as caught:
        registry.resolve("S", "run")
    assert str(caught.value) == (
        f"service 'S': cannot import '{path}' (from the services configuration): {underlying}"
    )


def test_registered_names_win_over_configured_ones(registry: ServiceRegistry) -> None:
    registry.configure({"Pay": "fk_never_imported_module"})
    registry.register("Pay", charge)
    assert registry.resolve("Pay", "charge") is charge
    assert "fk_never_imported_module" not in sys.modules


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        ({"S": "a b"}, "services.S: 'a b' is not an import path"),
        ({"S": "a:b:c"}, "services.S: 'a:b:c' is not an import path"),
        ({"S": 3}, "services.S: 3 is not an import path"),
        ({"": "a"}, "services: a service name must be a non-empty str, got ''"),
    ],
)
def test_malformed_configured_paths(
    registry: ServiceRegistry, paths: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        registry.configure(paths)


def test_reconfiguring_drops_a_cached_import(
    registry: ServiceRegistry, module_dir: Callable[[str, str], str]
) -> None:
    one = module_dir("fk_one", "def which():\n    return 1\n")
    two = module_dir("fk_two", "def which():\n    return 2\n")
    registry.configure({"S": one})
    assert registry.resolve("S", "which")() == 1
    registry.configure({"S": two})
    assert registry.resolve("S", "which")() == 2


# --- the public decorator -------------------------------------------------------------------


@pytest.fixture
def clean_default() -> Iterator[None]:
    before = set(default_registry.names())
    yield
    for name in set(default_registry.names()) - before:
        default_registry.unregister(name)


@pytest.mark.usefixtures("clean_default")
def test_service_decorator_forms() -> None:
    @service("fk_Payments")
    def pay(amount: int) -> int:
        return amount

    @service("fk_Payments")
    def back(amount: int) -> int:
        return -amount

    @service
    class fk_Bare:
        def hello(self) -> str:
            return "hi"

    @service()
    def fk_called() -> str:
        return "called"

    module = types.ModuleType("fk_mod")
    module.run = lambda: "ran"  # type: ignore[attr-defined]
    module.__all__ = ["run"]  # type: ignore[attr-defined]
    assert service("fk_Shop")(module) is module
    register_service("fk_Direct", {"go": lambda: "went"})

    assert pay(3) == 3  # still a plain function
    assert inspect.isfunction(pay)
    assert default_registry.resolve("fk_Payments", "back")(2) == -2
    assert default_registry.resolve("fk_Bare", "hello")() == "hi"
    assert default_registry.resolve("fk_called", "fk_called")() == "called"
    assert default_registry.resolve("fk_Shop", "run")() == "ran"
    assert default_registry.resolve("fk_Direct", "go")() == "went"


def test_service_without_a_name_needs_one() -> None:
    with pytest.raises(TypeError, match=r"has no __name__: use @flowkit.service\('Name'\)"):
        service()(Wallet())


# --- calling convention ---------------------------------------------------------------------


def two(a: int, b: int) -> None: ...


def one(data: Any) -> None: ...


def optional(x: int = 1) -> None: ...


def nothing() -> None: ...


def anything(**kwargs: Any) -> None: ...


def keyword_only(*, a: int, b: int = 2) -> None: ...


def star(*args: Any) -> None: ...


def mixed(data: Any, **kwargs: Any) -> None: ...


def pos_only(a: int, /, b: int) -> None: ...


async def async_two(a: int, b: int) -> None: ...


class Methods:
    def method(self, a: int, b: int) -> None: ...

    @classmethod
    def cls_method(cls, data: Any) -> None: ...

    @staticmethod
    def static(a: int) -> None: ...


class Constructed:
    def __init__(self, name: str) -> None:
        self.name = name


@pytest.mark.parametrize(
    ("fn", "value", "args", "kwargs"),
    [
        (two, {"a": 1, "b": 2}, (), {"a": 1, "b": 2}),
        (anything, {"x": 1, "y": 2}, (), {"x": 1, "y": 2}),
        (anything, None, (), {}),
        (anything, {}, (), {}),
        (one, {"x": 1}, ({"x": 1},), {}),  # keys match no parameter: one positional
        (one, {"data": 1}, (), {"data": 1}),  # keys match: keywords
        (one, [1, 2], ([1, 2],), {}),
        (one, "text", ("text",), {}),
        (one, 5, (5,), {}),
        (one, None, (None,), {}),
        (one, {}, ({},), {}),
        (optional, None, (), {}),
        (optional, {}, ({},), {}),
        (optional, 7, (7,), {}),
        (nothing, None, (), {}),
        (nothing, {}, (), {}),
        (keyword_only, {"a": 1}, (), {"a": 1}),
        (star, [1], ([1],), {}),
        (star, None, (), {}),
        (mixed, {"data": 1, "extra": 2}, (), {"data": 1, "extra": 2}),
        (async_two, {"a": 1, "b": 2}, (), {"a": 1, "b": 2}),
        (Methods().method, {"a": 1, "b": 2}, (), {"a": 1, "b": 2}),
        (Methods.cls_method, [1], ([1],), {}),
        (Methods.static, 3, (3,), {}),
        (Constructed, {"name": "n"}, (), {"name": "n"}),
        (len, [1], ([1],), {}),
        (FrozenDict, {"a": 1}, ({"a": 1},), {}),
    ],
)
def test_bind_arguments(
    fn: Callable[..., Any], value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    assert bind_arguments(fn, value) == (args, kwargs)


def test_a_frozen_mapping_binds_as_keywords() -> None:
    args, kwargs = bind_arguments(two, FrozenDict({"a": 1, "b": 2}))
    assert (args, kwargs) == ((), {"a": 1, "b": 2})
    assert type(kwargs) is dict


@pytest.mark.parametrize(
    ("fn", "value", "message"),
    [
        (
            nothing,
            5,
            "nothing() takes no arguments, but the step's input is 5: "
            "remove the step's input or add a parameter",
        ),
        (
            nothing,
            {"a": 1},
            "nothing() takes no arguments, but the step's input is {'a': 1}: "
            "remove the step's input or add a parameter",
        ),
        (
            two,
            {"a": 1},
            "two() is missing required argument 'b' (the input mapping has keys 'a')",
        ),
        (
            two,
            {"a": 1, "z": 2},
            "two() is missing required argument 'b': the input mapping was passed as one "
            "positional argument because its key 'z' matches no parameter",
        ),
        (
            two,
            {"y": 1, "z": 2},
            "two() is missing required argument 'b': the input mapping was passed as one "
            "positional argument because its keys 'y', 'z' match no parameter",
        ),
        (
            two,
            [1],
            "two() is missing required argument 'b' (the input [1] fills only the first parameter)",
        ),
        (
            two,
            None,
            "two() is missing required argument 'b' (the input None fills only the "
            "first parameter)",
        ),
        (
            keyword_only,
            None,
            "keyword_only() is missing required argument 'a' "
            "(give the step a mapping input with these keys)",
        ),
        (
            keyword_only,
            {"b": 1},
            "keyword_only() is missing required argument 'a' (the input mapping has keys 'b')",
        ),
        (
            anything,
            5,
            "anything() accepts only keyword arguments, but the step's input is 5: "
            "give the step a mapping input",
        ),
        (
            mixed,
            {"extra": 1},
            "mixed() is missing required argument 'data' (the input mapping has keys 'extra')",
        ),
        (
            pos_only,
            {"b": 1},
            "pos_only() is missing required argument 'a' (the input mapping has keys 'b')",
        ),
        (
            Methods().method,
            {"a": 1},
            "Methods.method() is missing required argument 'b' (the input mapping has keys 'a')",
        ),
    ],
)
def test_bind_arguments_errors(fn: Callable[..., Any], value: Any, message: str) -> None:
    with pytest.raises(TypeError) as caught:
        bind_arguments(fn, value)
    assert str(caught.value) == message


def test_signatures_are_analysed_once_per_function(monkeypatch: pytest.MonkeyPatch) -> None:
    class Fresh:
        def run(self, a: int) -> None: ...

    def local(a: int) -> None: ...

    calls = []
    real = inspect.signature

    def counting(fn: Any, *args: Any, **kwargs: Any) -> inspect.Signature:
        calls.append(fn)
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(inspect, "signature", counting)
    for _ in range(3):
        bind_arguments(Fresh().run, {"a": 1})  # a new bound method every time
        bind_arguments(local, {"a": 1})
    assert len(calls) == 2


# --- output conversion ----------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Key(str):
    pass


@attrs.frozen
class Line:
    sku: str
    price: Decimal
    added: dt.date


@dataclasses.dataclass
class Order:
    id: uuid.UUID
    lines: list[Line]
    tags: frozenset[str]
    color: Color
    meta: Any = None


class Foo:
    pass


ORDER_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("text", "text"),
        (3, 3),
        (True, True),
        (1.5, 1.5),
        ({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}),
        ((1, (2, 3)), [1, [2, 3]]),
        ({3, 1, 2}, [1, 2, 3]),
        (frozenset({"b", "a"}), ["a", "b"]),
        (dt.datetime(2024, 5, 1, 12, 30), "2024-05-01T12:30:00"),
        (dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC), "2024-05-01T12:30:00+00:00"),
        (dt.date(2024, 5, 1), "2024-05-01"),
        (dt.time(8, 15, 30), "08:15:30"),
        (Decimal("12.00"), 12),
        (Decimal("12.50"), 12.5),
        (Decimal("-3"), -3),
        (ORDER_ID, "12345678-1234-5678-1234-567812345678"),
        (Color.RED, "red"),
        (Level.HIGH, 2),
        (PurePosixPath("/tmp/x.txt"), "/tmp/x.txt"),
        ({Color.BLUE: 1, "plain": 2}, {"blue": 1, "plain": 2}),
        ({Level.LOW: "a"}, {"LOW": "a"}),
        ({Key("k"): Key("v")}, {"k": "v"}),
        (collections.OrderedDict(a=1), {"a": 1}),
        (types.MappingProxyType({"a": (1,)}), {"a": [1]}),
        (range(3), [0, 1, 2]),
        (
            Line("sku-1", Decimal("9.99"), dt.date(2024, 1, 2)),
            {"sku": "sku-1", "price": 9.99, "added": "2024-01-02"},
        ),
        (
            Order(
                ORDER_ID,
                [Line("s", Decimal("1"), dt.date(2024, 1, 1))],
                frozenset({"z", "y"}),
                Color.BLUE,
                meta={"when": dt.datetime(2024, 1, 1)},
            ),
            {
                "id": "12345678-1234-5678-1234-567812345678",
                "lines": [{"sku": "s", "price": 1, "added": "2024-01-01"}],
                "tags": ["y", "z"],
                "color": "blue",
                "meta": {"when": "2024-01-01T00:00:00"},
            },
        ),
    ],
)
def test_to_json_conversions(value: Any, expected: Any) -> None:
    converted = to_json(value, "step 'x'")
    assert converted == expected
    assert type(converted) is type(expected)


def test_unsortable_sets_keep_all_items() -> None:
    converted = to_json({"mixed": {1, "a"}}, "step 'x'")
    assert sorted(converted["mixed"], key=str) == [1, "a"]


def test_to_json_copies_containers() -> None:
    inner = [1, 2]
    value = {"list": inner, "nested": {"inner": inner}}
    converted = to_json(value, "step 'x'")
    inner.append(3)
    value["added"] = True  # type: ignore[assignment]
    assert converted == {"list": [1, 2], "nested": {"inner": [1, 2]}}


def test_to_json_of_local_attrs_classes_with_string_annotations() -> None:
    @attrs.define
    class Inner:
        x: int

    @attrs.define
    class Outer:
        inner: Inner
        items: list[Inner]

    assert to_json(Outer(Inner(1), [Inner(2)]), "w") == {"inner": {"x": 1}, "items": [{"x": 2}]}


OBJECT_HINT = (
    "which is not JSON data "
    "(return dicts, lists, str, numbers, bools, None, or attrs/dataclass instances)"
)
FINITE_HINT = "which is not JSON data (JSON has no NaN or infinity)"


def _cycle() -> list[Any]:
    items: list[Any] = []
    items.append(items)
    return items


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"items": [1, 2, {"price": Foo()}]}, f"output.items[2].price is a Foo, {OBJECT_HINT}"),
        (Foo(), f"output is a Foo, {OBJECT_HINT}"),
        ([Line("s", Foo(), dt.date(2024, 1, 1))], f"output[0].price is a Foo, {OBJECT_HINT}"),  # type: ignore[arg-type]
        ({"odd key": [Foo()]}, f"output['odd key'][0] is a Foo, {OBJECT_HINT}"),
        ({"tags": {Foo()}}, f"output.tags[0] is a Foo, {OBJECT_HINT}"),
        ({"t": (1, Foo())}, f"output.t[1] is a Foo, {OBJECT_HINT}"),
        ({"n": math.nan}, f"output.n is the float nan, {FINITE_HINT}"),
        ([math.inf], f"output[0] is the float inf, {FINITE_HINT}"),
        (-math.inf, f"output is the float -inf, {FINITE_HINT}"),
        ({"d": Decimal("NaN")}, f"output.d is Decimal('NaN'), {FINITE_HINT}"),
        ({"d": Decimal("-Infinity")}, f"output.d is Decimal('-Infinity'), {FINITE_HINT}"),
        (
            {"raw": b"x"},
            "output.raw is a bytes object, which is not JSON data "
            "(decode bytes to str, e.g. with base64)",
        ),
        ({"f": charge}, f"output.f is the function 'charge', {OBJECT_HINT}"),
        ({"c": Foo}, f"output.c is the class Foo, {OBJECT_HINT}"),
        (
            {"counts": {1: "a"}},
            "output.counts has the key 1 (an int), which is not JSON data "
            "(mapping keys must be str)",
        ),
        (
            {(1, 2): "a"},
            "output has the key (1, 2) (a tuple), which is not JSON data "
            "(mapping keys must be str)",
        ),
        (
            {"red": 1, Color.RED: 2},
            "output has two keys that both become 'red' (<Color.RED: 'red'> is one), so it is "
            "not JSON data (make the keys distinct)",
        ),
        (
            {Color.RED: 1, "red": 2},
            "output has two keys that both become 'red' ('red' is one), so it is "
            "not JSON data (make the keys distinct)",
        ),
        (
            {"loop": _cycle()},
            "output nests deeper than 100 levels of lists and mappings, or contains itself, "
            "so it cannot be stored (flatten the data)",
        ),
        ((x for x in [1]), f"output is a generator, {OBJECT_HINT}"),
    ],
)
def test_to_json_failures(value: Any, message: str) -> None:
    with pytest.raises(ExecutionError) as caught:
        to_json(value, "step 'charge'")
    assert str(caught.value) == f"step 'charge': {message}"


# --- output schemas -------------------------------------------------------------------------

ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "total": {"type": "number"},
        "items": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["total", "id"],
}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"total": "abc", "id": 1},
            "step 'x': output does not match its schema: total: 'abc' is not of type 'number'",
        ),
        (
            {"total": "abc", "items": [1, "two"]},
            "step 'x': output does not match its schema: total: 'abc' is not of type 'number'; "
            "items[1]: 'two' is not of type 'integer'; 'id' is a required property",
        ),
        ([1], "step 'x': output does not match its schema: [1] is not of type 'object'"),
    ],
)
def test_validate_output_reports_every_error(value: Any, message: str) -> None:
    with pytest.raises(ExecutionError) as caught:
        validate_output(value, ORDER_SCHEMA, "step 'x'")
    assert str(caught.value) == message


def test_validate_output_accepts_matching_values_and_frozen_schemas() -> None:
    frozen = FrozenDict(
        {
            "type": "object",
            "properties": FrozenDict({"total": FrozenDict({"type": "number"})}),
            "required": ("total",),
        }
    )
    validate_output({"total": 3, "id": 1}, ORDER_SCHEMA, "step 'x'")
    validate_output({"total": 3}, frozen, "step 'x'")
    with pytest.raises(ExecutionError, match="'total' is a required property"):
        validate_output({}, frozen, "step 'x'")


def test_validators_are_compiled_once_per_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    import jsonschema.validators

    compiled = []
    real = jsonschema.validators.validator_for

    def counting(schema: Any, *args: Any, **kwargs: Any) -> Any:
        if "fk_once" in str(schema):  # check_schema looks up the meta-schemas too
            compiled.append(schema)
        return real(schema, *args, **kwargs)

    monkeypatch.setattr(jsonschema.validators, "validator_for", counting)
    schema = {"type": "object", "properties": {"fk_once": {"type": "string"}}}
    same = {"properties": {"fk_once": {"type": "string"}}, "type": "object"}  # other key order
    frozen = FrozenDict({"type": "object", "properties": FrozenDict(same["properties"])})
    for value in ({"fk_once": "a"}, {"fk_once": "b"}):
        validate_output(value, schema, "w")
        validate_output(value, same, "w")
        validate_output(value, frozen, "w")
    assert len(compiled) == 1
    with pytest.raises(ExecutionError, match="fk_once: 1 is not of type 'string'"):
        validate_output({"fk_once": 1}, frozen, "w")


def test_an_invalid_schema_fails_clearly() -> None:
    with pytest.raises(ExecutionError) as caught:
        validate_output({}, {"type": "nope"}, "step 'x'")
    assert str(caught.value).startswith("step 'x': the output schema is not valid: 'nope' is not")


def test_long_schema_messages_are_shortened() -> None:
    with pytest.raises(ExecutionError) as caught:
        validate_output({"big": "x" * 1000}, {"type": "array"}, "w")
    text = str(caught.value)
    assert text.endswith("...")
    assert len(text) < 300
