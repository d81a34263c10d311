"""The one Temporal workflow that runs every bandmaster workflow.

It is a dynamic workflow: its Temporal type is the bandmaster workflow's name, looked up in
what this worker hosts. While the user's function runs, ``current_backend`` points at
``TemporalOperations``, which maps each journaled operation onto Temporal: steps and model
calls become activities, ``bm.sleep`` a durable timer, ``bm.wait_for`` a signal buffer plus
``workflow.wait_condition``, ``bm.now/uuid/random`` Temporal's deterministic sources. Temporal's
history is the journal; replay after a crash is Temporal's.

Operations are numbered at call time, as on the embedded engine; the number, kind and name go
into each activity id and timer summary so ``describe`` rebuilds the same timeline.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn
from uuid import UUID

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from bandmaster.engine.backend_kit import (
    ANY,
    MISSING,
    Codec,
    Step,
    codec_for,
    error_record,
    redactor_for,
    use_backend,
)
from bandmaster.errors import InvalidInput, UsageError, WaitTimeout, WorkflowNotFound
from bandmaster.guard import guards_as_data
from bandmaster.models import ModelResponse
from bandmaster.temporal._activities import (
    MODEL_ACTIVITY,
    STEP_ACTIVITY,
    ModelCall,
    StepCall,
    response_of,
    step_ref,
)
from bandmaster.temporal._approval import DECIDE_UPDATE, ApprovalBook, wait_for_approval
from bandmaster.temporal._failures import CRASH_RETRIES, retry_policy, run_failure, step_error
from bandmaster.temporal._hosting import Hosted, hosted
from bandmaster.temporal._policy_codec import breaker_as_data, retry_as_data
from bandmaster.temporal._redaction import redacted
from bandmaster.temporal._terms import TERMS_MEMO
from bandmaster.temporal._versions import VERSION_MEMO

MEMO_PREFIX = "bm.wait."
"""Waits are recorded as memo upserts (one history event at the start, one at the end), and so
are a router's decisions (one event, with ``kind`` ``route``)."""

_RESPONSE = codec_for(ModelResponse)
TIMEOUT_GRACE = 1.0


def op_id(seq: int, kind: str, name: str) -> str:
    return f"{seq}|{kind}|{name}"


