"""The worker: claims runs with a lease, executes them by replay, heartbeats, and hands them
back on shutdown. Any number of workers (processes) may share one journal."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

from bandmaster.engine._clock import SYSTEM_CLOCK, Clock
from bandmaster.engine._context import LeaseLost, RunContext, Suspend, current_run
from bandmaster.engine._redaction import Redactor, error_json, redact_json
from bandmaster.engine._redaction_policy import RedactionPolicy
from bandmaster.engine._rollup_pass import rollup_loop
from bandmaster.engine._serde import error_record
from bandmaster.engine._terms import RunTerms, terms_scope
from bandmaster.engine._versions import HostedWorkflows, describe_key
from bandmaster.engine._workflow import Workflow, redactor_for
from bandmaster.engine.hooks import HookSet, RunFinished, RunOutcome, RunStarted, emit
from bandmaster.errors import Cancelled, RedactionError, StoreError
from bandmaster.store import RunRow, SQLiteStore, WorkerRoster

log = logging.getLogger("bandmaster.worker")


def run_terms(row: RunRow) -> RunTerms:
    """The terms a run was started with, as its journal row keeps them."""
    return RunTerms(row.priority, row.tenant, row.budget_usd)


def new_owner_id() -> str:
    """``host/pid/token``: the host and pid let a restarted process on the same machine take
    over a dead process's runs at once instead of waiting for the lease to expire."""
    return f"{socket.gethostname()}/{os.getpid()}/{os.urandom(4).hex()}"


