"""What stores keep: executions and their audit-log entries (SPEC §3), and one codec for them.

The fields of :class:`Execution` and :class:`Entry` are declared once, on the
attrs classes below; each field's metadata says what kind of value it holds
(text, JSON, a time…) and whether a checkpoint may rewrite it. Every store maps
records to the values it writes, and back, through a :class:`RecordCodec` built
from those declarations: a store names the fields it keeps, never lists them
again, and never reads a row by position.

Messages (errors) are written with NUL and lone surrogates escaped
(:func:`flowkit.limits.storable_text`), so that every store keeps the same text.

This module imports only :mod:`flowkit.limits`: every other module may import it.
"""

from __future__ import annotations

import enum
import json
import json.encoder
import reprlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, TypeVar

import attrs

from .limits import storable_text

__all__ = [
    "CHECKPOINT_FIELDS",
    "DOCUMENT",
    "ENTRY_FIELDS",
    "EXECUTION_FIELDS",
    "FIXED_FIELDS",
    "Action",
    "Entry",
    "Execution",
    "FieldKind",
    "RecordCodec",
    "Schedule",
    "Signal",
    "Status",
    "decode_json",
    "encode_json",
    "entry_from_dict",
    "entry_to_dict",
    "execution_from_dict",
    "execution_to_dict",
    "field_kinds",
]


class Status(enum.StrEnum):
    """The status of an execution."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    HALTED = "halted"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Completed, failed or cancelled: nothing moves the execution on by itself
        (only :meth:`flowkit.Engine.retry` takes a failed one up again)."""
        return self in _FINISHED


_FINISHED = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})


class Action(enum.StrEnum):
    """What an entry records about a step (or about the execution, for ``cancelled``)."""

    COMPLETED = "completed"
    HALTED = "halted"
    FAILED = "failed"
    RETRIED = "retried"
    RESUMED = "resumed"
    WAITING = "waiting"
    CANCELLED = "cancelled"
    COMPENSATED = "compensated"


class FieldKind(enum.Enum):
    """What a record field holds, which decides how a store writes it."""

    ID = "id"  # an identifier, written as it is
    TEXT = "text"  # a name flowkit makes (a step's path, a version…), written as it is
    MESSAGE = "message"  # free text (an error): NUL and lone surrogates are escaped
    JSON = "json"  # JSON data (None is written as a missing value, not as JSON null)
    TIME = "time"  # a timezone-aware UTC datetime, or None
    INT = "int"
    FLOAT = "float"
    STATUS = "status"
    ACTION = "action"


_KIND = "flowkit.kind"
_FIXED = "flowkit.fixed"


# A repr shows the start and the end of a long error, never all of it.
_brief = reprlib.Repr()
_brief.maxstring = 80


def _holds(kind: FieldKind, *, fixed: bool = False) -> dict[str, Any]:
    """A record field's metadata: its kind, and whether it is fixed once created."""
    return {_KIND: kind, _FIXED: fixed}


