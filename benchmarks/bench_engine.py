"""Engine benchmarks for bandmaster, measured against a raw-sqlite3 floor taken in the same run.

    .venv/bin/python benchmarks/bench_engine.py            # full sizes
    .venv/bin/python benchmarks/bench_engine.py --quick    # CI smoke run (< 30 s)
    .venv/bin/python benchmarks/bench_engine.py --json results.json --profile --repeat 3

These are measurements, not tests: the script exits 0 even when a target is missed.
See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import hashlib
import io
import json
import logging
import math
import os
import platform
import pstats
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

import bandmaster as bm

CHAIN_LENGTH = 10
FANOUT_WIDTH = 1000
FANOUT_SLEEP = 0.1

REFERENCE_NUMBERS = (
    # (system, per-step latency, throughput under load); same workload, same machine kind,
    # measured by the project.
    ("raw sqlite3 floor", "0.05 ms/step", "-"),
    ("LangGraph + SQLite checkpointer", "2.8 ms/step", "~400 steps/s"),
    ("DBOS on SQLite", "4-5 ms/step", "~200 steps/s"),
    ("Temporal dev server, activities", "55 ms/step", "~50 steps/s"),
)


# --- workload ---------------------------------------------------------------------------------


@bm.step
async def noop(i: int) -> int:
    return i


@bm.step
async def sleepy(i: int) -> int:
    await asyncio.sleep(FANOUT_SLEEP)
    return i


@bm.workflow
async def chain(i: int) -> int:
    total = 0
    for _ in range(CHAIN_LENGTH):
        total += await noop(i)
    return total


def _chain_at(version: str) -> bm.Workflow[[int], int]:
    """``chain`` under the name ``versioned`` at ``version``: the same code, three hosted at once."""
    return bm.workflow(name="versioned", version=version)(chain.fn)


VERSIONED = [_chain_at(v) for v in ("1", "2", "3")]


@bm.workflow
async def empty(i: int) -> int:
    """A run with no steps: its cost is the per-run overhead (start, finish, result)."""
    return i


@bm.workflow
async def fanout(width: int) -> int:
    results = await asyncio.gather(*(sleepy(i) for i in range(width)))
    return len(results)


@bm.workflow
async def parked(i: int) -> int:
    await bm.wait_for("go")
    value: int = await noop(i)
    return value


# --- sizes and results --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    floor_rows: int
    chain_runs: int
    chain_warmup: int
    direct_runs: int
    throughput_runs: int
    memory_runs: int
    profile_runs: int


FULL = Sizes(
    floor_rows=5000,
    chain_runs=500,
    chain_warmup=50,
    direct_runs=5000,
    throughput_runs=500,
    memory_runs=10_000,
    profile_runs=500,
)
QUICK = Sizes(
    floor_rows=1000,
    chain_runs=100,
    chain_warmup=10,
    direct_runs=1000,
    throughput_runs=200,
    memory_runs=1000,
    profile_runs=100,
)


@dataclass
class Row:
    """One line of the summary table. ``ok`` is None for numbers without a target."""

    name: str
    value: float
    unit: str
    target: str = "-"
    ratio: str = "-"
    ok: bool | None = None

    @property
    def verdict(self) -> str:
        return "info" if self.ok is None else ("PASS" if self.ok else "MISS")


@dataclass
class Report:
    mode: str
    machine: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    profile: str | None = None


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each number over repetitions (``--repeat``); the repetitions are kept too."""
    if len(results) == 1:
        return results[0]
    combined: dict[str, Any] = {key: statistics.median(r[key] for r in results) for key in results[0]}
    combined["repetitions"] = results
    return combined


def log(message: str) -> None:
    print(message, flush=True)


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


class LogCounter(logging.Handler):
    """Counts what the engine logs (by message shape, run ids elided) instead of printing it."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        shape = re.sub(r"\b[0-9a-f]{32}\b", "<run>", record.getMessage())
        self.counts[f"{record.levelname} {record.name}: {shape}"] += 1

    def take(self) -> dict[str, int]:
        counts, self.counts = dict(self.counts), Counter()
        return counts


ENGINE_LOG = LogCounter()


# --- 0. floor ------------------------------------------------------------------------------------


def bench_floor(db: Path, rows: int) -> dict[str, Any]:
    """One row per step, one transaction per row, on a plain sqlite3 connection."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE steps (run_id TEXT, seq INT, output TEXT, PRIMARY KEY (run_id, seq)) WITHOUT ROWID"
    )
    samples: list[float] = []
    warmup = rows // 10
    clock = time.perf_counter_ns
    for n in range(warmup + rows):
        run_id = f"run-{n // CHAIN_LENGTH:08d}"
        t0 = clock()
        conn.execute("BEGIN")
        conn.execute("INSERT INTO steps VALUES (?, ?, ?)", (run_id, n % CHAIN_LENGTH, str(n)))
        conn.execute("COMMIT")
        if n >= warmup:
            samples.append((clock() - t0) / 1000)
    conn.close()
    return {
        "rows": rows,
        "p50_us": percentile(samples, 50),
        "p99_us": percentile(samples, 99),
        "mean_us": sum(samples) / len(samples),
    }


