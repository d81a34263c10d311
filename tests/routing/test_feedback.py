"""Online feedback moves cascade thresholds in the right direction, within guard rails."""

from __future__ import annotations

from pathlib import Path

import pytest

from bandmaster.models import CallableModel, ModelRequest
from bandmaster.routing import Cascade
from bandmaster.routing._feedback import ThresholdTuner


def test_wrong_answers_raise_the_threshold_right_answers_lower_it() -> None:
    tuner = ThresholdTuner(fitted=[0.7, 0.8], expected=[0.9, 0.9])
    for _ in range(40):
        tuner.observe(0, correct=False)
    assert tuner.thresholds[0] > 0.7
    assert tuner.thresholds[1] == 0.8  # feedback on stage 0 leaves stage 1 alone
    for _ in range(40):
        tuner.observe(1, correct=True)
    assert tuner.thresholds[1] < 0.8


def test_a_burst_of_feedback_cannot_swing_thresholds_past_the_guard_rail() -> None:
    tuner = ThresholdTuner(fitted=[0.7], expected=[0.9])
    for _ in range(10_000):
        tuner.observe(0, correct=False)
    assert tuner.thresholds[0] == pytest.approx(0.8)  # fitted + max_drift
    for _ in range(10_000):
        tuner.observe(0, correct=True)
    assert tuner.thresholds[0] == pytest.approx(0.6)  # fitted - max_drift


def test_one_update_moves_at_most_one_step() -> None:
    tuner = ThresholdTuner(fitted=[0.5], expected=[0.95], every=20)
    before = tuner.thresholds[0]
    for _ in range(20):
        tuner.observe(0, correct=False)
    assert tuner.thresholds[0] - before == pytest.approx(tuner.step_up)


async def test_cascade_feedback_uses_the_stage_that_answered() -> None:
    small = CallableModel(lambda text: ("billing", 0.95), name="small")
    large = CallableModel(lambda text: ("technical", 0.99), name="large")
    cascade = Cascade([small, large], thresholds=[0.9])
    response = await cascade.request(ModelRequest(input="my bill"))
    assert response.output == "billing"
    assert [s["accepted"] for s in response.raw["stages"]] == [True]  # type: ignore[index]
    for _ in range(100):
        thresholds = cascade.feedback(response, correct=False)
    assert thresholds[0] == pytest.approx(1.0)  # raised step by step up to the guard rail
    escalated = await cascade.request(ModelRequest(input="my bill"))  # 0.95 no longer suffices
    assert escalated.output == "technical"
    assert [s["model"] for s in escalated.raw["stages"]] == ["small", "large"]  # type: ignore[index]


async def test_thresholds_are_shared_through_the_store(tmp_path: Path) -> None:
    """Two workers' copies of one cascade: feedback on one reaches the other."""
    from bandmaster.routing import _cascade as cascade_module
    from bandmaster.store._sqlite import SQLiteStore

    def build() -> Cascade:
        small = CallableModel(lambda text: ("billing", 0.95), name="small")
        large = CallableModel(lambda text: ("technical", 0.99), name="large")
        return Cascade([small, large], thresholds=[0.9], name="intent")

    first = build().bind(SQLiteStore(tmp_path / "j.db"))
    second = build().bind(SQLiteStore(tmp_path / "j.db"))
    response = await first.request(ModelRequest(input="my bill"))
    for _ in range(100):
        first.feedback(response, correct=False)
    assert first.thresholds[0] == pytest.approx(1.0)
    assert second.thresholds[0] == pytest.approx(0.9)  # not re-read yet
    second._checked -= cascade_module.REFRESH  # as if REFRESH seconds had passed
    answer = await second.request(ModelRequest(input="my bill"))
    assert second.thresholds[0] == pytest.approx(1.0)
    assert answer.output == "technical"  # the second worker now escalates too
