"""Schedules: tick run ids, catch-up policies, pause/resume, and two real worker processes
ticking one schedule (one run per tick)."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.e2e.harness import Workers, cli, wait_until

import bandmaster as bm
from bandmaster.engine._run_id import check_run_id
from bandmaster.engine._schedule import load_schedules, tick_run_id, ticks_between, ticks_to_start
from bandmaster.engine._schedule_desk import Schedules
from bandmaster.engine._ticker import Ticker

WF_SCHEDULED = Path(__file__).with_name("wf_scheduled.py")


@bm.workflow
async def report(region: str) -> str:
    return f"report for {region}"


def nightly(catchup: bm.triggers.CatchUp, grace: float = 60.0) -> bm.Schedule:
    return bm.Schedule("nightly", "*/5 * * * *", "report", catchup, input="eu", grace=grace)


def test_a_tick_run_id_is_a_valid_run_id_naming_schedule_and_time() -> None:
    tick = datetime(2026, 12, 6, 2, 0, tzinfo=UTC).timestamp()
    assert tick_run_id("nightly", tick) == "nightly@20261206T020000Z"
    check_run_id(tick_run_id("a" * 180, tick))


def test_six_fields_are_seconds_and_ticks_are_bounded() -> None:
    ticks = ticks_between("* * * * * */10", 0.0, 60.0)
    assert ticks == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    assert len(ticks_between("* * * * * *", 0.0, 10_000.0, limit=100)) == 100


def test_catch_up_policies_choose_among_due_ticks() -> None:
    due = [100.0, 200.0, 300.0]
    assert ticks_to_start("all", due, now=1000.0, grace=60) == due
    assert ticks_to_start("latest", due, now=1000.0, grace=60) == [300.0]
    assert ticks_to_start("skip", due, now=1000.0, grace=60) == []
    assert ticks_to_start("skip", due, now=330.0, grace=60) == [300.0]


@pytest.mark.parametrize(
    ("cron", "name", "fix"),
    [
        ("every 5 minutes", "x", "not a cron expression"),
        ("*/5 * * * *", "bad/name", "characters from"),
        ("*/5 * * * *", "a@b", "no '@'"),
    ],
)
def test_a_bad_schedule_says_what_to_fix(cron: str, name: str, fix: str) -> None:
    with pytest.raises(bm.UsageError, match=fix):
        bm.Schedule(name, cron, "report")


def test_a_schedule_of_an_unregistered_workflow_or_bad_input_is_refused_at_engine_creation(
    tmp_path: Path,
) -> None:
    with pytest.raises(bm.UsageError, match="not registered"):
        bm.Engine(tmp_path / "j.db", schedules=[nightly("skip")])
    bad = bm.Schedule("nightly", "*/5 * * * *", "report", input={"region": "eu", "extra": 1})
    with pytest.raises(bm.InvalidInput):
        bm.Engine(tmp_path / "j.db", workflows=[report], schedules=[bad])


def run_ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return sorted(r[0] for r in conn.execute("SELECT id FROM runs"))


@pytest.mark.parametrize("catchup", ["all", "latest", "skip"])
async def test_after_an_hour_down_the_policy_decides_what_is_caught_up(
    tmp_path: Path, catchup: bm.triggers.CatchUp
) -> None:
    db = tmp_path / "j.db"
    async with bm.Engine(db, workflows=[report], worker=False) as engine:
        declared_at = time.time()
        back = declared_at + 3600
        back += 150 - back % 300  # halfway between two ticks: the newest is 150 s late, past the grace
        ticker = Ticker(engine, [nightly(catchup)], clock=lambda: back)
        ticker.declare()
        missed = ticks_between("*/5 * * * *", declared_at, back)
        await ticker.tick_once()
        again = await ticker.tick_once()  # a second pass (or another worker) starts nothing more
    ids = run_ids(db)
    assert len(missed) in (11, 12)
    expected = {"all": missed, "latest": missed[-1:], "skip": []}[catchup]
    assert ids == sorted(tick_run_id("nightly", t) for t in expected)
    assert 0 <= again <= 300


async def test_skip_still_starts_a_tick_that_is_on_time(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    async with bm.Engine(db, workflows=[report], worker=False) as engine:
        ticker = Ticker(engine, [nightly("skip")], clock=time.time)
        ticker.declare()
        row = await Schedules(engine.store).get("nightly")
        on_time = row.next_tick.timestamp() + 1 if row.next_tick else 0.0
        ticker.clock = lambda: on_time
        await ticker.tick_once()
        handle_input = (await engine.list())[0].input
    assert run_ids(db) == [tick_run_id("nightly", on_time - 1)]
    assert handle_input == ["eu"]


async def test_paused_schedules_start_nothing_and_resume_does_not_backfill(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    async with bm.Engine(db, workflows=[report], worker=False) as engine:
        now = [time.time()]
        ticker = Ticker(engine, [nightly("all")], clock=lambda: now[0])
        ticker.declare()
        desk = Schedules(engine.store)
        assert (await desk.pause("nightly", by="ops")).paused
        now[0] += 3600
        await ticker.tick_once()
        assert run_ids(db) == []
        resumed = await desk.resume("nightly", by="ops")
        assert not resumed.paused
        assert resumed.changed_by == "ops"
        assert resumed.last_tick.timestamp() >= time.time() - 5
        await ticker.tick_once()  # now[0] is an hour ahead of the resume: those ticks run, not earlier ones
        after_resume = ticks_between("*/5 * * * *", resumed.last_tick.timestamp(), now[0])
        assert run_ids(db) == sorted(tick_run_id("nightly", t) for t in after_resume)
        with pytest.raises(bm.ScheduleNotFound, match="known: nightly"):
            await desk.pause("nope")


async def test_two_worker_processes_start_exactly_one_run_per_tick(tmp_path: Path) -> None:
    db, log = tmp_path / "journal.db", tmp_path / "effects.log"
    workers = Workers(tmp_path, db, log)
    try:
        a = workers.start(modules=(WF_SCHEDULED,), poll=0.02)
        b = workers.start(modules=(WF_SCHEDULED,), poll=0.02)

        def enough_ticks() -> bool:
            done = [i for i in run_ids(db) if i.startswith("every-second@")]
            return len(done) >= 4 and log.exists() and len(log.read_text().split()) >= 4

        await wait_until(enough_ticks, timeout=30, what="4 ticks", watch=(a, b))
        listed = cli("schedules", "list", "--db", db, "--json", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        [entry] = json.loads(listed.stdout)
        assert entry["name"] == "every-second"
        assert entry["workflow"] == "heartbeat"
        paused = cli("schedules", "pause", "every-second", "--db", db, "--by", "ops", cwd=tmp_path)
        assert paused.returncode == 0
        assert "paused every-second" in paused.stdout
    finally:
        workers.cleanup()
    ids = [i for i in run_ids(db) if i.startswith("every-second@")]
    seconds = sorted(datetime.strptime(i.split("@")[1], "%Y%m%dT%H%M%SZ").timestamp() for i in ids)
    # Consecutive ticks: none skipped, and (run ids being unique) none started twice.
    assert seconds == [seconds[0] + k for k in range(len(seconds))]
    executed = Counter(log.read_text().split())
    assert executed
    assert max(executed.values()) == 1, executed
    missing = cli("schedules", "resume", "nope", "--db", db, cwd=tmp_path)
    assert missing.returncode == 2
    assert "no schedule 'nope'" in missing.stderr


SCHEDULES_YAML = """
schedules:
  eu-report: {cron: "*/5 * * * *", workflow: report, catchup: all, input: eu}
