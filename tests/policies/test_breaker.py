"""The circuit breaker as a pure state machine: the caller passes the time, so a plain number
is the clock. closed → open at the N-th failure within the window → half-open after the reset
timeout (one trial, claimed until its outcome or for ``reset`` seconds) → closed on its
success, open again on its failure. Calls in flight when it opened are counted, change nothing."""

from __future__ import annotations

import pytest

from bandmaster.policies._breaker import Breaker, BreakerState

POLICY = Breaker(failures=3, window=10.0, reset=5.0)


def opened_at(now: float) -> BreakerState:
    state = BreakerState()
    for offset in (2.0, 1.0, 0.0):
        state.fail(POLICY, now - offset)
    assert state.status == "open"
    assert state.opened_at == now
    return state


@pytest.mark.parametrize(
    "options",
    [{"failures": 0}, {"window": 0}, {"reset": 0}, {"window": -1}, {"reset": -5}],
)
def test_breaker_rejects_nonsense(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Breaker needs failures >= 1, window > 0 and reset > 0"):
        Breaker(**options)  # type: ignore[arg-type]


def test_defaults() -> None:
    assert Breaker() == Breaker(failures=5, window=30.0, reset=60.0)
    state = BreakerState()
    assert (state.status, state.opened_at, state.changed_at, state.recent_failures, state.failures) == (
        "closed",
        None,
        0.0,
        [],
        0,
    )


def test_closed_admits_every_call() -> None:
    state = BreakerState()
    assert all(state.admit(POLICY, t) == "go" for t in range(100))
    assert state.status == "closed"


def test_opens_on_the_nth_failure_within_the_window() -> None:
    state = BreakerState()
    assert state.fail(POLICY, 100.0) is False
    assert state.fail(POLICY, 101.0) is False
    assert state.status == "closed"
    assert state.fail(POLICY, 102.0) is True, "the transition is reported"
    assert (state.status, state.opened_at, state.changed_at, state.failures) == ("open", 102.0, 102.0, 3)
    assert state.recent_failures == []


def test_failures_outside_the_window_do_not_count() -> None:
    state = BreakerState()
    state.fail(POLICY, 0.0)
    state.fail(POLICY, 5.0)
    assert state.fail(POLICY, 10.0) is False, "the failure at 0 is exactly window old: expired"
    assert state.status == "closed"
    assert state.recent_failures == [5.0, 10.0]
    assert state.fail(POLICY, 14.9) is True
    assert state.status == "open"


def test_sparse_failures_never_open() -> None:
    state = BreakerState()
    for t in range(0, 1000, 6):  # one failure every 6 s, window 10 s: at most 2 in any window
        assert state.fail(POLICY, float(t)) is False
    assert state.status == "closed"


def test_success_clears_the_failure_count() -> None:
    state = BreakerState()
    state.fail(POLICY, 1.0)
    state.fail(POLICY, 2.0)
    assert state.has_news()
    assert state.succeed(3.0) is True, "the count changed: a shared state must be written"
    assert (state.recent_failures, state.failures, state.status) == ([], 0, "closed")
    assert not state.has_news()
    assert state.succeed(3.5) is False, "nothing to clear: nothing to write"
    state.fail(POLICY, 4.0)
    state.fail(POLICY, 5.0)
    assert state.status == "closed"


def test_open_refuses_until_the_reset_timeout() -> None:
    state = opened_at(100.0)
    for t in (100.0, 101.0, 104.999):
        assert state.admit(POLICY, t) == "refused"
    assert state.status == "open"


def test_calls_in_flight_at_the_open_are_counted_and_change_nothing() -> None:
    state = opened_at(100.0)
    assert state.fail(POLICY, 103.0) is False
    assert state.succeed(103.5) is False, "a success of a call sent before the open closes nothing"
    assert (state.status, state.opened_at, state.changed_at, state.failures) == ("open", 100.0, 100.0, 4)


def test_half_open_after_reset_with_exactly_one_trial() -> None:
    state = opened_at(100.0)
    assert state.admit(POLICY, 105.0) == "trial", "reset has passed: the trial call"
    assert (state.status, state.changed_at, state.trial_until) == ("half_open", 105.0, 110.0)
    assert state.admit(POLICY, 105.1) == "refused", "one trial at a time"
    assert state.admit(POLICY, 109.9) == "refused", "still waiting for the trial's outcome"


def test_a_trial_whose_worker_died_lapses_after_reset_seconds() -> None:
    state = opened_at(100.0)
    assert state.admit(POLICY, 105.0) == "trial"  # no outcome will ever come
    assert state.admit(POLICY, 110.0) == "trial", "the claim lapsed: the next call tries"
    assert state.trial_until == 115.0


def test_a_released_trial_lets_the_next_call_try() -> None:
    state = opened_at(100.0)
    assert state.admit(POLICY, 105.0) == "trial"
    assert state.release(trial=False) is False, "only the trial holds the claim"
    assert state.release(trial=True) is True
    assert state.admit(POLICY, 105.1) == "trial"


def test_trial_success_closes() -> None:
    state = opened_at(100.0)
    assert state.admit(POLICY, 106.0) == "trial"
    assert state.succeed(106.4) is False, "a success that is not the trial's closes nothing"
    assert state.succeed(106.5, trial=True) is True
    assert (state.status, state.opened_at, state.changed_at, state.trial_until, state.failures) == (
        "closed",
        None,
        106.5,
        None,
        0,
    )
    assert state.admit(POLICY, 106.6) == "go"
    state.fail(POLICY, 107.0)
    state.fail(POLICY, 108.0)
    assert state.status == "closed", "closing starts a fresh count"


def test_trial_failure_reopens_for_another_reset() -> None:
    state = opened_at(100.0)
    assert state.admit(POLICY, 105.0) == "trial"
    assert state.fail(POLICY, 105.2) is False, "a call from before the open: not the trial"
    assert state.fail(POLICY, 105.5, trial=True) is True
    assert (state.status, state.opened_at, state.changed_at, state.trial_until) == (
        "open",
        105.5,
        105.5,
        None,
    )
    assert state.admit(POLICY, 110.4) == "refused"
    assert state.admit(POLICY, 110.5) == "trial", "the next trial after a full reset"
    assert state.status == "half_open"


def test_single_failure_breaker() -> None:
    policy = Breaker(failures=1, window=1.0, reset=1.0)
    state = BreakerState()
    assert state.fail(policy, 0.0) is True
    assert state.admit(policy, 0.5) == "refused"
    assert state.admit(policy, 1.0) == "trial"
