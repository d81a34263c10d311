"""Guard settings reach the providers: the scripted server records each model's last request
body, so these assert what was really sent over HTTP."""

from __future__ import annotations

import json

import pytest
from guarded_models import CLAUDE, PRIMARY

import bandmaster as bm
from models.helpers import ScriptedServer

LEGAL = [
    bm.ModelSettings(temperature=0.0, max_tokens=300, response_format="json"),
    bm.BannedTopics(["insider trading"]),
    bm.MaxTokens(4000),
]


async def test_openai_compatible_provider_receives_the_settings(
    registry: bm.Registry, server: ScriptedServer
) -> None:
    server.script(PRIMARY, {"kind": "ok", "json": {"risk": "low"}})
    response = await bm.call_model(
        "extractor", "Review this clause.", registry=registry, temperature=0.9, guard=LEGAL
    )
    body = server.last_body(PRIMARY)
    assert body["temperature"] == 0.0  # the guard's setting wins over the call's
    assert body["max_tokens"] == 300
    assert body["response_format"] == {"type": "json_object"}
    assert response.output == {"risk": "low"}  # JSON mode: the provider parsed the answer


async def test_anthropic_provider_receives_the_settings(
    registry: bm.Registry, server: ScriptedServer
) -> None:
    server.script(CLAUDE, {"kind": "ok", "json": {"risk": "low"}})
    response = await bm.call_model(
        "claude", "Review this clause.", registry=registry, system="Be terse.", guard=LEGAL
    )
    body = server.last_body(CLAUDE)
    assert body["temperature"] == 0.0
    assert body["max_tokens"] == 300
    assert body["system"] == "Be terse.\nAnswer with JSON only."  # no JSON mode: asked in words
    assert response.output == {"risk": "low"}


async def test_text_response_format_sends_text_and_parses_nothing(
    registry: bm.Registry, server: ScriptedServer
) -> None:
    server.script(PRIMARY, {"kind": "ok", "text": '{"looks": "like json"}'})
    response = await bm.call_model(
        "extractor", "x", registry=registry, guard=[bm.ModelSettings(response_format="text")]
    )
    assert server.last_body(PRIMARY)["response_format"] == {"type": "text"}
    assert response.output == '{"looks": "like json"}'


async def test_without_guards_nothing_new_is_sent(registry: bm.Registry, server: ScriptedServer) -> None:
    await bm.call_model("extractor", "x", registry=registry)
    body = server.last_body(PRIMARY)
    assert "response_format" not in body
    assert "temperature" not in body


async def test_settings_are_journaled_as_sent(
    db_path: object, registry: bm.Registry, server: ScriptedServer
) -> None:
    @bm.workflow(name="settings_journal")
    async def review(text: str) -> str:
        response = await bm.call_model("extractor", text, guard=LEGAL)
        return json.dumps(response.output)

    server.script(PRIMARY, {"kind": "ok", "json": {"ok": True}})
    async with bm.Engine(db_path, workflows=[review], registry=registry, poll_interval=0.02) as engine:  # type: ignore[arg-type]
        handle = await engine.start(review, "x")
        assert await handle.result(timeout=30) == '{"ok": true}'
        [step] = (await handle.describe()).steps
    sent = step.meta["request"]
    assert (sent["temperature"], sent["max_tokens"], sent["response_format"]) == (0.0, 300, "json")


@pytest.mark.parametrize("provider", ["extractor", "claude"])
async def test_json_mode_answer_that_is_not_json_is_malformed(
    provider: str, registry: bm.Registry, server: ScriptedServer
) -> None:
    server.script(PRIMARY, {"kind": "ok", "text": "no"})
    server.script(CLAUDE, {"kind": "ok", "text": "no"})
    with pytest.raises(bm.MalformedResponse, match="asked for JSON") as failed:
        await bm.call_model(
            provider,
            "x",
            registry=registry,
            retry=bm.Retry(attempts=1),
            guard=[bm.ModelSettings(response_format="json")],
        )
    assert failed.value.text == "no"
