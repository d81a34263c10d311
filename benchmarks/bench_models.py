"""Model-layer benchmarks: what ``bm.call_model`` adds over a plain step, and how fast a
registry change reaches a running worker in another process.

    .venv/bin/python benchmarks/bench_models.py [--quick] [--json PATH]

1. call_model overhead: a workflow calling a zero-latency callable model N times through
   ``bm.call_model`` versus the same function as a plain ``@bm.step``; the difference per call
   is the model layer's own cost (alias resolution, policy, breaker, journaling the response and
   its meta). Target: <= 50 µs extra per call.
2. hot switch: a ``bandmaster worker`` subprocess serves runs that call the alias
   ``classification``; this process changes the alias with ``ModelHub.set_alias`` and measures
   the time until runs executed by the worker report the new version. Target: <= 1 s (the field
   report's Redis flag took 200 ms).
Measurements, not tests: the script exits 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import bandmaster as bm
from bandmaster.calls.hub import ModelHub

CALLS = 10


def answer(text: str) -> tuple[str, float]:
    return ("billing", 0.9)


REGISTRY = bm.Registry(models={"fast": bm.CallableModel(answer, name="fast")})


@bm.step
async def plain(text: str) -> str:
    return answer(text)[0]


@bm.workflow
async def via_steps(n: int) -> int:
    for i in range(n):
        await plain(f"ticket {i}")
    return n


@bm.workflow
async def via_models(n: int) -> int:
    for i in range(n):
        await bm.call_model("fast", f"ticket {i}", registry=REGISTRY)
    return n


async def per_call(tmp: Path, runs: int) -> tuple[list[float], list[float]]:
    """Per-call time of the plain-step and the call_model workflow, runs interleaved so that
    both see the same machine (the difference is what matters, and noise drifts)."""
    steps, models = [], []
    async with (
        bm.Engine(tmp / "steps.db", workflows=[via_steps]) as step_engine,
        bm.Engine(tmp / "models.db", workflows=[via_models]) as model_engine,
    ):
        for trial in range(runs + 20):
            for engine, wf, samples in ((step_engine, via_steps, steps), (model_engine, via_models, models)):
                started = time.perf_counter()
                await (await engine.start(wf, CALLS)).result()
                if trial >= 20:  # warm-up
                    samples.append((time.perf_counter() - started) / CALLS)
    return steps, models


WORKER_MODULE = textwrap.dedent(
    """
    import bandmaster as bm

    @bm.workflow
    async def classify(i: int) -> str:
        response = await bm.call_model("classification", f"ticket {i}")
        return response.model
    """
)
MODELS_YAML = textwrap.dedent(
    """
    models:
      old: {provider: callable, function: "bench_models_fns:old"}
      new: {provider: callable, function: "bench_models_fns:new"}
    aliases:
      classification:
        versions: {production: old, canary: new}
        weights: {production: 1.0, canary: 0.0}
    """
)
FUNCTIONS = "def old(text: str) -> str:\n    return 'old'\n\n\ndef new(text: str) -> str:\n    return 'new'\n"


async def hot_switch(tmp: Path, trials: int) -> list[float]:
    (tmp / "bench_models_wf.py").write_text(WORKER_MODULE)
    (tmp / "bench_models_fns.py").write_text(FUNCTIONS)
    (tmp / "models.yaml").write_text(MODELS_YAML)
    db = tmp / "hot.db"
    env = {**os.environ, "PYTHONPATH": str(tmp)}
    worker = subprocess.Popen(  # noqa: ASYNC220 - started once, before timing begins
        [
            sys.executable,
            "-m",
            "bandmaster.cli",
            "worker",
            str(tmp / "bench_models_wf.py"),
            "--db",
            str(db),
            "--models",
            str(tmp / "models.yaml"),
            "--poll",
            "0.01",
        ],
        env=env,
        stderr=subprocess.DEVNULL,
        cwd=tmp,
    )
    delays = []
    try:
        registry = bm.Registry.load(tmp / "models.yaml")
        async with bm.Engine(db, worker=False, poll_interval=0.01) as client:
            hub = ModelHub(registry, client.store)
            for trial in range(trials):
                want = "new" if trial % 2 == 0 else "old"
                canary = 1.0 if want == "new" else 0.0
                weights = {"production": 1.0 - canary, "canary": canary}
                hub.set_alias("classification", weights=weights, changed_by="bench")
                switched = time.perf_counter()
                while True:
                    handle = await client.start("classify", trial)
                    served = await handle.result(timeout=10)
                    if served == want:
                        delays.append(time.perf_counter() - switched)
                        break
    finally:
        worker.terminate()
        worker.wait(10)
    return delays


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return {"p50": statistics.median(ordered), "p99": p99, "n": len(ordered)}


async def main(quick: bool) -> dict[str, Any]:
    runs = 100 if quick else 500
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        step_samples, model_samples = await per_call(tmp, runs)
        steps, models = summary(step_samples), summary(model_samples)
        extra = models["p50"] - steps["p50"]
        switch = await hot_switch(tmp, 3 if quick else 10)
    result: dict[str, Any] = {
        "plain_step_us": steps["p50"] * 1e6,
        "call_model_us": models["p50"] * 1e6,
        "call_model_extra_us": extra * 1e6,
        "hot_switch_s": {"median": statistics.median(switch), "max": max(switch), "trials": len(switch)},
    }
    print(f"plain step, per call       p50 {steps['p50'] * 1e6:7.1f} µs")
    print(f"call_model, per call       p50 {models['p50'] * 1e6:7.1f} µs")
    verdict = "PASS" if extra * 1e6 <= 50 else "MISS"
    print(f"call_model extra per call      {extra * 1e6:7.1f} µs   target <= 50 µs   {verdict}")
    verdict = "PASS" if max(switch) <= 1.0 else "MISS"
    print(
        f"hot switch to another worker   median {statistics.median(switch) * 1000:.0f} ms, "
        f"max {max(switch) * 1000:.0f} ms over {len(switch)} switches   target <= 1 s   {verdict}"
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (CI smoke run)")
    parser.add_argument("--json", help="write results as JSON to this path")
    args = parser.parse_args()
    results = asyncio.run(main(args.quick))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
