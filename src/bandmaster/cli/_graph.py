"""``bandmaster graph``: check a declarative graph and draw it as Mermaid.

    bandmaster graph examples/graphs/support_pipeline.yaml                 # Mermaid on stdout
    bandmaster graph examples/graphs/pipelines.py:support_pipeline         # a Graph or graph workflow
    bandmaster graph FILE.yaml --validate --models models.yaml             # check only, models too

Exit codes: 0 valid, 2 the graph (or the command) is wrong; every problem is printed with its
file, line and node.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bandmaster.cli import _console as ui
from bandmaster.cli._loader import import_module
from bandmaster.cli._options import ModelsOption
from bandmaster.errors import BandmasterError, UsageError

if TYPE_CHECKING:
    from bandmaster.graph import Graph


def load_graph(target: str) -> Graph:
    """A graph file (``.yaml``/``.yml``), or ``MODULE:ATTR`` naming a ``Graph`` or a workflow
    made by ``Graph.as_workflow``."""
    from bandmaster.graph import Graph, GraphWorkflow  # loaded on use: the other commands stay fast

    if target.endswith((".yaml", ".yml")) or (Path(target).is_file() and not target.endswith(".py")):
        return Graph.load(target)
    module_spec, sep, attribute = target.rpartition(":")
    if not sep or not module_spec or not attribute:
        raise UsageError(f"expected a graph file (.yaml) or MODULE:ATTR, got {target!r}")
    value = getattr(import_module(module_spec), attribute, None)
    if isinstance(value, GraphWorkflow):
        return value.graph
    if isinstance(value, Graph):
        return value
    found = "nothing" if value is None else type(value).__name__
    raise UsageError(f"{target}: expected a bandmaster.graph.Graph or a graph workflow, found {found}")


def graph_command(
    target: Annotated[
        str, typer.Argument(help="Graph YAML file, or MODULE:ATTR naming a Graph or a graph workflow")
    ],
    validate: Annotated[
        bool, typer.Option("--validate", help="Only check the graph; print no Mermaid")
    ] = False,
    models: ModelsOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the Mermaid to a file")] = None,
) -> None:
    """Validate a declarative graph and print it as a Mermaid flowchart."""
    from bandmaster.graph import GraphError
    from bandmaster.models import Registry

    try:
        graph = load_graph(target)
        registry = Registry.load(models) if models else None
        graph.validate(registry=registry)
    except GraphError as exc:
        for problem in exc.problems:
            ui.line(("error:", "bold red"), " ", str(problem), err=True)
        count = len(exc.problems)
        ui.line(f"{count} problem{'s' if count != 1 else ''} in graph {exc.graph or target!r}", err=True)
        raise typer.Exit(2) from exc
    except BandmasterError as exc:
        raise ui.fail(str(exc)) from exc
    if validate:
        against = f" against {models}" if models else ""
        ui.line(f"graph {graph.name!r} is valid{against}: {len(graph.nodes)} nodes, start {graph.start!r}")
        return
    chart = graph.to_mermaid()
    if output is not None:
        output.write_text(chart)
        ui.line(f"wrote {output}", err=True)
    else:
        typer.echo(chart, nl=False)
