"""``replay_runs``: re-run the current workflow code over recorded runs and report what changed.

Each recorded run is executed again, in a scratch journal (a temporary SQLite file; the source
journal is opened read-only), by a ``ReplayContext`` that answers every step, model call,
signal wait and timer from the recording. Router decisions are evaluated by the current code,
so a changed threshold shows up as another route. The result is compared with the recording:
routes taken, the sequence of operations, the final output.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bandmaster.engine import DEFAULT_MAX_PAYLOAD, Suspend, Workflow, current_run, new_owner_id
from bandmaster.errors import ReplayDivergence, ReplayError
from bandmaster.models import Registry
from bandmaster.replay._context import DECISIONS, INCIDENTAL, ReplayContext
from bandmaster.replay._golden import DecisionSpec, decision_reader, label_for, load_labels, score
from bandmaster.replay._recording import Recording, RecordingSource, RunQuery, scratch_run
from bandmaster.replay._report import (
    Change,
    DivergenceInfo,
    ModelCall,
    ReplayReport,
    ReplayStatus,
    RouteTaken,
    RunReplay,
)
from bandmaster.store import SQLiteStore, StepRow

Runs = str | RunQuery | Iterable[str] | None
Golden = str | os.PathLike[str] | Iterable[Mapping[str, Any]] | None


def as_query(runs: Runs) -> RunQuery:
    if runs is None:
        return RunQuery()
    if isinstance(runs, RunQuery):
        return runs
    if isinstance(runs, str):
        return RunQuery.parse(runs)
    return RunQuery(ids=list(runs))


async def replay_runs(
    workflow: Workflow[..., Any],
    *,
    db: str | os.PathLike[str] | None,
    runs: Runs = None,
    live_models: bool = False,
    registry: object | None = None,
    golden: Golden = None,
    golden_key: str | None = None,
    decision: DecisionSpec = "output",
    concurrency: int = 8,
    scratch: str | os.PathLike[str] | None = None,
) -> ReplayReport:
    """Replay the recorded runs of ``workflow`` in journal ``db`` with the current code
    (``None``: ``$BANDMASTER_DB`` or ``./bandmaster.db``).

    ``runs`` selects them (a query like ``"status=completed since=7d limit=200"``, run ids, or
    a ``RunQuery``; default: the last 1,000 completed or failed runs). By default no model is
    called: every step and model call is answered from the recording. ``live_models=True``
    sends ``bm.call_model`` calls to today's models (``registry``, else the default registry)
    and reports answer and cost differences. ``golden`` (a JSONL path or dicts) scores
    ``decision`` against known labels (see ``bandmaster.replay._golden``). ``scratch`` keeps
    the scratch journal at that path instead of a temporary file.
    """
    if not isinstance(workflow, Workflow):
        raise ReplayError(f"{workflow!r} is not a workflow; pass the @bm.workflow function to replay")
    if concurrency < 1:
        raise ReplayError(f"concurrency must be at least 1, got {concurrency}")
    query = as_query(runs)
    read_decision, read_recorded = decision_reader(decision)
    labels = load_labels(golden, key=golden_key) if golden is not None else None
    recordings = _read(db, workflow.name, query, scratch)

    with tempfile.TemporaryDirectory(prefix="bandmaster-replay-") as tmp:
        store = SQLiteStore(Path(scratch) if scratch is not None else Path(tmp) / "replay.db")
        try:
            replayer = _Replayer(workflow, store, live_models=live_models, registry=registry)
            gate = asyncio.Semaphore(concurrency)

            async def one(recording: Recording) -> RunReplay:
                async with gate:
                    # A task per run: its own context, so current_run never leaks between runs.
                    return await asyncio.create_task(replayer.replay(recording))

            results = await asyncio.gather(*(one(r) for r in recordings))
        finally:
            store.flush()
            store.close()

    for run in results:
        run.decision = read_decision(run)
        run.recorded_decision = read_recorded(run)
        if labels is not None:
            run.label = label_for(run, labels, golden_key, workflow.signature)
    report = ReplayReport(
        workflow=workflow.name,
        mode="live-models" if live_models else "recorded",
        runs=list(results),
        model_calls_made=replayer.live_model_calls,
    )
    if labels is not None:
        report.golden = score(report.runs, labels, len(labels))
    return report


def _read(
    db: str | os.PathLike[str] | None, workflow: str, query: RunQuery, scratch: str | os.PathLike[str] | None
) -> list[Recording]:
    with RecordingSource(db) as source:
        if scratch is not None and Path(scratch).resolve() == source.path.resolve():
            raise ReplayError("the scratch journal must not be the source journal; pick another path")
        return source.runs(workflow, query)


class _Replayer:
    def __init__(
        self, workflow: Workflow[..., Any], store: SQLiteStore, *, live_models: bool, registry: object | None
    ) -> None:
        self.workflow = workflow
        self.store = store
        self.live_models = live_models
        # Recorded answers need no models: an empty registry keeps a stray ./models.yaml out.
        self.registry = registry if registry is not None or live_models else Registry()
        self.owner = new_owner_id()
        self.live_model_calls = 0

    async def replay(self, recording: Recording) -> RunReplay:
        wf, store, original = self.workflow, self.store, recording.run
        ctx = ReplayContext(
            recording,
            store=store,
            owner=self.owner,
            max_payload=DEFAULT_MAX_PAYLOAD,
            live_models=self.live_models,
            registry=self.registry,
        )
        await store.insert_run(scratch_run(original, self.owner))
        current_run.set(ctx)
        status: ReplayStatus = "completed"
        output: str | None = None
        error: str | None = None
        try:
            args = wf.decode_input(original.input)
            result = await wf.fn(*args)
            output = wf.output_codec.dump(result, what=f"result of workflow {wf.name!r} (run {original.id})")
        except Suspend:
            status = "waiting"  # reached the point where the recorded run was still waiting
        except ReplayDivergence as exc:
            status, error = "diverged", str(exc)
        except Exception as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            current_run.set(None)
        if ctx.divergence is not None:
            status = "diverged"  # even when the workflow caught the ReplayDivergence
        await store.finish_run(
            original.id,
            self.owner,
            "completed" if status == "completed" else "failed",
            output,
            json.dumps({"type": "replay", "message": error}) if error else None,
        )
        live_rows = [row for row in store.load_steps(original.id).values()]
        self.live_model_calls += sum(1 for row in live_rows if row.kind == "model")
        return self._compare(recording, ctx, status, output, error, live_rows)

    def _compare(
        self,
        recording: Recording,
        ctx: ReplayContext,
        status: ReplayStatus,
        output: str | None,
        error: str | None,
        live_rows: list[StepRow],
    ) -> RunReplay:
        recorded = recording.steps
        run = RunReplay(
            run_id=recording.run.id,
            recorded_status=recording.run.status,
            status=status,
            recorded_output=recording.output(),
            output=json.loads(output) if output is not None else None,
            error=error,
            recorded_error=_error_text(recording.error()),
            recorded_routes=_routes(recorded),
            routes=_routes(live_rows),
            recorded_steps=[f"{r.kind}:{r.name}" for r in recorded if r.kind not in INCIDENTAL],
            steps=[f"{kind}:{name}" for kind, name in ctx.called],
            unused=[f"{kind}:{name}" for kind, name in ctx.unused()],
            new_model_inputs=ctx.new_inputs,
            input=json.loads(recording.run.input) if recording.run.input else None,
        )
        if ctx.divergence is not None:
            d = ctx.divergence
            run.divergence = DivergenceInfo(seq=d.seq, kind=d.kind, name=d.name, reason=d.reason)
        run.model_calls = _model_calls(recorded, live_rows if self.live_models else None)
        run.recorded_cost = sum(call.recorded_cost for call in run.model_calls)
        run.cost = sum(call.live_cost for call in run.model_calls) if self.live_models else run.recorded_cost
        if not self.live_models:
            for call in run.model_calls:
                call.live_cost, call.live_output = call.recorded_cost, call.recorded_output
        changes: list[Change] = []
        if run.routes != run.recorded_routes:
            changes.append("routes")
        if run.steps != run.recorded_steps:
            changes.append("steps")
        if run.divergence is not None:
            changes.append("diverged")
        elif status != recording.run.status:
            changes.append("status")
        if (
            status == "completed"
            and recording.run.status == "completed"
            and run.output != run.recorded_output
        ):
            changes.append("output")
        if status == "failed" and recording.run.status == "failed" and run.error != run.recorded_error:
            changes.append("output")  # a failed run's outcome is its error
        if any(call.changed for call in run.model_calls):
            changes.append("model_outputs")
        if ctx.new_inputs:
            changes.append("model_inputs")
        run.changes = changes
        return run


def _routes(rows: Iterable[StepRow]) -> list[RouteTaken]:
    taken = []
    for row in rows:
        if row.kind in DECISIONS and row.status == "completed" and row.output:
            decision = json.loads(row.output)
            taken.append(RouteTaken(router=row.name, route=decision["route"], rule=decision.get("rule")))
    return taken


def _model_calls(recorded: list[StepRow], live: list[StepRow] | None) -> list[ModelCall]:
    """Recorded model calls paired by name and call order with the live ones (when live)."""
    calls: list[ModelCall] = []
    recorded_models = [r for r in recorded if r.kind == "model"]
    live_by_name: dict[str, list[StepRow]] = {}
    for row in live or []:
        if row.kind == "model":
            live_by_name.setdefault(row.name, []).append(row)
    seen: dict[str, int] = {}
    for row in recorded_models:
        index = seen.get(row.name, 0)
        seen[row.name] = index + 1
        call = ModelCall(name=row.name, recorded_output=_answer(row), recorded_cost=_cost(row))
        twins = live_by_name.get(row.name, [])
        if index < len(twins):
            twin = twins[index]
            call.live_output, call.live_cost = _answer(twin), _cost(twin)
            call.live_model = json.loads(twin.meta or "{}").get("model")
        calls.append(call)
    for name, rows in live_by_name.items():  # live calls the recording never made
        for twin in rows[seen.get(name, 0) :]:
            calls.append(
                ModelCall(
                    name=name,
                    live_output=_answer(twin),
                    live_cost=_cost(twin),
                    live_model=json.loads(twin.meta or "{}").get("model"),
                )
            )
    return calls


def _error_text(record: dict[str, Any] | None) -> str | None:
    if not record:
        return None
    return f"{str(record.get('type', '')).rsplit('.', 1)[-1]}: {record.get('message', '')}"


def _answer(row: StepRow) -> Any:
    if row.status != "completed" or not row.output:
        return None
    return json.loads(row.output).get("output")


def _cost(row: StepRow) -> float:
    return float(json.loads(row.meta or "{}").get("cost") or 0.0)
