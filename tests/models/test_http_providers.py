"""The OpenAI-compatible and Anthropic providers, driven through the real ``openai`` and
``anthropic`` SDKs against the scripted server process: success, cost, the request that was
sent, and the mapping of every provider failure onto bandmaster's error tree."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("openai", reason="needs bandmaster[openai,anthropic]")
pytest.importorskip("anthropic", reason="needs bandmaster[openai,anthropic]")

import bandmaster as bm
from bandmaster.models.anthropic import AnthropicModel
from bandmaster.models.openai_compat import OpenAIModel

from .helpers import ANTHROPIC, OPENAI, ScriptedServer, ask, call_in_run

# Current model ids: the anthropic SDK warns (an error here) about deprecated ones.
GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"


@dataclass
class Provider:
    model_id: str
    path: str
    make: Callable[..., OpenAIModel | AnthropicModel]
    server: ScriptedServer
    key_env: str


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest, server: ScriptedServer) -> Provider:
    if request.param == "openai":
        return Provider(GPT, OPENAI, server.openai, server, "OPENAI_API_KEY")
    return Provider(CLAUDE, ANTHROPIC, server.anthropic, server, "ANTHROPIC_API_KEY")


# --- success ----------------------------------------------------------------------------


async def test_openai_answer_usage_cost_model_latency(server: ScriptedServer) -> None:
    server.script(GPT, {"kind": "ok", "text": "positive", "usage": [1000, 500]})
    response = await server.openai(GPT).request(bm.ModelRequest(input="great product!"))
    assert response.output == "positive"
    assert response.text == "positive"
    assert response.usage == bm.Usage(input_tokens=1000, output_tokens=500)
    # bundled price of gpt-4o-mini: $0.15 in / $0.60 out per million tokens
    assert response.cost == pytest.approx((1000 * 0.15 + 500 * 0.6) / 1e6)
    assert response.model == GPT
    assert response.finish_reason == "stop"
    assert response.latency > 0
    assert response.raw is not None
    assert response.raw["id"].startswith("chatcmpl-")
    assert server.count(GPT) == 1


async def test_anthropic_answer_usage_cost_model_latency(server: ScriptedServer) -> None:
    server.script(CLAUDE, {"kind": "ok", "text": "negative", "usage": [1000, 500]})
    response = await server.anthropic(CLAUDE).request(bm.ModelRequest(input="it broke"))
    assert response.output == "negative"
    assert response.usage == bm.Usage(input_tokens=1000, output_tokens=500)
    # bundled price of claude-haiku-4-5: $1 in / $5 out per million tokens
    assert response.cost == pytest.approx((1000 * 1.0 + 500 * 5.0) / 1e6)
    assert response.model == CLAUDE
    assert response.finish_reason == "end_turn"
    assert response.latency > 0
    assert server.stats()["models"] == {CLAUDE: {ANTHROPIC: 1}}


async def test_served_dated_version_is_priced_by_its_family(server: ScriptedServer) -> None:
    """The server answers with a dated model id; the cost uses the family's price."""
    server.script(GPT, {"kind": "ok", "served_model": "gpt-4o-mini-2024-07-18", "usage": [2000, 0]})
    response = await server.openai(GPT).request(bm.ModelRequest(input="x"))
    assert response.model == "gpt-4o-mini-2024-07-18"
    assert response.cost == pytest.approx(2000 * 0.15 / 1e6)


async def test_unknown_model_costs_nothing(server: ScriptedServer) -> None:
    response = await server.openai("my-local-llama").request(bm.ModelRequest(input="x"))
    assert response.usage.total_tokens == 18
    assert response.cost == 0.0


async def test_custom_price_from_models_yaml(server: ScriptedServer) -> None:
    registry = bm.Registry.from_dict(
        {
            "models": {
                "local": server.openai_entry("my-local-llama", price={"input": 2.0, "output": 4.0}),
                "mini": server.openai_entry(GPT, price={"input": 1.0, "output": 1.0}),
            }
        }
    )
    server.script("my-local-llama", {"kind": "ok", "usage": [1000, 250]})
    local = await bm.call_model("local", "hi", registry=registry)
    assert local.cost == pytest.approx((1000 * 2.0 + 250 * 4.0) / 1e6)
    assert local.model == "my-local-llama"
    server.script(GPT, {"kind": "ok", "usage": [1000, 250]})
    mini = await bm.call_model("mini", "hi", registry=registry)
    assert mini.cost == pytest.approx(1250 / 1e6), "a price in models.yaml overrides the bundled one"


