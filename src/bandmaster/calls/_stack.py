"""One model call as a stack of wrappers: resolve the alias, then wrap the chosen model in the
call's policies and ask it.

For each model of the chain (the alias's version, then each fallback), innermost first::

    Limited (rate/concurrency limits, if the model has them) → Retrying (retries, per-attempt
    timeout) → Guarded (output guards, re-asks) → BreakerGate

each link held against the run's and tenant's budgets by ``Budgeted`` when any applies, then
``FallbackChain`` over them (a call without fallbacks asks its one model directly) →
``Priced`` → ``ResponseCache``. ``bm.call_model``,
``bm.stream_model`` and a backend's model activity all call through ``invoke_model``; what the
journal keeps about the call (alias, version, who served, tokens, cost, breaker states, cache
hit) goes into the step's meta as it runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from bandmaster.calls.hub import ModelHub, current_ledger
from bandmaster.calls.wrappers import (
    BreakerGate,
    Budgeted,
    BudgetRule,
    CallPrices,
    FallbackChain,
    Guarded,
    Limited,
    Priced,
    ResponseCache,
    Retrying,
    SpendLedger,
    Wrapper,
    falls_back,
    utc_day,
)
from bandmaster.calls.wrappers._fallback import note_served
from bandmaster.engine import (
    OpRecord,
    Redactor,
    codec_for,
    current_clock,
    current_run,
    current_step,
    current_terms,
)
from bandmaster.errors import GuardViolation
from bandmaster.guard import Guard, GuardLog, check_input
from bandmaster.models import Model, ModelRequest, ModelResponse, Registry
from bandmaster.policies import Breaker, Retry

RESPONSE_CODEC = codec_for(ModelResponse)
"""How a model step's answer is journaled."""

DEFAULT_RETRY = Retry(attempts=3)
"""Model calls retry transient failures (timeouts, 429, 5xx) three times unless told otherwise;
they have no side effects to duplicate."""

AskModel = Callable[[Model, ModelRequest], Awaitable[ModelResponse]]
"""How one attempt asks its model, in place of ``Model.request`` (``bm.stream_model`` streams)."""


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """The policies of one call: explicit arguments over the alias's ``policy``."""

    timeout: float | None
    retry: Retry
    fallback: tuple[str | Model, ...]
    breaker: Breaker | None
    cache_ttl: float | None


def call_policy(
    registry: Registry,
    target: str | Model,
    *,
    timeout: float | None,
    retry: Retry | None,
    fallback: list[str | Model] | None,
    breaker: Breaker | None,
    cache_ttl: float | None,
) -> CallPolicy:
    """Explicit arguments win over the alias's registry policy."""
    alias = registry.alias(target) if isinstance(target, str) else None
    spec = alias.policy if alias is not None else None
    return CallPolicy(
        timeout=timeout if timeout is not None else (spec.timeout if spec else None),
        retry=retry or (spec.retry.policy() if spec and spec.retry else DEFAULT_RETRY),
        fallback=tuple(fallback if fallback is not None else (spec.fallback if spec else ())),
        breaker=breaker or (spec.breaker.policy() if spec and spec.breaker else None),
        cache_ttl=cache_ttl if cache_ttl is not None else (spec.cache.ttl if spec and spec.cache else None),
    )


