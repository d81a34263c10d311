"""The dispatch point for other execution backends (Temporal).

The embedded engine executes journaled operations itself (``operation.py``,
``operations.py``). A backend that runs workflow code on another engine sets
``current_backend`` for the duration of a run, and every journaled operation called in that
run is handed to it instead. The engine never imports a backend's SDK: backends implement this
protocol from above (``bandmaster.temporal``).
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol
from uuid import UUID

from bandmaster._types import RunOrder, RunStatus
from bandmaster.errors import NotSupported

if TYPE_CHECKING:
    from bandmaster.engine._approval_desk import Approval, AuditEntry
    from bandmaster.engine._approval_pause import Decision
    from bandmaster.engine._runtime import RunHandle, RunInfo
    from bandmaster.engine._schedule_desk import ScheduleDesk  # likewise
    from bandmaster.engine._serde import Codec
    from bandmaster.engine._step import Step
    from bandmaster.engine._versions import HostedWorkflows
    from bandmaster.engine._workflow import Workflow
    from bandmaster.engine.stats_report import Stats, Unserved
    from bandmaster.store import SQLiteStore


class OperationBackend(Protocol):
    """Executes the journaled operations of one run. ``step`` and ``call_model`` are called
    synchronously when the operation is *called*, so they can number it by call order; they
    return the awaitable the workflow awaits."""

    def step(self, step: Step[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Awaitable[Any]: ...

    def call_model(self, target: str, input: Any, options: dict[str, Any]) -> Awaitable[Any]: ...

    def sleep(self, seconds: float) -> Awaitable[None]: ...

    def wait_for(self, name: str, timeout: float | None, default: Any, codec: Codec) -> Awaitable[Any]: ...

    def approval(
        self,
        name: str,
        payload: Any,
        *,
        timeout: float | None,
        default: str | None,
        notify: Sequence[object],
        approvers: Sequence[str] | None,
    ) -> Awaitable[Any]: ...
    def record(self, name: str, kind: str, output: Any, meta: dict[str, Any]) -> None:
        """Journal a decision the workflow code made itself (a router's route, kind
        ``route``): the next sequence number, completed at once with ``output``."""
        ...

    def now(self) -> datetime: ...

    def uuid(self) -> UUID: ...

    def random(self) -> float: ...

    def patched(self, patch_id: str) -> bool:
        """Whether this run takes the new code of ``bm.patched(patch_id)``."""
        ...

    def deprecate_patch(self, patch_id: str) -> None: ...


current_backend: ContextVar[OperationBackend | None] = ContextVar("bandmaster_backend", default=None)
"""Set by a backend while it runs workflow code; ``None`` on the embedded engine."""


# --- The backend interface: what a user (and the server, and the CLI) can ask of a durable backend.
# ``bm.Engine`` (SQLite) and ``bm.TemporalEngine`` both implement it and both pass the conformance
# suite in tests/conformance/. The server and the CLI are written against ``Backend`` only.


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do. A missing capability carries the reason, which the error for
    using it repeats (``NotSupported``), and which the README's capability table lists."""

    name: str
    """``embedded`` or ``temporal``."""
    missing: Mapping[str, str] = field(default_factory=dict)
    """Capability name → why this backend cannot do it (and what to use instead)."""
    statuses: tuple[str, ...] = ("queued", "running", "waiting", "completed", "failed", "cancelled")
    """The run statuses ``list(status=...)`` can filter on (Temporal has no queued or waiting)."""
    min_poll: float = 0.0
    """The shortest sensible interval between two ``describe`` calls of a watcher (reading a
    run costs a history fetch on Temporal)."""

    def supports(self, capability: str) -> bool:
        return capability not in self.missing

    def require(self, capability: str) -> None:
        """Raise ``NotSupported`` (with the reason) unless this backend has ``capability``."""
        if capability in self.missing:
            raise self.unsupported(capability)

    def unsupported(self, capability: str) -> NotSupported:
        """The error for using ``capability``, which this backend lacks: ``raise`` it from a
        member that has nothing to return."""
        return NotSupported(
            f"{capability} is not available on the {self.name} backend: {self.missing[capability]}"
        )


CAPABILITIES = (
    "stats",  # Backend.stats()
    "model_switch",  # ModelDesk.switch() reaching every worker within a second
    "shared_breakers",  # one breaker state per model across all workers
    "token_streaming",  # Backend.chunks: model stream chunks readable while a run runs
    "live_steps",  # step-started events for watchers
    "schedules",  # Backend.schedules
    "injected_clock",  # Engine(clock=...): timers, deadlines and leases on a FakeClock in tests
    "approval_audit",  # ApprovalDesk.audit(): every decision, refusal and timed default
    "rate_limits",  # models.yaml limits (rpm, tpm, concurrency) held across every worker
    "budgets",  # run and tenant budgets enforced before each model call, spend journaled
    "priorities",  # start(priority=): higher-priority runs claimed and served first, with aging
    "tenant_fair_share",  # start(tenant=): tenants share capacity fairly under saturation
    "run_input_search",  # list(search=): runs whose input contains a text
    "run_ordering",  # list(order=): oldest first, or by duration
)
"""Every capability name a backend may lack."""


@dataclass(frozen=True, slots=True)
class AliasState:
    """One model alias as a backend's model desk reports it (plain data: the engine does not
    import ``models/``)."""

    alias: str
    versions: dict[str, str]
    weights: dict[str, float]
    fallback: list[str]
    breakers: dict[str, str] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    """The alias's policy as data (timeout, fallback, breaker, ...), where the backend knows it."""