@attrs.frozen(kw_only=True)
class Execution:
    """One run of a workflow, as a store keeps it.

    Every write bumps ``version``; a store accepts a checkpoint only when the
    version it holds is the one the writer read (optimistic concurrency).

    Attributes:
        id: the execution id.
        workflow_id: the workflow's id.
        workflow_version: the workflow's ``version``.
        status: where the execution is in its life.
        input: the input it was started with (defaults applied).
        ctx: the workflow variables (JSON data).
        current_step: the top-level step to run next (or halted at).
        cursor: the position inside loops, parallel steps and sub-workflows,
            plus retry bookkeeping (JSON data; empty at the top level; see
            :mod:`flowkit.cursor`).
        result: the output, once completed.
        recover_to: the step a resume continues at.
        halt_data: what a halt or approval asked for.
        error: ``"<ExceptionType>: <message>"`` once failed.
        parent_id: the parent execution, for sub-workflows.
        version: bumped by every write.
        seq: the ``seq`` of the last entry written (entries are numbered 1, 2, 3…).
        created_at: when the execution was created (UTC).
        updated_at: when it was last written (UTC).
        wake_at: when a timer (an approval timeout) fires, if any.
        definition_hash: a hash of the definition it was started with.
        lease_owner: the process advancing it while running.
        lease_expires_at: until when that process holds it.
        traceparent: the W3C ``traceparent`` of the trace the execution's
            spans join (set by :mod:`flowkit.telemetry` when it starts), if any.
    """

    id: str = attrs.field(metadata=_holds(FieldKind.ID, fixed=True))
    workflow_id: str = attrs.field(metadata=_holds(FieldKind.ID, fixed=True))
    workflow_version: str = attrs.field(default="1.0", metadata=_holds(FieldKind.TEXT))
    status: Status = attrs.field(default=Status.PENDING, metadata=_holds(FieldKind.STATUS))
    input: dict[str, Any] = attrs.field(factory=dict, metadata=_holds(FieldKind.JSON, fixed=True))
    ctx: dict[str, Any] = attrs.field(factory=dict, metadata=_holds(FieldKind.JSON))
    current_step: str | None = attrs.field(default=None, metadata=_holds(FieldKind.TEXT))
    cursor: dict[str, Any] = attrs.field(factory=dict, metadata=_holds(FieldKind.JSON))
    result: Any = attrs.field(default=None, metadata=_holds(FieldKind.JSON))
    recover_to: str | None = attrs.field(default=None, metadata=_holds(FieldKind.TEXT))
    halt_data: dict[str, Any] | None = attrs.field(default=None, metadata=_holds(FieldKind.JSON))
    error: str | None = attrs.field(default=None, metadata=_holds(FieldKind.MESSAGE))
    parent_id: str | None = attrs.field(default=None, metadata=_holds(FieldKind.ID, fixed=True))
    version: int = attrs.field(default=1, metadata=_holds(FieldKind.INT))
    seq: int = attrs.field(default=0, metadata=_holds(FieldKind.INT))
    created_at: datetime = attrs.field(metadata=_holds(FieldKind.TIME, fixed=True))
    updated_at: datetime = attrs.field(metadata=_holds(FieldKind.TIME))
    wake_at: datetime | None = attrs.field(default=None, metadata=_holds(FieldKind.TIME))
    definition_hash: str | None = attrs.field(default=None, metadata=_holds(FieldKind.TEXT))
    lease_owner: str | None = attrs.field(default=None, metadata=_holds(FieldKind.TEXT))
    lease_expires_at: datetime | None = attrs.field(default=None, metadata=_holds(FieldKind.TIME))
    traceparent: str | None = attrs.field(default=None, metadata=_holds(FieldKind.TEXT, fixed=True))

    def __repr__(self) -> str:  # short: ctx and input may be megabytes
        text = f"<Execution {self.status} id={self.id!r} workflow_id={self.workflow_id!r}"
        if self.current_step is not None:
            text += f" current_step={self.current_step!r}"
        if self.error is not None:
            text += f" error={_brief.repr(self.error)}"
        return text + ">"


