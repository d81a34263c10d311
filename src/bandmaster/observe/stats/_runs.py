"""Statistics from runs as a backend describes them (``RunInfo`` with its steps), for a backend
without a journal to aggregate in SQL: the Temporal backend rebuilds each run from its history
and hands the runs here. The figures are the ones ``stats.compute`` reads from the journal,
by the same rules (nearest-rank percentiles over finished calls, bookkeeping operations left
out of the per-step table, a model call's model, alias, version, tokens, cost, fallback and
cache hit from its meta), so the two backends report the same numbers for the same runs.

    stats = stats_of_runs(runs, source="temporal://localhost:7233/default/bandmaster")
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from bandmaster.engine import RunInfo, StepInfo
from bandmaster.engine.stats_report import (
    BOOKKEEPING_KINDS,
    PERCENTILES,
    Stats,
    StepStats,
    TenantStats,
    model_flags,
    step_stats,
    tenant_stats,
)
from bandmaster.observe.stats._raw import assemble_run_stats, model_stats


def stats_of_runs(
    runs: Iterable[RunInfo],
    *,
    source: str,
    workflow: str | None = None,
    since: datetime | None = None,
    sizes: Mapping[str, int] | None = None,
    scan_limit: int | None = None,
    truncated: bool = False,
) -> Stats:
    """``Stats`` of ``runs`` (already chosen by ``workflow`` and ``since``, which are only
    reported). ``sizes`` is what each run occupies in the backend's store, by run id (its
    ``journal_bytes``); ``source`` names the store (``Stats.db``)."""
    started = time.perf_counter()
    runs = list(runs)
    steps = [(run, step) for run in runs for step in run.steps]
    groups = _model_groups(step for _, step in steps)
    per_step = _step_stats((step for _, step in steps if step.kind not in BOOKKEEPING_KINDS), groups)
    workflows, days = assemble_run_stats(_run_rows(runs, sizes or {}))
    total = len(runs)
    models = model_stats(groups)
    return Stats(
        db=source,
        workflow=workflow,
        since=since,
        computed_at=datetime.now(UTC),
        seconds=time.perf_counter() - started,
        runs=total,
        steps=len(steps),
        retries_per_run=sum(w.retries_per_run * w.runs for w in workflows) / total if total else 0.0,
        file_bytes=0,
        free_bytes=0,
        step_stats=per_step,
        models=models,
        workflows=workflows,
        days=days,
        scan_limit=scan_limit,
        truncated=truncated,
        unknown_cost_calls=sum(m.unknown_cost_calls for m in models),
        tenants=_tenants(runs),
    )


def _tenants(runs: list[RunInfo]) -> list[TenantStats]:
    totals: dict[str, list[float]] = {}
    for run in runs:
        if run.tenant is None:
            continue
        t = totals.setdefault(run.tenant, [0, 0, 0, 0, 0.0])
        t[0] += 1
        t[1] += run.status == "failed"
        for step in run.steps:
            if step.kind == "model":
                t[2] += 1
                t[3] += step.status == "failed"
                t[4] += float(step.meta.get("cost") or 0.0)
    return tenant_stats(
        (k, int(r), int(f), int(c), int(cf), cost) for k, (r, f, c, cf, cost) in totals.items()
    )


def nearest_rank(ordered: list[float], percentile: int) -> float | None:
    """The value at rank ceil(p * n / 100) of ``ordered`` (ascending), as the journal's SQL."""
    if not ordered:
        return None
    return ordered[-(-percentile * len(ordered) // 100) - 1]


def _step_stats(steps: Iterable[StepInfo], groups: list[dict[str, Any]]) -> list[StepStats]:
    by_name: dict[tuple[str, str], list[StepInfo]] = {}
    for step in steps:
        by_name.setdefault((step.name, step.kind), []).append(step)
    flags = model_flags(groups)
    out = []
    for (name, kind), rows in by_name.items():
        durations = sorted(_duration(s) for s in rows if s.ended_at is not None)
        out.append(
            step_stats(
                name,
                kind,
                calls=len(rows),
                failures=sum(s.status == "failed" for s in rows),
                retries=sum(s.attempts - 1 for s in rows),
                percentiles=[nearest_rank(durations, p) for p in PERCENTILES],
                mean=sum(durations) / len(durations) if durations else None,
                longest=durations[-1] if durations else None,
                flags=flags,
            )
        )
    return sorted(out, key=lambda st: (st.name, st.kind))


def _duration(step: StepInfo) -> float:
    assert step.ended_at is not None
    return (step.ended_at - step.started_at).total_seconds()


def _model_groups(steps: Iterable[StepInfo]) -> list[dict[str, Any]]:
    """Model calls grouped by step name and answering model/alias/version (``stats_raw``'s
    groups, from step meta instead of SQL)."""
    groups: dict[tuple[str, str, str | None, str | None], dict[str, Any]] = {}
    for step in steps:
        if step.kind != "model":
            continue
        meta = step.meta or {}
        model = meta.get("model") or meta.get("served_by") or step.name
        key = (step.name, str(model), meta.get("alias"), meta.get("version"))
        group = groups.setdefault(
            key,
            dict(
                zip(("name", "model", "alias", "version"), key, strict=True),
                calls=0, failures=0, input_tokens=0.0, output_tokens=0.0, cost=0.0,
                fallback_calls=0, cache_hits=0, cache_known=0, unknown_cost_calls=0,
            ),
        )  # fmt: skip
        tokens = meta.get("tokens") or {}
        group["calls"] += 1
        group["failures"] += step.status == "failed"
        group["input_tokens"] += tokens.get("input") or 0
        group["output_tokens"] += tokens.get("output") or 0
        group["cost"] += meta.get("cost") or 0.0
        group["fallback_calls"] += meta.get("fallback") is not None
        group["cache_hits"] += meta.get("cache_hit") is True
        group["cache_known"] += meta.get("cache_hit") is not None
        group["unknown_cost_calls"] += meta.get("cost_known") is False
    return list(groups.values())


def _run_rows(
    runs: list[RunInfo], sizes: Mapping[str, int]
) -> list[tuple[str, str, str, int, float, float, float, float]]:
    """One row per run in ``assemble_run_stats``'s shape: (workflow, UTC day, status, 1, step
    rows, bytes, retries, cost)."""
    rows: list[tuple[str, str, str, int, float, float, float, float]] = []
    for run in runs:
        cost = sum((s.meta or {}).get("cost") or 0.0 for s in run.steps if s.kind == "model")
        rows.append(
            (
                run.workflow,
                run.created_at.astimezone(UTC).date().isoformat(),
                run.status,
                1,
                float(len(run.steps)),
                float(sizes.get(run.id, 0)),
                float(sum(s.attempts - 1 for s in run.steps)),
                float(cost),
            )
        )
    return rows
