"""Prices from ``genai-prices`` (offline), overrides in models.yaml, and a billed model without a
price: a load-time ``UnknownPriceWarning``, and its cost shown as unknown, never $0 (step meta,
``bandmaster stats`` and its JSON, the stats API). And ``budgets:`` in models.yaml, validated."""

from __future__ import annotations

import asyncio
import json
import subprocess
import warnings
from pathlib import Path

import pytest
import yaml

import bandmaster as bm
from bandmaster.models import Price, UnknownPriceWarning
from bandmaster.observe.stats import compute

from .conftest import EngineFactory
from .helpers import ScriptedServer, bandmaster_exe, call_in_run, subprocess_env

UNKNOWN = "no-such-model-9000"


# --- lookups ---------------------------------------------------------------------------------


def test_prices_come_from_genai_prices_by_provider_and_model() -> None:
    table = bm.PriceTable()
    assert table.lookup("gpt-4o-mini", "openai") == Price(input=0.15, output=0.6)
    assert table.lookup("gpt-4o-mini-2024-07-18", "openai") == Price(input=0.15, output=0.6)
    assert table.lookup("claude-haiku-4-5", "anthropic") == Price(input=1.0, output=5.0)
    assert table.lookup(UNKNOWN, "openai") is None
    usage = bm.Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert table.cost("gpt-4o-mini", usage, "openai") == pytest.approx(0.75)


def test_overrides_in_models_yaml_win() -> None:
    registry = bm.Registry.from_dict(
        {
            "models": {
                "mini": {"provider": "openai", "model": "gpt-4o-mini", "price": {"input": 9, "output": 9}}
            },
            "prices": {"claude-haiku-4-5": {"input": 7, "output": 8}},
        }
    )
    assert registry.prices.lookup("gpt-4o-mini", "openai") == Price(input=9, output=9)
    assert registry.prices.lookup("claude-haiku-4-5", "anthropic") == Price(input=7, output=8)
    assert registry.prices.lookup("gpt-4o", "openai") == Price(input=2.5, output=10.0), "the rest: catalogue"


# --- unknown prices --------------------------------------------------------------------------


def test_a_billed_model_without_a_price_warns_at_load() -> None:
    with pytest.warns(UnknownPriceWarning, match=rf"'mystery' \({UNKNOWN}\).*add price:"):
        registry = bm.Registry.from_dict({"models": {"mystery": {"provider": "openai", "model": UNKNOWN}}})
    assert registry.unpriced == {"mystery": UNKNOWN}


def test_priced_and_local_models_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry = bm.Registry.from_dict(
            {
                "models": {
                    "mine": {"provider": "openai", "model": UNKNOWN, "price": {"input": 1, "output": 2}},
                    "mini": {"provider": "openai", "model": "gpt-4o-mini"},
                    "local": {"provider": "callable", "function": "wf_budgets:big"},
                }
            }
        )
    assert registry.unpriced == {}


def unknown_registry(tmp_path: Path, server: ScriptedServer) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": {"mystery": server.openai_entry(UNKNOWN)}}))
    return path


