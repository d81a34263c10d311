"""Runs as JSONL: one JSON object per run with its steps and signals, so recordings move between
journals (replay elsewhere, archives brought back).

Each line is ``{"format": "bandmaster.run", "version": 1, "run": {...}, "steps": [...],
"signals": [...]}``. Journal values (input, output, error, meta) are kept exactly as stored,
as JSON text, beside the row's ``fmt`` tag, so a round trip is byte-for-byte. Files ending in
``.gz`` are gzip-compressed. Import is idempotent: a run already in the journal is skipped.
"""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ValidationError

from bandmaster._types import TERMINAL_STATUSES, RunStatus, StepStatus
from bandmaster.errors import InvalidArchive, InvalidInput
from bandmaster.store._rollups import add_runs_sql
from bandmaster.store.reading import JournalRef, connect, parse_duration

FORMAT_NAME = "bandmaster.run"
FORMAT_VERSION = 1
_IMPORT_BATCH = 500  # runs per import transaction
_IDS = "SELECT value FROM json_each(?)"


class _Row(BaseModel):
    fmt: str

    def decode(self, field: str) -> Any:
        """A journal value of this row (``input``, ``output``, ``error``, ``meta``, ``payload``)
        as Python data; ``None`` when absent."""
        text = getattr(self, field)
        if text is None:
            return None
        if self.fmt != "json1":
            raise InvalidArchive(f"value encoding {self.fmt!r} is unknown to this bandmaster; upgrade it")
        return json.loads(text)


class RunData(_Row):
    """A ``runs`` row, without the lease (a lease means nothing in another journal)."""

    id: str
    workflow: str
    version: str | None
    status: RunStatus
    input: str | None
    output: str | None
    error: str | None
    created_at: float
    updated_at: float
    ended_at: float | None
    ready_at: float | None
    cancel_requested: bool
    claims: int
    priority: int = 0  # the run's terms (absent from files written before they existed)
    tenant: str = ""  # '' is no tenant, as in the journal
    budget_usd: float | None = None


class StepData(_Row):
    seq: int
    name: str
    kind: str
    status: StepStatus
    output: str | None
    error: str | None
    attempts: int
    started_at: float
    ended_at: float | None
    meta: str | None


class SignalData(_Row):
    name: str
    payload: str | None
    created_at: float
    consumed_seq: int | None


class RunRecord(BaseModel):
    """One line of an export or archive file."""

    format: Literal["bandmaster.run"]
    version: int
    run: RunData
    steps: list[StepData]
    signals: list[SignalData]
    # Rows other rooms keep per run (approvals and their audit, trace headers), column by
    # column as stored, so an archive loses nothing and an import restores them.
    related: dict[str, list[dict[str, Any]]] = {}


RELATED_TABLES = ("approvals", "approval_audit", "run_headers", "run_requests")
"""Per-run tables exported, archived and deleted with their run (all keyed by ``run_id``)."""
_RUN_COLS = list(RunData.model_fields)
_STEP_COLS = list(StepData.model_fields)
_SIGNAL_COLS = list(SignalData.model_fields)


def select_runs(
    conn: sqlite3.Connection,
    *,
    workflow: str | None = None,
    status: str | None = None,
    since: str | float | None = None,
    older_than: str | float | None = None,
) -> list[str]:
    """Run ids, oldest first. ``since``: created within that long; ``older_than``: finished
    (completed/failed/cancelled) more than that long ago (what ``archive`` would take)."""
    clauses: list[str] = ["1"]
    params: list[object] = []
    if workflow is not None:
        clauses.append("workflow = ?")
        params.append(workflow)
    if status is not None:
        statuses = ("queued", "running", "waiting", "completed", "failed", "cancelled")
        if status not in statuses:
            raise InvalidInput(f"status {status!r} is not a run status; use one of {', '.join(statuses)}")
        clauses.append("status = ?")
        params.append(status)
    now = time.time()
    if since is not None:
        clauses.append("created_at >= ?")
        params.append(now - parse_duration(since, what="since"))
    if older_than is not None:
        clauses.append(f"status IN {tuple(sorted(TERMINAL_STATUSES))} AND ended_at < ?")
        params.append(now - parse_duration(older_than, what="older_than"))
    where = " AND ".join(clauses)
    return [r[0] for r in conn.execute(f"SELECT id FROM runs WHERE {where} ORDER BY created_at, id", params)]


