"""Checking a graph before it runs. Every check reports ``Problem``s naming file, line and node:

* edges name existing nodes; routers leave by routes, ends go nowhere; parallel branches are
  single ai or step nodes that belong to one parallel node and write distinct keys;
* conditions and ``inputs`` are valid safe expressions, prompts valid templates;
* ``step`` callables resolve, and (given a registry) models and fallbacks exist;
* every node is reachable from the start, and every loop has a way out to an end;
* every key a prompt, condition, input or output reads is written on *every* path to it (a
  data-flow pass: the keys available at a node are those available on all incoming edges).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bandmaster.graph._errors import Problem
from bandmaster.graph._spec import (
    NODE_ID,
    RESERVED_KEYS,
    AIStep,
    AnyNode,
    End,
    MapReduce,
    Parallel,
    Router,
    Step,
)
from bandmaster.graph._template import TemplateError, references
from bandmaster.guard import GuardSpec
from bandmaster.routing import Expression, ExpressionError

if TYPE_CHECKING:
    from bandmaster.graph._graph import Graph
    from bandmaster.models import Registry

BRANCH_KINDS = (AIStep, Step)
"""Parallel branches are single journaled operations: ``asyncio.gather`` then numbers them by
call order on every execution, so a replay finds each where the journal has it."""
MAP_NAMES = frozenset({"chunk", "index", "count"})
"""Names a map prompt may use besides the state: the chunk's text, its index and the total."""
REDUCE_NAMES = frozenset({"summaries", "level"})
"""Names a reduce prompt may use besides the state: the joined answers and the reduce round."""


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    kind: str  # next / on_error / route / default / branch
    target: str
    path: tuple[str | int, ...]  # where the edge is written inside the source node


def edges(node: AnyNode) -> Iterator[Edge]:
    if isinstance(node, Router):
        for index, route in enumerate(node.routes):
            yield Edge(node.id, "route", route.to, ("routes", index, "to"))
        if node.default is not None:
            yield Edge(node.id, "default", node.default, ("default",))
    if isinstance(node, Parallel):
        for index, branch in enumerate(node.branches):
            yield Edge(node.id, "branch", branch, ("branches", index))
    if node.next is not None:
        yield Edge(node.id, "next", node.next, ("next",))
    if node.on_error is not None:
        yield Edge(node.id, "on_error", node.on_error, ("on_error",))


@dataclass(frozen=True, slots=True)
class Reads:
    """The state keys one field of a node reads."""

    path: tuple[str | int, ...]
    names: frozenset[str]


