"""``--log-level`` and ``--log-json`` of the commands that run things (run, worker, server).

Logs go to stderr, one record per line. Plain lines are ``time level logger: message``; with
``--log-json`` each line is a JSON object (time, level, logger, message, and the exception's
traceback when there is one), so a log shipper needs no parsing rules. Messages are whatever
the code logged, user data arriving as arguments (``log.info("run %s", run_id)``), so a ``%``
or ``{`` in data is printed as it is, never taken as a format; in JSON, control characters in
data are escaped.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

LEVELS = ("debug", "info", "warning", "error", "critical")


def _check_level(value: str) -> str:
    if value.lower() not in LEVELS:
        raise typer.BadParameter(f"{value!r} is not a log level; use one of {', '.join(LEVELS)}")
    return value.lower()


LogLevelOption = Annotated[
    str,
    typer.Option(
        "--log-level", callback=_check_level, help=f"Least severe log records shown: {', '.join(LEVELS)}"
    ),
]
LogJsonOption = Annotated[bool, typer.Option("--log-json", help="Write logs as one JSON object per line")]


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(level: str = "warning", json_logs: bool = False) -> None:
    """Send every logger's records at ``level`` and above to stderr, plain or as JSON."""
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_check_level(level).upper())
