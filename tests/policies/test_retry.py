"""Retry policy: pure decisions, checked on a fake random source."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

import bandmaster as bm
from bandmaster.policies._retry import DEFAULT_RETRY_ON, NO_RETRY, Retry


def fixed(value: float):
    """A fake ``random.random``."""
    return lambda: value


class Scripted:
    """A fake ``random.random`` returning the given values in order and counting calls."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.values.pop(0)


# --- backoff schedule ------------------------------------------------------------------


def test_backoff_schedule_without_jitter_is_exponential() -> None:
    policy = Retry(attempts=6, initial=0.5, multiplier=3.0, max_delay=100.0, jitter=False)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 13.5, 40.5]


def test_backoff_without_jitter_does_not_consume_randomness() -> None:
    rng = Scripted()
    policy = Retry(initial=1.0, jitter=False)
    assert policy.backoff(2, rng) == 2.0
    assert rng.calls == 0


def test_backoff_is_capped_at_max_delay() -> None:
    policy = Retry(attempts=10, initial=1.0, multiplier=2.0, max_delay=5.0, jitter=False)
    assert [policy.backoff(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_multiplier_one_gives_constant_delay() -> None:
    policy = Retry(attempts=5, initial=0.3, multiplier=1.0, jitter=False)
    assert {policy.backoff(n) for n in range(1, 5)} == {0.3}


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.5, 0.999999])
def test_full_jitter_scales_the_ceiling_by_the_draw(draw: float) -> None:
    policy = Retry(attempts=5, initial=1.0, multiplier=2.0, max_delay=3.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 3.0), (4, 3.0)]:
        assert policy.backoff(attempt, fixed(draw)) == pytest.approx(ceiling * draw)


