"""The model registry: loading ``models.yaml`` (and the errors that name file, key and
reason), alias resolution with sticky A/B assignment, and lookups of unknown names."""

from __future__ import annotations

import random
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tests.extras import needs

import bandmaster as bm
from bandmaster.models._registry import sticky_fraction


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def rules(text: str) -> str:
    return "refund" if "refund" in text else "other"


VALID = """
    models:
      fast: {provider: callable, function: "json:dumps"}
      smart: {provider: openai, model: gpt-4o-mini, base_url: "http://127.0.0.1:9/v1"}
    aliases:
      classification:
        versions: {production: fast, canary: smart}
        weights: {production: 0.95, canary: 0.05}
        policy:
          timeout: 2.0
          retry: {attempts: 4, initial: 0.1}
          fallback: [smart]
          breaker: {failures: 3, window: 10, reset: 5}
          cache: {ttl: 60}
"""


# --- loading ----------------------------------------------------------------------------


def test_load_a_valid_registry(tmp_path: Path) -> None:
    registry = bm.Registry.load(write(tmp_path / "models.yaml", VALID))
    assert registry.names() == {"fast", "smart"}
    spec = registry.alias("classification")
    assert spec is not None
    assert spec.weights == {"production": 0.95, "canary": 0.05}
    policy = spec.policy
    assert policy.timeout == 2.0
    assert policy.fallback == ["smart"]
    assert policy.retry is not None
    assert policy.retry.policy().attempts == 4
    assert policy.breaker is not None
    assert policy.breaker.policy() == bm.Breaker(failures=3, window=10, reset=5)
    assert policy.cache is not None
    assert policy.cache.ttl == 60
    assert registry.source == str(tmp_path / "models.yaml")


def test_weights_default_to_the_first_version() -> None:
    registry = bm.Registry.from_dict(
        {
            "models": {"a": CALLABLE},
            "aliases": {"x": {"versions": {"p": "a"}}},
        }
    )
    spec = registry.alias("x")
    assert spec is not None
    assert spec.weights == {"p": 1.0}


def test_empty_file_is_an_empty_registry(tmp_path: Path) -> None:
    registry = bm.Registry.load(write(tmp_path / "models.yaml", ""))
    assert registry.names() == set()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(bm.RegistryError, match=r"models\.yaml does not exist"):
        bm.Registry.load(tmp_path / "models.yaml")


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "models.yaml", "models:\n  fast: {provider: callable\n  oops: [\n")
    with pytest.raises(bm.RegistryError, match="not valid YAML") as caught:
        bm.Registry.load(path)
    assert str(path) in str(caught.value)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(bm.RegistryError, match="expected a mapping"):
        bm.Registry.load(write(tmp_path / "models.yaml", "- just\n- a list\n"))


CALLABLE = {"provider": "callable", "function": "json:dumps"}


