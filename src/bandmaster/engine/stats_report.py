"""The shapes of ``bandmaster stats``: what ``compute`` returns, the CLI prints as JSON and the
server's ``/stats`` API and dashboard show."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

if TYPE_CHECKING:
    from bandmaster.store import UnservedRow

# Journaled bookkeeping, not work: their "latency" is a timer or a wait for a person.
BOOKKEEPING_KINDS = ("now", "uuid", "random", "sleep", "wait")
PERCENTILES = (50, 95, 99)


class StepStats(BaseModel):
    """One step (or model call) name. Latencies in seconds, from the step's start to its end
    (retries and backoff included), over the calls that finished."""

    name: str
    kind: str
    calls: int
    failures: int
    failure_rate: float
    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None
    max: float | None
    retries: int
    """Attempts beyond the first, summed."""
    retries_per_call: float
    fallback_rate: float
    """Share of calls answered by a fallback rather than the primary."""
    cache_hit_rate: float | None
    """Share of calls answered from the cache; ``None`` when the step has no cache."""
    cost: float = 0.0
    """Model cost in USD of this step's calls (model-call steps; 0 for others)."""
    cost_per_call: float = 0.0


ModelFlags = Mapping[str, tuple[int, int, int, float]]
"""Per model-call step name: calls answered by a fallback, cache hits, calls with a cache, cost."""


def model_flags(groups: Iterable[Mapping[str, Any]]) -> ModelFlags:
    """Fallback and cache counts and cost per step name, summed over its model groups."""
    flags: dict[str, tuple[int, int, int, float]] = {}
    for m in groups:
        fallbacks, hits, known, cost = flags.get(m["name"], (0, 0, 0, 0.0))
        flags[m["name"]] = (
            fallbacks + m["fallback_calls"],
            hits + m["cache_hits"],
            known + m["cache_known"],
            cost + (m["cost"] or 0.0),
        )
    return flags


def step_stats(
    name: str,
    kind: str,
    *,
    calls: int,
    failures: int,
    retries: int,
    percentiles: Sequence[float | None],
    mean: float | None,
    longest: float | None,
    flags: ModelFlags,
) -> StepStats:
    """One step's row, its rates derived from the counts (the same for rows and rollups);
    ``percentiles`` are p50, p95, p99."""
    fallbacks, hits, cached, cost = flags.get(name, (0, 0, 0, 0.0)) if kind == "model" else (0, 0, 0, 0.0)
    p50, p95, p99 = percentiles
    return StepStats(
        name=name,
        kind=kind,
        calls=calls,
        failures=failures,
        failure_rate=failures / calls,
        p50=p50,
        p95=p95,
        p99=p99,
        mean=mean,
        max=longest,
        retries=retries,
        retries_per_call=retries / calls,
        fallback_rate=fallbacks / calls,
        cache_hit_rate=hits / cached if cached else None,
        cost=cost,
        cost_per_call=cost / calls,
    )


class ModelStats(BaseModel):
    """One model (the concrete version that answered), per alias and served version label."""

    model: str
    alias: str | None
    version: str | None
    calls: int
    failures: int
    input_tokens: int
    output_tokens: int
    cost: float
    fallback_calls: int
    cache_hits: int
    unknown_cost_calls: int = 0
    """Calls answered by a billed model whose price is unknown: ``cost`` leaves them out, so
    it is a lower bound ("at least $X") whenever this is not 0."""


def cost_text(cost: float, unknown_calls: int) -> str:
    """A sum of costs as people should read it: ``$0.0123``, ``unknown`` when every call's
    price is unknown, else ``at least $0.0123 (2 calls of unknown price)``."""
    if not unknown_calls:
        return f"${cost:.4f}"
    calls = f"{unknown_calls} call{'s' if unknown_calls != 1 else ''} of unknown price"
    return f"at least ${cost:.4f} ({calls})" if cost else f"unknown ({calls})"


class WorkflowStats(BaseModel):
    workflow: str
    runs: int
    by_status: dict[str, int]
    completion_rate: float | None
    """Completed runs over runs that ended (completed, failed, cancelled)."""
    cost: float
    mean_cost_per_run: float
    retries_per_run: float
    """Attempts beyond the first, over every step of the run."""
    journal_bytes: int
    bytes_per_run: float


