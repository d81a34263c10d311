"""The model registry's run-time state on Temporal: one long-lived workflow per task queue
(id ``bandmaster.models.<task queue>``) holding what the embedded engine keeps in its journal's
registry tables: alias overrides with their history, and one circuit-breaker state per model.

- A **switch** is two steps: the ``preview`` query computes the new alias from the registry
  of the workers (``Registry.with_alias``: ``UnknownModel``/``RegistryError`` as on the
  embedded engine), then the ``switch`` update stores it if nothing changed in between (the
  revision matches; else the desk previews again). The update stores the spec it is given, so
  a replay on a worker with another ``models.yaml`` replays the same state.
- **Breakers** are counted here: a worker ``report``s each failure (and each success that
  changes something) with an update that answers the new state, so the worker that records
  the N-th failure of all workers learns "open" at once; before a call whose model has shown
  failures, a worker asks ``admit`` (an update: one handler runs at a time, so exactly one
  worker claims a half-open trial). Each row carries a revision, so a worker never adopts an
  older row from a memo it reads after an update answered a newer one. The handlers stamp
  breaker times with the workflow's time (``workflow.time()``, deterministic on replay), not
  the workers' clocks: an open is stamped when it was recorded, and windows, resets and trial
  claims are measured on one clock whatever the workers' clocks say.
- The state workers need (revision, overrides, breakers) is also the workflow's memo
  ``bandmaster.models.state``, and the switch history ``bandmaster.models.history``, both
  rewritten on each change; workers read the state every ``model_sync.POLL`` seconds with a
  describe call, which the server answers itself: no worker is asked, so a crashed worker that
  held this workflow delays nobody. (A query would wait until Temporal notices the crash.)

It continues as new when Temporal suggests it (its history grows with every report), carrying
its state; nothing else ends it. Its handlers are deterministic: times come from
``workflow.time()``, and the registry is read only by queries and the update's validator
(neither is replayed).
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from bandmaster.errors import BandmasterError, UnknownModel
from bandmaster.models import AliasSpec, Registry
from bandmaster.policies import Breaker, BreakerState
from bandmaster.temporal._hosting import hosted
from bandmaster.temporal._singletons import ensure_running, until_history_is_long

REGISTRY_WORKFLOW = "bandmaster.models"
STATE_QUERY = "bandmaster.models.state"
PREVIEW_QUERY = "bandmaster.models.preview"
DESCRIBE_QUERY = "bandmaster.models.describe"
SWITCH_UPDATE = "bandmaster.models.switch"
REPORT_UPDATE = "bandmaster.models.report"
ADMIT_UPDATE = "bandmaster.models.admit"
STATE_MEMO = "bandmaster.models.state"
"""The memo entry holding what workers adopt: ``{"rev", "overrides", "breakers"}``."""
HISTORY_MEMO = "bandmaster.models.history"
"""The memo entry holding each alias's switches, oldest first: ``{alias: [change, ...]}``."""
CHANGED = "RegistryChanged"
"""The ``ApplicationError`` type of a switch previewed against an older revision."""
HISTORY = 20
"""Changes kept per alias (the embedded journal keeps all, and its ``history()`` shows the 20
newest)."""


def registry_id(task_queue: str) -> str:
    return f"bandmaster.models.{task_queue}"


async def ensure_registry(client: Client, task_queue: str) -> None:
    """Start the registry workflow of ``task_queue`` unless it runs (workers and desks call
    this before they use it; a terminated one starts again, empty)."""
    await ensure_running(client, REGISTRY_WORKFLOW, registry_id(task_queue), task_queue)


def empty_state() -> dict[str, Any]:
    return {"rev": 0, "overrides": {}, "history": {}, "breakers": {}}


def serving_registry(task_queue: str) -> Registry:
    """The registry the workers of ``task_queue`` serve (what ``create_worker`` hosted)."""
    options = hosted(task_queue)
    registry = options.registry if options is not None else None
    if not isinstance(registry, Registry):
        raise ApplicationError(
            f"this worker hosts no model registry for task queue {task_queue!r}; start workers with "
            "TemporalEngine(registry=...) or `bandmaster worker --models models.yaml`",
            type="RegistryError",
            non_retryable=True,
        )
    return registry


