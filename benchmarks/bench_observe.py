"""What engine hooks cost per step: a 10-step chain with no hooks, with a no-op hook, with
OpenTelemetry tracing and with Prometheus metrics, measured in the same run.

    .venv/bin/python benchmarks/bench_observe.py              # 300 runs x 3 rounds per setup
    .venv/bin/python benchmarks/bench_observe.py --quick      # smoke sizes
    .venv/bin/python benchmarks/bench_observe.py --json out.json

Setups are interleaved round by round so that load from other processes hits them alike;
each number is the median over rounds of the per-round p50. A measurement, not a test: it
exits 0 even when the target (tracing adds <= 20 us per step) is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry

import bandmaster as bm
from bandmaster.observe.metrics import Metrics
from bandmaster.observe.tracing import Tracing

CHAIN_LENGTH = 10
TARGET_TRACING_US = 20.0


@bm.step
async def noop(i: int) -> int:
    return i


@bm.workflow
async def chain(i: int) -> int:
    total = 0
    for _ in range(CHAIN_LENGTH):
        total += await noop(i)
    return total


@bm.workflow
async def empty(i: int) -> int:
    return i


class Discard(SpanExporter):
    """Counts spans and drops them: the export itself (network) is not what is measured."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def tracing() -> list[bm.Hooks]:
    provider = TracerProvider()
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
    "Metrics": lambda: [Metrics(CollectorRegistry())],
    "Tracing + Metrics": lambda: [*tracing(), Metrics(CollectorRegistry())],
}


async def sequential(engine: bm.Engine, wf: bm.Workflow[[int], int], runs: int) -> list[float]:
    samples = []
    for i in range(runs):
        t0 = time.perf_counter_ns()
        await (await engine.start(wf, i)).result()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    return samples


async def measure(db: Path, hooks: list[bm.Hooks], runs: int, warmup: int) -> dict[str, float]:
    async with bm.Engine(db, workflows=[chain, empty], hooks=hooks) as engine:
        await sequential(engine, chain, warmup)
        await sequential(engine, empty, warmup)
        chain_us = await sequential(engine, chain, runs)
        empty_us = await sequential(engine, empty, runs)
    chain_p50, empty_p50 = statistics.median(chain_us), statistics.median(empty_us)
    return {
        "step_p50_us": chain_p50 / CHAIN_LENGTH,
        "marginal_step_p50_us": (chain_p50 - empty_p50) / CHAIN_LENGTH,
        "empty_run_p50_us": empty_p50,
    }


async def run(runs: int, warmup: int, rounds: int, tmp: Path) -> dict[str, dict[str, float]]:
    per_setup: dict[str, list[dict[str, float]]] = {name: [] for name in SETUPS}
    for r in range(rounds):
        for k, (name, make) in enumerate(SETUPS.items()):
            hooks = make()
            per_setup[name].append(await measure(tmp / f"r{r}s{k}.db", hooks, runs, warmup))
            shutdown(hooks)
            print(
                f"  round {r + 1}/{rounds} {name}: {per_setup[name][-1]['step_p50_us']:.1f} us/step",
                flush=True,
            )
    return {
        name: {key: statistics.median(m[key] for m in results) for key in results[0]}
        for name, results in per_setup.items()
    }


def report(results: dict[str, dict[str, float]]) -> None:
    base = results["no hooks (baseline)"]
    print(f"\n10-step chain, per step (p50 of run wall time / {CHAIN_LENGTH}); added = setup - baseline")
    print(f"{'setup':<22} {'step p50':>10} {'added':>9} {'ratio':>7} {'marginal step':>14} {'added':>9}")
    for name, m in results.items():
        added = m["step_p50_us"] - base["step_p50_us"]
        added_marginal = m["marginal_step_p50_us"] - base["marginal_step_p50_us"]
        print(
            f"{name:<22} {m['step_p50_us']:>8.1f}us {added:>+7.1f}us {m['step_p50_us'] / base['step_p50_us']:>6.2f}x"
            f" {m['marginal_step_p50_us']:>12.1f}us {added_marginal:>+7.1f}us"
        )
    traced = results["Tracing"]["step_p50_us"] - base["step_p50_us"]
    verdict = "met" if traced <= TARGET_TRACING_US else "MISSED"
    print(f"\ntarget: tracing adds <= {TARGET_TRACING_US:.0f} us per step: {traced:+.1f} us ({verdict})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke sizes: 60 runs x 2 rounds")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    runs, rounds = (60, 2) if args.quick else (args.runs, args.rounds)
    print(
        f"bench_observe: {runs} sequential runs x {rounds} rounds per setup, {CHAIN_LENGTH} no-op steps per run"
    )
    with tempfile.TemporaryDirectory(prefix="bm-bench-observe-") as tmp:
        results = asyncio.run(run(runs, max(10, runs // 10), rounds, Path(tmp)))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
