"""What a worker process hosts, per task queue: the bandmaster workflows the generic Temporal
workflow looks up by name, the options its operations run with, and the objects a declarative
graph builds when it is compiled.

A graph's step nodes are ``bm.Step`` objects made at compile time, and its own registry (if
any) is an object too: no module attribute names them, so activity workers cannot import
them. Every worker that hosts the graph registers them here under stable references instead,
``graph:<workflow>:<node>`` for a step and ``graph:<workflow>`` for the registry; the workflow
schedules the reference, and whichever worker runs the activity finds the same object (the
same code is deployed to every worker).

This module is passed through the workflow sandbox, so the sandboxed workflow sees the same
table the worker filled in (a sandbox re-import would see an empty one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bandmaster.engine.backend_kit import Redactor, Step, Workflow
from bandmaster.errors import UsageError

if TYPE_CHECKING:
    from bandmaster.graph import GraphWorkflow

GRAPH_REF = "graph:"


@dataclass(frozen=True, slots=True)
class Hosted:
    """The workflows served on one task queue and how their operations run."""

    workflows: dict[str, Workflow[..., Any]] = field(default_factory=dict)
    local_activities: bool = False  # every step a local activity, not only @bm.step(local=True)
    default_timeout: float = 300.0  # start-to-close of activities whose step has no timeout
    heartbeat: float = 10.0  # a worker silent this long is dead: its activities are retried
    redact: Redactor | None = None  # the engine's redactor, for workflows without their own
    steps: dict[str, Step[..., Any]] = field(default_factory=dict)  # graph step nodes by reference
    registries: dict[str, object] = field(default_factory=dict)  # graphs' own registries by reference
    refs: dict[int, str] = field(default_factory=dict)  # id() of each object above -> its reference
    registry: object | None = None  # the worker's model registry (temporal/model_registry.py reads it)
    forward: dict[str, str] = field(default_factory=dict)
    """Names hosted only in versions: the queue of the version a run started by name goes to
    (``temporal/_versions.py``)."""

    def ref_of(self, obj: object) -> str | None:
        """The reference ``obj`` is hosted under, if it is a graph's compile-time object."""
        ref = self.refs.get(id(obj))
        if ref is None:
            return None
        hosted = self.steps.get(ref) or self.registries.get(ref)
        return ref if hosted is obj else None


_hosted: dict[str, Hosted] = {}


def checked(workflows: Iterable[Workflow[..., Any]]) -> dict[str, Workflow[..., Any]]:
    """``workflows`` by name, or a ``UsageError`` saying why one cannot be hosted."""
    table: dict[str, Workflow[..., Any]] = {}
    for wf in workflows:
        if not isinstance(wf, Workflow):
            raise UsageError(f"{wf!r} is not a workflow; decorate it with @bm.workflow")
        other = table.get(wf.name)
        if other is not None and other is not wf:
            raise UsageError(f"two workflows are named {wf.name!r}; give one @bm.workflow(name=...)")
        table[wf.name] = wf
    return table


def host(
    task_queue: str,
    workflows: Iterable[Workflow[..., Any]],
    *,
    registry: object | None = None,
    forward: dict[str, str] | None = None,
    **options: Any,
) -> Hosted:
    """Register ``workflows`` for ``task_queue`` in this process (one worker per queue), with
    the compile-time objects of the graphs among them. ``registry`` is the worker's: graphs
    without a registry of their own are checked against it now, so a worker for a graph whose
    models it cannot serve fails at start, naming file, line and node."""
    table = checked(workflows)
    hosted = Hosted(table, registry=registry, forward=dict(forward or {}), **options)
    _refuse_vaults(hosted)
    for wf in table.values():
        graph = _as_graph(wf)
        if graph is not None:
            _host_graph(hosted, graph, registry)
    _hosted[task_queue] = hosted
    return hosted


def refuse_vault(redactor: Redactor | None, where: str) -> None:
    """Token mode keeps originals in a SQLite vault local to one machine; on Temporal values are
    redacted in the client and in whichever worker runs each step, so tokens would be spread
    over several vault files and ``reveal`` would miss them."""
    if redactor is not None and getattr(redactor, "vault", None) is not None:
        raise UsageError(
            f"{where}: RedactPII(mode='token', vault=...) does not run on the Temporal backend: the "
            "token vault is a SQLite file on one machine, while on Temporal values are redacted in "
            "the client and in whichever worker runs each step, so tokens would land in several "
            "vault files and could not be revealed. Use RedactPII(mode='hash', key=...) (the same "
            "value gets the same hash, so records still link) or mode='replace', or run this "
            "workflow on bm.Engine"
        )


def _refuse_vaults(hosted: Hosted) -> None:
    refuse_vault(hosted.redact, "TemporalEngine(redact=...)")
    for wf in hosted.workflows.values():
        refuse_vault(wf.redact, f"@bm.workflow {wf.name!r} (redact=...)")


def _as_graph(wf: Workflow[..., Any]) -> GraphWorkflow | None:
    from bandmaster.graph import GraphWorkflow  # only here: graphs pull in routing

    return wf if isinstance(wf, GraphWorkflow) else None


def _host_graph(hosted: Hosted, wf: GraphWorkflow, registry: object | None) -> None:
    from bandmaster.calls import default_registry
    from bandmaster.graph import GraphError, check_models
    from bandmaster.models import Registry

    runner = wf.runner
    if runner is None:
        raise UsageError(
            f"workflow {wf.name!r} is a graph workflow without a runner; build it with graph.as_workflow()"
        )
    prefix = f"{GRAPH_REF}{wf.name}"
    for node, step in runner.steps.items():
        ref = f"{prefix}:{node}"
        hosted.steps[ref] = step
        hosted.refs[id(step)] = ref
    if runner.registry is not None:
        hosted.registries[prefix] = runner.registry
        hosted.refs[id(runner.registry)] = prefix
        return  # compile_graph checked the graph against it
    serving = registry if isinstance(registry, Registry) else default_registry()
    problems = check_models(wf.graph, serving)
    if problems:
        raise GraphError(problems, graph=wf.graph.name)


def hosted(task_queue: str) -> Hosted | None:
    return _hosted.get(task_queue)
