"""What a shared circuit breaker adds to a healthy model's call, against the same call through
an in-process breaker and through no breaker, all measured in one run.

    .venv/bin/python benchmarks/bench_breakers.py [--calls 20000] [--repeat 5] [--temporal]

Each call goes through ``BreakerGate`` around a model that answers at once (no network), so
the numbers are the breaker's own cost: for the journal's breakers (``JournalBreakers``, what
every embedded worker uses), one read of the breaker revision at admission, no write. Also
measured: one failure recorded in the journal (a short IMMEDIATE transaction), the cost the
outage path pays per failed call. ``--temporal`` also starts a Temporal dev server and measures
a worker's failure report and an admission that asks the registry workflow (each an update).
These are measurements, not tests: exit 0 whatever they say.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import bandmaster as bm
from bandmaster.calls._journal_breakers import JournalBreakers
from bandmaster.calls.wrappers import BreakerGate, LocalBreakers
from bandmaster.models import ModelRequest, ModelResponse
from bandmaster.store import SQLiteStore

POLICY = bm.Breaker(failures=5, window=30, reset=60)
REQUEST = ModelRequest(input="hi")


class Instant:
    """A model that answers at once."""

    name = "instant"
    answer = ModelResponse(output="ok")

    async def request(self, req: ModelRequest) -> ModelResponse:
        return self.answer


async def per_call(model: object, calls: int) -> float:
    """Seconds per call of ``model.request``."""
    ask = model.request  # type: ignore[attr-defined]
    start = time.perf_counter()
    for _ in range(calls):
        await ask(REQUEST)
    return (time.perf_counter() - start) / calls


async def main(calls: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "journal.db")
        journal = JournalBreakers(store)
        bare, local = Instant(), LocalBreakers()
        variants = {
            "no breaker": bare,
            "in-process breaker": BreakerGate(bare, POLICY, states=local),
            "journal breaker (shared)": BreakerGate(bare, POLICY, states=journal),
        }
        results: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(repeat):
            for name, model in variants.items():
                results[name].append(await per_call(model, calls))
        base = statistics.median(results["no breaker"])
        print(f"{calls} calls x {repeat} rounds, median per call")
        for name, times in results.items():
            median = statistics.median(times)
            print(f"  {name:26s} {median * 1e6:7.2f} µs   (+{(median - base) * 1e6:5.2f} µs over no breaker)")
        local_cost = statistics.median(results["in-process breaker"])
        shared_cost = statistics.median(results["journal breaker (shared)"])
        print(f"  shared over in-process: +{(shared_cost - local_cost) * 1e6:.2f} µs per call")
        reads = 5000
        start = time.perf_counter()
        for _ in range(reads):
            journal.rows.revision()
        sqlite_read = (time.perf_counter() - start) / reads
        print(
            f"  for comparison, one SQLite read of the revision: {sqlite_read * 1e6:.2f} µs "
            "(what each admission would pay without the published revision)"
        )
        failures = 200
        start = time.perf_counter()
        for i in range(failures):
            await journal.settle(f"m{i % 20}", bm.Breaker(failures=10**6), time.time, "failure", trial=False)
        spent = (time.perf_counter() - start) / failures
        print(f"  one failure recorded in the journal: {spent * 1e6:7.1f} µs (one IMMEDIATE transaction)")
        journal.rows.close()
        store._conn.close()


async def temporal(rounds: int = 50) -> None:
    """Median cost of a failure report and of an admission asking the registry workflow."""
    import uuid

    from bandmaster.calls.hub import hub_for
    from bandmaster.temporal._devserver import DevServer, free_port

    @bm.workflow
    async def idle() -> None:
        return None

    with tempfile.TemporaryDirectory() as folder:
        server = DevServer(Path(folder) / "temporal.db", Path(folder) / "server.log", free_port())
        server.start()
        try:
            registry = bm.Registry(models={"m": bm.CallableModel(lambda req: "ok", name="m")})
            queue = f"bench-{uuid.uuid4().hex[:6]}"
            async with bm.TemporalEngine(
                server.target, task_queue=queue, workflows=[idle], registry=registry
            ):
                states = hub_for(registry, None).breakers  # the worker's ModelSync
                never = bm.Breaker(failures=10**6, window=600, reset=60)
                reports, admissions = [], []
                for _ in range(rounds):
                    start = time.perf_counter()
                    await states.settle("m", never, time.time, "failure", trial=False)
                    reports.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    await states.admit("m", never, time.time)  # failures in the window: asks
                    admissions.append(time.perf_counter() - start)
            print(f"Temporal ({type(states).__name__}), {rounds} rounds, median:")
            print(f"  one failure reported (an update):          {statistics.median(reports) * 1e3:6.1f} ms")
            print(
                f"  one admission asking the registry workflow: {statistics.median(admissions) * 1e3:6.1f} ms"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--temporal", action="store_true", help="also measure the Temporal registry's updates"
    )
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.repeat))
    if args.temporal:
        asyncio.run(temporal())