# --- 1. sequential chain -------------------------------------------------------------------------


async def _sequential_runs(engine: bm.Engine, wf: bm.Workflow[[int], int], runs: int) -> list[float]:
    """Wall time of start + result for each run, one at a time, in µs."""
    clock = time.perf_counter_ns
    samples: list[float] = []
    for i in range(runs):
        t0 = clock()
        handle = await engine.start(wf, i)
        await handle.result()
        samples.append((clock() - t0) / 1000)
    return samples


async def bench_chain(db: Path, sizes: Sizes) -> dict[str, Any]:
    async with bm.Engine(db, workflows=[chain, empty]) as engine:
        await _sequential_runs(engine, chain, sizes.chain_warmup)
        await _sequential_runs(engine, empty, sizes.chain_warmup)
        run_us = await _sequential_runs(engine, chain, sizes.chain_runs)
        empty_us = await _sequential_runs(engine, empty, sizes.chain_runs)
    per_step = [t / CHAIN_LENGTH for t in run_us]
    run_p50, empty_p50 = percentile(run_us, 50), percentile(empty_us, 50)
    return {
        "runs": sizes.chain_runs,
        "steps_per_run": CHAIN_LENGTH,
        "per_step_p50_us": percentile(per_step, 50),
        "per_step_p99_us": percentile(per_step, 99),
        "per_step_mean_us": sum(per_step) / len(per_step),
        "run_p50_us": run_p50,
        "empty_run_p50_us": empty_p50,
        # What one more step in a run costs, without the run's own start/finish overhead.
        "marginal_step_p50_us": (run_p50 - empty_p50) / CHAIN_LENGTH,
    }


