"""``bandmaster models``: see and change alias versions and traffic weights at run time, through
the backend's model desk (``BANDMASTER_BACKEND``; embedded: the journal ``--db``)."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import warnings
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from bandmaster.cli import _console as ui
from bandmaster.cli._backends import Where, opened
from bandmaster.engine.backend import ModelDesk
from bandmaster.errors import BandmasterError
from bandmaster.models import Registry, UnknownPriceWarning

T = TypeVar("T")

models_app = typer.Typer(
    help="Model registry: aliases, versions, traffic weights, breakers.", no_args_is_help=True
)

ModelsOption = Annotated[
    str, typer.Option("--models", envvar="BANDMASTER_MODELS", help="Registry file (models.yaml)")
]
DbOption = Annotated[
    str | None, typer.Option("--db", help="Journal path [default: $BANDMASTER_DB or ./bandmaster.db]")
]


def _with_desk(models: str, db: str | None, use: Callable[[ModelDesk], Awaitable[T]]) -> T:
    async def main() -> T:
        registry = load_registry(models)
        async with opened(Where.from_env(db), registry=registry, must_exist=False) as backend:
            return await use(backend.models)

    try:
        return asyncio.run(main())
    except BandmasterError as exc:
        raise ui.fail(str(exc)) from exc


def load_registry(path: str) -> Registry:
    """``models.yaml``, saying on stderr which billed models have no known price (their cost
    shows as unknown, and budgets refuse their calls)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnknownPriceWarning)
        registry = Registry.load(path)
    for warning in caught:
        if issubclass(warning.category, UnknownPriceWarning):
            ui.warn(str(warning.message))
        else:  # not ours to show: as if it was never caught
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return registry


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
    views = _with_desk(models, db, lambda desk: desk.describe())
    if as_json:
        ui.print_json([{k: v for k, v in dataclasses.asdict(s).items() if k != "policy"} for s in views])
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

    async def one(desk: ModelDesk) -> dict[str, object] | None:
        for state in await desk.describe():
            if state.alias == alias:
                return {
                    "alias": alias,
                    "versions": state.versions,
                    "weights": state.weights,
                    "policy": state.policy,
                    "breakers": state.breakers,
                    "history": await desk.history(alias),
                }
        return None

    shown = _with_desk(models, db, one)
    if shown is None:
        raise ui.fail(f"no alias {alias!r} in {models}")
    ui.print_json(shown)


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
    try:
        parsed_weights = (
            {k: _weight(k, v) for k, v in _pairs(weights, "--weights").items()} if weights else None
        )
    except ValueError as exc:
        raise ui.fail(f"--weights: {exc}") from exc
    parsed_versions = _pairs(versions, "--versions") if versions else None
    who = by or ""  # not said: the history records no one
    state = _with_desk(
        models, db, lambda desk: desk.switch(alias, versions=parsed_versions, weights=parsed_weights, by=who)
    )
    ui.line(
        f"{alias}: "
        + ", ".join(
            f"{label}={state.versions[label]} ({weight:.0%})" for label, weight in state.weights.items()
        )
    )