@pytest.mark.parametrize(
    ("data", "where", "reason"),
    [
        pytest.param(
            {"models": {"fast": {"provider": "openia"}}},
            "models.fast.provider",
            "'openai', 'anthropic', 'sklearn', 'callable' or 'recorded'",
            id="unknown-provider",
        ),
        pytest.param(
            {"models": {"fast": {"provider": "callable", "function": "json:dumps", "temprature": 1}}},
            "models.fast.temprature",
            "Extra inputs are not permitted",
            id="unknown-key",
        ),
        pytest.param(
            {
                "models": {"a": CALLABLE, "b": CALLABLE},
                "aliases": {
                    "classification": {
                        "versions": {"production": "a", "canary": "b"},
                        "weights": {"production": 0.9, "canary": 0.2},
                    }
                },
            },
            "aliases.classification.weights",
            "must sum to 1, got 1.1",
            id="weights-sum",
        ),
        pytest.param(
            {
                "models": {"a": CALLABLE},
                "aliases": {"classification": {"versions": {"production": "a"}, "weights": {"canary": 1.0}}},
            },
            "aliases.classification.weights",
            "name versions that do not exist: ['canary']",
            id="weights-unknown-label",
        ),
        pytest.param(
            {
                "models": {"a": CALLABLE, "b": CALLABLE},
                "aliases": {
                    "c": {"versions": {"p": "a", "q": "b"}, "weights": {"p": 1.5, "q": -0.5}},
                },
            },
            "aliases.c.weights",
            "must not be negative",
            id="negative-weight",
        ),
        pytest.param(
            {"models": {"a": CALLABLE}, "aliases": {"classification": {"versions": {}}}},
            "aliases.classification.versions",
            "needs at least one version",
            id="no-versions",
        ),
        pytest.param(
            {"models": {"a": CALLABLE}, "aliases": {"classification": {"versions": {"production": "gpt-5"}}}},
            "aliases.classification.versions.production",
            "unknown model 'gpt-5' (models: a)",
            id="unknown-version-model",
        ),
        pytest.param(
            {
                "models": {"a": CALLABLE},
                "aliases": {
                    "classification": {
                        "versions": {"production": "a"},
                        "policy": {"fallback": ["a", "rules"]},
                    }
                },
            },
            "aliases.classification.policy.fallback[1]",
            "unknown model 'rules'",
            id="unknown-fallback",
        ),
        pytest.param(
            {"models": {"intent": {"provider": "sklearn"}}},
            "models.intent.path",
            "provider 'sklearn' needs a file path",
            id="sklearn-without-path",
        ),
        pytest.param(
            {"models": {"table": {"provider": "recorded"}}},
            "models.table.path",
            "provider 'recorded' needs a file path",
            id="recorded-without-path",
        ),
        pytest.param(
            {"models": {"fn": {"provider": "callable"}}},
            "models.fn.function",
            "provider 'callable' needs module:attribute",
            id="callable-without-function",
        ),
        pytest.param(
            {
                "models": {"a": CALLABLE},
                "aliases": {"c": {"versions": {"p": "a"}, "policy": {"retry": {"attempts": 0}}}},
            },
            "aliases.c.policy.retry.attempts",
            "greater than or equal to 1",
            id="retry-attempts",
        ),
        pytest.param(
            {"models": {"a": CALLABLE}, "aliases": {"c": {"versions": {"p": "a"}, "policy": {"cache": {}}}}},
            "aliases.c.policy.cache.ttl",
            "Field required",
            id="cache-without-ttl",
        ),
    ],
)
def test_invalid_registry_names_file_key_and_reason(
    tmp_path: Path, data: dict[str, Any], where: str, reason: str
) -> None:
    import yaml

    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(bm.RegistryError) as caught:
        bm.Registry.load(path)
    message = str(caught.value)
    assert f"{path}: {where}:" in message, message
    assert reason in message, message


def test_fallback_may_name_an_alias_or_a_python_model() -> None:
    registry = bm.Registry.from_dict(
        {
            "models": {"a": CALLABLE},
            "aliases": {
                "primary": {"versions": {"p": "a"}, "policy": {"fallback": ["backup", "rules"]}},
                "backup": {"versions": {"p": "a"}},
            },
        },
        models={"rules": bm.CallableModel(rules, name="rules")},
    )
    assert registry.knows("rules")


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (
            {
                "models": {"a": CALLABLE},
                "aliases": {
                    "classification": {"versions": {"production": "a"}, "weights": {"production": 0.5}}
                },
            },
            "aliases.classification.weights",
        ),
        ({"models": {"intent": {"provider": "sklearn"}}}, "models.intent.path"),
    ],
)
def test_validator_errors_name_the_exact_key(data: dict[str, Any], where: str) -> None:
    with pytest.raises(bm.RegistryError, match=rf"models\.yaml: {where}: "):
        bm.Registry.from_dict(data, source="models.yaml")


@pytest.mark.parametrize("provider", ["sklearn", "recorded"])
def test_missing_model_file_names_the_registry_key(tmp_path: Path, provider: str) -> None:
    path = write(
        tmp_path / "models.yaml",
        f"""
        models:
          intent: {{provider: {provider}, path: models/intent.data}}
        """,
    )
    with pytest.raises(bm.RegistryError, match=rf"{path}: models\.intent\.path: .*intent\.data"):
        bm.Registry.load(path)  # at load, not at the first call


def test_callable_that_cannot_be_imported(tmp_path: Path) -> None:
    path = write(
        tmp_path / "models.yaml",
        """
        models:
          gone: {provider: callable, function: "no_such_module_xyz:fn"}
          typo: {provider: callable, function: "json:dumpz"}
        """,
    )
    registry = bm.Registry.load(path)
    with pytest.raises(
        bm.RegistryError, match=rf"{path}: models\.gone: No module named 'no_such_module_xyz'"
    ):
        registry.model("gone")
    with pytest.raises(bm.RegistryError, match=rf"{path}: models\.typo: cannot build callable model"):
        registry.model("typo")


