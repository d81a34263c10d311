"""The default registry is chosen once, explicitly or on first use, and ``reset_models``
forgets every process-wide model state so that one test's breakers and registry do not leak
into the next."""

from __future__ import annotations

from pathlib import Path

import pytest

import bandmaster as bm
from bandmaster.calls import default_registry, reset_models
from bandmaster.calls.hub import ModelHub, hub_for
from bandmaster.calls.wrappers import LocalBreakers

MODELS_YAML = """
models:
  echo: {provider: callable, function: "tests.models.fixtures_models:model_a"}
"""


def shout(text: str) -> str:
    return text.upper()


async def test_use_registry_serves_calls_that_name_no_registry() -> None:
    registry = bm.Registry(models={"shout": bm.CallableModel(shout, name="shout")})
    assert bm.use_registry(registry) is registry
    assert (await bm.call_model("shout", "hi")).output == "HI"


def test_use_registry_takes_the_path_of_a_models_yaml(tmp_path: Path) -> None:
    (tmp_path / "models.yaml").write_text(MODELS_YAML)
    registry = bm.use_registry(tmp_path / "models.yaml")
    assert default_registry() is registry
    assert registry.knows("echo")


def test_use_registry_refuses_anything_else() -> None:
    with pytest.raises(bm.UsageError, match=r"a bm\.Registry or the path of a models\.yaml"):
        bm.use_registry(42)  # type: ignore[arg-type]


def test_the_environment_is_read_once_not_per_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "models.yaml").write_text(MODELS_YAML)
    monkeypatch.setenv("BANDMASTER_MODELS", str(tmp_path / "models.yaml"))
    first = default_registry()
    monkeypatch.setenv("BANDMASTER_MODELS", str(tmp_path / "missing.yaml"))
    assert default_registry() is first  # resolved at first use, kept


def open_breaker(hub: ModelHub, model: str) -> None:
    assert isinstance(hub.breakers, LocalBreakers)
    hub.breakers.breaker(model).fail(bm.Breaker(failures=1), 1.0)


def test_reset_forgets_the_registry_and_the_breakers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = bm.use_registry(bm.Registry(models={"shout": bm.CallableModel(shout, name="shout")}))
    hub = hub_for(chosen, None)
    open_breaker(hub, "shout")
    assert hub_for(chosen, None).breakers.status("shout") == "open"

    reset_models()

    (tmp_path / "models.yaml").write_text(MODELS_YAML)
    monkeypatch.setenv("BANDMASTER_MODELS", str(tmp_path / "models.yaml"))
    assert default_registry() is not chosen  # resolved again, from the environment now
    assert default_registry().knows("echo")
    assert hub_for(chosen, None) is not hub  # a fresh hub: its breakers start closed
    assert hub_for(chosen, None).breakers.status("shout") == "closed"


# Two tests in a row: the first leaves a registry and an open breaker behind; the autouse
# reset in tests/conftest.py must clear them before the second.
LEFT: dict[str, object] = {}


def test_isolation_first_leaves_state_behind() -> None:
    registry = bm.use_registry(bm.Registry(models={"shout": bm.CallableModel(shout, name="shout")}))
    open_breaker(hub_for(registry, None), "shout")
    LEFT["registry"], LEFT["hub"] = registry, hub_for(registry, None)


def test_isolation_second_sees_none_of_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if not LEFT:
        pytest.skip("runs after test_isolation_first_leaves_state_behind")
    monkeypatch.delenv("BANDMASTER_MODELS", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./models.yaml here
    registry = LEFT["registry"]
    assert isinstance(registry, bm.Registry)
    assert default_registry() is not registry
    assert hub_for(registry, None) is not LEFT["hub"]
    assert hub_for(registry, None).breakers.status("shout") == "closed"
