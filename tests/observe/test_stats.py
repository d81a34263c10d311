"""``bandmaster.observe.stats``: exact numbers on a journal with known timings, the meta that
``bm.call_model`` really writes, filters, the CLI and its errors."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import date
from pathlib import Path

import pytest
from tests.extras import needs
from tests.observe.test_stats_rollup import write_locked
from typer.testing import CliRunner

import bandmaster as bm
from bandmaster.cli._app import app
from bandmaster.observe.stats import compute
from bandmaster.store import _rollups as rollups
from bandmaster.store._sqlite import SQLiteStore

plot = needs("plot", "matplotlib")

DAY1 = 1_700_000_000.0  # 2023-11-14 22:13 UTC
DAY2 = DAY1 + 86400


def _known_journal(path: Path) -> None:
    """100 runs of ``triage``; run i (1..100):

    * step ``classify`` takes exactly i ms, fails when i % 10 == 0, uses 3 attempts when i % 4 == 0;
    * model call ``intent``: i <= 80 answered by ``small`` ($0.001, 10 in / 5 out tokens; from the
      cache when i % 20 == 0, $0), i > 80 by the fallback ``big`` ($0.01, 100 in / 50 out);
    * a ``now`` row (bookkeeping, left out of step statistics);
    * runs 1..50 created on DAY1, 51..100 on DAY2; failed when i % 10 == 0, else completed.
    Plus 10 runs of ``other`` with one 1 s step, all still waiting.
    """
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    for i in range(1, 101):
        created = (DAY1 if i <= 50 else DAY2) + i
        status = "failed" if i % 10 == 0 else "completed"
        conn.execute(
            "INSERT INTO runs (id, workflow, status, input, fmt, created_at, updated_at, ended_at) "
            "VALUES (?, 'triage', ?, '\"x\"', 'json1', ?, ?, ?)",
            (f"r{i:03}", status, created, created + 1, created + 1),
        )
        t = created + 0.5
        conn.execute(
            "INSERT INTO steps VALUES (?, 0, 'now', 'now', 'completed', '1.0', NULL, 1, ?, ?, NULL, 'json1')",
            (f"r{i:03}", t, t + 5),
        )
        conn.execute(
            "INSERT INTO steps VALUES (?, 1, 'classify', 'step', ?, 'null', NULL, ?, ?, ?, NULL, 'json1')",
            (f"r{i:03}", status, 3 if i % 4 == 0 else 1, t, t + i / 1000),
        )
        if i <= 80:
            cached = i % 20 == 0
            meta = {
                "alias": "intent",
                "version": "production",
                "model": "small",
                "cache_hit": cached,
                "tokens": {"input": 10, "output": 5},
                "cost": 0.0 if cached else 0.001,
                "fallback": None,
            }
        else:
            meta = {
                "alias": "intent",
                "version": "production",
                "model": "big",
                "cache_hit": False,
                "tokens": {"input": 100, "output": 50},
                "cost": 0.01,
                "fallback": "big",
            }
        conn.execute(
            "INSERT INTO steps VALUES "
            "(?, 2, 'intent', 'model', 'completed', '{}', NULL, 1, ?, ?, ?, 'json1')",
            (f"r{i:03}", t, t + 0.2, json.dumps(meta)),
        )
    for i in range(10):
        conn.execute(
            "INSERT INTO runs (id, workflow, status, fmt, created_at, updated_at) "
            "VALUES (?, 'other', 'waiting', 'json1', ?, ?)",
            (f"o{i}", DAY2, DAY2),
        )
        conn.execute(
            "INSERT INTO steps VALUES "
            "(?, 0, 'fetch', 'step', 'completed', 'null', NULL, 1, ?, ?, NULL, 'json1')",
            (f"o{i}", DAY2, DAY2 + 1),
        )
    conn.commit()
    conn.close()


@pytest.fixture(params=["rows", "rollups"])
def known(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The known journal, its ended runs read from their rows (the write lock is held by
    another connection, so readers cannot catch up) or from the rollups (caught up first)."""
    path = tmp_path / "known.db"
    _known_journal(path)
    if request.param == "rollups":
        with closing(sqlite3.connect(path, isolation_level=None)) as conn:
            assert rollups.catch_up(conn) == 100
        yield path
    else:
        with write_locked(path, monkeypatch):
            yield path
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("SELECT COUNT(*) FROM runs WHERE rolled_up = 1").fetchone() == (0,)


def test_step_percentiles_failures_retries_exact(known: Path) -> None:
    stats = compute(known)
    by_name = {s.name: s for s in stats.step_stats}
    assert set(by_name) == {"classify", "intent", "fetch"}  # the `now` row is bookkeeping
    classify = by_name["classify"]
    assert classify.calls == 100
    # nearest rank over 1..100 ms
    assert classify.p50 == pytest.approx(0.050, abs=1e-6)
    assert classify.p95 == pytest.approx(0.095, abs=1e-6)
    assert classify.p99 == pytest.approx(0.099, abs=1e-6)
    assert classify.max == pytest.approx(0.100, abs=1e-6)
    assert classify.mean == pytest.approx(0.0505, abs=1e-6)
    assert classify.failures == 10
    assert classify.failure_rate == pytest.approx(0.10)
    assert classify.retries == 50  # 25 runs with 2 extra attempts
    assert classify.retries_per_call == pytest.approx(0.5)
    assert classify.fallback_rate == 0
    assert classify.cache_hit_rate is None  # plain steps have no cache
    intent = by_name["intent"]
    assert intent.kind == "model"
    assert intent.fallback_rate == pytest.approx(0.20)
    assert intent.cache_hit_rate == pytest.approx(4 / 100)
    # Cost per step: the model calls' cost, from the rows and from the rollups alike.
    assert intent.cost == pytest.approx(76 * 0.001 + 0.2)
    assert intent.cost_per_call == pytest.approx((0.076 + 0.2) / 100)
    assert classify.cost == 0


