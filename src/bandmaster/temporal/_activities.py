"""The activities every bandmaster worker registers: one runs any ``@bm.step`` (found by its
module and qualified name, or a graph's step by its hosted reference), one runs
``bm.call_model`` with the worker's registry (or a hosted graph's own) and the call's guards,
rebuilt from their data."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, get_type_hints

from temporalio import activity

from bandmaster.engine import terms_scope
from bandmaster.engine.backend_kit import Codec, OpRecord, Redactor, Step, codec_for, redact_value, step_scope
from bandmaster.errors import RedactionError, StepTimeout, UsageError
from bandmaster.temporal._failures import exhausted, to_application_error
from bandmaster.temporal._hosting import GRAPH_REF, hosted
from bandmaster.temporal._model_sync import ModelSync
from bandmaster.temporal._policy_codec import breaker_from_data, retry_from_data
from bandmaster.temporal._redaction import activity_redactor
from bandmaster.temporal._spend import TemporalLedger
from bandmaster.temporal._terms import terms_from_data

STEP_ACTIVITY = "bandmaster.step"
MODEL_ACTIVITY = "bandmaster.call_model"


@dataclass
class StepCall:
    """One step call, as the workflow schedules it: JSON values only."""

    ref: str  # "package.module:qualname" of the @bm.step object
    seq: int
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    redact: bool = False  # the run has a redactor: the activity redacts what it returns
    terms: dict[str, Any] | None = None  # the run's terms (temporal/_terms.py); None: the defaults


@dataclass
class ModelCall:
    target: str
    seq: int
    input: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    registry: str | None = None  # a hosted graph's own registry ("graph:<workflow>"); else the worker's
    guards: list[dict[str, Any]] | None = None  # guard.portable data, rebuilt here
    redact: bool = False  # the run has a redactor: the activity redacts what it returns
    terms: dict[str, Any] | None = None  # the run's terms (temporal/_terms.py); None: the defaults


def response_of(value: Any) -> Any:
    """The response in what the model activity returned (``{"response", "meta", "attempts"}``)."""
    if isinstance(value, dict) and set(value) == {"response", "meta", "attempts"}:
        return value["response"]
    return value


def step_ref(step: Step[..., Any]) -> str:
    """Where an activity worker finds ``step``; steps must be module-level names."""
    qualname = step.fn.__qualname__
    if "<locals>" in qualname:
        raise UsageError(
            f"step {step.name!r} is defined inside a function; on the Temporal backend steps must be "
            "module-level, so that worker processes can import them"
        )
    return f"{step.fn.__module__}:{qualname}"


def resolve_step(ref: str, task_queue: str = "") -> Step[..., Any]:
    if ref.startswith(GRAPH_REF):  # a step node of a graph this worker hosts
        options = hosted(task_queue)
        step = options.steps.get(ref) if options is not None else None
        if step is None:
            raise _not_hosted(f"{ref} is a step of a graph", task_queue)
        return step
    module_name, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not isinstance(obj, Step):
        raise UsageError(
            f"{ref} is not a @bm.step in this worker's code; deploy the same code to every worker"
        )
    return obj


@lru_cache(maxsize=1024)
def _parameters(step: Step[..., Any]) -> tuple[inspect.Signature, dict[str, Any]]:
    return inspect.signature(step.fn), get_type_hints(step.fn)


def _bind(step: Step[..., Any], args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Validate JSON arguments into the step's parameter annotations (models come back as models)."""
    signature, hints = _parameters(step)
    bound = signature.bind(*args, **kwargs)
    for name, value in bound.arguments.items():
        hint = hints.get(name, Any)
        if signature.parameters[name].kind is inspect.Parameter.VAR_POSITIONAL:
            bound.arguments[name] = tuple(
                codec_for(hint).validate(v, what=f"argument {name!r} of step {step.name!r}") for v in value
            )
        elif signature.parameters[name].kind is not inspect.Parameter.VAR_KEYWORD:
            bound.arguments[name] = codec_for(hint).validate(
                value, what=f"argument {name!r} of step {step.name!r}"
            )
    return list(bound.args), dict(bound.kwargs)


def _attempt_failed(
    step: Step[..., Any], exc: Exception, attempt: int, redactor: Redactor | None
) -> BaseException:
    """What attempt ``attempt`` of ``step`` raises to Temporal. Temporal's attempt budget also
    covers attempts lost with their worker (failures.CRASH_RETRIES), so the step's own budget is
    kept here: its last attempt's error is final."""
    retryable = step.retry.is_retryable(exc)
    if not retryable or attempt < step.retry.attempts:
        return to_application_error(exc, retryable=retryable, redactor=redactor)
    if step.retry.attempts > 1:
        final = exhausted(step.name, step.retry.attempts, exc)
        return to_application_error(final, retryable=False, redactor=redactor)
    return to_application_error(exc, retryable=False, redactor=redactor)


