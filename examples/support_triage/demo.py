"""``bandmaster demo``: triage a batch of tickets end to end and report what happened.

Trains (or loads) the local models, fits the intent cascade on the training tickets, starts an
embedded engine on a fresh journal, triages every ticket with a progress bar while a simulated
compliance reviewer answers some PHI reviews (the rest take the timed default), then reads the
journal back and reports: routes, accuracy against the gold labels, cascade escalation and cost
against always asking the large model, latency per step, retries and fallbacks, and reviews.

``--data`` runs the same workflow on a public intent set instead of the bundled tickets:
a Banking77 folder (train.csv/test.csv) or a CLINC150 folder (data_full.json).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import re
import sqlite3
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from triage import TICKETS, TRAIN, Ticket, load_tickets, triage
from triage_models import build_models

import bandmaster as bm
from bandmaster.observe.stats import Stats, compute
from bandmaster.routing import ThresholdTuner


class StepLatency(BaseModel):
    step: str
    calls: int
    p50_ms: float
    p99_ms: float
    retries: int


class DriftWindow(BaseModel):
    """One window of tickets in the drift check (see ``_drift_check``)."""

    window: int
    drifted: bool  # tickets arrive in the new wording
    accuracy: float  # intent accuracy in the window
    escalation: float  # share of tickets sent past the first stage
    threshold: float  # first stage's threshold after the reviewer's feedback on the window
    overrides: int  # intents the reviewer corrected


class DriftRun(BaseModel):
    max_drift: float  # the tuner's guard rail: how far a threshold may move from its fitted value
    fitted: float  # the first stage's fitted threshold
    windows: list[DriftWindow]


class Report(BaseModel):
    dataset: str
    tickets: int
    completed: int
    failed: int
    routes: dict[str, int]
    intent_accuracy: float
    route_accuracy: float | None  # None when the data has no gold routes
    large_accuracy: float  # the large model alone on the same tickets
    escalation: list[float]  # share of tickets reaching each cascade stage
    cost_per_ticket: float  # the cascade's model cost
    large_cost_per_ticket: float  # always asking the large model
    latency: list[StepLatency]
    ticket_p50_ms: float  # in the batch: first step started → run finished (no review wait)
    ticket_p99_ms: float
    single_p50_ms: float = 0.0  # one ticket at a time, start → result as the caller sees it
    single_p99_ms: float = 0.0
    single_overhead_ms: float = 0.0  # of that, time not spent inside steps and model calls
    single_overhead_share: float = 0.0
    retries: int
    fallbacks: int
    reasks: int  # auto-replies the guard sent back to the model with the validation error
    reviews_flagged: int
    reviews_held: int
    reviews_defaulted: int
    faults_injected: dict[str, int]  # by kind: timeout, 429, 503, garbage
    garbage_intents: int  # garbage answers injected into the intent models (each should fall back)
    garbage_replies: int  # garbage answers injected into the reply model (each should be re-asked)
    seconds: float
    drift: list[DriftRun] = []  # reviewers' overrides fed to Cascade.feedback under drift


def load_dataset(folder: Path, limit: int | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """Banking77 (train.csv/test.csv) or CLINC150 (data_full.json) as tickets with gold intents."""
    if (folder / "train.csv").is_file() and (folder / "test.csv").is_file():

        def read(path: Path) -> list[dict[str, Any]]:
            with path.open(newline="") as handle:
                return [{"text": r["text"], "intent": r["category"]} for r in csv.DictReader(handle)]

        train, test, name = read(folder / "train.csv"), read(folder / "test.csv"), "banking77"
    elif (folder / "data_full.json").is_file():
        data = json.loads((folder / "data_full.json").read_text())
        train = [{"text": t, "intent": i} for t, i in data["train"]]
        test = [{"text": t, "intent": i} for t, i in data["test"]]
        name = "clinc150"
    else:
        raise bm.UsageError(
            f"{folder} is neither a Banking77 folder (train.csv, test.csv) nor a CLINC150 folder "
            "(data_full.json)"
        )
    test = test[:limit] if limit else test
    for number, row in enumerate(test):
        row.update(id=f"{name}-{number:05d}", customer="C0", history=[], route=None, phi=[])
    return train, test, name


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _reviewer(
    engine: bm.Engine, gold: dict[str, dict[str, Any]], runs: dict[str, str], held: set[str]
) -> None:
    """A compliance officer working the approvals queue: holds tickets that carry an SSN and
    lets the rest take the timed default."""
    seen: set[str] = set()
    while True:
        for pending in await engine.approvals.list(status="pending", name="phi_review"):
            if pending.run_id in seen:
                continue
            seen.add(pending.run_id)
            if any(re.fullmatch(r"\d{3}-\d{2}-\d{4}", v) for v in gold[runs[pending.run_id]]["phi"]):
                with contextlib.suppress(bm.AlreadyDecided):  # the timed default may win the race
                    await engine.approvals.decide(
                        pending.run_id, "hold", by="compliance", comment="SSN in ticket", name="phi_review"
                    )
                    held.add(pending.run_id)
        await asyncio.sleep(0.05)


async def run_demo(
    *,
    db: Path,
    data: Path | None = None,
    limit: int | None = None,
    chaos: float = 0.0,
    concurrency: int = 64,
    cache_dir: Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Report:
    started = time.perf_counter()
    if data is None:
        train_rows, rows, name = load_tickets(TRAIN), load_tickets(TICKETS, limit), "bundled tickets"
    else:
        train_rows, rows, name = load_dataset(data, limit)
    models = await build_models(train_rows, cache_dir=cache_dir, chaos=chaos)
    gold = {str(r["id"]): r for r in rows}
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)
    runs: dict[str, str] = {}
    held: set[str] = set()
    async with bm.Engine(db, workflows=[triage], registry=models.registry, concurrency=concurrency) as engine:
        reviewer = asyncio.create_task(_reviewer(engine, gold, runs, held))
        handles = []
        for row in rows:
            ticket = Ticket(
                id=str(row["id"]),
                customer=str(row["customer"]),
                text=str(row["text"]),
                history=list(row.get("history") or []),
            )
            handle = await engine.start(triage, ticket, run_id=f"triage-{ticket.id}")
            runs[handle.id] = ticket.id
            handles.append(handle)
        outcomes: dict[str, Any] = {}
        failed = 0

        async def finished(handle: bm.RunHandle[Any]) -> tuple[str, Any]:
            try:
                return handle.id, await handle.result()
            except bm.RunFailed:
                return handle.id, None

        for done, next_done in enumerate(asyncio.as_completed([finished(h) for h in handles]), 1):
            # Keyed by run: what the run returns is redacted, identifiers included when the
            # redactor takes them for PHI.
            run_id, outcome = await next_done
            if outcome is None:
                failed += 1
            else:
                outcomes[runs[run_id]] = outcome
            if on_progress:
                on_progress(done, len(handles))
        reviewer.cancel()
        # The batch's faults and per-step statistics, before the latency probe adds its own.
        injected = {w.name: dict(w.injected) for w in models.chaos}
        journal_stats = await asyncio.to_thread(compute, db, workflow="support_triage")
        probe = await _latency_probe(engine, rows)
    with sqlite3.connect(db) as journal:  # the report reads the journal, as `bandmaster stats` does
        steps = journal.execute(
            "SELECT run_id, name, kind, attempts, started_at, ended_at, meta FROM steps "
            "WHERE status = 'completed' AND ended_at IS NOT NULL AND run_id LIKE 'triage-%'"
        ).fetchall()
        run_rows = journal.execute(
            "SELECT id, ended_at FROM runs WHERE status = 'completed' AND id LIKE 'triage-%'"
        ).fetchall()
        seen = {
            runs[run_id]: json.loads(text)[0]["text"]
            for run_id, text in journal.execute("SELECT id, input FROM runs WHERE id LIKE 'triage-%'")
        }
    # The fitted cascade over the bare tiers: the drift check measures feedback, not chaos.
    drift = await _drift_check(models.cascade, list(models.tiers.values()), rows)
    report = _report(
        name,
        rows,
        gold,
        seen,
        outcomes,
        failed,
        steps,
        run_rows,
        held,
        models,
        injected,
        journal_stats,
        started,
    )
    return report.model_copy(update={**probe, "drift": drift})


# Tickets from a new channel carry a footer the small model has never seen and reads as an IT
# question: it answers confidently and wrongly (the kind of drift a canary does not catch).
DRIFT_FOOTER = " (sent from the new patient app, version 2 login)"


async def _drift_check(
    cascade: bm.Cascade,
    tiers: list[bm.Model],
    rows: list[dict[str, Any]],
    *,
    windows: int = 12,
    size: int = 40,
    before: int = 2,
) -> list[DriftRun]:
    """After the batch, a reviewer checks the intent of every ticket the cascade classifies and
    overrides the wrong ones; each verdict goes to ``Cascade.feedback``. After ``before``
    windows the tickets drift (``DRIFT_FOOTER``). Run twice: with the tuner's default guard
    rail and a wider one, on copies of the fitted cascade over ``tiers`` (its models without
    injected faults; the served cascade is left alone)."""
    runs = []
    for max_drift in (ThresholdTuner.max_drift, 0.3):
        copy = bm.Cascade(tiers, thresholds=cascade.thresholds, scorer=cascade.scorer, name="drift-check")
        copy.expected_accuracy = list(cascade.expected_accuracy)
        copy.tuner = ThresholdTuner(
            fitted=list(copy.thresholds), expected=list(copy.expected_accuracy), max_drift=max_drift
        )
        result = []
        for window in range(windows):
            drifted = window >= before
            right = escalated = 0
            for i in range(size):
                row = rows[(window * size + i) % len(rows)]
                text = str(row["text"]) + (DRIFT_FOOTER if drifted else "")
                response = await copy.request(bm.ModelRequest(input=text))
                correct = response.output == row["intent"]  # the reviewer's verdict: override if wrong
                copy.feedback(response, correct=correct)
                right += correct
                escalated += len((response.raw or {}).get("stages", [])) > 1
            result.append(
                DriftWindow(
                    window=window,
                    drifted=drifted,
                    accuracy=right / size,
                    escalation=escalated / size,
                    threshold=copy.thresholds[0],
                    overrides=size - right,
                )
            )
        runs.append(DriftRun(max_drift=max_drift, fitted=cascade.thresholds[0], windows=result))
    return runs


async def _latency_probe(engine: bm.Engine, rows: list[dict[str, Any]], count: int = 30) -> dict[str, float]:
    """Tickets one at a time, timed from start to result as a caller sees it: the SLA latency,
    and how much of it is orchestration rather than step and model work. Tickets that wait for
    a PHI review are left out (their latency is the review window)."""
    totals: list[float] = []
    overheads: list[float] = []
    for row in rows:
        if len(totals) == count:
            break
        ticket = Ticket(
            id=str(row["id"]),
            customer=str(row["customer"]),
            text=str(row["text"]),
            history=list(row.get("history") or []),
        )
        began = time.perf_counter()
        handle = await engine.start(triage, ticket, run_id=f"probe-{ticket.id}")
        await handle.result()
        total = time.perf_counter() - began
        steps = (await engine.describe(handle.id)).steps
        if any(s.kind not in ("step", "model", "route") for s in steps):
            continue  # it waited for a review
        side_by_side = [s.duration or 0.0 for s in steps if s.name in ("intent", "scan_phi")]
        busy = sum(s.duration or 0.0 for s in steps) - sum(side_by_side) + max(side_by_side, default=0.0)
        totals.append(total * 1000)
        overheads.append(max(0.0, total - busy) * 1000)
    return {
        "single_p50_ms": _percentile(totals, 0.5),
        "single_p99_ms": _percentile(totals, 0.99),
        "single_overhead_ms": statistics.fmean(overheads) if overheads else 0.0,
        "single_overhead_share": sum(overheads) / sum(totals) if totals else 0.0,
    }


def _report(
    name: str,
    rows: list[dict[str, Any]],
    gold: dict[str, dict[str, Any]],
    seen: dict[str, str],
    outcomes: dict[str, Any],
    failed: int,
    steps: list[tuple[Any, ...]],
    run_rows: list[tuple[Any, ...]],
    held: set[str],
    models: Any,
    injected: dict[str, dict[str, int]],
    journal_stats: Stats,
    started: float,
) -> Report:
    intents = [outcomes[t].intent for t in outcomes]
    intent_ok = [outcomes[t].intent.label == gold[t]["intent"] for t in outcomes]
    has_routes = all(r.get("route") for r in rows)
    route_ok = [
        outcomes[t].route == gold[t]["route"] for t in outcomes if outcomes[t].route != "held_for_review"
    ]
    # The large model alone, on the same (redacted) text the cascade saw in the workflow.
    texts = [seen.get(t, str(gold[t]["text"])) for t in outcomes]
    large = models.tiers["large"]
    large_labels = large.model.estimator.predict(texts) if hasattr(large, "model") else []
    large_accuracy = (
        sum(label == gold[t]["intent"] for label, t in zip(large_labels, outcomes, strict=True)) / len(texts)
        if len(large_labels)
        else 0.0
    )
    stages = len(models.cascade.models)
    escalation = [sum(i.stages > s for i in intents) / max(1, len(intents)) for s in range(stages)]
    # Latency, retries and fallbacks per step come from the journal statistics (what
    # `bandmaster stats` shows); re-asks and ticket latency need the rows themselves.
    live = [s for s in journal_stats.step_stats if s.kind in ("step", "model")]
    reasks = 0
    first_start: dict[str, float] = {}
    waited: set[str] = set()
    for run_id, _step, kind, _attempts, start, _end, meta in steps:
        if kind == "wait":
            waited.add(run_id)
        elif kind in ("step", "model"):
            attempts = json.loads(meta).get("guard", {}).get("attempts", []) if meta else []
            reasks += sum(1 for a in attempts if a.get("attempt", 1) > 1)
            first_start[run_id] = min(first_start.get(run_id, start), start)
    ended = {run_id: end for run_id, end in run_rows}
    ticket_ms = [(ended[r] - first_start[r]) * 1000 for r in ended if r not in waited and r in first_start]
    flagged = sum(bool(outcomes[t].phi) for t in outcomes)
    faults: Counter[str] = Counter()
    for counts in injected.values():
        faults.update(counts)
    return Report(
        dataset=name,
        tickets=len(rows),
        completed=len(outcomes),
        failed=failed,
        routes=dict(Counter(o.route for o in outcomes.values()).most_common()),
        intent_accuracy=sum(intent_ok) / max(1, len(intent_ok)),
        route_accuracy=sum(route_ok) / max(1, len(route_ok)) if has_routes else None,
        large_accuracy=large_accuracy,
        escalation=escalation,
        cost_per_ticket=sum(i.cost for i in intents) / max(1, len(intents)),
        large_cost_per_ticket=getattr(large, "price", 0.0),
        latency=[
            StepLatency(
                step=s.name,
                calls=s.calls,
                p50_ms=(s.p50 or 0.0) * 1000,
                p99_ms=(s.p99 or 0.0) * 1000,
                retries=s.retries,
            )
            for s in sorted(live, key=lambda s: s.name)
        ],
        ticket_p50_ms=_percentile(ticket_ms, 0.5),
        ticket_p99_ms=_percentile(ticket_ms, 0.99),
        retries=sum(s.retries for s in live),
        fallbacks=sum(m.fallback_calls for m in journal_stats.models),
        reasks=reasks,
        reviews_flagged=flagged,
        reviews_held=len(held),
        reviews_defaulted=flagged - len(held),
        faults_injected=dict(faults),
        garbage_intents=sum(c["garbage"] for name, c in injected.items() if name.startswith("intent")),
        garbage_replies=sum(c["garbage"] for name, c in injected.items() if name.startswith("reply")),
        seconds=time.perf_counter() - started,
    )
