"""Building blocks of config classes: field markers that say what a field holds, and validators.

A step type's config class is a frozen attrs class. Markers in a field's
metadata tell the parser, the validator and the graph renderer what the field
holds, so a step type declared outside flowkit gets the same checks:

- ``target()``: a step id (an edge of the graph, checked to exist);
- ``EXPR``: JSON with ``$references``, resolved when the step runs;
- ``PATH``: a reference path such as ``items`` or ``$order.lines``;
- ``OUTPUT``: the ctx key the step writes (defined for later steps);
- ``KEY``: the YAML key, when it differs from the field name (``as``);
- ``STEPS``: nested steps (a loop's ``do``, a parallel step's ``branches``).

A field of seconds is declared with :func:`duration` and ``SECONDS`` in its
type, ``Annotated[float, SECONDS]``: it takes a number, ``"5m"``, ``"PT1H"``
or a timedelta (see :func:`seconds`) and holds the number of seconds.

Imports only :mod:`flowkit.frozen`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import attrs
from cattrs.gen import override

from ..frozen import FrozenDict, freeze

__all__ = [
    "EXPR",
    "KEY",
    "OUTPUT",
    "PATH",
    "SECONDS",
    "STEPS",
    "TARGET",
    "Duration",
    "duration",
    "frozen_mapping",
    "integer",
    "names",
    "non_empty",
    "number",
    "optional_non_empty",
    "optional_text",
    "seconds",
    "target",
]

TARGET = "flowkit.target"
EXPR = "flowkit.expr"
PATH = "flowkit.path"
OUTPUT = "flowkit.output"
KEY = "flowkit.key"
STEPS = "flowkit.steps"

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def non_empty(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"'{attribute.name}' must be a non-empty string")


def optional_non_empty(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: None or a non-empty string."""
    if value is not None:
        non_empty(inst, attribute, value)


optional_text: Validator = attrs.validators.optional(attrs.validators.instance_of(str))
"""Validator: None or a string."""


def number(minimum: float, *, optional: bool = False, exclusive: bool = False) -> Validator:
    """Validator: a number (not a bool) of at least (or, ``exclusive``, more than) ``minimum``."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"'{attribute.name}' must be a number, got {value!r}")
        if value < minimum or (exclusive and value == minimum):
            bound = "greater than" if exclusive else "at least"
            raise ValueError(f"'{attribute.name}' must be {bound} {minimum:g}, got {value!r}")

    return check


def integer(minimum: int) -> Validator:
    """Validator: an integer (not a bool) of at least ``minimum``."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"'{attribute.name}' must be an integer, got {value!r}")
        if value < minimum:
            raise ValueError(f"'{attribute.name}' must be at least {minimum}, got {value!r}")

    return check


def names(value: Any) -> tuple[str, ...]:
    """Converter: one name or several, as a tuple."""
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def frozen_mapping(value: Any) -> FrozenDict[str, Any]:
    """Converter: a mapping of JSON data, frozen."""
    frozen = freeze(value)
    if not isinstance(frozen, FrozenDict):
        raise TypeError(f"expected a mapping, got {type(value).__name__}")
    return frozen


def target() -> Any:
    """An optional field naming another step (``next``-like): an edge of the graph."""
    return attrs.field(default=None, validator=optional_non_empty, metadata={TARGET: True})


# --- durations ------------------------------------------------------------------------------

Duration = float | str | timedelta
"""A duration as given: seconds (``30``, ``1.5``), text with a unit (``"500ms"``,
``"1h30m"``), ISO 8601 (``"PT1H"``) or a :class:`~datetime.timedelta`."""

_FORMS = (
    "a number of seconds, a number with a unit (500ms, 30s, 5m, 24h, 7d, 1h30m) "
    "or an ISO 8601 duration (PT1H, P1DT2H)"
)
_NUMBER = r"\d+(?:\.\d+)?"
_UNIT_SECONDS = {
    "d": Decimal(86400),
    "h": Decimal(3600),
    "m": Decimal(60),
    "s": Decimal(1),
    "ms": Decimal("0.001"),
}
_WITH_UNITS = re.compile(
    "".join(rf"(?:(?P<{unit}>{_NUMBER}){unit})?" for unit in _UNIT_SECONDS), re.ASCII
)
_ISO_8601 = re.compile(
    rf"P(?:(?P<years>{_NUMBER})Y)?(?:(?P<months>{_NUMBER})M)?(?:(?P<d>{_NUMBER})D)?"
    rf"(?:T(?=\d)(?:(?P<h>{_NUMBER})H)?(?:(?P<m>{_NUMBER})M)?(?:(?P<s>{_NUMBER})S)?)?",
    re.ASCII,
)


def seconds(value: object) -> float:
    """The seconds of a :data:`Duration`.

    Text has units ``ms``, ``s``, ``m``, ``h`` and ``d`` (24 hours), largest
    first and each at most once (``"1d12h"``, ``"2m30s"``), or is ISO 8601
    with days, hours, minutes and seconds (``"P1DT2H"``, ``"PT0.5S"``).
    Numbers come back as given; text and timedeltas as an ``int`` when whole.

    Raises:
        ValueError: ``value`` is not a duration: a boolean, a number that is
            not finite, other text, or ISO 8601 with years or months (which
            have no fixed length).
    """
    if isinstance(value, timedelta):
        return _whole(value.total_seconds())
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number of seconds, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        match = _WITH_UNITS.fullmatch(value) or _ISO_8601.fullmatch(value)
        parts = {unit: text for unit, text in match.groupdict().items() if text} if match else {}
        if "years" in parts or "months" in parts:
            raise ValueError(
                "expected a duration without years or months, which have no fixed length "
                f"(write days, as in P30D), got {value!r}"
            )
        if parts:
            return _whole(sum(Decimal(text) * _UNIT_SECONDS[unit] for unit, text in parts.items()))
    raise ValueError(f"expected {_FORMS}, got {value!r}")


def _whole(total: Decimal | float) -> float:
    return int(total) if total == int(total) else float(total)


def _structure_seconds(value: object, _type: object) -> float | None:
    return None if value is None else seconds(value)


SECONDS = override(struct_hook=_structure_seconds)
"""Marks the type of a :func:`duration` field, ``Annotated[float, SECONDS]``
(``Annotated[float | None, SECONDS]`` when it defaults to None), so that cattrs
reads text such as ``"5m"`` in YAML. It must wrap the whole type."""


def _to_seconds(value: Duration | None) -> object:
    """Converter: the seconds of a duration; anything else is left for the validator to report."""
    try:
        return None if value is None else seconds(value)
    except ValueError:
        return value


def _duration(*, optional: bool, positive: bool) -> Validator:
    in_range = number(0, optional=optional, exclusive=positive)

    def check(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        try:
            seconds(value)
        except ValueError as exc:
            raise ValueError(f"'{attribute.name}': {exc}") from None
        in_range(inst, attribute, value)

    return check


def duration(
    *, default: Duration | attrs.NothingType | None = attrs.NOTHING, positive: bool = False
) -> Any:
    """A field of seconds, given as any :data:`Duration` and held as a number.

    Annotate it ``Annotated[float, SECONDS]``, or ``Annotated[float | None,
    SECONDS]`` with ``default=None`` (the field is then optional). The value
    must be at least 0, or more than 0 with ``positive``.
    """
    return attrs.field(
        default=default,
        converter=_to_seconds,
        validator=_duration(optional=default is None, positive=positive),
    )
