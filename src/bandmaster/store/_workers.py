"""Which workflow versions the live workers of a journal host, so a run whose version no worker
hosts can say so ("no worker for triage@1") instead of waiting in silence.

Each worker writes one row when it starts, renews it at its heartbeat and deletes it when it
stops; a killed worker's row simply expires. A run's key is ``name@version`` (``name@``: no
version), the same text the claim query matches (``store/_claims.py``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the schema imports this module's migration, and the store the schema
    from bandmaster.store._sqlite import SQLiteStore

MIGRATION: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS workers (
        owner      TEXT PRIMARY KEY,   -- host/pid/token (engine/_worker.py)
        hosts      TEXT NOT NULL,      -- JSON list of the run keys it hosts
        started_at REAL NOT NULL,
        expires    REAL NOT NULL       -- renewed at each heartbeat; past it the worker is gone
    ) WITHOUT ROWID
    """,
]
"""The schema migration that adds the worker roster (number 18 in the migration list)."""

_UNFINISHED_KEYS = """
SELECT workflow, version, version IS NULL AND claims = 0, status, count(*)
FROM runs WHERE status IN ('queued', 'waiting', 'running')
GROUP BY workflow, version, version IS NULL AND claims = 0, status
"""


@dataclass(frozen=True, slots=True)
class UnservedRow:
    """Unfinished runs of one workflow version that no live worker hosts."""

    workflow: str
    version: str | None  # None: no version, or unpinned (any version of the name would do)
    unpinned: bool  # started by name where no version was hosted, never claimed
    statuses: dict[str, int]  # run count by status


class WorkerRoster:
    """The ``workers`` rows of one SQLite journal."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def enrol(self, owner: str, keys: Sequence[str], ttl: float) -> None:
        """Say that ``owner`` hosts ``keys`` for the next ``ttl`` seconds (again at each beat)."""
        now = self.store.now()
        self.store._write(
            lambda conn: conn.execute(
                "INSERT INTO workers (owner, hosts, started_at, expires) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(owner) DO UPDATE SET hosts = excluded.hosts, expires = excluded.expires",
                (owner, json.dumps(sorted(keys)), now, now + ttl),
            )
        )

    def leave(self, owner: str) -> None:
        self.store._write(lambda conn: conn.execute("DELETE FROM workers WHERE owner = ?", (owner,)))

    def unserved(self) -> list[UnservedRow]:
        """Unfinished runs, by workflow version, that no live worker could claim."""
        return unserved_rows(self.store._conn, self.store.now())


def unserved_rows(conn: sqlite3.Connection, now: float) -> list[UnservedRow]:
    """Unfinished runs, by workflow version, that no worker live at ``now`` could claim."""
    try:
        rows = conn.execute("SELECT hosts FROM workers WHERE expires >= ?", (now,)).fetchall()
        unfinished = conn.execute(_UNFINISHED_KEYS).fetchall()
    except sqlite3.OperationalError:  # a journal older than the roster (a read-only reader)
        return []
    hosted = {key for (hosts,) in rows for key in json.loads(hosts)}
    names = {key.rpartition("@")[0] for key in hosted}
    found: dict[tuple[str, str | None, bool], dict[str, int]] = {}
    for workflow, version, unpinned, status, count in unfinished:
        served = workflow in names if unpinned else f"{workflow}@{version or ''}" in hosted
        if not served:
            found.setdefault((workflow, version, bool(unpinned)), {})[status] = count
    return [
        UnservedRow(workflow, version, unpinned, statuses)
        for (workflow, version, unpinned), statuses in sorted(
            found.items(), key=lambda item: (item[0][0], item[0][1] or "", item[0][2])
        )
    ]
