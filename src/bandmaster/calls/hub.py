"""A model registry bound to a journal store, so that every worker on that store sees the same
alias versions and weights, the same circuit-breaker states and the same response cache.

Workers re-read the shared state at most every ``REFRESH`` seconds (one indexed read of a
revision counter), so ``bandmaster models set`` reaches every worker well within a second.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from bandmaster.calls.wrappers import LimitGate, LimitLedger, LocalLedger
from bandmaster.engine.backend import AliasState
from bandmaster.errors import NoModelRegistry, UnknownModel
from bandmaster.models import AliasSpec, LimitsSpec, Registry
from bandmaster.policies import BreakerState
from bandmaster.store import LimitStore, SQLiteStore

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
    """A registry bound to a journal store: the aliases' current versions and weights, and one
    breaker state per model, shared by every worker on that store (re-read every
    ``REFRESH`` seconds). ``call_model`` resolves each call through one; users reach it as
    ``engine.models`` (a ``ModelDesk``), not directly."""

    def __init__(self, registry: Registry, store: SQLiteStore | None = None) -> None:
        self.registry = registry
        self.store = store
        self.breakers: dict[str, BreakerState] = {}
        self.new_breaker: Callable[[str], BreakerState] = lambda _model: BreakerState()
        """Makes the breaker state of a model. A backend whose workers share breakers elsewhere
        sets one that reports each call's outcome there (``bandmaster.temporal._model_sync``)."""
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
                ledger = self.ledger = LocalLedger() if self.store is None else LimitStore(self.store)
            gate = self.gates[model] = LimitGate(model, limits.policy(), ledger)
            gate.spec = limits
        return gate

    def breaker(self, model: str) -> BreakerState:
        state = self.breakers.get(model)
        if state is None:
            state = self.breakers[model] = self.new_breaker(model)
        return state

    def refresh(self, *, force: bool = False) -> None:
        """Adopt alias changes and breaker transitions made by other workers."""
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
        for key, status, opened_at, changed_at in store.breakers():
            self.breaker(key).adopt(status, opened_at, changed_at)  # type: ignore[arg-type]

    def share_breaker(self, model: str) -> None:
        state = self.breakers[model]
        if self.store is not None:
            self.store.put_breaker(model, state.status, state.opened_at, state.changed_at)

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
                    breakers={m: self.breaker(m).status for m in models},
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
