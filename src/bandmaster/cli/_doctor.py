"""``bandmaster doctor``: is the journal sound, and if not, what can be saved.

    bandmaster doctor --db bm.db [--json] [--salvage saved.jsonl]

Reads the journal read-only (it works on read-only media and never changes the file): SQLite's
integrity check, the WAL state, the schema version, the runs by status, and which runs can
still be read whole. ``--salvage`` writes those runs as an export file, which ``bandmaster
import`` brings into a fresh journal. Exit code 0 when the journal is sound, 1 when not.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel

from bandmaster.cli import _console as ui
from bandmaster.cli._console import fail as _fail
from bandmaster.cli._options import DbOption
from bandmaster.errors import BandmasterError, JournalCorrupt, UsageError
from bandmaster.store import (
    SCHEMA_VERSION,
    check_schema,
    connect_read_only,
    integrity_problems,
    journal_error,
    resolve_db_path,
)
from bandmaster.store.export import dump_runs, write_lines


class Diagnosis(BaseModel):
    path: str
    file_bytes: int
    writable: bool
    page_size: int | None = None
    pages: int | None = None
    free_pages: int | None = None
    journal_mode: str | None = None
    wal_bytes: int | None = None
    """Size of the ``-wal`` file: commits not yet copied into the main file (None: no WAL file)."""
    schema_version: int | None = None
    schema_state: str = ""
    problems: list[str] = []
    """What SQLite's integrity check reported; empty when the journal is sound."""
    runs_by_status: dict[str, int] = {}
    runs_readable: int = 0
    runs_unreadable: list[str] = []
    steps: int | None = None
    salvaged: int | None = None

    @property
    def sound(self) -> bool:
        return not self.problems and not self.runs_unreadable


def diagnose(path: Path, *, salvage: Path | None = None) -> Diagnosis:
    """Examine the journal at ``path`` without writing it."""
    found = Diagnosis(path=str(path), file_bytes=path.stat().st_size, writable=_writable(path))
    try:
        conn = connect_read_only(path)
    except JournalCorrupt as exc:  # not even its schema reads
        found.problems.append(str(exc.__cause__ or exc))
        return found
    try:
        try:
            check_schema(conn, path, newest=None, writing=False)  # another file: one line, exit 2
        except JournalCorrupt as exc:
            found.problems.append(str(exc.__cause__ or exc))
            return found
        wal = Path(f"{path}-wal")
        found.wal_bytes = wal.stat().st_size if wal.is_file() else None
        try:
            found.page_size, found.pages, found.free_pages = (
                conn.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("page_size", "page_count", "freelist_count")
            )
            found.journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            found.schema_version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            found.problems.append(f"unreadable header: {exc}")
            return found
        found.schema_state = _schema(found.schema_version)
        found.problems = integrity_problems(conn, full=True, limit=20)
        _contents(conn, found, salvage)
        return found
    finally:
        conn.close()


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _schema(version: int | None) -> str:
    if version == SCHEMA_VERSION:
        return "current"
    if version == 0:
        return "not a bandmaster journal (schema version 0)"
    if version is not None and version < SCHEMA_VERSION:
        return f"older than this bandmaster ({SCHEMA_VERSION}): upgraded when next opened for writing"
    return f"newer than this bandmaster ({SCHEMA_VERSION}): upgrade bandmaster"


def _contents(conn: sqlite3.Connection, found: Diagnosis, salvage: Path | None) -> None:
    """Runs by status, and which runs read whole (run row, steps, signals, approvals)."""
    run_ids = _run_ids(conn, found)
    if run_ids is None:
        return
    try:
        found.steps = conn.execute("SELECT count(*) FROM steps").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        found.problems.append(f"the steps table cannot be read whole: {exc}")
    lines = _readable_runs(conn, run_ids, found.runs_unreadable)
    if salvage is not None:
        found.salvaged = write_lines(salvage, lines)
    else:
        for _ in lines:
            pass
    found.runs_readable = len(run_ids) - len(found.runs_unreadable)


