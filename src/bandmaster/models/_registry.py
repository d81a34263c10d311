"""The model registry: concrete models, and aliases that map a logical name to versions with
traffic weights (production/canary, A/B) and a resilience policy.

    models:
      intent-small: {provider: sklearn, path: models/intent.joblib}
      gpt-4o-mini:  {provider: openai, model: gpt-4o-mini, price: {input: 0.15, output: 0.6},
                     limits: {rpm: 600, tpm: 200000, concurrency: 16}}
    aliases:
      classification:
        versions: {production: intent-small, canary: gpt-4o-mini}
        weights: {production: 0.95, canary: 0.05}
        policy: {timeout: 2.0, retry: {attempts: 3}, fallback: [gpt-4o-mini, rules:keyword],
                 breaker: {failures: 5, window: 30, reset: 60}, cache: {ttl: 600}}

The registry here is configuration plus provider instances; it does no I/O after loading.
Run-time changes and their propagation to every worker go through the journal store
(``bandmaster.calls.hub``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bandmaster._types import URL_NAME, URL_NAME_RULE
from bandmaster.errors import BandmasterError, RegistryError, UnknownModel
from bandmaster.models._base import Model
from bandmaster.models._budget_spec import BudgetsSpec
from bandmaster.models._pricing import BILLED_PROVIDERS, Price, PriceTable, warn_unknown_prices
from bandmaster.policies import Breaker, RateLimits, Retry


class _Spec(BaseModel):
    # NaN passes every comparison check (a NaN weight "sums to 1"): refuse it, and infinity.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RetrySpec(_Spec):
    attempts: int = Field(default=3, ge=1)
    initial: float = Field(default=0.2, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    max_delay: float = Field(default=10.0, ge=0)
    total: float | None = None

    def policy(self) -> Retry:
        return Retry(
            attempts=self.attempts,
            initial=self.initial,
            multiplier=self.multiplier,
            max_delay=self.max_delay,
            total=self.total,
        )


class BreakerSpec(_Spec):
    failures: int = Field(default=5, ge=1)
    window: float = Field(default=30.0, gt=0)
    reset: float = Field(default=60.0, gt=0)

    def policy(self) -> Breaker:
        return Breaker(failures=self.failures, window=self.window, reset=self.reset)


class CacheSpec(_Spec):
    ttl: float = Field(gt=0)


class PolicySpec(_Spec):
    timeout: float | None = Field(default=None, gt=0)
    retry: RetrySpec | None = None
    fallback: list[str] = Field(default_factory=list)
    breaker: BreakerSpec | None = None
    cache: CacheSpec | None = None


class LimitsSpec(_Spec):
    """What a provider allows a model, shared by every worker: requests per minute, tokens
    (input + output) per minute, and requests in flight. Each is optional."""

    rpm: float | None = Field(default=None, gt=0)
    tpm: float | None = Field(default=None, gt=0)
    concurrency: int | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(key) for key in data if key not in _LIMIT_KEYS)
            if unknown:
                raise ValueError(
                    f"{unknown[0]}: is not a limit; use rpm (requests per minute), tpm (tokens per "
                    "minute) or concurrency (requests in flight), e.g. limits: {rpm: 600, concurrency: 16}"
                )
        return data

    def policy(self) -> RateLimits:
        return RateLimits(rpm=self.rpm, tpm=self.tpm, concurrency=self.concurrency)

    @model_validator(mode="after")
    def _some(self) -> LimitsSpec:
        if self.rpm is None and self.tpm is None and self.concurrency is None:
            raise ValueError("set at least one of rpm, tpm, concurrency (or remove limits:)")
        return self


_LIMIT_KEYS = frozenset(LimitsSpec.model_fields)


class ModelSpec(_Spec):
    provider: Literal["openai", "anthropic", "sklearn", "callable", "recorded"]
    model: str | None = None  # the provider's model id (defaults to the registry name)
    base_url: str | None = None
    api_key_env: str | None = None
    path: str | None = None  # sklearn .joblib, recorded .jsonl/.csv
    function: str | None = None  # callable: "module:attribute"
    price: Price | None = None
    columns: dict[str, str] = Field(default_factory=dict)  # recorded: input_key, output_key, ...
    limits: LimitsSpec | None = None  # rpm/tpm/concurrency, held across every worker

    @model_validator(mode="after")
    def _needs(self) -> ModelSpec:
        if self.provider in ("sklearn", "recorded") and not self.path:
            raise ValueError(f"path: provider {self.provider!r} needs a file path")
        if self.provider == "callable" and not self.function:
            raise ValueError("function: provider 'callable' needs module:attribute")
        return self


Weight = Annotated[float, Field(allow_inf_nan=False)]
"""A traffic share: finite (NaN passes every comparison below, so the sum check let it in)."""


class AliasSpec(_Spec):
    versions: dict[str, str]
    weights: dict[str, Weight] = Field(default_factory=dict)
    policy: PolicySpec = Field(default_factory=PolicySpec)

    @model_validator(mode="after")
    def _weights(self) -> AliasSpec:
        if not self.versions:
            raise ValueError("versions: needs at least one version, e.g. {production: my-model}")
        if not self.weights:
            first = next(iter(self.versions))
            self.weights = {label: 1.0 if label == first else 0.0 for label in self.versions}
        unknown = set(self.weights) - set(self.versions)
        if unknown:
            raise ValueError(f"weights: name versions that do not exist: {sorted(unknown)}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights: must not be negative")
        total = sum(self.weights.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights: must sum to 1, got {total:g}")
        return self


class RegistryConfig(_Spec):
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    aliases: dict[str, AliasSpec] = Field(default_factory=dict)
    prices: dict[str, Price] = Field(default_factory=dict)
    budgets: BudgetsSpec = Field(default_factory=BudgetsSpec)

    @model_validator(mode="after")
    def _tenant_names(self) -> RegistryConfig:
        for tenant in self.budgets.tenants:
            if not URL_NAME.fullmatch(tenant):
                raise ValueError(f"budgets: tenant {tenant[:80]!r} is not a valid name: use {URL_NAME_RULE}")
        return self


@dataclass(frozen=True, slots=True)
class Resolution:
    """Which concrete model serves a call: the alias, the version label and the model name."""

    alias: str | None
    version: str | None
    model: str


def _config_error(source: str, exc: ValidationError) -> RegistryError:
    lines = []
    for error in exc.errors():
        path = [str(p) for p in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        field, sep, rest = message.partition(": ")
        if sep and field.isidentifier():  # entry-level checks name their field first
            path, message = [*path, field], rest
        lines.append(f"{source}: {'.'.join(path) or '(top level)'}: {message}")
    return RegistryError("invalid model registry:\n  " + "\n  ".join(lines))


_SDK_MODULES = {"openai": ("openai",), "anthropic": ("anthropic",), "sklearn": ("joblib", "sklearn")}
"""The modules each provider imports, installed by the extra of the provider's name."""


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else f"a {type(value).__name__} ({str(value)[:40]!r})"


