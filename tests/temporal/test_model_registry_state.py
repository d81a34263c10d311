"""The shared breaker state machine of the Temporal registry workflow (``apply_report`` and
``admit_call``, what its update handlers run): pure data in, data out, so no server is needed."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
from bandmaster.temporal._model_registry import admit_call, apply_report

POLICY = {"failures": 3, "window": 60.0, "reset": 30.0}


def failure(at: float, *, trial: bool = False) -> dict[str, Any]:
    return {"model": "m", "outcome": "failure", "at": at, "policy": POLICY, "trial": trial}


def success(at: float, *, trial: bool = False) -> dict[str, Any]:
    return {"model": "m", "outcome": "success", "at": at, "trial": trial}


def admit(breakers: dict[str, Any], at: float) -> str:
    return admit_call(breakers, {"model": "m", "at": at, "policy": POLICY})[0]


def test_failures_from_any_worker_add_up_within_the_window() -> None:
    breakers: dict[str, Any] = {}
    assert apply_report(breakers, failure(100.0)) is True
    apply_report(breakers, failure(101.0))
    assert breakers["m"]["status"] == "closed"
    assert (breakers["m"]["recent"], breakers["m"]["failures"]) == ([100.0, 101.0], 2)
    apply_report(breakers, failure(200.0))  # the first two fell out of the window
    assert (breakers["m"]["status"], breakers["m"]["recent"]) == ("closed", [200.0])
    apply_report(breakers, failure(201.0))
    apply_report(breakers, failure(202.0))
    row = breakers["m"]
    assert (row["status"], row["opened_at"], row["recent"], row["failures"]) == ("open", 202.0, [], 5)
    assert row["rev"] == 5, "each change bumps the row's revision (workers keep the newest)"


def test_a_success_clears_the_count_but_only_a_trial_closes_an_open_breaker() -> None:
    breakers: dict[str, Any] = {}
    apply_report(breakers, failure(1.0))
    apply_report(breakers, success(2.0))
    assert (breakers["m"]["recent"], breakers["m"]["failures"]) == ([], 0)
    assert apply_report(breakers, success(2.5)) is False, "nothing to clear: no change, no publish"
    for at in (3.0, 4.0, 5.0):
        apply_report(breakers, failure(at))
    assert breakers["m"]["status"] == "open"
    apply_report(breakers, success(6.0))  # a call that was in flight when it opened
    apply_report(breakers, failure(6.5))  # another: counted, changes nothing
    assert (breakers["m"]["status"], breakers["m"]["failures"]) == ("open", 4)
    assert admit(breakers, 20.0) == "refused"
    assert admit(breakers, 35.0) == "trial"
    assert admit(breakers, 35.1) == "refused", "one trial across all workers"
    apply_report(breakers, failure(40.0, trial=True))  # the half-open trial failed: open again
    assert (breakers["m"]["status"], breakers["m"]["opened_at"]) == ("open", 40.0)
    assert admit(breakers, 69.0) == "refused"
    assert admit(breakers, 70.0) == "trial"
    apply_report(breakers, success(80.0, trial=True))
    assert (breakers["m"]["status"], breakers["m"]["changed_at"], breakers["m"]["failures"]) == (
        "closed",
        80.0,
        0,
    )
    assert admit(breakers, 80.1) == "go"


def test_a_lost_trial_lets_another_worker_try_after_its_claim_lapses() -> None:
    breakers: dict[str, Any] = {}
    for at in (1.0, 2.0, 3.0):
        apply_report(breakers, failure(at))
    assert admit(breakers, 33.0) == "trial"  # its worker is SIGKILLed: no outcome ever comes
    assert admit(breakers, 62.9) == "refused"
    assert admit(breakers, 63.0) == "trial", "the claim lapsed after reset seconds"


def test_a_void_trial_gives_its_claim_back() -> None:
    breakers: dict[str, Any] = {}
    for at in (1.0, 2.0, 3.0):
        apply_report(breakers, failure(at))
    assert admit(breakers, 33.0) == "trial"
    apply_report(breakers, {"model": "m", "outcome": "void", "at": 33.5, "trial": True})
    assert admit(breakers, 33.6) == "trial"
