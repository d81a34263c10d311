"""``bm.call_model``: one journaled step around a model, with its policies.

Order of play for one call: resolve the alias to a version (sticky by ``key``), look in the
response cache, then try the primary and each fallback in turn, skipping any whose circuit
breaker is open, each with its own retries and per-attempt timeout. The journal's step meta
records alias, version, the model that answered, attempts, fallback used, breaker states,
tokens, cost and cache hit.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bandmaster.engine.backend import current_backend
from bandmaster.engine.context import current_clock, current_run, journaling
from bandmaster.engine.operation import OpRecord, journaled, run_attempts
from bandmaster.engine.redaction import Redactor, redact_json
from bandmaster.engine.serde import codec_for
from bandmaster.errors import (
    CircuitOpen,
    FallbacksExhausted,
    GuardViolation,
    InvalidRequest,
    OutputValidationFailed,
    UsageError,
)
from bandmaster.guard.base import Guard
from bandmaster.guard.run import GuardLog, ask, check_guards, check_input, revive
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
AskModel = Callable[[Model, ModelRequest], Awaitable[ModelResponse]]
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


def run_registry(registry: Registry | None) -> Registry:
    """``registry``, else the engine's (inside a step too: it serves the whole run), else the
    default one."""
    if registry is not None:
        return registry
    run = current_run.get()
    found = run.registry if run is not None and isinstance(run.registry, Registry) else None
    return found or default_registry()


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


def prepare_call(
    registry: Registry | None,
    target: str | Model,
    input: str | list[Message] | list[dict[str, str]] | dict[str, Any] | ModelRequest,
    *,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    json_schema: dict[str, Any] | None,
    stop: list[str] | None,
    timeout: float | None,
    retry: Retry | None,
    fallback: list[str | Model] | None,
    breaker: Breaker | None,
    cache_ttl: float | None,
) -> tuple[Registry, ModelRequest, _Policy]:
    """What ``call_model`` and ``stream_model`` resolve before calling: the run's registry,
    the request, and the policy (explicit arguments over the alias's)."""
    registry = run_registry(registry)
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
    return registry, request, policy


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
    guard: Guard | Sequence[Guard] | None = None,
) -> ModelResponse:
    """Call a model (an alias or model name in the registry, or a ``Model`` object).

    Inside a workflow this is one journaled step named after the target: its response is
    recorded and replayed. ``key`` makes A/B and canary assignment sticky (a user id, a
    tenant). Policy arguments override the alias's ``policy`` from ``models.yaml``. ``guard``
    checks the request and each answer (``bandmaster.guard``), re-asking or falling back.
    """
    guards = check_guards(guard)
    backend = current_backend.get()
    if backend is not None:  # another engine runs this workflow: it executes the call elsewhere
        options: dict[str, Any] = {
            "key": key,
            "system": system,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "json_schema": json_schema,
            "stop": stop,
            "timeout": timeout,
            "retry": retry,
            "fallback": fallback,
            "breaker": breaker,
            "cache_ttl": cache_ttl,
        }
        if not isinstance(target, str):
            raise UsageError(
                f"call_model({target!r}): on this backend, name the model or alias and give the worker "
                "the registry (registry=...), since the call runs in an activity process"
            )
        # The backend sends what can travel (guards as data, a registry it hosts) or says why not.
        options.update(registry=registry, guard=guards or None)
        response = await backend.call_model(target, input, options)
        return revive(guards, response)  # the answer crossed a process as JSON
    ctx = journaling()
    registry, request, policy = prepare_call(
        registry, target, input, system=system, temperature=temperature, max_tokens=max_tokens,
        json_schema=json_schema, stop=stop, timeout=timeout, retry=retry, fallback=fallback,
        breaker=breaker, cache_ttl=cache_ttl,
    )  # fmt: skip
    name = target if isinstance(target, str) else target.name
    if ctx is None:
        response = await _invoke(hub_for(registry, None), target, request, key, policy, OpRecord(), guards)
        return revive(guards, response)
    hub = hub_for(registry, ctx.store)
    seq = ctx.next_seq()
    if ctx.redactor is not None:
        # The model is sent what the journal keeps: the request redacted, also when the workflow
        # composed its text from something other than its (redacted) input.
        request = redact_request(ctx.redactor, request)
    response = await journaled(
        ctx,
        seq,
        name,
        "model",
        _RESPONSE,
        lambda record: _invoke(hub, target, request, key, policy, record, guards, ctx.redactor),
        request=request,  # a replay harness matches recorded calls by it
    )
    return revive(guards, response)  # a replayed output is JSON: guards restore its type


async def call_model_recorded(
    target: str,
    input: Any,
    record: OpRecord,
    *,
    registry: Registry | None = None,
    key: str | None = None,
    guard: Sequence[Guard] = (),
    **options: Any,
) -> ModelResponse:
    """One model call outside any journal, for a backend that runs it in a worker process:
    the same policy and guards as ``call_model``, with what the journal would keep about it
    (attempts, alias, version, guard log, ...) left in ``record``, also when it fails."""
    registry = registry or default_registry()
    request_fields = ("system", "temperature", "max_tokens", "json_schema", "stop")
    policy_fields = ("timeout", "retry", "fallback", "breaker", "cache_ttl")
    unknown = set(options) - {*request_fields, *policy_fields}
    if unknown:
        raise UsageError(f"call_model({target!r}) got unknown option(s) {sorted(unknown)}")
    request = as_request(input, **{k: options.get(k) for k in request_fields})
    policy = _policy(registry, target, **{k: options.get(k) for k in policy_fields})
    guards = check_guards(guard)
    return await _invoke(hub_for(registry, None), target, request, key, policy, record, guards)


