"""The ``guard:`` key of a graph's ``ai`` node: validated with file, line and node like every
other field, and run through the same guards as ``bm.call_model(guard=...)``."""

from __future__ import annotations

from pathlib import Path

import pytest
from guarded_models import BACKUP, PRIMARY
from tests.extras import needs

import bandmaster as bm
from bandmaster.graph import AIStep, End, Graph, GraphError
from models.helpers import ScriptedServer

json_schema = needs("guard", "jsonschema")

LEGAL_GRAPH = """\
name: clause_review
input: contract
nodes:
  classify_risk:
    kind: ai
    model: extractor
    prompt: "Classify the risk of this clause: {contract.text}"
    fallback: [backup]
    guard:
      temperature: 0
      response_format: json
      banned_topics: [insider trading]
      max_input_tokens: 2000
      max_output_tokens: 200
      output_schema:
        type: object
        required: [risk]
        properties: {risk: {enum: [low, medium, high]}}
      reask: 1
      required_fields: [risk]
    next: done
  done: {kind: end, output: classify_risk}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clause_review.yaml"
    path.write_text(text)
    return path


async def test_a_guarded_ai_node_re_asks_and_sends_its_settings(
    tmp_path: Path, db_path: Path, registry: bm.Registry, server: ScriptedServer
) -> None:
    workflow = Graph.load(write(tmp_path, LEGAL_GRAPH)).as_workflow(registry=registry)
    server.script(
        PRIMARY, {"kind": "ok", "json": {"risk": "catastrophic"}}, {"kind": "ok", "json": {"risk": "high"}}
    )
    async with bm.Engine(db_path, workflows=[workflow], registry=registry, poll_interval=0.02) as engine:
        handle = await engine.start(workflow, {"text": "The supplier's liability is unlimited."})
        result = await handle.result(timeout=30)
        [step] = (await handle.describe()).steps
    assert result["output"] == {"risk": "high"}
    assert result["model"] == PRIMARY
    body = server.last_body(PRIMARY)
    assert (body["temperature"], body["max_tokens"]) == (0, 200)
    assert body["response_format"]["type"] == "json_schema"  # the schema travels with JSON mode
    assert [a["attempt"] for a in step.meta["guard"]["attempts"]] == [1, 2]
    assert "'catastrophic' is not one of" in step.meta["guard"]["attempts"][0]["error"]
    assert server.count(BACKUP) == 0


async def test_a_banned_topic_in_a_graph_input_fails_the_node_without_a_call(
    tmp_path: Path, db_path: Path, registry: bm.Registry, server: ScriptedServer
) -> None:
    workflow = Graph.load(write(tmp_path, LEGAL_GRAPH)).as_workflow(registry=registry)
    async with bm.Engine(db_path, workflows=[workflow], registry=registry, poll_interval=0.02) as engine:
        handle = await engine.start(workflow, {"text": "Profits from insider trading are shared."})
        with pytest.raises(bm.RunFailed, match="banned_topics"):
            await handle.result(timeout=30)
    assert server.count(PRIMARY) == server.count(BACKUP) == 0


def problem_for(tmp_path: Path, replace: str, by: str) -> str:
    text = LEGAL_GRAPH.replace(replace, by)
    assert text != LEGAL_GRAPH
    with pytest.raises(GraphError) as failed:
        Graph.load(write(tmp_path, text)).validate()
    return str(failed.value)


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        ("temperature: 0", "temperature: 5", ":10: node 'classify_risk': guard.temperature: "),
        ("reask: 1", "reask: many", ":19: node 'classify_risk': guard.reask: "),
        ("response_format: json", "response_format: xml", ":11: node 'classify_risk': guard.response_format"),
        (
            "required_fields: [risk]",
            "required_feilds: [risk]",
            ":20: node 'classify_risk': unknown field 'guard.required_feilds'",
        ),
        ("type: object", "type: objekt", ":15: node 'classify_risk': guard.output_schema: "),
        (
            "banned_topics: [insider trading]",
            "banned_topics: []",
            ":12: node 'classify_risk': guard.banned_topics",
        ),
    ],
)
def test_bad_guard_settings_name_file_line_and_node(
    tmp_path: Path, replace: str, by: str, expected: str
) -> None:
    message = problem_for(tmp_path, replace, by)
    assert f"clause_review.yaml{expected}" in message, message


def test_fallback_routing_needs_fallback_models(tmp_path: Path, registry: bm.Registry) -> None:
    routed = LEGAL_GRAPH.replace("      temperature: 0\n", "      on_violation: fallback\n")
    Graph.load(write(tmp_path, routed)).validate(registry=registry)  # with fallback: [backup]
    text = routed.replace("    fallback: [backup]\n", "")
    with pytest.raises(GraphError, match=r":4: node 'classify_risk': .*no fallback models"):
        Graph.load(write(tmp_path, text))


def test_a_python_graph_takes_guard_objects(registry: bm.Registry) -> None:
    node = AIStep("classify", model="extractor", prompt="{doc}", guard=[bm.MaxTokens(100)], next="end")
    assert [g.name for g in node.guards()] == ["max_tokens"]
    with pytest.raises(ValueError, match=r"a list of bm\.Guard objects"):
        AIStep("classify", model="extractor", prompt="{doc}", guard=["max_tokens"])
    Graph("py_guarded", [node, End("end")], input="doc").validate(registry=registry)


def legal_flagger(text: str) -> tuple[str, float]:
    return ("legal_advice", 0.9) if "sue" in text.lower() else ("ok", 0.0)


async def test_a_named_classifier_guards_a_graph_node(
    tmp_path: Path, db_path: Path, registry: bm.Registry, server: ScriptedServer
) -> None:
    text = LEGAL_GRAPH.replace(
        "      banned_topics: [insider trading]\n",
        "      banned_topics: [insider trading]\n"
        "      classifier: flagger\n"
        "      classifier_threshold: 0.8\n",
    )
    graph = Graph.load(write(tmp_path, text), steps={"flagger": legal_flagger})
    workflow = graph.as_workflow(registry=registry)
    async with bm.Engine(db_path, workflows=[workflow], registry=registry, poll_interval=0.02) as engine:
        handle = await engine.start(workflow, {"text": "Can we sue the supplier?"})
        with pytest.raises(bm.RunFailed, match=r"flagged it as 'legal_advice' \(score 0.90 >= 0.8\)"):
            await handle.result(timeout=30)
    assert server.count(PRIMARY) == 0


@json_schema
def test_an_unknown_classifier_names_file_line_and_node(tmp_path: Path) -> None:
    text = LEGAL_GRAPH.replace(
        "      banned_topics: [insider trading]\n",
        "      banned_topics: [insider trading]\n      classifier: nowhere:flag\n",
    )
    with pytest.raises(GraphError) as failed:
        Graph.load(write(tmp_path, text)).validate()
    assert ":13: node 'classify_risk': unknown guard classifier:" in str(failed.value)
