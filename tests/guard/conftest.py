"""Fixtures for the guard tests: the scripted provider server process (shared with the model
tests) and a registry of models served by it."""

from __future__ import annotations

import pytest
from guarded_models import BACKUP, CLAUDE, PRIMARY

import bandmaster as bm
from models.conftest import scripted_process, server  # noqa: F401  (fixtures, used by name)
from models.helpers import ScriptedServer


@pytest.fixture
def registry(server: ScriptedServer) -> bm.Registry:  # noqa: F811
    """OpenAI-compatible ``primary`` and ``backup`` and an Anthropic ``claude``, all on the
    scripted server, with no retries (each request is one attempt the test scripts)."""
    price = {"input": 1.0, "output": 2.0}  # made-up model ids: no catalogue price
    return bm.Registry.from_dict(
        {
            "models": {
                "primary": server.openai_entry(PRIMARY, price=price),
                "backup": server.openai_entry(BACKUP, price=price),
                "claude": server.anthropic_entry(CLAUDE, price=price),
            },
            "aliases": {"extractor": {"versions": {"production": "primary"}}},
        }
    )