async def invoke_model(
    hub: ModelHub,
    target: str | Model,
    request: ModelRequest,
    key: str | None,
    policy: CallPolicy,
    record: OpRecord,
    guards: tuple[Guard, ...] = (),
    redactor: Redactor | None = None,
    *,
    ask_model: AskModel | None = None,
    log: GuardLog | None = None,
    ledger: SpendLedger | None = None,
    approvable: bool = False,
    approved: bool = False,
) -> ModelResponse:
    """Ask ``target`` through the call's wrappers, keeping in ``record`` what the journal keeps.
    ``ask_model`` replaces ``Model.request`` for each attempt; ``log`` is the guard log to fill
    in (a streaming call's partial checks log there too). ``redactor``: the request was
    redacted before this, and the cache keeps answers redacted. ``ledger``: where budgets hold
    money (default: the hub's); ``approvable``/``approved``: see ``Budgeted``."""
    hub.refresh()
    registry = hub.registry
    meta = record.meta
    log = log or GuardLog()
    routed: GuardViolation | None = None
    meta["request"] = request  # journaled as sent (serialised with the meta)
    record.request_redacted = redactor is not None
    if guards:  # the guards' log fills in as they run; the row is serialised at the end
        meta["guard"] = {"attempts": log.attempts, "violations": log.violations}
        request, routed = await check_input(guards, request, log)
        meta["request"] = request
    if isinstance(target, str):
        resolution = registry.resolve(target, key=key)
        meta["alias"], meta["version"] = resolution.alias, resolution.version
        targets: list[str | Model] = [resolution.model, *policy.fallback]
    else:
        targets = [target, *policy.fallback]
    if routed is not None and len(targets) == 1:
        routed.add_note("on_violation='fallback', but this call has no fallback models to route to")
        raise routed

    breakers: dict[str, str] = {}
    clock = current_clock()  # the run's engine clock, so a FakeClock drives breakers and the cache

    def wrap(candidate: str | Model) -> Model:
        model, label = _model(registry, candidate, key)
        asked: Model = model if ask_model is None else _AskedBy(model, ask_model)
        limits = registry.limits(label)
        if limits is not None:  # each attempt takes a permit, its wait inside the attempt's timeout
            asked = Limited(asked, hub.gate(label, limits))
        wrapped: Model = Retrying(asked, policy.retry, timeout=policy.timeout, name=label, record=record)
        if guards:
            wrapped = Guarded(wrapped, guards, log=log)
        if policy.breaker is not None:
            wrapped = BreakerGate(
                wrapped, policy.breaker, states=hub.breakers, seen=breakers, clock=clock.time
            )
        return wrapped

    rules = budget_rules(registry, clock.time())
    if rules:  # no budget: nothing more on the common path
        budgets = CallPrices(registry)
        spend = ledger or current_ledger.get() or hub.spend

        def budgeted(candidate: str | Model) -> Model:
            return Budgeted(
                wrap(candidate),
                rules=rules,
                ledger=spend,
                prices=budgets,
                downgrade=wrap,
                notes=meta,
                approvable=approvable,
                approved=approved,
            )

        wrap_link: Callable[[str | Model], Model] = budgeted
    else:
        wrap_link = wrap

    def link(position: int, candidate: str | Model) -> Model:
        if position == 0 and routed is not None:  # an input rule sent this request past the primary
            return _Refused(_model(registry, candidate, key)[1], routed)
        return wrap_link(candidate)

    only: Model | None = None
    if len(targets) > 1:
        name = target if isinstance(target, str) else target.name
        chain: Model = FallbackChain(_Links(targets, link), name=name, notes=meta)
    else:  # a chain of one model is that model: a wrapper less on the common path
        chain = only = link(0, targets[0])
    stack: Model = Priced(chain, registry.prices)
    meta["cache_hit"] = False
    if policy.cache_ttl and hub.store is not None:
        # Keyed by the model that would serve (not the alias): a switch or a canary never gets
        # another version's cached answer.
        first = targets[0] if isinstance(targets[0], str) else targets[0].name
        stack = ResponseCache(
            stack,
            hub.store,
            ttl=policy.cache_ttl,
            namespace=first,
            read=routed is None,
            redactor=redactor,
            notes=meta,
            clock=clock.time,
        )
    try:
        response = await stack.request(request)
    except Exception as exc:
        if breakers and falls_back(exc):  # the chain ran to its end: show the states it met
            meta["breakers"] = breakers
        raise
    if meta["cache_hit"]:
        meta.update(model=response.model, tokens=_tokens(response), cost=0.0)
        return response
    if only is not None:
        note_served(meta, only, 0)
    meta.update(
        model=response.model or meta["served_by"],
        tokens=_tokens(response),
        cost=response.cost if response.cost_known else None,
        confidence=response.confidence,
        finish_reason=response.finish_reason,
    )
    if not response.cost_known:  # a billed model without a price: unknown, never $0
        meta["cost_known"] = False
    if breakers:
        meta["breakers"] = breakers
    return response


