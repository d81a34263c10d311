"""Declarative graphs, checked with the same test code on both backends: embedded (SQLite) and
Temporal (a real dev server). Same result, same step timeline."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
import temporal_graphs as graphs
from temporal_support import EngineFactory

import bandmaster as bm
from bandmaster.graph import AIStep, End, Graph, GraphError

pytestmark = pytest.mark.timeout(120)


def timeline(info: bm.RunInfo) -> list[tuple[int, str, str, str]]:
    return [(s.seq, s.name, s.kind, s.status) for s in info.steps]


async def until_waiting(engine: Any, run_id: str, timeout: float = 20.0) -> bm.RunInfo:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        info: bm.RunInfo = await engine.describe(run_id)
        if any(s.kind == "wait" and s.status == "waiting" for s in info.steps):
            return info
        assert loop.time() < deadline, f"run {run_id} never waited: {info}"
        await asyncio.sleep(0.05)


async def test_a_graph_with_every_kind_of_node_gives_the_same_result_and_timeline(
    make_engine: EngineFactory,
) -> None:
    triage = graphs.triage_graph().as_workflow(registry=graphs.registry())
    engine = await make_engine([triage])
    handle = await engine.start(triage, {"text": "I was charged twice"}, run_id="graph-billing")
    waiting = await until_waiting(engine, handle.id)
    assert waiting.status == "waiting"
    await engine.signal(handle.id, "approve", "refund")
    assert await handle.result(timeout=30) == "billing:19:refund"

    info = await engine.describe(handle.id)
    assert info.status == "completed"
    assert timeline(info) == [
        (1, "classifier", "model", "completed"),  # the parallel node's branches, in branch order
        (2, "measure", "step", "completed"),
        (3, "route", "route", "completed"),
        (4, "approve", "wait", "completed"),
        (5, "finish", "step", "completed"),
    ]
    model, _, route, wait, _ = info.steps
    # The guard re-asked once (prose, then JSON), and the journal shows both attempts.
    assert model.attempts == 2
    attempts = model.meta["guard"]["attempts"]
    assert [(a["attempt"], a["error"] is None) for a in attempts] == [(1, False), (2, True)]
    assert "not JSON" in attempts[0]["error"]
    assert model.meta["request"]["temperature"] == 0  # the guard's settings were sent
    assert model.output["output"] == {"label": "billing", "confidence": 0.9}
    assert route.output["route"] == "review"
    assert route.meta == {"rule": "classify.output.label == 'billing'", "route": "review"}
    assert wait.output == "refund"


async def test_a_router_default_skips_the_human_node(make_engine: EngineFactory) -> None:
    triage = graphs.triage_graph().as_workflow(registry=graphs.registry())
    engine = await make_engine([triage])
    handle = await engine.start(triage, {"text": "Where is my parcel?"})
    assert await handle.result(timeout=30) == "other:19:none"
    info = await engine.describe(handle.id)
    assert [(s.name, s.kind) for s in info.steps] == [
        ("classifier", "model"),
        ("measure", "step"),
        ("route", "route"),
        ("finish", "step"),
    ]
    assert info.steps[2].output["route"] == "finish"


async def test_a_graph_served_by_the_engines_registry(make_engine: EngineFactory) -> None:
    """Without a registry of its own, the graph's models come from the engine's (the worker's
    on Temporal)."""
    triage = graphs.triage_graph().as_workflow()
    engine = await make_engine([triage], registry=graphs.registry())
    handle = await engine.start(triage, {"text": "charged twice"})
    await until_waiting(engine, handle.id)
    await engine.signal(handle.id, "approve", "ok")
    assert await handle.result(timeout=30) == "billing:13:ok"


async def test_map_reduce_nodes(make_engine: EngineFactory) -> None:
    summary = graphs.summary_graph().as_workflow(registry=graphs.registry())
    engine = await make_engine([summary])
    document = " ".join(f"word{i}" for i in range(120))
    handle = await engine.start(summary, document)
    result = await handle.result(timeout=60)
    assert result["chunks"] > 1
    assert result["text"].startswith("summary of")
    info = await engine.describe(handle.id)
    names = [(s.name, s.kind, s.status) for s in info.steps]
    assert len(names) == result["calls"]
    assert set(names) == {("summarizer", "model", "completed")}
    assert [s.seq for s in info.steps] == list(range(1, result["calls"] + 1))


async def test_a_graph_naming_a_model_the_engine_cannot_serve_fails_naming_it(
    make_engine: EngineFactory, request: pytest.FixtureRequest
) -> None:
    graph = Graph(
        "unknown_model", [AIStep("ask", model="no-such-model", prompt="{input}", next="done"), End("done")]
    )
    wf = graph.as_workflow()
    if request.node.callspec.params["make_engine"] == "temporal":
        with pytest.raises(GraphError, match="no-such-model"):  # the worker refuses it at start
            await make_engine([wf], registry=graphs.registry())
        return
    engine = await make_engine([wf], registry=graphs.registry())
    handle = await engine.start(wf, "hi")  # the embedded engine: the run fails as it starts
    with pytest.raises(bm.RunFailed, match="no-such-model"):
        await handle.result(timeout=30)
    assert (await engine.describe(handle.id)).steps == []
