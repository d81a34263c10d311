"""What a worker process hosts, per task queue: the bandmaster workflows the generic Temporal
workflow looks up by name, and the options its operations run with.

This module is passed through the workflow sandbox, so the sandboxed workflow sees the same
table the worker filled in (a sandbox re-import would see an empty one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bandmaster.engine.workflow import Workflow
from bandmaster.errors import UsageError


@dataclass(frozen=True, slots=True)
class Hosted:
    """The workflows served on one task queue and how their operations run."""

    workflows: dict[str, Workflow[..., Any]] = field(default_factory=dict)
    local_activities: bool = False  # every step a local activity, not only @bm.step(local=True)
    default_timeout: float = 300.0  # start-to-close of activities whose step has no timeout
    heartbeat: float = 10.0  # a worker silent this long is dead: its activities are retried


_hosted: dict[str, Hosted] = {}


def checked(workflows: Iterable[Workflow[..., Any]]) -> dict[str, Workflow[..., Any]]:
    """``workflows`` by name, or a ``UsageError`` saying why one cannot be hosted."""
    table: dict[str, Workflow[..., Any]] = {}
    for wf in workflows:
        if not isinstance(wf, Workflow):
            raise UsageError(f"{wf!r} is not a workflow; decorate it with @bm.workflow")
        if _is_graph(wf):
            raise UsageError(
                f"workflow {wf.name!r} is a declarative graph; graphs do not run on the Temporal backend yet "
                "(their steps are built when the graph is compiled, so activity workers cannot import them "
                "by name): run it on bm.Engine"
            )
        other = table.get(wf.name)
        if other is not None and other is not wf:
            raise UsageError(f"two workflows are named {wf.name!r}; give one @bm.workflow(name=...)")
        table[wf.name] = wf
    return table


def host(task_queue: str, workflows: Iterable[Workflow[..., Any]], **options: Any) -> Hosted:
    """Register ``workflows`` for ``task_queue`` in this process (one worker per queue)."""
    hosted = _hosted[task_queue] = Hosted(checked(workflows), **options)
    return hosted


def _is_graph(wf: Workflow[..., Any]) -> bool:
    from bandmaster.graph.compile import GraphWorkflow  # only here: graphs pull in routing

    return isinstance(wf, GraphWorkflow)


def hosted(task_queue: str) -> Hosted | None:
    return _hosted.get(task_queue)
