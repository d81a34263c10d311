"""The one exception tree of bandmaster.

Split by who must act:

* ``UsageError`` and its children are developer mistakes (bad definitions, bad input,
  non-deterministic workflow code). Fix the code or the call; retrying will not help.
* ``StepError`` and its children are runtime failures of a step. Some are retryable
  (``RetryableError``: timeouts, rate limits, unavailable providers).
* ``RunFailed`` / ``RunCancelled`` are what a client sees when it asks for a finished run.
* ``Cancelled`` and the engine's suspension signal are ``BaseException`` so that a workflow's
  ``except Exception`` cannot swallow them.
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

__all__ = [
    "AlreadyDecided",
    "ApprovalNotFound",
    "AuthenticationFailed",
    "BackendUnavailable",
    "BandmasterError",
    "BudgetExceeded",
    "Cancelled",
    "CircuitOpen",
    "FallbacksExhausted",
    "GuardViolation",
    "IdempotencyConflict",
    "InvalidArchive",
    "InvalidInput",
    "InvalidRequest",
    "InvalidSignature",
    "JournalCorrupt",
    "JournalError",
    "JournalReadOnly",
    "MalformedResponse",
    "NoModelRegistry",
    "NonDeterminismError",
    "NotAJournal",
    "NotAuthorized",
    "NotSupported",
    "OutputValidationFailed",
    "PayloadTooLarge",
    "ProviderUnavailable",
    "RateLimited",
    "RedactionError",
    "RegistryError",
    "ReplayDivergence",
    "ReplayError",
    "ReplayTypeMismatch",
    "RetriesExhausted",
    "RetryableError",
    "RevealDenied",
    "RunCancelled",
    "RunFailed",
    "RunNotFound",
    "StepError",
    "StepFailed",
    "StepTimeout",
    "StoreError",
    "TargetUnreachable",
    "TokenNotFound",
    "UnknownModel",
    "UnsafeBind",
    "UsageError",
    "WaitTimeout",
    "WorkflowNotFound",
]


class BandmasterError(Exception):
    """Base class of every error bandmaster raises."""


# --- developer mistakes -------------------------------------------------------------------


class UsageError(BandmasterError):
    """The code or the call is wrong; retrying will not help."""


class InvalidInput(UsageError, ValueError):
    """A value cannot be journaled (not JSON/pydantic serialisable) or fails validation."""


class PayloadTooLarge(InvalidInput):
    """A serialised value is larger than the engine's ``max_payload``."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(
            f"{what} is {size:,} bytes, over the {limit:,}-byte payload limit; store large "
            f"data elsewhere (a file or object store) and pass a reference, or raise the "
            f"limit with Engine(max_payload=...)"
        )
        self.what, self.size, self.limit = what, size, limit


class InvalidArchive(InvalidInput):
    """An export or archive file is corrupt, truncated or of an unknown format version; the
    message names the file and line. Nothing of that import was written."""


class RedactionError(InvalidInput):
    """A value cannot be redacted for the journal, or no longer fits its declared type once
    redacted (an ``EmailStr`` field holding ``<EMAIL_ADDRESS>``); the message says which."""


class TargetUnreachable(UsageError):
    """A fit's accuracy target or budget is out of reach on the training examples; ``best`` is
    the closest reachable point (an object with ``accuracy`` and ``cost``)."""

    def __init__(self, message: str, *, best: Any = None) -> None:
        super().__init__(message)
        self.best = best


class NotSupported(UsageError):
    """The backend in use lacks this capability (``backend.capabilities``); the message says
    why and what to use instead."""


class NoModelRegistry(UsageError, LookupError):
    """The engine was given no model registry, so it has no aliases to show or switch."""


class IdempotencyConflict(UsageError):
    """A run id (an Idempotency-Key) was already used for a different request: another
    workflow or another input. Use a new id for a new run."""


