"""Traffic weights are finite shares from 0 to 1, refused otherwise wherever they come from
(models.yaml, ``Registry.with_alias``, ``ModelHub.set_alias`` used by the API, the dashboard and
``bandmaster models set``): a NaN passes every comparison, so a sum check alone let it in, and
every other process then logged "ignoring invalid stored override"."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

import bandmaster as bm
from bandmaster.calls.hub import ModelHub
from bandmaster.errors import RegistryError
from bandmaster.store._sqlite import SQLiteStore

CONFIG = {
    "models": {"a": {"provider": "callable", "function": "json:dumps"}},
    "aliases": {"x": {"versions": {"p": "a", "c": "a"}, "weights": {"p": 1.0, "c": 0.0}}},
}
BAD = [
    pytest.param({"p": math.nan, "c": 1.0}, "finite number", id="nan"),
    pytest.param({"p": 1.0, "c": math.nan}, "finite number", id="nan-beside-1"),
    pytest.param({"p": math.inf, "c": 0.0}, "finite number", id="inf"),
    pytest.param({"p": 2.0, "c": -1.0}, "must not be negative", id="above-1"),
]


@pytest.mark.parametrize(("weights", "reason"), BAD)
def test_a_change_with_a_weight_that_is_no_share_is_refused(weights: dict[str, float], reason: str) -> None:
    registry = bm.Registry.from_dict(CONFIG)
    with pytest.raises(RegistryError, match=reason):
        registry.with_alias("x", weights=weights)


def test_models_yaml_with_a_nan_weight_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n  a: {provider: callable, function: 'json:dumps'}\n"
        "aliases:\n  x: {versions: {p: a, c: a}, weights: {p: 1.0, c: .nan}}\n"
    )
    with pytest.raises(RegistryError, match=r"weights\.c: Input should be a finite number"):
        bm.Registry.load(path)


@pytest.mark.parametrize(("weights", "reason"), BAD)
def test_nothing_invalid_reaches_the_store_for_other_processes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, weights: dict[str, float], reason: str
) -> None:
    store = SQLiteStore(tmp_path / "bm.db")
    try:
        hub = ModelHub(bm.Registry.from_dict(CONFIG), store)
        with pytest.raises(RegistryError, match=reason):
            hub.set_alias("x", weights=weights, changed_by="alice")
        assert store.alias_overrides() == {}
        other = ModelHub(bm.Registry.from_dict(CONFIG), store)  # another worker adopting changes
        with caplog.at_level(logging.ERROR):
            other.refresh(force=True)
        assert "ignoring invalid stored override" not in caplog.text
    finally:
        store.close()


def test_a_new_alias_must_be_addressable_by_url() -> None:
    registry = bm.Registry.from_dict(CONFIG)
    with pytest.raises(RegistryError, match="a new alias name 'a/b' is not"):
        registry.with_alias("a/b", versions={"p": "a"})
    assert registry.with_alias("intent-v2", versions={"p": "a"}).weights == {"p": 1.0}
