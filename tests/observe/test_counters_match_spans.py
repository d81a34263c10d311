"""The Prometheus counters and the OpenTelemetry spans are built from the same facts: for a
run with a retried step, a primary model that times out (retried, then given up) and a
fallback that answers, every per-model and per-step count agrees between the two."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client", reason="needs bandmaster[metrics,otel]")
pytest.importorskip("opentelemetry.sdk", reason="needs bandmaster[metrics,otel]")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

import bandmaster as bm
from bandmaster.observe._genai_metrics import GenAIMetrics
from bandmaster.observe._metrics import Metrics
from bandmaster.observe._tracing import Tracing

from .conftest import Spans
from .test_metrics import value
from .test_tracing import _backup, calls, flaky


def attr(span: ReadableSpan, name: str, default: Any = None) -> Any:
    return (span.attributes or {}).get(name, default)


def histogram(reader: InMemoryMetricReader, name: str) -> list[HistogramDataPoint]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
        if isinstance(point, HistogramDataPoint)
    ]


async def _hangs(text: str) -> str:
    await asyncio.sleep(30)  # the primary is up but never answers in time
    return "late"


@bm.workflow
async def slow_primary(text: str) -> str:
    cleaned = await flaky(text)
    response = await bm.call_model(
        "slow",
        cleaned,
        fallback=["backup"],
        timeout=0.05,
        retry=bm.Retry(attempts=2, initial=0.001, jitter=False),
        temperature=0.2,
        max_tokens=64,
    )
    return str(response.output)


async def test_counters_equal_the_spans(
    db_path: Path, spans: Spans, prom_registry: CollectorRegistry
) -> None:
    registry = bm.Registry(
        models={
            "slow": bm.CallableModel(_hangs, name="slow"),
            "backup": bm.CallableModel(_backup, name="backup"),
        }
    )
    metrics = Metrics(prom_registry)
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    hooks = [Tracing(spans.provider), metrics, GenAIMetrics(meters)]
    runs = 3
    async with bm.Engine(db_path, workflows=[slow_primary], registry=registry, hooks=hooks) as engine:
        for _ in range(runs):
            calls.clear()  # `flaky` fails its first attempt in every run
            assert await (await engine.start(slow_primary, "text")).result(timeout=30) == "billing"

    r = prom_registry
    chats = [s for s in spans.all() if s.name.startswith("chat ")]
    for model in ("slow", "backup"):
        tried = [s for s in chats if s.name == f"chat {model}"]
        failed = [s for s in tried if s.status.status_code == StatusCode.ERROR]
        assert value(r, "bandmaster_model_attempts_total", model=model) == len(tried)
        errors = {str(attr(s, "error.type")) for s in failed}
        assert sum(
            value(r, "bandmaster_model_attempt_failures_total", model=model, error=e) for e in errors
        ) == len(failed)
    # The timed-out primary appears in the per-model stats: 2 attempts per run, both timed out.
    assert value(r, "bandmaster_model_attempts_total", model="slow") == 2 * runs
    assert value(r, "bandmaster_model_attempt_failures_total", model="slow", error="StepTimeout") == 2 * runs

    # Retries: the counter equals the spans' retry count, per step (a fallback is not a retry).
    model_steps = spans.named("model slow")
    assert len(model_steps) == runs
    span_retries = sum(int(attr(s, "bandmaster.retries")) for s in model_steps)
    assert (
        value(r, "bandmaster_step_retries_total", workflow="slow_primary", step="slow")
        == span_retries
        == runs
    )
    retry_events = sum(len([e for e in s.events if e.name == "retry"]) for s in spans.named("step flaky"))
    assert (
        value(r, "bandmaster_step_retries_total", workflow="slow_primary", step="flaky")
        == retry_events
        == runs
    )

    # Fallbacks, tokens and cost: the counters equal what the spans carry.
    assert value(
        r, "bandmaster_model_fallbacks_total", workflow="slow_primary", step="slow", model="backup"
    ) == len([s for s in model_steps if attr(s, "bandmaster.fallback") == "backup"])
    span_tokens = sum(int(attr(s, "gen_ai.usage.input_tokens", 0)) for s in spans.all())
    assert value(r, "bandmaster_model_tokens_total", model="backup-2024-06", direction="input") == span_tokens
    span_cost = sum(float(attr(s, "bandmaster.cost_usd")) for s in model_steps)
    assert value(r, "bandmaster_step_cost_usd_total", workflow="slow_primary", step="slow") == pytest.approx(
        span_cost
    )

    # The request parameters that were sent are on the chat span that answered.
    [answered, *_] = [s for s in chats if s.name == "chat backup"]
    assert answered.attributes is not None
    assert answered.attributes["gen_ai.request.temperature"] == 0.2
    assert answered.attributes["gen_ai.request.max_tokens"] == 64

    # The GenAI client metrics: one operation duration per chat span, token usage as on them.
    durations = histogram(reader, "gen_ai.client.operation.duration")
    for model in ("slow", "backup"):
        points = [p for p in durations if p.attributes and p.attributes["gen_ai.request.model"] == model]
        assert sum(p.count for p in points) == len([s for s in chats if s.name == f"chat {model}"])
    timed_out = [p for p in durations if p.attributes and p.attributes.get("error.type") == "StepTimeout"]
    assert sum(p.count for p in timed_out) == 2 * runs
    usage = histogram(reader, "gen_ai.client.token.usage")
    [input_tokens] = [p for p in usage if p.attributes and p.attributes["gen_ai.token.type"] == "input"]
    assert input_tokens.sum == span_tokens
    assert input_tokens.attributes is not None
    assert input_tokens.attributes["gen_ai.response.model"] == "backup-2024-06"
    meters.shutdown()