class TenantStats(BaseModel):
    """One tenant's runs (``start(tenant=...)``); runs without a tenant are not listed."""

    tenant: str
    runs: int
    failed: int
    """Runs that ended failed."""
    model_calls: int
    model_failures: int
    cost: float
    """Model cost in USD of the tenant's runs."""


class Unserved(BaseModel):
    """Unfinished runs of one workflow version that no live worker hosts: they wait (never
    fail) until a worker that hosts that version starts."""

    workflow: str
    version: str | None
    """``None``: the workflow has no version, or the run is unpinned."""
    unpinned: bool = False
    """Started by name where no version was hosted and never claimed: any version would do."""
    runs: int
    statuses: dict[str, int] = {}
    """Those runs by status (``queued``, ``waiting``, ``running`` with a lapsed lease)."""

    @property
    def label(self) -> str:
        """``no worker for triage@1``: what run lists, stats and the dashboard print."""
        if self.unpinned:
            return f"no worker for {self.workflow} (any version)"
        return (
            f"no worker for {self.workflow}@{self.version}"
            if self.version
            else f"no worker for {self.workflow}"
        )


class _RunLike(Protocol):  # a RunInfo (read-only: engine/_runtime.py imports this module)
    @property
    def workflow(self) -> str: ...
    @property
    def version(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def claims(self) -> int: ...


def no_worker_note(unserved: Sequence[Unserved], run: _RunLike) -> str | None:
    """``no worker for triage@1`` when ``run`` is unfinished and no live worker hosts its
    version (``unserved``: ``Backend.unserved()``); None otherwise."""
    if run.status not in ("queued", "running", "waiting"):
        return None
    unpinned = run.version is None and run.claims == 0
    for u in unserved:
        same_version = u.unpinned if unpinned else not u.unpinned and u.version == run.version
        if u.workflow == run.workflow and same_version:
            return u.label
    return None


def unserved_of(rows: Iterable[UnservedRow]) -> list[Unserved]:
    """The journal's rows of runs no worker hosts (``store/_workers.py``), as stats show them."""
    return [
        Unserved(
            workflow=row.workflow,
            version=row.version,
            unpinned=row.unpinned,
            runs=sum(row.statuses.values()),
            statuses=row.statuses,
        )
        for row in rows
    ]


def tenant_stats(rows: Iterable[tuple[str, int, int, int, int, float]]) -> list[TenantStats]:
    """Rows of (tenant, runs, failed runs, model calls, failed model calls, cost), one per
    tenant, as stats list them: by cost, then name."""
    found = [
        TenantStats(tenant=t, runs=r, failed=f, model_calls=c, model_failures=cf, cost=cost)
        for t, r, f, c, cf, cost in rows
        if t
    ]
    return sorted(found, key=lambda t: (-t.cost, t.tenant))


class DayStats(BaseModel):
    """Storage growth: what the runs created that day (UTC) occupy."""

    day: date
    runs: int
    steps: int
    journal_bytes: int


class Stats(BaseModel):
    db: str
    workflow: str | None
    since: datetime | None
    computed_at: datetime
    seconds: float
    """Time the computation took."""
    runs: int
    steps: int
    """Journal rows of those runs (bookkeeping rows such as ``bm.now`` included)."""
    retries_per_run: float
    file_bytes: int
    """Size of the journal file (plus its WAL); free pages included."""
    free_bytes: int
    """Free pages inside the file, reused before it grows."""
    step_stats: list[StepStats]
    models: list[ModelStats]
    workflows: list[WorkflowStats]
    days: list[DayStats]
    percentiles_exact: bool = True
    """False when p50/p95/p99 come from the rollup histograms (within 0.5 % of the exact
    values); every count and sum is exact either way."""
    scan_limit: int | None = None
    """The most runs read, newest first, by a backend that reads run by run (Temporal:
    ``TemporalEngine(stats_scan=...)``); ``None`` when every run in the window was read."""
    truncated: bool = False
    """True when the window held more runs than ``scan_limit``: the figures cover the newest."""
    tenants: list[TenantStats] = []
    """Per tenant (runs started with ``tenant=``); empty when no run has one."""
    unserved: list[Unserved] = []
    """Unfinished runs whose workflow version no live worker hosts (``Backend.unserved``)."""
    unknown_cost_calls: int = 0
    """Model calls whose price is unknown (summed over ``models``): every cost is then a lower
    bound."""
