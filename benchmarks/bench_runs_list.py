"""How long the dashboard's runs list takes with each filter, on a journal of many runs.

    .venv/bin/python benchmarks/bench_runs_list.py [--runs 100000] [--repeat 20]

Builds a journal of ``--runs`` queued runs (enqueued by an engine without a worker, inputs of
about 60 characters), then times ``Engine.list`` (one page of 51, as the page asks) with:
nothing (the baseline: newest first, an index scan), a status, a workflow, a time range,
an id prefix, a text search that matches nothing (the worst case: every input is read), a
text search that matches often, and the duration orders. Prints the median per query and its
ratio to the baseline measured in the same run. Measurements, not tests: exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bandmaster as bm


@bm.workflow
async def ticket(text: str) -> str:
    return text


WORDS = ["invoice", "refund", "login", "password", "export", "shipping", "charged", "account"]


async def build(db: Path, runs: int) -> None:
    async with bm.Engine(db, workflows=[ticket], worker=False) as engine:
        for n in range(runs):
            text = f"ticket {n}: my {WORDS[n % len(WORDS)]} question about order {n * 7919 % 100000}"
            await engine.start(ticket, text, run_id=f"r{n:08d}")


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "journal.db"
        began = time.perf_counter()
        await build(db, options.runs)
        print(f"journal of {options.runs:,} runs built in {time.perf_counter() - began:.1f} s")
        async with bm.Engine(db, worker=False) as engine:
            now = datetime.now(UTC)
            queries: dict[str, dict[str, Any]] = {
                "newest (baseline)": {},
                "status=queued": {"status": "queued"},
                "workflow=ticket": {"workflow": "ticket"},
                "last 10 s": {"created_after": now - timedelta(seconds=10)},
                "id_prefix=r0005": {"id_prefix": "r0005"},
                "search, no match": {"search": "no such words"},
                "search, 1 in 8 match": {"search": "refund"},
                "order=oldest": {"order": "oldest"},
                "order=longest": {"order": "longest"},
            }
            await engine.list(limit=51)  # warm the page cache for every query alike
            baseline = 0.0
            for name, filters in queries.items():
                seconds = await timed(lambda f=filters: engine.list(limit=51, **f), options.repeat)
                baseline = baseline or seconds
                print(f"{name:24} {seconds * 1000:9.2f} ms   x{seconds / baseline:7.1f}")


if __name__ == "__main__":
    asyncio.run(main())
