"""A model registry bound to a journal store, so that every worker on that store sees the same
alias versions and weights, the same circuit breakers and the same response cache.

Workers re-read the alias state at most every ``REFRESH`` seconds (one indexed read of a
revision counter), so ``bandmaster models set`` reaches every worker well within a second.
Breakers are counted in the journal itself, at each call (``JournalBreakers``).
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from bandmaster.calls._journal_breakers import JournalBreakers
from bandmaster.calls.wrappers import (
    BreakerStates,
    LimitGate,
    LimitLedger,
    LocalBreakers,
    LocalLimitLedger,
    LocalSpendLedger,
    SpendLedger,
)
from bandmaster.engine.backend import AliasState
from bandmaster.errors import NoModelRegistry, UnknownModel
from bandmaster.models import AliasSpec, LimitsSpec, Registry
from bandmaster.store import LimitStore, SpendStore, SQLiteStore

log = logging.getLogger("bandmaster.calls.hub")

REFRESH = 0.2


@dataclass(slots=True)
class AliasView:
    alias: str
    versions: dict[str, str]
    weights: dict[str, float]
    fallback: list[str]
    breakers: dict[str, str] = field(default_factory=dict)


class ModelHub:
    """A registry bound to a journal store: the aliases' current versions and weights (shared
    by every worker on that store, re-read every ``REFRESH`` seconds) and the breakers of its
    models. ``call_model`` resolves each call through one; users reach it as ``engine.models``
    (a ``ModelDesk``), not directly."""

    def __init__(self, registry: Registry, store: SQLiteStore | None = None) -> None:
        self.registry = registry
        self.store = store
        self.breakers: BreakerStates = LocalBreakers() if store is None else JournalBreakers(store)
        """Where the breakers of this hub's calls are kept and counted: in this process, in the
        journal, or (set by ``bandmaster.temporal._model_sync``) in the Temporal registry
        workflow of the worker's task queue."""
        self.spend: SpendLedger = ledger_for(store)
        """Where budgets hold and count money: the journal's spend table, shared by every worker
        on it (a backend whose workers share it elsewhere sets its own)."""
        self.ledger: LimitLedger | None = None
        """Where models' limits are shared: made on first use (the journal, or this process);
        a backend whose workers share them elsewhere sets its own (``bandmaster.temporal``)."""
        self.gates: dict[str, LimitGate] = {}
        self._rev = -1
        self._checked = float("-inf")

    def gate(self, model: str, limits: LimitsSpec) -> LimitGate:
        """The limit gate of ``model`` in this process (one per model, shared by its calls)."""
        gate = self.gates.get(model)
        if gate is None or gate.spec is not limits:  # first call, or the registry was reloaded
            ledger = self.ledger
            if ledger is None:
                ledger = self.ledger = LocalLimitLedger() if self.store is None else LimitStore(self.store)
            gate = self.gates[model] = LimitGate(model, limits.policy(), ledger)
            gate.spec = limits
        return gate

    def refresh(self, *, force: bool = False) -> None:
        """Adopt alias changes made by other workers."""
        store = self.store
        now = time.monotonic()
        if store is None or (not force and now - self._checked < REFRESH):
            return
        self._checked = now
        rev = store.registry_rev()
        if rev != self._rev:
            self._rev = rev
            for alias, spec in store.alias_overrides().items():
                try:
                    self.registry.apply_alias(alias, AliasSpec.model_validate_json(spec))
                except ValidationError as exc:
                    log.error("ignoring invalid stored override of alias %r: %s", alias, exc)

    def set_alias(
        self,
        alias: str,
        *,
        versions: dict[str, str] | None = None,
        weights: dict[str, float] | None = None,
        changed_by: str | None = None,
    ) -> AliasSpec:
        """Validate and apply a change of versions/weights; with a store, every worker adopts it."""
        self.refresh(force=True)
        spec = self.registry.with_alias(alias, versions=versions, weights=weights)
        if self.store is not None:
            self._rev = self.store.set_alias_override(alias, spec.model_dump_json(), changed_by)
        self.registry.apply_alias(alias, spec)
        return spec

    def describe(self) -> list[AliasView]:
        self.refresh(force=True)
        views = []
        for alias, spec in sorted(self.registry.config.aliases.items()):
            models = [*spec.versions.values(), *spec.policy.fallback]
            views.append(
                AliasView(
                    alias=alias,
                    versions=dict(spec.versions),
                    weights=dict(spec.weights),
                    fallback=list(spec.policy.fallback),
                    breakers={m: self.breakers.status(m) for m in models},
                )
            )
        return views

    def history(self, alias: str) -> list[dict[str, object]]:
        if self.store is None:
            return []
        return [
            {"spec": json.loads(spec), "changed_at": changed_at, "changed_by": who}
            for spec, changed_at, who in self.store.alias_history(alias)
        ]


