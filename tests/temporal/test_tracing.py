"""OpenTelemetry context flows from the client through the Temporal workflow into each step."""

from __future__ import annotations

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
import temporal_workflows as wfs
from temporal_support import TemporalServer

import bandmaster as bm

trace = pytest.importorskip("opentelemetry.trace")
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
export = pytest.importorskip("opentelemetry.sdk.trace.export")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")

pytestmark = pytest.mark.timeout(90)


async def test_one_trace_from_start_to_every_step(temporal_server: TemporalServer) -> None:
    spans = in_memory.InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()  # a local provider: the global one stays untouched
    provider.add_span_processor(export.SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test")
    async with bm.TemporalEngine(
        temporal_server.target, task_queue="traced", workflows=[wfs.traced], tracing=tracer
    ) as engine:
        with tracer.start_as_current_span("request") as parent:
            handle = await engine.start(wfs.traced)
        step_traces = await handle.result(timeout=30)
    expected = format(parent.get_span_context().trace_id, "032x")
    assert step_traces == [expected, expected]
    names = {s.name for s in spans.get_finished_spans() if format(s.context.trace_id, "032x") == expected}
    assert {"StartWorkflow:traced", "RunWorkflow:traced", "RunActivity:bandmaster.step"} <= names