async def bench_direct(runs: int) -> dict[str, Any]:
    """The same workflow called as a plain coroutine: steps are plain function calls."""
    clock = time.perf_counter_ns
    for i in range(runs // 10):
        await chain(i)
    samples: list[float] = []
    for i in range(runs):
        t0 = clock()
        await chain(i)
        samples.append((clock() - t0) / 1000 / CHAIN_LENGTH)
    return {
        "runs": runs,
        "per_step_p50_us": percentile(samples, 50),
        "per_step_p99_us": percentile(samples, 99),
    }


async def profile_chain(db: Path, runs: int, top: int = 15) -> str:
    async with bm.Engine(db, workflows=[chain]) as engine:
        await _sequential_runs(engine, chain, max(10, runs // 10))
        profiler = cProfile.Profile()
        profiler.enable()
        await _sequential_runs(engine, chain, runs)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats(pstats.SortKey.TIME).print_stats(top)
    header = f"cProfile of benchmark 1: {runs} sequential runs x {CHAIN_LENGTH} steps, top {top} by tottime\n"
    return header + out.getvalue().strip()


# --- 2. fan-out ----------------------------------------------------------------------------------


def count_steps(db: Path, run_id: str) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM steps WHERE run_id = ? AND kind = 'step' AND status = 'completed'",
            (run_id,),
        ).fetchone()
    return int(row[0])


async def bench_fanout(db: Path) -> dict[str, Any]:
    async with bm.Engine(db, workflows=[fanout]) as engine:
        await (await engine.start(fanout, 10)).result()  # warm-up: codecs, first transaction
        t0 = time.perf_counter()
        handle = await engine.start(fanout, FANOUT_WIDTH)
        value = await handle.result()
        wall = time.perf_counter() - t0
    rows = count_steps(db, handle.id)
    return {
        "width": FANOUT_WIDTH,
        "step_sleep_s": FANOUT_SLEEP,
        "wall_s": wall,
        "overhead_s": wall - FANOUT_SLEEP,
        "result": value,
        "journal_rows": rows,
    }


# --- 3. throughput -------------------------------------------------------------------------------


async def bench_throughput(db: Path, runs: int) -> dict[str, Any]:
    async with bm.Engine(db, workflows=[chain]) as engine:
        await asyncio.gather(*[(await engine.start(chain, i)).result() for i in range(20)])  # warm-up
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        handles = [await engine.start(chain, i) for i in range(runs)]
        started = time.perf_counter() - t0
        results = await asyncio.gather(*(h.result() for h in handles))
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    steps = runs * CHAIN_LENGTH
    return {
        "runs": runs,
        "results_ok": results == [i * CHAIN_LENGTH for i in range(runs)],
        "steps": steps,
        "wall_s": wall,
        "start_all_s": started,
        "steps_per_s": steps / wall,
        "cpu_s": cpu,
        "cpu_utilisation": cpu / wall,
    }


async def bench_versions(tmp: Path, sizes: Sizes, rounds: int = 3) -> dict[str, Any]:
    """The same chain unversioned and as version 3 of three hosted side by side (claims match
    run keys, lookups go by version), alternated ``rounds`` times in this one process."""
    steps: dict[str, list[float]] = {"plain": [], "versioned": []}
    rates: dict[str, list[float]] = {"plain": [], "versioned": []}
    for k in range(rounds):
        for kind, hosted, wf in (("plain", [chain], chain), ("versioned", VERSIONED, VERSIONED[-1])):
            async with bm.Engine(tmp / f"versions-{kind}-{k}.db", workflows=hosted) as engine:
                await _sequential_runs(engine, wf, sizes.chain_warmup)
                run_us = await _sequential_runs(engine, wf, sizes.chain_runs)
                steps[kind].append(percentile([t / CHAIN_LENGTH for t in run_us], 50))
                t0 = time.perf_counter()
                handles = [await engine.start(wf, i) for i in range(sizes.throughput_runs)]
                await asyncio.gather(*(h.result() for h in handles))
                rates[kind].append(sizes.throughput_runs * CHAIN_LENGTH / (time.perf_counter() - t0))
    return {
        "rounds": rounds,
        "step_p50_us": {kind: statistics.median(v) for kind, v in steps.items()},
        "steps_per_s": {kind: statistics.median(v) for kind, v in rates.items()},
        "step_ratio": statistics.median(steps["versioned"]) / statistics.median(steps["plain"]),
        "throughput_ratio": statistics.median(rates["versioned"]) / statistics.median(rates["plain"]),
    }


# --- 4. memory of parked runs --------------------------------------------------------------------


def count_status(db: Path, workflow: str, status: str) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM runs WHERE workflow = ? AND status = ?", (workflow, status)
        ).fetchone()
    return int(row[0])


async def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


async def _park(
    engine: bm.Engine, db: Path, runs: int, timeout: float
) -> tuple[list[bm.RunHandle[int]], bool]:
    """Start ``runs`` runs of ``parked`` and wait until the journal shows all of them waiting."""
    handles = [await engine.start(parked, i) for i in range(runs)]
    parked_all = await wait_until(lambda: count_status(db, "parked", "waiting") == runs, timeout)
    return handles, parked_all


async def _warm_up_parked(engine: bm.Engine, db: Path, timeout: float) -> None:
    """One full park/signal/resume cycle, so codecs and caches exist before measuring."""
    warm = await engine.start(parked, -1)
    await wait_until(lambda: count_status(db, "parked", "waiting") == 1, timeout)
    await engine.signal(warm.id, "go")
    await warm.result()


async def bench_memory(db: Path, runs: int, timeout: float) -> dict[str, Any]:
    """RSS of runs parked on a signal; then the engine's time to resume them all, observed in
    the journal (no client waits on them meanwhile)."""
    async with bm.Engine(db, workflows=[parked]) as engine:
        await _warm_up_parked(engine, db, timeout)
        gc.collect()
        rss_before = rss_mb()

        t0 = time.perf_counter()
        handles, all_parked = await _park(engine, db, runs, timeout)
        park_s = time.perf_counter() - t0
        waiting = count_status(db, "parked", "waiting")
        worker = getattr(engine, "_worker", None)  # private: how many runs the worker holds in memory
        in_memory = len(getattr(worker, "active", ())) if worker is not None else -1
        gc.collect()
        rss_waiting = rss_mb()

        t1 = time.perf_counter()
        for handle in handles:
            await engine.signal(handle.id, "go")
        signal_s = time.perf_counter() - t1
        # +1: the warm-up run
        all_done = await wait_until(
            lambda: count_status(db, "parked", "completed") == runs + 1, timeout, 0.01
        )
        resume_s = time.perf_counter() - t1
        rss_done = rss_mb()
        results = await asyncio.gather(*(h.result(timeout=timeout) for h in handles)) if all_done else []
    completed = count_status(db, "parked", "completed") - 1
    return {
        "runs": runs,
        "all_waiting": all_parked,
        "waiting": waiting,
        "active_in_worker_while_waiting": in_memory,
        "time_to_park_all_s": park_s,
        "rss_before_mb": rss_before,
        "rss_waiting_mb": rss_waiting,
        "rss_growth_mb": rss_waiting - rss_before,
        "rss_growth_kb_per_run": (rss_waiting - rss_before) * 1024 / runs,
        "rss_after_resume_mb": rss_done,
        "signal_all_s": signal_s,
        "resume_all_s": resume_s,
        "resumed_runs_per_s": runs / resume_s,
        "results_ok": results == list(range(runs)),
        "completed": completed,
    }


async def bench_resume_with_results(db: Path, runs: int, timeout: float) -> dict[str, Any]:
    """The same resume, but observed the way a client would: ``await handle.result()`` for every
    run at once. The difference to ``bench_memory``'s resume time is the cost of the waiting
    clients themselves."""
    async with bm.Engine(db, workflows=[parked]) as engine:
        await _warm_up_parked(engine, db, timeout)
        handles, _ = await _park(engine, db, runs, timeout)
        gc.collect()
        rss_waiting = rss_mb()
        t1 = time.perf_counter()
        for handle in handles:
            await engine.signal(handle.id, "go")
        try:
            results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout)
        except TimeoutError:
            results = []
        resume_s = time.perf_counter() - t1
        rss_done = rss_mb()
    return {
        "runs": runs,
        "resume_all_s": resume_s,
        "resumed_runs_per_s": runs / resume_s,
        "results_ok": results == list(range(runs)),
        "rss_waiting_mb": rss_waiting,
        "rss_after_resume_mb": rss_done,
    }


