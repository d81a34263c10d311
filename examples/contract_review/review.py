"""Contract review over the bundled sample contracts, scored against their gold labels.

``contract_review`` is the YAML graph compiled onto the durable runtime (each node a journaled
step); ``run_review`` runs it over every contract on an embedded engine and reports compliance
and risk accuracy, issue-level precision and recall, map-reduce use, model cost and latency.
``bandmaster demo --example contract-review`` prints that report.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from review_models import HERE, registry

import bandmaster as bm
from bandmaster.graph import Graph

CONTRACTS = HERE / "contracts.jsonl"


class ContractResult(BaseModel):
    contract: str
    risk: str
    gold_risk: str
    compliant: bool
    gold_compliant: bool
    issues: list[str]
    gold_issues: list[str]
    chunks: int


class ReviewReport(BaseModel):
    contracts: int
    completed: int
    compliance_accuracy: float  # contract-level: compliant or not, as the gold label says
    issue_precision: float
    issue_recall: float
    risk_accuracy: float
    long_contracts: int  # summarised by map-reduce over more than one chunk
    model_calls: int
    cost_per_contract: float
    p50_ms: float
    p99_ms: float
    results: list[ContractResult]
    seconds: float


def load_contracts(path: Path = CONTRACTS, limit: int | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def workflow(cache_dir: Path | None = None) -> bm.Workflow[..., Any]:
    """The graph, validated against the registry (unknown models, bad templates) before any run."""
    return Graph.load(HERE / "contract_review.yaml").as_workflow(registry=registry(cache_dir))


async def run_review(
    *,
    db: Path,
    limit: int | None = None,
    cache_dir: Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ReviewReport:
    started = time.perf_counter()
    review = workflow(cache_dir)
    contracts = load_contracts(limit=limit)
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)
    results: list[ContractResult] = []
    async with bm.Engine(db, workflows=[review]) as engine:
        handles = [await engine.start(review, c, run_id=f"review-{c['id']}") for c in contracts]
        for done, (contract, handle) in enumerate(zip(contracts, handles, strict=True), 1):
            report = await handle.result()
            results.append(
                ContractResult(
                    contract=contract["id"],
                    risk=report["risk"],
                    gold_risk=contract["risk"],
                    compliant=report["compliant"],
                    gold_compliant=contract["compliant"],
                    issues=report["issues"],
                    gold_issues=contract["issues"],
                    chunks=report["summary_chunks"],
                )
            )
            if on_progress:
                on_progress(done, len(contracts))
    with sqlite3.connect(db) as journal:  # cost and latency as the journal recorded them
        costs = [
            json.loads(m).get("cost") or 0.0
            for (m,) in journal.execute("SELECT meta FROM steps WHERE kind = 'model' AND meta IS NOT NULL")
        ]
        spans = [
            (end - start) * 1000
            for start, end in journal.execute(
                "SELECT min(s.started_at), r.ended_at FROM runs r JOIN steps s ON s.run_id = r.id "
                "GROUP BY r.id"
            )
        ]
    found = sum(len(set(r.issues) & set(r.gold_issues)) for r in results)
    flagged = sum(len(r.issues) for r in results)
    actual = sum(len(r.gold_issues) for r in results)
    spans.sort()
    return ReviewReport(
        contracts=len(contracts),
        completed=len(results),
        compliance_accuracy=statistics.fmean(r.compliant == r.gold_compliant for r in results),
        issue_precision=found / flagged if flagged else 1.0,
        issue_recall=found / actual if actual else 1.0,
        risk_accuracy=statistics.fmean(r.risk == r.gold_risk for r in results),
        long_contracts=sum(r.chunks > 1 for r in results),
        model_calls=len(costs),
        cost_per_contract=sum(costs) / max(1, len(results)),
        p50_ms=spans[len(spans) // 2] if spans else 0.0,
        p99_ms=spans[min(len(spans) - 1, round(0.99 * (len(spans) - 1)))] if spans else 0.0,
        results=results,
        seconds=time.perf_counter() - started,
    )
