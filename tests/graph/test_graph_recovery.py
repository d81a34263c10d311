"""A graph survives SIGKILL of the worker running it: another worker finishes the run, and every
node is recorded in the journal exactly once (the killed node ran twice: at least once)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import bandmaster as bm

HERE = Path(__file__).resolve().parent
MODULE = HERE / "wf_graph_crash.py"


def bandmaster_exe() -> str:
    candidate = Path(sys.executable).parent / "bandmaster"
    return str(candidate) if candidate.exists() else "bandmaster"


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``bandmaster worker`` processes; every one is SIGKILLed and reaped at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(db: Path, log: Path) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "BANDMASTER_DB"}
        env.update(BM_GRAPH_LOG=str(log), PYTHONUNBUFFERED="1")
        index = len(procs) + 1
        with open(tmp_path / f"worker{index}.err", "wb") as err:
            proc = subprocess.Popen(
                [bandmaster_exe(), "worker", str(MODULE), "--db", str(db), "--lease", "1", "--poll", "0.05"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                cwd=tmp_path,
            )
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)


def effects(log: Path) -> list[tuple[int, str]]:
    if not log.exists():
        return []
    return [(int(pid), name) for pid, name in (line.split(":") for line in log.read_text().splitlines())]


def steps(db: Path, run_id: str) -> list[tuple[int, str, str, str]]:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return conn.execute(
            "SELECT seq, name, kind, status FROM steps WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()


def rows_per_seq(db: Path, run_id: str) -> Counter[int]:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        rows = conn.execute("SELECT seq, COUNT(*) FROM steps WHERE run_id = ? GROUP BY seq", (run_id,))
        return Counter(dict(rows.fetchall()))


def wait_for(condition: Callable[[], object], what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert proc.poll() is None, f"worker exited with {proc.returncode} before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.mark.e2e
async def test_sigkill_mid_graph_then_a_new_worker_finishes_with_each_node_recorded_once(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    db, log = tmp_path / "journal.db", tmp_path / "effects.log"
    async with bm.Engine(db, worker=False, poll_interval=0.05) as client:
        handle = await client.start("graph_crash", {"text": "charged twice", "delay": 1.5})

        first = spawn(db, log)
        wait_for(lambda: any(name == "enrich" for _, name in effects(log)), "the slow node to start", first)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=15)
        assert steps(db, handle.id) == [  # the parallel branches were journaled; enrich was not
            (1, "classifier", "model", "completed"),
            (2, "phi", "model", "completed"),
        ]

        second = spawn(db, log)
        result = await handle.result(timeout=30)

    assert result == {
        "intent": {
            "output": "billing",
            "text": "billing",
            "confidence": 0.93,
            "model": "classifier",
            "cost": 0.0,
        },
        "enrich": "CHARGED TWICE",
        "reply": {
            "output": "Dear customer, refunded.",
            "text": "Dear customer, refunded.",
            "confidence": None,
            "model": "writer",
            "cost": 0.0,
        },
    }
    assert steps(db, handle.id) == [
        (1, "classifier", "model", "completed"),
        (2, "phi", "model", "completed"),
        (3, "enrich", "step", "completed"),
        (4, "route", "route", "completed"),
        (5, "writer", "model", "completed"),
    ]
    assert set(rows_per_seq(db, handle.id).values()) == {1}
    # Finished nodes were replayed from the journal, not run again; the killed one ran twice.
    assert effects(log) == [
        (first.pid, "classifier"),
        (first.pid, "phi"),
        (first.pid, "enrich"),
        (second.pid, "enrich"),
        (second.pid, "writer"),
    ]
