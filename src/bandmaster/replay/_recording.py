"""Recorded runs, read straight from a journal file, read-only.

Every run in the journal is a recording: its input, its outcome, and every journaled
operation with its recorded output. The source journal is opened with SQLite's ``mode=ro``,
so a replay can never write to it (not even a migration). Reading a WAL journal may leave
the ``-wal``/``-shm`` side files SQLite uses for readers; the database itself is untouched.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bandmaster.errors import ReplayError, StoreError
from bandmaster.store import FORMAT, RunRow, StepRow, connect_read_only, require_sound, resolve_db_path

_RUN_COLUMNS = (
    "id, workflow, version, status, input, output, error, created_at, updated_at, ended_at, "
    "ready_at, lease_owner, lease_expires, cancel_requested, claims"
)
_STEP_COLUMNS = "run_id, seq, name, kind, status, output, error, attempts, started_at, ended_at, meta"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_QUERY_KEYS = ("status", "since", "until", "limit", "id", "version")
DEFAULT_STATUSES = ("completed", "failed")


class RunQuery(BaseModel):
    """Which recorded runs to replay. As text (``--runs``): space- or comma-separated
    ``key=value`` filters and bare run ids, e.g. ``"status=completed since=7d limit=500"``
    or ``"3f2a…,9bc1…"``. Keys: status (``a|b``), since/until (``30m``, ``24h``, ``7d`` ago),
    limit, id, version."""

    ids: list[str] = []
    statuses: list[str] = list(DEFAULT_STATUSES)
    since: float | None = None  # seconds ago
    until: float | None = None  # seconds ago
    limit: int = 1000
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> RunQuery:
        fields: dict[str, Any] = {"ids": []}
        for token in re.split(r"[\s,]+", text.strip()):
            if not token:
                continue
            key, sep, value = token.partition("=")
            if not sep:
                fields["ids"].append(token)
                continue
            if key not in _QUERY_KEYS:
                raise ReplayError(
                    f"run query {text!r}: unknown key {key!r}; use {', '.join(_QUERY_KEYS)} "
                    f"(e.g. 'status=completed since=24h limit=100')"
                )
            if key == "status":
                fields["statuses"] = value.split("|")
            elif key in ("since", "until"):
                fields[key] = _seconds(value, text)
            elif key == "limit":
                if not value.isdigit() or int(value) < 1:
                    raise ReplayError(f"run query {text!r}: limit must be a positive integer, got {value!r}")
                fields["limit"] = int(value)
            elif key == "id":
                fields["ids"].append(value)
            else:
                fields["version"] = value
        return cls(**fields)


def _seconds(value: str, text: str) -> float:
    match = _DURATION.match(value)
    if match is None:
        raise ReplayError(f"run query {text!r}: {value!r} is not a duration; write 30m, 24h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(slots=True)
class Recording:
    """One recorded run: its row and its journaled operations in sequence order."""

    run: RunRow
    steps: list[StepRow] = field(default_factory=list)

    def output(self) -> Any:
        return json.loads(self.run.output) if self.run.output else None

    def error(self) -> dict[str, Any] | None:
        return json.loads(self.run.error) if self.run.error else None


class RecordingSource:
    """A journal opened read-only. Use as a context manager, or call ``close``."""

    def __init__(self, db: str | os.PathLike[str] | None) -> None:
        self.path: Path = resolve_db_path(db)
        if not self.path.is_file():
            raise ReplayError(f"no journal at {self.path}; pass the journal the runs were recorded in (--db)")
        try:
            self._conn = connect_read_only(self.path)  # also on read-only media
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except (sqlite3.Error, StoreError) as exc:
            raise ReplayError(f"cannot read journal {self.path}: {exc}") from exc
        if not {"runs", "steps"} <= tables:
            self._conn.close()
            raise ReplayError(f"{self.path} is not a bandmaster journal (it has no runs/steps tables)")
        try:
            require_sound(self._conn, self.path)  # recordings with holes would replay wrongly
        except StoreError as exc:
            self._conn.close()
            raise ReplayError(str(exc)) from None

    def __enter__(self) -> RecordingSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def runs(self, workflow: str, query: RunQuery) -> list[Recording]:
        """The recordings of ``workflow`` that ``query`` selects, oldest first."""
        clauses, params = ["workflow = ?"], [workflow]
        if query.ids:
            clauses.append("id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(query.ids))
        if query.statuses:
            clauses.append("status IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(query.statuses))
        now = time.time()
        if query.since is not None:
            clauses.append("created_at >= ?")
            params.append(str(now - query.since))
        if query.until is not None:
            clauses.append("created_at <= ?")
            params.append(str(now - query.until))
        if query.version is not None:
            clauses.append("version = ?")
            params.append(query.version)
        sql = (
            f"SELECT {_RUN_COLUMNS}, fmt FROM runs WHERE {' AND '.join(clauses)} "
            f"ORDER BY created_at DESC, id LIMIT {int(query.limit)}"
        )
        try:
            rows = self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise ReplayError(f"cannot read runs from {self.path}: {exc}") from exc
        recordings = []
        for values in reversed(rows):  # the newest `limit`, replayed in the order they ran
            self._check_format(values[-1], f"run {values[0]}")
            run = RunRow(*values[:-1])
            run.cancel_requested = bool(run.cancel_requested)
            recordings.append(Recording(run, self._steps(run.id)))
        if query.ids:
            missing = set(query.ids) - {r.run.id for r in recordings}
            if missing:
                raise ReplayError(
                    f"no {'/'.join(query.statuses)} run of workflow {workflow!r} with id "
                    f"{', '.join(sorted(missing))} in {self.path}; check the ids (bandmaster runs list)"
                )
        return recordings

    def _steps(self, run_id: str) -> list[StepRow]:
        rows = self._conn.execute(
            f"SELECT {_STEP_COLUMNS}, fmt FROM steps WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
        for values in rows:
            self._check_format(values[-1], f"run {run_id} seq {values[1]}")
        return [StepRow(*values[:-1]) for values in rows]

    def _check_format(self, fmt: str, what: str) -> None:
        if fmt != FORMAT:
            raise ReplayError(
                f"{what} in {self.path} is stored as {fmt!r}; this bandmaster reads {FORMAT!r}: "
                f"upgrade bandmaster"
            )


_CENTURY = 100 * 365 * 86400.0  # a scratch lease never expires during a replay


def scratch_run(original: RunRow, owner: str) -> RunRow:
    """The run's row in the scratch journal, leased to the replayer so its writes are fenced
    exactly as a worker's are (a replay or a determinism check)."""
    return RunRow(
        id=original.id,
        workflow=original.workflow,
        version=original.version,
        status="running",
        input=original.input,
        output=None,
        error=None,
        created_at=original.created_at,
        updated_at=original.created_at,
        ended_at=None,
        ready_at=None,
        lease_owner=owner,
        lease_expires=original.created_at + _CENTURY,
        cancel_requested=False,
        claims=1,
    )
