"""Engine hooks: which events a run emits and in what order, headers carried on the run,
and hooks that fail or are not hooks."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import bandmaster as bm
from bandmaster.engine.hooks import (
    AttemptFinished,
    AttemptStarted,
    RunCreated,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
)

attempts: list[int] = []


@bm.step(retry=bm.Retry(attempts=2, initial=0.001, jitter=False))
async def shaky(x: int) -> int:
    attempts.append(x)
    if len(attempts) == 1:
        raise bm.ProviderUnavailable("once")
    return x * 2


@bm.workflow
async def double(x: int) -> int:
    return await shaky(x)


class Recorder(bm.Hooks):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def run_created(self, event: RunCreated) -> Mapping[str, str]:
        self.events.append(event)
        return {"tenant": "acme"}

    def run_started(self, event: RunStarted) -> None:
        self.events.append(event)

    def run_finished(self, event: RunFinished) -> None:
        self.events.append(event)

    def step_started(self, event: StepStarted) -> None:
        self.events.append(event)

    def attempt_started(self, event: AttemptStarted) -> None:
        self.events.append(event)

    def attempt_finished(self, event: AttemptFinished) -> None:
        self.events.append(event)

    def step_finished(self, event: StepFinished) -> None:
        self.events.append(event)


@pytest.fixture(autouse=True)
def _reset() -> None:
    attempts.clear()


async def test_a_run_emits_its_events_in_order(db_path: Path) -> None:
    recorder = Recorder()
    async with bm.Engine(db_path, workflows=[double], hooks=[recorder]) as engine:
        assert await (await engine.start(double, 21)).result(timeout=10) == 42

    kinds = [type(e).__name__ for e in recorder.events]
    assert kinds == [
        "RunCreated",
        "RunStarted",
        "StepStarted",
        "AttemptStarted",
        "AttemptFinished",
        "AttemptStarted",
        "AttemptFinished",
        "StepFinished",
        "RunFinished",
    ]
    _, started, step, _, failed, _, succeeded, finished, ended = recorder.events
    assert started.headers == {"tenant": "acme"}
    assert started.resumed is False
    assert (step.name, step.kind, step.seq, step.workflow) == ("shaky", "step", 1, "double")
    assert isinstance(failed.error, bm.ProviderUnavailable)
    assert failed.retry_delay == pytest.approx(0.001)
    assert succeeded.error is None
    assert succeeded.retry_delay is None
    assert (finished.status, finished.attempts, finished.output) == ("completed", 2, "42")
    assert finished.step is step
    assert finished.duration > 0
    assert (ended.outcome, ended.error) == ("completed", None)


async def test_a_failing_hook_is_logged_and_the_run_goes_on(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(bm.Hooks):
        def step_finished(self, event: StepFinished) -> None:
            raise RuntimeError("exporter down")

    recorder = Recorder()
    with caplog.at_level(logging.ERROR, logger="bandmaster.hooks"):
        async with bm.Engine(db_path, workflows=[double], hooks=[Broken(), recorder]) as engine:
            assert await (await engine.start(double, 1)).result(timeout=10) == 2
    assert "Broken.step_finished failed" in caplog.text
    assert any(isinstance(e, StepFinished) for e in recorder.events)  # later hooks still called


def test_something_that_is_not_a_hook_is_refused(db_path: Path) -> None:
    with pytest.raises(bm.UsageError, match="not an engine hook; subclass"):
        bm.Engine(db_path, hooks=[object()])  # type: ignore[list-item]
