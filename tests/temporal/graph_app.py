"""A module that ``bandmaster worker --backend temporal`` serves: one compiled graph, with its
own registry. Every worker process that loads it hosts the graph's steps and registry."""

from __future__ import annotations

from temporal_graphs import registry, triage_graph

triage = triage_graph().as_workflow(registry=registry())
