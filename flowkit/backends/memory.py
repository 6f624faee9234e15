"""The in-memory store (``memory://``): for tests, nothing is durable.

It behaves like a database-backed store in every observable way: records are
kept as a database keeps them, JSON as text (so nothing a caller holds aliases
stored state, and tuples come back as lists exactly as from a database), times
come back in UTC, every method is thread-safe, and a checkpoint is atomic and
version-guarded. Like the
database stores, it keeps each ctx value on its own, so a checkpoint encodes
only the values that changed.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

import attrs

from ..adapters import scheme_of
from ..errors import ConfigError, ConflictError, FlowkitError
from ..records import (
    CHECKPOINT_FIELDS,
    ENTRY_FIELDS,
    FIXED_FIELDS,
    Entry,
    Execution,
    RecordCodec,
    Schedule,
    Signal,
    Status,
    decode_json,
    encode_json,
)
from .checks import (
    check_after,
    check_checkpoint,
    check_limit,
    check_prunable,
    check_status,
    signal_refused,
    utc,
    utc_entry,
    utc_execution,
    utc_schedule,
    utc_signal,
)

__all__ = ["DurabilityWarning", "MemoryStore"]


class DurabilityWarning(UserWarning):
    """A store that keeps nothing durable was opened (``memory://``)."""


def _first_frame_outside_flowkit() -> int:
    """The ``stacklevel`` that points a warning at the user's code, past flowkit's own frames."""
    level, frame = 1, sys._getframe(1)  # the function that warns
    while frame.f_back is not None:
        module = frame.f_globals.get("__name__", "")
        if module != "flowkit" and not module.startswith("flowkit."):
            break
        frame, level = frame.f_back, level + 1
    return level


#: Written once by ``create``: every fixed field but the input (kept as JSON text).
_FIXED = tuple(name for name in FIXED_FIELDS if name != "input")
#: Rewritten by each checkpoint: every other field but ctx, whose values are kept apart.
_STATE = tuple(name for name in CHECKPOINT_FIELDS if name != "ctx")
#: Records as the values a database would hold: JSON fields as text, times and
#: scalars as they are (immutable), so that nothing stored aliases a caller's data.
_VALUES = RecordCodec(time_in=None, time_out=None, json_text=True)
#: The statuses whose executions a timer moves on (``due``).
_TIMED = (Status.HALTED, Status.WAITING)
_fixed_values = _VALUES.document(Execution, _FIXED)
_state_values = _VALUES.encoder(Execution, _STATE)
_entry_values = _VALUES.encoder(Entry, ENTRY_FIELDS)


def _ctx_texts(ctx: dict[str, Any], names: Iterable[str]) -> dict[str, str]:
    """The JSON text of each of ``names`` still in ``ctx``, in the order of ``names``."""
    return {name: encode_json(ctx[name]) for name in names if name in ctx}


class _Slot:
    """One stored execution: its values (JSON as text), ctx value texts, entries, index data."""

    __slots__ = (
        "base",
        "ctx",
        "entries",
        "fixed",
        "input_json",
        "keys",
        "mailbox",
        "record",
        "seq",
        "state",
        "version",
    )

    def __init__(
        self,
        execution: Execution,
        fixed: dict[str, Any],
        input_json: str,
        record: list[Any],
        ctx: dict[str, str],
    ) -> None:
        self.fixed = fixed  # the _FIXED fields (immutable values)
        self.input_json = input_json  # the input as JSON text, written once by create
        self.record = record  # the _STATE fields' values, rewritten by each checkpoint
        self.ctx = ctx  # ctx name -> its value's JSON text, in ctx order
        self.version = execution.version
        self.seq = execution.seq
        # entries[i] holds seq base + 1 + i, so `after=` is a slice, not a scan.
        self.base = execution.seq
        self.entries: list[list[Any]] = []
        # Read only for status, updated_at, wake_at and lease_expires_at (immutable values).
        self.state = execution
        # Signals in seq order (seq = index + 1), payloads as JSON text; keys ever sent.
        self.mailbox: list[tuple[Signal, str]] = []
        self.keys: set[str] = set()

    def texts(self) -> tuple[list[Any], dict[str, str], dict[str, Any], str]:
        return self.record, dict(self.ctx), self.fixed, self.input_json


def _decode(
    record: list[Any], ctx: dict[str, str], fixed: dict[str, Any], input_json: str
) -> Execution:
    data = dict(zip(_STATE, record, strict=True))
    data.update(fixed)
    # One JSON object of the value texts, in order: the codec decodes it as it does input.
    data["ctx"] = "{" + ",".join(f"{encode_json(name)}:{text}" for name, text in ctx.items()) + "}"
    data["input"] = input_json
    return _VALUES.execution(data)


def _signal(stored: tuple[Signal, str]) -> Signal:
    signal, payload = stored
    return attrs.evolve(signal, payload=decode_json(payload))


def _entry(values: list[Any]) -> Entry:
    return _VALUES.entry(dict(zip(ENTRY_FIELDS, values, strict=True)))


class MemoryStore:
    """A store that keeps executions in this process only, for tests.

    Every instance is a separate, empty store (the rest of the URL is ignored).
    It keeps JSON text, like a database, so loaded records never alias stored
    state and JSON fidelity is the same as a real store's.

    Args:
        url: ``memory://``.
        warn: issue a :class:`DurabilityWarning` (the default), since nothing
            survives the process.

    Raises:
        ConfigError: the URL's scheme is not ``memory``.
    """

    def __init__(self, url: str = "memory://", *, warn: bool = True) -> None:
        if scheme_of(url) != "memory":
            raise ConfigError(f"MemoryStore needs a memory:// URL, got {url!r}")
        if warn:
            warnings.warn(
                "memory:// store: nothing is durable; executions live in this process only "
                "and are lost when it exits. Use it for tests; use e.g. sqlite:///flowkit.db "
                "to keep them",
                DurabilityWarning,
                stacklevel=_first_frame_outside_flowkit(),
            )
        self._url = url
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        # name -> the schedule with its input as JSON text, so nothing aliases a caller's dict
        self._schedules: dict[str, tuple[Schedule, str]] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryStore({self._url!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise FlowkitError("store is closed")

    def create(self, execution: Execution) -> None:
        """Store a new execution.

        Raises:
            ConflictError: an execution with this id already exists.
            ValueError: a time is naive, or the record holds a value JSON cannot represent.
            TypeError: the record holds a value that is not JSON data.
            FlowkitError: the store is closed.
        """
        self._check_open()
        execution = utc_execution(execution)
        input_json = encode_json(execution.input)
        record = _state_values(execution)
        ctx = _ctx_texts(execution.ctx, execution.ctx)
        fixed = _fixed_values(execution)
        with self._lock:
            self._check_open()
            if execution.id in self._slots:
                raise ConflictError(f"execution {execution.id!r} already exists")
            self._slots[execution.id] = _Slot(execution, fixed, input_json, record, ctx)

    def load(self, execution_id: str) -> Execution | None:
        """The execution with this id, or None.

        Raises:
            FlowkitError: the store is closed.
        """
        self._check_open()
        with self._lock:
            slot = self._slots.get(execution_id)
            texts = None if slot is None else slot.texts()
        return None if texts is None else _decode(*texts)

    def checkpoint(
        self,
        execution: Execution,
        entries: Sequence[Entry],
        expected_version: int,
        *,
        changed: Collection[str] | None = None,
        consumed: Collection[int] = (),
    ) -> None:
        """Replace the execution and append ``entries``, atomically.

        With ``changed``, only those ctx values are encoded and written (see
        ``Store.checkpoint``); the signals ``consumed`` names are marked consumed.

        Raises:
            ConflictError: the execution does not exist, its stored version is
                not ``expected_version``, the entries do not continue its
                stored log, or a consumed seq is not a pending signal; nothing
                was written.
            ValueError: the arguments are inconsistent (see ``Store.checkpoint``),
                a time is naive, or a value cannot be represented in JSON.
            TypeError: a value is not JSON data.
            FlowkitError: the store is closed.
        """
        self._check_open()
        execution = utc_execution(execution)
        check_checkpoint(execution, entries, expected_version, changed)
        record = _state_values(execution)
        ctx = _ctx_texts(execution.ctx, execution.ctx if changed is None else changed)
        rows = [_entry_values(utc_entry(entry)) for entry in entries]
        previous_seq = execution.seq - len(entries)
        with self._lock:
            self._check_open()
            slot = self._slots.get(execution.id)
            if slot is None:
                raise ConflictError(
                    f"checkpoint of execution {execution.id!r}: it does not exist "
                    "(deleted, or never created); nothing was written"
                )
            if slot.version != expected_version:
                raise ConflictError(
                    f"checkpoint of execution {execution.id!r}: expected version "
                    f"{expected_version}, but the store holds version {slot.version} "
                    "(another writer got there first); nothing was written"
                )
            if slot.seq != previous_seq:
                raise ConflictError(
                    f"checkpoint of execution {execution.id!r}: entries must continue at seq "
                    f"{slot.seq + 1}, got {previous_seq + 1}; nothing was written"
                )
            for seq in consumed:
                if not 0 < seq <= len(slot.mailbox) or slot.mailbox[seq - 1][0].consumed:
                    raise ConflictError(
                        f"checkpoint of execution {execution.id!r}: signal {seq} is not "
                        "pending in its mailbox; nothing was written"
                    )
            for seq in consumed:
                signal, payload = slot.mailbox[seq - 1]
                slot.mailbox[seq - 1] = (attrs.evolve(signal, consumed=execution.version), payload)
            slot.record = record
            if changed is None:
                slot.ctx = ctx
            else:
                slot.ctx.update(ctx)  # a value set again keeps its place; new ones go last
            slot.version = execution.version
            slot.seq = execution.seq
            slot.state = execution
            slot.entries.extend(rows)

    def entries(self, execution_id: str, *, after: int = 0) -> list[Entry]:
        """The entries with ``seq > after``, in ``seq`` order (none for an unknown id).

        Raises:
            FlowkitError: the store is closed.
        """
        self._check_open()
        with self._lock:
            slot = self._slots.get(execution_id)
            if slot is None:
                return []
            rows = slot.entries[max(0, after - slot.base) :]
        return [_entry(values) for values in rows]

    def find(
        self,
        *,
        workflow_id: str | None = None,
        status: Status | str | None = None,
        limit: int = 100,
        after: tuple[datetime, str] | None = None,
    ) -> list[Execution]:
        """Executions matching the filters, most recently updated first (ties: id descending),
        strictly after the position ``after`` when given.

        Raises:
            ValueError: the status is unknown, ``limit`` is negative, or ``after``'s time is naive.
            FlowkitError: the store is closed.
        """
        self._check_open()
        check_limit(limit)
        wanted = check_status(status)
        position = check_after(after)
        with self._lock:
            found = [
                (slot.state.updated_at, execution_id, slot.texts())
                for execution_id, slot in self._slots.items()
                if (workflow_id is None or slot.fixed["workflow_id"] == workflow_id)
                and (wanted is None or slot.state.status == wanted)
                and (position is None or (slot.state.updated_at, execution_id) < position)
            ]
        found.sort(reverse=True)
        return [_decode(*texts) for _, _, texts in found[:limit]]

    def due(self, now: datetime, *, limit: int = 100) -> list[Execution]:
        """Halted or waiting executions whose ``wake_at`` is at or before ``now``,
        earliest first.

        Ties are ordered by id.

        Raises:
            ValueError: ``now`` is naive, or ``limit`` is negative.
            FlowkitError: the store is closed.
        """
        self._check_open()
        check_limit(limit)
        now = utc(now, "now")
        with self._lock:
            found = [
                (slot.state.wake_at, execution_id, slot.texts())
                for execution_id, slot in self._slots.items()
                if slot.state.status in _TIMED
                and slot.state.wake_at is not None
                and slot.state.wake_at <= now
            ]
        found.sort()
        return [_decode(*texts) for _, _, texts in found[:limit]]

    def stale(self, now: datetime, *, limit: int = 100) -> list[Execution]:
        """Running executions whose lease expired at or before ``now``, oldest first.

        Ties are ordered by id.

        Raises:
            ValueError: ``now`` is naive, or ``limit`` is negative.
            FlowkitError: the store is closed.
        """
        self._check_open()
        check_limit(limit)
        now = utc(now, "now")
        with self._lock:
            found = [
                (slot.state.lease_expires_at, execution_id, slot.texts())
                for execution_id, slot in self._slots.items()
                if slot.state.status == Status.RUNNING
                and slot.state.lease_expires_at is not None
                and slot.state.lease_expires_at <= now
            ]
        found.sort()
        return [_decode(*texts) for _, _, texts in found[:limit]]

    def delete(self, execution_id: str) -> bool:
        """Delete an execution and its entries; False if it did not exist.

        Raises:
            FlowkitError: the store is closed.
        """
        self._check_open()
        with self._lock:
            return self._slots.pop(execution_id, None) is not None

    def send_signal(self, signal: Signal) -> Signal | None:
        """Append ``signal`` to its execution's mailbox (see ``Store.send_signal``).

        Raises:
            NotFoundError: the execution does not exist.
            ExecutionError: the execution is finished.
            ValueError: ``sent_at`` is naive, or the payload holds NaN or an infinity.
            TypeError: the payload is not JSON data.
            FlowkitError: the store is closed.
        """
        self._check_open()
        signal, payload = utc_signal(signal)
        with self._lock:
            self._check_open()
            slot = self._slots.get(signal.execution_id)
            if slot is None or slot.state.status.finished:
                raise signal_refused(signal, None if slot is None else slot.state.status)
            if signal.key is not None:
                if signal.key in slot.keys:
                    return None
                slot.keys.add(signal.key)
            signal = attrs.evolve(signal, seq=len(slot.mailbox) + 1)
            slot.mailbox.append((signal, payload))
        return _signal((signal, payload))

    def signals(self, execution_id: str, *, name: str | None = None) -> list[Signal]:
        """The execution's pending signals, of ``name`` if given, in seq order.

        Raises:
            FlowkitError: the store is closed.
        """
        self._check_open()
        with self._lock:
            slot = self._slots.get(execution_id)
            pending = [
                stored
                for stored in ([] if slot is None else slot.mailbox)
                if stored[0].consumed is None and (name is None or stored[0].name == name)
            ]
        return [_signal(stored) for stored in pending]

    def save_schedule(self, schedule: Schedule) -> None:
        """Insert the schedule, or replace the one with its name.

        Raises:
            ValueError: a time is naive, or the input holds NaN or an infinity.
            TypeError: the input is not JSON data.
            FlowkitError: the store is closed.
        """
        self._check_open()
        schedule = utc_schedule(schedule)
        stored = (schedule, encode_json(schedule.input))
        with self._lock:
            self._check_open()
            self._schedules[schedule.name] = stored

    def schedules(self) -> list[Schedule]:
        """Every schedule, by name.

        Raises:
            FlowkitError: the store is closed.
        """
        self._check_open()
        with self._lock:
            stored = sorted(self._schedules.items())
        return [attrs.evolve(schedule, input=decode_json(text)) for _, (schedule, text) in stored]

    def delete_schedule(self, name: str) -> bool:
        """Delete a schedule; False if there was none.

        Raises:
            FlowkitError: the store is closed.
        """
        self._check_open()
        with self._lock:
            return self._schedules.pop(name, None) is not None

    def schedule_fired(self, name: str, slot: datetime) -> bool:
        """Record ``slot`` as the schedule's last slot if it is later than the stored one.

        Raises:
            ValueError: ``slot`` is naive.
            FlowkitError: the store is closed.
        """
        self._check_open()
        slot = utc(slot, "slot")
        with self._lock:
            stored = self._schedules.get(name)
            if stored is None:
                return False
            schedule, text = stored
            if schedule.last_slot is not None and schedule.last_slot >= slot:
                return False
            self._schedules[name] = (attrs.evolve(schedule, last_slot=slot), text)
            return True

    def prune(
        self,
        *,
        before: datetime,
        statuses: Iterable[Status | str],
        dry_run: bool = False,
    ) -> int:
        """Delete finished executions last updated before ``before``; how many went.

        Raises:
            ValueError: ``before`` is naive, or a status is unknown or not finished.
            FlowkitError: the store is closed.
        """
        self._check_open()
        before, wanted = check_prunable(before, statuses)
        with self._lock:
            gone = [
                execution_id
                for execution_id, slot in self._slots.items()
                if slot.state.status in wanted and slot.state.updated_at < before
            ]
            if not dry_run:
                for execution_id in gone:
                    del self._slots[execution_id]
        return len(gone)

    def close(self) -> None:
        """Drop everything; later calls raise :class:`FlowkitError`. Closing twice is fine."""
        with self._lock:
            self._closed = True
            self._slots.clear()
            self._schedules.clear()