def test_callable_from_models_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bm_test_yaml_rules.py").write_text(
        "def classify(text: str):\n    return ('refund' if 'refund' in text else 'other', 0.75)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write(
        tmp_path / "models.yaml",
        """
        models:
          rules: {provider: callable, function: "bm_test_yaml_rules:classify"}
        """,
    )
    registry = bm.Registry.load(path)
    model = registry.model("rules")
    assert model is registry.model("rules"), "built once, then reused"
    assert isinstance(model, bm.CallableModel)
    assert model.name == "rules"


@pytest.mark.parametrize(
    ("provider", "env"),
    [
        pytest.param("openai", "OPENAI_API_KEY", marks=needs("openai", "openai")),
        pytest.param("anthropic", "ANTHROPIC_API_KEY", marks=needs("anthropic", "anthropic")),
    ],
)
def test_hosted_provider_without_api_key(monkeypatch: pytest.MonkeyPatch, provider: str, env: str) -> None:
    monkeypatch.delenv(env, raising=False)
    monkeypatch.delenv("TEAM_KEY", raising=False)
    with pytest.warns(bm.UnknownPriceWarning, match="'hosted'"):  # no model id, so no price either
        registry = bm.Registry.from_dict(
            {
                "models": {
                    "hosted": {"provider": provider},
                    "team": {"provider": provider, "api_key_env": "TEAM_KEY"},
                }
            }
        )
    with pytest.raises(bm.UsageError, match=rf"'hosted': no API key; set \${env}"):
        registry.model("hosted")
    with pytest.raises(bm.UsageError, match=r"set \$TEAM_KEY"):
        registry.model("team")
    monkeypatch.setenv("TEAM_KEY", "sk-test")
    assert registry.model("team").name == "team"


# --- unknown names ------------------------------------------------------------------------


async def test_call_model_unknown_name_lists_known_names(tmp_path: Path) -> None:
    registry = bm.Registry.load(write(tmp_path / "models.yaml", VALID))
    with pytest.raises(bm.UnknownModel) as caught:
        await bm.call_model("nope", "hello", registry=registry)
    message = str(caught.value)
    assert "'nope'" in message
    assert "models: fast, smart" in message
    assert "aliases: classification" in message


def test_with_alias_rejects_unknown_models_and_aliases() -> None:
    registry = bm.Registry.from_dict({"models": {"a": CALLABLE}, "aliases": {"x": {"versions": {"p": "a"}}}})
    with pytest.raises(bm.UnknownModel, match="unknown model 'zz'"):
        registry.with_alias("x", versions={"p": "zz"})
    with pytest.raises(bm.UnknownModel, match="no alias 'y'"):
        registry.with_alias("y", weights={"p": 1.0})
    with pytest.raises(bm.RegistryError, match="must sum to 1"):
        registry.with_alias("x", weights={"p": 0.5})


# --- resolution and sticky A/B --------------------------------------------------------------


def ab_registry(canary: float) -> bm.Registry:
    return bm.Registry.from_dict(
        {
            "models": {"a": CALLABLE, "b": CALLABLE},
            "aliases": {
                "classification": {
                    "versions": {"production": "a", "canary": "b"},
                    "weights": {"production": 1 - canary, "canary": canary},
                }
            },
        }
    )


def test_a_model_resolves_to_itself() -> None:
    registry = ab_registry(0.05)
    assert registry.resolve("a") == bm.models.Resolution(alias=None, version=None, model="a")
    with pytest.raises(bm.UnknownModel):
        registry.resolve("zz")


def test_sticky_key_always_gets_the_same_version() -> None:
    registry = ab_registry(0.5)
    for key in (f"user-{i}" for i in range(200)):
        first = registry.resolve("classification", key=key)
        assert all(registry.resolve("classification", key=key) == first for _ in range(5))
        # another registry (another process) assigns it the same way
        assert ab_registry(0.5).resolve("classification", key=key) == first


def test_canary_share_over_10000_keys() -> None:
    registry = ab_registry(0.05)
    counts = Counter(registry.resolve("classification", key=f"user-{i}").version for i in range(10_000))
    assert set(counts) == {"production", "canary"}
    share = counts["canary"] / 10_000
    assert 0.04 <= share <= 0.06, counts


