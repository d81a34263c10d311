"""The embedded journal: one SQLite file in WAL mode, shared by any number of processes.

Write path: the engine enqueues row writes; the first write of an event-loop turn schedules a
flush with ``call_soon``, so every write enqueued in that turn (say, 1,000 parallel steps whose
timers fired together) shares one ``BEGIN IMMEDIATE … COMMIT``. No thread hop: with WAL and
``synchronous=NORMAL`` a commit is a ``write()`` without ``fsync``, cheaper than a handoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from bandmaster._types import RunStatus
from bandmaster.errors import JournalReadOnly, RunNotFound, StoreError
from bandmaster.store._base import RunRow, StepRow
from bandmaster.store._claims import HOSTED, PINNED_VERSION, pick_ready
from bandmaster.store._journal_file import (
    cannot_open,
    check_schema,
    connect_read_only,
    is_a_directory,
    is_transient,
    journal_error,
    read_only,
    require_sound,
)
from bandmaster.store._schema import MIGRATIONS, SCHEMA_VERSION

T = TypeVar("T")
P = ParamSpec("P")
Op = Callable[[sqlite3.Connection], Any]
WriteRetry = Callable[[int, BaseException, float], float | None]
"""``(attempt, error, waited) -> delay or None``: when to try a failed journal write again
(``bm.Retry.next_delay``); ``None`` gives up."""

log = logging.getLogger("bandmaster.store")

DEFAULT_DB = "bandmaster.db"
FORMAT = "json1"
"""Format tag stored with every journal row, so the encoding can change without a guess."""
_RUN_COLUMNS = (
    "id, workflow, version, status, input, output, error, created_at, updated_at, ended_at, "
    "ready_at, lease_owner, lease_expires, cancel_requested, claims, priority, tenant, budget_usd"
)
_STEP_COLUMNS = "run_id, seq, name, kind, status, output, error, attempts, started_at, ended_at, meta"


# A pending signal that a waiting ``bm.wait_for`` of the run will take (parameter: run id).
# Signals sent early for a later wait stay pending without waking the run.
_SIGNAL_FOR_A_WAIT = (
    "SELECT 1 FROM signals s JOIN steps w ON w.run_id = s.run_id AND w.name = s.name "
    "AND w.kind = 'wait' AND w.status = 'waiting' WHERE s.run_id = ? AND s.consumed_seq IS NULL"
)


def resolve_db_path(db: str | os.PathLike[str] | None) -> Path:
    """``None`` → ``$BANDMASTER_DB`` or ``./bandmaster.db``.

    Accepts a path or an SQLAlchemy-style URL: ``sqlite:///rel.db``, ``sqlite:////abs/x.db``.
    """
    raw = os.fspath(db) if db is not None else os.environ.get("BANDMASTER_DB", DEFAULT_DB)
    if raw.startswith("sqlite:"):
        if not raw.startswith("sqlite:///"):
            raise ValueError(f"bad database URL {raw!r}: use sqlite:///relative.db or sqlite:////abs.db")
        raw = raw.removeprefix("sqlite:///")
    return Path(raw)


# ``list_runs(order=...)``: newest first is the index order; a running run's duration is so far.
_DURATION = "(COALESCE(ended_at, (julianday('now') - 2440587.5) * 86400.0) - created_at)"
_ORDER_BY = {
    "newest": "created_at DESC, id",
    "oldest": "created_at, id",
    "longest": f"{_DURATION} DESC, id",
    "shortest": f"{_DURATION}, id",
}


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _run_row(values: Sequence[Any]) -> RunRow:
    row = RunRow(*values)
    row.cancel_requested = bool(row.cancel_requested)
    row.tenant = row.tenant or None  # '' in the journal: no tenant (store/_claims.py)
    return row


def _rollback(conn: sqlite3.Connection) -> None:
    """End a failed transaction without hiding why it failed: SQLite has already rolled back
    after some errors (disk full, I/O), and a ROLLBACK then fails with a message of its own."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _reading(method: Callable[Concatenate[SQLiteStore, P], T]) -> Callable[Concatenate[SQLiteStore, P], T]:
    """A read whose SQLite errors (a damaged page, an unreadable file) become ``StoreError``s
    naming the journal and the fix."""

    def read(self: SQLiteStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise journal_error(self.path, exc, "reading journal") from exc

    read.__name__, read.__doc__ = method.__name__, method.__doc__
    return read


class SQLiteStore:
    """SQLite journal. Create it inside a running event loop (writes use ``call_soon``).

    ``read_only``: ``False`` opens the journal for writing (creating and migrating it), ``True``
    for reading only (never writes the file, works on read-only media), ``None`` for writing
    when the file can be written and reading otherwise (``self.read_only`` says which).
    ``write_retry`` decides when a batched write that failed for a passing reason (disk full,
    write lock held past ``busy_timeout``) is tried again; without it such a write fails at once.
    ``clock`` gives the time the journal records and compares (leases, ``ready_at``): the
    engine's clock (``Engine(clock=...)``), seconds since the epoch.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 10.0,
        read_only: bool | None = False,
        write_retry: WriteRetry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.now = clock
        self.read_only = bool(read_only)
        self._write_retry = write_retry
        if self.path.is_dir():
            raise is_a_directory(self.path)
        if read_only:
            self._conn = self._open_read_only(busy_timeout)
        else:
            try:
                self._conn = self._open_read_write(busy_timeout)
            except JournalReadOnly:
                if read_only is False:
                    raise
                self._conn = self._open_read_only(busy_timeout)
                self.read_only = True
        self._batch: list[tuple[Op, asyncio.Future[Any] | None]] = []
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed_flushes = 0  # consecutive failed attempts of the pending batch
        self._backoff = 0.0  # seconds waited between them

    # --- opening and schema -------------------------------------------------------------

    def _open_read_write(self, busy_timeout: float) -> sqlite3.Connection:
        try:
            if str(self.path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=busy_timeout
            )
        except OSError as exc:
            raise read_only(self.path, str(exc)) from exc
        except sqlite3.Error as exc:
            raise journal_error(self.path, exc, "cannot open journal") from exc
        try:
            # WAL: readers never block the writer, and other processes can read while we write.
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL: a commit survives a process crash; only an OS crash or power loss
            # can drop the last transactions (never corrupts). FULL would fsync every commit.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            self._migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            if cannot_open(exc) and self.path.is_file():  # no WAL index can be made beside it
                raise read_only(self.path, f"{exc}: its directory is not writable") from exc
            raise journal_error(self.path, exc, "opening journal") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_read_only(self, busy_timeout: float) -> sqlite3.Connection:
        if not self.path.is_file():
            raise StoreError(f"no journal at {self.path}; pass --db PATH (or set BANDMASTER_DB)")
        conn = connect_read_only(self.path, timeout=busy_timeout)
        try:
            version = check_schema(conn, self.path, newest=SCHEMA_VERSION, writing=False)
        except sqlite3.Error as exc:
            conn.close()
            raise journal_error(self.path, exc, "reading journal") from exc
        except BaseException:
            conn.close()
            raise
        if version < SCHEMA_VERSION:
            conn.close()
            raise read_only(
                self.path, f"its schema {version} must be upgraded to {SCHEMA_VERSION}, which writes it"
            )
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = check_schema(conn, self.path, newest=SCHEMA_VERSION, writing=True)
            for number in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[number]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def require_sound(self) -> None:
        """Raise ``JournalCorrupt`` unless the journal passes SQLite's quick check (a worker
        must not write into a damaged file)."""
        require_sound(self._conn, self.path)

    # --- batched writes (group commit) --------------------------------------------------

    def _enqueue(self, op: Op, *, wait: bool = True) -> asyncio.Future[Any]:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = self._loop.create_future()
        self._batch.append((op, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)
        if not wait:
            future.add_done_callback(_retrieve)
        return future

    def flush(self) -> None:
        """Write every enqueued operation in one transaction and resolve their futures.

        A batch that fails for a passing reason (disk full, write lock held) is tried again
        after ``write_retry``'s delay, with the writes enqueued meanwhile joining it in order;
        when it gives up, every future of the batch gets the error. So a write enqueued after
        a failed one is never journaled without it."""
        self._flush(retry=True)

    def _flush(self, *, retry: bool) -> None:
        self._flush_scheduled = False
        batch, self._batch = self._batch, []
        if not batch:
            return
        conn = self._conn
        results: list[Any] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for op, _ in batch:
                    results.append(op(conn))
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except sqlite3.Error as exc:
            self._flush_failed(batch, exc, retry=retry)
            return
        if self._failed_flushes:
            log.info(
                "journal write to %s went through after %d failed attempts", self.path, self._failed_flushes
            )
            self._failed_flushes, self._backoff = 0, 0.0
        for (_, future), result in zip(batch, results, strict=True):
            if future is not None and not future.done():
                future.set_result(result)

    def _flush_failed(
        self, batch: list[tuple[Op, asyncio.Future[Any] | None]], exc: sqlite3.Error, *, retry: bool
    ) -> None:
        self._failed_flushes += 1
        error = journal_error(self.path, exc)
        delay = None
        if retry and self._write_retry is not None and self._loop is not None and is_transient(exc):
            delay = self._write_retry(self._failed_flushes, error, self._backoff)
        if delay is not None and self._loop is not None:
            log.warning("%s; retrying in %.2f s (attempt %d)", error, delay, self._failed_flushes + 1)
            self._backoff += delay
            self._batch[:0] = batch  # first in line: writes enqueued meanwhile commit with it or fail with it
            self._flush_scheduled = True
            self._loop.call_later(delay, self.flush)
            return
        if self._failed_flushes > 1:
            log.warning("%s; gave up after %d attempts", error, self._failed_flushes)
        self._failed_flushes, self._backoff = 0, 0.0
        for _, future in batch:
            if future is not None and not future.done():
                future.set_exception(error)

    def insert_run(
        self, row: RunRow, *, headers: str | None = None, digest: str | None = None
    ) -> asyncio.Future[bool]:
        """Insert a run (and its hook headers, JSON, and the digest of the request that started
        it, in the same transaction) unless its id exists."""
        values = (
            row.id,
            row.workflow,
            row.version,
            row.status,
            row.input,
            FORMAT,
            row.created_at,
            row.updated_at,
            row.ready_at,
            row.lease_owner,
            row.lease_expires,
            row.claims,
            row.priority,
            row.tenant or "",
            row.budget_usd,
        )

        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT INTO runs (id, workflow, version, status, input, fmt, created_at, "
                "updated_at, ready_at, lease_owner, lease_expires, claims, priority, tenant, budget_usd) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING",
                values,
            )
            inserted = cursor.rowcount == 1
            if inserted and headers is not None:
                conn.execute("INSERT INTO run_headers (run_id, headers) VALUES (?, ?)", (row.id, headers))
            if inserted and digest is not None:
                conn.execute("INSERT INTO run_requests (run_id, digest) VALUES (?, ?)", (row.id, digest))
            return inserted

        return self._enqueue(op)

    def record_step(
        self, row: StepRow, owner: str, *, consume_signal: int | None = None, wait: bool = True
    ) -> asyncio.Future[bool]:
        values = (
            row.run_id,
            row.seq,
            row.name,
            row.kind,
            row.status,
            row.output,
            row.error,
            row.attempts,
            row.started_at,
            row.ended_at,
            row.meta,
            FORMAT,
            row.run_id,
            owner,
        )

        def op(conn: sqlite3.Connection) -> bool:
            # Fenced by the lease; a waiting row (timer, signal wait) may be completed once.
            cursor = conn.execute(
                "INSERT INTO steps (run_id, seq, name, kind, status, output, error, attempts, "
                "started_at, ended_at, meta, fmt) SELECT ?,?,?,?,?,?,?,?,?,?,?,? "
                "WHERE EXISTS (SELECT 1 FROM runs WHERE id = ? AND lease_owner = ?) "
                "ON CONFLICT(run_id, seq) DO UPDATE SET status = excluded.status, "
                "output = excluded.output, error = excluded.error, attempts = excluded.attempts, "
                "ended_at = excluded.ended_at, meta = excluded.meta "
                "WHERE steps.status = 'waiting' AND excluded.status != 'waiting'",
                values,
            )
            if cursor.rowcount != 1:
                return False
            if consume_signal is not None:
                conn.execute(
                    "UPDATE signals SET consumed_seq = ? WHERE id = ? AND consumed_seq IS NULL",
                    (row.seq, consume_signal),
                )
            return True

        return self._enqueue(op, wait=wait)

    def finish_run(
        self, run_id: str, owner: str, status: RunStatus, output: str | None, error: str | None
    ) -> asyncio.Future[bool]:
        def op(conn: sqlite3.Connection) -> bool:
            now = self.now()
            cursor = conn.execute(
                "UPDATE runs SET status = ?, output = ?, error = ?, ended_at = ?, updated_at = ?, "
                "lease_owner = NULL, lease_expires = NULL, ready_at = NULL "
                "WHERE id = ? AND lease_owner = ?",
                (status, output, error, now, now, run_id, owner),
            )
            return cursor.rowcount == 1

        return self._enqueue(op)

    def suspend_run(self, run_id: str, owner: str, ready_at: float | None) -> asyncio.Future[bool]:
        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE runs SET status = 'waiting', ready_at = ?, updated_at = ?, "
                "lease_owner = NULL, lease_expires = NULL WHERE id = ? AND lease_owner = ?",
                (ready_at, self.now(), run_id, owner),
            )
            if cursor.rowcount != 1:
                return False
            # A signal (or a cancel) that arrived while the run was executing must not be lost:
            # in the same transaction, make the run ready again if one is pending for it.
            conn.execute(
                "UPDATE runs SET status = 'queued', ready_at = ? WHERE id = ? AND (cancel_requested = 1 "
                f"OR EXISTS ({_SIGNAL_FOR_A_WAIT}))",
                (self.now(), run_id, run_id),
            )
            return True

        return self._enqueue(op)

    # --- immediate operations (own transaction) -----------------------------------------

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except sqlite3.Error as exc:
            raise journal_error(self.path, exc) from exc
        return result

    def claim_runs(
        self,
        owner: str,
        keys: Sequence[str],
        pins: Mapping[str, str | None],
        limit: int,
        lease: float,
    ) -> list[RunRow]:
        """Take up to ``limit`` runs of the hosted ``keys`` (``name@version``, ``name@`` for
        no version) whose owner's lease expired (they were running: first), then ready ones in
        claim order: priority with aging, fair between tenants (``store/_claims.py``). An
        unpinned run (started by name where no version was hosted, never claimed) is taken by
        any worker that hosts a version of its name, listed in ``pins``, and pinned to the
        version ``pins`` gives (``engine/_versions.py``)."""
        now = self.now()
        params = {
            "owner": owner,
            "expires": now + lease,
            "now": now,
            "keys": json.dumps(list(keys)),
            "pins": json.dumps(dict(pins)),
            "limit": limit,
        }
        claim = (
            "UPDATE runs SET status = 'running', lease_owner = :owner, "
            "lease_expires = :expires, claims = claims + 1, updated_at = :now, "
            f"version = {PINNED_VERSION} WHERE "
        )
        returning = f" RETURNING {_RUN_COLUMNS}"
        expired = (
            "id IN (SELECT id FROM runs WHERE status = 'running' AND lease_expires < :now "
            f"AND {HOSTED} LIMIT :limit)"
        )

        def op(conn: sqlite3.Connection) -> list[RunRow]:
            rows = conn.execute(claim + expired + returning, params).fetchall()
            ready = pick_ready(conn, params, limit - len(rows))
            if ready:
                taken = conn.execute(
                    claim + "id IN (SELECT value FROM json_each(:ids))" + returning,
                    params | {"ids": json.dumps(ready)},
                ).fetchall()
                order = {run_id: i for i, run_id in enumerate(ready)}
                rows += sorted(taken, key=lambda r: order[r[0]])  # started in claim order
            return [_run_row(r) for r in rows]

        return self._write(op)

    def heartbeat(self, owner: str, lease: float, run_ids: Sequence[str]) -> list[str]:
        """Extend the leases ``owner`` holds on ``run_ids`` (the runs it is executing: a run it
        gave up must not be kept from other workers); return its runs whose cancel was requested."""

        def op(conn: sqlite3.Connection) -> list[str]:
            if run_ids:
                conn.execute(
                    "UPDATE runs SET lease_expires = ? WHERE lease_owner = ? AND status = 'running' "
                    "AND id IN (SELECT value FROM json_each(?))",
                    (self.now() + lease, owner, json.dumps(list(run_ids))),
                )
            rows = conn.execute(
                "SELECT id FROM runs WHERE lease_owner = ? AND cancel_requested = 1", (owner,)
            ).fetchall()
            return [r[0] for r in rows]

        return self._write(op)

    @_reading
    def runs_taken_over(self, owner: str, run_ids: Sequence[str]) -> list[str]:
        """Those of ``run_ids`` that another worker holds now (our lease expired meanwhile)."""
        if not run_ids:
            return []
        rows = self._conn.execute(
            "SELECT id FROM runs WHERE id IN (SELECT value FROM json_each(?)) "
            "AND lease_owner IS NOT NULL AND lease_owner != ?",
            (json.dumps(list(run_ids)), owner),
        ).fetchall()
        return [r[0] for r in rows]

    def release_runs(self, owner: str, run_ids: Sequence[str], *, flush: bool = True) -> None:
        """Hand runs back to the queue (graceful shutdown, or a run whose journal write failed);
        they resume by replay on any worker. ``flush``: write what is enqueued first."""
        if flush:
            self._flush(retry=False)
        now = self.now()
        self._write(
            lambda conn: conn.executemany(
                "UPDATE runs SET status = 'queued', ready_at = ?, lease_owner = NULL, "
                "lease_expires = NULL WHERE id = ? AND lease_owner = ? AND status = 'running'",
                [(now, run_id, owner) for run_id in run_ids],
            )
        )

    @_reading
    def running_owners(self) -> list[str]:
        rows = self._conn.execute(
            "SELECT DISTINCT lease_owner FROM runs WHERE status = 'running' AND lease_owner IS NOT NULL"
        ).fetchall()
        return [r[0] for r in rows]

    def expire_leases(self, owners: Sequence[str]) -> int:
        """Make the runs of dead owners claimable now instead of at lease expiry."""
        return int(
            self._write(
                lambda conn: (
                    conn.executemany(
                        "UPDATE runs SET lease_expires = 0 WHERE lease_owner = ? AND status = 'running'",
                        [(o,) for o in owners],
                    ).rowcount
                )
            )
        )

    @_reading
    def load_steps(self, run_id: str) -> dict[int, StepRow]:
        rows = self._conn.execute(
            f"SELECT {_STEP_COLUMNS} FROM steps WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
        return {r[1]: StepRow(*r) for r in rows}

    @_reading
    def run_headers(self, run_id: str) -> str | None:
        """The JSON headers stored with the run by ``insert_run``, if any."""
        row = self._conn.execute("SELECT headers FROM run_headers WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    @_reading
    def request_digest(self, run_id: str) -> str | None:
        """The digest of the request that started ``run_id`` (keyed starts only)."""
        row = self._conn.execute("SELECT digest FROM run_requests WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    @_reading
    def get_run(self, run_id: str) -> RunRow | None:
        row = self._conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run_row(row) if row else None

    @_reading
    def finished_among(self, run_ids: Sequence[str]) -> list[str]:
        if not run_ids:
            return []
        rows = self._conn.execute(
            "SELECT id FROM runs WHERE id IN (SELECT value FROM json_each(?)) "
            "AND status IN ('completed', 'failed', 'cancelled')",
            (json.dumps(list(run_ids)),),
        ).fetchall()
        return [r[0] for r in rows]

    @_reading
    def run_status(self, run_id: str) -> RunStatus | None:
        row = self._conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    @_reading
    def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        tenant: str | None = None,
        limit: int = 100,
        offset: int = 0,
        search: str | None = None,
        id_prefix: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        order: str = "newest",
    ) -> list[RunRow]:
        """Runs matching every filter given. ``search``: the id or the journaled input contains
        the text (case-insensitive for ASCII; a scan of the runs in the other filters).
        ``order``: one of ``RUN_ORDERS``."""
        clauses: list[str] = []
        params: list[object] = []
        for clause, value in (
            ("tenant = ?", tenant),
            ("status = ?", status),
            ("workflow = ?", workflow),
            ("created_at >= ?", created_after),
            ("created_at < ?", created_before),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        if id_prefix is not None:  # a range scan of the primary key
            clauses.append("id >= ? AND id < ?")
            params += [id_prefix, id_prefix + "\U0010ffff"]
        if search:
            # The input is JSON text: look for the term as it is written inside a JSON string.
            term = _like_escaped(json.dumps(search, ensure_ascii=False)[1:-1])
            clauses.append("(id LIKE ? ESCAPE '\\' OR input LIKE ? ESCAPE '\\')")
            params += [f"%{_like_escaped(search)}%", f"%{term}%"]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs {where} ORDER BY {_ORDER_BY[order]} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        return [_run_row(r) for r in rows]

    def run_ids_starting(self, prefix: str, limit: int) -> list[str]:
        """Ids of runs beginning with ``prefix`` (at most ``limit``), in id order: a range scan
        of the primary key (every id with the prefix sorts between these two bounds)."""
        rows = self._conn.execute(
            "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit),
        ).fetchall()
        return [row[0] for row in rows]

    def add_signal(self, run_id: str, name: str, payload: str | None) -> RunStatus:
        """Keep a signal for the run; wake the run if it is waiting. Returns its status."""

        def op(conn: sqlite3.Connection) -> RunStatus:
            row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFound(f"no run {run_id!r} in the journal")
            if row[0] in ("completed", "failed", "cancelled"):
                return row[0]  # type: ignore[no-any-return]
            now = self.now()
            conn.execute(
                "INSERT INTO signals (run_id, name, payload, fmt, created_at) VALUES (?,?,?,?,?)",
                (run_id, name, payload, FORMAT, now),
            )
            conn.execute(
                "UPDATE runs SET status = 'queued', ready_at = ?, updated_at = ? "
                f"WHERE id = ? AND status = 'waiting' AND EXISTS ({_SIGNAL_FOR_A_WAIT})",
                (now, now, run_id, run_id),
            )
            return row[0]  # type: ignore[no-any-return]

        return self._write(op)

    @_reading
    def next_signal(self, run_id: str, name: str) -> tuple[int, str | None] | None:
        row = self._conn.execute(
            "SELECT id, payload FROM signals WHERE run_id = ? AND name = ? AND consumed_seq IS NULL "
            "ORDER BY id LIMIT 1",
            (run_id, name),
        ).fetchone()
        return (row[0], row[1]) if row else None

    @_reading
    def pending_signals(self, run_id: str, name: str) -> list[tuple[int, str | None]]:
        rows = self._conn.execute(
            "SELECT id, payload FROM signals WHERE run_id = ? AND name = ? AND consumed_seq IS NULL "
            "ORDER BY id",
            (run_id, name),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def request_cancel(self, run_id: str) -> RunStatus:
        """Cancel a queued/waiting run at once; flag a running one for its owner."""

        def op(conn: sqlite3.Connection) -> RunStatus:
            row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFound(f"no run {run_id!r} in the journal")
            now = self.now()
            conn.execute(
                "UPDATE runs SET status = 'cancelled', ended_at = ?, updated_at = ?, ready_at = NULL "
                "WHERE id = ? AND status IN ('queued', 'waiting')",
                (now, now, run_id),
            )
            conn.execute(
                "UPDATE runs SET cancel_requested = 1 WHERE id = ? AND status = 'running'", (run_id,)
            )
            status = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
            return status  # type: ignore[no-any-return]

        return self._write(op)

    def cancel_claimed(self, run_id: str, owner: str) -> None:
        """Mark a run we hold as cancelled (cancel requested before it ran any further)."""
        now = self.now()
        self._write(
            lambda conn: conn.execute(
                "UPDATE runs SET status = 'cancelled', ended_at = ?, updated_at = ?, "
                "lease_owner = NULL, lease_expires = NULL WHERE id = ? AND lease_owner = ?",
                (now, now, run_id, owner),
            )
        )

    # --- model registry state (shared by all workers) ------------------------------------

    @_reading
    def kv_get(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def kv_put(self, key: str, value: str) -> None:
        self._write(
            lambda conn: conn.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        )

    def kv_setdefault(self, key: str, value: str) -> str:
        """The value under ``key``, storing ``value`` first when there is none (the first
        writer wins, in every process)."""
        self._write(
            lambda conn: conn.execute("INSERT OR IGNORE INTO kv (key, value) VALUES (?, ?)", (key, value))
        )
        stored = self.kv_get(key)
        assert stored is not None
        return stored

    @_reading
    def registry_rev(self) -> int:
        row = self._conn.execute("SELECT value FROM kv WHERE key = 'registry_rev'").fetchone()
        return int(row[0]) if row else 0

    @_reading
    def alias_overrides(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT alias, spec FROM alias_overrides").fetchall())

    def set_alias_override(self, alias: str, spec: str, changed_by: str | None) -> int:
        """Store an alias change and bump the registry revision that workers poll."""

        def op(conn: sqlite3.Connection) -> int:
            now = self.now()
            conn.execute(
                "INSERT INTO alias_overrides (alias, spec, changed_at, changed_by) VALUES (?,?,?,?) "
                "ON CONFLICT(alias) DO UPDATE SET spec = excluded.spec, changed_at = excluded.changed_at, "
                "changed_by = excluded.changed_by",
                (alias, spec, now, changed_by),
            )
            conn.execute(
                "INSERT INTO alias_history (alias, spec, changed_at, changed_by) VALUES (?,?,?,?)",
                (alias, spec, now, changed_by),
            )
            rev = conn.execute(
                "INSERT INTO kv (key, value) VALUES ('registry_rev', '1') ON CONFLICT(key) "
                "DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING value"
            ).fetchone()[0]
            return int(rev)

        return self._write(op)

    @_reading
    def alias_history(self, alias: str, limit: int = 20) -> list[tuple[str, float, str | None]]:
        rows = self._conn.execute(
            "SELECT spec, changed_at, changed_by FROM alias_history WHERE alias = ? ORDER BY id DESC LIMIT ?",
            (alias, limit),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    @_reading
    def cache_get(self, key: str) -> str | None:
        row = self._conn.execute(
            "SELECT value FROM cache WHERE key = ? AND expires_at > ?", (key, self.now())
        ).fetchone()
        return row[0] if row else None

    def cache_put(self, key: str, value: str, expires_at: float) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO cache (key, value, expires_at) VALUES (?,?,?) ON CONFLICT(key) "
                "DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                (key, value, expires_at),
            )

        self._enqueue(op, wait=False)

    def close(self) -> None:
        self._flush(retry=False)
        self._conn.close()


def _retrieve(future: asyncio.Future[Any]) -> None:
    # Fire-and-forget writes (bm.now() and friends) are ordered before the next awaited
    # write of the same run, which surfaces any failure; don't warn twice.
    if not future.cancelled():
        future.exception()


if TYPE_CHECKING:
    from bandmaster.store._base import JournalStore

    _: type[JournalStore] = SQLiteStore  # the embedded store implements the protocol
