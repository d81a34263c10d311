"""Replay harness benchmark: how long replaying recorded runs takes, against recording them.

    .venv/bin/python benchmarks/bench_replay.py [--runs 500] [--quick] [--json PATH]

A triage workflow (one ``bm.call_model`` to a zero-latency callable model, one router
decision, one step) is run ``--runs`` times on an embedded engine, concurrently: that is the
**baseline**, measured in the same run. Then ``replay_runs`` replays every recorded run three
ways: unchanged code (answers from the recording), a changed routing threshold (runs diverge),
and ``live_models=True`` (the model is called again). Reported: wall time, runs per second, the
ratio to the baseline, and what the replay found. Measurements, not tests: exits 0 whatever
the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import bandmaster as bm
from bandmaster.replay import ReplayReport, replay_runs
from bandmaster.testing import ScriptedModel, temp_engine

THRESHOLD = 0.8
router = bm.Router(default="human", variables=["confidence", "threshold"], name="triage_router")
router.add_route("confidence >= threshold", "auto_reply", name="confident")


def confidence_of(text: str) -> float:
    return (int(text.rsplit(" ", 1)[1]) % 100) / 100  # 0.00 … 0.99, spread evenly over the runs


@bm.step
async def act(ticket: str, route: str) -> str:
    return f"{route}:{ticket}"


@bm.workflow
async def triage(ticket: str) -> str:
    intent = await bm.call_model("intent", ticket)
    decision = router.decide(confidence=intent.confidence, threshold=THRESHOLD)
    await act(ticket, decision.route)
    return decision.route


def intent_model() -> ScriptedModel:
    return ScriptedModel(lambda req: ("billing", confidence_of(req.text())), name="intent", cost=0.001)


async def record(db: Path, runs: int) -> tuple[float, ScriptedModel]:
    model = intent_model()
    async with temp_engine([triage], registry=bm.Registry(models={"intent": model}), db=db) as engine:
        started = time.perf_counter()
        handles = [await engine.start(triage, f"ticket {i}") for i in range(runs)]
        await asyncio.gather(*(h.result(timeout=120) for h in handles))
        return time.perf_counter() - started, model


async def timed(**options: Any) -> tuple[float, ReplayReport]:
    started = time.perf_counter()
    report = await replay_runs(triage, **options)
    return time.perf_counter() - started, report


async def main(runs: int) -> dict[str, Any]:
    global THRESHOLD
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        db = Path(tmp) / "recorded.db"
        baseline, model = await record(db, runs)
        recorded_calls = model.calls
        query = f"limit={runs}"
        same_s, same = await timed(db=db, runs=query)
        assert model.calls == recorded_calls, "an unchanged replay must not call the model"
        THRESHOLD = 0.9
        changed_s, changed = await timed(db=db, runs=query)
        THRESHOLD = 0.8
        live = intent_model()
        live_s, live_report = await timed(
            db=db, runs=query, live_models=True, registry=bm.Registry(models={"intent": live})
        )
    rows = {
        "record (baseline)": (baseline, runs, "-"),
        "replay, unchanged code": (same_s, len(same.runs), f"{len(same.changed)} changed, 0 model calls"),
        "replay, threshold 0.8→0.9": (changed_s, len(changed.runs), f"{len(changed.changed)} changed"),
        "replay, live models": (live_s, len(live_report.runs), f"{live_report.model_calls_made} model calls"),
    }
    print(f"{'':28} {'wall s':>8} {'runs/s':>9} {'vs baseline':>11}  found")
    result: dict[str, Any] = {}
    for name, (seconds, count, found) in rows.items():
        print(f"{name:28} {seconds:8.3f} {count / seconds:9.0f} {seconds / baseline:11.2f}  {found}")
        result[name] = {"seconds": seconds, "runs": count, "ratio": seconds / baseline, "found": found}
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="100 runs")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args()
    numbers = asyncio.run(main(100 if args.quick else args.runs))
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2))
