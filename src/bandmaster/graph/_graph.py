"""``Graph``: a declarative workflow, built in Python or loaded from YAML.

    name: support_pipeline
    input: ticket               # the state key that holds the workflow input
    start: triage               # default: the first node
    nodes:
      triage:   {kind: parallel, branches: [intent, phi], next: route}
      intent:   {kind: ai, model: intent-classifier, prompt: "Classify: {ticket.text}"}
      ...

``graph.validate(registry=...)`` checks it, ``graph.to_mermaid()`` draws it and
``graph.as_workflow()`` compiles it onto the durable runtime.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from bandmaster.graph._errors import GraphError, Problem
from bandmaster.graph._loader import Lines, parse_yaml, read_graph_file
from bandmaster.graph._spec import (
    KINDS,
    NODE_ID,
    AnyNode,
    Node,
)

if TYPE_CHECKING:
    from bandmaster.graph._compile import GraphWorkflow
    from bandmaster.models import Registry

_NODE: TypeAdapter[AnyNode] = TypeAdapter(Node)


class _Header(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str | None = None
    input: str = Field(default="input", pattern=NODE_ID)
    start: str | None = None
    output: str | list[str] | None = None
    max_steps: int = Field(default=1000, gt=0)
    nodes: dict[str, Any]


class Graph:
    """A graph of nodes. ``steps`` registers Python callables for ``step`` nodes by name;
    ``functions`` adds functions that conditions may call. ``max_steps`` bounds the node
    executions of one run (a loop that never exits fails instead of running forever)."""

    def __init__(
        self,
        name: str,
        nodes: Iterable[AnyNode],
        *,
        start: str | None = None,
        input: str = "input",
        output: str | list[str] | None = None,
        description: str | None = None,
        max_steps: int = 1000,
        steps: Mapping[str, Callable[..., Any]] | None = None,
        functions: Mapping[str, Callable[..., Any]] | None = None,
        source: str | None = None,
        lines: Lines | None = None,
    ) -> None:
        self.name = name
        self.source = source or f"<graph {name}>"
        self.lines = lines or Lines()
        self.description = description
        self.input_key = input
        self.output = output
        self.max_steps = max_steps
        self.steps: dict[str, Callable[..., Any]] = dict(steps or {})
        self.functions: dict[str, Callable[..., Any]] = dict(functions or {})
        self.nodes: dict[str, AnyNode] = {}
        problems = []
        for node in nodes:
            if not isinstance(node, AnyNode):
                problems.append(Problem(self.source, None, None, f"{node!r} is not a graph node"))
            elif node.id in self.nodes:
                problems.append(self.problem(node.id, f"two nodes have the id {node.id!r}"))
            else:
                self.nodes[node.id] = node
        if not self.nodes and not problems:
            problems.append(Problem(self.source, self.lines.of(("nodes",)), None, "the graph has no nodes"))
        if problems:
            raise GraphError(problems, graph=name)
        self.start = start if start is not None else next(iter(self.nodes))

    # --- loading --------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        steps: Mapping[str, Callable[..., Any]] | None = None,
        functions: Mapping[str, Callable[..., Any]] | None = None,
    ) -> Graph:
        """Read a graph YAML file (not yet validated: call ``validate`` or ``as_workflow``)."""
        given = str(path)  # named as the user wrote it: Path() would fold "a//b" into "a/b"
        path = Path(path)
        if not path.is_file():
            raise GraphError([Problem(given, None, None, "no such file")])
        return cls.from_yaml(read_graph_file(path), source=given, steps=steps, functions=functions)

    @classmethod
    def from_yaml(
        cls,
        text: str,
        *,
        source: str = "<yaml>",
        steps: Mapping[str, Callable[..., Any]] | None = None,
        functions: Mapping[str, Callable[..., Any]] | None = None,
    ) -> Graph:
        data, lines = parse_yaml(text, source=source)
        return cls.from_dict(data, source=source, lines=lines, steps=steps, functions=functions)

    @classmethod
    def from_dict(
        cls,
        data: Any,
        *,
        source: str = "<dict>",
        lines: Lines | None = None,
        steps: Mapping[str, Callable[..., Any]] | None = None,
        functions: Mapping[str, Callable[..., Any]] | None = None,
    ) -> Graph:
        lines = lines or Lines()
        if not isinstance(data, Mapping):
            raise GraphError(
                [Problem(source, lines.of(()), None, "expected a mapping with name: and nodes:")]
            )
        problems: list[Problem] = []
        try:
            header = _Header.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                path = tuple(error["loc"])
                problems.append(Problem(source, lines.of(path), None, _message(path, error)))
            raise GraphError(problems, graph=_name(data)) from None
        nodes: list[AnyNode] = []
        for node_id, body in header.nodes.items():
            where = ("nodes", node_id)
            if not isinstance(body, Mapping):
                problems.append(
                    Problem(source, lines.of(where), str(node_id), "a node is a mapping with kind: ...")
                )
                continue
            if "id" in body:
                problems.append(
                    Problem(
                        source, lines.of((*where, "id")), str(node_id), "the node's id is its key; remove id:"
                    )
                )
                continue
            if "kind" not in body:
                problems.append(
                    Problem(
                        source, lines.of(where), str(node_id), f"missing kind: (one of {', '.join(KINDS)})"
                    )
                )
                continue
            try:
                nodes.append(_NODE.validate_python({**body, "id": node_id}))
            except ValidationError as exc:
                for error in exc.errors():
                    loc = tuple(error["loc"])
                    if loc and loc[0] in KINDS:  # the discriminator's tag
                        loc = loc[1:]
                    path = (*where, *loc) if loc != ("id",) else where
                    if error["type"] == "union_tag_invalid":
                        path = (*where, "kind")
                    problems.append(Problem(source, lines.of(path), str(node_id), _message(loc, error)))
        if problems:
            raise GraphError(problems, graph=header.name)
        graph = cls(
            header.name,
            nodes,
            start=header.start,
            input=header.input,
            output=header.output,
            description=header.description,
            max_steps=header.max_steps,
            steps=steps,
            functions=functions,
            source=source,
            lines=lines,
        )
        return graph

    # --- locations ------------------------------------------------------------------------

    def line(self, node: str | None, *path: str | int) -> int | None:
        if node is None:
            return self.lines.of(tuple(path))
        return self.lines.of(("nodes", node, *path))

    def problem(self, node: str | None, message: str, *path: str | int) -> Problem:
        """A problem located at ``node`` (and ``path`` inside it) in this graph's file."""
        return Problem(self.source, self.line(node, *path), node, message)

    def resolve_step(self, call: str) -> Callable[..., Any]:
        """The callable of a ``step`` node: a name registered in ``steps``, else ``module:attr``
        imported from ``sys.path`` or, for a graph file, from a module file next to it."""
        fn = self.steps.get(call)
        if fn is None:
            module_name, sep, attribute = call.partition(":")
            if not sep or not module_name or not attribute:
                registered = ", ".join(sorted(self.steps)) or "none"
                raise LookupError(
                    f"{call!r} is not a registered step (registered: {registered}) nor module:attr"
                )
            module = _import(module_name, Path(self.source).parent if Path(self.source).is_file() else None)
            fn = getattr(module, attribute, None)
            if fn is None:
                raise LookupError(f"module {module_name!r} has no attribute {attribute!r}")
        if not callable(fn):
            raise LookupError(f"{call!r} is {type(fn).__name__}, not a callable")
        return fn

    # --- checking, drawing, compiling -----------------------------------------------------

    def problems(self, *, registry: Registry | None = None) -> list[Problem]:
        """Everything wrong with the graph (empty when it is valid)."""
        from bandmaster.graph._validate import check

        return check(self, registry=registry)

    def validate(self, *, registry: Registry | None = None) -> Graph:
        """Raise ``GraphError`` naming file, line and node of every problem; else return self.
        With ``registry``, model names are checked against it too."""
        problems = self.problems(registry=registry)
        if problems:
            raise GraphError(problems, graph=self.name)
        return self

    def to_mermaid(self) -> str:
        """A Mermaid ``flowchart TD`` of the graph."""
        from bandmaster.graph._mermaid import to_mermaid

        return to_mermaid(self)

    def as_workflow(
        self,
        *,
        name: str | None = None,
        version: str | None = None,
        registry: Registry | None = None,
        input_type: Any = Any,
    ) -> GraphWorkflow:
        """Validate and compile onto the durable runtime: a ``bm.Workflow`` (named after the
        graph by default) taking one input and returning the graph's result. ``registry``
        serves its model calls (default: the engine's registry)."""
        from bandmaster.graph._compile import compile_graph

        return compile_graph(self, name=name, version=version, registry=registry, input_type=input_type)

    compile = as_workflow

    def __repr__(self) -> str:
        return f"<bandmaster.graph.Graph {self.name} ({len(self.nodes)} nodes)>"


def _import(name: str, folder: Path | None) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        candidate = folder / f"{name.replace('.', '/')}.py" if folder is not None else None
        if candidate is None or exc.name != name.partition(".")[0] or not candidate.is_file():
            raise LookupError(f"cannot import module {name!r}: {exc}") from None
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, candidate)
        if spec is None or spec.loader is None:
            raise LookupError(f"cannot import {candidate}") from None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[name]
            raise LookupError(f"importing {candidate} failed: {type(error).__name__}: {error}") from error
        return module
    except Exception as exc:
        raise LookupError(f"importing module {name!r} failed: {type(exc).__name__}: {exc}") from exc


def _message(loc: tuple[Any, ...], error: Any) -> str:
    where = ".".join(str(part) for part in loc)
    text = str(error["msg"])
    if error["type"] == "extra_forbidden":
        return f"unknown field {where!r}"
    if error["type"] == "union_tag_invalid":
        return f"unknown kind {error['input'].get('kind')!r} (kinds: {', '.join(KINDS)})"
    return f"{where}: {text}" if where else text


def _name(data: Mapping[str, Any]) -> str | None:
    name = data.get("name")
    return name if isinstance(name, str) else None
