"""Options several commands share, so command modules need not import the app that registers
them."""

from __future__ import annotations

from typing import Annotated

import typer

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
