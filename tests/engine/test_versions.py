"""Several versions of one workflow hosted at once on the embedded engine: a run stays on the
version it started on, new runs get the newest (or a pinned default), workers claim only the
versions they host, and runs of a version nobody hosts wait, visibly."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import bandmaster as bm
from bandmaster.engine._versions import HostedWorkflows, version_order


def make(version: str | None, name: str = "triage") -> bm.Workflow[[str], str]:
    async def triage(ticket: str) -> str:
        reply = await bm.wait_for("go", timeout=60, default="?")
        return f"{ticket}:{reply}:v{version}"

    return bm.workflow(name=name, version=version)(triage)


V1, V2, V10 = make("1"), make("2"), make("10")
PLAIN = make(None)


def versions_in(db: Path) -> dict[str, str | None]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT id, version FROM runs"))


async def settle(engine: bm.Engine, run_id: str, payload: str = "ok") -> Any:
    await engine.signal(run_id, "go", payload)
    return await engine.result(run_id, timeout=30)


async def test_each_run_stays_on_its_version_and_new_runs_get_the_newest(tmp_path: Path) -> None:
    async with bm.Engine(tmp_path / "bm.db", workflows=[V1, V2, V10]) as engine:
        assert engine.workflows["triage"] is V10  # natural order: 10 is newer than 2
        newest = await engine.start("triage", "T-1")
        pinned = await engine.start(V1, "T-2")
        assert [await settle(engine, r.id) for r in (newest, pinned)] == ["T-1:ok:v10", "T-2:ok:v1"]
        assert (await engine.describe(pinned.id)).version == "1"
    assert versions_in(tmp_path / "bm.db") == {newest.id: "10", pinned.id: "1"}


async def test_a_pinned_default_wins_over_the_newest(tmp_path: Path) -> None:
    async with bm.Engine(tmp_path / "bm.db", workflows=[V1, V2], default_versions={"triage": "1"}) as engine:
        handle = await engine.start("triage", "T-1")
        assert await settle(engine, handle.id) == "T-1:ok:v1"


async def test_a_worker_claims_only_the_versions_it_hosts(tmp_path: Path) -> None:
    db = tmp_path / "bm.db"
    async with bm.Engine(db, worker=False) as client:
        old = await client.start(V1, "T-old")  # pinned to v1 by the client's code
        async with bm.Engine(db, workflows=[V2], poll_interval=0.02) as v2_worker:
            fresh = await v2_worker.start("triage", "T-new")
            assert await settle(v2_worker, fresh.id) == "T-new:ok:v2"
            await client.signal(old.id, "go", "late")
            await asyncio.sleep(0.3)  # many polls: v2 must leave the v1 run alone
            assert (await client.describe(old.id)).status == "queued"
            (unserved,) = await client.unserved()
            assert (unserved.workflow, unserved.version, unserved.runs) == ("triage", "1", 1)
            assert unserved.label == "no worker for triage@1"
            assert [u.label for u in (await v2_worker.stats()).unserved] == ["no worker for triage@1"]
            async with bm.Engine(db, workflows=[V1], poll_interval=0.02):
                assert await client.result(old.id, timeout=30) == "T-old:late:v1"
            assert await client.unserved() == []


async def test_an_unpinned_run_is_pinned_by_the_worker_that_claims_it(tmp_path: Path) -> None:
    db = tmp_path / "bm.db"
    async with bm.Engine(db, worker=False) as client:
        handle = await client.start("triage", "T-1")  # by name, with no code here: no version yet
        assert versions_in(db) == {handle.id: None}
        assert [u.label for u in await client.unserved()] == ["no worker for triage (any version)"]
        async with bm.Engine(db, workflows=[V1, V2], poll_interval=0.02) as worker:
            await worker.signal(handle.id, "go", "ok")
            assert await client.result(handle.id, timeout=30) == "T-1:ok:v2"
    assert versions_in(db) == {handle.id: "2"}


async def test_an_unversioned_worker_leaves_versioned_runs_alone(tmp_path: Path) -> None:
    db = tmp_path / "bm.db"
    async with bm.Engine(db, worker=False) as client:
        versioned = await client.start(V1, "T-1")
        plain = await client.start(PLAIN, "T-2")
        for run in (versioned, plain):
            await client.signal(run.id, "go", "ok")
        async with bm.Engine(db, workflows=[PLAIN], poll_interval=0.02):
            assert await client.result(plain.id, timeout=30) == "T-2:ok:vNone"
            assert (await client.describe(versioned.id)).status == "queued"
            assert [u.label for u in await client.unserved()] == ["no worker for triage@1"]


async def test_a_stopped_worker_stops_serving_its_versions(tmp_path: Path) -> None:
    db = tmp_path / "bm.db"
    async with bm.Engine(db, workflows=[V1], lease=3.0) as worker:
        waiting = await worker.start(V1, "T-1")
        await asyncio.sleep(0.1)
        assert (await worker.describe(waiting.id)).status == "waiting"
        assert await worker.unserved() == []
    async with bm.Engine(db, worker=False) as client:
        (unserved,) = await client.unserved()
        assert (unserved.label, unserved.statuses) == ("no worker for triage@1", {"waiting": 1})


def test_versions_are_ordered_naturally() -> None:
    ordered = [None, "1", "2", "2.1", "9", "10", "10a", "2024-06-01"]
    assert sorted(reversed(ordered), key=version_order) == ordered


@pytest.mark.parametrize("bad", ["", "two words", "1@2", "-1", "x" * 65, 2])
def test_a_bad_version_is_refused_saying_what_a_version_is(bad: Any) -> None:
    with pytest.raises(bm.UsageError, match="is not a version; use up to 64 letters"):
        make(bad)


def test_the_same_version_twice_and_bad_pins_are_refused() -> None:
    with pytest.raises(bm.UsageError, match="two workflows are named 'triage' with version '1'"):
        HostedWorkflows([V1, make("1")])
    with pytest.raises(bm.UsageError, match="pins 'triage' to version '3', which this engine does not host"):
        bm.Engine(":memory:", workflows=[V1, V2], default_versions={"triage": "3"})
    redacting = bm.workflow(name="triage", version="3", redact=bm.RedactPII(mode="replace"))(V1.fn)
    with pytest.raises(bm.UsageError, match="disagree on redact="):
        HostedWorkflows([V1, redacting])


def test_the_keys_and_pins_a_claim_asks_for_follow_each_added_workflow() -> None:
    hosted = HostedWorkflows([V1])
    assert (hosted.keys(), dict(hosted.pins())) == (("triage@1",), {"triage": "1"})
    hosted.add(V10)
    assert (hosted.keys(), dict(hosted.pins())) == (("triage@1", "triage@10"), {"triage": "10"})
    hosted.add(PLAIN)  # the unversioned workflow is hosted: unpinned runs stay unversioned
    assert hosted.pins()["triage"] is None
    assert hosted.keys() == ("triage@1", "triage@10", "triage@")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANDMASTER_")} | {"COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "bandmaster.cli", *args], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    return done


def test_the_cli_says_which_version_has_no_worker(tmp_path: Path) -> None:
    db = tmp_path / "bm.db"

    async def start() -> str:
        async with bm.Engine(db, worker=False) as client:
            return (await client.start(V1, "T-1")).id

    run_id = asyncio.run(start())
    listed = cli("runs", "list", "--db", str(db)).stdout
    assert "triage@1" in listed
    assert "queued (no worker for triage@1)" in listed
    (row,) = json.loads(cli("runs", "list", "--db", str(db), "--json").stdout)
    assert (row["id"], row["version"], row["note"]) == (run_id, "1", "no worker for triage@1")
    stats = cli("stats", "--db", str(db)).stdout
    assert "no worker for triage@1: 1 unfinished runs wait (1 queued)" in stats, stats


def test_a_worker_refuses_a_default_version_it_does_not_host(tmp_path: Path) -> None:
    module = Path(__file__).parents[1] / "conformance" / "wf_triage_v1.py"
    worker = [sys.executable, "-m", "bandmaster.cli", "worker", str(module), "--db", str(tmp_path / "bm.db")]
    for pin, message in (
        ("triage=7", "pins 'triage' to version '7', which this engine does not host (hosted: 1)"),
        ("triage", "--default-version 'triage': use NAME=VERSION"),
    ):
        done = subprocess.run(
            [*worker, "--default-version", pin],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert message in done.stderr


def test_the_cli_runs_one_version_or_the_newest(tmp_path: Path) -> None:
    module = tmp_path / "greetings.py"
    versions = (
        f"@bm.workflow(name='greet', version='{v}')\n"
        f"async def greet_v{v}(name: str) -> str:\n    return 'v{v} ' + name\n\n"
        for v in ("1", "2")
    )
    module.write_text("import bandmaster as bm\n\n" + "".join(versions))
    db = str(tmp_path / "bm.db")
    assert cli("run", f"{module}:greet", "--input", '"Ada"', "--db", db).stdout.strip() == '"v2 Ada"'
    assert cli("run", f"{module}:greet@1", "--input", '"Ada"', "--db", db).stdout.strip() == '"v1 Ada"'
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANDMASTER_")}
    missing = subprocess.run(
        [sys.executable, "-m", "bandmaster.cli", "run", f"{module}:greet@3", "--input", "1", "--db", db],
        capture_output=True,
        text=True,
        env=env,
    )
    assert missing.returncode == 2
    assert "has no workflow 'greet@3' (workflows there: greet@1, greet@2)" in missing.stderr


async def test_an_unpinned_run_stays_unversioned_where_that_is_hosted(tmp_path: Path) -> None:
    """As on Temporal, where such a run starts on the unversioned workflow's queue."""
    db = tmp_path / "bm.db"
    async with bm.Engine(db, worker=False) as client:
        handle = await client.start("triage", "T-1")
        await client.signal(handle.id, "go", "ok")
        async with bm.Engine(db, workflows=[PLAIN, V2], poll_interval=0.02):
            assert await client.result(handle.id, timeout=30) == "T-1:ok:vNone"
    assert versions_in(db) == {handle.id: None}
