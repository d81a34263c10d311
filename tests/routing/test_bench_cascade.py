"""The routing benchmark's ``--quick`` mode runs end to end (a smoke test: numbers are not
asserted here, they live in benchmarks/README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The shared data sits beside the checkout (/work/main) or beside the worktrees (/work/wt/<name>).
CANDIDATES = [parent / "shared" / "data" / "routerbench-arc-mbpp" for parent in REPO.parents[:2]]
DATA = next((path for path in CANDIDATES if path.is_dir()), None)


@pytest.mark.skipif(DATA is None, reason="RouterBench tables not beside the repo")
def test_the_quick_benchmark_runs_and_reports_every_family(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "bench_cascade.py"),
            "--routerbench",
            str(DATA),
            "--quick",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "APGR (test)" in done.stdout
    assert "at 95% of the strong model" in done.stdout
    # Pairs say what each of their signals can give, against random order and the oracle.
    assert "what each signal gives at 95% of the strong model" in done.stdout
    for line in ("random order", "oracle", "question (TF-IDF", "answers (mixtral-8x7b-chat)"):
        assert line in done.stdout
    for family in ("single", "mix", "router", "cascade", "gain-cascade"):
        assert family in done.stdout
    assert out.is_file()
