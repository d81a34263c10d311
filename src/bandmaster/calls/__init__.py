"""``bm.call_model``: one journaled step around a model, with its policies.

Order of play for one call: resolve the alias to a version (sticky by ``key``), look in the
response cache, then try the primary and each fallback in turn, skipping any whose circuit
breaker is open, each with its own retries and per-attempt timeout. Each of these policies is
a wrapper around the model (``bandmaster.calls.wrappers``), stacked per call by
``bandmaster.calls._stack``. The journal's step meta records alias, version, the model that
answered, attempts, fallback used, breaker states, tokens, cost and cache hit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bandmaster.calls._defaults import default_registry, reset_models, use_registry
from bandmaster.calls._stack import (
    DEFAULT_RETRY,
    RESPONSE_CODEC,
    CallPolicy,
    call_policy,
    invoke_model,
)
from bandmaster.calls.hub import ModelHub, hub_for, ledger_for
from bandmaster.engine import OpRecord, Redactor, approval, current_run, journaled, journaling
from bandmaster.engine.backend import current_backend
from bandmaster.errors import BudgetExceeded, UsageError
from bandmaster.guard import Guard, check_guards, revive
from bandmaster.models import Message, Model, ModelRequest, ModelResponse, Registry
from bandmaster.policies import Breaker, Retry
from bandmaster.store import SQLiteStore

__all__ = [
    "DEFAULT_RETRY",
    "as_request",
    "bind_store",
    "call_model",
    "call_model_recorded",
    "default_registry",
    "prepare_call",
    "redact_request",
    "reset_models",
    "run_registry",
    "use_registry",
]


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
) -> tuple[Registry, ModelRequest, CallPolicy]:
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
    policy = call_policy(
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

        async def ask_backend(approved: bool) -> ModelResponse:
            sent = {**options, "budget_approved": True} if approved else options
            answer: ModelResponse = await backend.call_model(target, input, sent)
            return answer

        response = await with_budget_approval(target, ask_backend)
        return revive(guards, response)  # the answer crossed a process as JSON
    ctx = journaling()
    registry, request, policy = prepare_call(
        registry, target, input, system=system, temperature=temperature, max_tokens=max_tokens,
        json_schema=json_schema, stop=stop, timeout=timeout, retry=retry, fallback=fallback,
        breaker=breaker, cache_ttl=cache_ttl,
    )  # fmt: skip
    name = target if isinstance(target, str) else target.name
    if ctx is None:
        hub = hub_for(registry, None)
        run = current_run.get()  # inside a step: its budgets are kept in the run's journal
        ledger = ledger_for(run.store) if run is not None and isinstance(run.store, SQLiteStore) else None
        response = await invoke_model(hub, target, request, key, policy, OpRecord(), guards, ledger=ledger)
        return revive(guards, response)
    hub = hub_for(registry, ctx.store)
    if ctx.redactor is not None:
        # The model is sent what the journal keeps: the request redacted, also when the workflow
        # composed its text from something other than its (redacted) input.
        request = redact_request(ctx.redactor, request)

    async def ask_journaled(approved: bool) -> ModelResponse:
        answer: ModelResponse = await journaled(
            ctx,
            ctx.next_seq(),
            name,
            "model",
            RESPONSE_CODEC,
            lambda record: invoke_model(
                hub,
                target,
                request,
                key,
                policy,
                record,
                guards,
                ctx.redactor,
                approvable=True,
                approved=approved,
            ),
            request=request,  # a replay harness matches recorded calls by it
        )
        return answer

    response = await with_budget_approval(target, ask_journaled)
    return revive(guards, response)  # a replayed output is JSON: guards restore its type


async def with_budget_approval(
    target: str | Model, ask: Callable[[bool], Awaitable[ModelResponse]]
) -> ModelResponse:
    """``ask(False)``; if a budget with ``on_exceed: approve`` refused it, a timed
    ``bm.approval`` (default ``reject``), then ``ask(True)`` once a person approved. The
    refused call stays in the journal as a failed model step, then the approval, then the call."""
    try:
        return await ask(False)
    except BudgetExceeded as exc:
        timeout = getattr(exc, "approve_timeout", None)  # a replayed error has it from the journal
        if timeout is None:
            raise
        name = target if isinstance(target, str) else target.name
        payload = {
            "model": name,
            "scope": exc.scope,
            "limit_usd": exc.limit,
            "spent_usd": exc.spent,
            "estimate_usd": exc.estimate,
            "reason": str(exc),
        }
        decision = await approval(f"budget:{name}", payload, timeout=timeout, default="reject")
        if decision.action != "approve":
            why = "timed out" if decision.timed_out else f"was {decision.action!r} by {decision.by}"
            refused = BudgetExceeded(
                f"{exc}; the approval to go over it {why}",
                scope=exc.scope,
                limit=exc.limit,
                spent=exc.spent,
                estimate=exc.estimate,
            )
            raise refused from None
        return await ask(True)


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
    approved = bool(options.pop("budget_approved", False))  # a person let it go over a budget
    unknown = set(options) - {*request_fields, *policy_fields}
    if unknown:
        raise UsageError(f"call_model({target!r}) got unknown option(s) {sorted(unknown)}")
    request = as_request(input, **{k: options.get(k) for k in request_fields})
    policy = call_policy(registry, target, **{k: options.get(k) for k in policy_fields})
    guards = check_guards(guard)
    hub = hub_for(registry, None)
    return await invoke_model(
        hub, target, request, key, policy, record, guards, approvable=True, approved=approved
    )


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


def bind_store(registry: Registry, store: SQLiteStore) -> ModelHub:
    """The hub for administering ``registry`` on ``store`` (CLI, server)."""
    if not isinstance(registry, Registry):
        raise UsageError(f"{registry!r} is not a bm.Registry")
    return hub_for(registry, store)