class WorkflowNotFound(UsageError, LookupError):
    """No workflow of that name is registered with the engine or worker."""


class UnknownModel(UsageError, LookupError):
    """No model or alias of that name is in the registry."""


class RegistryError(UsageError):
    """``models.yaml`` (or a registry change) is invalid; the message names file, key and reason."""


class RunNotFound(UsageError, LookupError):
    """No run with that id exists in the journal."""


class ScheduleNotFound(UsageError, LookupError):
    """No schedule of that name has been declared by a worker (``bm.schedule``)."""


class NonDeterminismError(UsageError):
    """Replay found workflow code calling a different operation than the journal recorded."""

    def __init__(self, run_id: str, seq: int, recorded: str, called: str) -> None:
        super().__init__(
            f"run {run_id}: the journal has {recorded!r} at seq {seq} but the workflow code "
            f"now calls {called!r} there. Workflow code must be deterministic between steps "
            f"(use bm.now(), bm.uuid(), bm.random()); deploy changed workflows under a new "
            f"version, or let old runs finish first."
        )
        self.run_id, self.seq, self.recorded, self.called = run_id, seq, recorded, called


class ReplayTypeMismatch(NonDeterminismError):
    """Replay found a recorded value that no longer fits the type the code declares now (a
    step's return type changed between the crash and the resume)."""

    def __init__(self, run_id: str, seq: int, what: str, expected: str, detail: str) -> None:
        UsageError.__init__(
            self,
            f"run {run_id}: the journal's {what} at seq {seq} does not fit its type {expected} in "
            f"the code now ({detail}). The type changed since the run recorded it: deploy the "
            f"change under a new workflow version, or let old runs finish first.",
        )
        self.run_id, self.seq, self.recorded, self.called = run_id, seq, what, expected


class ReplayError(UsageError):
    """A replay was asked for wrongly: no journal at that path, a bad run query, a golden
    labels file that cannot be read. The message says which input and how to fix it."""


class ReplayDivergence(BandmasterError):
    """During ``bandmaster replay`` the current workflow code called an operation the recorded
    run never made (it took another branch), so no recorded answer exists for it. The replay
    reports the run as diverged at ``kind name`` instead of calling anything live."""

    def __init__(self, run_id: str, seq: int, kind: str, name: str) -> None:
        super().__init__(
            f"run {run_id}: the workflow now calls {kind} {name!r} (seq {seq}), which the recorded "
            f"run never called, so there is no recorded answer for it; the code took another branch"
        )
        self.run_id, self.seq, self.kind, self.name = run_id, seq, kind, name


# --- runtime failures of steps ----------------------------------------------------------


class StepError(BandmasterError):
    """A step failed."""


class RetryableError(StepError):
    """A failure that a retry may cure. Subclass it to make your own errors retryable."""


class StepTimeout(RetryableError, TimeoutError):
    """An attempt of a step ran past its timeout."""


