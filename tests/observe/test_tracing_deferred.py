"""The cheap path of the tracing hook: spans below a run are built when they end and handed to
the SDK's processors (``bandmaster.observe._deferred_spans``). What it must keep: times and
parents of plain steps, the run (or, with ``step_context``, the step) as the current span of
the step's code, sampling, and the public API for providers whose processors work on start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs bandmaster[otel]")

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

import bandmaster as bm
from bandmaster.observe._deferred_spans import DeferredSpan, SpanSink
from bandmaster.observe._tracing import Tracing

from .conftest import Spans

seen: dict[str, Any] = {}
user_tracer = trace.get_tracer("user-code")


@bm.step
async def lookup(x: int) -> int:
    """Stands for a step whose own code is traced (an instrumented client)."""
    seen["current"] = trace.get_current_span().get_span_context()
    trace.get_current_span().set_attribute("user.note", "looked up")
    await asyncio.sleep(0.002)  # a measurable duration
    return x + 1


@bm.workflow
async def two_steps(x: int) -> int:
    return await lookup(await lookup(x))


async def _run(db: Path, hook: Tracing, *, workflow: bm.Workflow[[int], int] = two_steps) -> bm.RunInfo:
    async with bm.Engine(db, workflows=[workflow], hooks=[hook]) as engine:
        handle = await engine.start(workflow, 1)
        await handle.result(timeout=20)
        return await engine.describe(handle.id)


def _ns(moment: Any) -> int:
    return int(moment.timestamp() * 1e9)


async def test_a_plain_steps_span_has_the_journals_times_and_the_run_as_parent(
    db_path: Path, spans: Spans
) -> None:
    info = await _run(db_path, Tracing(spans.provider))

    run = spans.one("run two_steps")
    steps = sorted(spans.named("step lookup"), key=lambda s: s.start_time or 0)
    assert len(steps) == 2
    for span, journaled in zip(steps, info.steps, strict=True):
        assert span.parent is not None
        assert run.context is not None
        assert span.context is not None
        assert span.parent.span_id == run.context.span_id
        assert span.context.trace_id == run.context.trace_id
        assert span.context.trace_flags.sampled
        assert span.start_time is not None
        assert span.end_time is not None
        # The start is the journal's; the end comes after the journal write (same clock).
        assert abs(span.start_time - _ns(journaled.started_at)) < 1_000_000
        assert journaled.ended_at is not None
        assert _ns(journaled.ended_at) - 1_000_000 <= span.end_time < _ns(journaled.ended_at) + 1_000_000_000
        assert span.end_time - span.start_time >= 2_000_000
        assert span.attributes is not None
        assert span.attributes["bandmaster.step.name"] == "lookup"
        assert span.status.status_code == StatusCode.UNSET
    assert steps[0].end_time is not None
    assert steps[1].start_time is not None
    assert steps[0].end_time <= steps[1].start_time + 1_000_000
    assert run.start_time is not None
    assert run.end_time is not None
    assert run.start_time <= (steps[0].start_time or 0)
    assert (steps[1].end_time or 0) <= run.end_time


async def test_step_code_runs_under_the_run_span_or_with_step_context_the_steps(
    db_path: Path, spans: Spans
) -> None:
    await _run(db_path, Tracing(spans.provider))
    run = spans.one("run two_steps")
    assert run.context is not None
    assert seen["current"].span_id == run.context.span_id  # the run span is current
    assert run.attributes is not None
    assert run.attributes["user.note"] == "looked up"

    spans.exporter.clear()
    await _run(db_path.with_name("step-context.db"), Tracing(spans.provider, step_context=True))
    last = max(spans.named("step lookup"), key=lambda s: s.start_time or 0)
    assert last.context is not None
    assert seen["current"].span_id == last.context.span_id  # the step span is current
    assert last.attributes is not None
    assert last.attributes["user.note"] == "looked up"


async def test_an_unsampled_run_exports_nothing(db_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    await _run(db_path, Tracing(provider))
    assert exporter.get_finished_spans() == ()
    assert not seen["current"].trace_flags.sampled  # still a context, for propagation
    provider.shutdown()


class StampOnStart(SpanProcessor):
    """A processor that works when spans start: deferred spans would skip it."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        span.set_attribute("stamped", True)