def with_overrides(registry: Registry, overrides: dict[str, Any]) -> Registry:
    """A view of ``registry`` with ``overrides`` applied, leaving ``registry`` itself alone."""
    view = copy.copy(registry)
    aliases = {**registry.config.aliases}
    aliases.update({alias: AliasSpec.model_validate(spec) for alias, spec in overrides.items()})
    view.config = registry.config.model_copy(update={"aliases": aliases})
    return view


def alias_state(alias: str, spec: AliasSpec, breakers: dict[str, Any]) -> dict[str, Any]:
    """One alias as ``backend.AliasState`` fields."""
    models = [*spec.versions.values(), *spec.policy.fallback]
    return {
        "alias": alias,
        "versions": dict(spec.versions),
        "weights": dict(spec.weights),
        "fallback": list(spec.policy.fallback),
        "breakers": {m: breakers.get(m, {}).get("status", "closed") for m in models},
        "policy": spec.policy.model_dump(mode="json"),
    }


def breaker_state(row: dict[str, Any] | None) -> BreakerState:
    """A breaker row of the registry state as the state machine's ``BreakerState``."""
    row = row or {}
    recent = row.get("recent")
    return BreakerState(
        status=row.get("status", "closed"),
        recent_failures=list(recent) if isinstance(recent, list) else [],
        opened_at=row.get("opened_at"),
        changed_at=row.get("changed_at", 0.0),
        failures=int(row.get("failures") or 0) if not isinstance(row.get("failures"), list) else 0,
        trial_until=row.get("trial_until"),
    )


def breaker_row(state: BreakerState, rev: int) -> dict[str, Any]:
    return {
        "status": state.status,
        "opened_at": state.opened_at,
        "changed_at": state.changed_at,
        "recent": state.recent_failures,
        "failures": state.failures,
        "trial_until": state.trial_until,
        "rev": rev,
    }


def _policy(event: dict[str, Any]) -> Breaker:
    return Breaker(**event["policy"]) if event.get("policy") else Breaker()


def _change(breakers: dict[str, Any], model: str, state: BreakerState) -> bool:
    """Store ``state`` as ``model``'s row if it differs; True when it did."""
    old = breakers.get(model)
    rev = int(old.get("rev", 0)) if old else 0
    if old is not None and breaker_row(state, rev) == old:
        return False
    breakers[model] = breaker_row(state, rev + 1)
    return True


def apply_report(breakers: dict[str, Any], event: dict[str, Any]) -> bool:
    """One call's outcome (``failure``/``success``/``void``, at ``at``, under ``policy``),
    reported by a worker, applied to the shared state of its model; True when it changed.
    ``trial`` marks the one call a half-open breaker let through: its outcome closes or reopens
    the breaker (``void``: it said nothing, the next call tries)."""
    model = str(event["model"])
    state = breaker_state(breakers.get(model))
    at, trial = float(event["at"]), bool(event.get("trial"))
    if event["outcome"] == "failure":
        state.fail(_policy(event), at, trial=trial)
    elif event["outcome"] == "success":
        state.succeed(at, trial=trial)
    else:
        state.release(trial=trial)
    return _change(breakers, model, state)


def admit_call(breakers: dict[str, Any], request: dict[str, Any]) -> tuple[str, bool]:
    """May a call of ``model`` start at ``at``? The admission (``go``/``trial``/``refused``)
    and whether the state changed (a trial claimed)."""
    model = str(request["model"])
    state = breaker_state(breakers.get(model))
    admission = state.admit(_policy(request), float(request["at"]))
    return admission, _change(breakers, model, state)


def _refusal(exc: BaseException) -> ApplicationError:
    """A registry error, for the desk to raise again as the same bandmaster error."""
    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True)


