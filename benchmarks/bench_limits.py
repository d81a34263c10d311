"""Rate and concurrency limits (``models.<name>.limits``) on the embedded engine: what the
limiter adds to a call that is under its limit, and how close to the limit a saturated model
runs.

    .venv/bin/python benchmarks/bench_limits.py [--quick] [--json PATH]

1. overhead: a workflow calling a zero-latency callable model N times through ``bm.call_model``,
   once with the model unlimited and once with ``limits: {rpm, tpm, concurrency}`` far above
   the call rate (so nothing waits), runs interleaved on two journals; the difference per call
   is the limiter's own cost (its permits come from the journal in blocks: one round trip per
   ``BLOCK_SPAN`` seconds of permits, and concurrency slots kept while in use). Target: <= 20 µs.
2. saturation: many runs call a model limited to 100 requests per second (and 8 in flight), at
   once; the rate at which the model was actually asked (first to last call) against the limit.
   Target: >= 90%.
Measurements, not tests: the script exits 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bandmaster as bm

CALLS = 10
SATURATED_RPS = 100.0
asked: list[float] = []  # when the saturated model was asked


def answer(text: str) -> str:
    return "billing"


async def slow_answer(text: str) -> str:
    asked.append(time.perf_counter())
    await asyncio.sleep(0.005)
    return "billing"


def registry(limits: dict[str, Any] | None, function: str = "answer") -> bm.Registry:
    entry: dict[str, Any] = {"provider": "callable", "function": f"bench_limits:{function}"}
    if limits is not None:
        entry["limits"] = limits
    return bm.Registry.from_dict({"models": {"fast": entry}})


@bm.workflow
async def calls(n: int) -> int:
    for i in range(n):
        await bm.call_model("fast", f"ticket {i}")
    return n


async def per_call(tmp: Path, runs: int) -> tuple[list[float], list[float]]:
    """Per-call time without and with limits, runs interleaved so both see the same machine."""
    unlimited, limited = [], []
    far_above = {"rpm": 60_000_000, "tpm": 10_000_000_000, "concurrency": 1000}
    async with (
        bm.Engine(tmp / "plain.db", workflows=[calls], registry=registry(None)) as plain,
        bm.Engine(tmp / "limited.db", workflows=[calls], registry=registry(far_above)) as capped,
    ):
        for trial in range(runs + 20):
            for engine, samples in ((plain, unlimited), (capped, limited)):
                started = time.perf_counter()
                await (await engine.start(calls, CALLS)).result()
                if trial >= 20:  # warm-up
                    samples.append((time.perf_counter() - started) / CALLS)
    return unlimited, limited


@bm.workflow
async def one_call(i: int) -> str:
    response = await bm.call_model("fast", f"ticket {i}")
    return str(response.output)


async def saturation(tmp: Path, count: int) -> float:
    """Calls per second the model saw with ``count`` runs calling it at once, over the limit."""
    limits = {"rpm": SATURATED_RPS * 60, "concurrency": 8}
    asked.clear()
    reg = registry(limits, "slow_answer")
    async with bm.Engine(tmp / "saturated.db", workflows=[one_call], registry=reg) as engine:
        handles = [await engine.start(one_call, i) for i in range(count)]
        for handle in handles:
            await handle.result(timeout=120)
    return (len(asked) - 1) / (asked[-1] - asked[0])


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return {"p50": statistics.median(ordered), "p99": p99, "n": len(ordered)}


async def main(quick: bool) -> dict[str, Any]:
    runs = 100 if quick else 500
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        plain_samples, limited_samples = await per_call(tmp, runs)
        rate = await saturation(tmp, 200 if quick else 1000)
    plain, limited = summary(plain_samples), summary(limited_samples)
    extra = limited["p50"] - plain["p50"]
    share = rate / SATURATED_RPS
    print(f"call_model, no limits, per call    p50 {plain['p50'] * 1e6:7.1f} µs")
    print(f"call_model, with limits, per call  p50 {limited['p50'] * 1e6:7.1f} µs")
    verdict = "ok" if extra <= 20e-6 else "OVER"
    print(f"limiter extra per call                 {extra * 1e6:7.1f} µs   target <= 20 µs   {verdict}")
    verdict = "ok" if share >= 0.9 else "UNDER"
    print(
        f"saturated: {rate:6.1f} calls/s of a {SATURATED_RPS:g}/s limit = {share:6.1%}"
        f"   target >= 90%   {verdict}"
    )
    return {"plain": plain, "limited": limited, "extra_s": extra, "saturated_rps": rate, "share": share}


if __name__ == "__main__":
    sys.modules.setdefault("bench_limits", sys.modules["__main__"])  # the registry's callables
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (CI smoke run)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    results = asyncio.run(main(args.quick))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
