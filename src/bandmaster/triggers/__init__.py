"""What starts runs besides ``engine.start``: cron schedules (``bm.schedule``), signed inbound
webhooks (``POST /hooks/{name}``) and a queue consumer (``bandmaster consume``)."""

from typing import TYPE_CHECKING

from bandmaster._lazy import lazy_loader
from bandmaster.engine import CatchUp, Schedule, schedule

__all__ = ["CatchUp", "Consumer", "InboundHook", "Schedule", "load_hooks", "schedule"]

# Names other rooms use, loaded on first use.
_LAZY = {
    "Consumer": "bandmaster.triggers._amqp",
    "InboundHook": "bandmaster.triggers._hooks",
    "load_hooks": "bandmaster.triggers._hooks",
}

if TYPE_CHECKING:
    from bandmaster.triggers._amqp import Consumer
    from bandmaster.triggers._hooks import InboundHook, load_hooks
else:
    __getattr__, __dir__ = lazy_loader(__name__, _LAZY)