def dump_runs(conn: sqlite3.Connection, run_ids: Sequence[str]) -> Iterator[str]:
    """One JSONL line (without newline) per run that exists, in the order given."""
    for run_id in run_ids:
        row = conn.execute(f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            continue
        run = dict(zip(_RUN_COLS, row, strict=True))
        run["cancel_requested"] = bool(run["cancel_requested"])
        steps = conn.execute(
            f"SELECT {', '.join(_STEP_COLS)} FROM steps WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
        signals = conn.execute(
            f"SELECT {', '.join(_SIGNAL_COLS)} FROM signals WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()
        yield json.dumps(
            {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "run": run,
                "steps": [dict(zip(_STEP_COLS, s, strict=True)) for s in steps],
                "signals": [dict(zip(_SIGNAL_COLS, s, strict=True)) for s in signals],
                "related": {table: _related_rows(conn, table, run_id) for table in RELATED_TABLES},
            },
            separators=(",", ":"),
        )


def _related_rows(conn: sqlite3.Connection, table: str, run_id: str) -> list[dict[str, Any]]:
    cursor = conn.execute(f"SELECT * FROM {table} WHERE run_id = ?", (run_id,))
    columns = [d[0] for d in cursor.description]
    # run_id is implied by the record; a surrogate id would clash in another journal.
    return [{c: v for c, v in zip(columns, row, strict=True) if c not in ("run_id", "id")} for row in cursor]


def write_lines(path: Path, lines: Iterable[str], *, compress: bool | None = None) -> int:
    """Write lines to ``path`` and fsync it; returns the count. Gzip-compressed when
    ``compress`` (default: when the name ends in ``.gz``)."""
    if compress is None:
        compress = path.suffix == ".gz"
    count = 0
    with open(path, "wb") as raw:
        # mtime=0: the same runs give the same bytes, so a rewritten archive file is identical.
        sink: IO[bytes] = (
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if compress else raw  # type: ignore[assignment]
        )
        for line in lines:
            sink.write(line.encode())
            sink.write(b"\n")
            count += 1
        if sink is not raw:
            sink.close()  # writes the gzip trailer (raw stays open) before the fsync
        raw.flush()
        os.fsync(raw.fileno())
    return count


def export_runs(
    db: JournalRef,
    to: str | os.PathLike[str],
    *,
    workflow: str | None = None,
    status: str | None = None,
    since: str | float | None = None,
    older_than: str | float | None = None,
) -> int:
    """Write the selected runs to ``to`` (``.jsonl`` or ``.jsonl.gz``); returns how many."""
    conn = connect(db)
    try:
        conn.execute("BEGIN")  # one consistent snapshot
        ids = select_runs(conn, workflow=workflow, status=status, since=since, older_than=older_than)
        return write_lines(Path(to), dump_runs(conn, ids))
    finally:
        conn.close()


def read_records(path: str | os.PathLike[str]) -> Iterator[RunRecord]:
    """Parse an export or archive file, line by line; a bad line raises ``InvalidArchive``
    naming the file and line."""
    path = Path(path)
    if path.is_dir():
        raise InvalidArchive(f"{path} is a directory; pass its files, e.g. {path}/*.jsonl.gz")
    if not path.is_file():
        raise InvalidArchive(f"{path}: no such file")
    number = 0
    try:
        opener: Any = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    yield _parse(path, number, line)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise InvalidArchive(
            f"{path}: unreadable after line {number} ({type(exc).__name__}: {exc}); "
            f"the file is truncated or not a bandmaster export"
        ) from exc


def _parse(path: Path, number: int, line: str) -> RunRecord:
    try:
        head = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidArchive(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(head, dict) or head.get("format") != FORMAT_NAME:
        raise InvalidArchive(
            f"{path}:{number}: not a bandmaster run record (expected format {FORMAT_NAME!r})"
        )
    if head.get("version") != FORMAT_VERSION:
        raise InvalidArchive(
            f"{path}:{number}: record version {head.get('version')!r}; this bandmaster reads "
            f"version {FORMAT_VERSION}; upgrade bandmaster to import it"
        )
    try:
        return RunRecord.model_validate(head)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidArchive(f"{path}:{number}: field {where}: {first['msg']}") from exc


class ImportResult(BaseModel):
    imported: int
    skipped: int
    """Runs already in the journal (imports are idempotent)."""


def import_runs(db: JournalRef, files: Sequence[str | os.PathLike[str]]) -> ImportResult:
    """Bring exported or archived runs into ``db`` (created if missing). Every file is checked
    completely first, so a corrupt line imports nothing; a run already present is skipped,
    never duplicated."""
    for path in files:
        for _ in read_records(path):
            pass
    conn = connect(db, write=True, create=True)
    imported = skipped = 0
    try:
        for path in files:
            batch: list[RunRecord] = []
            for record in read_records(path):
                batch.append(record)
                if len(batch) >= _IMPORT_BATCH:
                    done = _insert(conn, batch)
                    imported, skipped = imported + done, skipped + len(batch) - done
                    batch = []
            done = _insert(conn, batch)
            imported, skipped = imported + done, skipped + len(batch) - done
    finally:
        conn.close()
    return ImportResult(imported=imported, skipped=skipped)


def _insert(conn: sqlite3.Connection, records: list[RunRecord]) -> int:
    if not records:
        return 0
    inserted = 0
    added: list[str] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for record in records:
            run = record.run.model_dump()
            if run["status"] == "running":
                # It was in flight where it came from; here a worker resumes it by replay.
                run["status"], run["ready_at"] = "queued", time.time()
            cursor = conn.execute(
                f"INSERT INTO runs ({', '.join(_RUN_COLS)}) VALUES ({', '.join('?' * len(_RUN_COLS))}) "
                "ON CONFLICT(id) DO NOTHING",
                [run[c] for c in _RUN_COLS],
            )
            if cursor.rowcount != 1:
                continue
            inserted += 1
            conn.executemany(
                f"INSERT INTO steps (run_id, {', '.join(_STEP_COLS)}) "
                f"VALUES (?, {', '.join('?' * len(_STEP_COLS))})",
                [(run["id"], *(getattr(s, c) for c in _STEP_COLS)) for s in record.steps],
            )
            added.append(run["id"])
            conn.executemany(
                f"INSERT INTO signals (run_id, {', '.join(_SIGNAL_COLS)}) "
                f"VALUES (?, {', '.join('?' * len(_SIGNAL_COLS))})",
                [(run["id"], *(getattr(s, c) for c in _SIGNAL_COLS)) for s in record.signals],
            )
            for table, rows in record.related.items():
                if table not in RELATED_TABLES:
                    raise InvalidArchive(f"run {run['id']}: unknown related table {table!r}")
                known = {info[1] for info in conn.execute(f"PRAGMA table_info({table})")}
                for row in rows:
                    if not set(row) <= known:  # names from the file go into SQL: only real columns
                        raise InvalidArchive(
                            f"run {run['id']}: {table} has no columns {sorted(set(row) - known)}"
                        )
                    columns = ["run_id", *row]
                    marks = ", ".join("?" * len(columns))
                    conn.execute(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING",
                        [run["id"], *row.values()],
                    )
        # The ended ones join the stats rollups in the same transaction (store/rollups.py).
        for statement in add_runs_sql(_IDS):
            conn.execute(statement, (json.dumps(added),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return inserted
