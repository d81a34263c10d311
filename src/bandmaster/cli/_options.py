"""Options several commands share, so command modules need not import the app that registers
them."""

from __future__ import annotations

from typing import Annotated

import typer

from bandmaster.cli._console import fail
from bandmaster.engine import RunTerms
from bandmaster.errors import InvalidInput

ModelsOption = Annotated[
    str | None,
    typer.Option(
        "--models", envvar="BANDMASTER_MODELS", help="Model registry file (models.yaml) for bm.call_model"
    ),
]
RUN_ID_HELP = "Run id, or a unique start of one"
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Journal path or sqlite:/// URL [default: $BANDMASTER_DB or ./bandmaster.db]"),
]
PriorityOption = Annotated[
    int,
    typer.Option(
        "--priority", help="Higher is claimed and served first under saturation (aging lifts waiting runs)"
    ),
]
TenantOption = Annotated[
    str | None, typer.Option("--tenant", help="Whose run it is: fair share, tenant budgets, per-tenant stats")
]
BudgetOption = Annotated[
    float | None, typer.Option("--budget-usd", help="The most this run may spend on model calls, in dollars")
]


def run_terms(priority: int, tenant: str | None, budget_usd: float | None) -> RunTerms:
    """The run terms of ``--priority``, ``--tenant``, ``--budget-usd``; a bad one exits 2,
    before anything is journaled."""
    try:
        return RunTerms(priority, tenant, budget_usd)
    except InvalidInput as exc:
        # RunTerms names the term first ("tenant 'a/b' is not a valid name: ..."): say its option.
        option = next(o for term, o in _TERM_OPTIONS if str(exc).startswith(term))
        raise fail(f"{option}: {exc}") from exc


_TERM_OPTIONS = (("priority", "--priority"), ("tenant", "--tenant"), ("budget_usd", "--budget-usd"))
