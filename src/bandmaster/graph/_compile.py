"""Compiling a graph onto the durable runtime: a ``bm.Workflow`` whose function walks the graph.

The walk keeps a state dict (the input under the graph's input key, then each node's result
under its output key) and runs every node as journaled operations of the run:

    ai          ``bm.call_model``        (kind ``model``, named after the model or alias)
    step        a ``bm.Step`` per node   (kind ``step``, named after the node)
    router      ``bm.Router.decide``     (kind ``route``, named after the node)
    parallel    its branches' operations, started in branch order by ``asyncio.gather``
    map_reduce  ``map_reduce``'s model calls, numbered in document order
    human       ``bm.wait_for``          (kind ``wait``, named after the signal)

Which node runs next depends only on journaled results (and on the graph), so after a crash the
replay walks the same path, gets every finished node's result back from the journal and goes on
live from the first unfinished one: recovery, policies and tracing are those of any workflow.
Node results enter the state as JSON values, the same live and on replay.
"""

from __future__ import annotations

import asyncio
import copy
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bandmaster.calls import call_model, default_registry
from bandmaster.calls.hub import hub_for
from bandmaster.engine import ANY, Workflow, journaling, wait_for
from bandmaster.engine import Step as JournaledStep
from bandmaster.errors import UsageError
from bandmaster.graph._errors import GraphError
from bandmaster.graph._spec import AIStep, AnyNode, End, Human, MapReduce, Parallel, Router, Step
from bandmaster.graph._template import render, render_partial
from bandmaster.graph._validate import MAP_NAMES, REDUCE_NAMES, check_models
from bandmaster.guard import Guard
from bandmaster.models import ModelResponse, Registry
from bandmaster.routing import Expression
from bandmaster.routing import Router as RuleRouter

if TYPE_CHECKING:
    from bandmaster.graph._graph import Graph

State = dict[str, Any]


class GraphWorkflow(Workflow[[Any], Any]):
    """The workflow a graph compiles to; ``graph`` is the graph it runs."""

    def __init__(
        self,
        fn: Callable[[Any], Awaitable[Any]],
        *,
        name: str,
        version: str | None,
        graph: Graph,
        runner: Runner | None = None,
    ) -> None:
        super().__init__(fn, name=name, version=version)
        self.graph = graph
        self.runner = runner  # its compile-time steps and guards, which a worker process hosts

    def __repr__(self) -> str:
        return f"<bm.workflow {self.name} (graph {self.graph.name!r})>"


def compile_graph(
    graph: Graph,
    *,
    name: str | None = None,
    version: str | None = None,
    registry: Registry | None = None,
    input_type: Any = Any,
) -> GraphWorkflow:
    graph.validate(registry=registry)
    runner = Runner(graph, registry)

    async def run_graph(input: Any) -> Any:
        return await runner.run(input)

    run_graph.__annotations__ = {"input": input_type, "return": Any}
    run_graph.__name__ = run_graph.__qualname__ = name or graph.name
    run_graph.__doc__ = graph.description or f"The declarative graph {graph.name!r} ({graph.source})."
    return GraphWorkflow(run_graph, name=name or graph.name, version=version, graph=graph, runner=runner)


def ai_result(response: ModelResponse) -> dict[str, Any]:
    """What an ai node puts in the state."""
    return {
        "output": ANY.to_jsonable(response.output),
        "text": response.text,
        "confidence": response.confidence,
        "model": response.model,
        "cost": response.cost,
    }


