"""bandmaster on Temporal versus the raw temporalio SDK and the embedded engine, in one run.

    .venv/bin/python benchmarks/bench_temporal.py                  # starts its own dev server
    .venv/bin/python benchmarks/bench_temporal.py --runs 10 --workers 1,8 --json out.json
    .venv/bin/python benchmarks/bench_temporal.py --target host:7233   # an existing server

1. Latency: a 10-step chain of no-op steps, runs one at a time, with activities and with local
   activities, written with bandmaster and directly with the SDK (same server, same process,
   same sandbox and data converter; rounds interleave the variants so drift hits all alike).
   Reported per step (run wall time / 10), and bandmaster's overhead ratio against the SDK.
2. The same chain on the embedded engine (SQLite) for comparison.
3. Throughput: N ``bandmaster worker --backend temporal`` processes serve many concurrent
   chains started by this process; steps per second.

A measurement, not a test: exits 0 whatever the numbers. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import temporal_chain as tc
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

import bandmaster as bm
from bandmaster.temporal import DevServer, sandbox_runner

BIN = Path(sys.executable).parent


@contextlib.contextmanager
def dev_server(folder: Path, memory: bool = False) -> Iterator[str]:
    """A dev server for this benchmark (state in ``folder``, or in memory); yields its target."""
    with DevServer(None if memory else folder / "temporal.db", folder / "server.log") as server:
        yield server.target


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def latency(target: str, runs: int, warmup: int) -> dict[str, list[float]]:
    """Per-step wall time (ms) of sequential 10-step runs, four variants interleaved."""
    client = await Client.connect(target, data_converter=pydantic_data_converter)
    raw_queue = f"raw-{uuid.uuid4().hex[:6]}"
    raw_worker = Worker(
        client,
        task_queue=raw_queue,
        workflows=[tc.RawChain, tc.RawChainLocal],
        activities=[tc.raw_noop],
        workflow_runner=sandbox_runner(["temporal_chain"]),
    )
    times: dict[str, list[float]] = {k: [] for k in ("sdk", "bandmaster", "sdk local", "bandmaster local")}
    async with (
        raw_worker,
        bm.TemporalEngine(
            target, task_queue=f"bm-{uuid.uuid4().hex[:6]}", workflows=[tc.chain, tc.chain_local]
        ) as engine,
    ):

        async def one(kind: str) -> float:
            started = time.perf_counter()
            if kind.startswith("sdk"):
                name = "raw_chain_local" if kind.endswith("local") else "raw_chain"
                result = await client.execute_workflow(
                    name, tc.STEPS, id=uuid.uuid4().hex, task_queue=raw_queue
                )
            else:
                wf = tc.chain_local if kind.endswith("local") else tc.chain
                result = await (await engine.start(wf, tc.STEPS)).result()
            assert result == tc.STEPS, result
            return (time.perf_counter() - started) * 1000 / tc.STEPS

        for i in range(warmup + runs):
            for kind in times:
                elapsed = await one(kind)
                if i >= warmup:
                    times[kind].append(elapsed)
    return times


async def embedded(folder: Path, runs: int) -> list[float]:
    values = []
    async with bm.Engine(folder / "embedded.db", workflows=[tc.chain]) as engine:
        for i in range(runs + 5):
            started = time.perf_counter()
            assert await (await engine.start(tc.chain, tc.STEPS)).result() == tc.STEPS
            if i >= 5:
                values.append((time.perf_counter() - started) * 1000 / tc.STEPS)
    return values


def start_workers(target: str, folder: Path, processes: int, queue: str) -> list[Any]:
    env = {**os.environ, "BANDMASTER_BACKEND": "temporal", "BANDMASTER_TEMPORAL_TARGET": target}
    procs = []
    for n in range(processes):
        out = open(folder / f"worker-{processes}-{n}.log", "wb")  # noqa: SIM115 - closed by stop_workers
        command = [str(BIN / "bandmaster"), "worker", str(Path(tc.__file__)), "--task-queue", queue]
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
        )
        procs.append((proc, out))
    return procs


def stop_workers(procs: list[Any]) -> None:
    for proc, _ in procs:
        proc.send_signal(signal.SIGTERM)
    for proc, out in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


async def throughput(target: str, folder: Path, processes: int, runs: int) -> dict[str, float]:
    """``processes`` worker processes; ``runs`` concurrent 10-step chains; steps/s."""
    queue = f"tp-{uuid.uuid4().hex[:6]}"
    procs = start_workers(target, folder, processes, queue)
    try:
        async with bm.TemporalEngine(target, task_queue=queue, worker=False) as client:
            # warm-up: every worker up and polling
            await asyncio.gather(*[(await client.start("chain", 1)).result() for _ in range(processes * 2)])
            started = time.perf_counter()
            handles = [await client.start("chain", tc.STEPS) for _ in range(runs)]
            results = await asyncio.gather(*(h.result() for h in handles))
            wall = time.perf_counter() - started
        assert results == [tc.STEPS] * runs
    finally:
        stop_workers(procs)
    return {"processes": processes, "runs": runs, "wall_s": wall, "steps_per_s": runs * tc.STEPS / wall}


async def sdk_throughput(target: str, runs: int) -> dict[str, float]:
    """The baseline for 3: the raw SDK chain, one in-process worker, ``runs`` concurrent runs."""
    client = await Client.connect(target, data_converter=pydantic_data_converter)
    queue = f"rawtp-{uuid.uuid4().hex[:6]}"
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[tc.RawChain],
        activities=[tc.raw_noop],
        workflow_runner=sandbox_runner(["temporal_chain"]),
    )
    async with worker:
        await client.execute_workflow("raw_chain", 1, id=uuid.uuid4().hex, task_queue=queue)
        started = time.perf_counter()
        handles = [
            await client.start_workflow("raw_chain", tc.STEPS, id=uuid.uuid4().hex, task_queue=queue)
            for _ in range(runs)
        ]
        results = await asyncio.gather(*(h.result() for h in handles))
        wall = time.perf_counter() - started
    assert results == [tc.STEPS] * runs
    return {"processes": 0, "runs": runs, "wall_s": wall, "steps_per_s": runs * tc.STEPS / wall}


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", help="an existing Temporal frontend (default: start a dev server)")
    parser.add_argument("--runs", type=int, default=20, help="measured runs per latency variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", default="1,8", help="worker process counts for the throughput test")
    parser.add_argument("--tp-runs", type=int, default=200, help="concurrent runs in the throughput test")
    parser.add_argument("--memory", action="store_true", help="dev server without a database file")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-temporal-") as tmp:
        folder = Path(tmp)
        with contextlib.ExitStack() as stack:
            target = args.target or stack.enter_context(dev_server(folder, args.memory))
            print(
                f"Temporal at {target}; {os.cpu_count()} CPUs; {args.runs} runs per variant, 10 steps each\n"
            )
            times = await latency(target, args.runs, args.warmup)
            emb = await embedded(folder, args.runs * 5)
            sdk_tp = await sdk_throughput(target, args.tp_runs)
            tp = [await throughput(target, folder, int(n), args.tp_runs) for n in args.workers.split(",")]

    p50 = {k: statistics.median(v) for k, v in times.items()}
    print(f"{'10-step chain, ms per step':34} {'p50':>8} {'p90':>8}")
    for kind, values in times.items():
        print(f"  {kind:32} {p50[kind]:8.2f} {pct(values, 0.9):8.2f}")
    print(f"  {'embedded (SQLite)':32} {statistics.median(emb):8.3f} {pct(emb, 0.9):8.3f}")
    ratio = p50["bandmaster"] / p50["sdk"]
    ratio_local = p50["bandmaster local"] / p50["sdk local"]
    for label, value in (("activities", ratio), ("local activities", ratio_local)):
        verdict = "PASS" if value <= 1.10 else "MISS"
        print(f"bandmaster / SDK, {label + ':':18} {value:.3f}  (target <= 1.10: {verdict})")
    print(f"activities / local activities (bandmaster): {p50['bandmaster'] / p50['bandmaster local']:.1f}x")
    print(f"Temporal activities / embedded: {p50['bandmaster'] / statistics.median(emb):.0f}x\n")
    print(
        f"throughput, raw SDK, 1 in-process worker, {sdk_tp['runs']} concurrent runs: "
        f"{sdk_tp['steps_per_s']:.0f} steps/s ({sdk_tp['wall_s']:.1f} s)"
    )
    for row in tp:
        print(
            f"throughput, {row['processes']} worker process(es), {row['runs']} concurrent runs: "
            f"{row['steps_per_s']:.0f} steps/s ({row['wall_s']:.1f} s)"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "latency_ms_per_step": times,
                    "embedded_ms_per_step": emb,
                    "p50": p50,
                    "ratio": ratio,
                    "ratio_local": ratio_local,
                    "throughput": tp,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    asyncio.run(main())