def _run_ids(conn: sqlite3.Connection, found: Diagnosis, chunk: int = 256) -> list[str] | None:
    """The ids of the runs table, read a range of rows at a time so that a damaged page loses
    only its own rows; ``None`` when the table cannot be read at all."""
    try:
        last = conn.execute("SELECT max(rowid) FROM runs").fetchone()[0] or 0
    except sqlite3.DatabaseError as exc:
        found.problems.append(f"the runs table cannot be read: {exc}")
        return None
    run_ids: list[str] = []
    lost = 0
    for start in range(1, last + 1, chunk):
        try:
            rows = conn.execute(
                "SELECT id, status FROM runs WHERE rowid BETWEEN ? AND ?", (start, start + chunk - 1)
            ).fetchall()
        except sqlite3.DatabaseError:
            lost += 1
            continue
        for run_id, status in rows:
            run_ids.append(run_id)
            found.runs_by_status[status] = found.runs_by_status.get(status, 0) + 1
    if lost:
        found.problems.append(f"{lost} range(s) of up to {chunk} runs cannot be read at all")
    return run_ids


def _readable_runs(conn: sqlite3.Connection, run_ids: list[str], unreadable: list[str]) -> Iterator[str]:
    """Export lines of the runs that read whole; the ids of the others go to ``unreadable``."""
    for run_id in run_ids:
        try:
            line = next(dump_runs(conn, [run_id]), None)
        except sqlite3.DatabaseError:
            unreadable.append(run_id)
            continue
        if line is not None:
            yield line


def doctor(
    db: DbOption = None,
    salvage: Annotated[
        Path | None,
        typer.Option(help="Write every run that can still be read to this export file (.jsonl or .jsonl.gz)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Check the journal (integrity, WAL state, schema version) and say what can be saved."""
    path = resolve_db_path(db)
    if not path.exists():
        raise _fail(f"no journal at {path}; pass --db or set BANDMASTER_DB")
    try:
        found = diagnose(path, salvage=salvage)
    except sqlite3.Error as exc:
        raise _fail(str(journal_error(path, exc, "reading journal")), 1) from exc
    except UsageError as exc:
        raise _fail(str(exc)) from exc
    except BandmasterError as exc:
        raise _fail(str(exc), 1) from exc
    if as_json:
        ui.print_json(found.model_dump() | {"sound": found.sound})
    else:
        for line in _report(found):
            ui.line(line)
    raise typer.Exit(0 if found.sound else 1)


def _report(found: Diagnosis) -> list[str]:
    kb = 1024
    lines = [
        f"journal   {found.path} ({found.file_bytes / kb:,.0f} KB, "
        f"{'writable' if found.writable else 'read-only for this user'})",
    ]
    if found.pages is not None:
        lines.append(f"pages     {found.pages:,} of {found.page_size} bytes, {found.free_pages:,} free")
        if not found.wal_bytes:
            wal = "every commit is in the main file"
        else:
            wal = f"WAL file of {found.wal_bytes / kb:,.0f} KB not yet checkpointed into the main file"
        lines.append(f"mode      {found.journal_mode or '?'}, {wal}")
        lines.append(f"schema    version {found.schema_version} ({found.schema_state})")
    if found.problems:
        lines.append(f"integrity DAMAGED: {len(found.problems)} problem(s)")
        lines.extend(f"          - {p}" for p in found.problems[:10])
    else:
        lines.append("integrity ok")
    statuses = ", ".join(f"{k} {v:,}" for k, v in sorted(found.runs_by_status.items())) or "none"
    steps = f"{found.steps:,} steps" if found.steps is not None else "steps unreadable"
    lines.append(f"contents  {sum(found.runs_by_status.values()):,} runs ({statuses}); {steps}")
    if found.runs_unreadable:
        shown = ", ".join(found.runs_unreadable[:10]) + (" …" if len(found.runs_unreadable) > 10 else "")
        unreadable = len(found.runs_unreadable)
        lines.append(f"saveable  {found.runs_readable:,} runs read whole; {unreadable:,} do not: {shown}")
    else:
        lines.append(f"saveable  all {found.runs_readable:,} runs read whole")
    if found.salvaged is not None:
        lines.append(f"salvaged  {found.salvaged:,} runs written (bandmaster import FILE --db NEW.db)")
    if found.sound:
        lines.append("verdict   sound")
    elif found.pages is None:
        lines.append("verdict   damaged beyond reading: restore the journal from a backup or an archive")
    else:
        lines.append(
            "verdict   damaged: stop the workers, save what reads (--salvage saved.jsonl), import it into "
            "a new journal (bandmaster import saved.jsonl --db new.db), and point the workers there"
        )
    return lines
