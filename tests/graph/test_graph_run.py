"""Graphs running on the embedded engine: routing, fallbacks, human nodes, replay."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

import bandmaster as bm
from bandmaster.cli._loader import import_module
from bandmaster.graph import AIStep, End, Graph, GraphError, Human, Parallel, Router, Step

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "graphs"
CALLS: Counter[str] = Counter()


@pytest.fixture(scope="module")
def pipelines() -> ModuleType:
    """The example workflows, imported the way ``bandmaster run`` imports them."""
    pytest.importorskip("jsonschema", reason="needs bandmaster[guard] (the contract graph's JSON Schema)")
    return import_module(str(EXAMPLES / "pipelines.py"))


@pytest.fixture
async def engine(db_path: Path) -> AsyncIterator[bm.Engine]:
    CALLS.clear()
    async with bm.Engine(db_path, poll_interval=0.02, lease=2.0) as eng:
        yield eng


async def status(engine: bm.Engine, run_id: str, wanted: str, timeout: float = 15.0) -> bm.RunInfo:
    deadline = time.monotonic() + timeout
    while (info := await engine.describe(run_id)).status != wanted:
        assert time.monotonic() < deadline, f"run {run_id} is {info.status}, expected {wanted}"
        await asyncio.sleep(0.01)
    return info


def journal(info: bm.RunInfo) -> list[tuple[str, str, str]]:
    return [(s.name, s.kind, s.status) for s in info.steps]


# --- the example support pipeline ---------------------------------------------------------


async def test_support_pipeline_auto_replies_to_a_confident_ticket(
    engine: bm.Engine, pipelines: ModuleType
) -> None:
    ticket = {"id": "T-1", "text": "I was charged twice for my invoice, please refund the payment"}
    handle = await engine.start(pipelines.support_pipeline, ticket)
    result = await handle.result(timeout=15)
    assert result["intent"]["output"] == "billing"
    assert result["intent"]["confidence"] > 0.85
    assert result["reply"]["model"] == "reply-large"
    info = await handle.describe()
    assert [(s.seq, s.name, s.kind) for s in info.steps] == [
        (1, "intent-classifier", "model"),  # the parallel branches, in branch order
        (2, "phi-scanner", "model"),
        (3, "redact", "step"),
        (4, "route", "route"),
        (5, "reply-writer", "model"),
    ]
    decision = info.steps[3]
    assert decision.meta == {"rule": "confident", "route": "auto_reply"}
    assert decision.output["values"]["intent"]["output"] == "billing"  # what the rule read


async def test_support_pipeline_falls_back_to_the_cheaper_model(
    engine: bm.Engine, pipelines: ModuleType
) -> None:
    ticket = {"id": "T-4", "text": "Is there an outage? The app will not load and the website shows an error"}
    handle = await engine.start(pipelines.support_pipeline, ticket)
    result = await handle.result(timeout=15)
    assert result["reply"]["model"] == "reply-mini"
    reply = (await handle.describe()).steps[-1]
    assert (reply.name, reply.status) == ("reply-writer", "completed")
    assert reply.meta["fallback"] == "reply-mini"
    assert reply.attempts == 3  # two attempts of the large model, then the small one


async def test_support_pipeline_escalates_phi_to_a_person_and_waits_for_the_signal(
    engine: bm.Engine, pipelines: ModuleType
) -> None:
    ticket = {"id": "T-3", "text": "My MRN: 12345678 is wrong on the bill, DOB 04/12/1961"}
    handle = await engine.start(pipelines.support_pipeline, ticket)
    info = await status(engine, handle.id, "waiting")
    assert journal(info)[-3:] == [
        ("route", "route", "completed"),
        ("agent-brief", "model", "completed"),
        ("review", "wait", "waiting"),
    ]
    assert info.steps[3].meta["rule"] == "phi"
    assert "MRN" not in info.steps[-2].meta["request"]["input"]  # redacted before the model saw it
    await handle.signal("review", {"action": "answered", "agent": "ann"})
    result = await handle.result(timeout=15)
    assert result["review"] == {"action": "answered", "agent": "ann"}
    assert result["phi"]["output"] is True
    assert result["errors"] == {}


# --- the example contract pipeline (with a map-reduce node) -------------------------------


async def test_contract_pipeline_runs_map_reduce_and_waits_for_legal_review(
    engine: bm.Engine, pipelines: ModuleType
) -> None:
    data = json.loads((EXAMPLES / "contract.json").read_text())
    handle = await engine.start(pipelines.contract_pipeline, data)
    info = await status(engine, handle.id, "waiting")
    names = [s.name for s in info.steps]
    assert names[:2] == ["clause-extractor", "risk-classifier"]
    assert names.count("summarizer") >= 3  # several chunks mapped, then reduced
    assert names[-3:] == ["compliance-checker", "gate", "legal_review"]
    assert info.steps[-2].meta["route"] == "legal_review"  # high risk: a lawyer looks first
    await handle.signal("legal_review", {"approved": True, "note": "fine"})
    report = await handle.result(timeout=15)
    assert report["contract"] == "C-2024-017"
    assert report["risk"] == "high"
    assert report["compliant"] is False
    assert report["legal_review"] == {"approved": True, "note": "fine"}
    assert report["summary"]


# --- Python graphs: fallback edges, human timeouts, replay --------------------------------


def counted(name: str, answer: Any = "ok", confidence: float | None = None) -> bm.CallableModel:
    def model(prompt: str) -> bm.ModelResponse:
        CALLS[name] += 1
        return bm.ModelResponse(output=answer, text=str(answer), confidence=confidence)

    return bm.CallableModel(model, name=name)


def models(**extra: bm.Model) -> bm.Registry:
    return bm.Registry(
        models={"first": counted("first", "draft", 0.5), "second": counted("second", "final"), **extra}
    )


def fragile(text: str) -> str:
    CALLS["fragile"] += 1
    if "boom" in text:
        raise ValueError(f"cannot handle {text!r}")
    return text.upper()


async def test_a_fallback_edge_is_taken_when_a_node_fails(engine: bm.Engine) -> None:
    graph = Graph(
        "fallback_edge",
        [
            Step("shout", call="fragile", inputs={"text": "input"}, next="done", on_error="rescue"),
            AIStep("rescue", model="second", prompt="Rescue {input}", next="done"),
            End("done"),
        ],
        steps={"fragile": fragile},
    )
    wf = graph.as_workflow(registry=models())
    assert (await (await engine.start(wf, "fine")).result(timeout=15))["shout"] == "FINE"
    handle = await engine.start(wf, "boom")
    result = await handle.result(timeout=15)
    assert result["errors"] == {"shout": {"type": "ValueError", "message": "cannot handle 'boom'"}}
    assert result["rescue"]["output"] == "final"
    assert "shout" not in result
    assert journal(await handle.describe()) == [("shout", "step", "failed"), ("second", "model", "completed")]


async def test_a_failing_node_without_a_fallback_edge_fails_the_run(engine: bm.Engine) -> None:
    graph = Graph(
        "no_edge", [Step("shout", call="fragile", inputs={"text": "input"})], steps={"fragile": fragile}
    )
    handle = await engine.start(graph.as_workflow(), "boom")
    with pytest.raises(bm.RunFailed) as caught:
        await handle.result(timeout=15)
    assert caught.value.error_type == "builtins.ValueError"


async def test_a_failing_parallel_branch_takes_the_parallel_nodes_fallback_edge(engine: bm.Engine) -> None:
    graph = Graph(
        "parallel_failure",
        [
            Parallel("both", branches=["ask", "shout"], next="done", on_error="done"),
            AIStep("ask", model="first", prompt="{input}"),
            Step("shout", call="fragile", inputs={"text": "input"}),
            End("done"),
        ],
        steps={"fragile": fragile},
    )
    handle = await engine.start(graph.as_workflow(registry=models()), "boom")
    result = await handle.result(timeout=15)
    assert result["errors"]["both"]["type"] == "ValueError"
    assert "ask" not in result  # a failed parallel node writes nothing
    assert journal(await handle.describe()) == [("first", "model", "completed"), ("shout", "step", "failed")]


def approval_graph(timeout: float | None) -> Graph:
    return Graph(
        "approval",
        [
            AIStep("draft", model="first", prompt="Draft for {input}", next="approve"),
            Human("approve", timeout=timeout, default={"approved": False, "by": "timeout"}, next="decide"),
            Router("decide", routes=[("approve.approved", "publish")], default="done"),
            AIStep("publish", model="second", prompt="Publish {draft.output}", next="done"),
            End("done", output=["approve"]),
        ],
    )


async def test_a_human_node_is_resolved_by_a_signal_and_replays_nothing(engine: bm.Engine) -> None:
    wf = approval_graph(timeout=None).as_workflow(registry=models())
    handle = await engine.start(wf, "post")
    info = await status(engine, handle.id, "waiting")
    assert journal(info)[-1] == ("approve", "wait", "waiting")
    await engine.signal(handle.id, "approve", {"approved": True, "by": "ann"})
    assert await handle.result(timeout=15) == {"approve": {"approved": True, "by": "ann"}}
    # The run left memory while waiting and was replayed: the draft came from the journal.
    assert CALLS == {"first": 1, "second": 1}
    assert [s.name for s in (await handle.describe()).steps] == ["first", "approve", "decide", "second"]


async def test_a_human_node_takes_its_default_when_nobody_answers(engine: bm.Engine) -> None:
    handle = await engine.start(approval_graph(timeout=0.2).as_workflow(registry=models()), "post")
    assert await handle.result(timeout=15) == {"approve": {"approved": False, "by": "timeout"}}
    steps = (await handle.describe()).steps
    assert steps[1].meta["timed_out"] is True
    assert steps[2].meta == {"rule": None, "route": "done"}
    assert CALLS == {"first": 1}


class Ticket(BaseModel):
    text: str
    customer: str


async def test_typed_input_conditions_loops_and_sticky_keys(engine: bm.Engine) -> None:
    answers = iter(["no", "no", "yes"])
    registry = models(judge=bm.CallableModel(lambda prompt: next(answers), name="judge"))
    graph = Graph.from_yaml(
        """
