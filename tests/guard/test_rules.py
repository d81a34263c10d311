"""Rules on input and output against the scripted provider process: banned topics, token
budgets, required fields; violations with their spans, journaled; routing to a fallback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from guarded_models import BACKUP, PRIMARY
from tests.extras import needs

import bandmaster as bm
from bandmaster.graph._chunking import ApproxTokenizer, default_tokenizer
from models.helpers import ScriptedServer

json_schema = needs("guard", "jsonschema")

BANNED = ["insider trading", "tax evasion"]


@bm.workflow
async def answer(text: str, on_violation: str = "raise") -> str:
    response = await bm.call_model(
        "extractor",
        text,
        guard=[bm.BannedTopics(BANNED, on_violation=on_violation)],  # type: ignore[arg-type]
        fallback=["backup"] if on_violation == "fallback" else None,
        retry=bm.Retry(attempts=1),
    )
    return str(response.output)


@pytest.fixture
async def engine(db_path: Path, registry: bm.Registry) -> AsyncIterator[bm.Engine]:
    async with bm.Engine(
        db_path, workflows=[answer], registry=registry, poll_interval=0.02, lease=2.0
    ) as eng:
        yield eng


def model_step(info: bm.RunInfo) -> bm.StepInfo:
    [step] = [s for s in info.steps if s.kind == "model"]
    return step


# --- banned topics ------------------------------------------------------------------------


async def test_banned_topic_in_the_input_fails_before_any_model_call(
    engine: bm.Engine, server: ScriptedServer
) -> None:
    text = "Draft an email. Also, is INSIDER\ntrading legal if nobody notices?"
    handle = await engine.start(answer, text)
    with pytest.raises(bm.RunFailed) as failed:
        await handle.result(timeout=30)
    assert failed.value.error_type == "bandmaster.errors.GuardViolation"
    assert server.count(PRIMARY) == 0  # refused before anything was sent

    step = model_step(await handle.describe())
    assert step.status == "failed"
    [violation] = step.meta["guard"]["violations"]
    assert violation == {
        "rule": "banned_topics",
        "direction": "input",
        "action": "raise",
        "detail": "mentions the banned topic 'INSIDER\\ntrading'",
        "span": {"start": 25, "end": 40, "text": "INSIDER\ntrading"},
    }
    assert text[25:40] == "INSIDER\ntrading"
    assert step.meta["guard"]["attempts"] == []
    assert step.meta["request"]["input"] == text  # the refused request is journaled


async def test_the_violation_carries_rule_direction_and_span(
    registry: bm.Registry, server: ScriptedServer
) -> None:
    with pytest.raises(bm.GuardViolation) as hit:
        await bm.call_model(
            "extractor", "How to do tax evasion?", registry=registry, guard=[bm.BannedTopics(BANNED)]
        )
    assert (hit.value.rule, hit.value.direction) == ("banned_topics", "input")
    assert hit.value.span == bm.guard.Span(10, 21, "tax evasion")
    assert "at 10..21 ('tax evasion')" in str(hit.value)
    assert server.count(PRIMARY) == 0


async def test_banned_topic_in_the_output_names_the_model_and_the_span(
    registry: bm.Registry, server: ScriptedServer
) -> None:
    answer_text = "Sure. Step one of Tax Evasion: hide income."
    server.script(PRIMARY, {"kind": "ok", "text": answer_text})
    with pytest.raises(bm.GuardViolation) as hit:
        await bm.call_model(
            "extractor", "help with my taxes", registry=registry, guard=[bm.BannedTopics(BANNED)]
        )
    assert hit.value.direction == "output"
    assert hit.value.model == "primary"
    start, end, found = hit.value.span or (0, 0, "")
    assert answer_text[start:end] == found == "Tax Evasion"
    assert server.count(PRIMARY) == 1


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("insider trading", True),
        ("Insider Trading.", True),
        ("(insider   trading)", True),
        ("outsider trading", False),  # whole words only
        ("insider tradings", False),
        ("syntax evasion", False),
        ("a note on tax-evasion", False),  # a hyphen is not the phrase's space
    ],
)
async def test_phrases_match_whole_words_case_insensitively(text: str, hit: bool) -> None:
    guard = bm.BannedTopics(BANNED, direction="input")
    request = bm.ModelRequest(input=text)
    if hit:
        with pytest.raises(bm.GuardViolation):
            await guard.check_input(request)
    else:
        assert await guard.check_input(request) is request


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("an insider trading scheme", "insider trading scheme"),  # the longer phrase wins
        ("insider trading, no scheme", "insider trading"),
        ("the Cartels met", "Cartels"),
        ("one cartel", "cartel"),
        ("İstanbul office: INSIDER TRADING", "INSIDER TRADING"),  # lower() changes the length here
    ],
)
async def test_phrases_sharing_prefixes_report_the_longest_match(text: str, found: str) -> None:
    guard = bm.BannedTopics(["insider trading", "insider trading scheme", "cartel", "cartels", "tax"])
    with pytest.raises(bm.GuardViolation) as hit:
        await guard.check_input(bm.ModelRequest(input=text))
    start, end, span = hit.value.span or (0, 0, "")
    assert span == found
    assert text[start:end] == found


async def test_a_very_long_phrase_compiles() -> None:
    phrase = " ".join(["clause"] * 600)  # thousands of characters: no recursion limit
    guard = bm.BannedTopics([phrase, "clause zero"])
    with pytest.raises(bm.GuardViolation):
        await guard.check_input(bm.ModelRequest(input=f"see {phrase}."))
    await guard.check_input(bm.ModelRequest(input="clause one"))


async def test_an_input_violation_routed_to_the_fallback_skips_the_primary(
    engine: bm.Engine, server: ScriptedServer
) -> None:
    server.script(
        BACKUP, {"kind": "ok", "text": "I can't help with that, but here is our compliance policy."}
    )
    handle = await engine.start(answer, "explain insider trading", "fallback")
    assert await handle.result(timeout=30) == "I can't help with that, but here is our compliance policy."
    assert server.count(PRIMARY) == 0
    assert server.count(BACKUP) == 1
    step = model_step(await handle.describe())
    assert step.meta["served_by"] == "backup"
    assert step.meta["fallback"] == "backup"
    assert step.meta["guard"]["violations"][0]["action"] == "fallback"


async def test_fallback_routing_without_fallback_models_fails_and_says_so(registry: bm.Registry) -> None:
    guard = bm.BannedTopics(BANNED, on_violation="fallback")
    with pytest.raises(bm.GuardViolation) as hit:
        await bm.call_model("extractor", "insider trading tips", registry=registry, guard=[guard])
    assert "no fallback models" in "".join(hit.value.__notes__)


async def test_an_output_violation_routed_to_the_fallback_asks_the_next_model(
    registry: bm.Registry, server: ScriptedServer
) -> None:
    server.script(PRIMARY, {"kind": "ok", "text": "Insider trading is easy: ..."})
    server.script(BACKUP, {"kind": "ok", "text": "That would be illegal."})
    response = await bm.call_model(
        "extractor",
        "how do people profit from news?",
        registry=registry,
        fallback=["backup"],
        guard=[bm.BannedTopics(BANNED, direction="output", on_violation="fallback")],
    )
    assert response.text == "That would be illegal."
    assert (server.count(PRIMARY), server.count(BACKUP)) == (1, 1)


async def test_a_classifier_flags_text_the_phrases_miss(
    registry: bm.Registry, server: ScriptedServer
) -> None:
    seen: list[str] = []

    async def toxicity(text: str) -> tuple[str, float]:
        seen.append(text)
        return ("violence", 0.93) if "hurt" in text else ("ok", 0.01)

    guard = bm.BannedTopics(classifier=toxicity, threshold=0.8, direction="input")
    response = await bm.call_model("extractor", "hello there", registry=registry, guard=[guard])
    assert response.text == "echo: hello there"
    with pytest.raises(bm.GuardViolation, match=r"flagged it as 'violence' \(score 0.93 >= 0.8\)") as hit:
        await bm.call_model("extractor", "how to hurt someone", registry=registry, guard=[guard])
    assert hit.value.span == (0, 19, "how to hurt someone")
    assert seen == ["hello there", "how to hurt someone"]
    assert server.count(PRIMARY) == 1


def test_a_classifier_with_a_bad_answer_is_a_usage_error() -> None:
    import asyncio

    guard = bm.BannedTopics(classifier=lambda text: "yes")  # type: ignore[arg-type,return-value]
    with pytest.raises(bm.UsageError, match="return a score, a bool, \\(label, score\\) or None"):
        asyncio.run(guard.check_input(bm.ModelRequest(input="x")))


# --- max tokens ---------------------------------------------------------------------------


async def test_max_input_tokens_refuses_a_long_prompt_before_calling(
    registry: bm.Registry, server: ScriptedServer
) -> None:
    tokenizer = default_tokenizer()
    text = "The supplier shall indemnify the buyer. " * 50
    limit = 40
    with pytest.raises(bm.GuardViolation) as hit:
        await bm.call_model("extractor", text, registry=registry, guard=[bm.MaxTokens(limit)])
    assert hit.value.rule == "max_tokens"
    assert f"{tokenizer.count(text)} tokens, over the limit of {limit}" in hit.value.detail
    start, end, rest = hit.value.span or (0, 0, "")
    assert (end, rest) == (len(text), text[start:])
    assert tokenizer.count(text[:start]) == limit  # the span starts at the first token over
    assert server.count(PRIMARY) == 0


async def test_max_output_tokens_caps_the_request_and_refuses_a_longer_answer(
    registry: bm.Registry, server: ScriptedServer
) -> None:
    tokenizer = ApproxTokenizer()
    long_answer = "word " * 30
    server.script(PRIMARY, {"kind": "ok", "text": "short answer"}, {"kind": "ok", "text": long_answer})
    guard = bm.MaxTokens(10, direction="output", tokenizer=tokenizer)
    response = await bm.call_model("extractor", "x", registry=registry, max_tokens=500, guard=[guard])
    assert response.text == "short answer"
    assert server.last_body(PRIMARY)["max_tokens"] == 10  # the provider was told the budget
    with pytest.raises(bm.GuardViolation) as hit:
        await bm.call_model("extractor", "x", registry=registry, guard=[guard])
    assert hit.value.direction == "output"
    assert tokenizer.count(long_answer[: hit.value.start]) == 10


# --- required fields ----------------------------------------------------------------------


@json_schema
async def test_required_fields_after_a_schema(registry: bm.Registry, server: ScriptedServer) -> None:
    schema = {"type": "object"}
    server.script(
        PRIMARY,
        {"kind": "ok", "json": {"parties": [{"name": "Acme"}], "risk": "low"}},
        {"kind": "ok", "json": {"parties": [{"name": ""}], "risk": "low"}},
    )
    guards = [bm.JsonSchema(schema), bm.RequiredFields(["risk", "parties.0.name"])]
    response = await bm.call_model("extractor", "x", registry=registry, guard=guards)
    assert response.output["parties"][0]["name"] == "Acme"
    with pytest.raises(bm.GuardViolation, match=r"missing or empty field\(s\): parties.0.name") as hit:
        await bm.call_model("extractor", "x", registry=registry, guard=guards)
    assert hit.value.span is None


async def test_required_fields_with_reask_asks_again(registry: bm.Registry, server: ScriptedServer) -> None:
    server.script(PRIMARY, {"kind": "ok", "text": "no json here"}, {"kind": "ok", "json": {"risk": "low"}})
    response = await bm.call_model(
        "extractor", "x", registry=registry, guard=[bm.RequiredFields(["risk"], reask=1)]
    )
    assert response.text == '{"risk": "low"}'
    assert "the answer is not JSON" in server.last_body(PRIMARY)["messages"][-1]["content"]


# --- bad guard definitions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: bm.BannedTopics("insider trading"), "a list of phrases, not one string"),
        (lambda: bm.BannedTopics([]), "needs phrases"),
        (lambda: bm.BannedTopics(["ok", " "]), "must not be empty"),
        (lambda: bm.BannedTopics(["a" * n for n in range(1, 1000)]), "extend one another hundreds of times"),
        (lambda: bm.BannedTopics(["x"], direction="sideways"), "direction must be one of"),
        (lambda: bm.BannedTopics(["x"], on_violation="ignore"), "on_violation must be 'raise' or 'fallback'"),
        (lambda: bm.MaxTokens(0), "whole number >= 1"),
        (lambda: bm.RequiredFields([]), "non-empty list"),
        (lambda: bm.JsonSchema(int), "pydantic model class or a JSON Schema dict"),  # type: ignore[arg-type]
        pytest.param(
            lambda: bm.JsonSchema({"type": "objekt"}),
            "invalid JSON Schema at type",
            marks=needs("guard", "jsonschema"),
        ),
        (lambda: bm.JsonSchema({"type": "object"}, reask=-1), "whole number >= 0"),
        (lambda: bm.ModelSettings(temperature=3), "within \\[0, 2\\]"),
        (lambda: bm.ModelSettings(response_format="xml"), "'json' or 'text'"),  # type: ignore[arg-type]
    ],
)
def test_bad_guard_definitions_fail_at_once(make: Any, message: str) -> None:
    with pytest.raises(bm.UsageError, match=message):
        make()


async def test_guard_argument_takes_only_guards(registry: bm.Registry, server: ScriptedServer) -> None:
    with pytest.raises(bm.UsageError, match=r"takes bm\.Guard objects"):
        await bm.call_model("extractor", "x", registry=registry, guard=["json"])  # type: ignore[list-item]
    assert server.count(PRIMARY) == 0


@bm.workflow
async def careful(text: str) -> dict[str, Any]:
    try:
        await bm.call_model("extractor", text, guard=[bm.BannedTopics(BANNED)])
    except bm.GuardViolation as exc:
        await bm.wait_for("go")  # the run leaves memory; the signal resumes it by replay
        return {"rule": exc.rule, "direction": exc.direction, "span": list(exc.span or ())}
    return {}


async def test_a_replayed_violation_keeps_its_rule_and_span(
    db_path: Path, registry: bm.Registry, server: ScriptedServer, until_status: Any
) -> None:
    async with bm.Engine(db_path, workflows=[careful], registry=registry, poll_interval=0.02) as engine:
        handle = await engine.start(careful, "Any tax evasion tips?")
        await until_status(engine, handle.id, "waiting")
        await engine.signal(handle.id, "go", None)
        result = await handle.result(timeout=30)
    assert result == {"rule": "banned_topics", "direction": "input", "span": [4, 15, "tax evasion"]}
    assert server.count(PRIMARY) == 0


@bm.workflow
async def misguarded(text: str) -> str:
    response = await bm.call_model("extractor", text, guard=[bm.MaxTokens(10), "no swearing"])  # type: ignore[list-item]
    return response.text


async def test_a_bad_guard_list_fails_the_run_before_anything_is_journaled(
    db_path: Path, registry: bm.Registry, server: ScriptedServer
) -> None:
    async with bm.Engine(db_path, workflows=[misguarded], registry=registry, poll_interval=0.02) as engine:
        handle = await engine.start(misguarded, "x")
        with pytest.raises(bm.RunFailed) as failed:
            await handle.result(timeout=30)
        info = await handle.describe()
    assert failed.value.error_type == "bandmaster.errors.UsageError"
    assert "not 'no swearing'" in failed.value.message
    assert info.steps == []  # no half-written model step
    assert server.count(PRIMARY) == 0