def test_raising_the_canary_keeps_earlier_canary_users() -> None:
    """Sticky by a fraction of the key: growing canary 5% → 20% only moves production users."""
    small, large = ab_registry(0.05), ab_registry(0.20)
    keys = [f"user-{i}" for i in range(5_000)]
    canary_small = {k for k in keys if small.resolve("classification", key=k).version == "canary"}
    canary_large = {k for k in keys if large.resolve("classification", key=k).version == "canary"}
    assert canary_small <= canary_large
    assert 0.17 <= len(canary_large) / len(keys) <= 0.23


def test_unkeyed_resolution_follows_the_weights() -> None:
    registry = ab_registry(0.25)
    rng = random.Random(1234)
    counts = Counter(registry.resolve("classification", rng=rng).version for _ in range(10_000))
    assert 0.23 <= counts["canary"] / 10_000 <= 0.27


@pytest.mark.parametrize(("canary", "expected"), [(0.0, "production"), (1.0, "canary")])
def test_zero_and_full_weights_are_absolute(canary: float, expected: str) -> None:
    registry = ab_registry(canary)
    assert {registry.resolve("classification", key=str(i)).version for i in range(2_000)} == {expected}


def test_sticky_fraction_is_uniform_and_alias_specific() -> None:
    values = [sticky_fraction("classification", str(i)) for i in range(10_000)]
    assert all(0 <= v < 1 for v in values)
    assert 0.48 < sum(values) / len(values) < 0.52
    assert sticky_fraction("classification", "u1") != sticky_fraction("summary", "u1")


# --- hostile or broken models.yaml ----------------------------------------------------------

ALIAS_BOMB = b"x: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + b"".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n".encode() for p, n in zip("abcd", "bcde", strict=True)
)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\xff", r"models\.yaml:1: not UTF-8 text \(byte 0x89 at offset 0\)"),
        (
            b"models:\n  fast: {provider: callable, function: \xe9}\n",
            r"models\.yaml:2: not UTF-8 text \(byte 0xe9 at offset 47\)",
        ),
        (ALIAS_BOMB, r"models\.yaml:5: more than 100,000 values once its aliases \(\*name\) are expanded"),
        (b"models: " + b"{a: " * 100 + b"1" + b"}" * 100, r"models\.yaml:1: nested more than 64 levels deep"),
        (b"models: &m {fast: *m}\n", r"models\.yaml:1: an alias \(\*name\) is used inside its own anchor"),
        (b"models: !!python/object/apply:os.system [true]\n", r"models\.yaml:1: not valid YAML: could not"),
        (b"0\n", r"expected a mapping with models: and aliases:, found a int \('0'\)"),
        (b"#" * 5_000_000, r"models\.yaml: the file is larger than 4,194,304 bytes"),
    ],
)
def test_a_hostile_or_broken_registry_file_is_one_registry_error(
    tmp_path: Path, data: bytes, message: str
) -> None:
    path = tmp_path / "models.yaml"
    path.write_bytes(data)
    with pytest.raises(bm.RegistryError, match=message) as caught:
        bm.Registry.load(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"weights": {"production": float("nan"), "canary": 1.0}}, "weights.production: Input should be"),
        ({"policy": {"timeout": float("inf")}}, "policy.timeout: Input should be a finite number"),
    ],
)
def test_non_finite_numbers_are_refused(policy: dict[str, Any], message: str) -> None:
    alias = {"versions": {"production": "fast", "canary": "fast"}, **policy}
    with pytest.raises(bm.RegistryError, match=message):
        bm.Registry.from_dict({"models": {"fast": CALLABLE}, "aliases": {"a": alias}})


@pytest.mark.parametrize(
    ("provider", "module", "spec"),
    [("openai", "openai", {}), ("anthropic", "anthropic", {}), ("sklearn", "joblib", {"path": "m.joblib"})],
)
def test_a_missing_provider_sdk_is_reported_when_the_registry_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str, module: str, spec: dict[str, str]
) -> None:
    (tmp_path / "m.joblib").write_bytes(b"")
    monkeypatch.setitem(sys.modules, module, None)  # what an environment without the extra has
    models = {"a": {"provider": provider, **spec}, "b": {"provider": provider, **spec}, "fast": CALLABLE}
    with pytest.raises(bm.RegistryError) as caught:
        bm.Registry.from_dict({"models": models}, base_dir=tmp_path)
    assert str(caught.value) == (
        f"<dict>: models 'a', 'b' use provider {provider!r}, whose SDK is not installed: "
        f"pip install 'bandmaster[{provider}]'"
    )
