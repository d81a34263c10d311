"""``bandmaster server --backend temporal``: what the HTTP server adds to Temporal's own cost.

    .venv/bin/python benchmarks/bench_server_temporal.py [--runs 300] [--clients 20] [--quick]
    .venv/bin/python benchmarks/bench_server_temporal.py --target host:7233   # an existing cluster

Processes: a Temporal dev server (unless ``--target``), one ``bandmaster worker --backend
temporal`` executing the runs, and one ``bandmaster server --backend temporal``. In one run, so
the ratios compare like with like, with ``--clients`` operations in flight:

1. start, baseline: ``TemporalEngine.start`` from this process (the SDK client, no HTTP);
2. start through the server: ``POST /api/v1/runs`` with a bearer token (auth, validation,
   the same ``TemporalEngine.start`` inside the server);
3. describe, baseline ``TemporalEngine.describe`` versus ``GET /api/v1/runs/{id}``, on finished runs.

A measurement, not a test: exits 0 whatever the numbers. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_temporal import dev_server, pct

from bandmaster.temporal import free_port

WORKFLOW = textwrap.dedent(
    """
    import bandmaster as bm

    @bm.step(local=True)
    def double(x: int) -> int:
        return x * 2

    @bm.workflow
    async def calc(x: int) -> int:
        return await double(x)
    """
)


async def timed(count: int, clients: int, one: Callable[[int], Awaitable[None]]) -> dict[str, float]:
    """Run ``one(i)`` for i < count with ``clients`` in flight; latency percentiles and rate."""
    latencies: list[float] = []
    queue = iter(range(count))

    async def client() -> None:
        for i in queue:
            t0 = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - t0
    return {
        "per_s": count / wall,
        "p50_ms": pct(latencies, 0.5) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
    }


@contextlib.contextmanager
def cluster(target: str | None, folder: Path) -> Iterator[str]:
    if target is not None:
        yield target
        return
    with dev_server(folder) as started:
        yield started


def spawn(args: list[str], folder: Path, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(folder / f"{name}.log", "wb") as log:
        return subprocess.Popen(args, cwd=folder, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)


async def measure(target: str, folder: Path, runs: int, clients: int) -> dict[str, Any]:
    import httpx2

    import bandmaster as bm
    from bandmaster.server import create_token
    from bandmaster.store import SQLiteStore

    sys.path.insert(0, str(folder))
    import bench_wf  # written by main()

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    db = folder / "server.db"
    store = SQLiteStore(db)
    token = create_token(store, "bench", ["runs:read", "runs:write"], rate_limit=1e6).secret
    store.close()
    env = {
        **os.environ,
        "BANDMASTER_BACKEND": "temporal",
        "BANDMASTER_TEMPORAL_TARGET": target,
        "BANDMASTER_TEMPORAL_TASK_QUEUE": queue,
    }
    exe = [sys.executable, "-m", "bandmaster.cli"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs = [
        spawn([*exe, "worker", "bench_wf.py"], folder, "worker", env),
        spawn([*exe, "server", "bench_wf.py", "--db", str(db), "--port", str(port)], folder, "server", env),
    ]
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx2.TransportError):
                if httpx2.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit(f"server did not start: {(folder / 'server.log').read_text()[-2000:]}")
            await asyncio.sleep(0.2)
        async with (
            bm.TemporalEngine(target, task_queue=queue, workflows=[bench_wf.calc], worker=False) as engine,
            httpx2.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
            ) as http,
        ):
            direct_ids: list[str] = []
            http_ids: list[str] = []

            async def start_direct(i: int) -> None:
                direct_ids.append((await engine.start(bench_wf.calc, i)).id)

            async def start_http(i: int) -> None:
                answer = await http.post("/api/v1/runs", json={"workflow": "calc", "input": i})
                assert answer.status_code == 201, answer.text
                http_ids.append(answer.json()["id"])

            async def drain() -> None:
                # Each phase starts with no run of the previous one still executing.
                for run_id in [*direct_ids, *http_ids]:
                    await engine.result(run_id, timeout=300)

            await timed(min(20, runs), clients, start_direct)  # warm-up of both paths
            await timed(min(20, runs), clients, start_http)
            results: dict[str, Any] = {}
            paths = {"start_direct": start_direct, "start_http": start_http}
            # Two rounds in opposite orders, so drift in machine load hits both paths alike.
            for rnd, order in enumerate((("start_direct", "start_http"), ("start_http", "start_direct"))):
                for name in order:
                    await drain()
                    results[f"{name}_{rnd}"] = await timed(runs // 2, clients, paths[name])
            await drain()
            finished = direct_ids[: runs // 2]

            async def describe_direct(i: int) -> None:
                await engine.describe(finished[i % len(finished)])

            async def describe_http(i: int) -> None:
                answer = await http.get(f"/api/v1/runs/{finished[i % len(finished)]}")
                assert answer.status_code == 200, answer.text

            results["describe_direct"] = await timed(runs // 2, clients, describe_direct)
            results["describe_http"] = await timed(runs // 2, clients, describe_http)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    return results


def merged(results: dict[str, Any], name: str) -> dict[str, float]:
    parts = [v for k, v in results.items() if k.startswith(name)]
    return {key: sum(p[key] for p in parts) / len(parts) for key in parts[0]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=400, help="starts per path (half per round)")
    parser.add_argument("--clients", type=int, default=20, help="operations in flight")
    parser.add_argument("--quick", action="store_true", help="--runs 100: a smoke run of a few seconds")
    parser.add_argument("--target", help="an existing Temporal frontend instead of a dev server")
    parser.add_argument("--json", type=Path, help="write the numbers here too")
    args = parser.parse_args()
    runs = 100 if args.quick else args.runs
    folder = Path(tempfile.mkdtemp(prefix="bm-bench-tserver-"))
    (folder / "bench_wf.py").write_text(WORKFLOW)
    with cluster(args.target, folder) as target:
        results = asyncio.run(measure(target, folder, runs, args.clients))
    rows = {
        "start: TemporalEngine.start (baseline)": merged(results, "start_direct"),
        "start: POST /api/v1/runs": merged(results, "start_http"),
        "describe: TemporalEngine.describe (baseline)": results["describe_direct"],
        "describe: GET /api/v1/runs/{id}": results["describe_http"],
    }
    print(f"{runs} starts per path, {args.clients} in flight, Temporal at {target}")
    for name, row in rows.items():
        print(
            f"  {name:46} {row['per_s']:7.0f} /s   p50 {row['p50_ms']:7.1f} ms   p99 {row['p99_ms']:7.1f} ms"
        )
    base, via = rows["start: TemporalEngine.start (baseline)"], rows["start: POST /api/v1/runs"]
    print(
        f"  start through the server: {via['per_s'] / base['per_s']:.2f} x the SDK client's rate, "
        f"p50 {via['p50_ms'] / base['p50_ms']:.2f} x"
    )
    base, via = rows["describe: TemporalEngine.describe (baseline)"], rows["describe: GET /api/v1/runs/{id}"]
    print(
        f"  describe through the server: {via['per_s'] / base['per_s']:.2f} x the SDK client's rate, "
        f"p50 {via['p50_ms'] / base['p50_ms']:.2f} x"
    )
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "clients": args.clients, **rows}, indent=2))


if __name__ == "__main__":
    main()