# --- report --------------------------------------------------------------------------------------


def build_rows(report: Report, memory_target_mb: float) -> None:
    d = report.details
    floor, ch, direct = d["floor"], d["chain"], d["direct"]
    fan, thr, mem, res = d["fanout"], d["throughput"], d["memory"], d["resume_results"]
    floor_p50 = floor["p50_us"]
    floor_rate = 1e6 / floor_p50
    p50 = ch["per_step_p50_us"]
    rows = [
        Row("0 floor: sqlite3 txn/row p50", floor_p50, "us", ratio="1.00x floor"),
        Row("0 floor: sqlite3 txn/row p99", floor["p99_us"], "us"),
        Row("1 chain: step p50", p50, "us", "<= 150 us", f"{p50 / floor_p50:.2f}x floor", p50 <= 150),
        Row("1 chain: step p50 / floor p50", p50 / floor_p50, "x", "<= 3.0x", ok=p50 / floor_p50 <= 3.0),
        Row(
            "1 chain: step p99",
            ch["per_step_p99_us"],
            "us",
            ratio=f"{ch['per_step_p99_us'] / floor_p50:.2f}x floor",
        ),
        Row(
            "1 chain: marginal step p50",
            ch["marginal_step_p50_us"],
            "us",
            ratio=f"{ch['marginal_step_p50_us'] / floor_p50:.2f}x floor",
        ),
        Row("1 chain: 0-step run p50", ch["empty_run_p50_us"], "us"),
        Row("1 direct call (no engine): step p50", direct["per_step_p50_us"], "us"),
        Row(
            "2 fan-out 1000 x sleep 0.1s: wall",
            fan["wall_s"],
            "s",
            "<= 0.5 s",
            f"{fan['wall_s'] / FANOUT_SLEEP:.2f}x ideal",
            fan["wall_s"] <= 0.5,
        ),
        Row(
            "2 fan-out: journal step rows",
            fan["journal_rows"],
            "rows",
            f"== {FANOUT_WIDTH}",
            ok=fan["journal_rows"] == FANOUT_WIDTH,
        ),
        Row(
            f"3 throughput: {thr['runs']} concurrent chains",
            thr["steps_per_s"],
            "steps/s",
            ">= 3000",
            f"{thr['steps_per_s'] / floor_rate:.2f}x floor rate",
            thr["steps_per_s"] >= 3000 and thr["results_ok"],
        ),
        Row(
            f"4 memory: RSS growth, {mem['runs']} waiting",
            mem["rss_growth_mb"],
            "MB",
            f"<= {memory_target_mb:g} MB",
            f"{mem['rss_growth_mb'] / memory_target_mb:.2f}x target",
            mem["all_waiting"] and mem["rss_growth_mb"] <= memory_target_mb,
        ),
        Row(
            "4 memory: runs completed after signal",
            mem["completed"],
            "runs",
            f"== {mem['runs']}",
            ok=mem["completed"] == mem["runs"] and mem["results_ok"],
        ),
        Row(
            "4 memory: time to resume all (journal)",
            mem["resume_all_s"],
            "s",
            ratio=f"{mem['resumed_runs_per_s']:.0f} runs/s",
        ),
        Row(
            "4 memory: time to resume all (result())",
            res["resume_all_s"],
            "s",
            ratio=f"{res['resumed_runs_per_s']:.0f} runs/s",
            ok=None if res["results_ok"] else False,
        ),
        Row(
            "5 versions: step p50, versioned / plain",
            d["versions"]["step_ratio"],
            "x",
            "<= 1.10x",
            ok=d["versions"]["step_ratio"] <= 1.10,
        ),
        Row(
            "5 versions: throughput, versioned / plain",
            d["versions"]["throughput_ratio"],
            "x",
            ">= 0.90x",
            ok=d["versions"]["throughput_ratio"] >= 0.90,
        ),
    ]
    warnings = sum(
        n for b in d.values() for msg, n in b.get("engine_log", {}).items() if msg.startswith("WARNING")
    )
    rows.append(Row("engine warnings logged (all benchmarks)", warnings, "lines", "== 0", ok=warnings == 0))
    report.rows = rows