# Not sandboxed: its queries and validator read the worker's registry object, and it does
# nothing a sandbox guards against (no clock, no randomness, no I/O).
@workflow.defn(name=REGISTRY_WORKFLOW, sandboxed=False)
class ModelRegistryWorkflow:
    """Alias overrides and breaker states shared by every worker of a task queue."""

    @workflow.init
    def __init__(self, state: dict[str, Any] | None) -> None:
        self.state = state or empty_state()

    @workflow.run
    async def run(self, state: dict[str, Any] | None) -> None:
        if self.state["rev"] or self.state["breakers"]:  # continued as new: the memo starts empty
            self._publish()
        await until_history_is_long()
        workflow.continue_as_new(self.state)

    # --- reads -------------------------------------------------------------------------------

    @workflow.query(name=STATE_QUERY)
    def read_state(self) -> dict[str, Any]:
        """What workers adopt: the revision, the overrides and the breaker states."""
        return {k: self.state[k] for k in ("rev", "overrides", "breakers")}

    @workflow.query(name=DESCRIBE_QUERY)
    def describe(self) -> list[dict[str, Any]]:
        registry = with_overrides(serving_registry(workflow.info().task_queue), self.state["overrides"])
        breakers = self.state["breakers"]
        return [alias_state(a, spec, breakers) for a, spec in sorted(registry.config.aliases.items())]

    @workflow.query(name=PREVIEW_QUERY)
    def preview(self, request: dict[str, Any]) -> dict[str, Any]:
        """The alias as a switch would make it, validated against the workers' registry, with
        the revision it was computed at; or the error (``{"error": {"type", "message"}}``)."""
        registry = with_overrides(serving_registry(workflow.info().task_queue), self.state["overrides"])
        try:
            spec = registry.with_alias(
                request["alias"], versions=request.get("versions"), weights=request.get("weights")
            )
        except BandmasterError as exc:
            return {"error": {"type": type(exc).__name__, "message": str(exc)}}
        return {"spec": spec.model_dump(mode="json"), "rev": self.state["rev"]}

    # --- writes ------------------------------------------------------------------------------

    @workflow.update(name=SWITCH_UPDATE)
    def switch(self, request: dict[str, Any]) -> dict[str, Any]:
        """Store a previewed alias (``alias``, ``spec``, ``by``, ``rev``); answers it as
        ``AliasState`` fields."""
        alias, spec = request["alias"], request["spec"]
        state = self.state
        state["overrides"][alias] = spec
        changes = state["history"].setdefault(alias, [])
        changes.append({"spec": spec, "changed_at": workflow.time(), "changed_by": request.get("by")})
        del changes[:-HISTORY]
        state["rev"] += 1
        self._publish()
        return alias_state(alias, AliasSpec.model_validate(spec), state["breakers"])

    @switch.validator
    def check_switch(self, request: dict[str, Any]) -> None:
        if request.get("rev") != self.state["rev"]:
            raise ApplicationError(
                f"the registry changed while alias {request.get('alias')!r} was being switched",
                type=CHANGED,
                non_retryable=True,
            )
        try:
            spec = AliasSpec.model_validate(request.get("spec"))
        except ValidationError as exc:
            raise ApplicationError(f"alias {request.get('alias')!r}: {exc}", type="RegistryError") from None
        registry = serving_registry(workflow.info().task_queue)
        for label, name in spec.versions.items():
            if not registry.knows(name):
                unknown = UnknownModel(
                    f"alias {request['alias']!r}: version {label!r} names unknown model {name!r}"
                )
                raise _refusal(unknown)

    @workflow.update(name=REPORT_UPDATE)
    def report(self, request: dict[str, Any]) -> dict[str, Any]:
        """Apply a worker's call outcomes (``events``, in order); answers the rows of the models
        they name."""
        breakers = self.state["breakers"]
        changed = False
        now = workflow.time()  # breaker times on the workflow clock (module docstring)
        for event in request["events"]:
            changed = apply_report(breakers, {**event, "at": now}) or changed
        if changed:
            self._publish()
        return {m: breakers[m] for m in {str(e["model"]) for e in request["events"]} if m in breakers}

    @workflow.update(name=ADMIT_UPDATE)
    def admit(self, request: dict[str, Any]) -> dict[str, Any]:
        """Admit a call of ``model`` at ``at`` under ``policy``: ``{"admission", "row"}``."""
        breakers = self.state["breakers"]
        admission, changed = admit_call(breakers, {**request, "at": workflow.time()})
        if changed:
            self._publish()
        return {"admission": admission, "row": breakers.get(str(request["model"]))}

    def _publish(self) -> None:
        workflow.upsert_memo({STATE_MEMO: self.read_state(), HISTORY_MEMO: self.state["history"]})
