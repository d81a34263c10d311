"""What journal redaction costs on the Temporal backend: a 10-step chain without a redactor and
with ``RedactPII()``, on values that repeat and on values that change every step, in one run.

    .venv/bin/python benchmarks/bench_temporal_redact.py            # starts its own dev server
    .venv/bin/python benchmarks/bench_temporal_redact.py --runs 10 --target host:7233

With a redactor each step's output is redacted inside its activity, the run's input in the
client and its result in one local activity. Reported per step (run wall time / 10), p50, and
as a ratio to the chain without a redactor. A measurement, not a test: exits 0 whatever the
numbers. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import redact_chain as rc
from bench_temporal import dev_server, pct

import bandmaster as bm

VARIANTS = ("plain", "redacted, repeated values", "redacted, new values")


async def measure(target: str, runs: int, warmup: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in VARIANTS}
    queue = f"redact-{uuid.uuid4().hex[:6]}"
    async with bm.TemporalEngine(target, task_queue=queue, workflows=[rc.plain, rc.redacted]) as engine:

        async def one(kind: str, counter: int) -> float:
            wf = rc.plain if kind == "plain" else rc.redacted
            varied = kind.endswith("new values")
            text = f"{rc.NOTE} {counter}" if varied else rc.NOTE  # new input, new strings
            started = time.perf_counter()
            await (await engine.start(wf, text, varied)).result()
            return (time.perf_counter() - started) * 1000 / rc.STEPS

        for i in range(warmup):  # loads Presidio, fills the connection pools
            for kind in VARIANTS:
                await one(kind, -1 - i)
        for i in range(runs):  # interleaved, so drift hits every variant alike
            for kind in VARIANTS:
                times[kind].append(await one(kind, i))
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", help="an existing Temporal frontend (default: start a dev server)")
    parser.add_argument("--runs", type=int, default=15, help="measured runs per variant")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-redact-") as tmp, contextlib.ExitStack() as stack:
        target = args.target or stack.enter_context(dev_server(Path(tmp)))
        times = await measure(target, args.runs, args.warmup)
    base = statistics.median(times["plain"])
    print(f"{'10-step chain on Temporal, ms per step':40} {'p50':>8} {'p90':>8} {'/ plain':>8}")
    for kind, values in times.items():
        p50 = statistics.median(values)
        print(f"  {kind:38} {p50:8.2f} {pct(values, 0.9):8.2f} {p50 / base:8.2f}")


if __name__ == "__main__":
    asyncio.run(main())