@attrs.frozen(kw_only=True)
class Entry:
    """One line of an execution's audit log.

    Attributes:
        id: ``"<execution_id>:<seq>"``.
        execution_id: the execution it belongs to.
        seq: 1, 2, 3… per execution, in the order written.
        step_id: the step (``loop_id:inner_id`` for nested steps).
        step_type: the step's type.
        action: completed, halted, waiting, failed, retried, resumed, cancelled or
            compensated.
        attempt: 1 for the first attempt, 2 for the first retry…
        duration_ms: how long the step ran.
        input: the resolved input of the step, when it has one.
        output: what the step produced.
        error: ``"<ExceptionType>: <message>"`` for failed and retried entries.
        timestamp: when the entry was written (UTC).
        iteration: the index of the innermost enclosing loop's iteration, for
            steps inside loop bodies; None elsewhere.
    """

    id: str = attrs.field(metadata=_holds(FieldKind.ID, fixed=True))
    execution_id: str = attrs.field(metadata=_holds(FieldKind.ID, fixed=True))
    seq: int = attrs.field(metadata=_holds(FieldKind.INT))
    step_id: str = attrs.field(metadata=_holds(FieldKind.TEXT))
    step_type: str = attrs.field(metadata=_holds(FieldKind.TEXT))
    action: Action = attrs.field(metadata=_holds(FieldKind.ACTION))
    attempt: int = attrs.field(default=1, metadata=_holds(FieldKind.INT))
    duration_ms: float = attrs.field(default=0.0, metadata=_holds(FieldKind.FLOAT))
    input: Any = attrs.field(default=None, metadata=_holds(FieldKind.JSON))
    output: Any = attrs.field(default=None, metadata=_holds(FieldKind.JSON))
    error: str | None = attrs.field(default=None, metadata=_holds(FieldKind.MESSAGE))
    timestamp: datetime = attrs.field(metadata=_holds(FieldKind.TIME))
    iteration: int | None = attrs.field(default=None, metadata=_holds(FieldKind.INT))

    def __repr__(self) -> str:  # short: input and output may be megabytes
        text = f"<Entry {self.action} id={self.id!r} step_id={self.step_id!r}"
        if self.attempt != 1:
            text += f" attempt={self.attempt}"
        if self.iteration is not None:
            text += f" iteration={self.iteration}"
        if self.error is not None:
            text += f" error={_brief.repr(self.error)}"
        return text + ">"


@attrs.frozen(kw_only=True)
class Signal:
    """A message sent to an execution, kept in its mailbox until a ``wait`` step consumes it.

    Attributes:
        execution_id: the execution it was sent to.
        seq: 1, 2, 3… per execution, in the order the store received them
            (the store assigns it: pass 0 to :meth:`flowkit.Store.send_signal`).
        name: what a ``wait`` step waits for.
        payload: JSON data, becomes the ``wait`` step's output.
        key: makes sending idempotent: a second signal with a key the
            execution's mailbox has seen (consumed or not) is dropped.
        sent_at: when it was sent (UTC).
        consumed: the execution ``version`` whose checkpoint consumed it, or None.
    """

    execution_id: str
    seq: int
    name: str
    payload: Any = None
    key: str | None = None
    sent_at: datetime
    consumed: int | None = None


@attrs.frozen(kw_only=True)
class Schedule:
    """A cron schedule that starts a workflow (SPEC §16), as a store keeps it.

    Attributes:
        name: unique per store.
        workflow_id: the registered workflow it starts.
        cron: the cron expression (croniter syntax).
        timezone: an IANA time zone name the expression is read in.
        input: the input of each execution it starts (JSON data).
        created_at: when it was saved (UTC); no slot before it fires.
        last_slot: the latest slot that started an execution (UTC), if any.
    """

    name: str
    workflow_id: str
    cron: str
    timezone: str = "UTC"
    input: dict[str, Any] = attrs.field(factory=dict)
    created_at: datetime
    last_slot: datetime | None = None


EXECUTION_FIELDS: tuple[str, ...] = tuple(field.name for field in attrs.fields(Execution))
"""Every field of an execution, in declaration order."""
FIXED_FIELDS: tuple[str, ...] = tuple(
    field.name for field in attrs.fields(Execution) if field.metadata[_FIXED]
)
"""The fields :meth:`Store.create` writes and a checkpoint never rewrites."""
CHECKPOINT_FIELDS: tuple[str, ...] = tuple(
    name for name in EXECUTION_FIELDS if name not in FIXED_FIELDS
)
"""The fields a checkpoint rewrites."""
ENTRY_FIELDS: tuple[str, ...] = tuple(field.name for field in attrs.fields(Entry))
"""Every field of an entry, in declaration order (``id`` is derived from the others)."""


def field_kinds(cls: type[Execution] | type[Entry]) -> dict[str, FieldKind]:
    """What each field of ``Execution`` or ``Entry`` holds, by name, in declaration order."""
    return {field.name: field.metadata[_KIND] for field in attrs.fields(cls)}


