"""Hands the embedded engine what it serves from the layers above it: ``engine.models`` (the
model hub of ``calls/``) and ``engine.stats()`` (``observe/``). The engine layer may not import
those (DESIGN.md, Layout), so they are registered here, at the top, where every import of a
``bandmaster`` module passes first. Imported lazily inside, so ``import bandmaster`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bandmaster.engine.backend import ModelDesk, provide

if TYPE_CHECKING:
    from bandmaster.engine.stats_report import Stats
    from bandmaster.store import SQLiteStore


def _model_desk(registry: Any, store: SQLiteStore) -> ModelDesk:
    from bandmaster.calls.hub import HubModelDesk

    return HubModelDesk(registry, store)


def _stats(path: Path, workflow: str | None, since: str | float | None) -> Stats:
    from bandmaster.observe.stats import compute

    return compute(path, workflow=workflow, since=since)


provide(model_desk=_model_desk, stats=_stats)
