"""Per-run state seen by journaled operations: the run id, the sequence counter, the journal
rows recorded by earlier executions (replay), and the lease-fenced write path."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass

from bandmaster._types import StepStatus
from bandmaster.engine._clock import SYSTEM_CLOCK, Clock
from bandmaster.engine._redaction import Redactor
from bandmaster.engine.hooks import HookSet
from bandmaster.errors import Cancelled, NonDeterminismError, StoreError
from bandmaster.store import SQLiteStore, StepRow


class Suspend(BaseException):
    """Unwinds a workflow that is waiting on a signal or a long timer; the engine drops the
    coroutine and replays the run when the signal or timer arrives. Not an ``Exception``."""


class LeaseLost(BaseException):
    """Abandon this execution: another worker owns the run now (our lease expired), or, with
    ``cause``, the journal could not be written even after retries (the worker hands the run
    back, and any worker resumes it from its last journaled step)."""

    def __init__(self, cause: StoreError | None = None) -> None:
        super().__init__(cause)
        self.cause = cause


@dataclass(frozen=True, slots=True)
class StepContext:
    """What a running step can know about itself. ``idempotency_key`` is stable across the
    retries and re-executions of this step in this run: pass it to side effects."""

    run_id: str
    seq: int
    name: str
    attempt: int

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.seq}"


class RunContext:
    __slots__ = (
        "_idle",
        "_seq",
        "_unconfirmed",
        "cancel_requested",
        "claimed_signals",
        "clock",
        "hooks",
        "inflight",
        "max_inline_sleep",
        "max_payload",
        "owner",
        "patches",
        "recorded",
        "redactor",
        "registry",
        "run_id",
        "store",
        "workflow",
    )

    def __init__(
        self,
        *,
        run_id: str,
        workflow: str,
        owner: str,
        store: SQLiteStore,
        recorded: dict[int, StepRow],
        max_payload: int,
        max_inline_sleep: float,
        registry: object | None = None,
        hooks: HookSet | None = None,
        redactor: Redactor | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.run_id = run_id
        self.clock = clock  # the engine's time: every stamp, timer and deadline of this run
        self.hooks = hooks  # engine hooks (tracing, metrics); None: the hot path skips them
        # Rewrites values before they are journaled (None: written as they are, no cost).
        self.redactor = redactor
        # The model registry the engine was given; opaque here (the engine never imports models).
        self.registry = registry
        self.workflow = workflow
        self.owner = owner
        self.store = store
        self.recorded = recorded
        self.patches: dict[str, bool] = {}  # each patch's answer in this run, once decided
        self.max_payload = max_payload
        self.max_inline_sleep = max_inline_sleep
        self.cancel_requested = False
        self.claimed_signals: set[int] = set()
        self.inflight = 0
        self._idle: asyncio.Event | None = None
        self._seq = 0
        self._unconfirmed: list[asyncio.Future[bool]] = []  # fire-and-forget writes not yet committed

    def next_seq(self) -> int:
        """Called synchronously when an operation is *called*, not awaited, so that
        ``asyncio.gather(a(), b())`` numbers a and b by call order on every execution."""
        self._seq += 1
        return self._seq

    def row(
        self,
        seq: int,
        name: str,
        kind: str,
        status: StepStatus,
        *,
        started: float,
        ended: float | None = None,
        output: str | None = None,
        error: str | None = None,
        attempts: int = 1,
        meta: str | None = None,
    ) -> StepRow:
        return StepRow(self.run_id, seq, name, kind, status, output, error, attempts, started, ended, meta)

    def replayed(self, seq: int, name: str, kind: str, request: object = None) -> StepRow | None:
        """The recorded row for ``seq``, checked against what the code calls now. ``request``
        (a model call's request) is for replay harnesses that match calls by input."""
        row = self.recorded.get(seq)
        if row is not None and (row.name != name or row.kind != kind):
            raise NonDeterminismError(self.run_id, seq, f"{row.kind} {row.name}", f"{kind} {name}")
        return row

    def decide_patch(self, patch_id: str) -> bool:
        """Whether this run takes the new code of ``bm.patched(patch_id)``: yes if it recorded
        the patch's marker, no if it is replaying history recorded past this point without
        one (it started under the old code), else yes, and the marker is journaled. Markers
        have negative seqs, so they never shift the operations' numbering."""
        decided = self.patches.get(patch_id)
        if decided is not None:
            return decided
        markers = [row for seq, row in self.recorded.items() if seq < 0]
        if any(row.kind == "patch" and row.name == patch_id for row in markers):
            decided = True
        elif any(seq > self._seq for seq in self.recorded):
            decided = False
        else:
            decided = True
            seq = -1 - len(markers) - sum(1 for taken in self.patches.values() if taken)
            now = self.clock.time()
            row = self.row(seq, patch_id, "patch", "completed", started=now, ended=now)
            self.commit_nowait(row)
        self.patches[patch_id] = decided
        return decided

    def cancelled(self, exc: BaseException) -> BaseException:
        """What a cancellation of this run's task should raise: ``bm.Cancelled`` when the run
        is being cancelled (not when the worker is shutting down)."""
        if self.cancel_requested and not isinstance(exc, Cancelled):
            return Cancelled()
        return exc

    async def commit(self, row: StepRow, *, consume_signal: int | None = None) -> None:
        """Journal ``row`` (group-committed); only then may the workflow see the result."""
        if self._unconfirmed:
            self._check_unconfirmed()
        try:
            written = await self.store.record_step(row, self.owner, consume_signal=consume_signal)
        except StoreError as exc:
            raise LeaseLost(exc) from None  # cannot journal even after retries: hand the run back
        except asyncio.CancelledError as exc:
            raise self.cancelled(exc) from exc
        if not written:
            raise LeaseLost

    def commit_nowait(self, row: StepRow) -> None:
        """Journal ``row`` without waiting; ordered before every later write of this run."""
        if self._unconfirmed:
            self._check_unconfirmed()
        self._unconfirmed.append(self.store.record_step(row, self.owner, wait=False))

    def _check_unconfirmed(self) -> None:
        """Raise ``LeaseLost`` if a fire-and-forget write of this run failed for good: nothing
        later may be journaled over the gap it left. (A write enqueued before the failure was in
        the failed transaction too, so checking before each write is enough.)"""
        pending = []
        for future in self._unconfirmed:
            if not future.done():
                pending.append(future)
            elif not future.cancelled() and isinstance(error := future.exception(), StoreError):
                self._unconfirmed = []
                raise LeaseLost(error)
        self._unconfirmed = pending

    # --- steps in flight, so a suspension does not throw away work in progress ----------

    def step_started(self) -> None:
        self.inflight += 1

    def step_finished(self) -> None:
        self.inflight -= 1
        if self.inflight == 0 and self._idle is not None:
            self._idle.set()

    async def suspend(self, ready_at: float | None) -> None:
        """Let parallel steps settle, mark the run waiting, and unwind it (raises Suspend)."""
        try:
            while self.inflight:
                self._idle = asyncio.Event()
                await self._idle.wait()
        except asyncio.CancelledError as exc:
            raise self.cancelled(exc) from exc
        if self.cancel_requested:
            raise Cancelled()
        if self._unconfirmed:
            self._check_unconfirmed()
        try:
            await self.store.suspend_run(self.run_id, self.owner, ready_at)
        except StoreError as exc:
            raise LeaseLost(exc) from None  # the run stays ours until handed back
        if ready_at is not None:
            self.clock.due_at(ready_at)
        raise Suspend()


current_run: ContextVar[RunContext | None] = ContextVar("bandmaster_run", default=None)
current_step_var: ContextVar[StepContext | None] = ContextVar("bandmaster_step", default=None)
direct_call: ContextVar[bool] = ContextVar("bandmaster_direct", default=False)
"""Set while a workflow function is called directly (a unit test): steps run unjournaled but
stay awaitable, sync ones included."""


def journaling() -> RunContext | None:
    """The run whose journal an operation called here belongs to; ``None`` outside a workflow
    and inside a step (a step's own calls are part of the step, not of the run)."""
    ctx = current_run.get()
    if ctx is None or current_step_var.get() is not None:
        return None
    return ctx


def current_clock() -> Clock:
    """The clock of the run executing here (its engine's), else the system clock."""
    ctx = current_run.get()
    return ctx.clock if ctx is not None else SYSTEM_CLOCK


def current_step() -> StepContext | None:
    """The running step's run id, seq, attempt and idempotency key; ``None`` outside a step."""
    return current_step_var.get()
