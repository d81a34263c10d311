"""Shared plumbing of the stats, export and retention modules: durations and journal connections."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

from bandmaster.errors import InvalidInput
from bandmaster.store._journal_file import check_schema, connect_read_only, is_a_directory, journal_error
from bandmaster.store._sqlite import SQLiteStore, resolve_db_path

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
MAX_DURATION = 100 * 365.25 * 86400.0
"""A century: no journal holds older runs, and far longer windows overflow date arithmetic."""
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")

JournalRef = SQLiteStore | str | os.PathLike[str]
"""A journal: an open store, a path, or a ``sqlite:///`` URL."""


def parse_duration(text: str | float, *, what: str = "duration") -> float:
    """``"90s"``, ``"30m"``, ``"24h"``, ``"7d"``, ``"2w"`` or plain seconds → seconds."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(text)
        if match is None:
            raise InvalidInput(
                f"{what} {text!r} is not a duration; write a number with a unit s/m/h/d/w, e.g. 24h or 7d"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not seconds > 0:  # also NaN
        raise InvalidInput(f"{what} must be positive, got {text!r}")
    if seconds > MAX_DURATION:
        raise InvalidInput(
            f"{what} {text!r} is longer than 100 years; give a shorter duration, or none for no limit"
        )
    return seconds


def journal_path(db: JournalRef) -> Path:
    return db.path if isinstance(db, SQLiteStore) else resolve_db_path(db)


def connect(
    db: JournalRef, *, write: bool = False, create: bool = False, busy_timeout: float = 30.0
) -> sqlite3.Connection:
    """A connection of our own to the journal (the engine's stays untouched).

    Read-only connections never create or write a file (they work on read-only media, too);
    writers migrate the schema first (via the store) so the retention table and indexes exist,
    and ``create`` makes a new journal.
    """
    path = journal_path(db)
    if path.is_dir():
        raise is_a_directory(path)
    if not path.is_file() and not (write and create):
        raise InvalidInput(f"no journal at {path}; pass --db PATH (or set BANDMASTER_DB)")
    if not write:
        conn = connect_read_only(path, timeout=busy_timeout)
        try:
            check_schema(conn, path, newest=None, writing=False)
        except BaseException:
            conn.close()
            raise
        return conn
    SQLiteStore(path, busy_timeout=busy_timeout).close()  # applies pending migrations
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=rw",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=busy_timeout,
        )
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    except sqlite3.Error as exc:
        raise journal_error(path, exc, "cannot open journal") from exc
    return conn
