"""The e2e harness: real ``bandmaster worker`` processes on a journal in tmp_path, and
read-only views of that journal and of the side-effect log the workflows write.

Nothing is mocked. Workers are started from the console script of the virtualenv running the
tests, their output goes to files in tmp_path, and ``Workers.cleanup`` SIGKILLs and reaps every
process a test started, whatever state it is in (running, stopped, exited).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from bandmaster.cli._loader import import_module

E2E_DIR = Path(__file__).resolve().parent
WF_CHAIN = E2E_DIR / "wf_chain.py"
READY_TIMEOUT = 20.0

T = TypeVar("T")


def bandmaster_exe() -> str:
    """The ``bandmaster`` console script next to the interpreter running the tests."""
    candidate = Path(sys.executable).parent / "bandmaster"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("bandmaster")
    assert found, "the bandmaster console script is not installed"
    return found


def cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a ``bandmaster`` command to completion (as a user would, from another shell)."""
    env = {k: v for k, v in os.environ.items() if k != "BANDMASTER_DB"}
    env["COLUMNS"] = "200"
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [bandmaster_exe(), *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd, env=env
    )


def one_line(text: str) -> str:
    return " ".join(text.split())


def load_wf_chain() -> ModuleType:
    """The workflow module, imported by path exactly as the worker imports it."""
    return import_module(str(WF_CHAIN))


# --- processes -----------------------------------------------------------------------------


@dataclass
class WorkerProc:
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    stdout_path: Path
    args: list[str]
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> None:
        rc = self.proc.poll()
        if rc is not None:
            raise AssertionError(f"worker {self.pid} exited with {rc} unexpectedly:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL (works on a SIGSTOPped process too) and reap, so the pid is really gone."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=15)

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)


