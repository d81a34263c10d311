"""``bm.TemporalEngine``: the client API of ``bm.Engine`` (start, result, signal, cancel,
describe, list) over a Temporal cluster, with an optional in-process worker."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.client import (
    Interceptor as ClientInterceptor,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import CancelledError, TerminatedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from bandmaster._types import RunOrder, RunStatus
from bandmaster.engine import RunTerms, Schedule, check_schedules, schedules_of
from bandmaster.engine.backend import Capabilities
from bandmaster.engine.backend_kit import (
    ANY,
    HostedWorkflows,
    Redactor,
    RunHandle,
    RunInfo,
    Workflow,
    check_run_id,
    rebuild_error,
    redactor_for,
    redactor_from_spec,
    redactor_spec,
)
from bandmaster.engine.stats_report import Stats, Unserved
from bandmaster.errors import (
    BackendUnavailable,
    IdempotencyConflict,
    InvalidInput,
    RunCancelled,
    RunFailed,
    RunNotFound,
    UsageError,
)
from bandmaster.temporal._approval_desk import TemporalApprovals
from bandmaster.temporal._failures import record_of
from bandmaster.temporal._forwarding import Forwarder, send_start, unreachable
from bandmaster.temporal._history import STATUS, run_info
from bandmaster.temporal._hosting import refuse_vault
from bandmaster.temporal._limits import MAX_PAYLOAD
from bandmaster.temporal._model_desk import TemporalModels
from bandmaster.temporal._model_sync import ModelSync, serving
from bandmaster.temporal._outbox import Outbox
from bandmaster.temporal._schedules import TemporalSchedules
from bandmaster.temporal._schedules import declare as declare_schedules
from bandmaster.temporal._stats import SCAN as STATS_SCAN
from bandmaster.temporal._stats import compute_stats
from bandmaster.temporal._terms import TERMS_MEMO, terms_as_data, terms_from_data
from bandmaster.temporal._versions import VERSION_MEMO, memo_version, unserved, version_queue
from bandmaster.temporal._visibility import quote, runs_query
from bandmaster.temporal._worker import create_worker

R = TypeVar("R")

REDACTION_MEMO = "bandmaster.redaction"
"""The run's memo entry recording, as data, the redactor its start was redacted with."""
_QUERY_STATUS = {"running": "Running", "completed": "Completed", "failed": "Failed", "cancelled": "Canceled"}


TemporalRunHandle = RunHandle
"""A started run on Temporal: the embedded engine's handle, bound to a ``TemporalEngine``."""


