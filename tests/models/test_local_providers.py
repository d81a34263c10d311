"""Providers without a server: Python callables, recorded tables, and the price table
(scikit-learn pipelines: test_sklearn_provider.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import bandmaster as bm
from bandmaster.models import Price

REQUEST = bm.ModelRequest(input="my card was charged twice", system="classify")


# --- callables ----------------------------------------------------------------------------


def label_of(text: str) -> str:
    return "billing" if "charged" in text else "other"


async def async_label_of(text: str) -> tuple[str, float]:
    await asyncio.sleep(0)
    return label_of(text), 0.8


def sees_request(req: bm.ModelRequest) -> dict[str, Any]:
    return {
        "output": {"system": req.system, "text": req.text()},
        "confidence": 0.5,
        "usage": {"input_tokens": 3},
    }


async def full_response(req: bm.ModelRequest) -> bm.ModelResponse:
    return bm.ModelResponse(output="x", text="x", confidence=1.0, cost=0.25)


async def test_sync_function_of_text_returning_str() -> None:
    response = await bm.CallableModel(label_of).request(REQUEST)
    assert response.output == response.text == "billing"
    assert response.confidence is None
    assert response.model == "label_of"
    assert response.latency >= 0


async def test_async_function_returning_output_and_confidence() -> None:
    response = await bm.CallableModel(async_label_of, name="rules-v1").request(REQUEST)
    assert (response.output, response.confidence, response.text) == ("billing", 0.8, "billing")
    assert response.model == "rules-v1"


async def test_function_of_the_request_returning_a_dict() -> None:
    response = await bm.CallableModel(sees_request).request(REQUEST)
    assert response.output == {"system": "classify", "text": "my card was charged twice"}
    assert response.confidence == 0.5
    assert response.usage == bm.Usage(input_tokens=3)
    assert response.model == "sees_request"


async def test_dict_with_text_output_fills_text() -> None:
    response = await bm.CallableModel(lambda req: {"output": "yes"}, name="lam").request(REQUEST)
    assert response.text == "yes"
    assert response.model == "lam"


async def test_model_response_is_kept_with_model_and_latency_filled_in() -> None:
    response = await bm.CallableModel(full_response).request(REQUEST)
    assert (response.output, response.confidence, response.cost) == ("x", 1.0, 0.25)
    assert response.model == "full_response"
    assert response.latency > 0


@pytest.mark.parametrize("answer", [42, None, ["a", "b"], ("a", 0.5, "extra")])
async def test_unusable_return_is_malformed_response(answer: Any) -> None:
    model = bm.CallableModel(lambda req: answer, name="bad")
    with pytest.raises(bm.MalformedResponse, match="model 'bad' returned"):
        await model.request(REQUEST)


@pytest.mark.parametrize("answer", [("a", 1.5), ("a", "high"), {"output": "a", "confidence": -1}])
async def test_invalid_values_are_malformed_response(answer: Any) -> None:
    with pytest.raises(bm.MalformedResponse):
        await bm.CallableModel(lambda req: answer, name="bad").request(REQUEST)


async def test_callable_errors_propagate() -> None:
    def down(text: str) -> str:
        raise bm.ProviderUnavailable("rules service down")

    with pytest.raises(bm.ProviderUnavailable, match="rules service down"):
        await bm.CallableModel(down).request(REQUEST)


def test_callable_is_a_model() -> None:
    assert isinstance(bm.CallableModel(label_of), bm.Model)


# --- recorded ---------------------------------------------------------------------------


@pytest.fixture
def jsonl_table(tmp_path: Path) -> Path:
    rows = [
        {"input": "charged twice", "output": "billing", "cost": 0.002, "confidence": 0.91, "correct": True},
        {"input": "app crashes", "output": "technical", "cost": 0.001, "confidence": 0.55, "correct": False},
        {"input": "hello", "output": {"label": "other"}},
    ]
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    return path


async def test_recorded_jsonl(jsonl_table: Path) -> None:
    model = bm.Recorded.from_file(jsonl_table)
    assert model.name == "answers"
    first = await model.request(bm.ModelRequest(input="charged twice"))
    assert (first.output, first.cost, first.confidence, first.raw) == (
        "billing",
        0.002,
        0.91,
        {"correct": True},
    )
    second = await model.request(bm.ModelRequest(input="app crashes"))
    assert second.raw == {"correct": False}
    third = await model.request(bm.ModelRequest(input="hello"))
    assert third.output == {"label": "other"}
    assert (third.cost, third.confidence, third.raw) == (0.0, None, {"correct": None})


async def test_recorded_unknown_input_is_invalid_request(jsonl_table: Path) -> None:
    model = bm.Recorded.from_file(jsonl_table, name="golden")
    with pytest.raises(
        bm.InvalidRequest, match="recorded model 'golden' has no answer for input 'never seen'"
    ):
        await model.request(bm.ModelRequest(input="never seen"))


async def test_recorded_csv_with_custom_columns(tmp_path: Path) -> None:
    path = tmp_path / "golden.csv"
    path.write_text(
        "question,answer,usd,p,ok\ncharged twice,billing,0.003,0.9,1\napp crashes,technical,,,0\n"
    )
    model = bm.Recorded.from_file(
        path,
        name="gold",
        input_key="question",
        output_key="answer",
        cost_key="usd",
        confidence_key="p",
        correct_key="ok",
    )
    billing = await model.request(bm.ModelRequest(input="charged twice"))
    assert (billing.output, billing.cost, billing.confidence, billing.raw) == (
        "billing",
        0.003,
        0.9,
        {"correct": True},
    )
    technical = await model.request(bm.ModelRequest(input="app crashes"))
    assert (technical.cost, technical.confidence, technical.raw) == (0.0, None, {"correct": False})
    assert technical.model == "gold"


async def test_recorded_keys_by_request_text() -> None:
    model = bm.Recorded({json.dumps({"a": 1}): "dict", "line one\nline two": "chat"})
    assert (await model.request(bm.ModelRequest(input={"a": 1}))).output == "dict"
    chat = [bm.Message(role="user", content="line one"), bm.Message(role="user", content="line two")]
    assert (await model.request(bm.ModelRequest(input=chat, system="ignored"))).output == "chat"


def test_recorded_bad_tables(tmp_path: Path) -> None:
    with pytest.raises(bm.InvalidRequest, match="does not exist"):
        bm.Recorded.from_file(tmp_path / "missing.jsonl")
    path = tmp_path / "bad.jsonl"
    path.write_text('{"input": "a", "output": "x"}\n{"question": "b"}\n')
    with pytest.raises(bm.InvalidRequest, match="row 2: needs 'input' and 'output'"):
        bm.Recorded.from_file(path)


async def test_recorded_csv_with_boolean_words(tmp_path: Path) -> None:
    path = tmp_path / "golden.csv"
    path.write_text("input,output,correct\ncharged twice,billing,True\napp crashes,technical,false\n")
    model = bm.Recorded.from_file(path)
    assert (await model.request(bm.ModelRequest(input="charged twice"))).raw == {"correct": True}
    assert (await model.request(bm.ModelRequest(input="app crashes"))).raw == {"correct": False}


async def test_recorded_from_models_yaml(jsonl_table: Path, tmp_path: Path) -> None:
    (tmp_path / "models.yaml").write_text(
        "models:\n  past: {provider: recorded, path: answers.jsonl}\n"
        "  renamed: {provider: recorded, path: renamed.csv, columns: {input_key: q, output_key: a}}\n"
    )
    (tmp_path / "renamed.csv").write_text("q,a\nhi,there\n")
    registry = bm.Registry.load(tmp_path / "models.yaml")
    response = await bm.call_model("past", "charged twice", registry=registry)
    assert (response.output, response.model, response.cost) == ("billing", "past", 0.002)
    assert (await bm.call_model("renamed", "hi", registry=registry)).output == "there"


# --- prices -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("gpt-4-0613", "gpt-4"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-opus-4-1", "claude-opus-4"),
    ],
)
def test_longest_prefix_lookup(model: str, family: str) -> None:
    table = bm.PriceTable()
    assert table.lookup(model) == table.lookup(family)
    assert table.lookup(model) is not None


def test_cost_and_unknown_models() -> None:
    table = bm.PriceTable()
    usage = bm.Usage(input_tokens=2_000_000, output_tokens=500_000)
    assert table.cost("gpt-4o-mini-2024-07-18", usage) == pytest.approx(2 * 0.15 + 0.5 * 0.6)
    assert table.lookup("llama-3-8b") is None
    assert table.cost("llama-3-8b", usage) is None, "an unknown price is unknown, never $0"


def test_custom_prices_override_and_extend() -> None:
    table = bm.PriceTable({"gpt-4o": Price(input=1, output=2), "llama-3": Price(input=0.1, output=0.1)})
    assert table.lookup("gpt-4o-2024-08-06") == Price(input=1, output=2)
    assert table.lookup("gpt-4o-mini") == Price(input=0.15, output=0.6), (
        "the longer bundled prefix still wins"
    )
    assert table.lookup("llama-3-8b-instruct") == Price(input=0.1, output=0.1)
    table.set("llama-3-8b", Price(input=0.2, output=0.3))
    assert table.lookup("llama-3-8b-instruct") == Price(input=0.2, output=0.3)
    bare = bm.PriceTable({"mine": Price(input=1, output=1)}, bundled=False)
    assert bare.lookup("gpt-4o") is None


def test_prices_section_of_models_yaml() -> None:
    registry = bm.Registry.from_dict({"prices": {"llama-3": {"input": 0.5, "output": 1.0}}})
    assert registry.prices.cost("llama-3-70b", bm.Usage(input_tokens=1_000_000)) == pytest.approx(0.5)
    with pytest.raises(bm.RegistryError, match=r"prices\.llama-3\.input"):
        bm.Registry.from_dict({"prices": {"llama-3": {"input": -1, "output": 1.0}}})
