"""Compensation (sagas), on every store (SPEC §15): when an execution fails unhandled or is
cancelled, the compensations of its completed steps run in reverse order of completion."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import flowkit
from flowkit import Action, Status, Store
from flowkit.definitions import WorkflowRegistry

from .saga_flows import CRASH_EXIT_CODE

FLOWKIT = str(Path(sys.executable).with_name("flowkit"))


class Travel:
    """Bookings that can be undone; ``fail`` names the methods that raise."""

    def __init__(self) -> None:
        self.fail: set[str] = set()
        self.log: list[tuple[str, Any]] = []
        self.keys: dict[str, str] = {}

    def _do(self, name: str, value: Any) -> Any:
        self.log.append((name, value))
        self.keys[name] = flowkit.current().idempotency_key
        if name in self.fail:
            raise RuntimeError(f"{name} failed")
        return value

    def flight(self, to: str) -> dict[str, str]:
        return self._do("flight", {"booking": f"F-{to}"})

    def hotel(self, nights: int) -> dict[str, Any]:
        return self._do("hotel", {"booking": "H-1", "nights": nights})

    def charge(self, amount: int) -> int:
        return self._do("charge", amount)

    def cancel_flight(self, booking: str, asked: Any) -> str:
        return self._do("cancel_flight", [booking, asked])

    def cancel_hotel(self, booking: str) -> str:
        return self._do("cancel_hotel", booking)

    def refund(self, seat: int) -> int:
        return self._do("refund", seat)


def _booking(step_id: str, method: str, undo: dict[str, Any] | None, **more: Any) -> dict[str, Any]:
    step = {"id": step_id, "type": "call", "service": "Travel", "method": method, **more}
    if undo is not None:
        step["compensate"] = {"service": "Travel", **undo}
    return step


TRIP = {
    "id": "trip",
    "steps": [
        {"id": "start", "type": "start", "next": "flight"},
        _booking(
            "flight",
            "flight",
            {
                "method": "cancel_flight",
                "input": {"booking": "$output.booking", "asked": "$step_input"},
            },
            input={"to": "LIS"},
            output="flight",
            next="hotel",
        ),
        _booking(
            "hotel",
            "hotel",
            {"method": "cancel_hotel", "input": {"booking": "$hotel.booking"}},
            input={"nights": 3},
            output="hotel",
            next="ask",
        ),
        {"id": "ask", "type": "approval", "prompt": "pay?", "next": "charge"},
        _booking("charge", "charge", None, input={"amount": 900}, next="done"),
        {"id": "done", "type": "end", "result": "booked"},
    ],
}

SEATS = {
    "id": "seats",
    "inputs": {"seats": {"type": "array"}},
    "steps": [
        {"id": "start", "type": "start", "next": "each"},
        {
            "id": "each",
            "type": "loop",
            "over": "$input.seats",
            "do": [
                _booking(
                    "pay",
                    "charge",
                    {"method": "refund", "input": {"seat": "$output"}},
                    input={"amount": "$item"},
                )
            ],
            "next": "fail",
        },
        _booking("fail", "charge", None, input={"amount": -1}),
    ],
}

FLOWS = {source["id"]: flowkit.load(source) for source in (TRIP, SEATS)}


@pytest.fixture(params=["inline", "thread"])
def executor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def travel() -> Travel:
    return Travel()


@pytest.fixture
def engine(
    store_factory: Callable[[], Store], travel: Travel, executor: str
) -> Iterator[flowkit.Engine]:
    services = flowkit.ServiceRegistry()
    services.register("Travel", travel)
    workflows = WorkflowRegistry()
    for wf in FLOWS.values():
        workflows.register(wf)
    with flowkit.Engine(
        store=store_factory(), services=services, workflows=workflows, executor=executor
    ) as opened:
        yield opened


def _actions(engine: flowkit.Engine, execution_id: str) -> list[tuple[str, str]]:
    return [(e.step_id, e.action.value) for e in engine.store.entries(execution_id)]


def test_a_failure_undoes_the_completed_steps_last_first(
    engine: flowkit.Engine, travel: Travel
) -> None:
    travel.fail = {"charge"}
    halted = engine.run(FLOWS["trip"])
    result = engine.resume(halted.execution_id, approved=True)
    assert result.failed
    assert result.error == "RuntimeError: charge failed"
    assert [name for name, _ in travel.log] == [
        "flight",
        "hotel",
        "charge",
        "cancel_hotel",
        "cancel_flight",
    ]
    # The compensation's input read ctx, and what the step returned and was given.
    assert travel.log[-2] == ("cancel_hotel", "H-1")
    assert travel.log[-1] == ("cancel_flight", ["F-LIS", {"to": "LIS"}])
    assert _actions(engine, halted.execution_id)[-3:] == [
        ("charge", "failed"),
        ("hotel", "compensated"),
        ("flight", "compensated"),
    ]
    compensated = engine.store.entries(halted.execution_id)[-1]
    assert compensated.output == ["F-LIS", {"to": "LIS"}]
    # A key of its own, which is not the step's.
    assert travel.keys["cancel_flight"] == travel.keys["flight"] + ":compensate"


def test_a_failing_compensation_is_recorded_and_the_others_still_run(
    engine: flowkit.Engine, travel: Travel
) -> None:
    travel.fail = {"charge", "cancel_hotel"}
    halted = engine.run(FLOWS["trip"])
    result = engine.resume(halted.execution_id, approved=True)
    assert result.failed
    assert result.error == (
        "RuntimeError: charge failed; compensations failed: step 'hotel': "
        "RuntimeError: cancel_hotel failed"
    )
    assert [name for name, _ in travel.log][-2:] == ["cancel_hotel", "cancel_flight"]
    assert _actions(engine, halted.execution_id)[-2:] == [
        ("hotel", "failed"),
        ("flight", "compensated"),
    ]


def test_a_cancel_undoes_the_completed_steps_then_ends_cancelled(
    engine: flowkit.Engine, travel: Travel
) -> None:
    halted = engine.run(FLOWS["trip"])
    result = engine.cancel(halted.execution_id, reason="trip called off", by="ana")
    assert result.cancelled
    assert result.error == "trip called off"
    assert [name for name, _ in travel.log] == ["flight", "hotel", "cancel_hotel", "cancel_flight"]
    assert _actions(engine, halted.execution_id)[-3:] == [
        ("ask", "cancelled"),
        ("hotel", "compensated"),
        ("flight", "compensated"),
    ]
    assert engine.load(halted.execution_id).status is Status.CANCELLED


def test_a_handled_failure_undoes_nothing(engine: flowkit.Engine, travel: Travel) -> None:
    handled = flowkit.load(
        {
            "id": "handled",
            "steps": [
                {"id": "start", "type": "start", "next": "flight"},
                _booking(
                    "flight",
                    "flight",
                    {"method": "cancel_flight", "input": {"booking": "x", "asked": None}},
                    input={"to": "OPO"},
                    next="charge",
                ),
                _booking("charge", "charge", None, input={"amount": 1}, on_error="done"),
                {"id": "done", "type": "end"},
            ],
        }
    )
    travel.fail = {"charge"}
    assert engine.run(handled).completed
    assert [name for name, _ in travel.log] == ["flight", "charge"]


def test_loop_iterations_are_undone_last_first(engine: flowkit.Engine, travel: Travel) -> None:
    wf = flowkit.load(
        {
            "id": "seats_then_fail",
            "inputs": {"seats": {"type": "array"}},
            "steps": [
                {"id": "start", "type": "start", "next": "each"},
                {
                    "id": "each",
                    "type": "loop",
                    "over": "$input.seats",
                    "do": [
                        _booking(
                            "pay",
                            "hotel",
                            {"method": "refund", "input": {"seat": "$output.nights"}},
                            input={"nights": "$item"},
                        )
                    ],
                    "next": "boom",
                },
                _booking("boom", "charge", None, input={"amount": 0}),
            ],
        }
    )
    travel.fail = {"charge"}
    result = engine.run(wf, {"seats": [7, 8, 9]})
    assert result.failed
    assert [entry for entry in travel.log if entry[0] == "refund"] == [
        ("refund", 9),
        ("refund", 8),
        ("refund", 7),
    ]
    undone = [
        e for e in engine.store.entries(result.execution_id) if e.action is Action.COMPENSATED
    ]
    assert [(e.step_id, e.iteration) for e in undone] == [
        ("each:pay", 2),
        ("each:pay", 1),
        ("each:pay", 0),
    ]


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("sqlite", marks=pytest.mark.sqlite, id="sqlite"),
        pytest.param("postgresql", marks=pytest.mark.postgresql, id="postgresql"),
    ],
)
def test_compensations_go_on_after_the_process_running_them_dies(
    url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from .sql_helpers import POSTGRESQL_URL, scratch_store, unique_prefix, with_prefix

    if url == "sqlite":
        url = f"sqlite:///{tmp_path}/saga.db"
    else:
        prefix = unique_prefix()
        url = with_prefix(POSTGRESQL_URL, prefix)
        request.addfinalizer(lambda: scratch_store(POSTGRESQL_URL, prefix=prefix).close())
    log = tmp_path / "calls.log"
    env = {
        **os.environ,
        "FLOWKIT_TEST_SAGA_LOG": str(log),
        "FLOWKIT_LEASE_SECONDS": "0.001",  # stale as soon as its process dies
    }
    module = ("-m", "tests.backends.saga_flows", "--store", url)

    def flowkit_process(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [FLOWKIT, *args, *module], env=env, capture_output=True, text=True, timeout=120
        )

    died = flowkit_process("run", "tests.backends.saga_flows:SAGA")
    assert died.returncode == CRASH_EXIT_CODE, died.stderr
    assert log.read_text().split() == ["a", "b", "boom", "undo_b"]

    recovered = flowkit_process("recover")
    assert recovered.returncode == 0, recovered.stderr
    # At least once: the compensation the process died in runs again; the rest once.
    assert log.read_text().split() == ["a", "b", "boom", "undo_b", "undo_b", "undo_a"]
    with flowkit.Engine(store=url, workflows=WorkflowRegistry()) as engine:
        (execution,) = engine.store.find(workflow_id="saga")
        assert execution.status is Status.FAILED
        assert execution.error == "RuntimeError: boom"
        actions = _actions(engine, execution.id)
        assert actions[-3:] == [("boom", "failed"), ("b", "compensated"), ("a", "compensated")]
