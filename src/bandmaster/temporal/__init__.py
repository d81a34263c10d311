"""The Temporal backend: the same bandmaster workflows, scaled out on a Temporal cluster.

``bm.TemporalEngine`` is the client (and optionally an in-process worker);
``bandmaster worker --backend temporal MODULE`` runs worker processes. Needs the ``temporal``
extra: ``pip install 'bandmaster[temporal]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

INSTALL = "the Temporal backend needs the temporalio SDK: pip install 'bandmaster[temporal]'"

try:
    import temporalio  # noqa: F401

    _installed = True
except ModuleNotFoundError:
    _installed = False

if TYPE_CHECKING or _installed:
    from bandmaster.temporal.engine import TemporalEngine, TemporalRunHandle
    from bandmaster.temporal.worker import create_worker, sandbox_runner

    __all__ = ["INSTALL", "TemporalEngine", "TemporalRunHandle", "create_worker", "sandbox_runner"]
else:
    # bm.TemporalEngine is in bandmaster.__all__, so `from bandmaster import *` resolves it:
    # without the extra that must still work, and the engine fail (with the command) when made.
    # The backend's own modules (engine, worker, ...) fail at import with the same message.

    class TemporalEngine:
        """Placeholder: the ``temporal`` extra is not installed."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError(INSTALL)

    __all__ = ["INSTALL", "TemporalEngine"]