async def test_a_processor_that_works_on_start_gets_every_span_through_the_public_api(
    db_path: Path, spans: Spans
) -> None:
    hook = Tracing(spans.provider)
    await _run(db_path, hook)
    assert all("stamped" not in (s.attributes or {}) for s in spans.all())

    spans.provider.add_span_processor(StampOnStart())  # after the hook was made: seen per run
    spans.exporter.clear()
    await _run(db_path, hook)
    names = sorted(s.name for s in spans.all())
    assert names == ["run two_steps", "start two_steps", "step lookup", "step lookup"]
    assert all((s.attributes or {}).get("stamped") is True for s in spans.all())
    run = spans.one("run two_steps")
    assert run.context is not None
    assert {s.parent.span_id for s in spans.named("step lookup") if s.parent} == {run.context.span_id}


def _sink() -> tuple[SpanSink, InMemorySpanExporter, TracerProvider]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sink = SpanSink.for_tracer(provider.get_tracer("test"))
    assert sink is not None
    return sink, exporter, provider


PARENT = SpanContext(0x1234, 0x99, False, TraceFlags(TraceFlags.SAMPLED))


def test_a_deferred_span_ends_as_the_sdk_would_export_it() -> None:
    sink, exporter, provider = _sink()
    span = sink.start("step classify", PARENT, {"bandmaster.step.seq": 3}, 1_000)
    assert isinstance(span, DeferredSpan)
    assert span.is_recording()
    odd_values: dict[str, Any] = {"labels": ["a", "b"], "nested": {"k": [1, 2]}, "obj": Path("/x")}
    for key, value in odd_values.items():  # checked and stored as the SDK stores them
        span.set_attribute(key, value)
    span.add_event("retry", {"bandmaster.attempt": 1}, timestamp=1_500)
    span.set_status(Status(StatusCode.ERROR, "ValueError: no"))
    span.record_exception(ValueError("no"))
    span.end(end_time=2_000)
    span.end(end_time=3_000)  # once only
    span.set_attribute("late", 1)  # ignored once ended

    [done] = exporter.get_finished_spans()
    assert isinstance(done, ReadableSpan)
    assert done.name == "step classify"
    assert done.kind == SpanKind.INTERNAL
    assert done.parent == PARENT
    assert done.context is not None
    assert done.context == SpanContext(0x1234, done.context.span_id, False, PARENT.trace_flags)
    assert done.context.is_valid
    assert done.context.span_id != PARENT.span_id
    assert (done.start_time, done.end_time) == (1_000, 2_000)
    sdk_span = provider.get_tracer("sdk").start_span("same", attributes={"bandmaster.step.seq": 3})
    for key, value in odd_values.items():
        sdk_span.set_attribute(key, value)
    assert isinstance(sdk_span, ReadableSpan)
    assert dict(done.attributes or {}) == dict(sdk_span.attributes or {})
    assert dict(done.attributes or {})["labels"] == ("a", "b")
    assert [e.name for e in done.events] == ["retry", "exception"]
    exception = done.events[1].attributes or {}
    assert exception["exception.type"] == "ValueError"
    assert exception["exception.message"] == "no"
    assert exception["exception.stacktrace"] == "ValueError: no\n"  # never raised: no frames
    assert done.status.status_code == StatusCode.ERROR
    assert done.status.description == "ValueError: no"
    assert done.resource is provider.resource
    assert done.instrumentation_scope is not None
    assert done.instrumentation_scope.name == "test"
    provider.shutdown()


def test_ok_status_is_final_and_unset_is_ignored() -> None:
    sink, exporter, provider = _sink()
    span = sink.start("step s", PARENT, {}, 1)
    span.set_status(StatusCode.UNSET)
    span.set_status(StatusCode.OK)
    span.set_status(Status(StatusCode.ERROR, "too late"))
    span.end()
    [done] = exporter.get_finished_spans()
    assert done.status.status_code == StatusCode.OK
    provider.shutdown()


def test_only_passive_processors_allow_deferred_spans() -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    assert SpanSink.for_tracer(provider.get_tracer("t")) is not None
    provider.add_span_processor(StampOnStart())
    assert SpanSink.for_tracer(provider.get_tracer("t")) is None
    assert SpanSink.for_tracer(trace.NoOpTracer()) is None
    provider.shutdown()


@pytest.mark.parametrize("sampled", [True, False])
def test_a_sampled_span_decides_as_the_sdk_does(sampled: bool) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=None if sampled else ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sink = SpanSink.for_tracer(provider.get_tracer("test"))
    assert sink is not None
    span = sink.start_sampled("start wf", None, SpanKind.PRODUCER, {"bandmaster.run_id": "r1"})
    assert span.is_recording() is sampled
    assert span.get_span_context().is_valid
    assert span.get_span_context().trace_flags.sampled is sampled
    span.end()
    assert len(exporter.get_finished_spans()) == (1 if sampled else 0)
    provider.shutdown()
