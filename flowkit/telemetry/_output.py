"""How long-running commands print logs: text or one JSON object per line."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["LEVELS", "JSONFormatter", "configure_logging"]

LEVELS = ("debug", "info", "warning", "error")
"""The levels ``--log-level`` takes."""

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"

# What every LogRecord has: anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


class JSONFormatter(logging.Formatter):
    """Formats a record as one line of JSON: ``time`` (UTC, ISO 8601), ``level``,
    ``logger``, ``message``, ``process``, the fields the record got through
    ``extra`` (flowkit's step records: ``execution_id``, ``workflow_id``,
    ``step_id``, ``step_type``, ``attempt``, ``trace_id``…) and ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False, default=str)


_HANDLER = "flowkit"


def configure_logging(format: str = "text", level: str = "info", *, replace: bool = False) -> None:
    """Print flowkit's logs at ``level`` and above, and other libraries' warnings, on
    stderr: as text, or (``format="json"``) one JSON object per line.

    Calling it again replaces the handler it added; with ``replace``, every
    handler of the root logger goes (a Dramatiq worker process's own).

    Raises:
        ValueError: an unknown format or level.
    """
    if format not in ("text", "json"):
        raise ValueError(f"unknown log format {format!r}: use 'text' or 'json'")
    if level.lower() not in LEVELS:
        raise ValueError(f"unknown log level {level!r}: use one of {', '.join(LEVELS)}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if replace or handler.get_name() == _HANDLER:
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER)
    handler.setFormatter(JSONFormatter() if format == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    logging.getLogger("flowkit").setLevel(level.upper())
