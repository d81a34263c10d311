"""The shared breaker state machine of the Temporal registry workflow (``apply_report``):
pure data in, data out, so no server is needed."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
from bandmaster.temporal._model_registry import apply_report

POLICY = {"failures": 3, "window": 60.0, "reset": 30.0}


def failure(at: float, *, trial: bool = False) -> dict[str, Any]:
    return {"model": "m", "outcome": "failure", "at": at, "policy": POLICY, "trial": trial}


def success(at: float, *, trial: bool = False) -> dict[str, Any]:
    return {"model": "m", "outcome": "success", "at": at, "trial": trial}


def test_failures_from_any_worker_add_up_within_the_window() -> None:
    breakers: dict[str, Any] = {}
    apply_report(breakers, failure(100.0))
    apply_report(breakers, failure(101.0))
    assert breakers["m"]["status"] == "closed"
    assert breakers["m"]["failures"] == [100.0, 101.0]
    apply_report(breakers, failure(200.0))  # the first two fell out of the window
    assert (breakers["m"]["status"], breakers["m"]["failures"]) == ("closed", [200.0])
    apply_report(breakers, failure(201.0))
    apply_report(breakers, failure(202.0))
    assert breakers["m"] == {"status": "open", "opened_at": 202.0, "changed_at": 202.0, "failures": []}


def test_a_success_clears_the_count_but_only_a_trial_closes_an_open_breaker() -> None:
    breakers: dict[str, Any] = {}
    apply_report(breakers, failure(1.0))
    apply_report(breakers, success(2.0))
    assert breakers["m"]["failures"] == []
    for at in (3.0, 4.0, 5.0):
        apply_report(breakers, failure(at))
    assert breakers["m"]["status"] == "open"
    apply_report(breakers, success(6.0))  # a worker that had not seen it open yet
    assert breakers["m"]["status"] == "open"
    apply_report(breakers, failure(40.0, trial=True))  # the half-open trial failed: open again
    assert (breakers["m"]["status"], breakers["m"]["opened_at"]) == ("open", 40.0)
    apply_report(breakers, success(80.0, trial=True))
    assert (breakers["m"]["status"], breakers["m"]["changed_at"]) == ("closed", 80.0)
