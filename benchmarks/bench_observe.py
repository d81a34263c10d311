"""What engine hooks cost per step: a 10-step chain with no hooks, with a no-op hook, with
OpenTelemetry tracing (every run sampled, or none), and with Prometheus metrics, measured in
the same run.

    .venv/bin/python benchmarks/bench_observe.py              # 150 runs x 9 rounds per setup
    .venv/bin/python benchmarks/bench_observe.py --quick      # smoke sizes: 60 runs x 3 rounds
    .venv/bin/python benchmarks/bench_observe.py --json out.json

Setups are interleaved round by round, in an order rotated each round, so that load from other
processes hits them alike; each number is the median over rounds of the per-round value, and
each "added" number the median over rounds of the difference to the baseline of the same
round. A measurement, not a test: it exits 0 even when the target (tracing adds <= 20 us per
step) is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Sequence
from pathlib import Path

from bench_engine import CHAIN_LENGTH, chain, empty  # the chain the engine benchmark measures
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler
from prometheus_client import CollectorRegistry

import bandmaster as bm
from bandmaster.observe import Metrics, Tracing

TARGET_TRACING_US = 20.0


class Discard(SpanExporter):
    """Counts spans and drops them: the export itself (network) is not what is measured."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def tracing(sampler: Sampler | None = None) -> list[bm.Hooks]:
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    return [Tracing(provider)]


def shutdown(hooks: list[bm.Hooks]) -> None:
    """Stop each setup's span-export thread, so that it does not tax the setups after it."""
    for hook in hooks:
        if isinstance(hook, Tracing) and isinstance(hook.provider, TracerProvider):
            hook.provider.shutdown()


SETUPS: dict[str, Callable[[], list[bm.Hooks]]] = {
    "no hooks (baseline)": list,
    "no-op bm.Hooks()": lambda: [bm.Hooks()],
    "Tracing": tracing,
    "Tracing, sampled out": lambda: tracing(ParentBased(ALWAYS_OFF)),
    "Metrics": lambda: [Metrics(CollectorRegistry())],
    "Tracing + Metrics": lambda: [*tracing(), Metrics(CollectorRegistry())],
}


async def sequential(engine: bm.Engine, wf: bm.Workflow[[int], int], runs: int) -> tuple[list[float], float]:
    """Wall time of each run (start + result) in µs, and the process CPU time per run in µs
    (all threads, the span exporter's included; unlike wall time, not inflated by other
    processes competing for the two cores)."""
    samples = []
    cpu0 = time.process_time_ns()
    for i in range(runs):
        t0 = time.perf_counter_ns()
        await (await engine.start(wf, i)).result()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    return samples, (time.process_time_ns() - cpu0) / 1000 / runs


async def measure(db: Path, hooks: list[bm.Hooks], runs: int, warmup: int) -> dict[str, float]:
    async with bm.Engine(db, workflows=[chain, empty], hooks=hooks) as engine:
        await sequential(engine, chain, warmup)
        await sequential(engine, empty, warmup)
        chain_us, chain_cpu = await sequential(engine, chain, runs)
        empty_us, empty_cpu = await sequential(engine, empty, runs)
    chain_p50, empty_p50 = statistics.median(chain_us), statistics.median(empty_us)
    return {
        "step_p50_us": chain_p50 / CHAIN_LENGTH,
        "marginal_step_p50_us": (chain_p50 - empty_p50) / CHAIN_LENGTH,
        "empty_run_p50_us": empty_p50,
        "cpu_per_step_us": chain_cpu / CHAIN_LENGTH,
        "cpu_marginal_step_us": (chain_cpu - empty_cpu) / CHAIN_LENGTH,
    }


def span_floor_us(count: int = 5000) -> float:
    """CPU time of one bare OpenTelemetry SDK span (start + end, batch processor): the least
    any tracing of a step can cost, measured here to put the hook's cost in proportion."""
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    tracer = provider.get_tracer("floor")

    def one() -> None:
        tracer.start_span("step noop").end()

    cpu0 = time.process_time_ns()
    for _ in range(count):
        one()
    floor = (time.process_time_ns() - cpu0) / 1000 / count
    provider.shutdown()
    return floor


