"""``bm.call_model``: one journaled step around a model, with its policies.

Order of play for one call: resolve the alias to a version (sticky by ``key``), look in the
response cache, then try the primary and each fallback in turn, skipping any whose circuit
breaker is open, each with its own retries and per-attempt timeout. The journal's step meta
records alias, version, the model that answered, attempts, fallback used, breaker states,
tokens, cost and cache hit.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bandmaster.engine.context import current_run, journaling
from bandmaster.engine.operation import OpRecord, journaled, run_attempts
from bandmaster.engine.redaction import Redactor, redact_json
from bandmaster.engine.serde import codec_for
from bandmaster.errors import CircuitOpen, FallbacksExhausted, InvalidRequest, UsageError
from bandmaster.hub import ModelHub, hub_for
from bandmaster.models.base import Message, Model, ModelRequest, ModelResponse
from bandmaster.models.registry import Registry
from bandmaster.policies.breaker import Breaker
from bandmaster.policies.retry import Retry
from bandmaster.store.sqlite import SQLiteStore

DEFAULT_RETRY = Retry(attempts=3)
"""Model calls retry transient failures (timeouts, 429, 5xx) three times unless told otherwise;
they have no side effects to duplicate."""

_RESPONSE = codec_for(ModelResponse)
_default_registry: Registry | None = None


def default_registry() -> Registry:
    """``$BANDMASTER_MODELS`` or ``./models.yaml`` when present, else an empty registry."""
    global _default_registry
    if _default_registry is None:
        path = os.environ.get("BANDMASTER_MODELS") or (
            "models.yaml" if Path("models.yaml").is_file() else None
        )
        _default_registry = Registry.load(path) if path else Registry()
    return _default_registry


@dataclass(frozen=True, slots=True)
class _Policy:
    timeout: float | None
    retry: Retry
    fallback: tuple[str | Model, ...]
    breaker: Breaker | None
    cache_ttl: float | None


def _policy(
    registry: Registry,
    target: str | Model,
    *,
    timeout: float | None,
    retry: Retry | None,
    fallback: list[str | Model] | None,
    breaker: Breaker | None,
    cache_ttl: float | None,
) -> _Policy:
    """Explicit arguments win over the alias's registry policy."""
    alias = registry.alias(target) if isinstance(target, str) else None
    spec = alias.policy if alias is not None else None
    return _Policy(
        timeout=timeout if timeout is not None else (spec.timeout if spec else None),
        retry=retry or (spec.retry.policy() if spec and spec.retry else DEFAULT_RETRY),
        fallback=tuple(fallback if fallback is not None else (spec.fallback if spec else ())),
        breaker=breaker or (spec.breaker.policy() if spec and spec.breaker else None),
        cache_ttl=cache_ttl if cache_ttl is not None else (spec.cache.ttl if spec and spec.cache else None),
    )


def as_request(
    input: str | list[Message] | list[dict[str, str]] | dict[str, Any] | ModelRequest, **options: Any
) -> ModelRequest:
    if isinstance(input, ModelRequest):
        return (
            input.model_copy(update={k: v for k, v in options.items() if v is not None}) if options else input
        )
    return ModelRequest.model_validate(
        {"input": input, **{k: v for k, v in options.items() if v is not None}}
    )


async def call_model(
    target: str | Model,
    input: str | list[Message] | list[dict[str, str]] | dict[str, Any] | ModelRequest,
    *,
    key: str | None = None,
    registry: Registry | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    json_schema: dict[str, Any] | None = None,
    stop: list[str] | None = None,
    timeout: float | None = None,
    retry: Retry | None = None,
    fallback: list[str | Model] | None = None,
    breaker: Breaker | None = None,
    cache_ttl: float | None = None,
) -> ModelResponse:
    """Call a model (an alias or model name in the registry, or a ``Model`` object).

    Inside a workflow this is one journaled step named after the target: its response is
    recorded and replayed. ``key`` makes A/B and canary assignment sticky (a user id, a
    tenant). Policy arguments override the alias's ``policy`` from ``models.yaml``.
    """
    ctx = journaling()
    if registry is None:
        run = current_run.get()  # inside a step too: the engine's registry serves the whole run
        registry = run.registry if run is not None and isinstance(run.registry, Registry) else None
        registry = registry or default_registry()
    request = as_request(
        input,
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        json_schema=json_schema,
        stop=stop,
    )
    policy = _policy(
        registry,
        target,
        timeout=timeout,
        retry=retry,
        fallback=fallback,
        breaker=breaker,
        cache_ttl=cache_ttl,
    )
    name = target if isinstance(target, str) else target.name
    if ctx is None:
        return await _invoke(hub_for(registry, None), target, request, key, policy, OpRecord())
    hub = hub_for(registry, ctx.store)
    seq = ctx.next_seq()
    return await journaled(  # type: ignore[no-any-return]
        ctx,
        seq,
        name,
        "model",
        _RESPONSE,
        lambda record: _invoke(hub, target, request, key, policy, record, ctx.redactor),
    )


