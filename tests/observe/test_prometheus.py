"""A real Prometheus server scrapes a real ``bandmaster worker --metrics-port`` process, and a
PromQL query over its HTTP API returns the expected series. The same worker runs with
``--trace`` and exports its spans to the OTLP receiver process."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.extras import needs
from tests.models.helpers import bandmaster_exe, subprocess_env

import bandmaster as bm

from .conftest import HERE, stop

PROMETHEUS = shutil.which("prometheus")
RUNS = 5

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="the prometheus binary is missing: run scripts/bootstrap.sh --dev (Debian package)",
    ),
    needs("metrics", "prometheus_client"),
]


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def process(args: list[str], log: Path, **options: Any) -> Iterator[subprocess.Popen[str]]:
    with open(log, "w") as out:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, text=True, **options
        )
    try:
        yield proc
    finally:
        stop(proc)


def wait_for(what: str, check: Callable[[], Any], timeout: float, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = log.read_text()[-2000:] if log is not None and log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}\n{detail}")
        time.sleep(0.2)


def query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
    except (urllib.error.URLError, ConnectionError):
        return []
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def test_prometheus_scrapes_a_worker(tmp_path: Path, otlp_receiver: tuple[str, Path]) -> None:
    endpoint, received = otlp_receiver
    db = tmp_path / "journal.db"
    worker_log = tmp_path / "worker.log"
    metrics_port, prom_port = free_port(), free_port()
    env = subprocess_env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_SERVICE_NAME="observed-worker")
    worker_args = [bandmaster_exe(), "worker", str(HERE / "wf_observed.py"), "--db", str(db)]
    worker_args += ["--poll", "0.05", "--trace", "--metrics-port", str(metrics_port)]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: bandmaster\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    prom_args = [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}"]
    prom_args += [f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"]

    with process(worker_args, worker_log, env=env, cwd=tmp_path) as worker:
        wait_for(
            "the worker's metrics endpoint", lambda: "metrics on" in worker_log.read_text(), 30, worker_log
        )
        async with bm.Engine(db, worker=False, poll_interval=0.05) as client:
            handles = [await client.start("observed", x) for x in range(RUNS)]
            assert [await h.result(timeout=30) for h in handles] == [2 * x + 1 for x in range(RUNS)]

        with process(prom_args, tmp_path / "prometheus.log", cwd=tmp_path):
            completed = 'bandmaster_runs_total{job="bandmaster",workflow="observed",status="completed"}'
            [series] = wait_for(
                "Prometheus to scrape the worker",
                lambda: [s for s in query(prom_port, completed) if s["value"][1] == str(RUNS)],
                60,
                tmp_path / "prometheus.log",
            )
            assert series["metric"]["instance"] == f"127.0.0.1:{metrics_port}"
            steps = query(prom_port, "sum by (step) (bandmaster_step_duration_seconds_count)")
            assert {s["metric"]["step"]: s["value"][1] for s in steps} == {
                "double": str(RUNS),
                "add_one": str(RUNS),
            }
            [journal] = query(prom_port, "bandmaster_journal_bytes")
            assert float(journal["value"][1]) > 0

        worker.send_signal(signal.SIGTERM)  # drains, closes the engine, flushes the spans
        assert worker.wait(timeout=30) == 0, worker_log.read_text()

    names = [line.split("\t")[0] for line in received.read_text().splitlines()]
    assert names.count("run observed") == RUNS
    assert names.count("step double") == names.count("step add_one") == RUNS
