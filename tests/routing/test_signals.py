"""Confidence signals as model wrappers: log-probabilities, self-consistency, a verifier; each
tested against scripted providers returning the fields it needs, and usable in a fitted cascade."""

from __future__ import annotations

import math
import random

import pytest

import bandmaster as bm
from bandmaster.models import ModelRequest
from bandmaster.routing import Cascade, Example
from bandmaster.routing._signals import LogprobConfidence, SelfConsistency, Verified
from bandmaster.testing import ScriptedModel


def answer(text: str, *logprobs: float, cost: float = 0.0) -> dict[str, object]:
    return {
        "output": text,
        "cost": cost,
        "raw": {"logprobs": [{"token": text, "logprob": lp} for lp in logprobs]},
    }


async def test_logprob_confidence_reads_the_answer_token_or_the_mean() -> None:
    model = ScriptedModel([answer("B", -0.1, -2.0), answer("B", -0.1, -2.0), "C"], name="m")
    first = await LogprobConfidence(model).request(ModelRequest(input="q"))
    assert first.confidence == pytest.approx(math.exp(-0.1))
    mean = await LogprobConfidence(model, mode="mean").request(ModelRequest(input="q"))
    assert mean.confidence == pytest.approx(math.exp(-1.05))
    bare = await LogprobConfidence(model).request(ModelRequest(input="q"))
    assert bare.confidence is None  # no logprobs: no made-up confidence
    assert all(r.params == {"logprobs": True} for r in model.requests)
    with pytest.raises(bm.UsageError, match="mode must be"):
        LogprobConfidence(model, mode="max")  # type: ignore[arg-type]


async def test_self_consistency_returns_the_majority_with_its_share() -> None:
    model = ScriptedModel(["B", "(B)", "C", "B.", "b"], name="m", cost=0.01)
    response = await SelfConsistency(model, samples=5, temperature=0.9).request(ModelRequest(input="q"))
    assert response.confidence == pytest.approx(0.8)  # four of five say B
    assert response.text in ("B", "(B)", "B.", "b")
    assert response.cost == pytest.approx(0.05)  # every sample is paid for
    assert [r.temperature for r in model.requests] == [0.9] * 5
    with pytest.raises(bm.UsageError, match="at least 2 samples"):
        SelfConsistency(model, samples=1)


async def test_a_verifier_judges_the_answer_and_its_cost_is_counted() -> None:
    model = ScriptedModel({"2+2? {answer}": "4"}, name="m", cost=0.001)
    verifier = ScriptedModel(
        [("yes", 0.8), ("no", 0.9), answer("yes", math.log(0.7)), "maybe"], name="v", cost=0.002
    )
    judged = Verified(model, verifier)
    yes = await judged.request(ModelRequest(input="2+2? {answer}"))
    assert yes.confidence == pytest.approx(0.8)
    assert yes.cost == pytest.approx(0.003)
    # The question is data: its braces are not a placeholder for the answer.
    assert "2+2? {answer}" in verifier.texts[0]
    assert "Proposed answer:\n4" in verifier.texts[0]
    no = await judged.request(ModelRequest(input="2+2? {answer}"))
    assert no.confidence == pytest.approx(0.1)  # "no" with 0.9: P(correct) = 0.1
    from_logprobs = await judged.request(ModelRequest(input="2+2? {answer}"))
    assert from_logprobs.confidence == pytest.approx(0.7)
    unclear = await judged.request(ModelRequest(input="2+2? {answer}"))
    assert unclear.confidence is None
    with pytest.raises(bm.UsageError, match="must contain"):
        Verified(model, verifier, prompt="Is it right?")


async def test_a_cascade_fits_its_thresholds_on_logprob_confidence() -> None:
    """A cheap model whose answer-token probability tracks whether it is right: the fit uses
    that signal (no learned scorer) and escalates the unsure answers only."""
    rng = random.Random(5)
    cheap_script: dict[str, object] = {}
    strong_script: dict[str, object] = {}
    examples = []
    for i in range(300):
        text = f"question {i}"
        right = rng.random() < 0.7
        sure = rng.uniform(0.75, 0.99) if right else rng.uniform(0.3, 0.8)
        cheap_script[text] = answer("A" if right else "B", math.log(sure), cost=1e-4)
        strong_script[text] = {"output": "A", "cost": 1e-2}
        examples.append(Example(input=text, label="A"))
    cheap = LogprobConfidence(ScriptedModel(cheap_script, name="cheap"))
    strong = ScriptedModel(strong_script, name="strong")
    cascade = Cascade([cheap, strong])
    report = await cascade.fit(examples[:200], target={"accuracy": 0.95})
    assert not report.learned_scorer
    held_out = await cascade.evaluate(examples[200:])
    assert held_out.accuracy >= 0.9
    assert 0.2 < held_out.escalation[1] < 0.6  # far fewer than all go to the strong model