class RateLimited(RetryableError):
    """The provider asked us to slow down; ``retry_after`` (seconds) is honoured by retries."""

    def __init__(self, message: str = "rate limited", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(RetryableError):
    """The provider is down or unreachable (5xx, connection error)."""


class CircuitOpen(ProviderUnavailable):
    """The model's circuit breaker is open: calls skip it until the reset timeout passes."""


class BudgetExceeded(StepError):
    """A model call would take a run or a tenant over its budget (``on_exceed: fail``). It is
    not retried and does not fall back: the money is the limit, not the model. ``scope`` is
    ``"run:<run id>"`` or ``"tenant:<name>"``; amounts are USD. ``approve_timeout`` is set (in
    seconds) when the budget's ``on_exceed: approve`` lets a person decide."""

    def __init__(self, message: str, *, scope: str, limit: float, spent: float, estimate: float) -> None:
        super().__init__(message)
        self.scope, self.limit, self.spent, self.estimate = scope, limit, spent, estimate
        self.approve_timeout: float | None = None


class FallbacksExhausted(StepError):
    """The primary model and every fallback failed; ``errors`` maps each model to its error."""

    def __init__(self, target: str, errors: dict[str, BaseException]) -> None:
        detail = "; ".join(f"{name}: {type(e).__name__}: {e}" for name, e in errors.items())
        super().__init__(f"{target}: every model in the fallback chain failed ({detail})")
        self.target, self.errors = target, errors


class InvalidRequest(StepError):
    """The provider rejected the request as invalid (400/422); not retried."""


class AuthenticationFailed(StepError):
    """The provider rejected the credentials (401/403); not retried."""


class MalformedResponse(StepError):
    """The provider answered with something that cannot be parsed. ``text`` is the raw
    answer when there was one (a guard re-asking the model shows it back)."""

    def __init__(self, message: str = "", *, text: str | None = None) -> None:
        super().__init__(message)
        self.text = text


class OutputValidationFailed(MalformedResponse):
    """A model's answers failed output validation (a ``bm.JsonSchema`` guard) on every
    attempt, re-asks included; ``model``, ``attempts`` and ``last_error`` say which, how often
    and why."""

    def __init__(self, model: str, attempts: int, last_error: str, *, text: str | None = None) -> None:
        super().__init__(
            f"model {model!r} gave no valid answer in {attempts} attempt(s); last validation "
            f"error: {last_error}. Raise the guard's reask=, add a fallback model, or make the "
            f"prompt state the expected format",
            text=text,
        )
        self.model, self.attempts, self.last_error = model, attempts, last_error


class GuardViolation(StepError):
    """A guard rule rejected a model call's input or output. ``rule`` names the rule (e.g.
    ``banned_topics``), ``direction`` is ``"input"`` or ``"output"``, and ``start``/``end``/
    ``span_text`` locate the offending text (``span``), when the rule can point at some;
    offsets are into ``ModelRequest.text()`` (input) or ``ModelResponse.text`` (output).
    ``fallback`` is true when the rule routes the call to its fallback chain instead of
    failing it."""

    def __init__(
        self,
        rule: str,
        direction: str,
        detail: str,
        *,
        start: int | None = None,
        end: int | None = None,
        span_text: str | None = None,
        model: str | None = None,
        fallback: bool = False,
    ) -> None:
        where = f" at {start}..{end} ({span_text!r})" if start is not None else ""
        who = f" of model {model!r}" if model else ""
        super().__init__(f"guard {rule!r} rejected the {direction}{who}{where}: {detail}")
        self.rule, self.direction, self.detail = rule, direction, detail
        self.start, self.end, self.span_text = start, end, span_text
        self.model, self.fallback = model, fallback

    @property
    def span(self) -> Span | None:
        """``Span(start, end, text)`` of the offending text, or ``None``."""
        if self.start is None or self.end is None:
            return None
        return Span(self.start, self.end, self.span_text or "")


class Span(NamedTuple):
    """Where a guard rule found offending text: ``text[start:end]``."""

    start: int
    end: int
    text: str


class RetriesExhausted(StepError):
    """Every attempt of a step failed with a retryable error; ``errors`` holds them in order."""

    def __init__(self, step: str, errors: list[BaseException]) -> None:
        last = errors[-1] if errors else None
        super().__init__(
            f"step {step!r} failed after {len(errors)} attempts; last error: {type(last).__name__}: {last}"
        )
        self.step, self.errors = step, errors


class StepFailed(StepError):
    """A recorded step failure whose original exception type cannot be rebuilt on replay."""

    def __init__(self, message: str, *, error_type: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type


class WaitTimeout(BandmasterError, TimeoutError):
    """``bm.wait_for`` timed out and no default was given."""


class StoreError(BandmasterError):
    """The journal could not be read or written (disk full, database locked too long)."""


class JournalError(StoreError):
    """The journal file at ``path`` cannot be used as it is (full, locked, read-only, damaged);
    the message gives the cause and the fix. Nothing journaled before it is lost."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


class JournalReadOnly(JournalError):
    """A write to a journal on read-only media or without write permission; read commands
    (``runs list/show``, ``stats``, ``export``, ``doctor``) still work on it."""


class JournalCorrupt(JournalError):
    """The journal fails SQLite's integrity check or a damaged page was read;
    ``bandmaster doctor`` says what can be saved."""


class NotAJournal(JournalError, UsageError):
    """The path given as the journal is a directory, not an SQLite file, or another
    application's database."""


# --- approvals (bm.approval): what a decider sees -------------------------------------


class ApprovalNotFound(UsageError, LookupError):
    """No approval of that run (and name) exists in the journal."""


class AlreadyDecided(BandmasterError):
    """The approval was decided before this decision arrived (by a person, or by its timed
    default); nothing was changed. ``action``, ``by`` (``None`` for the default), ``at`` and
    ``timed_out`` describe the decision that stands."""

    def __init__(
        self, run_id: str, name: str, *, action: str | None, by: str | None, at: str, timed_out: bool
    ) -> None:
        who = f"by {by!r}" if by is not None else "by its timed default"
        super().__init__(
            f"approval {name!r} of run {run_id} was already decided: {action!r} {who} at {at}; "
            f"your decision was not applied (see `bandmaster approvals list --status decided`)"
        )
        self.run_id, self.name, self.action, self.by, self.at = run_id, name, action, by, at
        self.timed_out = timed_out


class NotAuthorized(BandmasterError, PermissionError):
    """The decider is not in the approval's ``approvers`` allow-list; the attempt was audited
    and nothing else changed."""

    def __init__(self, run_id: str, name: str, who: str, approvers: list[str]) -> None:
        super().__init__(
            f"{who!r} may not decide approval {name!r} of run {run_id}: the workflow allows only "
            f"{', '.join(repr(a) for a in approvers) or 'nobody'} (bm.approval(..., approvers=[...]))"
        )
        self.run_id, self.name, self.who, self.approvers = run_id, name, who, approvers


class InvalidSignature(BandmasterError, ValueError):
    """A webhook request's signature is missing, malformed, wrong, or outside the replay window."""


class RevealDenied(BandmasterError, PermissionError):
    """A token vault refused to reveal PII: the reviewer is not on its allow-list or gave the
    wrong credential. Every refusal is audited like a reveal."""


# --- server access control (bandmaster server, bandmaster tokens) -------------------------


class TokenNotFound(UsageError, LookupError):
    """No API token with that id (or name) exists in the journal; ``bandmaster tokens list``
    shows them."""


class UnsafeBind(UsageError):
    """``bandmaster server`` was asked to listen beyond 127.0.0.1 while no API token exists,
    which would expose the journal to anyone on the network; create a token first."""


# --- what a client sees for a finished run ----------------------------------------------


class RunFailed(BandmasterError):
    """The run ended with an error; ``error_type``, ``message`` and ``traceback`` describe it."""

    def __init__(self, run_id: str, error: dict[str, Any]) -> None:
        self.run_id = run_id
        self.error_type: str = error.get("type", "")
        self.message: str = error.get("message", "")
        self.traceback: str = error.get("traceback", "")
        super().__init__(f"run {run_id} failed: {self.error_type}: {self.message}")


class RunCancelled(BandmasterError):
    """The run was cancelled before it finished."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} was cancelled")
        self.run_id = run_id


class BackendUnavailable(BandmasterError):
    """The execution backend (a Temporal cluster and its workers) did not answer in time; the
    message names what to check. Nothing was changed."""


# --- control flow (not errors a workflow should catch) ----------------------------------


class Cancelled(asyncio.CancelledError):
    """Raised inside a workflow whose run is being cancelled. A ``BaseException``: clean up
    in ``finally`` and let it propagate."""
