"""``bm.JsonSchema`` against the real scripted provider process: parse, validate, re-ask with
the error, fall back, and journal every attempt."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import pytest
from guarded_models import BACKUP, CLAUDE, PRIMARY
from pydantic import BaseModel
from tests.extras import needs

import bandmaster as bm
from models.helpers import ScriptedServer

json_schema = needs("guard", "jsonschema")

ONCE = bm.Retry(attempts=1)


class Risk(BaseModel):
    risk: Literal["low", "medium", "high"]
    clauses: list[str]


VALID = {"risk": "high", "clauses": ["unlimited liability"]}


@bm.workflow
async def extract(
    text: str, target: str = "extractor", fallback: list[str] | None = None, wait: bool = False
) -> dict[str, Any]:
    response = await bm.call_model(
        target, text, guard=[bm.JsonSchema(Risk, reask=2)], fallback=fallback, retry=ONCE
    )
    if wait:  # the run leaves memory here; the signal resumes it by replay
        await bm.wait_for("go")
    assert isinstance(response.output, Risk), type(response.output)  # live and replayed alike
    return {"risk": response.output.risk, "model": response.model}


@pytest.fixture
async def engine(db_path: Path, registry: bm.Registry) -> AsyncIterator[bm.Engine]:
    async with bm.Engine(
        db_path, workflows=[extract], registry=registry, poll_interval=0.02, lease=2.0
    ) as eng:
        yield eng


def model_step(info: bm.RunInfo) -> bm.StepInfo:
    [step] = [s for s in info.steps if s.kind == "model"]
    return step


def user_turns(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


async def test_garbage_then_wrong_schema_then_valid_succeeds_on_the_third_attempt(
    engine: bm.Engine, server: ScriptedServer
) -> None:
    server.script(
        PRIMARY,
        {"kind": "ok", "text": "Sure! Here it is: {risk: high"},
        "wrong_schema",
        {"kind": "ok", "json": VALID},
    )
    handle = await engine.start(extract, "Supplier accepts unlimited liability.")
    assert await handle.result(timeout=30) == {"risk": "high", "model": PRIMARY}
    assert server.count(PRIMARY) == 3

    step = model_step(await handle.describe())
    assert step.status == "completed"
    assert step.attempts == 3
    attempts = step.meta["guard"]["attempts"]
    assert [(a["model"], a["attempt"]) for a in attempts] == [("primary", 1), ("primary", 2), ("primary", 3)]
    assert attempts[0]["text"] == "Sure! Here it is: {risk: high"
    assert "asked for JSON" in attempts[0]["error"]
    assert attempts[1]["text"] == '{"unexpected": true}'
    assert "$.risk: Field required" in attempts[1]["error"]
    assert "$.clauses: Field required" in attempts[1]["error"]
    assert attempts[2]["error"] is None
    assert json.loads(attempts[2]["text"]) == VALID
    assert "request" not in attempts[0]  # the first request is the step's meta["request"]
    assert step.meta["request"]["json_schema"]["title"] == "Risk"  # the schema was sent

    # The third request carried the whole conversation: both bad answers and both errors.
    third = attempts[2]["request"]["input"]
    assert [m["role"] for m in third] == ["user", "assistant", "user", "assistant", "user"]
    last = server.last_body(PRIMARY)
    turns = user_turns(last)
    assert turns[0] == "Supplier accepts unlimited liability."
    assert "Field required" in turns[2]
    assert "Answer again with only the corrected JSON" in turns[2]
    assert last["response_format"]["type"] == "json_schema"


async def test_a_body_that_is_not_json_at_all_is_re_asked_too(
    engine: bm.Engine, server: ScriptedServer
) -> None:
    server.script(PRIMARY, "malformed", {"kind": "ok", "json": VALID})
    handle = await engine.start(extract, "x")
    assert (await handle.result(timeout=30))["risk"] == "high"
    attempts = model_step(await handle.describe()).meta["guard"]["attempts"]
    assert attempts[0]["text"] is None  # nothing readable came back
    assert "unparseable response" in attempts[0]["error"]
    # With no answer to show, the re-ask is the original turn plus the error.
    assert [m["role"] for m in attempts[1]["request"]["input"]] == ["user", "user"]


async def test_fenced_json_with_prose_around_it_passes_first_time(
    engine: bm.Engine, server: ScriptedServer
) -> None:
    fenced = "Here is the analysis you asked for:\n```json\n" + json.dumps(VALID) + "\n```\nAnything else?"
    server.script(PRIMARY, {"kind": "ok", "text": fenced})
    handle = await engine.start(extract, "x")
    assert (await handle.result(timeout=30))["risk"] == "high"
    step = model_step(await handle.describe())
    assert step.attempts == 1
    assert step.output["output"] == VALID
    assert step.output["text"] == fenced  # the raw answer is kept as it came


async def test_exhausted_re_asks_fall_back_and_the_journal_says_which_model_answered(
    engine: bm.Engine, server: ScriptedServer
) -> None:
    server.script(PRIMARY, default="wrong_schema")
    server.script(BACKUP, {"kind": "ok", "json": {"risk": "low", "clauses": []}})
    handle = await engine.start(extract, "x", "extractor", ["backup"])
    assert await handle.result(timeout=30) == {"risk": "low", "model": BACKUP}
    assert server.count(PRIMARY) == 3  # one ask and reask=2
    assert server.count(BACKUP) == 1

    step = model_step(await handle.describe())
    assert step.meta["served_by"] == "backup"
    assert step.meta["fallback"] == "backup"
    attempts = step.meta["guard"]["attempts"]
    assert [(a["model"], a["attempt"], a["error"] is None) for a in attempts] == [
        ("primary", 1, False),
        ("primary", 2, False),
        ("primary", 3, False),
        ("backup", 1, True),
    ]
    # The fallback got the original question, not the primary's failed conversation.
    assert user_turns(server.last_body(BACKUP)) == ["x"]


async def test_exhausted_re_asks_without_fallback_fail_naming_model_attempts_and_error(
    engine: bm.Engine, server: ScriptedServer
) -> None:
    server.script(PRIMARY, default={"kind": "ok", "json": {"risk": "extreme", "clauses": []}})
    handle = await engine.start(extract, "x")
    with pytest.raises(bm.RunFailed) as failed:
        await handle.result(timeout=30)
    assert failed.value.error_type == "bandmaster.errors.OutputValidationFailed"
    assert "'primary'" in failed.value.message
    assert "in 3 attempt(s)" in failed.value.message
    assert "$.risk: Input should be 'low', 'medium' or 'high'" in failed.value.message

    step = model_step(await handle.describe())
    assert step.status == "failed"
    assert step.attempts == 3
    assert len(step.meta["guard"]["attempts"]) == 3
    assert all("extreme" in a["text"] for a in step.meta["guard"]["attempts"])


async def test_output_validation_failed_outside_a_workflow_carries_its_data(
    registry: bm.Registry, server: ScriptedServer
) -> None:
    server.script(PRIMARY, default="wrong_schema")
    with pytest.raises(bm.OutputValidationFailed) as failed:
        await bm.call_model(
            "extractor", "x", registry=registry, guard=[bm.JsonSchema(Risk, reask=1)], retry=ONCE
        )
    assert failed.value.model == "primary"
    assert failed.value.attempts == 2
    assert "Field required" in failed.value.last_error
    assert failed.value.text == '{"unexpected": true}'
    assert isinstance(failed.value, bm.MalformedResponse)  # callers catching that still do


async def test_reask_zero_asks_once(registry: bm.Registry, server: ScriptedServer) -> None:
    server.script(PRIMARY, default="wrong_schema")
    with pytest.raises(bm.OutputValidationFailed, match=r"in 1 attempt\(s\)"):
        await bm.call_model("extractor", "x", registry=registry, guard=[bm.JsonSchema(Risk, reask=0)])
    assert server.count(PRIMARY) == 1


async def test_replay_returns_the_journaled_answer_as_the_model_without_asking_again(
    engine: bm.Engine, server: ScriptedServer
) -> None:
    server.script(PRIMARY, "wrong_schema", {"kind": "ok", "json": VALID})
    handle = await engine.start(extract, "x", "extractor", None, True)
    deadline = asyncio.get_running_loop().time() + 15
    while (await handle.describe()).status != "waiting":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    await engine.signal(handle.id, "go", None)
    # The workflow asserts the replayed output is a Risk again, not a dict.
    assert await handle.result(timeout=30) == {"risk": "high", "model": PRIMARY}
    assert server.count(PRIMARY) == 2


@json_schema
async def test_json_schema_dict_is_validated_with_jsonschema(
    registry: bm.Registry, server: ScriptedServer
) -> None:
    schema = {
        "type": "object",
        "required": ["risk"],
        "properties": {"risk": {"enum": ["low", "high"]}, "score": {"type": "number", "maximum": 1}},
    }
    server.script(
        PRIMARY, {"kind": "ok", "json": {"risk": "low", "score": 7}}, {"kind": "ok", "json": {"risk": "low"}}
    )
    response = await bm.call_model("extractor", "x", registry=registry, guard=[bm.JsonSchema(schema)])
    assert response.output == {"risk": "low"}
    second = server.last_body(PRIMARY)
    assert "$.score: 7 is greater than the maximum of 1" in user_turns(second)[-1]
    assert second["response_format"]["json_schema"]["schema"] == schema


async def test_anthropic_re_ask_sends_the_conversation_and_the_schema_instruction(
    registry: bm.Registry, server: ScriptedServer
) -> None:
    server.script(CLAUDE, {"kind": "ok", "text": "I think the risk is high."}, {"kind": "ok", "json": VALID})
    response = await bm.call_model(
        "claude", "Assess this.", registry=registry, system="You are a lawyer.", guard=[bm.JsonSchema(Risk)]
    )
    assert response.output == Risk(**VALID)
    body = server.last_body(CLAUDE)
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == "I think the risk is high."
    assert body["system"].startswith("You are a lawyer.\nAnswer with JSON only, matching this JSON Schema")


async def test_a_provider_failure_between_re_asks_is_journaled_and_falls_back(
    engine: bm.Engine, server: ScriptedServer
) -> None:
    server.script(PRIMARY, "wrong_schema", "500")
    server.script(BACKUP, {"kind": "ok", "json": VALID})
    handle = await engine.start(extract, "x", "extractor", ["backup"])
    assert (await handle.result(timeout=30))["model"] == BACKUP
    attempts = model_step(await handle.describe()).meta["guard"]["attempts"]
    assert [a["model"] for a in attempts] == ["primary", "primary", "backup"]
    assert attempts[1]["text"] is None
    assert attempts[1]["error"].startswith("ProviderUnavailable: ")
