"""Workflows and services the distributed tests run on real Dramatiq workers.

The worker processes import this module (``flowkit worker tests.distributed.flows``);
the test process imports it too, to start and resume the same workflows.

Every service call appends one line ``<step> <execution id> <pid>`` to
``calls.log`` in the directory named by ``FLOWKIT_TEST_DIR`` (one per test):
an append-only file counts how often each step really ran, whatever the store
and broker say. A single ``write`` of a short line to a file opened with
``O_APPEND`` is atomic, so lines from many processes never interleave. In the
worker processes, every message processed appends ``<actor> <execution id>
<pid>`` to ``messages.log`` the same way.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import dramatiq

import flowkit
from flowkit.backends import dramatiq as fk_dramatiq

#: The environment variable naming the test's directory.
TEST_DIR = "FLOWKIT_TEST_DIR"
CALLS = "calls.log"
MESSAGES = "messages.log"
#: Written by the slow step when it starts (its content: the worker process's pid).
STARTED = "started"
#: Created by the test to let the slow step finish.
RELEASE = "release"
#: Created by the test to make ``until_fixed`` succeed ("a fix was deployed").
FIXED = "fixed"

CHAIN_STEPS = 5
BRANCHES = 20


def _dir() -> Path:
    return Path(os.environ[TEST_DIR])


def _append(name: str, *words: object) -> None:
    """Append one line of ``words`` to the file ``name`` of the test's directory."""
    line = " ".join(map(str, words)) + "\n"
    fd = os.open(_dir() / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _note(step: str) -> None:
    _append(CALLS, step, flowkit.current().execution_id, os.getpid())


def _read(directory: Path, name: str) -> list[tuple[str, str, int]]:
    path = directory / name
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        what, execution_id, pid = line.split()
        found.append((what, execution_id, int(pid)))
    return found


def call_log(directory: Path) -> list[tuple[str, str, int]]:
    """Every call in ``calls.log``: (step, execution id, pid)."""
    return _read(directory, CALLS)


def messages(directory: Path) -> Counter[tuple[str, str]]:
    """How many messages of each (actor, execution id) the workers processed."""
    return Counter((actor, execution_id) for actor, execution_id, _ in _read(directory, MESSAGES))


class MessageLog(dramatiq.Middleware):
    """Notes every message a worker processed (dropped ones too) in ``messages.log``."""

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        _append(MESSAGES, message.actor_name, message.args[0], os.getpid())


def calls(directory: Path) -> Counter[tuple[str, str]]:
    """How many times each (step, execution id) ran."""
    return Counter((step, execution_id) for step, execution_id, _ in call_log(directory))


# --- services -------------------------------------------------------------------------------------


def work(step: str, value: Any = None) -> Any:
    """Note the call and return ``value`` (or the step's name)."""
    _note(step)
    return step if value is None else value


def slow(step: str) -> str:
    """Note the call, say so in ``started``; then wait until ``release`` exists."""
    _note(step)
    directory = _dir()
    (directory / STARTED).write_text(str(os.getpid()))
    while not (directory / RELEASE).exists():
        time.sleep(0.02)
    return step


def branch(step: str, index: int) -> int:
    """A parallel branch: note it, take a little time, return its index."""
    _note(step)
    time.sleep(0.01 + 0.002 * (index % 5))
    return index


def echo(step: str, value: Any = None) -> Any:
    """Note the call and return ``value``."""
    _note(step)
    return value


# --- workflows ------------------------------------------------------------------------------------


def _call(step: str, method: str, next_step: str | None, **input: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "id": step,
        "type": "call",
        "service": "Distributed",
        "method": method,
        "input": {"step": step, **input},
        "output": step,
    }
    if next_step is not None:
        config["next"] = next_step
    return config


#: one → slow (blocks until released) → three.
SLOW = flowkit.load(
    {
        "id": "dist_slow",
        "steps": [
            {"id": "start", "type": "start", "next": "one"},
            _call("one", "work", "slow"),
            _call("slow", "slow", "three"),
            _call("three", "work", None),
        ],
    }
)

#: ``CHAIN_STEPS`` short call steps.
CHAIN = flowkit.load(
    {
        "id": "dist_chain",
        "steps": [
            {"id": "start", "type": "start", "next": "s0"},
            *[
                _call(f"s{i}", "work", f"s{i + 1}" if i + 1 < CHAIN_STEPS else None)
                for i in range(CHAIN_STEPS)
            ],
        ],
    }
)

#: before → fan (``BRANCHES`` branches, wait all) → after.
FANOUT = flowkit.load(
    {
        "id": "dist_fanout",
        "steps": [
            {"id": "start", "type": "start", "next": "before"},
            _call("before", "work", "fan"),
            {
                "id": "fan",
                "type": "parallel",
                "output": "fanned",
                "branches": [
                    {
                        "id": f"b{i:02d}",
                        "type": "call",
                        "service": "Distributed",
                        "method": "branch",
                        "input": {"step": f"fan:b{i:02d}", "index": i},
                    }
                    for i in range(BRANCHES)
                ],
                "next": "after",
            },
            _call("after", "echo", "end", value="$fanned"),
            {"id": "end", "type": "end", "result": "$after"},
        ],
    }
)

#: before → wait (halt) → after, which echoes the resume's response.
HALTING = flowkit.load(
    {
        "id": "dist_halting",
        "steps": [
            {"id": "start", "type": "start", "next": "before"},
            _call("before", "work", "wait"),
            {"id": "wait", "type": "halt", "reason": "waiting for a reply", "next": "after"},
            _call("after", "echo", "end", value="$response"),
            {"id": "end", "type": "end", "result": "$after"},
        ],
    }
)

#: before → ask (approval; ``timeout`` seconds, else ``expired``) → approved | expired.
APPROVAL = flowkit.load(
    {
        "id": "dist_approval",
        "steps": [
            {"id": "start", "type": "start", "next": "before"},
            _call("before", "work", "ask"),
            {
                "id": "ask",
                "type": "approval",
                "prompt": "Go on?",
                "timeout": 1,
                "on_timeout": "expired",
                "next": "approved",
            },
            _call("approved", "echo", "end", value="approved"),
            _call("expired", "echo", "end", value="expired"),
            {"id": "end", "type": "end", "result": "$history"},
        ],
    }
)


def flaky(step: str) -> str:
    """Note the call; the first call of each execution fails."""
    _note(step)
    if calls(_dir())[(step, flowkit.current().execution_id)] == 1:
        raise RuntimeError("not yet")
    return step


#: before → flaky (fails once, retried after 0.2 s) → after.
RETRYING = flowkit.load(
    {
        "id": "dist_retrying",
        "steps": [
            {"id": "start", "type": "start", "next": "before"},
            _call("before", "work", "flaky"),
            {**_call("flaky", "flaky", "after"), "retries": 1, "retry_delay": 0.2},
            _call("after", "work", None),
        ],
    }
)


#: before → nap (sleeps 0.5 s) → after.
SLEEPING = flowkit.load(
    {
        "id": "dist_sleeping",
        "steps": [
            {"id": "start", "type": "start", "next": "before"},
            _call("before", "work", "nap"),
            {"id": "nap", "type": "sleep", "seconds": 0.5, "next": "after"},
            _call("after", "work", None),
        ],
    }
)


def poison(step: str) -> str:
    """Note the call and return text no store can keep (a lone surrogate)."""
    _note(step)
    return "bad \ud800"


#: before → poison (returns what no store can keep) → after.
POISONED = flowkit.load(
    {
        "id": "dist_poisoned",
        "steps": [
            {"id": "start", "type": "start", "next": "before"},
            _call("before", "work", "poison"),
            _call("poison", "poison", "after"),
            _call("after", "work", None),
        ],
    }
)

# --- execution control (SPEC §15) -----------------------------------------------------------------


def until_fixed(step: str) -> str:
    """Note the call; fail until the test created ``fixed``."""
    _note(step)
    if not (_dir() / FIXED).exists():
        raise RuntimeError(f"{step} is down")
    return step


async def hang(step: str) -> str:
    """Note the call, say so in ``started``; then await until cancelled (a minute at most)."""
    _note(step)
    (_dir() / STARTED).write_text(str(os.getpid()))
    await asyncio.sleep(60)
    return step


def _booked(then: str, undo: str = "work") -> dict[str, Any]:
    """``book``, undone by ``unbook`` (a call of ``undo``, e.g. the blocking ``slow``)."""
    return {
        **_call("book", "work", then),
        "compensate": {"service": "Distributed", "method": undo, "input": {"step": "unbook"}},
    }


#: before → broken (fails until ``fixed`` exists; no retries) → after.
BROKEN = flowkit.load(
    {
        "id": "dist_broken",
        "steps": [
            {"id": "start", "type": "start", "next": "before"},
            _call("before", "work", "broken"),
            _call("broken", "until_fixed", "after"),
            _call("after", "work", None),
        ],
    }
)

#: book (undone by unbook) → slow (blocks until released) → after.
SAGA = flowkit.load(
    {
        "id": "dist_saga",
        "steps": [
            {"id": "start", "type": "start", "next": "book"},
            _booked("slow"),
            _call("slow", "slow", "after"),
            _call("after", "work", None),
        ],
    }
)

#: book (undone by unbook) → hang (an async service awaiting a minute) → after.
HANGING = flowkit.load(
    {
        "id": "dist_hanging",
        "steps": [
            {"id": "start", "type": "start", "next": "book"},
            _booked("hang"),
            _call("hang", "hang", "after"),
            _call("after", "work", None),
        ],
    }
)

#: book (undone by unbook) → nap (sleeps ``seconds``, 30 by default) → after.
DOZING = flowkit.load(
    {
        "id": "dist_dozing",
        "inputs": {"seconds": {"type": "number", "default": 30}},
        "steps": [
            {"id": "start", "type": "start", "next": "book"},
            _booked("nap"),
            {"id": "nap", "type": "sleep", "seconds": "$input.seconds", "next": "after"},
            _call("after", "work", None),
        ],
    }
)

#: book (undone by unbook, which blocks until released) → broken (fails until fixed).
UNDOING = flowkit.load(
    {
        "id": "dist_undoing",
        "steps": [
            {"id": "start", "type": "start", "next": "book"},
            _booked("broken", undo="slow"),
            _call("broken", "until_fixed", None),
        ],
    }
)

#: book (undone by unbook) → fan (gate blocks until released; ``BRANCHES`` quick ones) → after.
GATED_FAN = flowkit.load(
    {
        "id": "dist_gated_fan",
        "steps": [
            {"id": "start", "type": "start", "next": "book"},
            _booked("fan"),
            {
                "id": "fan",
                "type": "parallel",
                "branches": [
                    {
                        "id": "gate",
                        "type": "call",
                        "service": "Distributed",
                        "method": "slow",
                        "input": {"step": "fan:gate"},
                    },
                    *[
                        {
                            "id": f"b{i:02d}",
                            "type": "call",
                            "service": "Distributed",
                            "method": "branch",
                            "input": {"step": f"fan:b{i:02d}", "index": i},
                        }
                        for i in range(BRANCHES)
                    ],
                ],
                "next": "after",
            },
            _call("after", "work", None),
        ],
    }
)

#: book (undone by unbook) → pay (waits for the signal ``paid``) → after (gets its payload).
PAYING = flowkit.load(
    {
        "id": "dist_paying",
        "steps": [
            {"id": "start", "type": "start", "next": "book"},
            _booked("pay"),
            {"id": "pay", "type": "wait", "signal": "paid", "output": "paid", "next": "after"},
            _call("after", "echo", None, value="$paid"),
        ],
    }
)

#: before → fan (b0, b2 work; b1 fails until ``fixed`` exists) → after.
BROKEN_FAN = flowkit.load(
    {
        "id": "dist_broken_fan",
        "steps": [
            {"id": "start", "type": "start", "next": "before"},
            _call("before", "work", "fan"),
            {
                "id": "fan",
                "type": "parallel",
                "output": "fanned",
                "branches": [
                    {
                        "id": f"b{i}",
                        "type": "call",
                        "service": "Distributed",
                        "method": "until_fixed" if i == 1 else "work",
                        "input": {"step": f"fan:b{i}"},
                    }
                    for i in range(3)
                ],
                "next": "after",
            },
            _call("after", "echo", "end", value="$fanned"),
            {"id": "end", "type": "end", "result": "$after"},
        ],
    }
)

WORKFLOWS = (
    SLOW,
    CHAIN,
    FANOUT,
    HALTING,
    APPROVAL,
    RETRYING,
    SLEEPING,
    POISONED,
    BROKEN,
    SAGA,
    HANGING,
    DOZING,
    UNDOING,
    GATED_FAN,
    PAYING,
    BROKEN_FAN,
)


def register() -> None:
    """Register the ``Distributed`` service and the workflows in this process; in a
    worker process (``flowkit worker`` names its modules), log its messages."""
    flowkit.register_service(
        "Distributed",
        {
            "work": work,
            "slow": slow,
            "branch": branch,
            "echo": echo,
            "flaky": flaky,
            "poison": poison,
            "until_fixed": until_fixed,
            "hang": hang,
        },
    )
    for wf in WORKFLOWS:
        flowkit.register(wf)
    if os.environ.get(fk_dramatiq.MODULES_VAR) and TEST_DIR in os.environ:
        fk_dramatiq.get_runtime().broker.add_middleware(MessageLog())


register()