# --- JSON text ------------------------------------------------------------------------------------

# Built once: json.dumps with non-default options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# CPython's C encoder, called directly: JSONEncoder.encode builds it anew and wraps it in
# Python on every call, which costs more than encoding a small value. (None on PyPy.)
_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_encode_text: Any = json.encoder.encode_basestring


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode_json(value: Any) -> str:
    """Compact JSON text (UTF-8 kept as is).

    Raises:
        TypeError: the value is not JSON data.
        ValueError: it holds NaN or an infinity, or a circular reference.
        UnicodeEncodeError: it holds a lone surrogate, which no store can keep.
    """
    text: str
    kind = type(value)
    if kind is int:  # the common small values, as the encoder writes them
        return repr(value)
    if kind is str:
        text = _encode_text(value)
    elif value is None:
        return "null"
    elif kind is dict and not value:  # an empty cursor, most checkpoints
        return "{}"
    elif _make_encoder is None:
        text = _ENCODER.encode(value)
    else:  # a fresh encoder each time: its circular-reference markers must start empty
        encode = _make_encoder({}, _not_json, _encode_text, None, ":", ",", False, False, False)
        text = "".join(encode(value, 0))
    if not text.isascii():
        text.encode("utf-8")  # every store refuses a lone surrogate: so does this
    return text


def decode_json(text: str | bytes) -> Any:
    """The inverse of :func:`encode_json`."""
    return json.loads(text)


# --- the codec ------------------------------------------------------------------------------------

R = TypeVar("R", Execution, Entry)
Convert = Callable[[Any], Any]


def _optional(convert: Convert) -> Convert:
    def optional(value: Any) -> Any:
        return None if value is None else convert(value)

    return optional


def _iso(value: datetime) -> str:
    return value.isoformat()


