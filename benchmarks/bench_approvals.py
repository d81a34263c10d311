"""What a human approval costs next to the plain durable wait it is built on.

Baseline, measured in the same run on the same disk: ``bm.wait_for("review", timeout, default)``
woken by ``engine.signal``. Approval: ``bm.approval("review", payload, timeout, default)``
decided by ``engine.approvals.approve``. For each:

1. park N runs until the journal shows them all ``waiting`` (wall time, and RSS growth);
2. decide / signal all of them and wait until the journal shows them all ``completed``;
3. one run at a time: decide / signal → ``handle.result()`` latency, p50 and p99.

A script, not a test: it prints numbers and ratios and always exits 0.

    .venv/bin/python benchmarks/bench_approvals.py            # N = 2,000 (about 20 s)
    .venv/bin/python benchmarks/bench_approvals.py --quick    # N = 300
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil

import bandmaster as bm

TIMEOUT = 3600.0


@bm.workflow
async def waits(i: int) -> str:
    answer = await bm.wait_for("review", timeout=TIMEOUT, default="approve")
    return str(answer)


@bm.workflow
async def approves(i: int) -> str:
    decision = await bm.approval("review", {"ticket": i}, timeout=TIMEOUT, default="approve")
    return decision.action


def rss_mb() -> float:
    gc.collect()
    return float(psutil.Process(os.getpid()).memory_info().rss) / 2**20


def count(db: Path, workflow: str, status: str) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT COUNT(*) FROM runs WHERE workflow = ? AND status = ?", (workflow, status))
        return int(row.fetchone()[0])


async def until(db: Path, workflow: str, status: str, n: int) -> None:
    deadline = time.monotonic() + 300
    while count(db, workflow, status) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"{workflow}: {status} never reached {n}")
        await asyncio.sleep(0.02)


Wake = Callable[[bm.Engine, str], Awaitable[Any]]


async def wake_wait(engine: bm.Engine, run_id: str) -> None:
    await engine.signal(run_id, "review", "approve")


async def wake_approval(engine: bm.Engine, run_id: str) -> None:
    await engine.approvals.approve(run_id, by="bench")


async def measure(
    db: Path, wf: bm.Workflow[[int], str], wake: Wake, n: int, latency_runs: int
) -> dict[str, float]:
    async with bm.Engine(db, workflows=[wf], poll_interval=0.01) as engine:
        warm = await engine.start(wf, -1)  # import, prepare statements, first journal pages
        await until(db, wf.name, "waiting", 1)
        await wake(engine, warm.id)
        await warm.result()
        before = rss_mb()
        started = time.perf_counter()
        handles = [await engine.start(wf, i) for i in range(n)]
        await until(db, wf.name, "waiting", n)
        park_s = time.perf_counter() - started
        grown = rss_mb() - before
        started = time.perf_counter()
        for handle in handles:
            await wake(engine, handle.id)
        await until(db, wf.name, "completed", n + 1)
        resume_s = time.perf_counter() - started
        assert all(await asyncio.gather(*(h.result() for h in handles)))
        latencies = []
        for i in range(latency_runs):
            handle = await engine.start(wf, n + i)
            await until(db, wf.name, "waiting", 1)
            started = time.perf_counter()
            await wake(engine, handle.id)
            await handle.result()
            latencies.append(time.perf_counter() - started)
    latencies.sort()
    return {
        "park_ms_per_run": park_s * 1000 / n,
        "rss_kb_per_run": grown * 1024 / n,
        "resume_ms_per_run": resume_s * 1000 / n,
        "latency_p50_ms": statistics.median(latencies) * 1000,
        "latency_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="N = 300 instead of 2,000")
    args = parser.parse_args()
    n, latency_runs = (300, 30) if args.quick else (2000, 100)
    with tempfile.TemporaryDirectory() as tmp:
        base = await measure(Path(tmp) / "wait.db", waits, wake_wait, n, latency_runs)
        appr = await measure(Path(tmp) / "approval.db", approves, wake_approval, n, latency_runs)
    print(f"{n:,} runs parked, then woken; {latency_runs} single-run latencies")
    print(f"{'':34}{'wait_for+signal':>16}{'approval':>12}{'ratio':>8}")
    labels = {
        "park_ms_per_run": "park (start → waiting), ms/run",
        "rss_kb_per_run": "RSS while pending, KB/run",
        "resume_ms_per_run": "wake all → completed, ms/run",
        "latency_p50_ms": "decide → result(), p50 ms",
        "latency_p99_ms": "decide → result(), p99 ms",
    }
    for key, label in labels.items():
        ratio = appr[key] / base[key] if base[key] > 0 else float("nan")
        print(f"{label:34}{base[key]:>16.3f}{appr[key]:>12.3f}{ratio:>7.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