def test_full_jitter_stays_within_zero_and_the_ceiling() -> None:
    import random

    source = random.Random(1234)
    policy = Retry(attempts=8, initial=0.2, multiplier=2.0, max_delay=2.0)
    for attempt in range(1, 8):
        ceiling = min(2.0, 0.2 * 2.0 ** (attempt - 1))
        delays = [policy.backoff(attempt, source.random) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # full jitter spreads over the whole range
        assert min(delays) < ceiling * 0.2


def test_next_delay_uses_the_rng_it_is_given() -> None:
    rng = Scripted(0.5)
    policy = Retry(attempts=3, initial=2.0)
    assert policy.next_delay(1, bm.ProviderUnavailable("down"), 0.0, rng) == 1.0
    assert rng.calls == 1


# --- when to give up -------------------------------------------------------------------


def test_gives_up_after_the_last_attempt() -> None:
    policy = Retry(attempts=3, initial=1.0, jitter=False)
    error = bm.StepTimeout("slow")
    assert policy.next_delay(1, error, 0.0) == 1.0
    assert policy.next_delay(2, error, 1.0) == 2.0
    assert policy.next_delay(3, error, 3.0) is None


def test_attempts_one_never_retries() -> None:
    assert Retry(attempts=1).next_delay(1, bm.StepTimeout("slow"), 0.0, fixed(0.5)) is None
    assert NO_RETRY.attempts == 1


@pytest.mark.parametrize(
    "error",
    [
        bm.InvalidRequest("400"),
        bm.AuthenticationFailed("401"),
        bm.MalformedResponse("garbage"),
        bm.InvalidInput("bad"),
        ValueError("validation"),
        KeyError("k"),
    ],
)
def test_non_retryable_errors_give_none(error: BaseException) -> None:
    policy = Retry(attempts=5)
    assert not policy.is_retryable(error)
    assert policy.next_delay(1, error, 0.0, fixed(0.5)) is None


@pytest.mark.parametrize(
    "error",
    [
        bm.StepTimeout("slow"),
        bm.RateLimited(),
        bm.ProviderUnavailable("503"),
        ConnectionResetError("reset"),
        TimeoutError("socket"),
    ],
)
def test_default_retryable_errors(error: BaseException) -> None:
    policy = Retry(attempts=5, initial=1.0, jitter=False)
    assert policy.is_retryable(error)
    assert policy.next_delay(1, error, 0.0) == 1.0


def test_users_retryable_subclass_is_retried() -> None:
    class Flaky(bm.RetryableError):
        pass

    assert Retry().is_retryable(Flaky("try again"))


@pytest.mark.parametrize(
    "error", [bm.Cancelled(), asyncio.CancelledError(), KeyboardInterrupt(), SystemExit(1)]
)
def test_base_exceptions_are_never_retried_even_by_a_catch_all_predicate(error: BaseException) -> None:
    policy = Retry(attempts=5, retry_on=lambda e: True)
    assert not policy.is_retryable(error)
    assert policy.next_delay(1, error, 0.0, fixed(0.5)) is None


# --- Retry-After and the total budget ---------------------------------------------------


def test_retry_after_is_honoured_when_longer_than_backoff() -> None:
    policy = Retry(attempts=3, initial=0.1, max_delay=1.0)
    assert policy.next_delay(1, bm.RateLimited(retry_after=7.5), 0.0, fixed(0.5)) == 7.5


def test_retry_after_does_not_shorten_a_longer_backoff() -> None:
    policy = Retry(attempts=3, initial=4.0, jitter=False)
    assert policy.next_delay(1, bm.RateLimited(retry_after=1.0), 0.0) == 4.0


def test_rate_limited_without_retry_after_uses_backoff() -> None:
    policy = Retry(attempts=3, initial=2.0)
    assert policy.next_delay(1, bm.RateLimited(), 0.0, fixed(0.25)) == 0.5


def test_retry_after_on_other_errors_is_ignored() -> None:
    class Throttled(bm.ProviderUnavailable):
        retry_after = 30.0

    policy = Retry(attempts=3, initial=1.0, jitter=False)
    assert policy.next_delay(1, Throttled("503"), 0.0) == 1.0


def test_total_budget_stops_retries_that_would_overrun_it() -> None:
    policy = Retry(attempts=10, initial=1.0, multiplier=2.0, jitter=False, total=6.0)
    error = bm.ProviderUnavailable("down")
    waited, delays = 0.0, []
    attempt = 1
    while (delay := policy.next_delay(attempt, error, waited)) is not None:
        delays.append(delay)
        waited += delay
        attempt += 1
    assert delays == [1.0, 2.0]  # 1 + 2 + 4 = 7 would exceed 6
    assert waited <= 6.0


def test_total_budget_allows_exactly_the_budget() -> None:
    policy = Retry(attempts=5, initial=2.0, jitter=False, total=3.0)
    assert policy.next_delay(1, bm.StepTimeout("slow"), 1.0) == 2.0


def test_total_budget_counts_retry_after() -> None:
    policy = Retry(attempts=5, initial=0.1, total=10.0)
    assert policy.next_delay(1, bm.RateLimited(retry_after=60.0), 0.0, fixed(0.5)) is None


# --- retry_on ----------------------------------------------------------------------------


def test_default_retry_on_is_transient_errors_only() -> None:
    assert Retry().retry_on == DEFAULT_RETRY_ON
    assert bm.RetryableError in DEFAULT_RETRY_ON


def test_retry_on_tuple_replaces_the_default() -> None:
    policy = Retry(attempts=3, initial=1.0, jitter=False, retry_on=(ValueError,))
    assert policy.next_delay(1, ValueError("flaky parse"), 0.0) == 1.0
    assert policy.next_delay(1, bm.StepTimeout("slow"), 0.0) is None


def test_retry_on_predicate() -> None:
    seen: list[BaseException] = []

    def only_5xx(error: BaseException) -> bool:
        seen.append(error)
        return "5" in str(error)

    policy = Retry(attempts=3, initial=1.0, jitter=False, retry_on=only_5xx)
    assert policy.next_delay(1, RuntimeError("503"), 0.0) == 1.0
    assert policy.next_delay(1, RuntimeError("404"), 0.0) is None
    assert [str(e) for e in seen] == ["503", "404"]


def test_empty_retry_on_retries_nothing() -> None:
    assert not Retry(retry_on=()).is_retryable(bm.StepTimeout("slow"))


def test_retry_on_a_bare_exception_class_is_not_a_catch_all() -> None:
    policy = Retry(retry_on=ValueError)  # type: ignore[arg-type]
    assert not policy.is_retryable(KeyError("not a ValueError"))


# --- validation and value semantics ------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"attempts": -3},
        {"initial": -0.1},
        {"max_delay": -1.0},
        {"multiplier": 0.5},
        {"multiplier": 0.0},
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Retry"):
        Retry(**kwargs)  # type: ignore[arg-type]


def test_negative_total_is_rejected() -> None:
    with pytest.raises(ValueError, match="Retry"):
        Retry(total=-1.0)


def test_zero_delays_are_allowed() -> None:
    policy = Retry(attempts=3, initial=0.0, max_delay=0.0)
    assert policy.next_delay(1, bm.StepTimeout("slow"), 0.0, fixed(0.9)) == 0.0


def test_retry_is_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        Retry(3)  # type: ignore[misc]
    policy = Retry()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.attempts = 5  # type: ignore[misc]


def test_defaults() -> None:
    policy = Retry()
    assert (policy.attempts, policy.initial, policy.multiplier, policy.max_delay, policy.jitter) == (
        3,
        0.2,
        2.0,
        10.0,
        True,
    )
    assert policy.total is None
