"""Errors across the Temporal boundary, both ways.

An activity turns a bandmaster (or user) exception into an ``ApplicationError`` carrying the
journal's error record, marked non-retryable when the step's ``bm.Retry`` would not retry it.
The workflow turns the ``ActivityError`` Temporal hands back into the original exception type,
so workflow code catches ``bm.RateLimited`` or ``bm.RetriesExhausted`` exactly as on the
embedded engine.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Any

from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, RetryState
from temporalio.exceptions import TimeoutError as ActivityTimeout

from bandmaster.engine.backend_kit import Redactor, error_record, rebuild_error, redact_error_record
from bandmaster.errors import BandmasterError, RateLimited, RetriesExhausted, RetryableError, StepTimeout
from bandmaster.policies import DEFAULT_RETRY_ON, Retry


def to_application_error(
    exc: BaseException,
    *,
    retryable: bool,
    meta: dict[str, Any] | None = None,
    redactor: Redactor | None = None,
) -> ApplicationError:
    """What an activity raises for ``exc``: the journal record travels in the details, followed
    by the step's meta when there is one (a model call's guard log). With a ``redactor``, the
    message, record and meta are redacted (raise it ``from None`` then: Temporal would record
    the cause's own message too)."""
    delay = None
    if isinstance(exc, RateLimited) and exc.retry_after:
        delay = timedelta(seconds=exc.retry_after)  # honour Retry-After, as the embedded backoff does
    record = error_record(exc)
    message = str(exc)
    if redactor is not None:
        record = redact_error_record(redactor, record)
        message = str(record["message"])
        meta = redactor.redact(meta) if meta else meta
    return ApplicationError(
        message,
        record,
        *([meta] if meta else []),
        type=type(exc).__name__,
        non_retryable=not retryable,
        next_retry_delay=delay,
    )


def run_failure(exc: BaseException, record: dict[str, Any] | None = None) -> ApplicationError:
    """What the generic workflow raises when the user's workflow function raised ``exc``: a
    non-retryable failure of the run (not a workflow-task failure Temporal would retry).
    ``record``: the error record to carry instead of ``exc``'s own (a redacted one)."""
    record = record if record is not None else error_record(exc)
    return ApplicationError(str(record["message"]), record, type=type(exc).__name__, non_retryable=True)


def meta_of(exc: BaseException) -> dict[str, Any] | None:
    """The step meta an ``ApplicationError`` carries after its error record, if any."""
    if isinstance(exc, ApplicationError) and len(exc.details) > 1 and isinstance(exc.details[1], dict):
        return exc.details[1]
    return None


def record_of(exc: BaseException) -> dict[str, Any] | None:
    """The journal error record an ``ApplicationError`` carries, if it carries one."""
    if isinstance(exc, ApplicationError) and exc.details and isinstance(exc.details[0], dict):
        return exc.details[0]
    return None


CRASH_RETRIES = 3
"""Attempts Temporal may add to a step's own ``Retry.attempts`` for attempts lost with their
worker (heartbeat or start-to-close timeouts): the embedded engine re-runs an unrecorded step
after a crash whatever its retry policy, and so does this backend. The step's own errors still
stop at ``attempts``: the activity marks the last attempt's error non-retryable."""


def exhausted(name: str, attempts: int, error: BaseException) -> RetriesExhausted:
    """``RetriesExhausted`` for a step whose last attempt failed with ``error``; Temporal keeps
    only the last attempt's failure (earlier ones are in the history)."""
    result = RetriesExhausted(name, [error])
    result.args = (
        f"step {name!r} failed after {attempts} attempts; last error: {type(error).__name__}: {error}",
    )
    return result


def step_error(exc: ActivityError, *, name: str, attempts: int, timeout: float | None) -> BaseException:
    """The exception the workflow sees when the activity of step ``name`` finally failed."""
    cause = exc.cause
    if isinstance(cause, CancelledError):
        return cause
    if isinstance(cause, ActivityTimeout):
        # Only the server's backstop timeouts land here (a dead or stuck worker): the step's
        # own timeout is raised inside the activity as StepTimeout.
        error: BaseException = StepTimeout(f"{name!r} timed out after {timeout}s")
        if exc.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED and attempts > 1:
            return exhausted(name, attempts, error)
        return error
    record = record_of(cause) if cause is not None else None
    return rebuild_error(record) if record else rebuild_error({"type": "", "message": str(cause or exc)})


@lru_cache(maxsize=1)
def _non_retryable_types() -> tuple[str, ...]:
    """bandmaster's own errors that the default retry policy never retries."""
    names: set[str] = set()
    pending: list[type[BaseException]] = [BandmasterError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if not issubclass(cls, RetryableError | ConnectionError | TimeoutError):
            names.add(cls.__name__)
    return tuple(sorted(names))


@lru_cache(maxsize=256)  # one per step policy; Retry is frozen, and Temporal only reads this
def retry_policy(retry: Retry) -> RetryPolicy:
    """bandmaster's ``Retry`` as Temporal's: same attempts and backoff curve (Temporal adds no
    jitter). The activity also marks each error retryable or not with the step's own
    ``retry_on``, so predicates keep working; the type list covers the default."""
    initial = max(retry.initial, 0.001)
    return RetryPolicy(
        maximum_attempts=retry.attempts + CRASH_RETRIES,
        initial_interval=timedelta(seconds=initial),
        backoff_coefficient=retry.multiplier,
        maximum_interval=timedelta(seconds=max(retry.max_delay, initial)),
        non_retryable_error_types=list(_non_retryable_types())
        if retry.retry_on == DEFAULT_RETRY_ON
        else None,
    )
