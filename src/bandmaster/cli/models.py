"""``bandmaster models``: see and change alias versions and traffic weights at run time."""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated

import typer

from bandmaster.calls import bind_store
from bandmaster.cli import _console as ui
from bandmaster.errors import BandmasterError
from bandmaster.hub import ModelHub
from bandmaster.models.registry import Registry
from bandmaster.store.sqlite import SQLiteStore, resolve_db_path

models_app = typer.Typer(
    help="Model registry: aliases, versions, traffic weights, breakers.", no_args_is_help=True
)

ModelsOption = Annotated[
    str, typer.Option("--models", envvar="BANDMASTER_MODELS", help="Registry file (models.yaml)")
]
DbOption = Annotated[
    str | None, typer.Option("--db", help="Journal path [default: $BANDMASTER_DB or ./bandmaster.db]")
]


def _hub(models: str, db: str | None) -> ModelHub:
    try:
        registry = Registry.load(models)
        return bind_store(registry, SQLiteStore(resolve_db_path(db)))
    except BandmasterError as exc:
        raise ui.fail(str(exc)) from exc


def _pairs(text: str, what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        label, sep, value = item.partition("=")
        if not sep or not label or not value:
            raise ui.fail(f"{what}: expected label=value[,label=value], got {item!r}")
        pairs[label] = value
    return pairs


def _weight(label: str, text: str) -> float:
    weight = float(text)
    if not math.isfinite(weight):  # float() reads nan and inf, which no traffic share can be
        raise ValueError(f"{label}={text} is not a finite number; give a share from 0 to 1")
    return weight


@models_app.command("list")
def list_aliases(
    models: ModelsOption = "models.yaml",
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Aliases with their versions, weights, fallbacks and breaker states."""
    views = _hub(models, db).describe()
    if as_json:
        ui.print_json([dataclasses.asdict(v) for v in views])
        return
    table = ui.table("alias", "version", "model", "weight", "breaker", "fallback")
    for view in views:
        for label, model in view.versions.items():
            table.add_row(
                view.alias,
                label,
                model,
                f"{view.weights.get(label, 0):.2%}",
                view.breakers.get(model, "closed"),
                ", ".join(view.fallback),
            )
    ui.show(table)


@models_app.command("show")
def show_alias(
    alias: Annotated[str, typer.Argument()], models: ModelsOption = "models.yaml", db: DbOption = None
) -> None:
    """One alias: versions, weights, policy, breaker states and change history."""
    hub = _hub(models, db)
    hub.refresh(force=True)
    spec = hub.registry.alias(alias)
    if spec is None:
        raise ui.fail(f"no alias {alias!r} in {models}")
    ui.print_json(
        {
            "alias": alias,
            **spec.model_dump(mode="json"),
            "breakers": {m: hub.breaker(m).status for m in [*spec.versions.values(), *spec.policy.fallback]},
            "history": hub.history(alias),
        }
    )


@models_app.command("set")
def set_alias(
    alias: Annotated[str, typer.Argument()],
    versions: Annotated[str | None, typer.Option(help="label=model,... e.g. production=a,canary=b")] = None,
    weights: Annotated[str | None, typer.Option(help="label=weight,... summing to 1")] = None,
    by: Annotated[str | None, typer.Option(help="Who made the change (audit)")] = None,
    models: ModelsOption = "models.yaml",
    db: DbOption = None,
) -> None:
    """Change versions and/or weights; every worker on this journal adopts it within a second."""
    if versions is None and weights is None:
        raise ui.fail("give --versions and/or --weights")
    hub = _hub(models, db)
    try:
        parsed_weights = (
            {k: _weight(k, v) for k, v in _pairs(weights, "--weights").items()} if weights else None
        )
    except ValueError as exc:
        raise ui.fail(f"--weights: {exc}") from exc
    try:
        spec = hub.set_alias(
            alias,
            versions=_pairs(versions, "--versions") if versions else None,
            weights=parsed_weights,
            changed_by=by,
        )
    except BandmasterError as exc:
        raise ui.fail(str(exc)) from exc
    ui.line(
        f"{alias}: "
        + ", ".join(
            f"{label}={spec.versions[label]} ({weight:.0%})" for label, weight in spec.weights.items()
        )
    )
