"""Router: first matching rule wins; decisions are journaled with the values the rule read."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

import bandmaster as bm
from bandmaster.routing import Router
from bandmaster.routing._expr import ExpressionError


class Intent(BaseModel):
    label: str
    confidence: float


def make_router() -> Router:
    router = Router(default="human", variables=["intent", "text"], name="triage_router")
    router.add_route("intent.label == 'billing' and intent.confidence > 0.85", "auto_reply", name="confident")
    router.add_route(lambda v: len(v["text"]) > 40, "long_form", name="long")
    return router


def test_first_matching_rule_wins_and_default_applies() -> None:
    router = make_router()
    short = "refund"
    assert (
        router.evaluate({"intent": Intent(label="billing", confidence=0.9), "text": short}).route
        == "auto_reply"
    )
    assert (
        router.evaluate({"intent": Intent(label="billing", confidence=0.5), "text": "x" * 50}).route
        == "long_form"
    )
    decision = router.evaluate({"intent": Intent(label="tech", confidence=0.99), "text": short})
    assert (decision.route, decision.rule) == ("human", None)


def test_bad_rule_fails_when_added_naming_it() -> None:
    router = Router(variables=["intent"])
    with pytest.raises(ExpressionError, match="'sneaky'"):
        router.add_route("intent.__dict__", "x", name="sneaky")
    with pytest.raises(bm.UsageError, match="already has a rule"):
        router.add_route("intent.confidence > 1", "a", name="dup").add_route(
            "intent.confidence > 2", "b", name="dup"
        )


def test_no_match_without_default_is_an_error() -> None:
    router = Router(variables=["x"]).add_route("x > 1", "big")
    with pytest.raises(bm.UsageError, match="no rule matched"):
        router.evaluate({"x": 0})
    assert Router(escalate="human").evaluate({}).route == "human"


ROUTER = make_router()
seen: list[str] = []


@bm.workflow
async def routed(label: str, confidence: float, text: str) -> str:
    decision = ROUTER.decide(intent=Intent(label=label, confidence=confidence), text=text)
    seen.append(decision.route)
    await bm.wait_for("resume")  # forces eviction, so the decision is replayed from the journal
    return decision.route


async def test_decision_is_journaled_with_rule_and_values(tmp_path: Path) -> None:
    seen.clear()
    async with bm.Engine(tmp_path / "r.db", workflows=[routed], poll_interval=0.02) as engine:
        handle = await engine.start(routed, "billing", 0.95, "refund me")
        for _ in range(200):
            if (await engine.describe(handle.id)).status == "waiting":
                break
            await __import__("asyncio").sleep(0.01)
        await engine.signal(handle.id, "resume")
        assert await handle.result() == "auto_reply"
        info = await engine.describe(handle.id)
    route_steps = [s for s in info.steps if s.kind == "route"]
    assert len(route_steps) == 1
    assert route_steps[0].meta == {"rule": "confident", "route": "auto_reply"}
    assert route_steps[0].output["values"]["intent"] == {"label": "billing", "confidence": 0.95}
    assert "text" not in route_steps[0].output["values"]  # only what the rule read
    assert seen == ["auto_reply", "auto_reply"]  # live, then replayed from the journal


class NoTruth:
    def __bool__(self) -> bool:
        raise ValueError("the truth value is ambiguous")


def test_a_rule_that_fails_while_deciding_is_a_usage_error_naming_router_and_rule() -> None:
    router = Router(default="human", name="triage_router")
    router.add_route("intent['missing'] == 'x'", "auto_reply", name="missing_key")
    with pytest.raises(ExpressionError) as caught:
        router.decide(intent={})
    assert str(caught.value) == (
        "router 'triage_router': rule 'missing_key': evaluation failed: KeyError: 'missing'"
    )
    assert (caught.value.router, caught.value.rule) == ("triage_router", "missing_key")

    by_lambda = Router(default="human", name="triage_router")
    by_lambda.add_route(lambda v: v["text"] == "x", "auto_reply", name="reads_text")
    with pytest.raises(
        bm.UsageError, match=r"^router 'triage_router': rule 'reads_text' failed: KeyError: 'text'"
    ):
        by_lambda.decide(intent={})

    vague = Router(default="human", name="triage_router")
    vague.add_route(lambda v: NoTruth(), "auto_reply", name="vague")
    with pytest.raises(bm.UsageError, match=r"rule 'vague' gave a NoTruth, which is neither true nor false"):
        vague.decide()


def test_a_rule_formatting_a_gigabyte_is_refused_when_added() -> None:
    router = Router(default="human", name="triage_router")
    with pytest.raises(ExpressionError, match=r"^router 'triage_router': rule 'wide': '%\.999999999f' asks"):
        router.add_route("'%.999999999f' % score == 'x'", "auto_reply", name="wide")
    assert router.rules == []
