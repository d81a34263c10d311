"""The ``bandmaster`` command line (typer + rich)."""

from bandmaster.cli.app import app, main

__all__ = ["app", "main"]