async def _invoke(
    hub: ModelHub,
    target: str | Model,
    request: ModelRequest,
    key: str | None,
    policy: _Policy,
    record: OpRecord,
    guards: tuple[Guard, ...] = (),
    redactor: Redactor | None = None,
    *,
    ask_model: AskModel | None = None,
    log: GuardLog | None = None,
) -> ModelResponse:
    """``ask_model`` replaces ``Model.request`` for each attempt (``bm.stream_model`` streams
    there); ``log`` is the guard log to fill in (a streaming call's partial checks log too)."""
    hub.refresh()
    registry = hub.registry
    name = target if isinstance(target, str) else target.name
    meta = record.meta
    log = log or GuardLog()
    routed: GuardViolation | None = None
    meta["request"] = request  # journaled as sent (serialised with the meta)
    record.request_redacted = redactor is not None  # call_model redacted it before this
    if guards:  # the guards' log fills in as they run; the row is serialised at the end
        meta["guard"] = {"attempts": log.attempts, "violations": log.violations}
        request, routed = await check_input(guards, request, log)
        meta["request"] = request
    if isinstance(target, str):
        resolution = registry.resolve(target, key=key)
        meta["alias"], meta["version"] = resolution.alias, resolution.version
        chain: list[str | Model] = [resolution.model, *policy.fallback]
    else:
        chain = [target, *policy.fallback]
    if routed is not None and len(chain) == 1:
        routed.add_note("on_violation='fallback', but this call has no fallback models to route to")
        raise routed

    # Keyed by the model that would serve (not the alias): a switch or a canary never gets
    # another version's cached answer.
    first = chain[0] if isinstance(chain[0], str) else chain[0].name
    cache_key = f"{first}:{request.fingerprint()}" if policy.cache_ttl and hub.store is not None else None
    if cache_key is not None:
        assert hub.store is not None
        cached = hub.store.cache_get(cache_key)
        if cached is not None and not routed:
            response = ModelResponse.model_validate_json(cached)
            meta.update(cache_hit=True, model=response.model, tokens=_tokens(response), cost=0.0)
            return response
    meta["cache_hit"] = False

    errors: dict[str, BaseException] = {}
    breakers: dict[str, str] = {}
    for position, candidate in enumerate(chain):
        model, label = _model(registry, candidate, key)
        if position == 0 and routed is not None:
            errors[label] = routed  # an input rule sent this request past the primary
            continue
        state = hub.breaker(label) if policy.breaker is not None else None
        if (
            state is not None
            and policy.breaker is not None
            and not state.allow(policy.breaker, current_clock().time())
        ):
            breakers[label] = state.status
            errors[label] = CircuitOpen(
                f"{label}: circuit open since {state.opened_at}; skipping to the fallback"
            )
            continue

        def send(req: ModelRequest, model: Model = model, label: str = label) -> Awaitable[ModelResponse]:
            return run_attempts(
                lambda _attempt: model.request(req) if ask_model is None else ask_model(model, req),
                retry=policy.retry,
                timeout=policy.timeout,
                name=label,
                record=record,
            )

        try:
            if guards:
                response = await ask(guards, request, send, model=label, log=log)
            else:
                response = await send(request)
        except Exception as exc:
            errors[label] = exc
            if isinstance(exc, GuardViolation) and not exc.fallback:
                if state is not None:
                    state.trial_in_flight = False
                raise
            # A request the provider rejects as invalid, or an answer a guard refuses, says
            # nothing about the model's availability.
            if (
                state is not None
                and policy.breaker is not None
                and not isinstance(exc, InvalidRequest | GuardViolation | OutputValidationFailed)
            ):
                if state.record_failure(policy.breaker, current_clock().time()):
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
            if state.record_success(current_clock().time()):
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
            finish_reason=response.finish_reason,
        )
        if provider := getattr(model, "provider", None):  # OpenAIModel, AnthropicModel
            meta["provider"] = provider
        if breakers:
            meta["breakers"] = breakers
        if cache_key is not None:
            assert hub.store is not None
            cached_json = response.model_dump_json()
            if redactor is not None:  # the cache is on disk too
                cached_json = redact_json(redactor, cached_json) or cached_json
            hub.store.cache_put(cache_key, cached_json, current_clock().time() + (policy.cache_ttl or 0))
        return response

    if breakers:
        meta["breakers"] = breakers
    if len(errors) == 1:
        raise next(iter(errors.values()))
    raise FallbacksExhausted(name, errors)


def redact_request(redactor: Redactor, request: ModelRequest) -> ModelRequest:
    """``request`` with its free text (input, chat message contents, system prompt) redacted;
    settings, schema and roles are the caller's code, not data, and stay as they are."""
    update: dict[str, Any] = {}
    if isinstance(request.input, list):
        update["input"] = [
            m.model_copy(update={"content": redactor.redact(m.content)}) for m in request.input
        ]
    else:
        update["input"] = redactor.redact(request.input)
    if request.system is not None:
        update["system"] = redactor.redact(request.system)
    return request.model_copy(update=update)


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
