"""Spans from the tracing hook, read back from the SDK's in-memory exporter: structure,
GenAI attributes, retry/fallback/breaker/cache events, error status, payload redaction, and
one trace across a suspended and resumed run."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs bandmaster[otel]")

from opentelemetry.trace import SpanKind, StatusCode
from tests.conftest import StatusWaiter

import bandmaster as bm
from bandmaster.observe._tracing import Tracing

from .conftest import Spans

SECRET = "patient John Smith, SSN 078-05-1120"
calls: dict[str, int] = {}


@bm.step(retry=bm.Retry(attempts=3, initial=0.001, jitter=False))
async def flaky(text: str) -> str:
    calls["flaky"] = calls.get("flaky", 0) + 1
    if calls["flaky"] == 1:
        raise bm.ProviderUnavailable("first attempt fails")
    return "cleaned"


@bm.step
async def broken(text: str) -> str:
    raise ValueError("no rule for this ticket")


@bm.workflow
async def pipeline(text: str) -> str:
    cleaned = await flaky(text)
    response = await bm.call_model("intent", cleaned, fallback=["backup"], retry=bm.Retry(attempts=1))
    return str(response.output)


@bm.workflow
async def failing(text: str) -> str:
    return await broken(text)


@bm.workflow
async def waits(text: str) -> str:
    first = await flaky(text)
    answer = await bm.wait_for("review", timeout=60)
    return f"{first}:{answer}"


def _down(text: str) -> str:
    raise bm.ProviderUnavailable("intent model is down")


def _backup(text: str) -> bm.ModelResponse:
    return bm.ModelResponse(
        output="billing",
        text="billing",
        usage=bm.Usage(input_tokens=12, output_tokens=3),
        cost=0.0021,
        model="backup-2024-06",
        finish_reason="stop",
    )


def _registry() -> bm.Registry:
    return bm.Registry(
        models={
            "intent": bm.CallableModel(_down, name="intent"),
            "backup": bm.CallableModel(_backup, name="backup"),
        }
    )


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls.clear()


async def _run(db: Path, wf: bm.Workflow[..., str], hook: Tracing, *args: str, fails: bool = False) -> None:
    async with bm.Engine(
        db, workflows=[wf], registry=_registry(), hooks=[hook], poll_interval=0.02
    ) as engine:
        handle = await engine.start(wf, *args)
        if fails:
            with pytest.raises(bm.RunFailed):
                await handle.result(timeout=20)
        else:
            await handle.result(timeout=20)


async def test_run_step_attempt_and_model_call_spans_nest(db_path: Path, spans: Spans) -> None:
    await _run(db_path, pipeline, Tracing(spans.provider), SECRET)

    start = spans.one("start pipeline")
    run = spans.one("run pipeline")
    assert start.kind == SpanKind.PRODUCER
    assert run.parent is not None
    assert start.context is not None
    assert run.parent.span_id == start.context.span_id
    assert run.attributes is not None
    assert run.attributes["bandmaster.outcome"] == "completed"
    assert {s.name for s in spans.children(run)} == {"step flaky", "model intent"}

    step = spans.one("step flaky")
    attempts = sorted(spans.children(step), key=lambda s: s.start_time or 0)
    assert [a.name for a in attempts] == ["attempt 1", "attempt 2"]
    assert attempts[0].status.status_code == StatusCode.ERROR
    assert attempts[0].attributes is not None
    assert attempts[0].attributes["error.type"] == "ProviderUnavailable"
    assert attempts[1].status.status_code == StatusCode.UNSET
    [retry] = [e for e in step.events if e.name == "retry"]
    assert retry.attributes is not None
    assert retry.attributes["error.type"] == "ProviderUnavailable"
    assert step.attributes is not None
    assert step.attributes["bandmaster.step.attempts"] == 2


async def test_model_call_has_genai_attributes_and_a_fallback_event(db_path: Path, spans: Spans) -> None:
    await _run(db_path, pipeline, Tracing(spans.provider), "text")

    step = spans.one("model intent")
    attrs = step.attributes
    assert attrs is not None
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.response.model"] == "backup-2024-06"
    # Usage is on the chat span that made the call only: summed over the trace, it counts once.
    assert "gen_ai.usage.input_tokens" not in attrs
    assert tuple(attrs["gen_ai.response.finish_reasons"]) == ("stop",)  # type: ignore[arg-type]
    assert attrs["bandmaster.cost_usd"] == pytest.approx(0.0021)
    assert attrs["bandmaster.fallback"] == "backup"
    assert attrs["bandmaster.cache_hit"] is False
    [fallback] = [e for e in step.events if e.name == "fallback"]
    assert fallback.attributes is not None
    assert fallback.attributes["bandmaster.fallback.model"] == "backup"

    # One attempt per candidate: the primary failed, the fallback answered.
    attempts = {a.attributes["bandmaster.target"]: a for a in spans.children(step) if a.attributes}
    assert set(attempts) == {"intent", "backup"}
    failed_call = spans.one("chat intent")
    answered = spans.one("chat backup")
    assert failed_call.kind == answered.kind == SpanKind.CLIENT
    assert failed_call.status.status_code == StatusCode.ERROR
    assert answered.parent is not None
    assert attempts["backup"].context is not None
    assert answered.parent.span_id == attempts["backup"].context.span_id
    assert answered.attributes is not None
    assert answered.attributes["gen_ai.request.model"] == "backup"
    assert answered.attributes["gen_ai.usage.output_tokens"] == 3
    assert answered.attributes["gen_ai.usage.input_tokens"] == 12
    usage = [s.attributes.get("gen_ai.usage.input_tokens", 0) for s in spans.all() if s.attributes]
    assert sum(usage) == 12  # type: ignore[arg-type]


async def test_breaker_and_cache_events(db_path: Path, spans: Spans) -> None:
    @bm.workflow
    async def guarded(text: str) -> str:
        response = await bm.call_model(
            "intent",
            text,
            fallback=["backup"],
            retry=bm.Retry(attempts=1),
            breaker=bm.Breaker(failures=1, window=60, reset=60),
            cache_ttl=60,
        )
        again = await bm.call_model("backup", text, cache_ttl=60)
        return f"{response.output}/{again.output}"

    await _run(db_path, guarded, Tracing(spans.provider), "same text")
    first = spans.named("model intent")[0]
    states = {
        e.attributes["bandmaster.breaker.model"]: e.attributes["bandmaster.breaker.state"]
        for e in first.events
        if e.name == "breaker" and e.attributes
    }
    assert states == {"intent": "open", "backup": "closed"}

    # The second call asks the same model with the same request within the TTL.
    async with bm.Engine(
        db_path, workflows=[guarded], registry=_registry(), hooks=[Tracing(spans.provider)]
    ) as e:
        await (await e.start(guarded, "same text")).result(timeout=20)
    cached = spans.named("model backup")[-1]
    assert cached.attributes is not None
    assert cached.attributes["bandmaster.cache_hit"] is True
    assert [e.name for e in cached.events] == ["cache_hit"]


async def test_failed_step_and_run_have_error_status(db_path: Path, spans: Spans) -> None:
    await _run(db_path, failing, Tracing(spans.provider), "text", fails=True)
    step = spans.one("step broken")
    run = spans.one("run failing")
    for span in (step, run):
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description == "ValueError: no rule for this ticket"
        assert [e.name for e in span.events] == ["exception"]
    assert run.attributes is not None
    assert run.attributes["bandmaster.outcome"] == "failed"


class _MaskSSN:
    """A journal redactor masking the test's SSN (Presidio's own tests are in tests/pii)."""

    def redact(self, value: object) -> object:
        if isinstance(value, str):
            return value.replace("078-05-1120", "<US_SSN>")
        if isinstance(value, dict):
            return {k: self.redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact(v) for v in value]
        return value


@bm.step
async def leaks(text: str) -> str:
    raise ValueError(f"cannot file {text}")


@bm.workflow(redact=_MaskSSN())
async def leaking(text: str) -> str:
    return await leaks(text)


async def test_error_text_reaches_spans_redacted_like_the_journal(db_path: Path, spans: Spans) -> None:
    await _run(db_path, leaking, Tracing(spans.provider), SECRET, fails=True)
    failed = [s for s in spans.all() if s.status.status_code == StatusCode.ERROR]
    assert {s.name for s in failed} >= {"step leaks", "run leaking", "attempt 1"}
    for span in spans.all():
        texts = [str(span.status.description)] + [str(v) for v in (span.attributes or {}).values()]
        texts += [str(v) for e in span.events for v in (e.attributes or {}).values()]
        assert not any("078-05-1120" in t for t in texts), span.name
    step = spans.one("step leaks")
    assert step.status.description == "ValueError: cannot file patient John Smith, SSN <US_SSN>"
    assert [e.name for e in step.events][-1] == "exception"
    assert step.events[-1].attributes == {
        "exception.type": "ValueError",
        "exception.message": "cannot file patient John Smith, SSN <US_SSN>",
    }


async def test_payloads_stay_out_of_spans_unless_asked(db_path: Path, spans: Spans) -> None:
    await _run(db_path, pipeline, Tracing(spans.provider), SECRET)
    for span in spans.all():
        texts = [str(v) for v in (span.attributes or {}).values()]
        texts += [str(v) for e in span.events for v in (e.attributes or {}).values()]
        assert not any("078-05-1120" in t or "cleaned" in t for t in texts), span.name

    spans.exporter.clear()
    await _run(
        db_path.with_name("opt-in.db"), pipeline, Tracing(spans.provider, capture_payloads=True), SECRET
    )
    step = spans.one("step flaky")
    assert step.attributes is not None
    assert step.attributes["bandmaster.output"] == '"cleaned"'
    model = spans.one("model intent")
    assert model.attributes is not None
    assert '"cleaned"' in str(model.attributes["bandmaster.input"])


async def test_a_resumed_run_continues_its_trace(
    db_path: Path, spans: Spans, until_status: StatusWaiter
) -> None:
    hook = Tracing(spans.provider)
    async with bm.Engine(
        db_path, workflows=[waits], hooks=[hook], poll_interval=0.02, max_inline_sleep=0
    ) as e:
        handle = await e.start(waits, "text")
        await until_status(e, handle.id, "waiting")
    # Another engine (a restarted worker) resumes it from the journal.
    async with bm.Engine(
        db_path, workflows=[waits], hooks=[Tracing(spans.provider)], poll_interval=0.02
    ) as e:
        await e.signal(handle.id, "review", "ok")
        assert await e.result(handle.id, timeout=20) == "cleaned:ok"

    first, second = sorted(spans.named("run waits"), key=lambda s: s.start_time or 0)
    start = spans.one("start waits")
    assert first.attributes is not None
    assert second.attributes is not None
    assert first.attributes["bandmaster.outcome"] == "suspended"
    assert second.attributes["bandmaster.outcome"] == "completed"
    assert second.attributes["bandmaster.resumed"] is True
    assert start.context is not None
    assert first.context is not None
    assert second.context is not None
    assert first.context.trace_id == second.context.trace_id == start.context.trace_id
    # The replay does not run `flaky` again, so it has no second step span.
    assert len(spans.named("step flaky")) == 1
    assert spans.children(second) == []


async def test_a_run_started_without_trace_headers_keeps_one_trace(
    db_path: Path, spans: Spans, until_status: StatusWaiter
) -> None:
    async with bm.Engine(db_path, workflows=[waits], worker=False) as client:  # no hooks
        handle = await client.start(waits, "text")
    hook = Tracing(spans.provider)
    async with bm.Engine(
        db_path, workflows=[waits], hooks=[hook], poll_interval=0.02, max_inline_sleep=0
    ) as e:
        await until_status(e, handle.id, "waiting")
        await e.signal(handle.id, "review", "ok")
        assert await e.result(handle.id, timeout=20) == "cleaned:ok"
    first, second = spans.named("run waits")
    assert first.context is not None
    assert second.context is not None
    assert first.context.trace_id == second.context.trace_id
    assert spans.named("start waits") == []


async def test_provider_name_is_on_the_answered_call(db_path: Path, spans: Spans) -> None:
    class Hosted(bm.CallableModel):
        provider = "acme"  # what OpenAIModel and AnthropicModel set ("openai", "anthropic", a host)

    @bm.workflow
    async def hosted(text: str) -> str:
        response = await bm.call_model(Hosted(_backup, name="hosted"), text)
        return str(response.output)

    await _run(db_path, hosted, Tracing(spans.provider), "text")
    for name in ("model hosted", "chat hosted"):
        attrs = spans.one(name).attributes
        assert attrs is not None
        assert attrs["gen_ai.provider.name"] == "acme", name


def test_sdk_models_name_their_provider() -> None:
    openai_compat = pytest.importorskip("bandmaster.models.openai_compat")
    anthropic = pytest.importorskip("bandmaster.models.anthropic")
    assert openai_compat.OpenAIModel("gpt-4o-mini", api_key="k").provider == "openai"
    local = openai_compat.OpenAIModel("llama", base_url="http://127.0.0.1:8000/v1", api_key="k")
    assert local.provider == "127.0.0.1"
    assert anthropic.AnthropicModel("claude-haiku", api_key="k").provider == "anthropic"