def format_value(value: float, unit: str) -> str:
    if unit in ("rows", "runs", "lines"):
        return f"{value:.0f} {unit}"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "steps/s":
        return f"{value:,.0f} {unit}"
    if unit == "s":
        return f"{value:.3f} {unit}"
    return f"{value:.1f} {unit}"


def print_table(report: Report) -> None:
    headers = ("benchmark", "value", "target", "ratio", "status")
    lines = [(r.name, format_value(r.value, r.unit), r.target, r.ratio, r.verdict) for r in report.rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in (0, 2, 3, 4) else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    log("")
    log(fmt(headers))
    log("  ".join("-" * w for w in widths))
    for line in lines:
        log(fmt(line))
    log("")
    log("Reference numbers (measured by the project on this machine kind, same workload):")
    ref_width = max(len(name) for name, _, _ in REFERENCE_NUMBERS)
    for name, latency, rate in REFERENCE_NUMBERS:
        log(f"  {name.ljust(ref_width)}  {latency:>13}  {rate:>13}")
    ch, thr = report.details["chain"], report.details["throughput"]
    log(
        f"  {'bandmaster (this run)'.ljust(ref_width)}  {ch['per_step_p50_us'] / 1000:>5.3f} ms/step"
        f"  {thr['steps_per_s']:>7,.0f} steps/s"
    )


def source_digest() -> str:
    """Which engine code was measured: a hash of the installed package's .py files."""
    root = Path(bm.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def machine_info() -> dict[str, Any]:
    return {
        "source_digest": source_digest(),
        "loadavg_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "bandmaster": bm.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }


async def run_all(sizes: Sizes, tmp: Path, profile: bool, repeat: int, report: Report) -> None:
    d = report.details

    def logged(name: str) -> None:
        if counts := ENGINE_LOG.take():
            d[name]["engine_log"] = counts
            for message, n in counts.items():
                log(f"    engine log x{n}: {message}")

    floors, chains, directs = [], [], []
    for k in range(repeat):
        suffix = f" (repetition {k + 1}/{repeat})" if repeat > 1 else ""
        log(f"[0] floor: raw sqlite3, {sizes.floor_rows} rows, one transaction each{suffix}")
        floors.append(bench_floor(tmp / f"floor{k}.db", sizes.floor_rows))
        log(f"    p50 {floors[-1]['p50_us']:.1f} us, p99 {floors[-1]['p99_us']:.1f} us")
        log(f"[1] chain: {sizes.chain_runs} sequential runs x {CHAIN_LENGTH} no-op steps{suffix}")
        chains.append(await bench_chain(tmp / f"chain{k}.db", sizes))
        directs.append(await bench_direct(sizes.direct_runs))
        c = chains[-1]
        log(
            f"    per step p50 {c['per_step_p50_us']:.1f} us, p99 {c['per_step_p99_us']:.1f} us;"
            f" direct call {directs[-1]['per_step_p50_us']:.2f} us"
        )
    d["floor"], d["chain"], d["direct"] = combine(floors), combine(chains), combine(directs)
    if repeat > 1:
        log(
            f"    median of {repeat}: floor p50 {d['floor']['p50_us']:.1f} us,"
            f" step p50 {d['chain']['per_step_p50_us']:.1f} us"
        )
    logged("chain")

    log(f"[2] fan-out: one run, {FANOUT_WIDTH} parallel steps sleeping {FANOUT_SLEEP}s")
    d["fanout"] = await bench_fanout(tmp / "fanout.db")
    log(f"    wall {d['fanout']['wall_s']:.3f} s, journal rows {d['fanout']['journal_rows']}")
    logged("fanout")

    log(f"[3] throughput: {sizes.throughput_runs} concurrent runs x {CHAIN_LENGTH} steps")
    d["throughput"] = await bench_throughput(tmp / "throughput.db", sizes.throughput_runs)
    log(f"    {d['throughput']['steps_per_s']:,.0f} steps/s in {d['throughput']['wall_s']:.2f} s")
    logged("throughput")

    log(f"[4] memory: {sizes.memory_runs} runs waiting on a signal")
    d["memory"] = await bench_memory(tmp / "memory.db", sizes.memory_runs, timeout=300)
    m = d["memory"]
    log(
        f"    RSS +{m['rss_growth_mb']:.1f} MB while {m['waiting']} wait"
        f" ({m['rss_growth_kb_per_run']:.2f} KB/run);"
        f" parked in {m['time_to_park_all_s']:.2f} s; resumed all in {m['resume_all_s']:.2f} s"
    )
    logged("memory")
    d["resume_results"] = await bench_resume_with_results(tmp / "resume.db", sizes.memory_runs, timeout=300)
    r = d["resume_results"]
    log(f"    same resume awaited with {r['runs']} x handle.result(): {r['resume_all_s']:.2f} s")
    logged("resume_results")

    log("[5] versions: the chain unversioned, then as version 3 of 3 hosted, alternated 3 times")
    d["versions"] = await bench_versions(tmp, sizes)
    v = d["versions"]
    log(
        f"    step p50 {v['step_p50_us']['plain']:.1f} -> {v['step_p50_us']['versioned']:.1f} us"
        f" ({v['step_ratio']:.2f}x); {v['steps_per_s']['plain']:,.0f} -> {v['steps_per_s']['versioned']:,.0f}"
        f" steps/s ({v['throughput_ratio']:.2f}x)"
    )
    logged("versions")

    if profile:
        log(f"[p] cProfile of benchmark 1 ({sizes.profile_runs} runs)")
        report.profile = await profile_chain(tmp / "profile.db", sizes.profile_runs)
        ENGINE_LOG.take()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes for CI smoke runs (< 30 s)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="write the results as JSON to PATH")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile benchmark 1 and print the top 15 functions by tottime",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run benchmarks 0 and 1 N times, interleaved, and report the medians (default 1)",
    )
    args = parser.parse_args(argv)

    sizes = QUICK if args.quick else FULL
    engine_logger = logging.getLogger("bandmaster")
    engine_logger.addHandler(ENGINE_LOG)
    engine_logger.setLevel(logging.INFO)
    engine_logger.propagate = False
    # The 100 MB budget is for 10,000 parked runs (10 KB each); smaller runs get a scaled budget.
    memory_target_mb = 100 * sizes.memory_runs / 10_000
    report = Report(mode="quick" if args.quick else "full", machine=machine_info())
    log(
        f"bandmaster {bm.__version__} engine benchmarks ({report.mode}); python {report.machine['python']}, "
        f"sqlite {report.machine['sqlite']}, {report.machine['cpus']} cpus"
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bm-bench-") as tmp:
        asyncio.run(run_all(sizes, Path(tmp), args.profile, max(1, args.repeat), report))
    build_rows(report, memory_target_mb)
    print_table(report)
    if report.profile:
        log("")
        log(report.profile)
    log(f"\ntotal time {time.perf_counter() - t0:.1f} s")

    if args.json:
        payload = {
            "mode": report.mode,
            "machine": report.machine,
            "summary": [asdict(r) | {"status": r.verdict} for r in report.rows],
            "details": report.details,
            "profile": report.profile,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        log(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