class TemporalEngine:
    """Runs bandmaster workflows on Temporal. ``target`` is the frontend address; with
    ``worker=True`` (the default when ``workflows`` are given) this process also hosts them on
    ``task_queue``. ``local_activities=True`` runs every step as a local activity (fewer
    round trips; see the README for when that is safe). ``default_timeout`` bounds steps that
    have no ``timeout`` of their own (Temporal needs one); ``heartbeat`` is how long a silent
    worker may hold a step before Temporal runs it elsewhere. ``tracing=True`` carries the current
    OpenTelemetry context from the client through the workflow into every activity (Temporal's
    ``TracingInterceptor``), so one trace covers start → workflow → steps → model calls; pass an
    OpenTelemetry ``Tracer`` instead of ``True`` to choose the tracer. ``redact`` (e.g.
    ``bm.RedactPII()``) rewrites every value before it reaches Temporal's history, for workflows
    without a ``redact=`` of their own, as ``bm.Engine(redact=...)`` does for its journal.
    ``stats_scan`` is the most runs ``stats()`` reads, newest first (it reads run by run).
    ``outbox`` (a file path) keeps starts and signals while the frontend is unreachable, and
    forwards them in order when it answers (``bandmaster.temporal._outbox``)."""

    def __init__(
        self,
        target: str = "localhost:7233",
        *,
        namespace: str = "default",
        task_queue: str = "bandmaster",
        workflows: Iterable[Workflow[..., Any]] = (),
        worker: bool | None = None,
        registry: object | None = None,
        local_activities: bool = False,
        default_timeout: float = 300.0,
        heartbeat: float = 10.0,
        max_concurrent_activities: int = 100,
        tracing: object = False,
        redact: Redactor | None = None,
        schedules: Iterable[Schedule] = (),
        stats_scan: int = STATS_SCAN,
        outbox: str | os.PathLike[str] | None = None,
        default_versions: Mapping[str, str] | None = None,
    ) -> None:
        if redact is not None and not isinstance(redact, Redactor):
            raise UsageError(
                f"TemporalEngine(redact={redact!r}): needs a redact(value) method, e.g. bm.RedactPII()"
            )
        refuse_vault(redact, "TemporalEngine(redact=...)")
        self.redact = redact
        self._rebuilt: dict[str, Redactor] = {}  # recorded redactors, by spec: Presidio loads once
        self.target = target
        self.tracing = tracing
        self.namespace = namespace
        self.task_queue = task_queue
        self.hosted = HostedWorkflows(workflows, default_versions=default_versions)
        """Every workflow version this engine hosts (``temporal/_versions.py``)."""
        self.hosted.check_pins()
        for wf in self.hosted:
            refuse_vault(wf.redact, f"@bm.workflow {wf.name!r} (redact=...)")
        self.run_worker = bool(len(self.hosted)) if worker is None else worker
        # Temporal Schedules (bandmaster.temporal._schedules), created or updated by workers.
        self.schedule_specs = check_schedules(
            [*schedules, *schedules_of(self.workflows.values())], self.workflows, limit=MAX_PAYLOAD
        )
        self.registry = registry
        self.local_activities = local_activities
        self.default_timeout = default_timeout
        self.heartbeat = heartbeat
        self.max_concurrent_activities = max_concurrent_activities
        if stats_scan < 1:
            raise UsageError(f"TemporalEngine(stats_scan={stats_scan!r}): read at least one run")
        self.stats_scan = stats_scan
        self._client: Client | None = None
        self._workers: list[Worker] = []  # the engine's queue's, then one per version hosted
        self._worker_tasks: list[asyncio.Task[None]] = []
        self._models_sync: ModelSync | None = None
        self.outbox_path = outbox
        self._forwarder: Forwarder | None = None  # with its outbox, while open with one

    @property
    def workflows(self) -> dict[str, Workflow[..., Any]]:
        """Each hosted workflow name's default version (what starting it by name runs)."""
        return self.hosted.defaults

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> TemporalEngine:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        if self._client is not None or self._forwarder is not None:
            return
        if self.outbox_path is not None:
            self._forwarder = Forwarder(Outbox(self.outbox_path), self._connect, self.task_queue)
        try:
            await self._connect()
        except RuntimeError as exc:  # the SDK's core reports connection failures this way
            if self._forwarder is None or self.run_worker:
                await self._close_outbox()
                raise UsageError(
                    f"cannot reach the Temporal server at {self.target} (namespace {self.namespace!r}): "
                    f"{exc}; start one (temporal server start-dev) or pass target=/set "
                    "BANDMASTER_TEMPORAL_TARGET"
                ) from exc
            self._forwarder.down = True  # starts and signals wait in the outbox until it answers
        if self._forwarder is not None:
            self._forwarder.start()
        if self.run_worker:
            assert self._client is not None
            self._models_sync = ModelSync(self._client, self.task_queue, serving(self.registry))
            options: dict[str, Any] = {  # every queue's worker alike
                "models": self._models_sync,
                "local_activities": self.local_activities,
                "default_timeout": self.default_timeout,
                "heartbeat": self.heartbeat,
                "max_concurrent_activities": self.max_concurrent_activities,
                "redact": self.redact,
            }
            unversioned = [wf for wf in self.hosted if wf.version is None]
            forward = {
                name: version_queue(self.task_queue, name, wf.version)
                for name, wf in self.workflows.items()
                if wf.version is not None and self.hosted.get(name, None) is None
            }
            self._workers = [
                create_worker(
                    self._client, unversioned, task_queue=self.task_queue, forward=forward, **options
                )
            ]
            for wf in self.hosted:
                if wf.version is not None:
                    queue = version_queue(self.task_queue, wf.name, wf.version)
                    self._workers.append(
                        create_worker(self._client, [wf], task_queue=queue, home=self.task_queue, **options)
                    )
            self._worker_tasks = [
                asyncio.create_task(w.run(), name=f"bandmaster-temporal-worker-{w.task_queue}")
                for w in self._workers
            ]
            await self._models_sync.start()
            if self.schedule_specs:
                await declare_schedules(self, self.schedule_specs)

    async def _connect(self) -> Client:
        if self._client is None:
            self._client = await Client.connect(
                self.target,
                namespace=self.namespace,
                data_converter=pydantic_data_converter,
                interceptors=_tracing_interceptors(self.tracing) if self.tracing else [],
            )
        return self._client

    async def _close_outbox(self) -> None:
        if self._forwarder is not None:
            await self._forwarder.stop()
            self._forwarder.outbox.close()
            self._forwarder = None

    async def close(self) -> None:
        await self._close_outbox()  # what is still in it is forwarded by the next open
        if self._models_sync is not None:
            await self._models_sync.stop()
            self._models_sync = None
        if self._workers:
            await asyncio.gather(*(w.shutdown() for w in self._workers))
            await asyncio.gather(*self._worker_tasks, return_exceptions=True)
            self._workers, self._worker_tasks = [], []
        self._client = None

    async def drain_outbox(self, timeout: float = 60.0) -> int:
        """Wait until every start and signal in the outbox was forwarded (or ``timeout``
        seconds passed); the number still waiting. 0 without an outbox."""
        if self._forwarder is None:
            return 0
        return await self._forwarder.drain(timeout)

    @property
    def client(self) -> Client:
        if self._client is None and self._forwarder is not None:
            raise BackendUnavailable(
                f"the Temporal frontend at {self.target} has not answered since this engine opened; "
                "starts and signals wait in its outbox (bandmaster outbox status), everything else "
                "needs the frontend: check that it is up and reachable"
            )
        if self._client is None:
            raise UsageError(
                "the engine is not open: use `async with bm.TemporalEngine(...)` or await engine.open()"
            )
        return self._client

    # --- client API -----------------------------------------------------------------------

    async def start(
        self,
        workflow: Workflow[..., R] | str,
        /,
        *args: Any,
        run_id: str | None = None,
        priority: int = 0,
        tenant: str | None = None,
        budget_usd: float | None = None,
        **kwargs: Any,
    ) -> TemporalRunHandle[R]:
        """Start a run. With ``run_id``, starting is idempotent: the same request returns the
        existing run of that id, running or finished (``handle.created`` is False); another
        workflow, input or terms raises ``IdempotencyConflict``. The id follows the run id rule
        (``bandmaster.engine._run_id``), as on the embedded engine. The terms travel in the
        run's memo (describe, list, and the activities read them) and as Temporal's task
        priority and fairness key (``temporal/_terms.py``)."""
        terms = RunTerms(priority, tenant, budget_usd)  # validated before anything is sent
        if run_id is not None:
            check_run_id(run_id)
        wf = workflow if isinstance(workflow, Workflow) else self.workflows.get(str(workflow))
        if not isinstance(workflow, Workflow | str):
            raise UsageError(f"{workflow!r} is not a workflow; decorate it with @bm.workflow")
        name = wf.name if wf is not None else str(workflow)
        if wf is not None:
            payload = json.loads(wf.encode_input(args, kwargs, limit=MAX_PAYLOAD))
        else:
            if kwargs:
                raise InvalidInput("start a workflow by name with positional arguments only")
            payload = json.loads(ANY.dump(list(args), what=f"input of workflow {name!r}", limit=MAX_PAYLOAD))
        redactor = redactor_for(wf, self.redact)
        if redactor is not None:  # the start event is history: redacted here, before it is sent
            payload = redactor.redact(payload)
        given_id = run_id is not None
        run_id = run_id if run_id is not None else uuid.uuid4().hex
        memo: dict[str, Any] = {VERSION_MEMO: wf.version} if wf is not None and wf.version else {}
        if redactor is not None:  # what a client that does not host the workflow redacts with
            memo[REDACTION_MEMO] = redactor_spec(redactor)
        if not terms.default:
            memo[TERMS_MEMO] = terms_as_data(terms)
        forwarder = self._forwarder
        if forwarder is not None:
            forwarder.outbox.remember(run_id, name, memo.get(REDACTION_MEMO))
            if forwarder.queueing():
                return self._queue_start(forwarder, wf, name, payload, run_id, memo)
        try:
            if given_id and (existing := await self._same_request(run_id, name, payload, terms)) is not None:
                return TemporalRunHandle(self, run_id, wf, created=False, status=existing)
            await send_start(self.client, self.task_queue, name, payload, run_id, memo)
        except Exception as exc:
            if forwarder is None or not unreachable(exc):
                raise
            forwarder.down = True
            return self._queue_start(forwarder, wf, name, payload, run_id, memo)
        if given_id and (raced := await self._same_request(run_id, name, payload, terms)) != "running":
            return TemporalRunHandle(self, run_id, wf, created=False, status=raced)  # a twin started it
        return TemporalRunHandle(self, run_id, wf, status="running")

    def _queue_start(
        self,
        forwarder: Forwarder,
        wf: Workflow[..., R] | None,
        name: str,
        payload: Any,
        run_id: str,
        memo: dict[str, Any],
    ) -> TemporalRunHandle[R]:
        """Keep the start in the outbox: the run exists under ``run_id`` once it is forwarded."""
        forwarder.outbox.put("start", run_id, name, payload, memo or None)
        forwarder.wake()
        return TemporalRunHandle(self, run_id, wf, status="queued")

    async def _same_request(
        self, run_id: str, workflow: str, payload: Any, terms: RunTerms
    ) -> RunStatus | None:
        """The status of run ``run_id`` when it exists and was started by this request (its start
        event holds the input redacted as ``payload`` is, its memo the same terms), None when
        there is no such run; ``IdempotencyConflict`` for a run of another workflow, input or terms."""
        try:
            run = await self.describe(run_id)
        except RunNotFound:
            return None
        if run.workflow != workflow or run.input != payload:
            raise IdempotencyConflict(
                f"run id {run_id!r} was already used for a different request (a run of {run.workflow!r} "
                "with another input); use a new id for a new run"
            )
        if run.terms != terms:
            raise IdempotencyConflict(
                f"run id {run_id!r} was already used with other terms ({run.terms}, not {terms}); "
                "use a new id for a new run"
            )
        return run.status

    # --- the Backend interface (engine/backend.py) beyond runs: the simple members --------

    capabilities = Capabilities(
        "temporal",
        missing={
            "token_streaming": "Temporal activities publish no model stream chunks; a stream's text arrives "
            "whole with its step",
            "injected_clock": "Temporal keeps its own time (workflow.now, server timers); in tests use "
            "temporalio.testing.WorkflowEnvironment.start_time_skipping()",
            "approval_audit": "every decision is an update in the run's history (Temporal UI, "
            "`temporal workflow show`), and `bandmaster server` audits the decisions made through it "
            "(GET /api/v1/audit)",
            "run_input_search": "Temporal's visibility store indexes run ids, workflow types, times and "
            "statuses, not workflow inputs; search by run id (id_prefix=) or filter by workflow and time",
            "run_ordering": "Temporal lists runs newest first only (its SQL visibility store has no ORDER "
            "BY); filter by time range and status instead",
        },
        statuses=("running", "completed", "failed", "cancelled"),
        min_poll=0.5,
    )

    async def health(self) -> str | None:
        """None when the Temporal frontend answers its health check, else why not."""
        try:
            async with asyncio.timeout(5.0):
                healthy = await self.client.service_client.check_health()
        except Exception as exc:  # any failure to answer means: not ready
            healthy, why = False, f"{type(exc).__name__}: {exc}"
        else:
            why = "its health check answered not serving"
        return (
            None
            if healthy
            else f"the Temporal cluster at {self.target} (namespace {self.namespace!r}): {why}"
        )

    @property
    def schedules(self) -> TemporalSchedules:
        """Temporal Schedules: list, pause, resume."""
        return TemporalSchedules(self)

    def chunks(self, run_id: str, after: int) -> list[Any]:
        raise self.capabilities.unsupported("token_streaming")

    async def stats(self, *, workflow: str | None = None, since: str | float | None = None) -> Stats:
        """The embedded engine's statistics, from the newest ``stats_scan`` runs of this task
        queue (of ``workflow``, started within ``since``), each rebuilt from its history."""
        stats = await compute_stats(self, workflow=workflow, since=since, scan=self.stats_scan)
        unserved = [u for u in await self.unserved() if workflow is None or u.workflow == workflow]
        return stats.model_copy(update={"unserved": unserved})

    async def unserved(self) -> list[Unserved]:
        """Running runs, per workflow version, whose task queue no worker polls (the newest
        ``stats_scan``; a stopped worker counts as gone ``POLLER_FRESH`` seconds after its last
        poll, ``temporal/_versions.py``)."""
        return await unserved(self.client, runs_query(self.task_queue, status="Running"), self.stats_scan)

    @property
    def models(self) -> TemporalModels:
        """The model desk: describe the workers' aliases, their history, switch them."""
        sync = self._models_sync
        return TemporalModels(self, after_switch=sync.read_now if sync is not None else None)

    @property
    def approvals(self) -> TemporalApprovals:
        """The approvals desk: list pending ``bm.approval`` pauses, decide them."""
        return TemporalApprovals(self)

    def _handle(self, run_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(run_id)

    async def result(
        self, run_id: str, *, timeout: float | None = None, workflow: Workflow[..., Any] | None = None
    ) -> Any:
        """Wait until the run finishes; return its result, or raise ``RunFailed`` (with the
        original error as ``__cause__``) or ``RunCancelled``."""
        try:
            async with asyncio.timeout(timeout):
                value = await self._handle(run_id).result()
        except TimeoutError:
            raise TimeoutError(f"run {run_id} is still running after {timeout}s") from None
        except WorkflowFailureError as exc:
            cause = exc.cause
            if isinstance(cause, CancelledError):
                raise RunCancelled(run_id) from None
            if isinstance(cause, TerminatedError):
                record = {"type": "temporalio.exceptions.TerminatedError", "message": str(cause)}
            else:
                record = (record_of(cause) if cause is not None else None) or {
                    "type": type(cause).__name__,
                    "message": str(cause),
                }
            raise RunFailed(run_id, record) from rebuild_error(record)
        except RPCError as exc:
            raise self._not_found(run_id, exc) from None
        wf = workflow
        if wf is None:  # the version the run ran on decodes its output
            described = await self._handle(run_id).describe()
            wf = self.hosted.get(described.workflow_type, memo_version(await described.memo()))
        return wf.output_codec.validate(value, what=f"output of run {run_id}") if wf is not None else value

    def _not_found(self, run_id: str, exc: RPCError) -> BaseException:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return RunNotFound(f"no run {run_id!r} in Temporal namespace {self.namespace!r} at {self.target}")
        return exc

    async def signal(self, run_id: str, name: str, payload: Any = None) -> None:
        """Deliver ``payload`` to the run's ``bm.wait_for(name)``; kept until the wait is reached."""
        # Checked here, before anything reaches Temporal: InvalidInput / PayloadTooLarge name the value.
        value = json.loads(ANY.dump(payload, what=f"payload of signal {name!r}", limit=MAX_PAYLOAD))
        forwarder = self._forwarder
        if forwarder is not None and forwarder.queueing():
            self._queue_signal(forwarder, run_id, name, value)
            return
        try:
            redactor = await self._redactor_for_run(run_id)
            if redactor is not None:  # the signal event is history: redacted before it is sent
                value = redactor.redact(value)
            await self._handle(run_id).signal(name, value)
        except RPCError as exc:
            if forwarder is not None and unreachable(exc):
                forwarder.down = True
                self._queue_signal(forwarder, run_id, name, value)
                return
            if exc.status == RPCStatusCode.NOT_FOUND:
                status = await self._status(run_id)
                if status is not None:
                    raise UsageError(
                        f"run {run_id} is already {status}; it cannot receive signal {name!r}"
                    ) from None
            raise self._not_found(run_id, exc) from None

    def _queue_signal(self, forwarder: Forwarder, run_id: str, name: str, value: Any) -> None:
        """Keep the signal in the outbox, redacted as the run redacts: known here only for runs
        this client started; any other run's signal is refused rather than kept unredacted."""
        started = forwarder.outbox.started(run_id)
        if started is None:
            raise BackendUnavailable(
                f"the Temporal frontend at {self.target} is unreachable and run {run_id} was not started "
                f"through this engine's outbox, so how its signals are redacted is unknown here: signal "
                f"{name!r} was not kept. Send it again when Temporal answers"
            )
        workflow, spec = started
        redactor = self._redactor_of(workflow, spec)
        if redactor is not None:
            value = redactor.redact(value)
        forwarder.outbox.put("signal", run_id, name, value)
        forwarder.wake()

    async def _redactor_for_run(self, run_id: str) -> Redactor | None:
        """The redactor of the run's workflow: its own, else the engine's, else the one the
        run's start recorded in its memo (rebuilt, or ``RedactionError`` when it cannot be)."""
        try:
            description = await self._handle(run_id).describe()
        except RPCError as exc:
            raise self._not_found(run_id, exc) from None
        workflow_type = description.workflow_type
        if redactor_for(self.workflows.get(workflow_type), self.redact) is not None:
            return self._redactor_of(workflow_type, None)
        return self._redactor_of(workflow_type, (await description.memo()).get(REDACTION_MEMO))

    def _redactor_of(self, workflow_type: str, spec: Any) -> Redactor | None:
        """The workflow's own redactor, else the engine's, else the recorded ``spec`` rebuilt."""
        own = redactor_for(self.workflows.get(workflow_type), self.redact)
        if own is not None:
            return own
        if spec is None:
            return None
        text = json.dumps(spec, sort_keys=True)
        if text not in self._rebuilt:
            self._rebuilt[text] = redactor_from_spec(spec, workflow=workflow_type)
        return self._rebuilt[text]

    async def _status(self, run_id: str) -> RunStatus | None:
        try:
            return STATUS.get((await self._handle(run_id).describe()).status, "running")
        except RPCError:
            return None

    async def cancel(self, run_id: str) -> RunStatus:
        """Request cancellation: the workflow gets ``asyncio.CancelledError`` at its current await."""
        status = await self._status(run_id)
        if status is None:
            raise RunNotFound(f"no run {run_id!r} in Temporal namespace {self.namespace!r} at {self.target}")
        if status in ("running", "waiting"):
            await self._handle(run_id).cancel()
        return status

    async def describe(self, run_id: str) -> RunInfo:
        """The run with its step timeline, rebuilt from Temporal's history."""
        handle = self._handle(run_id)
        try:
            description = await handle.describe()
            history = await handle.fetch_history()
        except RPCError as exc:
            raise self._not_found(run_id, exc) from None
        return await run_info(description, list(history.events), self.client.data_converter)

    async def run_ids_starting(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Ids of runs on this task queue that begin with ``prefix`` (at most ``limit``)."""
        query = f"{runs_query(self.task_queue)} AND WorkflowId STARTS_WITH '{quote(prefix)}'"
        found: list[str] = []
        async for execution in self.client.list_workflows(query):
            if execution.id not in found:
                found.append(execution.id)
            if len(found) >= limit:
                break
        return sorted(found)

    async def list(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        tenant: str | None = None,
        limit: int = 100,
        offset: int = 0,
        search: str | None = None,
        id_prefix: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        order: RunOrder = "newest",
    ) -> list[RunInfo]:
        """Runs on this task queue, newest first (without their steps). ``tenant`` is matched
        on the runs' memos (no custom search attribute to register on the cluster), so a
        tenant's page reads the runs listed before it. ``search`` and any order but newest
        raise ``NotSupported`` (capabilities ``run_input_search``, ``run_ordering``)."""
        if search:
            raise self.capabilities.unsupported("run_input_search")
        if order != "newest":
            raise self.capabilities.unsupported("run_ordering")
        if any(t is not None and not t.isprintable() for t in (workflow, id_prefix)):
            return []  # no run has such a name, and a NUL breaks the cluster's visibility query
        if status is not None and status not in _QUERY_STATUS:
            raise InvalidInput(f"status {status!r}: use one of {', '.join(_QUERY_STATUS)}")
        query = runs_query(
            self.task_queue,
            workflow=workflow,
            status=_QUERY_STATUS[status] if status is not None else None,
            since=created_after,
            before=created_before,
            id_prefix=id_prefix or None,
        )
        runs: list[RunInfo] = []
        seen = 0
        async for execution in self.client.list_workflows(query):
            memo = await execution.memo()
            terms = terms_from_data(memo.get(TERMS_MEMO))
            if tenant is not None and terms.tenant != tenant:
                continue
            seen += 1
            if seen <= offset:
                continue
            runs.append(
                RunInfo(
                    id=execution.id,
                    workflow=execution.workflow_type,
                    version=memo_version(memo),
                    status=STATUS.get(execution.status, "running"),
                    created_at=execution.start_time,
                    updated_at=execution.close_time or execution.start_time,
                    ended_at=execution.close_time,
                    lease_owner=None,
                    claims=1,
                    priority=terms.priority,
                    tenant=terms.tenant,
                    budget_usd=terms.budget_usd,
                )
            )
            if len(runs) >= limit:
                break
        return runs


def _tracing_interceptors(tracing: object) -> list[ClientInterceptor]:
    try:
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError as exc:
        raise UsageError(
            f"tracing=True needs OpenTelemetry's SDK ({exc}): pip install 'bandmaster[temporal]'"
        ) from exc
    return [TracingInterceptor(None if tracing is True else tracing)]  # type: ignore[arg-type]


__all__ = ["MAX_PAYLOAD", "TemporalEngine", "TemporalRunHandle", "WorkflowExecutionStatus"]