class TemporalOperations:
    """bandmaster's journaled operations for one Temporal workflow execution."""

    def __init__(
        self, options: Hosted, *, redacting: bool = False, terms: dict[str, Any] | None = None
    ) -> None:
        self.options = options
        self.redacting = redacting  # the run has a redactor (it runs in activities, never here)
        self.terms = terms  # the run's terms (its memo), handed to every activity
        self.seq = 0
        self.signals: dict[str, deque[Any]] = {}
        self.approvals = ApprovalBook()  # decided through BandmasterWorkflow's update

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    # --- steps and model calls: activities ---------------------------------------------------

    def step(self, step: Step[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        seq = self._next()  # now, at call time: gather() numbers by call order
        ref = self.options.ref_of(step) or step_ref(step)  # a graph's step: by its hosted reference
        call = StepCall(
            ref,
            seq,
            ANY.to_jsonable(list(args)),
            ANY.to_jsonable(kwargs),
            redact=self.redacting,
            terms=self.terms,
        )
        return self._step(seq, step, call)

    async def _step(self, seq: int, step: Step[..., Any], call: StepCall) -> Any:
        # The step's own timeout fires inside the activity (StepTimeout, one attempt); the
        # server's start-to-close, a little later, is the backstop for a worker that died.
        timeout = step.timeout + TIMEOUT_GRACE if step.timeout else self.options.default_timeout
        value = await self._activity(
            STEP_ACTIVITY,
            call,
            op_id(seq, "step", step.name),
            timeout,
            retry_policy(step.retry),
            local=step.local or self.options.local_activities,
            attempts=step.retry.attempts,
        )
        return step.codec.validate(value, what=f"output of step {step.name!r}")

    def call_model(self, target: str, input: Any, options: dict[str, Any]) -> Any:
        seq = self._next()
        registry = options.get("registry")
        registry_ref = self.options.ref_of(registry) if registry is not None else None
        if registry is not None and registry_ref is None:
            raise UsageError(
                f"call_model({target!r}, registry=...): on the Temporal backend the call runs in a worker "
                "process; give the worker the registry (TemporalEngine(registry=...) or --models) and "
                "name the model or alias (a graph's own registry works: every worker hosts the graph)"
            )
        guards = options.get("guard")
        ignored = ("retry", "breaker", "registry", "guard")
        plain = {k: v for k, v in options.items() if v is not None and k not in ignored}
        # Policy objects travel as their fields; the activity applies them, as call_model does.
        if options.get("retry") is not None:
            plain["retry"] = retry_as_data(options["retry"], target=target)
        if options.get("breaker") is not None:
            plain["breaker"] = breaker_as_data(options["breaker"])
        call = ModelCall(target, seq, ANY.to_jsonable(input), ANY.to_jsonable(plain), registry=registry_ref)
        call.redact = self.redacting
        call.terms = self.terms
        if guards:
            call.guards = guards_as_data(guards)  # rebuilt in the activity from their config
        timeout = float(plain.get("timeout") or self.options.default_timeout)
        return self._model(seq, target, call, timeout)

    async def _model(self, seq: int, target: str, call: ModelCall, timeout: float) -> ModelResponse:
        # call_model retries and falls back inside the activity, so Temporal tries once; the
        # activity's budget covers its own attempts.
        value = await self._activity(
            MODEL_ACTIVITY,
            call,
            op_id(seq, "model", target),
            max(timeout, self.options.default_timeout),
            RetryPolicy(maximum_attempts=1 + CRASH_RETRIES),  # errors come back non-retryable
            local=self.options.local_activities,
            attempts=1,
        )
        return _RESPONSE.validate(response_of(value), what=f"response of model {target!r}")  # type: ignore[no-any-return]

    async def _activity(
        self,
        activity: str,
        call: Any,
        activity_id: str,
        timeout: float,
        retry: RetryPolicy,
        *,
        local: bool,
        attempts: int,
    ) -> Any:
        start_to_close = timedelta(seconds=timeout)
        # Activities heartbeat (activities.py), so a dead worker is noticed within `heartbeat`
        # seconds rather than at the end of a long timeout. Local activities die with the
        # workflow task instead, and run again when another worker replays the workflow.
        heartbeat = self.options.heartbeat
        heartbeat_timeout = timedelta(seconds=heartbeat) if timeout > heartbeat else None
        try:
            if local:
                return await workflow.execute_local_activity(
                    activity,
                    call,
                    activity_id=activity_id,
                    start_to_close_timeout=start_to_close,
                    retry_policy=retry,
                )
            return await workflow.execute_activity(
                activity,
                call,
                activity_id=activity_id,
                start_to_close_timeout=start_to_close,
                heartbeat_timeout=heartbeat_timeout,
                retry_policy=retry,
            )
        except ActivityError as exc:
            name = activity_id.split("|", 2)[2]
            raise step_error(exc, name=name, attempts=attempts, timeout=timeout) from None

    # --- timers and signals ----------------------------------------------------------------

    async def sleep(self, seconds: float) -> None:
        seq = self._next()
        await workflow.sleep(seconds, summary=op_id(seq, "sleep", "sleep"))

    def on_signal(self, name: str, payload: Any) -> None:
        self.signals.setdefault(name, deque()).append(payload)

    async def wait_for(self, name: str, timeout: float | None, default: Any, codec: Codec) -> Any:
        seq = self._next()
        started = workflow.time()
        deadline = started + timeout if timeout is not None else None
        meta: dict[str, Any] = {"signal": name, "deadline": deadline}
        key = f"{MEMO_PREFIX}{seq}"
        self._record(key, seq, name, "waiting", started, meta=meta)
        queue = self.signals.setdefault(name, deque())
        while not queue:  # two waits on one name (gather) must not take the same signal
            remaining = None if deadline is None else deadline - workflow.time()
            try:
                if remaining is not None and remaining <= 0:
                    raise TimeoutError
                await workflow.wait_condition(
                    lambda: bool(queue), timeout=remaining, timeout_summary=op_id(seq, "wait", name)
                )
            except TimeoutError:
                if default is MISSING:
                    run_id = workflow.info().workflow_id
                    error = WaitTimeout(f"run {run_id}: no signal {name!r} within {timeout}s and no default")
                    self._record(key, seq, name, "failed", started, meta=meta, error=error)
                    raise error from None
                self._record(
                    key,
                    seq,
                    name,
                    "completed",
                    started,
                    meta={**meta, "timed_out": True},
                    output=codec.to_jsonable(default),
                )
                return default
        payload = queue.popleft()
        try:
            value = codec.validate(payload, what=f"payload of signal {name!r}")
        except InvalidInput as exc:
            invalid = InvalidInput(f"run {workflow.info().workflow_id}: {exc}")
            self._record(key, seq, name, "failed", started, meta=meta, error=invalid)
            raise invalid from None
        self._record(key, seq, name, "completed", started, meta=meta, output=payload)
        return value

    @staticmethod
    def _record(
        key: str,
        seq: int,
        name: str,
        status: str,
        started: float,
        *,
        meta: dict[str, Any],
        output: Any = None,
        error: BaseException | None = None,
    ) -> None:
        ended = None if status == "waiting" else workflow.time()
        row: dict[str, Any] = {"seq": seq, "name": name, "status": status, "started": started, "ended": ended}
        row["meta"] = meta
        if output is not None:
            row["output"] = output
        if error is not None:
            row["error"] = {
                "type": f"{type(error).__module__}.{type(error).__qualname__}",
                "message": str(error),
            }
        workflow.upsert_memo({key: row})

    async def approval(
        self,
        name: str,
        payload: Any,
        *,
        timeout: float | None,
        default: str | None,
        notify: Sequence[object],
        approvers: Sequence[str] | None,
    ) -> Any:
        return await wait_for_approval(
            self.approvals,
            self._next(),
            name,
            payload,
            timeout=timeout,
            default=default,
            notify=notify,
            approvers=approvers,
            next_seq=self._next,
            redacting=self.redacting,
            notify_timeout=self.options.default_timeout,
        )

    def record(self, name: str, kind: str, output: Any, meta: dict[str, Any]) -> None:
        seq = self._next()
        now = workflow.time()
        row = {"seq": seq, "name": name, "kind": kind, "status": "completed", "started": now, "ended": now}
        workflow.upsert_memo({f"{MEMO_PREFIX}{seq}": {**row, "output": output, "meta": meta}})

    # --- deterministic sources -------------------------------------------------------------

    def now(self) -> datetime:
        self._next()
        return workflow.now()

    def uuid(self) -> UUID:
        self._next()
        return workflow.uuid4()

    def random(self) -> float:
        self._next()
        return workflow.random().random()

    # --- patches: Temporal's own markers, which take no seq (as embedded ones take none) ----

    def patched(self, patch_id: str) -> bool:
        return workflow.patched(patch_id)

    def deprecate_patch(self, patch_id: str) -> None:
        workflow.deprecate_patch(patch_id)


@workflow.defn(dynamic=True)
class BandmasterWorkflow:
    """Runs the bandmaster workflow named by this execution's workflow type."""

    def __init__(self) -> None:
        self.ops: TemporalOperations | None = None
        self.early: list[tuple[str, Any]] = []

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> Any:
        info = workflow.info()
        options = hosted(info.task_queue)
        wf = options.workflows.get(info.workflow_type) if options is not None else None
        converter = workflow.payload_converter()
        raw = converter.from_payload(args[0].payload) if args else []
        if len(args) > 1:  # signals that reached the execution this run was dispatched from
            carried = converter.from_payload(args[1].payload)
            self.early[:0] = [(str(name), payload) for name, payload in carried]
        if wf is None and options is not None and info.workflow_type in options.forward:
            self._dispatch(options.forward[info.workflow_type], raw)
        if options is None or wf is None:
            known = ", ".join(sorted(options.workflows)) if options is not None else "none"
            raise run_failure(
                WorkflowNotFound(
                    f"no workflow named {info.workflow_type!r} on task queue {info.task_queue!r} "
                    f"(known: {known}); start a worker that hosts it"
                )
            )
        ops = self.ops = TemporalOperations(
            options,
            redacting=redactor_for(wf, options.redact) is not None,
            terms=workflow.memo_value(TERMS_MEMO, None),
        )
        for name, payload in self.early:
            ops.on_signal(name, payload)
        use_backend(ops)  # for this workflow's task, which dies with the run
        try:
            values = wf.decode_input(json.dumps(raw))
            result = await wf.fn(*values)
            output = wf.output_codec.to_jsonable(result)
            return await redacted("output", output) if ops.redacting else output
        except (asyncio.CancelledError, ApplicationError):
            raise
        except Exception as exc:
            if ops.redacting:  # no cause: Temporal would record its raw message too
                raise run_failure(exc, await redacted("error", error_record(exc))) from None
            raise run_failure(exc) from exc

    def _dispatch(self, queue: str, raw: Any) -> NoReturn:
        """Continue this run, which has no history yet, as new on the queue of the version it
        is pinned to (``temporal/_versions.py``): same run id, input and memo, and the signals
        that arrived meanwhile."""
        version = queue.rpartition("@")[2]
        memo = {**workflow.memo(), VERSION_MEMO: version}
        early = [[name, payload] for name, payload in self.early]
        workflow.continue_as_new(args=[raw, early], task_queue=queue, memo=memo)

    @workflow.signal(dynamic=True)
    def signal(self, name: str, args: Sequence[RawValue]) -> None:
        payload = workflow.payload_converter().from_payload(args[0].payload) if args else None
        if self.ops is None:
            self.early.append((name, payload))  # a signal that arrived with the start
        else:
            self.ops.on_signal(name, payload)

    @workflow.update(name=DECIDE_UPDATE)
    def decide(self, request: dict[str, Any]) -> dict[str, Any]:
        """A person's decision on a pending ``bm.approval`` (see temporal/approval.py)."""
        return self._book().decide(request)

    @decide.validator
    def check_decision(self, request: dict[str, Any]) -> None:
        self._book().check(request)

    def _book(self) -> ApprovalBook:
        return self.ops.approvals if self.ops is not None else ApprovalBook()
