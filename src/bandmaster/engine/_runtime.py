"""``bm.Engine``: the embedded backend. A client (start, signal, cancel, describe, list) over
the SQLite journal, with an optional in-process worker that executes runs."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from bandmaster._types import RUN_ORDERS, TERMINAL_STATUSES, RunOrder, RunStatus
from bandmaster.engine._approval_desk import Approvals
from bandmaster.engine._clock import SYSTEM_CLOCK, Clock
from bandmaster.engine._idempotency import request_digest, same_request
from bandmaster.engine._live_steps import LiveSteps
from bandmaster.engine._redaction import Redactor, redact_json
from bandmaster.engine._redaction_policy import ANY_WORKFLOW, RedactionPolicy
from bandmaster.engine._run_id import check_run_id
from bandmaster.engine._schedule import Schedule, check_schedules, schedules_of
from bandmaster.engine._schedule_desk import Schedules
from bandmaster.engine._serde import ANY, DEFAULT_MAX_PAYLOAD, rebuild_error
from bandmaster.engine._terms import RunTerms
from bandmaster.engine._ticker import Ticker
from bandmaster.engine._versions import HostedWorkflows, describe_key
from bandmaster.engine._worker import Worker, new_owner_id, run_terms
from bandmaster.engine._workflow import Workflow
from bandmaster.engine.backend import Capabilities, ModelDesk, embedded_services
from bandmaster.engine.hooks import EngineClosed, EngineOpened, Hooks, RunCreated, emit, hook_set
from bandmaster.engine.stats_report import Unserved, unserved_of
from bandmaster.errors import (
    IdempotencyConflict,
    InvalidInput,
    RunCancelled,
    RunFailed,
    RunNotFound,
    StoreError,
    UsageError,
    WorkflowNotFound,
)
from bandmaster.policies import Retry
from bandmaster.store import (
    ChunkRow,
    RunRow,
    SQLiteStore,
    StepRow,
    WorkerRoster,
    chunks_after,
    resolve_db_path,
)

if TYPE_CHECKING:
    from bandmaster.engine.stats_report import Stats  # moves below the engine in the restructure

R = TypeVar("R")

JOURNAL_RETRY = Retry(
    attempts=6, initial=0.1, multiplier=2.0, max_delay=2.0, total=5.0, retry_on=(StoreError,)
)
"""How a journal write that failed for a passing reason (disk full, write lock held past the
busy timeout) is retried before the run is handed back: 6 attempts, at most 5 s of backoff."""


class StepInfo(BaseModel):
    seq: int
    name: str
    kind: str
    status: str
    attempts: int
    started_at: datetime
    ended_at: datetime | None
    duration: float | None
    output: Any = None
    error: dict[str, Any] | None = None
    meta: dict[str, Any] = {}


class RunInfo(BaseModel):
    id: str
    workflow: str
    version: str | None
    status: RunStatus
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    lease_owner: str | None
    claims: int
    priority: int = 0
    tenant: str | None = None
    budget_usd: float | None = None

    @property
    def workflow_key(self) -> str:
        """``triage@2``: the workflow and the version the run runs on (``triage``: none)."""
        return describe_key(self.workflow, self.version)

    steps: list[StepInfo] = []

    @property
    def terms(self) -> RunTerms:
        """The terms the run was started with."""
        return RunTerms(self.priority, self.tenant, self.budget_usd)


def _dt(stamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(stamp, UTC) if stamp is not None else None


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def _run_info(row: RunRow, steps: Iterable[StepRow] = ()) -> RunInfo:
    return RunInfo(
        id=row.id,
        workflow=row.workflow,
        version=row.version,
        status=row.status,
        input=_json(row.input),
        output=_json(row.output),
        error=_json(row.error),
        created_at=_dt(row.created_at),
        updated_at=_dt(row.updated_at),
        ended_at=_dt(row.ended_at),
        lease_owner=row.lease_owner,
        claims=row.claims,
        priority=row.priority,
        tenant=row.tenant,
        budget_usd=row.budget_usd,
        steps=[
            StepInfo(
                seq=s.seq,
                name=s.name,
                kind=s.kind,
                status=s.status,
                attempts=s.attempts,
                started_at=_dt(s.started_at),
                ended_at=_dt(s.ended_at),
                duration=(s.ended_at - s.started_at) if s.ended_at is not None else None,
                output=_json(s.output),
                error=_json(s.error),
                meta=_json(s.meta) or {},
            )
            for s in steps
        ],
    )


class RunClient(Protocol):
    """What a run handle needs from its engine: the embedded one, or another backend's."""

    async def result(
        self, run_id: str, *, timeout: float | None = None, workflow: Workflow[..., Any] | None = None
    ) -> Any: ...
    async def describe(self, run_id: str) -> RunInfo: ...
    async def signal(self, run_id: str, name: str, payload: Any = None) -> None: ...
    async def cancel(self, run_id: str) -> Any: ...


