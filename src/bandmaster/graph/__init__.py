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

from typing import TYPE_CHECKING

from bandmaster._lazy import lazy_loader
from bandmaster.graph._compile import GraphWorkflow
from bandmaster.graph._errors import GraphError, Problem
from bandmaster.graph._graph import Graph
from bandmaster.graph._spec import AIStep, End, Human, MapReduce, Parallel, Route, Router, Step

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
    "check_models",
    "chunk_text",
    "map_reduce",
]

# Names other rooms use, loaded on first use.
_LAZY = {
    "check_models": "bandmaster.graph._validate",
    "chunk_text": "bandmaster.graph._chunking",
    "map_reduce": "bandmaster.graph._mapreduce",
}

if TYPE_CHECKING:
    from bandmaster.graph._chunking import chunk_text
    from bandmaster.graph._mapreduce import map_reduce
    from bandmaster.graph._validate import check_models
else:
    __getattr__, __dir__ = lazy_loader(__name__, _LAZY)
