"""The dashboard's stats page: runs, latency, failures and cost over time (from the runs of
the window, through ``Backend.list``) and the journal statistics per step and per model (the
``Stats`` of ``GET /api/v1/stats``). Every number links to the runs behind it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from bandmaster.engine import RunInfo
from bandmaster.errors import InvalidInput, NotSupported
from bandmaster.observe.stats import Stats, StepStats
from bandmaster.server import _format as fmt
from bandmaster.server._journal import run_costs
from bandmaster.server._runs_ui import RunFilters
from bandmaster.server._svg import Series, bars, over_time
from bandmaster.server._ui import _page, _render
from bandmaster.store.reading import parse_duration

router = APIRouter(include_in_schema=False)

DEFAULT_SINCE = "24h"
BUCKETS = 12
SCAN = 2000
"""Runs of the window read for the charts over time (newest first); the page says when more exist."""


@dataclass(slots=True)
class Bucket:
    """The runs created in ``[start, end)``."""

    start: datetime
    end: datetime
    runs: int = 0
    failed: int = 0
    cost: float = 0.0
    durations: list[float] = field(default_factory=list)

    def percentile(self, share: float) -> float | None:
        """Nearest-rank percentile of the ended runs' durations."""
        if not self.durations:
            return None
        ordered = sorted(self.durations)
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def buckets_of(
    runs: Sequence[RunInfo], costs: dict[str, float], start: datetime, end: datetime
) -> list[Bucket]:
    """``BUCKETS`` equal slices of ``[start, end)`` with the runs created in each."""
    width = max((end - start) / BUCKETS, timedelta(seconds=1))
    found = [Bucket(start + width * n, start + width * (n + 1)) for n in range(BUCKETS)]
    for run in runs:
        index = int((run.created_at - start) / width)
        if not 0 <= index < BUCKETS:
            continue
        bucket = found[index]
        bucket.runs += 1
        bucket.failed += run.status == "failed"
        bucket.cost += costs.get(run.id, 0.0)
        if run.ended_at is not None:
            bucket.durations.append((run.ended_at - run.created_at).total_seconds())
    return found


@router.get("/ui/stats")
async def stats_page(request: Request, workflow: str = "", since: str = DEFAULT_SINCE) -> HTMLResponse:
    """``since`` defaults to a day: the whole of a big journal takes seconds (README, Statistics);
    an empty value asks for it all the same."""
    state, session = _page(request)
    backend = state.backend
    since = since.strip()
    try:
        found = await backend.stats(workflow=workflow or None, since=since or None)
        window = parse_duration(since, what="since") if since else None
    except NotSupported as exc:
        return _render(request, "error.html", 501, session=session, title="Stats", message=str(exc))
    except InvalidInput as exc:
        return _render(request, "error.html", 422, session=session, title="Bad filter", message=str(exc))
    now = datetime.now(UTC)
    runs = await backend.list(
        workflow=workflow or None,
        created_after=now - timedelta(seconds=window) if window is not None else None,
        limit=SCAN + 1,
    )
    truncated, runs = len(runs) > SCAN, runs[:SCAN]
    start = (
        now - timedelta(seconds=window)
        if window is not None
        else min((r.created_at for r in runs), default=now)
    )
    costs = run_costs(state.engine.path, [r.id for r in runs])
    slices = buckets_of(runs, costs, start, now)
    base = RunFilters(workflow=workflow, since=since)

    def window_url(bucket: Bucket, **changes: str) -> str:
        # To the microsecond: the runs list must find exactly the runs the slice counted.
        after, before = (
            t.replace(tzinfo=None).isoformat(timespec="microseconds") for t in (bucket.start, bucket.end)
        )
        return RunFilters(workflow=workflow, after=after, before=before).url(**changes)

    span = now - start

    def stamp(at: datetime) -> str:  # slices of seconds, minutes or hours tell apart
        pattern = (
            "%H:%M:%S" if span <= timedelta(minutes=10) else "%H:%M" if span <= timedelta(days=2) else "%b %d"
        )
        return at.strftime(pattern)

    steps = found.step_stats
    by_status = _runs_by_status(found)
    return _render(
        request,
        "stats.html",
        session=session,
        title="Stats",
        stats=found,
        runs_by_status=by_status,
        total_cost=sum(w.cost for w in found.workflows),
        workflow=workflow,
        since=since,
        workflows=sorted(backend.workflows),
        base=base,
        slices=slices,
        window_url=window_url,
        stamp=stamp,
        scanned=len(runs),
        truncated=truncated,
        latency_chart=over_time(
            "Run latency over time (p50 and p95 of the runs that ended)",
            [b.start for b in slices],
            [
                Series(
                    "p50", [b.percentile(0.5) for b in slices], "#0b57d0", [window_url(b) for b in slices]
                ),
                Series(
                    "p95",
                    [b.percentile(0.95) for b in slices],
                    "#8250df",
                    [window_url(b, order="longest") for b in slices],
                ),
            ],
            fmt.seconds,
            stamp,
        ),
        runs_chart=over_time(
            "Runs and failures over time",
            [b.start for b in slices],
            [
                Series("runs", [float(b.runs) for b in slices], "#0b57d0", [window_url(b) for b in slices]),
                Series(
                    "failed",
                    [float(b.failed) for b in slices],
                    "#c62828",
                    [window_url(b, status="failed") for b in slices],
                ),
            ],
            fmt.plain,
            stamp,
        ),
        cost_chart=over_time(
            "Model cost over time (USD)",
            [b.start for b in slices],
            [Series("cost", [b.cost for b in slices], "#2e7d32", [window_url(b) for b in slices])],
            fmt.usd,
            stamp,
        )
        if any(b.cost for b in slices)
        else None,
        p50=bars("p50 latency per step", [(_label(s), s.p50 or 0.0) for s in steps], fmt.seconds),
        p99=bars("p99 latency per step", [(_label(s), s.p99 or 0.0) for s in steps], fmt.seconds),
        failures=bars(
            "failure rate per step",
            [(_label(s), s.failure_rate) for s in steps],
            fmt.percent,
            [base.url(status="failed") if s.failures else base.url() for s in steps],
        ),
        fallbacks=bars(
            "fallback rate per model step",
            [(s.name, s.fallback_rate) for s in steps if s.kind == "model"],
            fmt.percent,
        ),
        costs=bars("cost per model (USD)", _cost_per_model(found), fmt.usd),
        step_costs=bars(
            "cost per step (USD)", [(s.name, s.cost) for s in steps if s.kind == "model"], fmt.usd
        ),
    )


def _label(step: StepStats) -> str:
    """An approval is journaled as two kinds under one name: tell their bars apart."""
    return step.name if step.kind in ("step", "model") else f"{step.name} ({step.kind})"


def _runs_by_status(stats: Stats) -> dict[str, int]:
    counts: dict[str, int] = {}
    for wf in stats.workflows:
        for status, count in wf.by_status.items():
            counts[status] = counts.get(status, 0) + count
    return dict(sorted(counts.items()))


def _cost_per_model(stats: Stats) -> list[tuple[str, float]]:
    """One bar per model: ``Stats.models`` splits a model by the alias and version that served it."""
    costs: dict[str, float] = {}
    for m in stats.models:
        costs[m.model] = costs.get(m.model, 0.0) + m.cost
    return sorted(costs.items(), key=lambda item: -item[1])