async def run(runs: int, warmup: int, rounds: int, tmp: Path) -> dict[str, dict[str, float]]:
    """Each round measures every setup once, in an order rotated from round to round, so that
    a burst of load from other processes hits different setups; each setup's "added" numbers
    are the median over rounds of its difference to the baseline measured in the same round."""
    names = list(SETUPS)
    per_setup: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    floors = []
    for r in range(rounds):
        floors.append(span_floor_us())
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            hooks = SETUPS[name]()
            per_setup[name].append(await measure(tmp / f"r{r}-{names.index(name)}.db", hooks, runs, warmup))
            shutdown(hooks)
        print(
            f"  round {r + 1}/{rounds}: "
            + ", ".join(
                f"{name.split(' (')[0]} {per_setup[name][-1]['cpu_per_step_us']:.1f}" for name in names
            )
            + " us cpu/step",
            flush=True,
        )
    base = per_setup[names[0]]
    summary = {}
    for name, results in per_setup.items():
        row = {key: statistics.median(m[key] for m in results) for key in results[0]}
        for key in list(results[0]):
            row[f"added_{key}"] = statistics.median(
                m[key] - b[key] for m, b in zip(results, base, strict=True)
            )
        summary[name] = row
    summary["OTel SDK span floor"] = {"cpu_per_span_us": statistics.median(floors)}
    return summary


ROW = "{:<22} {:>7.1f}us {:>+6.1f}us {:>7.1f}us {:>+6.1f}us {:>5.2f}x {:>11.1f}us {:>+6.1f}us"


def report(results: dict[str, dict[str, float]]) -> None:
    base = results["no hooks (baseline)"]
    print(
        f"\n{CHAIN_LENGTH}-step chain, per step. wall: p50 of run wall time / {CHAIN_LENGTH};"
        f" cpu: process CPU time per run / {CHAIN_LENGTH}; marginal: minus a 0-step run;"
        " +: added over the baseline (median over rounds of the difference within a round)"
    )
    header = ("setup", "wall", "+", "cpu", "+", "ratio", "cpu marginal", "+")
    print("{:<22} {:>9} {:>8} {:>9} {:>8} {:>6} {:>13} {:>8}".format(*header))
    for name, m in results.items():
        if "step_p50_us" not in m:
            continue
        print(
            ROW.format(
                name,
                m["step_p50_us"],
                m["added_step_p50_us"],
                m["cpu_per_step_us"],
                m["added_cpu_per_step_us"],
                m["cpu_per_step_us"] / base["cpu_per_step_us"],
                m["cpu_marginal_step_us"],
                m["added_cpu_marginal_step_us"],
            )
        )
    wall = results["Tracing"]["added_step_p50_us"]
    cpu = results["Tracing"]["added_cpu_per_step_us"]
    floor = results["OTel SDK span floor"]["cpu_per_span_us"]
    verdict = "met" if cpu <= TARGET_TRACING_US else "MISSED"
    print(
        f"\ntarget: tracing adds <= {TARGET_TRACING_US:.0f} us per step: {cpu:+.1f} us CPU ({verdict}),"
        f" {wall:+.1f} us wall"
    )
    print(
        f"OTel SDK floor, one bare span start+end: {floor:.1f} us CPU; tracing adds"
        f" {cpu / floor:.2f} bare spans' worth per step (it makes 1 span per step + 2 per run)"
    )
    calibration = min(timeit.repeat("sorted({'a': 1, 'b': 2})", number=100_000, repeat=5)) / 100_000 * 1e9
    # Compare these between runs: higher means other processes were competing for the cores.
    print(
        f"load check: sorted() of a 2-key dict took {calibration:.0f} ns;"
        f" load average {os.getloadavg()[0]:.1f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke sizes: 60 runs x 3 rounds")
    parser.add_argument("--runs", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    runs, rounds = (60, 3) if args.quick else (args.runs, args.rounds)
    print(
        f"bench_observe: {runs} sequential runs x {rounds} rounds per setup,"
        f" {CHAIN_LENGTH} no-op steps per run"
    )
    with tempfile.TemporaryDirectory(prefix="bm-bench-observe-") as tmp:
        results = asyncio.run(run(runs, max(10, runs // 10), rounds, Path(tmp)))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