class JournalLedger:
    """A ``SpendLedger`` in the journal's ``budget_spend`` table (``bandmaster.store.SpendStore``):
    each hold is one immediate transaction, so every worker on the journal shares it."""

    __slots__ = ("table",)

    def __init__(self, store: SQLiteStore) -> None:
        self.table = SpendStore(store)

    async def reserve(self, scope: str, day: str, limit: float, amount: float) -> float | None:
        spend = self.table.reserve(scope, day, limit, amount)
        return None if spend is None else spend.committed

    async def settle(self, scope: str, day: str, held: float, cost: float) -> None:
        self.table.settle(scope, day, held, cost)


_ledgers: weakref.WeakKeyDictionary[object, SpendLedger] = weakref.WeakKeyDictionary()
_local_ledger = LocalSpendLedger()


current_ledger: ContextVar[SpendLedger | None] = ContextVar("bandmaster_ledger", default=None)
"""The ledger of the backend running this code, when it keeps spend elsewhere than the hub's
(a Temporal worker's activities: the task queue's spend workflow)."""


@contextmanager
def ledger_scope(ledger: SpendLedger | None) -> Iterator[None]:
    """Model calls in the body hold and count money in ``ledger`` (None: changes nothing)."""
    if ledger is None:
        yield
        return
    token = current_ledger.set(ledger)
    try:
        yield
    finally:
        current_ledger.reset(token)


def ledger_for(store: SQLiteStore | None) -> SpendLedger:
    """Where budgets of calls on ``store`` are kept (this process's memory without one)."""
    if store is None:
        return _local_ledger
    ledger = _ledgers.get(store)
    if ledger is None:
        ledger = _ledgers[store] = JournalLedger(store)
    return ledger


_hubs: weakref.WeakKeyDictionary[object, dict[int, ModelHub]] = weakref.WeakKeyDictionary()
_local: weakref.WeakSet[Registry] = weakref.WeakSet()  # registries with a hub of their own


def reset_hubs() -> None:
    """Forget every hub of this process, with its breaker states (for tests:
    ``bandmaster.calls._defaults.reset_models`` calls it)."""
    _hubs.clear()
    for registry in list(_local):
        registry.local_hub = None
    _local.clear()


def hub_for(registry: Registry, store: SQLiteStore | None) -> ModelHub:
    """The one hub of this registry on this store (per process)."""
    if store is None:
        hub = registry.local_hub
        if not isinstance(hub, ModelHub):
            hub = registry.local_hub = ModelHub(registry)
            _local.add(registry)
        return hub
    per_store = _hubs.setdefault(store, {})
    hub = per_store.get(id(registry))
    if hub is None or hub.registry is not registry:
        hub = per_store[id(registry)] = ModelHub(registry, store)
    return hub


class HubModelDesk:
    """``bm.Engine(...).models``: the ``ModelDesk`` of an embedded engine, over the hub of its
    registry on its journal (so a switch reaches every worker on that journal within
    ``REFRESH`` seconds)."""

    def __init__(self, registry: object | None, store: SQLiteStore) -> None:
        self.registry = registry if isinstance(registry, Registry) else None
        self.store = store

    def _hub(self) -> ModelHub:
        if self.registry is None:
            raise NoModelRegistry(
                "this engine has no model registry; give it one (bm.Engine(registry=bm.Registry.load(...)), "
                "or --models models.yaml)"
            )
        return hub_for(self.registry, self.store)

    async def describe(self) -> list[AliasState]:
        hub = self._hub()
        states = []
        for v in hub.describe():
            spec = hub.registry.alias(v.alias)
            policy = spec.policy.model_dump(mode="json") if spec is not None else {}
            states.append(AliasState(v.alias, v.versions, v.weights, v.fallback, v.breakers, policy))
        return states

    async def history(self, alias: str) -> list[dict[str, Any]]:
        hub = self._hub()
        if hub.registry.alias(alias) is None:
            raise UnknownModel(f"no alias {alias!r} in the registry; list the aliases to see them")
        return hub.history(alias)

    async def switch(
        self,
        alias: str,
        *,
        versions: dict[str, str] | None = None,
        weights: dict[str, float] | None = None,
        by: str,
    ) -> AliasState:
        hub = self._hub()
        hub.set_alias(alias, versions=versions, weights=weights, changed_by=by or None)
        for state in await self.describe():
            if state.alias == alias:
                return state
        raise UnknownModel(f"no alias {alias!r} in the registry")
