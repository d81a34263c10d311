"""The stats rollup catch-up in real processes: several at once never count a run twice, one
SIGKILLed mid-way leaves no half batch, and a reader that cannot write (a read-only journal
file) gets the same stats without writing a byte."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.observe.test_stats_rollup import assert_all_views_same, assert_close, counts, random_journal

from bandmaster.observe.stats import Stats, compute

from .harness import wait_until

pytestmark = pytest.mark.e2e

RUNS = 2000  # 1800 ended (the backlog), 4 step rows each; 200 still running
ENDED = 1800

# A catch-up process: waits for the go file (all start together), catches up in small
# batches, prints how many runs it added.
CATCH_UP = """
import os, sqlite3, sys, time
from bandmaster.store._rollups import catch_up
db, go, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = sqlite3.connect(db, isolation_level=None, timeout=30)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
print(catch_up(conn, batch=batch), flush=True)
"""


def _spawn(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )  # type: ignore[call-overload]


@pytest.fixture
def backlog(tmp_path: Path) -> Path:
    db = tmp_path / "backlog.db"
    random_journal(db, runs=RUNS)
    assert counts(db) == (0, 0)
    return db


def test_concurrent_catch_ups_count_every_run_once(backlog: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [_spawn(CATCH_UP, str(backlog), str(go), "10") for _ in range(3)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        go.touch()
        outputs = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()  # reaps it and closes its pipes
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err for _, err in outputs]
    added = [int(out.strip()) for out, _ in outputs]
    assert sum(added) == ENDED  # each ended run added by exactly one of them
    assert sum(1 for n in added if n) >= 2, added  # they really ran at the same time
    assert counts(backlog) == (ENDED, ENDED * 4)
    assert_all_views_same(backlog)
    assert counts(backlog) == (ENDED, ENDED * 4)  # the readers found nothing left to add


async def test_sigkill_mid_catch_up_leaves_no_half_batch(backlog: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    go.touch()
    proc = _spawn(CATCH_UP, str(backlog), str(go), "5")
    try:
        # Each committed batch is 5 runs of 4 rows; kill it once some are in, well before the end.
        await wait_until(lambda: counts(backlog)[0] >= 50, timeout=60, what="some batches committed")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    rolled, rows = counts(backlog)
    assert rolled < ENDED, "the catch-up finished before the kill; nothing was tested"
    assert rows == rolled * 4  # the marks and the rollups agree: no batch half written
    assert_all_views_same(backlog)  # the next reader adds the rest, once
    assert counts(backlog) == (ENDED, ENDED * 4)


def test_a_read_only_journal_gives_the_same_stats_without_writing(backlog: Path, tmp_path: Path) -> None:
    expected = tmp_path / "expected.db"
    shutil.copy(backlog, expected)
    backlog.chmod(0o444)
    before = hashlib.sha256(backlog.read_bytes()).hexdigest()
    reader = (
        "import sys; from bandmaster.observe.stats import compute; "
        "print(compute(sys.argv[1]).model_dump_json())"
    )
    # root writes whatever the mode says: drop the capabilities that let it, for this process
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"] if os.geteuid() == 0 else []
    if prefix and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux): cannot make the journal read-only")
    done = subprocess.run(
        [*prefix, sys.executable, "-c", reader, str(backlog)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert hashlib.sha256(backlog.read_bytes()).hexdigest() == before  # not a byte written
    assert counts(backlog) == (0, 0)
    read_only = Stats.model_validate(json.loads(done.stdout))
    assert not read_only.percentiles_exact  # from the rollups, the backlog read from its rows
    # The same numbers as the rows, and as the rollups once caught up, of the same journal
    skip = {"db", "seconds", "computed_at", "percentiles_exact", "since", "file_bytes", "free_bytes"}
    exact, caught_up = compute(expected, exact=True), compute(expected)
    assert counts(expected) == (ENDED, ENDED * 4)
    for other in (exact, caught_up):
        assert_close(read_only.model_dump(exclude=skip), other.model_dump(exclude=skip))
    assert read_only.runs == RUNS
