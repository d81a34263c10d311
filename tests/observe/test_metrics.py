"""Prometheus metrics from the metrics hook, read from its registry and from its HTTP
endpoint: step latency, failures, retries, fallbacks, breaker state, tokens, cost, runs by
outcome and journal size."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client", reason="needs bandmaster[metrics,otel]")
pytest.importorskip("opentelemetry.sdk", reason="needs bandmaster[metrics,otel]")

from prometheus_client import CollectorRegistry

import bandmaster as bm
from bandmaster.observe._metrics import Metrics

from .test_tracing import _registry, calls, failing, pipeline


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    sample = registry.get_sample_value(name, labels)
    return 0.0 if sample is None else sample


def journal_size(db: Path) -> int:
    wal = Path(f"{db}-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


async def test_steps_models_and_runs_are_counted(db_path: Path, prom_registry: CollectorRegistry) -> None:
    metrics = Metrics(prom_registry)
    async with bm.Engine(db_path, workflows=[pipeline, failing], registry=_registry(), hooks=[metrics]) as e:
        for _ in range(3):
            calls.clear()  # `flaky` fails its first attempt in every run
            assert await (await e.start(pipeline, "text")).result(timeout=20) == "billing"
        with pytest.raises(bm.RunFailed):
            await (await e.start(failing, "text")).result(timeout=20)

        r = prom_registry
        assert value(r, "bandmaster_runs_total", workflow="pipeline", status="completed") == 3
        assert value(r, "bandmaster_runs_total", workflow="failing", status="failed") == 1
        assert value(r, "bandmaster_runs_active", workflow="pipeline") == 0
        assert value(r, "bandmaster_step_duration_seconds_count", workflow="pipeline", step="flaky") == 3
        assert value(r, "bandmaster_step_duration_seconds_sum", workflow="pipeline", step="flaky") > 0
        assert value(r, "bandmaster_step_retries_total", workflow="pipeline", step="flaky") == 3
        assert value(r, "bandmaster_step_failures_total", workflow="failing", step="broken") == 1
        assert value(r, "bandmaster_step_failures_total", workflow="pipeline", step="flaky") == 0
        # The primary model is down: each call retries nothing (attempts=1) and falls back.
        assert (
            value(r, "bandmaster_model_fallbacks_total", workflow="pipeline", step="intent", model="backup")
            == 3
        )
        assert value(r, "bandmaster_model_calls_total", model="backup-2024-06", cache="miss") == 3
        assert value(r, "bandmaster_model_tokens_total", model="backup-2024-06", direction="input") == 36
        assert value(r, "bandmaster_model_tokens_total", model="backup-2024-06", direction="output") == 9
        assert value(r, "bandmaster_model_cost_usd_total", model="backup-2024-06") == pytest.approx(
            3 * 0.0021
        )
    journal = journal_size(db_path)
    assert journal > 0
    assert value(prom_registry, "bandmaster_journal_bytes") == journal


async def test_breaker_state_gauge_follows_the_breaker(
    db_path: Path, prom_registry: CollectorRegistry
) -> None:
    @bm.workflow
    async def guarded(text: str) -> str:
        breaker = bm.Breaker(failures=1, window=60, reset=60)
        response = await bm.call_model(
            "intent", text, fallback=["backup"], retry=bm.Retry(attempts=1), breaker=breaker
        )
        return str(response.output)

    metrics = Metrics(prom_registry)
    async with bm.Engine(db_path, workflows=[guarded], registry=_registry(), hooks=[metrics]) as e:
        await (await e.start(guarded, "text")).result(timeout=20)
    assert value(prom_registry, "bandmaster_breaker_state", model="intent") == 2  # open
    assert value(prom_registry, "bandmaster_breaker_state", model="backup") == 0  # closed


def test_model_label_values_are_bounded(prom_registry: CollectorRegistry) -> None:
    metrics = Metrics(prom_registry, max_models=2)
    assert [metrics._model(m) for m in ("a", "b", "c", "a", "d")] == ["a", "b", "other", "a", "other"]


def test_a_second_metrics_on_one_registry_is_refused(prom_registry: CollectorRegistry) -> None:
    Metrics(prom_registry)
    with pytest.raises(bm.UsageError, match="already has bandmaster metrics"):
        Metrics(prom_registry)


async def test_serve_exposes_the_registry_over_http(
    db_path: Path, prom_registry: CollectorRegistry, request: pytest.FixtureRequest
) -> None:
    metrics = Metrics(prom_registry)
    port = metrics.serve(0)
    request.addfinalizer(metrics.shutdown)
    async with bm.Engine(db_path, workflows=[failing], registry=_registry(), hooks=[metrics]) as e:
        with pytest.raises(bm.RunFailed):
            await (await e.start(failing, "text")).result(timeout=20)
    text = scrape(port)
    assert 'bandmaster_runs_total{status="failed",workflow="failing"} 1.0' in text


async def test_queue_depth_counts_runs_no_worker_has_taken(
    db_path: Path, prom_registry: CollectorRegistry
) -> None:
    metrics = Metrics(prom_registry)
    async with bm.Engine(db_path, workflows=[failing], worker=False, hooks=[metrics]) as client:
        assert value(prom_registry, "bandmaster_queue_depth") == 0
        for _ in range(2):
            await client.start(failing, "text")
        assert value(prom_registry, "bandmaster_queue_depth") == 2
        assert value(prom_registry, "bandmaster_approvals_pending") == 0


async def test_tenants_label_their_own_series_and_are_bounded(
    db_path: Path, prom_registry: CollectorRegistry
) -> None:
    metrics = Metrics(prom_registry, max_tenants=2)
    async with bm.Engine(db_path, workflows=[pipeline, failing], registry=_registry(), hooks=[metrics]) as e:
        for tenant in ("acme", "acme", "globex", "initech", None):
            calls.clear()
            await (await e.start(pipeline, "text", tenant=tenant)).result(timeout=20)
        with pytest.raises(bm.RunFailed):
            await (await e.start(failing, "text", tenant="acme")).result(timeout=20)
    r = prom_registry
    assert value(r, "bandmaster_tenant_runs_started_total", tenant="acme") == 3
    assert value(r, "bandmaster_tenant_runs_total", tenant="acme", status="completed") == 2
    assert value(r, "bandmaster_tenant_runs_total", tenant="acme", status="failed") == 1
    assert value(r, "bandmaster_tenant_runs_total", tenant="globex", status="completed") == 1
    # A third tenant is past max_tenants: counted as "other"; a run without a tenant, nowhere.
    assert value(r, "bandmaster_tenant_runs_total", tenant="other", status="completed") == 1
    assert value(r, "bandmaster_tenant_runs_total", tenant="initech", status="completed") == 0
    cost = sum(
        sample.value
        for family in r.collect()
        for sample in family.samples
        if sample.name == "bandmaster_model_cost_usd_total"
    )
    assert cost > 0
    tenant_cost = sum(
        value(r, "bandmaster_tenant_model_cost_usd_total", tenant=t) for t in ("acme", "globex", "other")
    )
    assert tenant_cost == pytest.approx(cost * 4 / 5)  # the run without a tenant is not in a tenant's
    assert value(r, "bandmaster_tenant_model_cost_usd_total", tenant="acme") == pytest.approx(cost * 2 / 5)
