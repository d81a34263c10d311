"""A graph as a Mermaid flowchart (``flowchart TD``): one shape per node kind, router edges
labelled with their conditions, fallback (``on_error``) edges dotted, parallel branches drawn
as a fork from the parallel node and a join into its next node.

    ai (rounded)  step [box]  router {rhombus}  parallel {{hexagon}}  map_reduce [/parallelogram/]
    human [/trapezoid\\]  end ([stadium])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bandmaster.graph._spec import AIStep, End, Human, MapReduce, Parallel, Router, Step

if TYPE_CHECKING:
    from bandmaster.graph._graph import Graph
    from bandmaster.graph._spec import AnyNode

SHAPES = {
    "ai": ('("', '")'),
    "step": ('["', '"]'),
    "router": ('{"', '"}'),
    "parallel": ('{{"', '"}}'),
    "map_reduce": ('[/"', '"/]'),
    "human": ('[/"', '"\\]'),
    "end": ('(["', '"])'),
}
STYLES = {
    "ai": "fill:#e0f2fe,stroke:#0369a1",
    "step": "fill:#f1f5f9,stroke:#475569",
    "router": "fill:#fef9c3,stroke:#a16207",
    "parallel": "fill:#ede9fe,stroke:#6d28d9",
    "map_reduce": "fill:#dcfce7,stroke:#15803d",
    "human": "fill:#ffedd5,stroke:#c2410c",
    "end": "fill:#f5f5f5,stroke:#404040",
}
# Words Mermaid's flowchart grammar reserves: a node id equal to one breaks the chart.
RESERVED = frozenset(
    {"end", "graph", "subgraph", "flowchart", "style", "class", "classdef", "click", "linkstyle", "default"}
    | {"direction", "call", "href", "callback", "interpolate"}
)
START, END = "__start__", "__end__"


def text(value: str) -> str:
    """Text for inside a quoted Mermaid label (entity codes for what the grammar reads)."""
    return (
        value.replace("&", "#amp;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
        .replace("|", "#124;")
        .replace("\n", " ")
    )


class _Ids:
    def __init__(self, names: list[str]) -> None:
        self.ids: dict[str, str] = {}
        taken = {START, END}
        for name in names:
            candidate = f"{name}_" if name.lower() in RESERVED else name
            while candidate in taken:
                candidate += "_"
            taken.add(candidate)
            self.ids[name] = candidate

    def __call__(self, name: str) -> str:
        return self.ids.get(name, name)


def label(node: AnyNode) -> str:
    head = text(node.title or node.id)
    if isinstance(node, AIStep):
        detail = f"ai: {node.model}"
        if node.fallback:
            detail += f" (fallback {', '.join(node.fallback)})"
    elif isinstance(node, Step):
        detail = f"step: {node.call}"
    elif isinstance(node, Router):
        detail = "router"
    elif isinstance(node, Parallel):
        detail = "parallel"
    elif isinstance(node, MapReduce):
        reduce = node.reduce_model or node.map_model
        detail = f"map_reduce: {node.map_model} / {reduce}"
    elif isinstance(node, Human):
        detail = f"human: signal {node.signal_name}"
        if node.timeout is not None:
            detail += f", {node.timeout:g} s"
    else:
        detail = "end"
    if isinstance(node, End) and node.title is None:
        return head
    return f"{head}<br/>{text(detail)}"


def to_mermaid(graph: Graph) -> str:
    nodes = graph.nodes
    ids = _Ids(list(nodes))
    lines = ["flowchart TD"]
    lines.append(f'    {START}(("{text(graph.input_key)}"))')
    for node in nodes.values():
        left, right = SHAPES[node.kind]
        lines.append(f"    {ids(node.id)}{left}{label(node)}{right}")
    edges: list[str] = [f"    {START} --> {ids(graph.start)}"]
    branch_of = {b: n.id for n in nodes.values() if isinstance(n, Parallel) for b in n.branches}
    ends_implicitly = False
    for node in nodes.values():
        source = ids(node.id)
        if isinstance(node, Router):
            for route in node.routes:
                rule = f"{route.name}: {route.when}" if route.name else route.when
                edges.append(f'    {source} -->|"{text(rule)}"| {ids(route.to)}')
            if node.default is not None:
                edges.append(f'    {source} -->|"default"| {ids(node.default)}')
        if isinstance(node, Parallel):
            for branch in node.branches:
                edges.append(f"    {source} --> {ids(branch)}")
                join = ids(node.next) if node.next is not None else END
                ends_implicitly |= node.next is None
                edges.append(f"    {ids(branch)} --> {join}")
        elif node.next is not None:
            edges.append(f"    {source} --> {ids(node.next)}")
        if node.on_error is not None:
            edges.append(f'    {source} -.->|"on_error"| {ids(node.on_error)}')
        terminal = node.next is None and not isinstance(node, End | Router | Parallel)
        if terminal and node.id not in branch_of:
            ends_implicitly = True
            edges.append(f"    {source} --> {END}")
    if ends_implicitly:
        lines.append(f'    {END}(("end"))')
    lines.extend(edges)
    for kind, style in STYLES.items():
        members = [ids(n.id) for n in nodes.values() if n.kind == kind]
        if members:
            lines.append(f"    classDef bm_{kind} {style}")
            lines.append(f"    class {','.join(members)} bm_{kind}")
    return "\n".join(lines) + "\n"
