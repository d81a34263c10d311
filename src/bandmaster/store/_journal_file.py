"""The journal file itself: what an SQLite error on it means (one line, with the path and the
fix), opening it read-only (also on read-only media), and checking that it is a sound
bandmaster journal before a worker writes to it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bandmaster.errors import JournalCorrupt, JournalError, JournalReadOnly, NotAJournal, StoreError

# Primary SQLite result codes (an extended code keeps the primary one in its low byte).
_BUSY = 5
_LOCKED = 6
_NOMEM = 7
_READONLY = 8
_IOERR = 10
_CORRUPT = 11
_FULL = 13
_CANTOPEN = 14
_PROTOCOL = 15
_NOTADB = 26
TRANSIENT = frozenset({_BUSY, _LOCKED, _NOMEM, _IOERR, _FULL, _PROTOCOL})
"""Errors that pass by themselves (space freed, lock released): a write failing with one is
retried, and then the run is handed back rather than failed."""

_HINTS = {
    _FULL: "the disk (or the journal's size limit) is full; free space and the journal resumes",
    _BUSY: "another connection held the write lock longer than the busy timeout",
    _LOCKED: "another connection held the write lock longer than the busy timeout",
    _IOERR: "the operating system reported an I/O error; check the disk",
}


def error_code(exc: BaseException) -> int:
    """The primary SQLite result code of ``exc`` (0 when it carries none)."""
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_transient(exc: BaseException) -> bool:
    return error_code(exc) in TRANSIENT


def cannot_open(exc: BaseException) -> bool:
    return error_code(exc) == _CANTOPEN


def journal_error(path: Path, exc: sqlite3.Error, doing: str = "journal write to") -> StoreError:
    """``exc`` as the bandmaster error a user can act on: the real cause, the path, the fix."""
    code = error_code(exc)
    if code == _READONLY:
        return read_only(path, str(exc))
    if code == _CORRUPT:
        return corrupt(path, str(exc))
    if code == _NOTADB:
        return NotAJournal(
            str(path), f"{path} is not a bandmaster journal ({exc}); pass the journal file with --db"
        )
    if code == _CANTOPEN and path.is_dir():
        return is_a_directory(path)
    hint = _HINTS.get(code)
    return JournalError(str(path), f"{doing} {path} failed: {exc}" + (f" ({hint})" if hint else ""))


def read_only(path: Path, reason: str) -> JournalReadOnly:
    return JournalReadOnly(
        str(path),
        f"journal {path} is read-only ({reason}); allow writing it and its directory, or copy it "
        f"to writable media (read commands work on it as it is)",
    )


def corrupt(path: Path, reason: str) -> JournalCorrupt:
    return JournalCorrupt(
        str(path),
        f"journal {path} is damaged ({reason}); run `bandmaster doctor --db {path}` to see what can be saved",
    )


def is_a_directory(path: Path) -> NotAJournal:
    return NotAJournal(str(path), f"{path} is a directory, not a journal; pass the journal file with --db")


def connect_read_only(path: Path, *, timeout: float = 10.0) -> sqlite3.Connection:
    """A connection that can never write ``path``. On read-only media (or a directory this
    user cannot write) SQLite cannot create the WAL index, so the file is opened as immutable:
    nobody can be writing it there."""
    if path.is_dir():
        raise is_a_directory(path)
    uri = path.resolve().as_uri()
    conn: sqlite3.Connection | None = None
    try:
        try:
            conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=timeout)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            if error_code(exc) not in (_READONLY, _CANTOPEN):
                raise
            if conn is not None:
                conn.close()
            wal = Path(f"{path}-wal")
            if wal.is_file() and wal.stat().st_size > 0:  # immutable would ignore those commits
                raise JournalReadOnly(
                    str(path),
                    f"journal {path} cannot be read where it is: its latest commits are in {wal.name}, "
                    f"and reading them needs a writable directory; copy {path.name} and {wal.name} "
                    f"to writable media",
                ) from exc
            conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        raise journal_error(path, exc, "reading journal") from exc
    return conn


def check_schema(conn: sqlite3.Connection, path: Path, *, newest: int | None, writing: bool) -> int:
    """The journal's schema version, after checking this bandmaster can use it: refuses another
    application's database, a schema newer than ``newest`` (``None``: any), and, for reading,
    an empty file."""
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    except sqlite3.Error as exc:
        raise journal_error(path, exc, "reading journal") from exc
    if newest is not None and version > newest:
        raise StoreError(
            f"journal {path} has schema {version}, newer than this bandmaster ({newest}); upgrade bandmaster"
        )
    if version == 0 and (tables or not writing):
        what = "another application's SQLite database" if tables else "an empty file"
        raise NotAJournal(
            str(path), f"{path} is not a bandmaster journal ({what}); pass the journal file with --db"
        )
    return version


def integrity_problems(conn: sqlite3.Connection, *, full: bool = False, limit: int = 10) -> list[str]:
    """What SQLite's ``quick_check`` (structure of every page), or with ``full`` its
    ``integrity_check`` (index contents too), reports, one line each; ``[]`` when sound."""
    pragma = "integrity_check" if full else "quick_check"
    try:
        rows = conn.execute(f"PRAGMA {pragma}({int(limit)})").fetchall()
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    problems = [" ".join(str(r[0]).replace("*** in database main ***", "").split()) for r in rows]
    return [] if problems == ["ok"] else problems


def require_sound(conn: sqlite3.Connection, path: Path) -> None:
    """Raise ``JournalCorrupt`` unless the journal passes its quick check."""
    problems = integrity_problems(conn, limit=3)
    if problems:
        raise corrupt(path, f"integrity check: {'; '.join(problems)}")


def check_readable(path: Path) -> None:
    """What a read command checks first: ``path`` is a bandmaster journal and passes its quick
    check, so a damaged journal is refused with one line instead of served with holes."""
    conn = connect_read_only(path)
    try:
        check_schema(conn, path, newest=None, writing=False)
        require_sound(conn, path)
    finally:
        conn.close()
