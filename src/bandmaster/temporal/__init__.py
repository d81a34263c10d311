"""The Temporal backend: the same bandmaster workflows, scaled out on a Temporal cluster.

``bm.TemporalEngine`` is the client (and optionally an in-process worker);
``bandmaster worker --backend temporal MODULE`` runs worker processes. Needs the ``temporal``
extra: ``pip install 'bandmaster[temporal]'``.
"""

from __future__ import annotations

try:
    import temporalio  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the Temporal backend needs the temporalio SDK: pip install 'bandmaster[temporal]'"
    ) from exc

from bandmaster.temporal.engine import TemporalEngine, TemporalRunHandle
from bandmaster.temporal.worker import create_worker, sandbox_runner

__all__ = ["TemporalEngine", "TemporalRunHandle", "create_worker", "sandbox_runner"]