def budget_rules(registry: Registry, now: float) -> tuple[BudgetRule, ...]:
    """The budgets a call of the current run is held against: the run's (``budget_usd``) and
    its tenant's daily one (``budgets.tenants`` in models.yaml), in that order."""
    terms = current_terms()
    if terms.budget_usd is None and terms.tenant is None:
        return ()
    config = registry.config.budgets
    rules: list[BudgetRule] = []
    if terms.budget_usd is not None:
        step = current_step()
        run = current_run.get()
        run_id = step.run_id if step is not None else run.run_id if run is not None else None
        if run_id is not None:
            runs = config.runs
            rules.append(
                BudgetRule(
                    f"run:{run_id}",
                    "",
                    terms.budget_usd,
                    runs.on_exceed,
                    runs.downgrade_to,
                    runs.approve_timeout,
                    how_to_raise="start the run with a larger budget_usd to allow more",
                )
            )
    tenant = config.tenants.get(terms.tenant) if terms.tenant is not None else None
    if tenant is not None:
        rules.append(
            BudgetRule(
                f"tenant:{terms.tenant}",
                utc_day(now),
                tenant.usd_per_day,
                tenant.on_exceed,
                tenant.downgrade_to,
                tenant.approve_timeout,
                how_to_raise=(
                    f"raise budgets.tenants.{terms.tenant}.usd_per_day in {registry.source} to allow "
                    "more today, or wait for the next UTC day"
                ),
            )
        )
    return tuple(rules)


class _Links(Sequence[Model]):
    """The chain's models, each built (resolved and wrapped) when the chain reaches it: a
    fallback is never built for a call the primary answers."""

    __slots__ = ("_build", "_targets")

    def __init__(self, targets: list[str | Model], build: Callable[[int, str | Model], Model]) -> None:
        self._targets = targets
        self._build = build

    def __len__(self) -> int:
        return len(self._targets)

    def __iter__(self) -> Iterator[Model]:  # what the chain uses: no IndexError at the end
        build = self._build
        for position, target in enumerate(self._targets):
            yield build(position, target)

    @overload
    def __getitem__(self, index: int) -> Model: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Model]: ...

    def __getitem__(self, index: int | slice) -> Model | Sequence[Model]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self._targets))[index]]
        position = index if index >= 0 else index + len(self._targets)
        return self._build(position, self._targets[index])  # IndexError ends the iteration


class _AskedBy(Wrapper):
    """``inner``, asked through ``ask`` (``bm.stream_model``'s relay) instead of its
    ``request``."""

    __slots__ = ("ask",)

    def __init__(self, inner: Model, ask: AskModel) -> None:
        super().__init__(inner)
        self.ask = ask

    async def request(self, req: ModelRequest) -> ModelResponse:
        return await self.ask(self.inner, req)


class _Refused:
    """The primary of a call whose input a guard routed to the fallbacks: it answers nothing."""

    __slots__ = ("name", "violation")

    def __init__(self, name: str, violation: GuardViolation) -> None:
        self.name = name
        self.violation = violation

    async def request(self, req: ModelRequest) -> ModelResponse:
        raise self.violation


def _model(registry: Registry, candidate: str | Model, key: str | None) -> tuple[Model, str]:
    if not isinstance(candidate, str):
        return candidate, candidate.name
    if registry.alias(candidate) is not None:  # a fallback may itself be an alias
        candidate = registry.resolve(candidate, key=key).model
    return registry.model(candidate), candidate


def _tokens(response: ModelResponse) -> dict[str, int]:
    return {"input": response.usage.input_tokens, "output": response.usage.output_tokens}


__all__ = [
    "DEFAULT_RETRY",
    "RESPONSE_CODEC",
    "AskModel",
    "CallPolicy",
    "budget_rules",
    "call_policy",
    "invoke_model",
]