class Checker:
    def __init__(self, graph: Graph, registry: Registry | None) -> None:
        self.graph = graph
        self.registry = registry
        self.problems: list[Problem] = []
        self.nodes = graph.nodes
        self.edges = [edge for node in self.nodes.values() for edge in edges(node)]
        self.valid = [edge for edge in self.edges if edge.target in self.nodes]
        # The parallel node each branch belongs to.
        self.parent: dict[str, str] = {}
        self.reads: dict[str, list[Reads]] = {}

    def report(self, node: str | None, message: str, *path: str | int) -> None:
        self.problems.append(self.graph.problem(node, message, *path))

    def run(self) -> list[Problem]:
        graph = self.graph
        if re.fullmatch(NODE_ID, graph.input_key) is None:
            self.report(None, f"input key {graph.input_key!r} is not an identifier", "input")
        elif graph.input_key in RESERVED_KEYS:
            self.report(None, f"input key {graph.input_key!r} is reserved for node errors", "input")
        if graph.start not in self.nodes:
            self.report(
                None, f"start {graph.start!r} is not a node (nodes: {', '.join(self.nodes)})", "start"
            )
        for edge in self.edges:
            if edge.target not in self.nodes:
                self.report(
                    edge.source,
                    f"{_edge_field(edge)} names unknown node {edge.target!r} "
                    f"(nodes: {', '.join(self.nodes)})",
                    *edge.path,
                )
        for node in self.nodes.values():
            self.check_kind(node)
            self.check_key(node)
            self.reads[node.id] = self.check_reads(node)
        self.check_branches()
        if self.registry is not None:
            self.check_models(self.registry)
        if graph.start in self.nodes:
            reached = self.check_reachable()
            self.check_exits(reached)
            self.check_data_flow(reached)
        return self.problems

    # --- one node at a time -----------------------------------------------------------------

    def check_kind(self, node: AnyNode) -> None:
        if isinstance(node, Router):
            if node.next is not None:
                self.report(node.id, "a router leaves by its routes and default, not next:", "next")
            if not node.routes and node.default is None:
                self.report(node.id, "a router needs routes: or a default:")
            seen: set[str] = set()
            for index, route in enumerate(node.routes):
                rule = route.name or route.when
                if rule in seen:
                    self.report(node.id, f"two routes are named {rule!r}; give one a name:", "routes", index)
                seen.add(rule)
        if isinstance(node, MapReduce) and node.overlap is not None and node.overlap >= node.context_limit:
            self.report(
                node.id,
                f"overlap {node.overlap} must be smaller than context_limit {node.context_limit}, or no "
                f"chunk has room for new text",
                "overlap",
            )
        if isinstance(node, End):
            for field in ("next", "on_error"):
                if getattr(node, field) is not None:
                    self.report(node.id, f"an end node has no {field}:", field)
        if isinstance(node, Step):
            try:
                self.graph.resolve_step(node.call)
            except LookupError as exc:
                self.report(node.id, f"unknown step: {exc}", "call")
        if isinstance(node, AIStep) and isinstance(node.guard, GuardSpec) and node.guard.classifier:
            try:
                self.graph.resolve_step(node.guard.classifier)
            except LookupError as exc:
                self.report(node.id, f"unknown guard classifier: {exc}", "guard", "classifier")

    def check_key(self, node: AnyNode) -> None:
        key = node.key
        if key is None:
            return
        if key == self.graph.input_key or key in RESERVED_KEYS:
            what = "the graph's input key" if key == self.graph.input_key else "reserved for node errors"
            self.report(node.id, f"output key {key!r} is {what}; choose another output_key:", "output_key")

    def check_reads(self, node: AnyNode) -> list[Reads]:
        reads: list[Reads] = []

        def template(
            text: str | None, *path: str | int, extra: frozenset[str] = frozenset(), required: str = ""
        ) -> None:
            if text is None:
                return
            where = ".".join(map(str, path))
            try:
                names = references(text)
            except TemplateError as exc:
                self.report(node.id, f"{where}: {exc}", *path)
                return
            if required and required not in names:
                self.report(node.id, f"{where} must contain {{{required}}}", *path)
            reads.append(Reads(path, frozenset(names - extra)))

        def expression(source: str, *path: str | int) -> None:
            where = ".".join(map(str, path))
            try:
                parsed = Expression(source, rule=f"{node.id}.{where}", functions=self.graph.functions)
            except ExpressionError as exc:
                column = f" at column {exc.column}" if exc.column else ""
                self.report(node.id, f"{where}: {exc.reason}{column} in {source!r}", *path)
                return
            reads.append(Reads(path, frozenset(parsed.names)))

        if isinstance(node, AIStep):
            template(node.prompt, "prompt")
            template(node.system, "system")
            template(node.key_by, "key_by")
        elif isinstance(node, Step):
            for param, source in (node.inputs or {}).items():
                expression(source, "inputs", param)
        elif isinstance(node, Router):
            for index, route in enumerate(node.routes):
                expression(route.when, "routes", index, "when")
        elif isinstance(node, MapReduce):
            template(node.document, "document")
            template(node.system, "system")
            template(node.key_by, "key_by")
            template(node.map_prompt, "map_prompt", extra=MAP_NAMES, required="chunk")
            template(node.reduce_prompt, "reduce_prompt", extra=REDUCE_NAMES, required="summaries")
            template(node.collapse_prompt, "collapse_prompt", extra=REDUCE_NAMES, required="summaries")
        elif isinstance(node, End) and node.output is not None:
            keys = [node.output] if isinstance(node.output, str) else node.output
            reads.append(Reads(("output",), frozenset(keys)))
        return reads

    def check_branches(self) -> None:
        targeted = {edge.target for edge in self.valid if edge.kind != "branch"}
        for node in self.nodes.values():
            if not isinstance(node, Parallel):
                continue
            writers: dict[str, str] = {}
            for index, branch_id in enumerate(node.branches):
                branch = self.nodes.get(branch_id)
                if branch is None:
                    continue
                owner = self.parent.setdefault(branch_id, node.id)
                if owner != node.id:
                    self.report(
                        node.id,
                        f"branch {branch_id!r} already belongs to parallel {owner!r}",
                        "branches",
                        index,
                    )
                    continue
                if not isinstance(branch, BRANCH_KINDS):
                    self.report(
                        node.id,
                        f"branch {branch_id!r} is a {branch.kind} node; branches are single ai or step "
                        f"nodes, one journaled call each (chain further work after the parallel node)",
                        "branches",
                        index,
                    )
                    continue
                for field in ("next", "on_error"):
                    if getattr(branch, field) is not None:
                        self.report(
                            branch_id,
                            f"a parallel branch (of {node.id!r}) has no {field}: the parallel node's "
                            f"next/on_error apply",
                            field,
                        )
                if branch_id in targeted:
                    self.report(
                        branch_id, f"a parallel branch (of {node.id!r}) cannot also be an edge target"
                    )
                key = branch.key
                if key is not None and key in writers:
                    self.report(
                        node.id,
                        f"branches {writers[key]!r} and {branch_id!r} both write {key!r}",
                        "branches",
                        index,
                    )
                elif key is not None:
                    writers[key] = branch_id

    def check_models(self, registry: Registry) -> None:
        def known(name: str) -> bool:
            return registry.knows(name) or registry.alias(name) is not None

        def check(node: str, name: str, fallback: list[str] | None, field: str) -> None:
            if not known(name):
                self.report(node, f"unknown model or alias {name!r} {_registry_names(registry)}", field)
            for index, other in enumerate(fallback or []):
                if not known(other):
                    self.report(
                        node,
                        f"unknown fallback model {other!r} {_registry_names(registry)}",
                        "fallback",
                        index,
                    )

        for node in self.nodes.values():
            if isinstance(node, AIStep):
                check(node.id, node.model, node.fallback, "model")
            elif isinstance(node, MapReduce):
                check(node.id, node.map_model, node.fallback, "map_model")
                if node.reduce_model is not None:
                    check(node.id, node.reduce_model, None, "reduce_model")

    # --- the graph as a whole ----------------------------------------------------------------

    def successors(self, node: str) -> list[Edge]:
        """Main-flow edges (branches run inside their parallel node, they are not successors)."""
        return [edge for edge in self.valid if edge.source == node and edge.kind != "branch"]

    def check_reachable(self) -> set[str]:
        reached = {self.graph.start}
        queue = deque([self.graph.start])
        while queue:
            current = queue.popleft()
            node = self.nodes[current]
            following = [edge.target for edge in self.successors(current)]
            if isinstance(node, Parallel):
                following += [b for b in node.branches if b in self.nodes]
            for target in following:
                if target not in reached:
                    reached.add(target)
                    queue.append(target)
        for node_id in self.nodes:
            if node_id in reached:
                continue
            parent = self.parent.get(node_id)
            if parent is not None and parent not in reached:
                continue  # its parallel node is reported
            self.report(node_id, f"unreachable: no edge leads here from the start node {self.graph.start!r}")
        return reached

    def exits(self, reached: set[str]) -> set[str]:
        return {
            node_id
            for node_id in reached
            if node_id not in self.parent
            and (isinstance(self.nodes[node_id], End) or not self.successors(node_id))
        }

    def check_exits(self, reached: set[str]) -> None:
        """Every reached node must be able to reach an end; the ones that cannot sit in (or
        lead into) a cycle without an exit. Report each such cycle once."""
        main = {n for n in reached if n not in self.parent}
        can_exit = set(self.exits(reached))
        predecessors: dict[str, set[str]] = {n: set() for n in main}
        for edge in self.valid:
            if edge.kind != "branch" and edge.source in main and edge.target in main:
                predecessors[edge.target].add(edge.source)
        queue = deque(can_exit)
        while queue:
            for pred in predecessors[queue.popleft()]:
                if pred not in can_exit:
                    can_exit.add(pred)
                    queue.append(pred)
        stuck = [n for n in self.nodes if n in main and n not in can_exit]
        reported: set[str] = set()
        for node_id in stuck:
            if node_id in reported:
                continue
            cycle = self.cycle_through(node_id, set(stuck))
            if cycle is None:
                continue
            reported.update(cycle)
            loop = " → ".join([*cycle, cycle[0]])
            self.report(
                cycle[0],
                f"cycle {loop} has no exit: no route out of it reaches an end node "
                f"(add a router route or an on_error edge that leaves the loop)",
            )

    def cycle_through(self, start: str, allowed: set[str]) -> list[str] | None:
        """The shortest cycle from ``start`` back to it inside ``allowed``, if there is one."""
        came_from: dict[str, str] = {}
        queue = deque([start])
        while queue:
            current = queue.popleft()
            for edge in self.successors(current):
                target = edge.target
                if target not in allowed:
                    continue
                if target == start:
                    path = [current]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return list(reversed(path))
                if target not in came_from:
                    came_from[target] = current
                    queue.append(target)
        return None

    def check_data_flow(self, reached: set[str]) -> None:
        base = frozenset({self.graph.input_key, *RESERVED_KEYS})
        available: dict[str, frozenset[str]] = {self.graph.start: base}
        incoming: dict[str, dict[str, frozenset[str]]] = {}
        queue = deque([self.graph.start])
        while queue:
            current = queue.popleft()
            keys = available[current]
            node = self.nodes[current]
            after = keys | self.produces(node)
            for edge in self.successors(current):
                flowing = keys if edge.kind == "on_error" else after
                incoming.setdefault(edge.target, {})[current] = flowing
                old = available.get(edge.target)
                new = flowing if old is None else old & flowing
                if edge.target == self.graph.start:
                    new &= base
                if new != old:
                    available[edge.target] = new
                    queue.append(edge.target)
            if isinstance(node, Parallel):
                for branch in node.branches:
                    if self.parent.get(branch) == node.id:
                        available[branch] = keys
                        incoming[branch] = {current: keys}
        producers: dict[str, list[str]] = {}
        for node in self.nodes.values():
            for key in self.produces(node):
                producers.setdefault(key, []).append(node.id)
        for node_id in self.nodes:
            if node_id not in available:
                continue
            keys = available[node_id]
            for read in self.reads.get(node_id, []):
                for name in sorted(read.names - keys):
                    self.report(node_id, self.missing(node_id, name, read, producers, incoming), *read.path)
        default_output = self.graph.output
        if default_output is None:
            return
        wanted = frozenset([default_output] if isinstance(default_output, str) else default_output)
        for node_id in self.exits(reached):
            node = self.nodes[node_id]
            if isinstance(node, End) and node.output is not None:
                continue
            at_end = available.get(node_id, frozenset()) | self.produces(node)
            for name in sorted(wanted - at_end):
                self.report(
                    node_id,
                    f"the graph's output reads {name!r}, which is not in the state when the run ends here",
                )

    def produces(self, node: AnyNode) -> frozenset[str]:
        if isinstance(node, Parallel):
            keys = set()
            for branch_id in node.branches:
                branch = self.nodes.get(branch_id)
                if branch is not None and branch.key is not None:
                    keys.add(branch.key)
            return frozenset(keys)
        return frozenset([node.key]) if node.key is not None else frozenset()

    def missing(
        self,
        node_id: str,
        name: str,
        read: Reads,
        producers: dict[str, list[str]],
        incoming: dict[str, dict[str, frozenset[str]]],
    ) -> str:
        field = ".".join(map(str, read.path))
        writers = producers.get(name, [])
        if not writers:
            return (
                f"{field} reads {name!r}, which no upstream node produces "
                f"(the input is {self.graph.input_key!r}; node outputs: "
                f"{', '.join(sorted(producers)) or 'none'})"
            )
        lacking = [pred for pred, keys in incoming.get(node_id, {}).items() if name not in keys]
        via = f" (missing when arriving from {lacking[0]!r})" if lacking else ""
        return (
            f"{field} reads {name!r}, which is not produced on every path to this node{via}; "
            f"it is written by {', '.join(repr(w) for w in writers)}"
        )


def _edge_field(edge: Edge) -> str:
    return ".".join(map(str, edge.path))


def _registry_names(registry: Registry) -> str:
    models = ", ".join(sorted(registry.names())) or "none"
    aliases = ", ".join(sorted(registry.config.aliases)) or "none"
    return f"in {registry.source} (models: {models}; aliases: {aliases})"


def check(graph: Graph, *, registry: Registry | None = None) -> list[Problem]:
    """Every problem of ``graph``, in file order (empty when it is valid)."""
    problems = Checker(graph, registry).run()
    return sorted(problems, key=lambda p: p.line if p.line is not None else float("inf"))


def check_models(graph: Graph, registry: Registry) -> list[Problem]:
    """Only the model names of ``graph``, against ``registry``."""
    checker = Checker(graph, registry)
    checker.check_models(registry)
    return checker.problems