async def _invoke(
    hub: ModelHub,
    target: str | Model,
    request: ModelRequest,
    key: str | None,
    policy: _Policy,
    record: OpRecord,
    redactor: Redactor | None = None,
) -> ModelResponse:
    hub.refresh()
    registry = hub.registry
    name = target if isinstance(target, str) else target.name
    meta = record.meta
    meta["request"] = request  # journaled as sent (serialised with the meta)
    if isinstance(target, str):
        resolution = registry.resolve(target, key=key)
        meta["alias"], meta["version"] = resolution.alias, resolution.version
        chain: list[str | Model] = [resolution.model, *policy.fallback]
    else:
        chain = [target, *policy.fallback]

    # Keyed by the model that would serve (not the alias): a switch or a canary never gets
    # another version's cached answer.
    first = chain[0] if isinstance(chain[0], str) else chain[0].name
    cache_key = f"{first}:{request.fingerprint()}" if policy.cache_ttl and hub.store is not None else None
    if cache_key is not None:
        assert hub.store is not None
        cached = hub.store.cache_get(cache_key)
        if cached is not None:
            response = ModelResponse.model_validate_json(cached)
            meta.update(cache_hit=True, model=response.model, tokens=_tokens(response), cost=0.0)
            return response
    meta["cache_hit"] = False

    errors: dict[str, BaseException] = {}
    breakers: dict[str, str] = {}
    for position, candidate in enumerate(chain):
        model, label = _model(registry, candidate, key)
        state = hub.breaker(label) if policy.breaker is not None else None
        if state is not None and policy.breaker is not None and not state.allow(policy.breaker, time.time()):
            breakers[label] = state.status
            errors[label] = CircuitOpen(
                f"{label}: circuit open since {state.opened_at}; skipping to the fallback"
            )
            continue
        try:
            response = await run_attempts(
                lambda _attempt, model=model: model.request(request),  # type: ignore[misc]
                retry=policy.retry,
                timeout=policy.timeout,
                name=label,
                record=record,
            )
        except Exception as exc:
            errors[label] = exc
            # A request the provider rejects as invalid says nothing about the model's health.
            if state is not None and policy.breaker is not None and not isinstance(exc, InvalidRequest):
                if state.record_failure(policy.breaker, time.time()):
                    hub.share_breaker(label)
                breakers[label] = state.status
            elif state is not None:
                state.trial_in_flight = False
            continue
        except BaseException:
            if state is not None:
                state.trial_in_flight = False  # a cancelled half-open trial must not block the model
            raise
        if state is not None:
            if state.record_success(time.time()):
                hub.share_breaker(label)
            breakers[label] = state.status
        if not response.cost and response.usage.total_tokens:
            response = response.model_copy(
                update={"cost": registry.prices.cost(response.model, response.usage)}
            )
        meta.update(
            model=response.model or label,
            served_by=label,
            fallback=label if position else None,
            tokens=_tokens(response),
            cost=response.cost,
            confidence=response.confidence,
        )
        if breakers:
            meta["breakers"] = breakers
        if cache_key is not None:
            assert hub.store is not None
            cached_json = response.model_dump_json()
            if redactor is not None:  # the cache is on disk too
                cached_json = redact_json(redactor, cached_json) or cached_json
            hub.store.cache_put(cache_key, cached_json, time.time() + (policy.cache_ttl or 0))
        return response

    if breakers:
        meta["breakers"] = breakers
    if len(errors) == 1:
        raise next(iter(errors.values()))
    raise FallbacksExhausted(name, errors)


def _model(registry: Registry, candidate: str | Model, key: str | None) -> tuple[Model, str]:
    if not isinstance(candidate, str):
        return candidate, candidate.name
    if registry.alias(candidate) is not None:  # a fallback may itself be an alias
        candidate = registry.resolve(candidate, key=key).model
    return registry.model(candidate), candidate


def _tokens(response: ModelResponse) -> dict[str, int]:
    return {"input": response.usage.input_tokens, "output": response.usage.output_tokens}


def bind_store(registry: Registry, store: SQLiteStore) -> ModelHub:
    """The hub for administering ``registry`` on ``store`` (CLI, server)."""
    if not isinstance(registry, Registry):
        raise UsageError(f"{registry!r} is not a bm.Registry")
    return hub_for(registry, store)