class Runner:
    """Walks one graph; built once per compiled workflow, shared by all its runs."""

    def __init__(self, graph: Graph, registry: Registry | None) -> None:
        self.graph = graph
        self.registry = registry
        self.checked: weakref.WeakSet[Registry] = weakref.WeakSet()
        self.routers: dict[str, RuleRouter] = {}
        self.steps: dict[str, JournaledStep[..., Any]] = {}
        self.inputs: dict[str, dict[str, Expression]] = {}
        self.guards: dict[str, list[Guard]] = {}  # built once: a JSON Schema compiles its validator
        for node in graph.nodes.values():
            if isinstance(node, AIStep) and node.guard is not None:
                self.guards[node.id] = node.guards(graph.resolve_step)
            if isinstance(node, Router):
                router = RuleRouter(name=node.id, default=node.default, functions=graph.functions)
                for route in node.routes:
                    router.add_route(route.when, route.to, name=route.name)
                self.routers[node.id] = router
            elif isinstance(node, Step):
                self.steps[node.id] = self._step(node)
                self.inputs[node.id] = {
                    param: Expression(source, rule=f"{node.id}.inputs.{param}", functions=graph.functions)
                    for param, source in (node.inputs or {}).items()
                }

    def _step(self, node: Step) -> JournaledStep[..., Any]:
        fn = self.graph.resolve_step(node.call)
        timeout, retry = node.timeout, node.retry.policy() if node.retry is not None else None
        if isinstance(fn, JournaledStep):  # a @bm.step: its policy, unless the node overrides it
            timeout = timeout if timeout is not None else fn.timeout
            retry = retry or fn.retry
            fn = fn.fn
        return JournaledStep(fn, name=node.id, timeout=timeout, retry=retry)

    # --- the walk ---------------------------------------------------------------------------

    async def run(self, input: Any) -> Any:
        graph = self.graph
        self.check_registry()
        state: State = {graph.input_key: input, "errors": {}}
        current = graph.start
        for _ in range(graph.max_steps):
            node = graph.nodes.get(current)
            if node is None:
                raise GraphError(
                    [
                        graph.problem(
                            None,
                            f"the journal routes this run to {current!r}, which is not a node "
                            f"of this graph any more; finish old runs before changing a graph, "
                            f"or deploy the change under a new workflow version",
                        )
                    ],
                    graph=graph.name,
                )
            if isinstance(node, End):
                return self.result(node, state)
            try:
                if isinstance(node, Router):
                    current = self.routers[node.id].decide(state).route
                    continue
                produced = await self.execute(node, state)
            except UsageError:
                raise  # a mistake in the graph or its code: fail the run, do not hide it
            except Exception as exc:
                if node.on_error is None:
                    raise
                state["errors"] = {
                    **state["errors"],
                    node.id: {"type": type(exc).__name__, "message": str(exc)},
                }
                current = node.on_error
                continue
            state.update(produced)
            if node.next is None:
                return self.result(None, state)
            current = node.next
        raise GraphError(
            [
                graph.problem(
                    current,
                    f"the run executed {graph.max_steps} nodes (max_steps) without reaching "
                    f"an end; a loop in the graph does not exit for this input",
                )
            ],
            graph=graph.name,
        )

    async def execute(self, node: AnyNode, state: State) -> State:
        """Run one node; return the state keys it writes. Every journaled operation a node
        makes is *called* before this coroutine first yields, so parallel branches number
        their operations in branch order."""
        if isinstance(node, AIStep):
            response = await call_model(
                node.model,
                render(node.prompt, state),
                key=render(node.key_by, state) if node.key_by else None,
                registry=self.registry,
                system=render(node.system, state) if node.system else None,
                temperature=node.temperature,
                max_tokens=node.max_tokens,
                json_schema=node.json_schema,
                timeout=node.timeout,
                retry=node.retry.policy() if node.retry is not None else None,
                fallback=list(node.fallback) if node.fallback is not None else None,
                breaker=node.breaker.policy() if node.breaker is not None else None,
                cache_ttl=node.cache_ttl,
                guard=self.guards.get(node.id),
            )
            return {self.key(node): ai_result(response)}
        if isinstance(node, Step):
            inputs = self.inputs[node.id]
            if inputs:
                value = await self.steps[node.id](**{p: e.evaluate(state) for p, e in inputs.items()})
            else:
                value = await self.steps[node.id](copy.deepcopy(state))
            return {self.key(node): ANY.to_jsonable(value)}
        if isinstance(node, Human):
            if node.has_default:
                value = await wait_for(node.signal_name, timeout=node.timeout, default=node.default)
            else:
                value = await wait_for(node.signal_name, timeout=node.timeout)
            return {self.key(node): ANY.to_jsonable(value)}
        if isinstance(node, Parallel):
            return await self.parallel(node, state)
        if isinstance(node, MapReduce):
            return {self.key(node): await self.map_reduce(node, state)}
        raise GraphError([self.graph.problem(node.id, f"cannot execute a {node.kind} node here")])

    async def parallel(self, node: Parallel, state: State) -> State:
        branches = [self.graph.nodes[b] for b in node.branches]
        outcomes = await asyncio.gather(*(self.execute(b, state) for b in branches), return_exceptions=True)
        for outcome in outcomes:  # cancellation, suspension, a lost lease: not a branch failure
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome
        merged: State = {}
        for branch, outcome in zip(branches, outcomes, strict=True):
            if isinstance(outcome, Exception):
                outcome.add_note(f"in branch {branch.id!r} of parallel node {node.id!r}")
                raise outcome
            assert isinstance(outcome, dict)
            merged.update(outcome)
        return merged

    async def map_reduce(self, node: MapReduce, state: State) -> Any:
        from bandmaster.graph._mapreduce import map_reduce

        options: dict[str, Any] = {
            "system": render(node.system, state) if node.system else None,
            "temperature": node.temperature,
            "max_tokens": node.max_tokens,
            "timeout": node.timeout,
            "retry": node.retry.policy() if node.retry is not None else None,
            "fallback": list(node.fallback) if node.fallback is not None else None,
            "breaker": node.breaker.policy() if node.breaker is not None else None,
            "cache_ttl": node.cache_ttl,
        }
        result = await map_reduce(
            render(node.document, state),
            map_model=node.map_model,
            reduce_model=node.reduce_model,
            map_prompt=render_partial(node.map_prompt, state, MAP_NAMES),
            reduce_prompt=render_partial(node.reduce_prompt, state, REDUCE_NAMES),
            collapse_prompt=(
                render_partial(node.collapse_prompt, state, REDUCE_NAMES) if node.collapse_prompt else None
            ),
            context_limit=node.context_limit,
            reduce_context_limit=node.reduce_context_limit,
            overlap=node.overlap,
            concurrency=node.concurrency,
            key=render(node.key_by, state) if node.key_by else None,
            registry=self.registry,
            **{k: v for k, v in options.items() if v is not None},
        )
        return ANY.to_jsonable(result)

    def key(self, node: AnyNode) -> str:
        key = node.key
        assert key is not None
        return key

    def result(self, end: End | None, state: State) -> Any:
        selection = end.output if end is not None and end.output is not None else self.graph.output
        if selection is None:
            return dict(state)
        if isinstance(selection, str):
            return state[selection]
        return {key: state[key] for key in selection}

    # --- models ---------------------------------------------------------------------------

    def check_registry(self) -> None:
        """Without a registry of its own, the graph's models are checked against the one that
        will serve them (the engine's) when a run starts: an unknown model fails the run at
        once, naming file, line and node, instead of half-way through."""
        if self.registry is not None:
            return
        ctx = journaling()
        if ctx is None:
            return
        registry = ctx.registry if isinstance(ctx.registry, Registry) else default_registry()
        if registry in self.checked:
            return
        problems = check_models(self.graph, registry)
        if problems:
            hub_for(registry, ctx.store).refresh(force=True)  # aliases created at run time
            problems = check_models(self.graph, registry)
        if problems:
            raise GraphError(problems, graph=self.graph.name)
        self.checked.add(registry)