class RunHandle(Generic[R]):
    """A started run. ``await handle.result()`` waits for it to finish."""

    def __init__(
        self,
        engine: RunClient,
        run_id: str,
        workflow: Workflow[..., R] | None,
        *,
        created: bool = True,
        status: RunStatus | None = None,
    ) -> None:
        self.engine = engine
        self.id = run_id
        self.workflow = workflow
        self.created = created
        """False when ``start(run_id=...)`` found this run already started by the same request."""
        self.status = status
        """The run's status as ``start`` left it (None when not known without another read)."""

    async def result(self, timeout: float | None = None) -> R:
        return await self.engine.result(self.id, timeout=timeout, workflow=self.workflow)  # type: ignore[no-any-return]

    async def describe(self) -> RunInfo:
        return await self.engine.describe(self.id)

    async def signal(self, name: str, payload: Any = None) -> None:
        await self.engine.signal(self.id, name, payload)

    async def cancel(self) -> None:
        await self.engine.cancel(self.id)

    def __repr__(self) -> str:
        return f"<RunHandle {self.id}>"


class Engine:
    """The embedded engine: SQLite journal plus, unless ``worker=False``, an in-process worker.

    ``db`` is a path or ``sqlite:///`` URL (default ``$BANDMASTER_DB`` or ``./bandmaster.db``).
    ``lease`` is how long a worker's claim on a run lasts without a heartbeat: a crashed
    worker's runs are taken over after it (at once, for a dead process on the same host).
    Runs sleeping longer than ``max_inline_sleep`` seconds leave memory until the timer fires.
    ``registry`` (a ``bm.Registry``) serves ``bm.call_model`` in the runs this engine executes.
    ``hooks`` observe runs, steps and attempts (``bandmaster.observe.Tracing``, ``Metrics``).
    ``redact`` (e.g. ``bm.RedactPII()``) rewrites run inputs, step outputs and signal payloads
    before they are journaled, for every workflow without a ``redact=`` of its own. Both are
    recorded in the journal, and every engine writing to it applies them: a client without the
    redactor rebuilds it from the record, or is refused (``RedactionError``).
    Every ``rollup_every`` seconds the worker adds the runs that ended to the stats rollups
    (``None``: never; ``bandmaster stats`` catches up before reading either way).
    A journal write waits up to ``busy_timeout`` seconds for another process's write lock; one
    that fails for a passing reason (that lock, a full disk) is retried by ``journal_retry``,
    then the run is handed back to the queue and resumes from its last journaled step on any
    worker. With a worker the journal must pass SQLite's quick check (else ``JournalCorrupt``);
    without one, a journal this process cannot write is opened read-only.
    ``schedules`` (``bm.Schedule``), with those of ``@bm.schedule`` workflows, are ticked by the
    worker: one run per tick however many workers tick them (``bandmaster.triggers``).
    ``live_steps=True`` publishes each step as it starts (its name, never its input) for
    observers (``bandmaster runs watch``, the server's SSE), at a small cost per step.
    ``clock`` is where every timestamp, timer, deadline, lease and retry delay of this engine
    takes its time: the wall clock, or ``bandmaster.testing.FakeClock()`` in tests, which
    moves only when told. ``result(timeout=)`` is the caller's own patience, in real seconds.
    It is a ``bm.Backend`` (``engine/backend.py``) with every capability: besides runs, its
    ``approvals``, ``models`` (the registry's aliases), ``stats()``, ``schedules`` and ``chunks``.
    """

    def __init__(
        self,
        db: str | os.PathLike[str] | None = None,
        *,
        workflows: Iterable[Workflow[..., Any]] = (),
        worker: bool = True,
        concurrency: int = 1000,
        lease: float = 10.0,
        poll_interval: float = 0.1,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        max_inline_sleep: float = 1.0,
        registry: object | None = None,
        hooks: Sequence[Hooks] = (),
        redact: Redactor | None = None,
        rollup_every: float | None = 30.0,
        busy_timeout: float = 10.0,
        journal_retry: Retry = JOURNAL_RETRY,
        schedules: Iterable[Schedule] = (),
        live_steps: bool = False,
        clock: Clock = SYSTEM_CLOCK,
        default_versions: Mapping[str, str] | None = None,
    ) -> None:
        if concurrency < 1:
            raise UsageError(f"Engine(concurrency={concurrency}): must be at least 1")
        if rollup_every is not None and not rollup_every > 0:
            raise UsageError(f"Engine(rollup_every={rollup_every}): seconds > 0, or None for no rollup pass")
        if not isinstance(clock, Clock):
            raise UsageError(
                f"Engine(clock={clock!r}): needs time, monotonic, sleep, timeout, poll and due_at "
                f"methods (bandmaster.engine.Clock), e.g. bandmaster.testing.FakeClock()"
            )
        self.clock = clock
        self.path: Path = resolve_db_path(db)
        self.hosted = HostedWorkflows(workflows, default_versions=default_versions)
        """Every workflow version this engine hosts (``engine/_versions.py``)."""
        self.hosted.check_pins()
        self.run_worker = worker
        self.concurrency = concurrency
        self.lease = lease
        self.poll_interval = poll_interval
        self.max_payload = max_payload
        self.max_inline_sleep = max_inline_sleep
        self.registry = registry
        self._live_steps = LiveSteps() if live_steps else None
        self.hooks = hook_set([*hooks, self._live_steps] if self._live_steps is not None else hooks)
        if redact is not None and not isinstance(redact, Redactor):
            raise UsageError(f"Engine(redact={redact!r}): needs a redact(value) method, e.g. bm.RedactPII()")
        self.redact = redact
        self.rollup_every = rollup_every
        self.busy_timeout = busy_timeout
        self.journal_retry = journal_retry
        self.schedule_specs = check_schedules(
            [*schedules, *schedules_of(self.workflows.values())], self.workflows, limit=max_payload
        )
        """What the worker ticks (``schedules`` lists, pauses and resumes them)."""
        self._ticker: asyncio.Task[None] | None = None
        self.owner = new_owner_id()
        self._store: SQLiteStore | None = None
        self._redaction: RedactionPolicy | None = None
        self._worker: Worker | None = None
        self._finished: dict[str, asyncio.Future[None]] = {}
        self._result_poller: asyncio.Task[None] | None = None

    @property
    def workflows(self) -> dict[str, Workflow[..., Any]]:
        """Each hosted workflow name's default version (what starting it by name runs)."""
        return self.hosted.defaults

    def register(self, wf: Workflow[..., Any]) -> None:
        self.hosted.add(wf)

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        if self._store is not None:
            return
        store = SQLiteStore(
            self.path,
            busy_timeout=self.busy_timeout,
            read_only=False if self.run_worker else None,
            write_retry=self.journal_retry.next_delay,
            clock=self.clock.time,
        )
        try:
            if self.run_worker:
                store.require_sound()  # never write into a damaged journal
            self._redaction = RedactionPolicy(store, self.workflows, self.redact)
            self._redaction.declare_all()
            if self.run_worker:  # a worker refuses up front the workflows it could not redact
                for name in self.workflows:
                    self._redaction.for_workflow(name)
        except BaseException:
            store.close()
            self._redaction = None
            raise
        self._store = store
        if self._live_steps is not None:
            self._live_steps.attach(store)
        if self.hooks is not None:
            emit(self.hooks.engine_opened, EngineOpened(self.path, self.owner))
        if self.run_worker:
            self._worker = Worker(
                self._store,
                self.hosted,
                owner=self.owner,
                concurrency=self.concurrency,
                lease=self.lease,
                poll_interval=self.poll_interval,
                max_payload=self.max_payload,
                max_inline_sleep=self.max_inline_sleep,
                on_finished=self._notify_finished,
                registry=self.registry,
                hooks=self.hooks,
                redactor=self.redact,
                redaction=self._redaction,
                rollup_every=self.rollup_every,
                clock=self.clock,
            )
            await self._worker.start()
            if self.schedule_specs:
                ticker = Ticker(self, self.schedule_specs, clock=self.clock.time)
                ticker.declare()  # listed (and pausable) as soon as the engine is open
                self._ticker = asyncio.create_task(ticker.run(), name="bandmaster-schedules")

    async def close(self, *, grace: float = 10.0) -> None:
        """Stop the worker (active runs get ``grace`` seconds, then go back to the queue)."""
        if self._store is None:
            return
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        if self._worker is not None:
            await self._worker.stop(grace)
            self._worker = None
        if self._result_poller is not None:
            self._result_poller.cancel()
        close_models = getattr(self.registry, "aclose", None)  # a bm.Registry's provider connections
        if close_models is not None:
            await close_models()
        self._store.close()
        self._store = None
        self._redaction = None
        if self.hooks is not None:
            emit(self.hooks.engine_closed, EngineClosed(self.path, self.owner))

    @property
    def store(self) -> SQLiteStore:
        if self._store is None:
            raise UsageError("the engine is not open: use `async with bm.Engine(...)` or await engine.open()")
        return self._store

    @property
    def approvals(self) -> Approvals:
        """Human approvals (``bm.approval``) in this journal: list, decide, audit."""
        return Approvals(
            self.store,
            on_decided=self._worker.poke if self._worker is not None else None,
            redactor_for=self._redactor_for_run,
        )

    # --- the Backend interface (engine/backend.py) beyond runs -----------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Everything: the embedded engine is the reference backend."""
        return EMBEDDED

    async def health(self) -> str | None:
        """None when the journal answers a read; else why not."""
        try:
            self.store.run_status("")
        except (StoreError, UsageError, sqlite3.Error) as exc:
            return f"the journal {self.path} cannot be read: {exc}"
        return None

    @property
    def models(self) -> ModelDesk:
        """The registry's aliases: read, and switched for every worker on this journal."""
        factory = embedded_services.model_desk
        if factory is None:  # registered by bandmaster/__init__.py, which every import runs
            raise UsageError("bandmaster's model desk is not registered; import bandmaster first")
        return factory(self.registry, self.store)

    async def stats(self, *, workflow: str | None = None, since: str | float | None = None) -> Stats:
        """The journal's statistics (``bandmaster.observe.stats.compute``), off the event loop:
        a whole-journal computation takes seconds on a big journal."""
        reader = embedded_services.stats
        if reader is None:
            raise UsageError("bandmaster's statistics are not registered; import bandmaster first")
        self.store  # noqa: B018  refuse on a closed engine, as every other call does
        return await asyncio.to_thread(reader, self.path, workflow, since)

    async def unserved(self) -> list[Unserved]:
        """Unfinished runs, per workflow version, that no live worker of this journal hosts
        (``store/_workers.py``): they wait for one and never fail for that reason."""
        return unserved_of(WorkerRoster(self.store).unserved())

    @property
    def schedules(self) -> Schedules:
        """The schedules declared in this journal: list, pause, resume."""
        return Schedules(self.store)

    def chunks(self, run_id: str, after: int) -> list[ChunkRow]:
        """Model stream chunks of a run after position ``after``, as they are published."""
        return chunks_after(self.store, run_id, after)

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
    ) -> RunHandle[R]:
        """Start a run. With ``run_id``, starting is idempotent: the same request (workflow,
        input and terms) returns the existing run of that id (``handle.created`` is False);
        another request under that id raises ``IdempotencyConflict``. The id must follow the run
        id rule (``bandmaster.engine._run_id``). The input is journaled redacted when the
        workflow redacts (``redaction_policy.py``). ``priority``, ``tenant`` and ``budget_usd``
        are the run's terms (``RunTerms``): journaled with the run, in context while it runs,
        and the order in which workers claim ready runs (``store/_claims.py``)."""
        terms = RunTerms(priority, tenant, budget_usd)  # validated before anything is written
        if run_id is not None:
            check_run_id(run_id)
        store = self.store
        wf = self._resolve(workflow)
        name = wf.name if wf is not None else str(workflow)
        if wf is not None:
            payload = wf.encode_input(args, kwargs, limit=self.max_payload)
        else:
            if kwargs:
                raise InvalidInput("start a workflow by name with positional arguments only")
            payload = ANY.dump(list(args), what=f"input of workflow {name!r}", limit=self.max_payload)
        # Before any write: a workflow the journal says redacts is redacted here, or refused.
        redactor = self.redaction.for_workflow(name, wf)
        digest = request_digest(store, name, payload) if run_id is not None else None
        raw = payload
        if redactor is not None:
            payload = redact_json(redactor, payload) or payload
        run_id = run_id if run_id is not None else uuid.uuid4().hex
        now = self.clock.time()
        local = self._worker is not None and wf is not None and self._worker.capacity > 0
        row = RunRow(
            id=run_id,
            workflow=name,
            version=wf.version if wf else None,
            status="running" if local else "queued",
            input=payload,
            output=None,
            error=None,
            created_at=now,
            updated_at=now,
            ended_at=None,
            ready_at=None if local else now,
            lease_owner=self.owner if local else None,
            lease_expires=now + self.lease if local else None,
            cancel_requested=False,
            claims=1 if local else 0,
            priority=terms.priority,
            tenant=terms.tenant,
            budget_usd=terms.budget_usd,
        )
        headers = self.hooks.run_created(RunCreated(run_id, name)) if self.hooks is not None else None
        inserted = await store.insert_run(
            row, headers=json.dumps(headers) if headers else None, digest=digest
        )
        if not inserted:
            # Compared by the keyed digest of the raw request kept beside the run: the journaled
            # input may be redacted, so comparing it with this input would call every repeat a conflict.
            existing = store.get_run(run_id)
            if existing is None or not same_request(store, run_id, name, raw):
                raise _conflict(run_id, existing.workflow if existing is not None else name)
            if run_terms(existing) != terms:
                raise IdempotencyConflict(
                    f"run id {run_id!r} was already used with other terms ({run_terms(existing)}, "
                    f"not {terms}); use a new id for a new run"
                )
            same_version = wf is not None and wf.version == existing.version
            return RunHandle(
                self, run_id, wf if same_version else None, created=False, status=existing.status
            )
        if local:
            assert self._worker is not None
            self._worker.execute(row, fresh=True, headers=headers or {})  # saves reading them back
        elif self._worker is not None:
            self._worker.poke()
        return RunHandle(self, run_id, wf, status=row.status)

    async def result(
        self, run_id: str, *, timeout: float | None = None, workflow: Workflow[..., Any] | None = None
    ) -> Any:
        """Wait until the run finishes; return its result, or raise ``RunFailed`` (with the
        original error as ``__cause__``) or ``RunCancelled``."""
        row = self.store.get_run(run_id)
        if row is None:
            raise RunNotFound(f"no run {run_id!r} in the journal {self.path}")
        if row.status not in TERMINAL_STATUSES:
            waiter = self._finished.get(run_id)
            if waiter is None:
                waiter = self._finished[run_id] = asyncio.get_running_loop().create_future()
            if self._result_poller is None or self._result_poller.done():
                self._result_poller = asyncio.create_task(self._poll_results(), name="bandmaster-results")
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(waiter)
            except TimeoutError:
                status = self.store.run_status(run_id)
                raise TimeoutError(f"run {run_id} is still {status} after {timeout}s") from None
            row = self.store.get_run(run_id)
            assert row is not None
        return self._outcome(row, workflow)

    async def _poll_results(self) -> None:
        """One poller for every awaited run, for runs that finish in other processes (runs
        executed here resolve their waiter directly)."""
        never = asyncio.Event()  # polled on a timer only: waiters of local runs are resolved directly
        while self._finished and self._store is not None:
            await self.clock.poll(never, self.poll_interval)
            pending = [run_id for run_id, waiter in self._finished.items() if not waiter.done()]
            if self._worker is not None:
                pending = [run_id for run_id in pending if run_id not in self._worker.active]
            for run_id in self.store.finished_among(pending):
                self._notify_finished(run_id)

    def _outcome(self, row: RunRow, workflow: Workflow[..., Any] | None) -> Any:
        self._finished.pop(row.id, None)
        if row.status == "completed":
            wf = workflow or self.hosted.get(row.workflow, row.version)
            return wf.output_codec.load(row.output) if wf is not None else _json(row.output)
        if row.status == "cancelled":
            raise RunCancelled(row.id)
        record = _json(row.error) or {}
        raise RunFailed(row.id, record) from rebuild_error(record)

    def _notify_finished(self, run_id: str) -> None:
        waiter = self._finished.get(run_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def signal(self, run_id: str, name: str, payload: Any = None) -> None:
        """Deliver ``payload`` to the run's ``bm.wait_for(name)``; kept until the wait is reached."""
        encoded = ANY.dump(payload, what=f"payload of signal {name!r}", limit=self.max_payload)
        redactor = self._redactor_for_run(run_id)
        if redactor is not None:
            encoded = redact_json(redactor, encoded) or encoded
        status = self.store.add_signal(run_id, name, encoded)
        if status in TERMINAL_STATUSES:
            raise UsageError(f"run {run_id} is already {status}; it cannot receive signal {name!r}")
        if self._worker is not None:
            self._worker.poke()

    @property
    def redaction(self) -> RedactionPolicy:
        """Which redactor rewrites each workflow's values in this journal."""
        if self._redaction is None:
            raise UsageError("the engine is not open: use `async with bm.Engine(...)` or await engine.open()")
        return self._redaction

    def _redactor_for_run(self, run_id: str) -> Redactor | None:
        """What rewrites values this client writes for a run (signal payloads, decision
        comments): the run's workflow's redactor, as the journal records it."""
        row = self.store.get_run(run_id)
        if row is None:
            return self.redaction.for_workflow(ANY_WORKFLOW)
        return self.redaction.for_workflow(row.workflow)

    async def cancel(self, run_id: str) -> RunStatus:
        """Cancel a run: at once if queued or waiting; a running one gets ``bm.Cancelled`` at
        its current await point (within a heartbeat if it runs in another process)."""
        status = self.store.request_cancel(run_id)
        if status == "running" and self._worker is not None:
            self._worker.cancel_local(run_id)
        if status == "cancelled":
            self._notify_finished(run_id)
        return status

    async def describe(self, run_id: str) -> RunInfo:
        """The run with its step timeline (seq, name, status, attempts, times, error, meta)."""
        row = self.store.get_run(run_id)
        if row is None:
            raise RunNotFound(f"no run {run_id!r} in the journal {self.path}")
        return _run_info(row, self.store.load_steps(run_id).values())

    async def run_ids_starting(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Ids of runs that begin with ``prefix`` (at most ``limit``): how a shortened id
        pasted from a listing is found."""
        return self.store.run_ids_starting(prefix, limit)

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
        """Runs matching every filter given, newest first unless ``order`` says otherwise
        (without their steps); ``tenant``: only that tenant's; ``search``: the id or the
        journaled input (as stored: redacted when the workflow redacts) contains the text."""
        if order not in RUN_ORDERS:
            raise InvalidInput(f"order {order!r}: use one of {', '.join(RUN_ORDERS)}")
        rows = self.store.list_runs(
            status=status,
            workflow=workflow,
            tenant=tenant,
            limit=limit,
            offset=offset,
            search=search or None,
            id_prefix=id_prefix or None,
            # A run's time as shown (a datetime) is its journaled float rounded to the µs.
            created_after=created_after.timestamp() - 1e-6 if created_after is not None else None,
            created_before=created_before.timestamp() - 1e-6 if created_before is not None else None,
            order=order,
        )
        return [_run_info(r) for r in rows]

    async def recover(self) -> int:
        """Take over at once the runs of dead worker processes on this host."""
        if self._worker is None:
            raise UsageError("recover() needs an engine with a worker (worker=True)")
        return self._worker.recover()

    def _resolve(self, workflow: Workflow[..., Any] | str) -> Workflow[..., Any] | None:
        if isinstance(workflow, Workflow):
            if self._worker is not None and self.hosted.get(workflow.name, workflow.version) is None:
                self.register(workflow)  # starting it here is registering it
            return workflow
        if isinstance(workflow, str):
            wf = self.workflows.get(workflow)
            if wf is None and self._worker is not None:
                raise WorkflowNotFound(
                    f"no workflow named {workflow!r} is registered (known: "
                    f"{', '.join(sorted(self.workflows)) or 'none'}); pass it in Engine(workflows=[...])"
                )
            return wf
        raise UsageError(f"{workflow!r} is not a workflow; decorate it with @bm.workflow")


EMBEDDED = Capabilities("embedded")


def _conflict(run_id: str, workflow: str) -> IdempotencyConflict:
    return IdempotencyConflict(
        f"run id {run_id!r} was already used for a different request (a run of {workflow!r} with "
        "another input); use a new id for a new run"
    )


def run(
    workflow: Workflow[..., R],
    /,
    *args: Any,
    db: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    priority: int = 0,
    tenant: str | None = None,
    budget_usd: float | None = None,
    **kwargs: Any,
) -> R:
    """Run a workflow to completion in a fresh event loop and return its result (the terms
    as in ``Engine.start``)."""

    async def main() -> R:
        async with Engine(db, workflows=[workflow]) as engine:
            handle = await engine.start(
                workflow,
                *args,
                run_id=run_id,
                priority=priority,
                tenant=tenant,
                budget_usd=budget_usd,
                **kwargs,
            )
            return await handle.result()

    return asyncio.run(main())