def _redacted(redactor: Redactor, codec: Codec, text: str, what: str) -> str:
    """``text`` (JSON) redacted, still valid for ``codec``; else a final ``RedactionError``,
    as the embedded engine records it."""
    try:
        return redact_value(redactor, codec, text, what=what)[1]
    except RedactionError as exc:
        raise to_application_error(exc, retryable=False, redactor=redactor) from None


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat while the body runs, when the workflow asked for heartbeats (not for local
    activities): a dead worker is then noticed within the heartbeat timeout."""
    info = activity.info()
    timeout = info.heartbeat_timeout
    if info.is_local or not timeout:
        yield
        return

    async def beat() -> None:
        while True:
            await asyncio.sleep(timeout.total_seconds() / 3)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


class Activities:
    """Activities bound to one worker's model registry."""

    def __init__(
        self,
        registry: object | None = None,
        models: ModelSync | None = None,
        spend: TemporalLedger | None = None,
    ) -> None:
        self.registry = registry
        self.models = models  # keeps the registry's overrides and breakers shared (model_sync.py)
        self.spend = spend  # budgets' spend, shared through the task queue's spend workflow

    def _spending(self) -> contextlib.AbstractContextManager[None]:
        """Model calls of this activity hold money in the task queue's spend workflow."""
        if self.spend is None:
            return contextlib.nullcontext()
        from bandmaster.calls.hub import ledger_scope  # the model layer: imported by serving()

        return ledger_scope(self.spend)

    @activity.defn(name=STEP_ACTIVITY)
    async def run_step(self, call: StepCall) -> Any:
        info = activity.info()
        step = resolve_step(call.ref, info.task_queue)
        redactor = activity_redactor(call.redact)
        with (
            step_scope(info.workflow_id or "", call.seq, step.name, info.attempt),
            terms_scope(terms_from_data(call.terms)),
            self._spending(),
        ):
            args, kwargs = _bind(step, call.args, call.kwargs)
            try:
                async with heartbeating():
                    value = await self._attempt(step, args, kwargs, info.attempt)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redacting: no cause, or Temporal would record the raw message as the cause's.
                raise _attempt_failed(step, exc, info.attempt, redactor) from (None if redactor else exc)
            what = f"output of step {step.name!r}"
            text = step.codec.dump(value, what=what)
            if redactor is not None:
                text = _redacted(redactor, step.codec, text, what)
            return json.loads(text)

    @staticmethod
    async def _attempt(step: Step[..., Any], args: list[Any], kwargs: dict[str, Any], attempt: int) -> Any:
        # to_thread copies the context, so a sync step sees current_step() too.
        call = step.fn(*args, **kwargs) if step.is_async else asyncio.to_thread(step.fn, *args, **kwargs)
        if step.timeout is None:
            return await call
        try:
            async with asyncio.timeout(step.timeout) as scope:
                return await call
        except TimeoutError as exc:
            if scope.expired():
                raise StepTimeout(f"{step.name!r} attempt {attempt} timed out after {step.timeout}s") from exc
            raise

    @activity.defn(name=MODEL_ACTIVITY)
    async def call_model(self, call: ModelCall) -> Any:
        # Imported here: the model layer (and its SDKs) only in processes that call models.
        from bandmaster.calls import call_model_recorded
        from bandmaster.guard import guards_from_data
        from bandmaster.models import Registry

        info = activity.info()
        registry: object = self.registry
        redactor = activity_redactor(call.redact)
        record = OpRecord()
        with (
            step_scope(info.workflow_id or "", call.seq, call.target, info.attempt),
            terms_scope(terms_from_data(call.terms)),
            self._spending(),
        ):
            try:
                if call.registry is not None:
                    registry = _hosted_registry(call.registry, info.task_queue)
                guards = guards_from_data(call.guards) if call.guards else ()
                options = dict(call.options)
                if options.get("retry") is not None:
                    options["retry"] = retry_from_data(options["retry"])
                if options.get("breaker") is not None:
                    options["breaker"] = breaker_from_data(options["breaker"])
                if self.models is not None and call.registry is None:
                    await self.models.ready()  # a restarted worker: switches first
                async with heartbeating():
                    response = await call_model_recorded(
                        call.target,
                        call.input,
                        record,
                        registry=registry if isinstance(registry, Registry) else None,
                        guard=guards,
                        **options,
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # call_model retried and fell back already (bandmaster owns model-call policy).
                failure = to_application_error(exc, retryable=False, meta=_meta(record), redactor=redactor)
                raise failure from (None if redactor else exc)
            # What the embedded journal keeps about the call (alias, version, guard log, ...)
            # travels with the response, so describe() shows it.
            answer: Any = response.model_dump(mode="json")
            meta = _meta(record)
            if redactor is not None:  # the answer, and the request (prompt) in the meta
                what = f"response of model {call.target!r}"
                answer = json.loads(_redacted(redactor, _response_codec(), json.dumps(answer), what))
                meta = redactor.redact(meta)
            return {"response": answer, "meta": meta, "attempts": max(record.attempts, 1)}


@lru_cache(maxsize=1)
def _response_codec() -> Codec:
    from bandmaster.models import ModelResponse

    return codec_for(ModelResponse)


def _meta(record: OpRecord) -> dict[str, Any]:
    text = record.meta_json()
    return json.loads(text) if text else {}


def _hosted_registry(ref: str, task_queue: str) -> object:
    options = hosted(task_queue)
    registry = options.registries.get(ref) if options is not None else None
    if registry is None:
        raise _not_hosted(f"the registry of {ref}", task_queue)
    return registry


def _not_hosted(what: str, task_queue: str) -> UsageError:
    return UsageError(
        f"{what} this worker does not host (task queue {task_queue!r}); every worker of a task "
        "queue must host the same workflows"
    )
