"""The circuit breaker as a pure state machine: the caller passes the time, so a plain number
is the clock. closed → open after N failures within the window → half-open after the reset
timeout (one trial) → closed on its success, open again on its failure; adopt() takes newer
transitions made by other workers only."""

from __future__ import annotations

import pytest

from bandmaster.policies._breaker import Breaker, BreakerState

POLICY = Breaker(failures=3, window=10.0, reset=5.0)


def opened_at(now: float) -> BreakerState:
    state = BreakerState()
    for offset in (2.0, 1.0, 0.0):
        state.record_failure(POLICY, now - offset)
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
    assert (state.status, state.opened_at, state.changed_at, state.recent_failures) == (
        "closed",
        None,
        0.0,
        [],
    )


def test_closed_allows_every_call() -> None:
    state = BreakerState()
    assert all(state.allow(POLICY, t) for t in range(100))
    assert state.status == "closed"


def test_opens_on_the_nth_failure_within_the_window() -> None:
    state = BreakerState()
    assert state.record_failure(POLICY, 100.0) is False
    assert state.record_failure(POLICY, 101.0) is False
    assert state.status == "closed"
    assert state.record_failure(POLICY, 102.0) is True, "the transition is reported (to share it)"
    assert (state.status, state.opened_at, state.changed_at) == ("open", 102.0, 102.0)
    assert state.recent_failures == []


def test_failures_outside_the_window_do_not_count() -> None:
    state = BreakerState()
    state.record_failure(POLICY, 0.0)
    state.record_failure(POLICY, 5.0)
    assert state.record_failure(POLICY, 10.0) is False, "the failure at 0 is exactly window old: expired"
    assert state.status == "closed"
    assert state.recent_failures == [5.0, 10.0]
    assert state.record_failure(POLICY, 14.9) is True
    assert state.status == "open"


def test_sparse_failures_never_open() -> None:
    state = BreakerState()
    for t in range(0, 1000, 6):  # one failure every 6 s, window 10 s: at most 2 in any window
        assert state.record_failure(POLICY, float(t)) is False
    assert state.status == "closed"


def test_success_clears_the_failure_count() -> None:
    state = BreakerState()
    state.record_failure(POLICY, 1.0)
    state.record_failure(POLICY, 2.0)
    assert state.record_success(3.0) is False, "closed stays closed: nothing to share"
    assert state.recent_failures == []
    state.record_failure(POLICY, 4.0)
    state.record_failure(POLICY, 5.0)
    assert state.status == "closed"


def test_open_refuses_until_the_reset_timeout() -> None:
    state = opened_at(100.0)
    for t in (100.0, 101.0, 104.999):
        assert state.allow(POLICY, t) is False
    assert state.status == "open"


def test_failures_while_open_change_nothing() -> None:
    state = opened_at(100.0)
    assert state.record_failure(POLICY, 103.0) is False
    assert (state.status, state.opened_at, state.changed_at) == ("open", 100.0, 100.0)


def test_half_open_after_reset_with_exactly_one_trial() -> None:
    state = opened_at(100.0)
    assert state.allow(POLICY, 105.0) is True, "reset has passed: the trial call"
    assert (state.status, state.changed_at, state.trial_in_flight) == ("half_open", 105.0, True)
    assert state.allow(POLICY, 105.1) is False, "one trial at a time"
    assert state.allow(POLICY, 200.0) is False, "still waiting for the trial's outcome"


def test_trial_success_closes() -> None:
    state = opened_at(100.0)
    assert state.allow(POLICY, 106.0)
    assert state.record_success(106.5) is True
    assert (state.status, state.opened_at, state.changed_at, state.trial_in_flight) == (
        "closed",
        None,
        106.5,
        False,
    )
    assert state.allow(POLICY, 106.6)
    assert state.allow(POLICY, 106.7)
    state.record_failure(POLICY, 107.0)
    state.record_failure(POLICY, 108.0)
    assert state.status == "closed", "closing starts a fresh count"


def test_trial_failure_reopens_for_another_reset() -> None:
    state = opened_at(100.0)
    assert state.allow(POLICY, 105.0)
    assert state.record_failure(POLICY, 105.5) is True
    assert (state.status, state.opened_at, state.changed_at, state.trial_in_flight) == (
        "open",
        105.5,
        105.5,
        False,
    )
    assert state.allow(POLICY, 110.4) is False
    assert state.allow(POLICY, 110.5) is True, "the next trial after a full reset"
    assert state.status == "half_open"


def test_single_failure_breaker() -> None:
    policy = Breaker(failures=1, window=1.0, reset=1.0)
    state = BreakerState()
    assert state.record_failure(policy, 0.0) is True
    assert state.allow(policy, 0.5) is False
    assert state.allow(policy, 1.0) is True


# --- adopting transitions made by other workers -------------------------------------------


def test_adopt_a_newer_open() -> None:
    state = BreakerState()
    state.record_failure(POLICY, 10.0)
    state.adopt("open", 20.0, 20.0)
    assert (state.status, state.opened_at, state.changed_at) == ("open", 20.0, 20.0)
    assert state.allow(POLICY, 24.0) is False
    assert state.allow(POLICY, 25.0) is True, "the reset counts from the other worker's opening"


@pytest.mark.parametrize("changed_at", [50.0, 100.0])
def test_adopt_ignores_older_and_equal_transitions(changed_at: float) -> None:
    state = opened_at(100.0)
    state.adopt("closed", None, changed_at)
    assert (state.status, state.opened_at, state.changed_at) == ("open", 100.0, 100.0)


def test_adopt_a_newer_close_clears_failures_and_trial() -> None:
    state = opened_at(100.0)
    assert state.allow(POLICY, 105.0)  # our trial is in flight
    state.adopt("closed", None, 105.2)  # another worker's trial succeeded first
    assert (state.status, state.opened_at, state.changed_at, state.trial_in_flight) == (
        "closed",
        None,
        105.2,
        False,
    )
    assert state.recent_failures == []
    assert state.allow(POLICY, 105.3)


def test_adopt_a_newer_open_while_half_open() -> None:
    state = opened_at(100.0)
    assert state.allow(POLICY, 105.0)
    state.adopt("open", 105.1, 105.1)  # another worker's trial failed
    assert (state.status, state.opened_at, state.trial_in_flight) == ("open", 105.1, False)
    assert state.allow(POLICY, 106.0) is False


def test_adopt_keeps_the_local_failure_count_unless_closed() -> None:
    state = BreakerState()
    state.record_failure(POLICY, 1.0)
    state.adopt("open", 2.0, 2.0)
    state.adopt("closed", None, 3.0)
    assert state.recent_failures == []
