"""Start-run throughput and latency over HTTP, with workers executing the runs meanwhile.

    .venv/bin/python benchmarks/bench_server.py [--requests 4000] [--clients 200] [--in-process]

Processes: ``bandmaster server --processes N`` (API only; default N=2), one ``bandmaster worker``
executing the runs from the same journal (``--in-process``: the server processes execute
them themselves), and a load
generator keeping ``--clients`` requests in flight: ``wrk`` (Debian package, installed by
``scripts/bootstrap.sh --dev``) for ``--seconds`` per phase, or with ``--client httpx2`` this
file with ``--load`` (an async Python client, ``--requests`` per phase; it needs more CPU than
the server it measures). Phases, in one run so the ratio compares like with like:

1. baseline: ``GET /healthz`` (HTTP stack + framework, no auth, no journal);
2. start: ``POST /api/v1/runs`` with a bearer token (auth, validation, journal insert).

Afterwards the runs in the journal are counted (every 201 must be a run; none lost) and the
time until the workers completed them all is reported. Targets: >= 1,000 starts/s and
p99 <= 50 ms with 200 clients. Measurements, not tests: exits 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

WORKFLOW = textwrap.dedent(
    """
    import bandmaster as bm

    @bm.step
    async def double(x: int) -> int:
        return x * 2

    @bm.workflow
    async def calc(x: int) -> int:
        return await double(x)
    """
)


# --- load generator (a separate process) ------------------------------------------------


async def _load(url: str, path: str, token: str | None, total: int, clients: int) -> dict[str, Any]:
    import httpx2

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(total))
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30.0) as http:

        async def client() -> None:
            for n in counter:
                t0 = time.perf_counter()
                if path == "/healthz":
                    response = await http.get(path)
                else:
                    response = await http.post(path, json={"workflow": "calc", "input": n})
                latencies.append(time.perf_counter() - t0)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": total,
        "wall_s": wall,
        "per_s": total / wall,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "statuses": statuses,
    }


# --- orchestration ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    import httpx2

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited during start-up")
        try:
            if httpx2.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            time.sleep(0.1)
    raise SystemExit("server did not answer within 30 s")


WRK_SCRIPT = """
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
{auth}
counter = 0
request = function()
  counter = counter + 1
  {body}
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {{\\"requests\\": %d, \\"errors\\": %d, \\"non2xx\\": %d, "
    .. "\\"wall_s\\": %f, \\"p50_ms\\": %f, \\"p99_ms\\": %f}}\\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, summary.errors.status, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def _wrk(url: str, path: str, token: str | None, seconds: float, clients: int, tmp: Path) -> dict[str, Any]:
    """wrk keeps ``clients`` connections busy for ``seconds``; its Lua ``done`` prints JSON."""
    if path == "/healthz":
        script = WRK_SCRIPT.format(method="GET", auth="", body="return wrk.format(nil, nil)")
    else:
        script = WRK_SCRIPT.format(
            method="POST",
            auth=f'wrk.headers["Authorization"] = "Bearer {token}"',
            body='return wrk.format(nil, nil, nil, \'{"workflow": "calc", "input": \' .. counter .. \'}\')',
        )
    lua = tmp / "load.lua"
    lua.write_text(script)
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(clients),
            "-d",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(lua),
            url + path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(text for text in out.splitlines() if text.startswith("JSON "))
    found = json.loads(line.removeprefix("JSON "))
    found["per_s"] = found["requests"] / found["wall_s"]
    found["statuses"] = {"2xx": found["requests"] - found["non2xx"], "other": found["non2xx"]}
    return found  # type: ignore[no-any-return]


def _phase(url: str, path: str, token: str | None, total: int, clients: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--load", url, path, str(total), str(clients)]
    out = subprocess.run(command, input=token or "", capture_output=True, text=True, check=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def _count(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        total, done = conn.execute(
            "SELECT COUNT(*), SUM(status = 'completed') FROM runs WHERE workflow = 'calc'"
        ).fetchone()
    return int(total), int(done or 0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--in-process", action="store_true", help="the server executes runs itself")
    parser.add_argument(
        "--processes", type=int, default=2, help="server processes (bandmaster server --processes)"
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each wrk phase")
    parser.add_argument(
        "--client", choices=["wrk", "httpx2"], default="wrk" if shutil.which("wrk") else "httpx2"
    )
    parser.add_argument("--json", type=Path, help="write the numbers here too")
    args = parser.parse_args()

    from bandmaster.server import create_token
    from bandmaster.store import SQLiteStore

    tmp = Path(tempfile.mkdtemp(prefix="bm-bench-server-"))
    db = tmp / "bench.db"
    (tmp / "bench_wf.py").write_text(WORKFLOW)
    store = SQLiteStore(db)
    token = create_token(store, "bench", ["runs:write"], rate_limit=1e6).secret
    store.close()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    bm = [sys.executable, "-m", "bandmaster.cli"]
    server_cmd = [
        *bm,
        "server",
        "bench_wf.py",
        "--db",
        str(db),
        "--port",
        str(port),
        "--processes",
        str(args.processes),
    ]
    if args.in_process:
        server_cmd += ["--workers", "1000"]
    procs = [subprocess.Popen(server_cmd, cwd=tmp, stdin=subprocess.DEVNULL)]
    if not args.in_process:
        procs.append(
            subprocess.Popen(
                [*bm, "worker", "bench_wf.py", "--db", str(db), "--concurrency", "1000"],
                cwd=tmp,
                stdin=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        _wait_healthy(url, procs[0])
        if args.client == "wrk":
            _wrk(url, "/healthz", None, 1, args.clients, tmp)  # warm-up
            baseline = _wrk(url, "/healthz", None, args.seconds, args.clients, tmp)
            started = _wrk(url, "/api/v1/runs", token, args.seconds, args.clients, tmp)
            accepted = started["statuses"]["2xx"]
        else:
            _phase(url, "/healthz", None, 400, args.clients)  # warm-up
            baseline = _phase(url, "/healthz", None, args.requests, args.clients)
            started = _phase(url, "/api/v1/runs", token, args.requests, args.clients)
            accepted = started["statuses"].get("201", 0)
        t0 = time.perf_counter()
        total, done = _count(db)
        while done < total and time.perf_counter() - t0 < 120:
            time.sleep(0.2)
            total, done = _count(db)
        drain = time.perf_counter() - t0
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
    result = {
        "clients": args.clients,
        "mode": f"{args.processes} server process(es), "
        + ("in-process workers" if args.in_process else "1 worker process"),
        "load_generator": args.client,
        "baseline_healthz": baseline,
        "start_run": started,
        "runs_accepted": accepted,
        "runs_in_journal": total,
        "runs_completed": done,
        "drain_after_load_s": drain,
    }
    size = f"{args.seconds:g} s" if args.client == "wrk" else f"{args.requests} requests"
    print(f"mode: {result['mode']}, load: {args.client}, {args.clients} concurrent clients, {size} per phase")
    for name, phase in (("GET /healthz (baseline)", baseline), ("POST /api/v1/runs", started)):
        print(
            f"  {name:26} {phase['per_s']:7.0f} req/s   p50 {phase['p50_ms']:6.1f} ms   "
            f"p99 {phase['p99_ms']:6.1f} ms   statuses {phase['statuses']}"
        )
    print(f"  start-run throughput = {started['per_s'] / baseline['per_s']:.2f} x the /healthz floor")
    # wrk stops counting at the deadline while up to `clients` requests are still in flight:
    # the server may have stored those runs without wrk seeing the 201.
    lost = accepted > total or total > accepted + args.clients or done != total
    print(
        f"  journal: {accepted} starts answered 201, {total} runs stored, {done} completed "
        f"({'MISMATCH' if lost else 'none lost'}); workers finished {drain:.1f} s after the load ended"
    )
    print(
        f"  target >= 1000 starts/s: {'met' if started['per_s'] >= 1000 else 'missed'}; "
        f"p99 <= 50 ms: {'met' if started['p99_ms'] <= 50 else 'missed'}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        url, path, total, clients = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        secret = sys.stdin.read().strip() or None
        print(json.dumps(asyncio.run(_load(url, path, secret, total, clients))))
    else:
        main()
