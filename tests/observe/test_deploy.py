"""The files in deploy/ work against a real Prometheus: the alert rules pass ``promtool check
rules``; a Prometheus child process scraping a real ``bandmaster worker`` under load (a model
that goes down, retries, failures, a pending approval) fires BandmasterBreakerOpen, and every
query of every panel in the Grafana dashboard returns data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from tests.extras import needs
from tests.models.helpers import REPO, bandmaster_exe, subprocess_env

import bandmaster as bm

from .conftest import HERE
from .test_prometheus import PROMETHEUS, free_port, process, query, wait_for

RULES = REPO / "deploy" / "prometheus" / "bandmaster-rules.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "bandmaster.json"
PROMTOOL = shutil.which("promtool")
# What Grafana puts in place of its variables, short enough for a test's few minutes of data.
GRAFANA_VARIABLES = {"$__rate_interval": "30s", "$__range": "5m", "$__interval": "1s"}


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            queries.append((panel["title"], expr))
    return queries


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is missing: run scripts/bootstrap.sh --dev")
def test_alert_rules_pass_promtool() -> None:
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_the_dashboard_covers_the_operations_panels() -> None:
    titles = {title for title, _ in panel_queries()}
    for needed in ("Runs per second", "Step latency p50 / p99", "Cost per step (USD, range)", "Queue depth"):
        assert needed in titles
    assert all("bandmaster_" in expr for _, expr in panel_queries())


def firing_alerts(port: int) -> list[dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5) as response:
            alerts: list[dict[str, Any]] = json.load(response)["data"]["alerts"]
    except OSError:
        return []
    return [a for a in alerts if a["state"] == "firing"]


@pytest.mark.e2e
@pytest.mark.skipif(
    PROMETHEUS is None, reason="the prometheus binary is missing: run scripts/bootstrap.sh --dev"
)
@needs("metrics", "prometheus_client")
async def test_rules_fire_and_every_panel_has_data_from_a_worker_under_load(tmp_path: Path) -> None:
    db, worker_log, down = tmp_path / "journal.db", tmp_path / "worker.log", tmp_path / "weather-down"
    metrics_port, prom_port = free_port(), free_port()
    worker_args = [bandmaster_exe(), "worker", str(HERE / "wf_alerting.py"), str(HERE / "wf_dashboard.py")]
    worker_args += ["--db", str(db), "--poll", "0.05", "--metrics-port", str(metrics_port)]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{json.dumps(str(RULES))}]\n"
        "scrape_configs:\n"
        f"  - job_name: bandmaster\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    prom_args = [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}"]
    prom_args += [f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"]
    env = subprocess_env(WEATHER_DOWN_FLAG=str(down))

    with (
        process(worker_args, worker_log, env=env, cwd=tmp_path) as worker,
        process(prom_args, tmp_path / "prometheus.log", cwd=tmp_path),
    ):
        wait_for("the worker's metrics", lambda: "metrics on" in worker_log.read_text(), 30, worker_log)
        wait_for(
            "Prometheus to scrape", lambda: query(prom_port, "up") != [], 60, tmp_path / "prometheus.log"
        )
        async with bm.Engine(db, worker=False, poll_interval=0.05) as client:
            await client.start("reviewed", 1)  # stays pending
            for burst in range(3):  # load spread over several scrapes, so rates have data
                if burst == 1:
                    down.touch()  # the weather model goes down under load
                handles: list[bm.RunHandle[Any]] = [
                    await client.start("forecast", f"city {i}") for i in range(20)
                ]
                handles += [await client.start("shaky", burst * 20 + i) for i in range(20)]
                for handle in handles:
                    with contextlib.suppress(bm.RunFailed):  # every fifth shaky run fails by design
                        await handle.result(timeout=60)
                await wait_for_scrape(prom_port)

        [alert] = wait_for(
            "BandmasterBreakerOpen to fire",
            lambda: [
                a for a in firing_alerts(prom_port) if a["labels"]["alertname"] == "BandmasterBreakerOpen"
            ],
            60,
            tmp_path / "prometheus.log",
        )
        assert alert["labels"]["model"] == "weather"

        empty = []
        for title, expr in panel_queries():
            if not wait_for_data(prom_port, expr):
                empty.append(f"{title}: {expr}")
        assert not empty, "panels without data:\n" + "\n".join(empty)

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, worker_log.read_text()


async def wait_for_scrape(port: int) -> None:
    """Until Prometheus has a sample newer than now (the next scrape after this burst)."""
    started = time.time()
    for _ in range(100):
        samples = query(port, 'timestamp(up{job="bandmaster"})')
        if samples and float(samples[0]["value"][1]) > started:
            return
        await asyncio.sleep(0.2)


def wait_for_data(port: int, expr: str) -> bool:
    try:
        wait_for(f"data for {expr}", lambda: query(port, expr), 20)
    except AssertionError:
        return False
    return True