def owner_is_dead(owner: str) -> bool:
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class Worker:
    def __init__(
        self,
        store: SQLiteStore,
        workflows: HostedWorkflows,
        *,
        owner: str,
        concurrency: int,
        lease: float,
        poll_interval: float,
        max_payload: int,
        max_inline_sleep: float,
        on_finished: Callable[[str], None],
        registry: object | None = None,
        hooks: HookSet | None = None,
        redactor: Redactor | None = None,
        redaction: RedactionPolicy | None = None,
        rollup_every: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        self.clock = clock
        self.rollup_every = rollup_every
        self.hooks = hooks
        self.redactor = redactor
        # The journal's record of which workflows redact (redaction_policy.py); without one,
        # the workflow's own redactor, else the engine's.
        self.redaction = redaction
        self.workflows = workflows
        self.roster = WorkerRoster(store)
        self.owner = owner
        self.concurrency = concurrency
        self.lease = lease
        self.poll_interval = poll_interval
        self.max_payload = max_payload
        self.max_inline_sleep = max_inline_sleep
        self.on_finished = on_finished
        self.registry = registry
        self.active: dict[str, tuple[asyncio.Task[None], RunContext]] = {}
        # Runs claimed again while their previous execution is still unwinding (it suspended
        # and a signal re-queued the run at once): started as soon as that execution ends.
        self._reclaimed: dict[str, RunRow] = {}
        # Runs given up after a journal write failed for good, not yet handed back to the queue
        # (that is a write too): retried at every heartbeat, and their leases are not renewed.
        self._unreleased: set[str] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._loops: list[asyncio.Task[None]] = []
        self._rollups_stop = threading.Event()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.recover()
        self._enrol()
        self._loops = [
            asyncio.create_task(self._poll_loop(), name="bandmaster-poll"),
            asyncio.create_task(self._heartbeat_loop(), name="bandmaster-heartbeat"),
        ]
        if self.rollup_every and str(self.store.path) != ":memory:":  # stats rollups, off the write path
            rollups = rollup_loop(self.store.path, self.rollup_every, self._rollups_stop, self.clock)
            self._loops.append(asyncio.create_task(rollups, name="bandmaster-rollups"))

    def recover(self) -> int:
        """Make runs of dead processes on this host claimable now (others wait for lease expiry)."""
        dead = [o for o in self.store.running_owners() if o != self.owner and owner_is_dead(o)]
        count = self.store.expire_leases(dead) if dead else 0
        if count:
            log.info("taking over %d runs of dead workers %s", count, dead)
            self.poke()
        return count

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let active runs finish or suspend for ``grace`` seconds, then cancel
        the rest and hand them back to the queue, where another worker resumes them."""
        self._stopping = True
        self._wake.set()
        poll, heartbeat, *rollups = self._loops
        poll.cancel()
        self._rollups_stop.set()
        for task in rollups:
            task.cancel()
        # The heartbeat keeps our leases alive while runs drain, so nobody takes them over.
        if self.active and grace > 0:
            await asyncio.wait([t for t, _ in self.active.values()], timeout=grace)
        leftover = list(self.active)
        for task, _ in self.active.values():
            task.cancel()
        if leftover:
            await asyncio.gather(*(t for t, _ in self.active.values()), return_exceptions=True)
            self.store.release_runs(self.owner, leftover)
        heartbeat.cancel()
        self.store.flush()
        try:
            self.roster.leave(self.owner)
        except StoreError as exc:  # the row expires on its own
            log.warning("leaving the worker roster failed: %s", exc)

    def _enrol(self) -> None:
        """Publish the versions hosted here (``store/_workers.py``), for as long as three beats."""
        self.roster.enrol(self.owner, self.workflows.keys(), self.lease)

    def poke(self) -> None:
        """Poll now (a run was queued or signalled by this process)."""
        self._wake.set()

    @property
    def capacity(self) -> int:
        return self.concurrency - len(self.active)

    # --- loops ------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while not self._stopping:
            claimed = 0
            if self.capacity > 0:
                try:
                    rows = self.store.claim_runs(
                        self.owner, self.workflows.keys(), self.workflows.pins(), self.capacity, self.lease
                    )
                except StoreError as exc:
                    log.warning("claiming runs failed: %s", exc)
                    rows = []
                for row in rows:
                    try:
                        self.execute(row)
                    except StoreError as exc:  # its journal could not be read
                        self.give_up(row.id, exc)
                claimed = len(rows)
            if claimed and self.capacity > 0:
                await asyncio.sleep(0)  # more may be ready: poll again right away
                continue
            self._wake.clear()
            await self.clock.poll(self._wake, self.poll_interval)

    async def _heartbeat_loop(self) -> None:
        beats = 0
        while True:
            await self.clock.sleep(self.lease / 3)
            beats += 1
            self._hand_back()
            try:
                if beats % 10 == 0 and not self._stopping:
                    self.recover()  # a peer on this host may have died since we started
                if not self._stopping:
                    self._enrol()
                cancel = self.store.heartbeat(self.owner, self.lease, list(self.active))
                taken = self.store.runs_taken_over(self.owner, list(self.active))
            except StoreError as exc:
                log.warning("heartbeat failed: %s", exc)
                continue
            for run_id in cancel:
                self.cancel_local(run_id)
            for run_id in taken:
                entry = self.active.get(run_id)
                if entry is not None and not entry[0].done():
                    log.warning("run %s: lease lost to another worker; abandoning", run_id)
                    entry[0].cancel()

    # --- runs ----------------------------------------------------------------------------

    def execute(self, row: RunRow, *, fresh: bool = False, headers: Mapping[str, str] | None = None) -> None:
        """Execute a claimed run (``fresh``: just created, so there is no journal to load;
        ``headers``: its hook headers when the caller has them, saving a read)."""
        entry = self.active.get(row.id)
        if entry is not None and not entry[0].done():
            self._reclaimed[row.id] = row
            return
        try:
            redactor = self._redactor(row.workflow)
        except RedactionError as exc:  # the journal says it redacts, and this worker cannot
            log.error("run %s: failed before it ran: %s", row.id, exc)
            done = self.store.finish_run(row.id, self.owner, "failed", None, error_json(exc, None))
            done.add_done_callback(lambda _: self.on_finished(row.id))
            return
        ctx = RunContext(
            run_id=row.id,
            workflow=row.workflow,
            owner=self.owner,
            store=self.store,
            recorded={} if fresh else self.store.load_steps(row.id),
            max_payload=self.max_payload,
            max_inline_sleep=self.max_inline_sleep,
            registry=self.registry,
            hooks=self.hooks,
            redactor=redactor,
            clock=self.clock,
        )
        task = asyncio.create_task(self._run(row, ctx, headers), name=f"bandmaster-run-{row.id}")
        self.active[row.id] = (task, ctx)
        task.add_done_callback(lambda done: self._forget(row.id, done))

    def _redactor(self, workflow: str) -> Redactor | None:
        if self.redaction is not None:
            return self.redaction.for_workflow(workflow)
        return redactor_for(self.workflows.defaults.get(workflow), self.redactor)

    def _forget(self, run_id: str, task: asyncio.Task[None]) -> None:
        entry = self.active.get(run_id)
        if entry is not None and entry[0] is task:
            del self.active[run_id]
        row = self._reclaimed.pop(run_id, None)
        if row is not None and not self._stopping:
            try:
                current = self.store.get_run(run_id)
                if current is not None and current.status == "running" and current.lease_owner == self.owner:
                    self.execute(current)
            except StoreError as exc:
                self.give_up(run_id, exc)

    def give_up(self, run_id: str, cause: BaseException) -> None:
        """A journal write of the run failed even after retries: hand the run back to the queue
        (now, or at a later heartbeat if that write fails too; at worst its lease expires), so
        any worker resumes it from its last journaled step once the journal can be written."""
        log.warning(
            "run %s: %s; the run is handed back and resumes from its last journaled step", run_id, cause
        )
        self._unreleased.add(run_id)
        self._hand_back()

    def _hand_back(self) -> None:
        if not self._unreleased:
            return
        try:
            self.store.release_runs(self.owner, sorted(self._unreleased), flush=False)
        except StoreError as exc:
            log.warning(
                "runs %s: not handed back yet (%s); retrying at the next heartbeat",
                sorted(self._unreleased),
                exc,
            )
            return
        self._unreleased.clear()
        self.poke()

    def cancel_local(self, run_id: str) -> bool:
        entry = self.active.get(run_id)
        if entry is None:
            return False
        task, ctx = entry
        ctx.cancel_requested = True
        task.cancel()
        return True

    async def _run(self, row: RunRow, ctx: RunContext, headers: Mapping[str, str] | None = None) -> None:
        store, owner = self.store, self.owner
        if row.cancel_requested:
            try:
                store.cancel_claimed(row.id, owner)
            except StoreError as exc:
                self.give_up(row.id, exc)
                return
            self.on_finished(row.id)
            return
        wf = self.workflows.get(row.workflow, row.version)
        if wf is None:  # the claim matched its key, so only if hosting changed since: hand it back
            self.give_up(row.id, LookupError(f"{describe_key(row.workflow, row.version)} is not hosted here"))
            return
        current_run.set(ctx)  # this task's own context; nothing else sees it
        # The run's terms, from its journal row (so also after a crash): every step and model
        # call of the run, in this task or the tasks it spawns, sees them (current_terms()).
        with terms_scope(run_terms(row)):
            if self.hooks is not None and self.hooks.runs:
                await self._observed(row, ctx, self.hooks, wf, headers)
            else:
                await self._execute(row, ctx, wf)

    async def _observed(
        self,
        row: RunRow,
        ctx: RunContext,
        hooks: HookSet,
        wf: Workflow[..., object],
        headers: Mapping[str, str] | None,
    ) -> None:
        """``_execute`` between the hooks' run_started and run_finished."""
        started = self.clock.monotonic()
        if headers is None:
            raw = self.store.run_headers(row.id) if hooks.run_started else None
            headers = json.loads(raw) if raw else {}
        resumed = bool(ctx.recorded) or row.claims > 1
        emit(hooks.run_started, RunStarted(row.id, row.workflow, row.version, resumed, headers))
        outcome: RunOutcome = "released"
        error: BaseException | None = None
        try:
            outcome, error = await self._execute(row, ctx, wf)
        except BaseException as exc:
            error = exc
            raise
        finally:
            finished = RunFinished(
                row.id, row.workflow, outcome, error, self.clock.monotonic() - started, ctx.redactor
            )
            emit(hooks.run_finished, finished)

    async def _execute(
        self, row: RunRow, ctx: RunContext, wf: Workflow[..., object]
    ) -> tuple[RunOutcome, BaseException | None]:
        """Run the workflow function and record its end; returns how this execution ended."""
        store, owner = self.store, self.owner
        status, output, error = "completed", None, None
        failure: BaseException | None = None
        try:
            args = wf.decode_input(row.input, run_id=row.id)
            result = await wf.fn(*args)
            output = wf.output_codec.dump(
                result, what=lambda: f"result of workflow {wf.name!r} (run {row.id})", limit=self.max_payload
            )
            if ctx.redactor is not None:
                output = redact_json(ctx.redactor, output)
        except Suspend:
            return "suspended", None
        except LeaseLost as lost:
            if lost.cause is not None:
                self.give_up(row.id, lost.cause)
            else:
                log.info("run %s: lease lost; another execution resumes it", row.id)
            return "released", None
        except asyncio.CancelledError as exc:
            if not ctx.cancel_requested:
                return "released", None  # worker shutdown: stop() hands the run back to the queue
            status, error = "cancelled", json.dumps(error_record(Cancelled()) | {"message": "cancelled"})
            del exc
        except Exception as exc:
            status, error, failure = "failed", error_json(exc, ctx.redactor), exc
        try:
            finished = await store.finish_run(row.id, owner, status, output, error)  # type: ignore[arg-type]
        except StoreError as exc:
            self.give_up(row.id, exc)  # replayed from its journal, the run ends the same way
            return "released", None
        except asyncio.CancelledError:
            log.warning("run %s: stopped before its end was recorded; it will be replayed", row.id)
            return "released", None
        if not finished:
            return "released", None  # the lease was lost meanwhile: another execution owns the run
        self.on_finished(row.id)
        return status, failure  # type: ignore[return-value]
