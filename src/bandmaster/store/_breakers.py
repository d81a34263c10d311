"""Circuit-breaker rows in the journal, counted by every worker on it.

Each change is one short ``BEGIN IMMEDIATE`` transaction: read the row, apply one step of the
breaker state machine (``bandmaster.policies.BreakerState``), write the row back and bump the
revision ``kv.breakers_rev``. SQLite's write lock orders the steps of all workers, so the
N-th failure counted opens the breaker, whichever worker records it, and only one worker
claims a half-open trial.

Before each call a worker must know whether its view of the rows is still current. A SQLite
read costs 5-25 µs (its WAL read lock), too much for every call of a healthy model, so the
revision is also published in a small memory-mapped file beside the journal
(``<journal>-breakers``): each change writes its new revision there inside its transaction,
before the commit. A view read at SQLite revision ``r`` is current while that file says ``r``:
any later commit wrote a larger revision there first. (A writer that dies between the two
leaves a revision SQLite never got: readers then read SQLite at each call, still correct,
until the next change.) Without the file (an in-memory journal, a directory we cannot write)
workers read the revision from SQLite.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import sqlite3
import struct
from collections.abc import Callable
from typing import TypeVar

from bandmaster.policies import BreakerState
from bandmaster.store._sqlite import SQLiteStore

T = TypeVar("T")

_COLUMNS = "key, status, opened_at, changed_at, recent, failures, trial_until"
_REVISION = struct.Struct("<q")  # the revision file: one little-endian 64-bit integer
_SLOTS = ",".join("?" * 7)
_REV = "SELECT value FROM kv WHERE key = 'breakers_rev'"


def _state(row: tuple[object, ...] | None) -> BreakerState:
    if row is None:
        return BreakerState()
    _, status, opened_at, changed_at, recent, failures, trial_until = row
    return BreakerState(
        status=status,  # type: ignore[arg-type]
        recent_failures=json.loads(str(recent)),
        opened_at=opened_at,  # type: ignore[arg-type]
        changed_at=float(changed_at),  # type: ignore[arg-type]
        failures=int(failures),  # type: ignore[call-overload]
        trial_until=trial_until,  # type: ignore[arg-type]
    )


def _values(state: BreakerState) -> tuple[object, ...]:
    return (
        state.status,
        state.opened_at,
        state.changed_at,
        json.dumps(state.recent_failures),
        state.failures,
        state.trial_until,
    )


def _published(store: SQLiteStore) -> mmap.mmap | None:
    """The revision file beside the journal, mapped (``None`` where there is none)."""
    if str(store.path) == ":memory:" or store.read_only:
        return None
    path = f"{store.path}-breakers"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_size < 8:
            os.ftruncate(fd, 8)  # zero-filled: revision 0, as a journal without changes
        return mmap.mmap(fd, 8)
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


class BreakerStore:
    """The breaker rows of one journal, by model name."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self._published = _published(store)

    def published(self) -> int | None:
        """The newest revision any worker wrote (or is about to commit); ``None``: unknown."""
        board = self._published
        return None if board is None else int(_REVISION.unpack_from(board)[0])

    def close(self) -> None:
        if self._published is not None:
            with contextlib.suppress(BufferError):
                self._published.close()

    def revision(self) -> int:
        """Changes made to any breaker so far (0: none): a view read at this revision is current."""
        row = self.store._conn.execute(_REV).fetchone()
        return int(row[0]) if row else 0

    def states(self) -> dict[str, BreakerState]:
        rows = self.store._conn.execute(f"SELECT {_COLUMNS} FROM breakers").fetchall()
        return {str(row[0]): _state(row) for row in rows}

    def change(self, key: str, step: Callable[[BreakerState], T]) -> tuple[T, BreakerState]:
        """Apply ``step`` to the stored state of ``key`` in one transaction; the answer of the
        step and the state after it. Writes (and bumps the revision) only when it changed."""

        def op(conn: sqlite3.Connection) -> tuple[T, BreakerState]:
            row = conn.execute(f"SELECT {_COLUMNS} FROM breakers WHERE key = ?", (key,)).fetchone()
            state = _state(row)
            before = _values(state)
            answer = step(state)
            after = _values(state)
            if after != before:
                conn.execute(
                    f"INSERT OR REPLACE INTO breakers ({_COLUMNS}) VALUES (?,?,?,?,?,?,?)", (key, *after)
                )
                rev = conn.execute(
                    "INSERT INTO kv (key, value) VALUES ('breakers_rev', '1') ON CONFLICT(key) "
                    "DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING value"
                ).fetchone()[0]
                if self._published is not None:  # before the commit: see the module docstring
                    _REVISION.pack_into(self._published, 0, int(rev))
            return answer, state

        return self.store._write(op)