async def test_an_unknown_price_is_unknown_in_the_step_and_the_stats(
    tmp_path: Path, server: ScriptedServer, engine_for: EngineFactory, db_path: Path
) -> None:
    server.script(UNKNOWN, {"kind": "ok", "text": "hi", "usage": [1000, 500]})
    path = unknown_registry(tmp_path, server)
    with pytest.warns(UnknownPriceWarning):
        registry = bm.Registry.load(path)
    engine = await engine_for(registry)
    response, step = await call_in_run(engine, "mystery")
    assert (response.cost, response.cost_known) == (0.0, False)
    assert step.meta["cost"] is None, "unknown, never $0"
    assert step.meta["cost_known"] is False
    engine.store.flush()

    stats = compute(db_path)
    (model,) = stats.models
    assert (model.model, model.calls, model.unknown_cost_calls) == (UNKNOWN, 1, 1)
    assert stats.unknown_cost_calls == 1

    shown = await asyncio.to_thread(
        subprocess.run,
        [bandmaster_exe(), "stats", "--db", str(db_path)],
        capture_output=True, text=True, env=subprocess_env(COLUMNS="200"), timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "unknown (1 call of unknown price)" in shown.stdout
    assert "$0.0000" not in shown.stdout
    as_json = await asyncio.to_thread(
        subprocess.run,
        [bandmaster_exe(), "stats", "--db", str(db_path), "--json"],
        capture_output=True, text=True, env=subprocess_env(), timeout=120, check=False,
    )  # fmt: skip
    assert json.loads(as_json.stdout)["unknown_cost_calls"] == 1


def test_models_list_names_the_models_without_a_price(tmp_path: Path, server: ScriptedServer) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "models": {"mystery": server.openai_entry(UNKNOWN)},
                "aliases": {"chat": {"versions": {"production": "mystery"}}},
            }
        )
    )
    shown = subprocess.run(
        [bandmaster_exe(), "models", "list", "--models", str(path), "--db", str(tmp_path / "j.db")],
        capture_output=True, text=True, env=subprocess_env(COLUMNS="200"), timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "warning:" in shown.stderr
    assert f"'mystery' ({UNKNOWN})" in shown.stderr


async def test_a_budget_refuses_a_model_of_unknown_price(
    tmp_path: Path, server: ScriptedServer, engine_for: EngineFactory
) -> None:
    server.script(UNKNOWN, {"kind": "ok", "text": "hi", "usage": [1000, 500]})
    data = {
        "models": {"mystery": server.openai_entry(UNKNOWN)},
        "budgets": {"tenants": {"acme": {"usd_per_day": 5}}},
    }
    with pytest.warns(UnknownPriceWarning):
        registry = bm.Registry.from_dict(data)
    from bandmaster.engine import RunTerms, terms_scope

    with (
        terms_scope(RunTerms(tenant="acme")),
        pytest.raises(bm.BudgetExceeded, match="price of 'mystery' is unknown"),
    ):
        await bm.call_model("mystery", "hi", registry=registry)
    assert server.count(UNKNOWN) == 0, "refused before anything was sent"


# --- budgets: in models.yaml -----------------------------------------------------------------


MODELS = {"big": {"provider": "callable", "function": "wf_budgets:big"}}


@pytest.mark.parametrize(
    ("budgets", "message"),
    [
        (
            {"tenants": {"acme": {"usd_per_day": 5, "on_exceed": "downgrade"}}},
            r"budgets\.tenants\.acme\.downgrade_to: on_exceed: downgrade needs downgrade_to",
        ),
        (
            {"tenants": {"acme": {"usd_per_day": 5, "on_exceed": "downgrade", "downgrade_to": "tiny"}}},
            r"budgets\.tenants\.acme\.downgrade_to: unknown alias or model 'tiny'",
        ),
        (
            {"runs": {"on_exceed": "downgrade", "downgrade_to": "tiny"}},
            r"budgets\.runs\.downgrade_to: unknown alias or model 'tiny'",
        ),
        (
            {"tenants": {"acme": {"usd_per_day": -1}}},
            r"budgets\.tenants\.acme\.usd_per_day: Input should be greater than or equal to 0",
        ),
        (
            {"tenants": {"acme": {"usd_per_day": 5, "on_exceed": "pray"}}},
            r"budgets\.tenants\.acme\.on_exceed: Input should be 'fail', 'downgrade' or 'approve'",
        ),
        (
            {"tenants": {"acme": {"usd_per_day": 5, "approve_timeout": 0}}},
            r"budgets\.tenants\.acme\.approve_timeout: Input should be greater than 0",
        ),
        (
            {"tenants": {"acme": {"usd_per_day": 5, "per_week": 1}}},
            r"budgets\.tenants\.acme\.per_week: Extra inputs are not permitted",
        ),
        ({"tenants": {"acme": {}}}, r"budgets\.tenants\.acme\.usd_per_day: Field required"),
        ({"tenants": {"a b": {"usd_per_day": 5}}}, r"budgets: tenant 'a b' is not a valid name"),
        ({"quota": 3}, r"budgets\.quota: Extra inputs are not permitted"),
    ],
)
def test_bad_budgets_are_registry_errors(budgets: dict[str, object], message: str) -> None:
    with pytest.raises(bm.RegistryError, match=message):
        bm.Registry.from_dict({"models": MODELS, "budgets": budgets}, source="models.yaml")


def test_good_budgets_load() -> None:
    registry = bm.Registry.from_dict(
        {
            "models": {**MODELS, "small": {"provider": "callable", "function": "wf_budgets:small"}},
            "budgets": {
                "runs": {"on_exceed": "approve", "approve_timeout": 60},
                "tenants": {"acme": {"usd_per_day": 20, "on_exceed": "downgrade", "downgrade_to": "small"}},
            },
        }
    )
    budgets = registry.config.budgets
    assert (budgets.runs.on_exceed, budgets.runs.approve_timeout) == ("approve", 60)
    assert budgets.tenants["acme"].downgrade_to == "small"


async def test_the_server_shows_an_unknown_price_as_unknown(
    tmp_path: Path, server: ScriptedServer, engine_for: EngineFactory, db_path: Path
) -> None:
    pytest.importorskip("bandmaster.server", reason="needs bandmaster[server]", exc_type=ImportError)
    httpx2 = pytest.importorskip("httpx2", reason="needs bandmaster[approvals] (httpx2, the test client)")
    from tests.server.conftest import start_server, stop, wait_healthy

    from bandmaster.server._auth import create_token

    server.script(UNKNOWN, {"kind": "ok", "text": "hi", "usage": [1000, 500]})
    with pytest.warns(UnknownPriceWarning):
        registry = bm.Registry.load(unknown_registry(tmp_path, server))
    engine = await engine_for(registry)
    await call_in_run(engine, "mystery")
    engine.store.flush()
    secret = create_token(engine.store, "alice", ["admin"]).secret
    proc, url, log = start_server(tmp_path, db_path)
    try:
        await asyncio.to_thread(wait_healthy, proc, url, log)
        headers = {"Authorization": f"Bearer {secret}"}
        async with httpx2.AsyncClient(base_url=url, headers=headers, timeout=15.0) as http:
            (run,) = (await http.get("/api/v1/runs")).json()["runs"]
            described = (await http.get(f"/api/v1/runs/{run['id']}")).json()
            stats = (await http.get("/api/v1/stats")).json()
    finally:
        stop(proc)
    (step,) = [s for s in described["steps"] if s["kind"] == "model"]
    assert (step["meta"]["cost"], step["meta"]["cost_known"]) == (None, False)
    assert stats["unknown_cost_calls"] == 1
    assert stats["models"][0]["unknown_cost_calls"] == 1