def sticky_fraction(alias: str, key: str) -> float:
    """A uniform number in [0, 1) fixed by (alias, key): the same user keeps the same version."""
    digest = hashlib.blake2b(f"{alias}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Registry:
    def __init__(
        self,
        config: RegistryConfig | None = None,
        *,
        models: Mapping[str, Model] | None = None,
        base_dir: str | Path = ".",
        source: str = "<registry>",
    ) -> None:
        self.config = config or RegistryConfig()
        self.base_dir = Path(base_dir)
        self.source = source
        self.prices = PriceTable(self.config.prices)
        for name, spec in self.config.models.items():
            if spec.price is not None:
                self.prices.set(spec.model or name, spec.price)
        self._instances: dict[str, Model] = dict(models or {})
        # Set by ``bandmaster.calls.hub.hub_for``: this registry's hub without a journal store (its
        # breaker states in this process). Kept here, opaque, so it lives and dies with the
        # registry instead of keeping every registry a process ever used alive.
        self.local_hub: object | None = None
        self._check_references()
        self._check_budgets()
        self._check_sdks()
        self.unpriced: dict[str, str] = self._unpriced()
        """Billed models (name → provider model id) whose price nobody knows: a load-time
        ``UnknownPriceWarning``, their cost shows as unknown and budgets refuse their calls."""
        warn_unknown_prices(self.unpriced, self.source)

    # --- loading --------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, *, models: Mapping[str, Model] | None = None) -> Registry:
        """Load ``models.yaml``; errors name the file, the key and the reason."""
        from bandmaster.yamlfile import YamlProblem, compose, construct, read_text

        path = Path(path)
        if not path.is_file():
            raise RegistryError(f"model registry {path} does not exist")
        try:
            root = compose(read_text(path))
            data = {} if root is None else construct(root)
        except YamlProblem as exc:
            where = f"{path}:{exc.line}" if exc.line is not None else str(path)
            raise RegistryError(f"{where}: {exc.message}") from None
        return cls.from_dict(data, source=str(path), base_dir=path.parent, models=models)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        source: str = "<dict>",
        base_dir: str | Path = ".",
        models: Mapping[str, Model] | None = None,
    ) -> Registry:
        if data is None:  # an empty file
            data = {}
        if not isinstance(data, Mapping):
            raise RegistryError(
                f"{source}: expected a mapping with models: and aliases:, found {_kind(data)}"
            )
        try:
            config = RegistryConfig.model_validate(data)
        except ValidationError as exc:
            raise _config_error(source, exc) from exc
        return cls(config, models=models, base_dir=base_dir, source=source)

    def _check_references(self) -> None:
        for name, model in self.config.models.items():
            if model.path and not (self.base_dir / model.path).is_file():
                raise RegistryError(
                    f"{self.source}: models.{name}.path: file {self.base_dir / model.path} does not exist"
                )
        for alias, spec in self.config.aliases.items():
            for label, name in spec.versions.items():
                if not self.knows(name):
                    raise RegistryError(
                        f"{self.source}: aliases.{alias}.versions.{label}: unknown model {name!r} "
                        f"(models: {', '.join(sorted(self.names())) or 'none'})"
                    )
            for index, name in enumerate(spec.policy.fallback):
                if not self.knows(name) and name not in self.config.aliases:
                    raise RegistryError(
                        f"{self.source}: aliases.{alias}.policy.fallback[{index}]: unknown model {name!r}; "
                        f"register Python fallbacks with Registry(models={{{name!r}: ...}})"
                    )

    def _unpriced(self) -> dict[str, str]:
        unpriced: dict[str, str] = {}
        for name, spec in self.config.models.items():
            provider = BILLED_PROVIDERS.get(spec.provider)
            if provider is not None and not self.prices.known(spec.model or name, provider):
                unpriced[name] = spec.model or name
        return unpriced

    def provider_of(self, name: str) -> str | None:
        """The ``genai-prices`` provider id of a registry model that bills per token (None: a
        local model, a Python model, or an unknown name)."""
        spec = self.config.models.get(name)
        return BILLED_PROVIDERS.get(spec.provider) if spec is not None else None

    def model_id(self, name: str) -> str:
        """The provider's model id of a registry model (what prices are keyed by)."""
        spec = self.config.models.get(name)
        return (spec.model or name) if spec is not None else name

    def _check_budgets(self) -> None:
        for path, target in self.config.budgets.targets().items():
            if not self.knows(target) and target not in self.config.aliases:
                raise RegistryError(
                    f"{self.source}: {path}: unknown alias or model {target!r} "
                    f"(models: {', '.join(sorted(self.names())) or 'none'}; "
                    f"aliases: {', '.join(sorted(self.config.aliases)) or 'none'})"
                )

    def _check_sdks(self) -> None:
        """A provider's SDK is an extra: say which to install now, not at the first call."""
        missing: dict[str, list[str]] = {}
        for name, model in self.config.models.items():
            if name in self._instances:
                continue
            for module in _SDK_MODULES.get(model.provider, ()):
                if not _importable(module):
                    missing.setdefault(model.provider, []).append(name)
                    break
        if missing:
            needs = "; ".join(
                f"models {', '.join(repr(n) for n in names)} use provider {provider!r}, whose SDK is not "
                f"installed: pip install 'bandmaster[{provider}]'"
                for provider, names in missing.items()
            )
            raise RegistryError(f"{self.source}: {needs}")

    # --- lookups --------------------------------------------------------------------------

    def names(self) -> set[str]:
        return set(self.config.models) | set(self._instances)

    def knows(self, name: str) -> bool:
        return name in self.config.models or name in self._instances

    async def aclose(self) -> None:
        """Close provider connections opened in this event loop."""
        for instance in self._instances.values():
            close = getattr(instance, "aclose", None)
            if close is not None:
                await close()

    def register(self, name: str, model: Model) -> None:
        """Add a model built in Python (a rule, a function, a fitted estimator)."""
        self._instances[name] = model

    def alias(self, name: str) -> AliasSpec | None:
        return self.config.aliases.get(name)

    def limits(self, name: str) -> LimitsSpec | None:
        """The ``limits:`` of registry model ``name`` (None: none, or not a registry model)."""
        spec = self.config.models.get(name)
        return None if spec is None else spec.limits

    def model(self, name: str) -> Model:
        """The model instance for a registry name, built on first use."""
        instance = self._instances.get(name)
        if instance is None:
            spec = self.config.models.get(name)
            if spec is None:
                raise UnknownModel(
                    f"no model or alias {name!r} in {self.source} "
                    f"(models: {', '.join(sorted(self.names())) or 'none'}; "
                    f"aliases: {', '.join(sorted(self.config.aliases)) or 'none'})"
                )
            instance = self._instances[name] = self._build(name, spec)
        return instance

    def resolve(self, target: str, *, key: str | None = None, rng: random.Random | None = None) -> Resolution:
        """An alias picks a version by weight (sticky by ``key`` when given); a model is itself."""
        spec = self.config.aliases.get(target)
        if spec is None:
            if not self.knows(target):
                self.model(target)  # raises UnknownModel with the known names
            return Resolution(alias=None, version=None, model=target)
        point = sticky_fraction(target, key) if key is not None else (rng or random).random()
        cumulative = 0.0
        chosen = next(iter(spec.versions))
        for label, weight in spec.weights.items():
            cumulative += weight
            if weight > 0 and point < cumulative:
                chosen = label
                break
        else:
            chosen = max(spec.weights, key=lambda label: spec.weights[label])
        return Resolution(alias=target, version=chosen, model=spec.versions[chosen])

    def with_alias(
        self,
        name: str,
        *,
        versions: Mapping[str, str] | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> AliasSpec:
        """A validated copy of alias ``name`` with new versions and/or weights (not applied)."""
        current = self.config.aliases.get(name)
        if current is None and versions is None:
            raise UnknownModel(f"no alias {name!r}; give versions to create it")
        if current is None and URL_NAME.fullmatch(name) is None:  # it must be addressable by URL
            raise RegistryError(f"a new alias name {name[:80]!r} is not {URL_NAME_RULE}; pick another name")
        data: dict[str, Any] = current.model_dump() if current else {"versions": {}, "weights": {}}
        if versions is not None:
            data["versions"] = dict(versions)
            if weights is None:
                data["weights"] = {k: v for k, v in data["weights"].items() if k in versions}
                if abs(sum(data["weights"].values()) - 1.0) > 1e-6:
                    data["weights"] = {}
        if weights is not None:
            data["weights"] = dict(weights)
        try:
            spec = AliasSpec.model_validate(data)
        except ValidationError as exc:
            raise _config_error(f"alias {name!r}", exc) from exc
        for label, model_name in spec.versions.items():
            if not self.knows(model_name):
                raise UnknownModel(f"alias {name!r}: version {label!r} names unknown model {model_name!r}")
        return spec

    def apply_alias(self, name: str, spec: AliasSpec) -> None:
        self.config.aliases[name] = spec

    # --- providers ------------------------------------------------------------------------

    def _build(self, name: str, spec: ModelSpec) -> Model:
        model_id = spec.model or name
        where = f"{self.source}: models.{name}"
        try:
            if spec.provider == "openai":
                from bandmaster.models.openai_compat import OpenAIModel

                return OpenAIModel(
                    model_id,
                    name=name,
                    base_url=spec.base_url,
                    prices=self.prices,
                    api_key_env=spec.api_key_env or "OPENAI_API_KEY",
                )
            if spec.provider == "anthropic":
                from bandmaster.models.anthropic import AnthropicModel

                return AnthropicModel(
                    model_id,
                    name=name,
                    base_url=spec.base_url,
                    prices=self.prices,
                    api_key_env=spec.api_key_env or "ANTHROPIC_API_KEY",
                )
            if spec.provider == "sklearn":
                from bandmaster.models.sklearn import SklearnModel

                return SklearnModel(self.base_dir / str(spec.path), name=name)
            if spec.provider == "recorded":
                from bandmaster.models.builtin import Recorded

                return Recorded.from_file(self.base_dir / str(spec.path), name=name, **spec.columns)
            from bandmaster.models.builtin import CallableModel

            module_name, _, attribute = str(spec.function).partition(":")
            fn = getattr(importlib.import_module(module_name), attribute)
            return fn if isinstance(fn, Model) else CallableModel(fn, name=name)
        except (ImportError, BandmasterError) as exc:
            raise RegistryError(f"{where}: {exc}") from exc
        except (AttributeError, ValueError, OSError) as exc:
            raise RegistryError(f"{where}: cannot build {spec.provider} model: {exc}") from exc
