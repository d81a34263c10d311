"""Read-only connections to the journal for the server's own queries (readiness, statistics),
so they never go through, or hold, the engine's writing connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection (``mode=ro``: a query here can never write the journal)."""
    conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=5.0)
    try:
        yield conn
    finally:
        conn.close()
