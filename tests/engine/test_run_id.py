"""The run id rule (``bandmaster.engine._run_id``): every writer refuses an id that is not one
URL path segment as it is, so every run that exists can be fetched, cancelled and signalled by
URL. The embedded engine, the Temporal engine (before it reaches the cluster), the CLI."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import bandmaster as bm

REFUSED = [
    "a/b",  # splits the path: /api/v1/runs/a/b is another route
    "a%2Fb",  # servers decode %2F before routing
    "..",  # clients rewrite dot segments
    ".",
    "",
    "-rf",  # an option on the command line
    "a b",
    "a?b",
    "a#b",
    "a\\b",
    "a\nb",
    "caf\u00e9",
    "x" * 201,
]
ACCEPTED = ["order-1234", uuid.uuid4().hex, str(uuid.uuid4()), "tenant:42@eu.west~1+b=c", "x" * 200]


@bm.workflow
async def wf_id(value: int) -> int:
    return value


@pytest.mark.parametrize("run_id", REFUSED, ids=repr)
async def test_the_engine_refuses_an_id_that_is_not_one_path_segment(
    engine: bm.Engine, db_path: Path, run_id: str
) -> None:
    with pytest.raises(bm.InvalidInput, match="one URL path segment") as info:
        await engine.start(wf_id, 1, run_id=run_id)
    assert "-200 characters from A-Z a-z 0-9" in str(info.value)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


@pytest.mark.parametrize("run_id", ACCEPTED, ids=lambda v: v[:20])
async def test_the_engine_accepts_ids_that_are_one_path_segment(engine: bm.Engine, run_id: str) -> None:
    handle = await engine.start(wf_id, 7, run_id=run_id)
    assert handle.id == run_id
    assert await handle.result(timeout=10) == 7
    assert (await engine.describe(run_id)).id == run_id


async def test_the_temporal_engine_refuses_before_it_calls_the_cluster() -> None:
    pytest.importorskip("temporalio")
    from bandmaster.temporal._engine import TemporalEngine

    client = TemporalEngine("127.0.0.1:9", workflows=[wf_id], worker=False)  # nothing listens
    with pytest.raises(bm.InvalidInput, match="one URL path segment"):
        await client.start(wf_id, 1, run_id="a/b")


def test_the_cli_refuses_with_the_rule_and_exit_2(tmp_path: Path) -> None:
    module = tmp_path / "wf_ids.py"
    module.write_text(
        "import bandmaster as bm\n\n@bm.workflow\nasync def echo(x: int) -> int:\n    return x\n"
    )
    argv = ["run", f"{module}:echo", "--input", "1", "--run-id", "a/b", "--db", str(tmp_path / "j.db")]
    done = subprocess.run(
        [sys.executable, "-m", "bandmaster.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert "run id 'a/b'" in done.stderr
    assert "one URL path segment" in " ".join(done.stderr.split())