name: retry_loop
input: ticket
nodes:
  judge:
    kind: ai
    model: judge
    prompt: "Is {ticket.text!r} ok? (customer {ticket.customer})"
    key_by: "{ticket.customer}"
    next: again
  again:
    kind: router
    routes: [{when: "judge.output != 'yes'", to: judge}]
    default: done
  done: {kind: end, output: judge}
"""
    )
    wf = graph.as_workflow(registry=registry, input_type=Ticket)
    handle = await engine.start(wf, Ticket(text="hi", customer="c-7"))
    assert (await handle.result(timeout=15))["output"] == "yes"
    steps = (await handle.describe()).steps
    assert [s.name for s in steps] == ["judge", "again"] * 3
    assert steps[0].meta["request"]["input"] == "Is 'hi' ok? (customer c-7)"


async def test_an_endless_loop_is_stopped_by_max_steps(engine: bm.Engine) -> None:
    graph = Graph(
        "endless",
        [
            AIStep("ask", model="first", prompt="{input}", next="loop"),
            Router("loop", routes=[("ask.output == 'draft'", "ask")], default="done"),
            End("done"),
        ],
        max_steps=7,
    )
    handle = await engine.start(graph.as_workflow(registry=models()), "x")
    with pytest.raises(bm.RunFailed) as caught:
        await handle.result(timeout=15)
    assert "executed 7 nodes (max_steps) without reaching an end" in caught.value.message


async def test_models_are_checked_against_the_engines_registry_when_a_run_starts(db_path: Path) -> None:
    graph = Graph.from_yaml("name: g\nnodes:\n  a: {kind: ai, model: missing, prompt: hi}\n", source="g.yaml")
    wf = graph.as_workflow()  # no registry yet: the engine's serves the run
    async with bm.Engine(db_path, registry=models(), poll_interval=0.02) as engine:
        handle = await engine.start(wf, "x")
        with pytest.raises(bm.RunFailed) as caught:
            await handle.result(timeout=15)
    assert isinstance(caught.value.__cause__, GraphError)
    assert caught.value.message.startswith("g.yaml:3: node 'a': unknown model or alias 'missing'")


async def test_a_graph_workflow_is_a_workflow(pipelines: ModuleType) -> None:
    wf = pipelines.support_pipeline
    assert isinstance(wf, bm.Workflow)
    assert wf.name == "support_pipeline"
    assert wf.graph.name == "support_pipeline"
    assert list(wf.signature.parameters) == ["input"]


async def test_calling_a_graph_workflow_directly_runs_it_without_a_journal() -> None:
    CALLS.clear()
    graph = Graph(
        "direct",
        [
            Parallel("both", branches=["ask", "shout"], next="done"),
            AIStep("ask", model="first", prompt="{input}"),
            Step("shout", call="fragile", inputs={"text": "input"}),
            End("done", output=["ask", "shout"]),
        ],
        steps={"fragile": fragile},
    )
    result = await graph.as_workflow(registry=models())("hello")
    assert result["shout"] == "HELLO"
    assert result["ask"]["output"] == "draft"
    assert CALLS == {"first": 1, "fragile": 1}