"""


async def test_schedules_from_a_yaml_file_are_declared_like_decorated_ones(tmp_path: Path) -> None:
    config = tmp_path / "triggers.yaml"
    config.write_text(SCHEDULES_YAML)
    [loaded] = load_schedules(config)
    assert loaded == bm.Schedule("eu-report", "*/5 * * * *", "report", "all", input="eu")
    async with bm.Engine(tmp_path / "j.db", workflows=[report], schedules=[loaded]) as engine:
        [listed] = await Schedules(engine.store).list()
    assert (listed.name, listed.workflow, listed.catchup, listed.paused) == (
        "eu-report",
        "report",
        "all",
        False,
    )


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("hooks: {}", "no `schedules:` mapping"),
        ("schedules: {x: {workflow: report}}", "needs `cron:"),
        ("schedules: {x: {cron: '* * * * *', workflow: report, every: 5}}", "unknown keys ['every']"),
        ("schedules: {x: {cron: 'hourly', workflow: report}}", "not a cron expression"),
    ],
)
def test_a_bad_schedules_file_says_what_to_fix(tmp_path: Path, text: str, fix: str) -> None:
    config = tmp_path / "triggers.yaml"
    config.write_text(text)
    with pytest.raises(bm.UsageError, match=re.escape(fix)):
        load_schedules(config)


def test_a_worker_refuses_a_schedule_of_a_workflow_it_does_not_have(tmp_path: Path) -> None:
    config = tmp_path / "triggers.yaml"
    config.write_text(SCHEDULES_YAML)
    refused = cli("worker", WF_SCHEDULED, "--db", tmp_path / "j.db", "--schedules", config, cwd=tmp_path)
    assert refused.returncode == 2
    assert "starts workflow 'report', which is not registered" in refused.stderr


async def test_a_failing_pass_is_logged_and_the_ticker_keeps_ticking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with bm.Engine(tmp_path / "j.db", workflows=[report], worker=False) as engine:
        ticker = Ticker(engine, [nightly("all")])
        ticker.declare()
        engine.store._conn.execute("UPDATE schedules SET last_tick = 'garbage' WHERE name = 'nightly'")
        task = asyncio.create_task(ticker.run())
        try:
            for _ in range(200):
                if "a pass failed" in caplog.text:
                    break
                await asyncio.sleep(0.01)
            assert "a pass failed" in caplog.text
            assert not task.done()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
