"""``stats`` on both backends: the same workflow runs give the same step names, call counts,
failures, retries and per-model figures, from the embedded journal and from Temporal's
histories (``TemporalEngine.stats``)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
import temporal_workflows as wfs
from temporal_support import EngineFactory, TemporalServer

import bandmaster as bm
from bandmaster.observe.stats import Stats, compute

pytestmark = pytest.mark.timeout(120)


async def _stats(engine: Any, tmp_path: Path, **options: Any) -> Stats:
    if isinstance(engine, bm.TemporalEngine):
        return await engine.stats(**options)
    return compute(tmp_path / "journal.db", exact=True, **options)


def _summary(stats: Stats) -> dict[str, Any]:
    return {
        "runs": stats.runs,
        "steps": sorted(
            (s.name, s.kind, s.calls, s.failures, s.retries, s.fallback_rate) for s in stats.step_stats
        ),
        "models": sorted(
            (m.model, m.alias or "", m.version or "", m.calls, m.failures) for m in stats.models
        ),
        "workflows": sorted(
            (w.workflow, w.runs, tuple(sorted(w.by_status.items()))) for w in stats.workflows
        ),
        "days": [d.runs for d in stats.days],
    }


async def test_stats_of_the_same_runs_agree(make_engine: EngineFactory, tmp_path: Path) -> None:
    log = str(tmp_path / "effects.log")
    engine = await make_engine([wfs.ordered, wfs.retrying, wfs.ask, wfs.failing], registry=wfs.registry())
    assert await (await engine.start(wfs.ordered, log)).result(timeout=30) == ["a", "b", "c"]
    assert await (await engine.start(wfs.retrying, log, "retryable", 1)).result(timeout=30) == "ok after 2"
    for text in ("hello", "again"):
        await (await engine.start(wfs.ask, text)).result(timeout=30)
    with pytest.raises(bm.RunFailed):
        await (await engine.start(wfs.failing)).result(timeout=30)

    stats = await _stats(engine, tmp_path)
    assert _summary(stats) == {
        "runs": 5,
        "steps": [
            (
                "answer",
                "model",
                2,
                0,
                4,
                1.0,
            ),  # primary down (2 attempts), then the fallback: 2 retries a call
            ("fails", "step", 1, 1, 0, 0.0),
            ("flaky", "step", 1, 0, 1, 0.0),
            ("record", "step", 3, 0, 0, 0.0),
            ("shout", "model", 2, 0, 0, 0.0),
        ],
        "models": [("shout", "", "", 2, 0), ("shout", "answer", "production", 2, 0)],
        "workflows": [
            ("ask", 2, (("completed", 2),)),
            ("failing", 1, (("failed", 1),)),
            ("ordered", 1, (("completed", 1),)),
            ("retrying", 1, (("completed", 1),)),
        ],
        "days": [5],
    }
    record = next(s for s in stats.step_stats if s.name == "record")
    assert record.p50 is not None
    assert record.max is not None
    assert record.p50 <= record.max
    assert stats.workflows[0].journal_bytes > 0  # the journal's rows, or the run's history

    ask_only = await _stats(engine, tmp_path, workflow="ask", since="1h")
    assert (ask_only.runs, ask_only.workflow) == (2, "ask")
    assert {s.name for s in ask_only.step_stats} == {"answer", "shout"}


async def test_temporal_stats_read_at_most_stats_scan_runs(
    temporal_server: TemporalServer, tmp_path: Path
) -> None:
    log = str(tmp_path / "effects.log")
    async with bm.TemporalEngine(
        temporal_server.target,
        task_queue=f"stats-{uuid.uuid4().hex[:8]}",
        workflows=[wfs.ordered],
        stats_scan=2,
    ) as engine:
        for _ in range(3):
            await (await engine.start(wfs.ordered, log)).result(timeout=30)
        stats = await engine.stats()
        assert (stats.runs, stats.scan_limit, stats.truncated) == (2, 2, True)
        assert (await engine.stats(workflow="ordered\x00")).runs == 0
        with pytest.raises(bm.InvalidInput, match="since 'soon' is not a duration"):
            await engine.stats(since="soon")