class RecordCodec:
    """Turns records into the values a store writes, and those values back into records.

    A store builds one codec that says how it represents times, JSON and text;
    :meth:`encoder` then gives, for a list of field names, a function from a
    record to its values in that order, and :meth:`execution`/:meth:`entry`
    build records from values by field name.

    Args:
        time_in: a UTC datetime as the store writes it (default: ISO-8601 text;
            None: the datetime itself).
        time_out: the inverse of ``time_in`` (None: the value itself).
        json_text: whether JSON fields are written as JSON text (a column) or
            left as JSON data (inside a document that is encoded as a whole).
    """

    def __init__(
        self,
        *,
        time_in: Convert | None = _iso,
        time_out: Convert | None = datetime.fromisoformat,
        json_text: bool = False,
    ) -> None:
        identity = None
        # How each kind is written: a conversion (or None), and whether None stays None.
        self._in: dict[FieldKind, tuple[Convert | None, bool]] = {
            FieldKind.ID: (identity, False),
            FieldKind.TEXT: (identity, False),
            FieldKind.MESSAGE: (storable_text, True),
            FieldKind.JSON: (encode_json if json_text else identity, True),
            FieldKind.TIME: (time_in, True),
            FieldKind.INT: (identity, False),
            FieldKind.FLOAT: (float, False),
            # _value_, not value: the enum property is a Python call per read.
            FieldKind.STATUS: (attrgetter("_value_"), False),
            FieldKind.ACTION: (attrgetter("_value_"), False),
        }
        self._out: dict[FieldKind, Convert | None] = {
            FieldKind.ID: identity,
            FieldKind.TEXT: identity,
            FieldKind.MESSAGE: identity,
            FieldKind.JSON: _optional(decode_json) if json_text else identity,
            FieldKind.TIME: identity if time_out is None else _optional(time_out),
            FieldKind.INT: _optional(int),
            FieldKind.FLOAT: float,
            FieldKind.STATUS: Status,
            FieldKind.ACTION: Action,
        }
        self._decoders: dict[type[Any], list[tuple[str, Convert | None, bool]]] = {
            cls: [
                (
                    field.name,
                    self._out[field.metadata[_KIND]],
                    field.default is attrs.NOTHING,
                )
                for field in attrs.fields(cls)
            ]
            for cls in (Execution, Entry)
        }

    def encoder(self, cls: type[R], names: Sequence[str]) -> Callable[[R], list[Any]]:
        """A function from a record to the values of the fields ``names``, in that order.

        Raises:
            KeyError: a name is not a field of ``cls``.
        """
        encode: Callable[[R], list[Any]] = self._compile(cls, names, "[{}]", "{value}")
        return encode

    def document(self, cls: type[R], names: Sequence[str]) -> Callable[[R], dict[str, Any]]:
        """A function from a record to a mapping of the fields ``names`` to their values.

        Raises:
            KeyError: a name is not a field of ``cls``.
        """
        encode: Callable[[R], dict[str, Any]] = self._compile(
            cls, names, "{{{}}}", "{name!r}: {value}"
        )
        return encode

    def _compile(self, cls: type[R], names: Sequence[str], outer: str, item: str) -> Any:
        """Write the encoder as one expression, like attrs writes ``__init__``: it runs
        for every checkpoint, and a loop over fields would cost twice as much."""
        kinds = field_kinds(cls)
        scope: dict[str, Any] = {}
        items = []
        for index, name in enumerate(names):
            value = f"record.{name}"
            convert, optional = self._in[kinds[name]]
            if convert is not None:
                scope[f"_{index}"] = convert
                converted = f"_{index}({value})"
                value = f"(None if {value} is None else {converted})" if optional else converted
            items.append(item.format(name=name, value=value))
        source = f"def encode(record):\n    return {outer.format(', '.join(items))}\n"
        exec(compile(source, f"<flowkit {cls.__name__} encoder>", "exec"), scope)
        return scope["encode"]

    def _values(self, cls: type[R], values: Mapping[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for name, convert, required in self._decoders[cls]:
            if name in values:
                value = values[name]
                kwargs[name] = value if convert is None else convert(value)
            elif required:
                raise KeyError(f"{cls.__name__} record has no '{name}'")
        return kwargs

    def execution(self, values: Mapping[str, Any]) -> Execution:
        """The execution written as ``values`` (by field name).

        Raises:
            KeyError: a field without a default is missing.
        """
        return Execution(**self._values(Execution, values))

    def entry(self, values: Mapping[str, Any], *, execution_id: str | None = None) -> Entry:
        """The entry written as ``values`` (by field name).

        ``id`` and ``execution_id`` may be left out of ``values`` (stores that
        keep entries under their execution): ``execution_id`` is then given,
        and ``id`` is always ``"<execution_id>:<seq>"``.

        Raises:
            KeyError: a field without a default is missing.
        """
        kwargs = dict(values)
        if execution_id is not None:
            kwargs.setdefault("execution_id", execution_id)
        if "id" not in kwargs and "execution_id" in kwargs and "seq" in kwargs:
            kwargs["id"] = f"{kwargs['execution_id']}:{int(kwargs['seq'])}"
        return Entry(**self._values(Entry, kwargs))


DOCUMENT = RecordCodec()
"""Records as JSON data: times as ISO-8601 text, JSON fields nested (memory and Redis stores)."""

_execution_document = DOCUMENT.document(Execution, EXECUTION_FIELDS)
_entry_document = DOCUMENT.document(Entry, ENTRY_FIELDS)


def execution_to_dict(execution: Execution) -> dict[str, Any]:
    """The execution as JSON data (times as ISO-8601 text)."""
    return _execution_document(execution)


def execution_from_dict(data: Mapping[str, Any]) -> Execution:
    """The inverse of :func:`execution_to_dict`."""
    return DOCUMENT.execution(data)


def entry_to_dict(entry: Entry) -> dict[str, Any]:
    """The entry as JSON data."""
    return _entry_document(entry)


def entry_from_dict(data: Mapping[str, Any]) -> Entry:
    """The inverse of :func:`entry_to_dict`."""
    return DOCUMENT.entry(data)