async def test_openai_request_carries_every_option(server: ScriptedServer) -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string"}}}
    server.script(GPT, {"kind": "ok", "json": {"label": "refund"}})
    request = bm.ModelRequest(
        input="refund please",
        system="You classify tickets.",
        temperature=0.0,
        max_tokens=50,
        stop=["\n\n"],
        json_schema=schema,
        params={"seed": 7},
    )
    response = await server.openai(GPT).request(request)
    assert response.output == {"label": "refund"}
    assert response.text == '{"label": "refund"}'
    body = server.last_body(GPT)
    assert body["model"] == GPT
    assert body["messages"] == [
        {"role": "system", "content": "You classify tickets."},
        {"role": "user", "content": "refund please"},
    ]
    assert body["temperature"] == 0.0
    assert body["max_tokens"] == 50
    assert body["stop"] == ["\n\n"]
    assert body["seed"] == 7
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }


async def test_anthropic_request_carries_every_option(server: ScriptedServer) -> None:
    schema = {"type": "object"}
    server.script(CLAUDE, {"kind": "ok", "text": '```json\n{"label": "refund"}\n```'})
    request = bm.ModelRequest(
        input=[
            bm.Message(role="system", content="You classify tickets."),
            bm.Message(role="user", content="refund please"),
        ],
        max_tokens=64,
        stop=["END"],
        json_schema=schema,
    )
    response = await server.anthropic(CLAUDE).request(request)
    assert response.output == {"label": "refund"}, "a fenced JSON answer is parsed"
    body = server.last_body(CLAUDE)
    assert body["messages"] == [{"role": "user", "content": "refund please"}]
    assert body["system"].startswith("You classify tickets.\nAnswer with JSON only")
    assert body["max_tokens"] == 64
    assert body["stop_sequences"] == ["END"]


async def test_anthropic_default_max_tokens(server: ScriptedServer) -> None:
    await server.anthropic(CLAUDE).request(bm.ModelRequest(input="hi"))
    assert server.last_body(CLAUDE)["max_tokens"] == 1024
    assert "system" not in server.last_body(CLAUDE)


async def test_anthropic_request_with_temperature(server: ScriptedServer) -> None:
    response = await server.anthropic(CLAUDE).request(bm.ModelRequest(input="hi", temperature=0.5))
    assert response.text == "echo: hi"
    assert server.last_body(CLAUDE)["temperature"] == 0.5


async def test_non_json_answer_to_a_json_request_is_malformed(provider: Provider) -> None:
    provider.server.script(provider.model_id, {"kind": "ok", "text": "The label is refund."})
    request = bm.ModelRequest(input="classify", json_schema={"type": "object", "required": ["label"]})
    with pytest.raises(bm.MalformedResponse, match="asked for JSON"):
        await provider.make(provider.model_id).request(request)


async def test_json_not_matching_the_schema_passes_through(provider: Provider) -> None:
    """Providers only parse JSON; validating it against the schema is a guard's job."""
    provider.server.script(provider.model_id, "wrong_schema")
    request = bm.ModelRequest(input="classify", json_schema={"type": "object", "required": ["label"]})
    response = await provider.make(provider.model_id).request(request)
    assert response.output == {"unexpected": True}


# --- failures ---------------------------------------------------------------------------


async def test_429_is_rate_limited_with_retry_after(provider: Provider) -> None:
    provider.server.script(provider.model_id, {"kind": "429", "retry_after": 7})
    with pytest.raises(bm.RateLimited, match="429") as caught:
        await provider.make(provider.model_id).request(bm.ModelRequest(input="x"))
    assert caught.value.retry_after == 7.0
    assert isinstance(caught.value, bm.RetryableError)


async def test_429_without_retry_after(provider: Provider) -> None:
    provider.server.script(provider.model_id, {"kind": "429", "retry_after": None})
    with pytest.raises(bm.RateLimited) as caught:
        await provider.make(provider.model_id).request(bm.ModelRequest(input="x"))
    assert caught.value.retry_after is None


async def test_500_is_provider_unavailable(provider: Provider) -> None:
    provider.server.script(provider.model_id, "500")
    with pytest.raises(bm.ProviderUnavailable, match="500"):
        await provider.make(provider.model_id).request(bm.ModelRequest(input="x"))


async def test_400_is_invalid_request_and_never_retried(provider: Provider) -> None:
    provider.server.script(provider.model_id, default="400")
    with pytest.raises(bm.InvalidRequest, match="400"):
        await bm.call_model(provider.make(provider.model_id), "x", retry=bm.Retry(attempts=3, initial=0))
    assert provider.server.stats()["models"] == {provider.model_id: {provider.path: 1}}


async def test_401_names_the_api_key_variable(provider: Provider) -> None:
    provider.server.script(provider.model_id, default="401")
    model = provider.make(provider.model_id, api_key_env="TEAM_LLM_KEY")
    with pytest.raises(bm.AuthenticationFailed, match=r"\$TEAM_LLM_KEY"):
        await bm.call_model(model, "x", retry=bm.Retry(attempts=3, initial=0))
    assert provider.server.count(provider.model_id) == 1, "credentials errors are not retried"
    with pytest.raises(bm.AuthenticationFailed, match=rf"\${provider.key_env}"):
        await provider.make(provider.model_id).request(bm.ModelRequest(input="x"))


