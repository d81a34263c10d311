"""What starts runs besides ``engine.start``: cron schedules (``bm.schedule``), signed inbound
webhooks (``POST /hooks/{name}``) and a queue consumer (``bandmaster consume``)."""

from bandmaster.triggers.schedule import CatchUp, Schedule, schedule

__all__ = ["CatchUp", "Schedule", "schedule"]