class ModelDesk(Protocol):
    """Read and switch the model registry's aliases. A switch is validated against the
    registry, audited with ``by`` (empty: not said), and adopted by every worker within a second."""

    async def describe(self) -> list[AliasState]: ...

    async def history(self, alias: str) -> list[dict[str, Any]]: ...

    async def switch(
        self,
        alias: str,
        *,
        versions: dict[str, str] | None = None,
        weights: dict[str, float] | None = None,
        by: str,
    ) -> AliasState: ...


class Backend(Protocol):
    """A durable backend. Errors are the same on every backend: ``RunNotFound``,
    ``WorkflowNotFound``, ``IdempotencyConflict`` (a ``run_id`` reused for another request),
    ``AlreadyDecided`` (a late approval decision), ``NotSupported`` (a missing capability, with
    why)."""

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def workflows(self) -> Mapping[str, Workflow[..., Any]]:
        """Each hosted workflow name's default version (what starting it by name runs)."""
        ...

    @property
    def hosted(self) -> HostedWorkflows:
        """Every workflow version hosted, by name and version (``engine/_versions.py``)."""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def health(self) -> str | None:
        """None when the backend can serve; else why not, in one line."""
        ...

    async def start(
        self,
        workflow: Workflow[..., Any] | str,
        /,
        *args: Any,
        run_id: str | None = None,
        priority: int = 0,
        tenant: str | None = None,
        budget_usd: float | None = None,
        **kwargs: Any,
    ) -> RunHandle[Any]:
        """With ``run_id``, idempotent: the same request returns the existing run (its handle's
        ``created`` is False); a different workflow, input or terms under that id raises
        ``IdempotencyConflict``. ``priority``, ``tenant``, ``budget_usd``: the run's terms
        (``RunTerms``, validated: ``InvalidInput``), kept with the run, shown by ``describe``
        and ``list``, and in context (``current_terms()``) while its steps and model calls run."""
        ...

    async def result(
        self, run_id: str, *, timeout: float | None = None, workflow: Workflow[..., Any] | None = None
    ) -> Any: ...

    async def signal(self, run_id: str, name: str, payload: Any = None) -> None: ...

    async def cancel(self, run_id: str) -> RunStatus: ...

    async def describe(self, run_id: str) -> RunInfo: ...

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
    ) -> builtins.list[RunInfo]:
        """Runs matching every filter given, without their steps. ``search``: the run id or the
        journaled input contains the text (capability ``run_input_search``); ``id_prefix``: the
        id begins with it; ``created_after``/``created_before``: a time range (inclusive,
        exclusive); ``order``: newest (the default), oldest, longest or shortest (capability
        ``run_ordering`` for all but newest)."""
        ...

    async def run_ids_starting(self, prefix: str, *, limit: int = 10) -> builtins.list[str]: ...

    @property
    def approvals(self) -> ApprovalDesk: ...

    @property
    def models(self) -> ModelDesk: ...

    async def stats(self, *, workflow: str | None = None, since: str | float | None = None) -> Stats: ...

    async def unserved(self) -> builtins.list[Unserved]:
        """Unfinished runs, per workflow version, that no live worker hosts ("no worker for
        triage@1"): they wait, and never fail for that reason."""
        ...

    @property
    def schedules(self) -> ScheduleDesk: ...

    def chunks(self, run_id: str, after: int) -> builtins.list[Any]:
        """Model stream chunks of a run after position ``after`` (capability ``token_streaming``)."""
        ...


class ApprovalDesk(Protocol):
    """``backend.approvals``: the same errors on every backend."""

    async def list(
        self,
        *,
        status: Literal["pending", "decided"] | None = "pending",
        run_id: str | None = None,
        name: str | None = None,
        limit: int = 100,
    ) -> builtins.list[Approval]: ...

    async def get(self, run_id: str, *, name: str | None = None) -> Approval: ...

    async def decide(
        self, run_id: str, action: str, *, by: str, comment: str | None = None, name: str | None = None
    ) -> Decision: ...

    async def audit(self, run_id: str | None = None, *, limit: int = 1000) -> builtins.list[AuditEntry]: ...


# --- What the embedded engine offers from the layers above it. The engine may not import
# ``models/``, ``calls/`` or ``observe/`` (DESIGN.md, Layout), yet ``bm.Engine`` serves
# ``models`` (the model hub of ``calls/``) and ``stats()`` (``observe/``). Those layers provide
# them here; ``bandmaster/__init__.py`` registers them (lazily, so ``import bandmaster`` stays
# light), and every ``import bandmaster.<anything>`` runs that file first.

ModelDeskFactory = Callable[[Any, "SQLiteStore"], ModelDesk]
"""``(registry, store) -> ModelDesk``: the model desk of an embedded engine's registry."""
StatsReader = Callable[[Path, "str | None", "str | float | None"], "Stats"]
"""``(journal path, workflow, since) -> Stats``: statistics of a journal."""


@dataclass(slots=True)
class EmbeddedServices:
    model_desk: ModelDeskFactory | None = None
    stats: StatsReader | None = None


embedded_services = EmbeddedServices()
"""Filled in by ``bandmaster/__init__.py``; read by ``bm.Engine``."""


def provide(*, model_desk: ModelDeskFactory | None = None, stats: StatsReader | None = None) -> None:
    """Register what the embedded engine serves as ``models`` and ``stats()``."""
    if model_desk is not None:
        embedded_services.model_desk = model_desk
    if stats is not None:
        embedded_services.stats = stats
