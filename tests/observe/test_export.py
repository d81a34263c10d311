"""Traces leaving the process: OTLP/HTTP export to a receiver process, and the W3C
``traceparent`` header on the provider requests the scripted model server receives."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs bandmaster[otel]")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="needs bandmaster[otel]")

from tests.models.helpers import ScriptedServer

import bandmaster as bm
from bandmaster.observe._tracing import Tracing, otlp_provider

from .conftest import Spans


@bm.step
async def prepare(text: str) -> str:
    return text.strip()


@bm.workflow
async def ask_model(text: str) -> str:
    response = await bm.call_model(
        "chat-model", await prepare(text), retry=bm.Retry(attempts=2, initial=0.01)
    )
    return str(response.output)


async def test_spans_arrive_at_an_otlp_http_receiver(
    db_path: Path, otlp_receiver: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, received = otlp_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "triage-service")
    provider = otlp_provider()
    registry = bm.Registry(models={"chat-model": bm.CallableModel(lambda text: "ok", name="chat-model")})
    try:
        async with bm.Engine(
            db_path, workflows=[ask_model], registry=registry, hooks=[Tracing(provider)]
        ) as e:
            assert await (await e.start(ask_model, " hi ")).result(timeout=20) == "ok"
        # Closing the engine flushed the batch processor: the spans are at the receiver.
        lines = [line.split("\t") for line in received.read_text().splitlines()]
    finally:
        provider.shutdown()
    names = {name for name, _, _ in lines}
    assert {
        "start ask_model",
        "run ask_model",
        "step prepare",
        "model chat-model",
        "chat chat-model",
    } <= names
    assert {"attempt 1"} <= names
    assert len({trace for _, trace, _ in lines}) == 1
    assert {service for _, _, service in lines} == {"triage-service"}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_provider_requests_carry_the_model_call_span_as_traceparent(
    db_path: Path, server: ScriptedServer, spans: Spans, provider: str
) -> None:
    model = server.openai("gpt-test") if provider == "openai" else server.anthropic("claude-test")
    server.script(model.model, "500")  # first attempt fails, the retry answers
    registry = bm.Registry(models={"chat-model": model})
    async with bm.Engine(
        db_path, workflows=[ask_model], registry=registry, hooks=[Tracing(spans.provider)]
    ) as e:
        await (await e.start(ask_model, "hello")).result(timeout=30)

    sent = [entry["traceparent"] for entry in server.stats()["log"]]
    calls = sorted(spans.named("chat chat-model"), key=lambda s: s.start_time or 0)
    assert len(sent) == len(calls) == 2
    for header, span in zip(sent, calls, strict=True):
        assert span.context is not None
        flags = int(span.context.trace_flags)
        assert header == f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-{flags:02x}"


async def test_no_traceparent_without_tracing(db_path: Path, server: ScriptedServer) -> None:
    registry = bm.Registry(models={"chat-model": server.openai("gpt-test")})
    async with bm.Engine(db_path, workflows=[ask_model], registry=registry) as e:
        await (await e.start(ask_model, "hello")).result(timeout=30)
    assert [entry["traceparent"] for entry in server.stats()["log"]] == [None]