async def test_slow_answer_beyond_the_sdk_timeout(provider: Provider) -> None:
    provider.server.script(provider.model_id, {"kind": "slow", "delay": 3})
    with pytest.raises(bm.StepTimeout, match="timed out"):
        await provider.make(provider.model_id, timeout=0.3).request(bm.ModelRequest(input="x"))


async def test_slow_answer_beyond_the_policy_timeout(provider: Provider) -> None:
    """SDK timeout 60 s: the step policy's per-attempt timeout cuts the call."""
    provider.server.script(provider.model_id, {"kind": "slow", "delay": 3})
    with pytest.raises(bm.StepTimeout, match=r"timed out after 0\.3s"):
        await bm.call_model(provider.make(provider.model_id), "x", timeout=0.3, retry=bm.Retry(attempts=1))


async def test_malformed_body_is_malformed_response(provider: Provider) -> None:
    provider.server.script(provider.model_id, "malformed")
    with pytest.raises(bm.MalformedResponse, match="unparseable"):
        await provider.make(provider.model_id).request(bm.ModelRequest(input="x"))


async def test_json_of_the_wrong_shape_is_malformed_response(provider: Provider) -> None:
    provider.server.script(provider.model_id, "wrong_shape")
    with pytest.raises(bm.MalformedResponse, match="has no"):
        await provider.make(provider.model_id).request(bm.ModelRequest(input="x"))


async def test_connection_refused_is_provider_unavailable(closed_port: int) -> None:
    openai_model = OpenAIModel(GPT, base_url=f"http://127.0.0.1:{closed_port}/v1", api_key="test")
    with pytest.raises(bm.ProviderUnavailable, match="cannot connect"):
        await openai_model.request(bm.ModelRequest(input="x"))
    anthropic_model = AnthropicModel(CLAUDE, base_url=f"http://127.0.0.1:{closed_port}", api_key="test")
    with pytest.raises(bm.ProviderUnavailable, match="cannot connect"):
        await anthropic_model.request(bm.ModelRequest(input="x"))


@pytest.mark.parametrize("failure", ["500", "429"])
async def test_sdk_retries_are_off(provider: Provider, failure: str) -> None:
    """The SDKs would retry 429 and 5xx twice on their own; bandmaster owns retries, so with
    attempts=2 the server sees exactly two requests."""
    provider.server.script(provider.model_id, default={"kind": failure, "retry_after": 0})
    with pytest.raises(bm.RetriesExhausted) as caught:
        await bm.call_model(provider.make(provider.model_id), "x", retry=bm.Retry(attempts=2, initial=0))
    assert [type(e) for e in caught.value.errors] == [
        bm.ProviderUnavailable if failure == "500" else bm.RateLimited
    ] * 2
    assert provider.server.count(provider.model_id) == 2


# --- connections (servers that keep them alive, as every hosted provider does) -------------


def test_a_registry_serves_successive_event_loops(server: ScriptedServer) -> None:
    server.script(GPT, default={"kind": "ok", "keep_alive": True})
    registry = bm.Registry.from_dict({"models": {"mini": server.openai_entry(GPT)}})
    answers = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # the leak has its own test below
        for text in ("one", "two", "three"):
            response = asyncio.run(bm.call_model("mini", text, registry=registry, retry=bm.Retry(attempts=1)))
            answers.append(response.text)
        del registry
        gc.collect()
    assert answers == ["echo: one", "echo: two", "echo: three"]


def test_provider_connections_are_released(server: ScriptedServer, tmp_path: Path) -> None:
    server.script(GPT, default={"kind": "ok", "keep_alive": True})
    registry = bm.Registry.from_dict({"models": {"mini": server.openai_entry(GPT)}})

    async def main(registry: bm.Registry) -> None:
        async with bm.Engine(tmp_path / "journal.db", workflows=[ask], registry=registry) as engine:
            response, _ = await call_in_run(engine, "mini")
            assert response.text == "echo: hello"
        close = getattr(registry, "aclose", None)  # whatever a fix offers to release them
        if close is not None:
            await close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main(registry))
        del registry
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


async def test_openai_logprobs_reach_the_response_and_a_logprob_confidence(server: ScriptedServer) -> None:
    from bandmaster.routing._signals import LogprobConfidence

    server.script(GPT, {"kind": "ok", "text": "B", "logprobs": [["B", -0.105]]})
    model = server.openai(GPT)
    response = await LogprobConfidence(model).request(bm.ModelRequest(input="which option?"))
    assert response.raw is not None
    assert response.raw["logprobs"] == [{"token": "B", "logprob": -0.105}]
    assert response.confidence == pytest.approx(0.9003, abs=1e-4)  # exp(-0.105)
    assert server.last_body(GPT)["logprobs"] is True  # the wrapper asked the provider for them
    server.script(GPT, {"kind": "ok", "text": "B"})  # a provider that returns none
    plain = await model.request(bm.ModelRequest(input="which option?"))
    assert plain.raw is not None
    assert "logprobs" not in plain.raw
