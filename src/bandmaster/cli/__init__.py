"""The ``bandmaster`` command line (typer + rich)."""

from bandmaster.cli._app import app, main

__all__ = ["app", "main"]