def test_models_tokens_cost_exact(known: Path) -> None:
    models = {m.model: m for m in compute(known).models}
    small, big = models["small"], models["big"]
    assert (small.calls, small.cache_hits, small.fallback_calls) == (80, 4, 0)
    assert (small.input_tokens, small.output_tokens) == (800, 400)
    assert small.cost == pytest.approx(76 * 0.001)
    assert (big.calls, big.fallback_calls, big.input_tokens, big.output_tokens) == (20, 20, 2000, 1000)
    assert big.cost == pytest.approx(0.2)
    assert big.alias == "intent"
    assert big.version == "production"


def test_workflows_and_growth_exact(known: Path) -> None:
    stats = compute(known)
    workflows = {w.workflow: w for w in stats.workflows}
    triage, other = workflows["triage"], workflows["other"]
    assert triage.by_status == {"completed": 90, "failed": 10}
    assert triage.completion_rate == pytest.approx(0.9)
    assert triage.mean_cost_per_run == pytest.approx((0.076 + 0.2) / 100)
    assert triage.retries_per_run == pytest.approx(0.5)
    assert other.by_status == {"waiting": 10}
    assert other.completion_rate is None  # nothing ended yet
    assert stats.runs == 110
    assert stats.steps == 310
    assert stats.retries_per_run == pytest.approx(50 / 110)
    assert [d.day for d in stats.days] == [date(2023, 11, 14), date(2023, 11, 15)]
    assert [(d.runs, d.steps) for d in stats.days] == [(50, 150), (60, 160)]
    assert sum(d.journal_bytes for d in stats.days) == sum(w.journal_bytes for w in stats.workflows)
    assert triage.bytes_per_run > 100  # three rows, JSON meta included
    assert stats.file_bytes >= stats.free_bytes >= 0


def test_workflow_and_since_filters(known: Path) -> None:
    only_other = compute(known, workflow="other")
    assert [s.name for s in only_other.step_stats] == ["fetch"]
    assert only_other.models == []
    assert only_other.runs == 10
    assert compute(known, since="1h").runs == 0  # the known journal is from 2023


def test_bad_duration_and_missing_journal(known: Path, tmp_path: Path) -> None:
    with pytest.raises(bm.InvalidInput, match=r"not a duration.*24h"):
        compute(known, since="yesterday")
    with pytest.raises(bm.InvalidInput, match="no journal at"):
        compute(tmp_path / "absent.db")
    assert not (tmp_path / "absent.db").exists()  # reading never creates a journal


async def test_stats_of_real_model_calls(db_path: Path) -> None:
    """The meta keys bm.call_model writes are the ones stats reads."""

    async def flaky(req: bm.ModelRequest) -> bm.ModelResponse:
        raise bm.ProviderUnavailable("down")

    async def steady(req: bm.ModelRequest) -> bm.ModelResponse:
        return bm.ModelResponse(output="ok", usage=bm.Usage(input_tokens=7, output_tokens=3), cost=0.5)

    primary, backup = bm.CallableModel(flaky, name="primary"), bm.CallableModel(steady, name="backup")

    @bm.workflow(name="stats_real")
    async def wf(text: str) -> str:
        response = await bm.call_model(
            primary, text, fallback=[backup], retry=bm.Retry(attempts=2, initial=0)
        )
        return str(response.output)

    async with bm.Engine(db_path, workflows=[wf], poll_interval=0.02) as engine:
        for n in range(3):
            assert await (await engine.start(wf, f"t{n}")).result() == "ok"
    stats = compute(db_path)
    [step] = stats.step_stats
    assert (step.name, step.kind, step.calls, step.fallback_rate, step.cache_hit_rate) == (
        "primary",
        "model",
        3,
        1.0,
        0.0,
    )
    assert step.retries_per_call == 2  # two attempts at primary, one at backup: 2 beyond the first
    [model] = stats.models
    assert (model.model, model.calls, model.fallback_calls) == ("backup", 3, 3)
    assert (model.input_tokens, model.output_tokens, model.cost) == (21, 9, pytest.approx(1.5))
    [workflow] = stats.workflows
    assert workflow.mean_cost_per_run == pytest.approx(0.5)
    assert workflow.completion_rate == 1.0


@plot
def test_cli_table_json_plot(known: Path, tmp_path: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "200"})
    table = runner.invoke(app, ["stats", "--db", str(known)])
    assert table.exit_code == 0, table.output
    assert "classify" in table.output
    assert "storage growth" in table.output
    as_json = runner.invoke(app, ["stats", "--db", str(known), "--workflow", "triage", "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["runs"] == 100
    assert {m["model"] for m in data["models"]} == {"small", "big"}
    png = tmp_path / "stats.png"
    plotted = runner.invoke(app, ["stats", "--db", str(known), "--plot", str(png)])
    assert plotted.exit_code == 0, plotted.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = runner.invoke(app, ["stats", "--db", str(known), "--since", "3 fortnights"])
    assert bad.exit_code == 2
    assert "not a duration" in bad.output