class Workers:
    """Starts ``bandmaster worker`` subprocesses on one journal and cleans them all up."""

    def __init__(self, tmp_path: Path, db: Path, log: Path) -> None:
        self.tmp_path = tmp_path
        self.db = db
        self.log = log
        self.procs: list[WorkerProc] = []

    def start(
        self,
        *,
        lease: float = 1.0,
        poll: float = 0.05,
        concurrency: int = 100,
        grace: float = 10.0,
        modules: tuple[Path, ...] = (WF_CHAIN,),
        wait_ready: bool = True,
        extra: tuple[str, ...] = (),
    ) -> WorkerProc:
        """``bandmaster worker MODULES --db DB ...``, by default once it is serving."""
        worker = self.spawn(
            "worker",
            *(str(m) for m in modules),
            "--db",
            str(self.db),
            "--lease",
            str(lease),
            "--poll",
            str(poll),
            "--concurrency",
            str(concurrency),
            "--grace",
            str(grace),
            *extra,
        )
        if wait_ready:
            self.wait_ready(worker)
        return worker

    def spawn(self, *args: str) -> WorkerProc:
        """Any ``bandmaster`` command in the background, cleaned up like the workers."""
        index = len(self.procs) + 1
        argv = [bandmaster_exe(), *args]
        env = {k: v for k, v in os.environ.items() if k != "BANDMASTER_DB"}
        env["BM_E2E_LOG"] = str(self.log)
        env["PYTHONUNBUFFERED"] = "1"
        env["COLUMNS"] = "200"
        stdout_path = self.tmp_path / f"proc{index}.out"
        stderr_path = self.tmp_path / f"proc{index}.err"
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=self.tmp_path
            )
        worker = WorkerProc(proc, stderr_path, stdout_path, argv)
        self.procs.append(worker)
        return worker

    def wait_ready(self, worker: WorkerProc) -> None:
        """Block until the worker printed its banner (it has opened the journal, recovered the
        runs of dead workers and started polling)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while "serving" not in worker.output():
            worker.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"worker {worker.pid} not ready after {READY_TIMEOUT}s:\n{worker.output()}"
                )
            time.sleep(0.01)

    def cleanup(self) -> None:
        for worker in self.procs:
            with contextlib.suppress(ProcessLookupError):
                if worker.proc.poll() is None:
                    worker.proc.send_signal(signal.SIGKILL)
        for worker in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=15)


# --- reading the journal and the side-effect log ------------------------------------------


class Journal:
    """Read-only views of the SQLite journal, each query on a fresh connection (WAL: readers
    never block the workers, and no read transaction is held between queries)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []
        with contextlib.closing(sqlite3.connect(self.path, timeout=10)) as conn:
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []  # a process is creating the journal right now
                raise

    def statuses(self) -> dict[str, str]:
        return dict(self.query("SELECT id, status FROM runs"))  # type: ignore[arg-type]

    def run(self, run_id: str) -> dict[str, Any]:
        with contextlib.closing(sqlite3.connect(self.path, timeout=10)) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        assert row is not None, f"no run {run_id}"
        return dict(row)

    def claims(self) -> dict[str, int]:
        return dict(self.query("SELECT id, claims FROM runs"))  # type: ignore[arg-type]

    def step_keys(self, status: str | None = "completed") -> set[tuple[str, int]]:
        """(run_id, seq) of the journaled steps (completed ones by default)."""
        if status is None:
            rows = self.query("SELECT run_id, seq FROM steps")
        else:
            rows = self.query("SELECT run_id, seq FROM steps WHERE status = ?", (status,))
        return {(r[0], r[1]) for r in rows}

    def steps_per_run(self) -> dict[str, int]:
        rows = self.query("SELECT run_id, COUNT(*) FROM steps WHERE status = 'completed' GROUP BY run_id")
        return dict(rows)  # type: ignore[arg-type]

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(self.path, timeout=10)) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM steps WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
        return [dict(r) for r in rows]

    def row_counts(self) -> Counter[tuple[str, int]]:
        """Rows per (run_id, seq), counted with GROUP BY rather than trusting the primary key."""
        rows = self.query("SELECT run_id, seq, COUNT(*) FROM steps GROUP BY run_id, seq")
        return Counter({(r[0], r[1]): r[2] for r in rows})

    def assert_consistent(self, run_ids: list[str], steps: int, kinds: dict[int, str] | None = None) -> None:
        """Every run has exactly one completed journal row for each seq 1..steps, nothing else."""
        counts = self.row_counts()
        duplicated = {key: n for key, n in counts.items() if n != 1}
        assert not duplicated, f"steps recorded more than once: {duplicated}"
        for run_id in run_ids:
            rows = self.steps(run_id)
            seqs = [r["seq"] for r in rows]
            assert seqs == list(range(1, steps + 1)), f"run {run_id}: journal seqs {seqs}"
            bad = [(r["seq"], r["status"]) for r in rows if r["status"] != "completed"]
            assert not bad, f"run {run_id}: steps not completed: {bad}"
            if kinds is not None:
                assert {r["seq"]: r["kind"] for r in rows} == kinds


@dataclass(frozen=True)
class Effect:
    run_id: str
    seq: int
    pid: int
    name: str


def read_effects(path: Path) -> list[Effect]:
    if not path.exists():
        return []
    effects = []
    for line in path.read_text().splitlines():
        run_id, seq, pid, name = line.split(":")
        effects.append(Effect(run_id, int(seq), int(pid), name))
    return effects


def effect_counts(effects: list[Effect]) -> Counter[tuple[str, int]]:
    return Counter((e.run_id, e.seq) for e in effects)


# --- waiting on conditions ---------------------------------------------------------------


async def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float,
    what: str,
    watch: tuple[WorkerProc, ...] = (),
    interval: float = 0.01,
) -> T:
    """Poll ``condition`` until it returns something truthy; fail fast if a watched worker
    died, and with a clear message after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for worker in watch:
            worker.check_alive()
        if time.monotonic() > deadline:
            outputs = "\n".join(f"--- worker {w.pid}:\n{w.output()}" for w in watch)
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{outputs}")
        await asyncio.sleep(interval)


def all_finished(journal: Journal, run_ids: list[str]) -> Callable[[], bool]:
    def check() -> bool:
        statuses = journal.statuses()
        return all(statuses.get(r) in ("completed", "failed", "cancelled") for r in run_ids)

    return check
