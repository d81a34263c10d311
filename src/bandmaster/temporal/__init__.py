"""The Temporal backend: the same bandmaster workflows, scaled out on a Temporal cluster.

``bm.TemporalEngine`` is the client (and optionally an in-process worker);
``bandmaster worker --backend temporal MODULE`` runs worker processes. Needs the ``temporal``
extra: ``pip install 'bandmaster[temporal]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bandmaster._lazy import lazy_loader

INSTALL = "the Temporal backend needs the temporalio SDK: pip install 'bandmaster[temporal]'"

try:
    import temporalio  # noqa: F401

    _installed = True
except ModuleNotFoundError:
    _installed = False

if TYPE_CHECKING or _installed:
    from bandmaster.temporal._engine import TemporalEngine, TemporalRunHandle
    from bandmaster.temporal._worker import create_worker, sandbox_runner

    __all__ = [
        "INSTALL",
        "DevServer",
        "Outbox",
        "OutboxEntry",
        "TemporalEngine",
        "TemporalRunHandle",
        "create_worker",
        "free_port",
        "sandbox_runner",
    ]
else:
    # bm.TemporalEngine is in bandmaster.__all__, so `from bandmaster import *` resolves it:
    # without the extra that must still work, and the engine fail (with the command) when made.
    # The backend's own modules (engine, worker, ...) fail at import with the same message.

    class TemporalEngine:
        """Placeholder: the ``temporal`` extra is not installed."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError(INSTALL)

    __all__ = ["INSTALL", "TemporalEngine"]

# Names other rooms use, loaded on first use.
_LAZY = {
    "DevServer": "bandmaster.temporal._devserver",
    "Outbox": "bandmaster.temporal._outbox",
    "OutboxEntry": "bandmaster.temporal._outbox",
    "TemporalEngine": "bandmaster.temporal._engine",
    "free_port": "bandmaster.temporal._devserver",
}

if TYPE_CHECKING:
    from bandmaster.temporal._devserver import DevServer, free_port
    from bandmaster.temporal._engine import TemporalEngine
    from bandmaster.temporal._outbox import Outbox, OutboxEntry
else:
    __getattr__, __dir__ = lazy_loader(__name__, _LAZY)
