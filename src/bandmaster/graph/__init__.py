"""Declarative graphs: AI workflows written as nodes and edges (in Python or YAML), validated
before they run, drawn as Mermaid, and compiled onto the durable runtime.

    from bandmaster.graph import Graph

    graph = Graph.load("support_pipeline.yaml")
    support = graph.as_workflow(registry=bm.Registry.load("models.yaml"))   # a bm.Workflow
    print(graph.to_mermaid())

Each node runs as journaled operations of the run (``bm.call_model``, a ``bm.Step``,
``bm.Router.decide``, ``bm.wait_for``), so crash recovery, retries, fallbacks, breakers and
tracing behave exactly as for code-first workflows.
"""

from bandmaster.graph.compile import GraphWorkflow
from bandmaster.graph.errors import GraphError, Problem
from bandmaster.graph.graph import Graph
from bandmaster.graph.spec import AIStep, End, Human, MapReduce, Parallel, Route, Router, Step

__all__ = [
    "AIStep",
    "End",
    "Graph",
    "GraphError",
    "GraphWorkflow",
    "Human",
    "MapReduce",
    "Parallel",
    "Problem",
    "Route",
    "Router",
    "Step",
]
