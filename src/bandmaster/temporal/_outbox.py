"""The outbox of a Temporal client: starts and signals kept in a local SQLite file while the
Temporal frontend is unreachable, and forwarded, oldest first, when it answers again.

    engine = bm.TemporalEngine("temporal:7233", outbox="outbox.db")

Each entry is what would have been sent: a start (workflow, input, memo: already redacted, as
a start is before it reaches history) or a signal (its payload redacted the same way). A run
started into the outbox has its run id at once (the Temporal workflow id), so forwarding is
idempotent: a start sent twice finds the run it started (``USE_EXISTING``), and a signal
carries a request id Temporal deduplicates. Entries the server refuses for good (an id used
by another request, a run that no longer exists) are kept as ``failed`` with the reason, for
``bandmaster outbox status`` to show; they never block the entries behind them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bandmaster.errors import UsageError

EntryKind = Literal["start", "signal"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,   -- forwarding order
    kind        TEXT NOT NULL,                       -- start | signal
    run_id      TEXT NOT NULL,
    name        TEXT NOT NULL,                       -- the workflow (start) or the signal name
    payload     TEXT NOT NULL,                       -- JSON, redacted
    memo        TEXT,                                -- JSON (start only)
    request_id  TEXT NOT NULL,                       -- what Temporal deduplicates a signal by
    created_at  REAL NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    status      TEXT NOT NULL DEFAULT 'pending'      -- pending | failed
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(status, id);
CREATE INDEX IF NOT EXISTS outbox_run ON outbox(run_id, kind);
-- Runs this client started, with their redaction: a signal to one of them while Temporal is
-- unreachable can be redacted here, before it is kept (else it is refused, not kept raw).
CREATE TABLE IF NOT EXISTS started (
    run_id     TEXT PRIMARY KEY,
    workflow   TEXT NOT NULL,
    redaction  TEXT                                  -- JSON spec, or NULL: not redacted
);
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    kind: EntryKind
    run_id: str
    name: str
    payload: Any
    memo: dict[str, Any] | None
    request_id: str
    created_at: float
    attempts: int
    last_error: str | None
    status: str


class Outbox:
    """The outbox file. One process forwards at a time (SQLite's write lock orders writers)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise UsageError(f"outbox {self.path} is a directory; give a file path such as outbox.db")
        try:
            self._conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # an entry acknowledged is an entry kept
            self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"outbox {self.path} cannot be used ({exc}); give a new file path") from None

    @classmethod
    def existing(cls, path: str | os.PathLike[str]) -> Outbox:
        """An outbox file that must exist already (what a reader opens: it creates nothing)."""
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"no outbox at {path}; give the path the engine was given (outbox=...)")
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
                tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{path} is not an outbox ({exc})") from None
        if "outbox" not in tables:
            raise UsageError(f"{path} is not an outbox (it has no outbox table)")
        return cls(path)

    def close(self) -> None:
        self._conn.close()

    def put(
        self, kind: EntryKind, run_id: str, name: str, payload: Any, memo: dict[str, Any] | None = None
    ) -> None:
        self._conn.execute(
            "INSERT INTO outbox (kind, run_id, name, payload, memo, request_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                kind,
                run_id,
                name,
                json.dumps(payload),
                json.dumps(memo) if memo is not None else None,
                uuid.uuid4().hex,
                time.time(),
            ),
        )

    def remember(self, run_id: str, workflow: str, redaction: Any) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO started (run_id, workflow, redaction) VALUES (?, ?, ?)",
            (run_id, workflow, json.dumps(redaction) if redaction is not None else None),
        )

    def started(self, run_id: str) -> tuple[str, Any] | None:
        """(workflow, redaction spec or None) of a run this client started, else None."""
        row = self._conn.execute(
            "SELECT workflow, redaction FROM started WHERE run_id = ?", (run_id,)
        ).fetchone()
        return (row[0], json.loads(row[1]) if row[1] else None) if row is not None else None

    def has_pending(self) -> bool:
        return (
            self._conn.execute("SELECT 1 FROM outbox WHERE status = 'pending' LIMIT 1").fetchone() is not None
        )

    def oldest(self) -> OutboxEntry | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY id LIMIT 1"
        ).fetchone()
        return _entry(row) if row is not None else None

    def sent(self, entry: OutboxEntry) -> None:
        self._conn.execute("DELETE FROM outbox WHERE id = ?", (entry.id,))

    def try_later(self, entry: OutboxEntry, error: str) -> None:
        self._conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?", (error, entry.id)
        )

    def refused(self, entry: OutboxEntry, error: str) -> None:
        self._conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, status = 'failed' WHERE id = ?",
            (error, entry.id),
        )

    def entries(self, *, limit: int = 100) -> list[OutboxEntry]:
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM outbox ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [_entry(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """``pending_start``, ``pending_signal``, ``failed_start``, ``failed_signal``."""
        counts = {f"{status}_{kind}": 0 for status in ("pending", "failed") for kind in ("start", "signal")}
        for status, kind, count in self._conn.execute(
            "SELECT status, kind, COUNT(*) FROM outbox GROUP BY status, kind"
        ):
            counts[f"{status}_{kind}"] = count
        return counts


_COLUMNS = "id, kind, run_id, name, payload, memo, request_id, created_at, attempts, last_error, status"


def _entry(row: tuple[Any, ...]) -> OutboxEntry:
    id_, kind, run_id, name, payload, memo, request_id, created_at, attempts, last_error, status = row
    return OutboxEntry(
        id_,
        kind,
        run_id,
        name,
        json.loads(payload),
        json.loads(memo) if memo else None,
        request_id,
        created_at,
        attempts,
        last_error,
        status,
    )
