"""What budgets add to a model call, next to the same call without them, measured in one run.

1. ``invoke_model`` of a local model with no budget and no tenant (the common path: one
   context-variable read decides there is nothing to hold);
2. the same call under a tenant budget held in this process's memory (estimate + hold + settle);
3. the same call under a tenant budget held in a SQLite journal (two immediate transactions).

A script, not a test: it prints numbers and ratios and always exits 0.

    .venv/bin/python benchmarks/bench_budgets.py            # N = 20,000
    .venv/bin/python benchmarks/bench_budgets.py --quick    # N = 2,000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import bandmaster as bm
from bandmaster.calls._stack import DEFAULT_RETRY, CallPolicy, invoke_model
from bandmaster.calls.hub import JournalLedger, hub_for
from bandmaster.calls.wrappers import LocalSpendLedger, SpendLedger
from bandmaster.engine import OpRecord, RunTerms, terms_scope


def local(req: bm.ModelRequest) -> bm.ModelResponse:
    return bm.ModelResponse(output="ok", usage=bm.Usage(input_tokens=10, output_tokens=5))


REGISTRY = bm.Registry.from_dict(
    {
        "models": {
            "m": {
                "provider": "callable",
                "function": "bench_budgets:local",
                "price": {"input": 1, "output": 1},
            }
        },
        "budgets": {"tenants": {"acme": {"usd_per_day": 1e9}}},
    }
)
POLICY = CallPolicy(timeout=None, retry=DEFAULT_RETRY, fallback=(), breaker=None, cache_ttl=None)
REQUEST = bm.ModelRequest(input="a short question about a ticket", max_tokens=64)


async def per_call(n: int, ledger: SpendLedger | None, tenant: str | None) -> list[float]:
    hub = hub_for(REGISTRY, None)
    times: list[float] = []
    with terms_scope(RunTerms(tenant=tenant)):
        for _ in range(n):
            started = time.perf_counter()
            await invoke_model(hub, "m", REQUEST, None, POLICY, OpRecord(), ledger=ledger)
            times.append(time.perf_counter() - started)
    return times


def show(name: str, times: list[float], base: float | None) -> float:
    """Medians: on a shared machine the mean is mostly other processes' noise."""
    p50 = statistics.median(times) * 1e6
    p90 = statistics.quantiles(times, n=10)[-1] * 1e6
    extra = f"  (+{p50 - base:.1f} µs, x{p50 / base:.2f})" if base else ""
    print(f"{name:<34} p50 {p50:8.1f} µs  p90 {p90:8.1f} µs{extra}")
    return p50


def rules_check(n: int) -> float:
    """What the common path pays: deciding that no budget applies (ns per call)."""
    from bandmaster.calls._stack import budget_rules

    started = time.perf_counter()
    for _ in range(n):
        budget_rules(REGISTRY, 0.0)
    return (time.perf_counter() - started) / n * 1e9


async def main(n: int) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    await per_call(200, None, None)  # warm up: imports, tokenizer, price lookups
    await per_call(200, LocalSpendLedger(), "acme")
    print(f"deciding no budget applies: {rules_check(n * 10):.0f} ns per call")
    base = show("no budget (common path)", await per_call(n, None, None), None)
    show("tenant budget, in memory", await per_call(n, LocalSpendLedger(), "acme"), base)
    with tempfile.TemporaryDirectory() as folder:
        async with bm.Engine(Path(folder) / "j.db", worker=False) as engine:
            ledger = JournalLedger(engine.store)
            show("tenant budget, SQLite journal", await per_call(max(n // 10, 200), ledger, "acme"), base)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(2_000 if args.quick else 20_000))
