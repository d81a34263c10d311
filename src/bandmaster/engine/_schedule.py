"""``bm.schedule``: start a workflow on a cron schedule.

Each tick starts exactly one run however many workers tick the schedule: the run id is the
schedule's name and the tick's time (``nightly@20261206T020000Z``), and starting is idempotent
on the run id. Cron expressions are parsed by croniter (five fields, or six with seconds
last), evaluated in UTC. croniter is imported only when a schedule is defined.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from bandmaster._types import URL_NAME
from bandmaster.errors import UsageError

CatchUp = Literal["skip", "all", "latest"]
"""What a schedule does with the ticks that fell while no worker ran (or it lagged): ``skip``
starts only a tick that is at most ``grace`` seconds late, ``latest`` starts the newest missed
tick, ``all`` starts every missed tick (oldest first)."""
CATCH_UP: tuple[str, ...] = get_args(CatchUp)
MAX_NAME = 180  # leaves room in the 200-character run id for "@20261206T020000Z"
TICKS_PER_PASS = 100  # `all` after a long downtime catches up in batches, not one huge burst

W = TypeVar("W")


@dataclass(frozen=True, slots=True)
class Schedule:
    """A cron schedule of one workflow (by name). ``input`` is the JSON input of every run
    (the whole value for a one-parameter workflow, else an object or array)."""

    name: str
    cron: str
    workflow: str
    catchup: CatchUp = "skip"
    input: Any = None
    grace: float = 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or len(self.name) > MAX_NAME or not URL_NAME.fullmatch(self.name):
            raise UsageError(
                f"schedule name {self.name!r}: 1-{MAX_NAME} characters from A-Z a-z 0-9 and - _ . ~ : + =, "
                "starting with a letter or digit (it starts every run id of the schedule)"
            )
        if "@" in self.name:
            raise UsageError(f"schedule name {self.name!r}: no '@' (it separates the name from the tick)")
        if self.catchup not in CATCH_UP:
            raise UsageError(
                f"schedule {self.name!r}: catchup={self.catchup!r}; give one of {', '.join(CATCH_UP)}"
            )
        if not self.grace >= 0:
            raise UsageError(f"schedule {self.name!r}: grace={self.grace!r}; give seconds >= 0")
        check_cron(self.cron, self.name)
        try:
            json.dumps(self.input)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"schedule {self.name!r}: input must be JSON ({exc})") from None

    @property
    def input_json(self) -> str | None:
        return None if self.input is None else json.dumps(self.input, sort_keys=True)


def check_cron(cron: str, name: str) -> str:
    from croniter import croniter

    if not isinstance(cron, str) or not croniter.is_valid(cron):
        raise UsageError(
            f"schedule {name!r}: {cron!r} is not a cron expression; give five fields "
            "(minute hour day month weekday, e.g. '*/5 * * * *') or six with seconds last"
        )
    return cron


def schedule(
    cron: str, *, name: str | None = None, catchup: CatchUp = "skip", input: Any = None, grace: float = 60.0
) -> Callable[[W], W]:
    """Decorate a ``@bm.workflow`` (above it) so that every engine with a worker that has the
    workflow ticks this schedule: ``@bm.schedule("*/5 * * * *")``. ``name`` defaults to the
    workflow's name; several schedules of one workflow need names."""

    def attach(wf: W) -> W:
        from bandmaster.engine._workflow import Workflow

        if not isinstance(wf, Workflow):
            raise UsageError("@bm.schedule goes above @bm.workflow (it schedules a workflow)")
        found = Schedule(name or wf.name, cron, wf.name, catchup, input, grace)
        existing: list[Schedule] = getattr(wf, "_bm_schedules", [])
        if any(s.name == found.name for s in existing):
            raise UsageError(f"two schedules of workflow {wf.name!r} are named {found.name!r}; give name=")
        setattr(wf, "_bm_schedules", [*existing, found])  # noqa: B010 - Workflow has no such field
        return wf

    return attach


def schedules_of(workflows: Iterable[object]) -> list[Schedule]:
    """The ``@bm.schedule`` schedules of these workflows."""
    return [s for wf in workflows for s in getattr(wf, "_bm_schedules", [])]


def tick_run_id(name: str, tick: float) -> str:
    """The run id of a tick: the same in every worker, so a tick starts one run."""
    return f"{name}@{datetime.fromtimestamp(tick, UTC):%Y%m%dT%H%M%SZ}"


def ticks_between(cron: str, after: float, until: float, limit: int = TICKS_PER_PASS) -> list[float]:
    """The ticks in ``(after, until]``, oldest first, at most ``limit``."""
    from croniter import croniter

    found: list[float] = []
    it = croniter(cron, datetime.fromtimestamp(after, UTC))
    while len(found) < limit:
        tick = float(it.get_next(float))
        if tick > until:
            break
        found.append(tick)
    return found


def next_tick(cron: str, after: float) -> float:
    from croniter import croniter

    return float(croniter(cron, datetime.fromtimestamp(after, UTC)).get_next(float))


def ticks_to_start(catchup: str, due: list[float], now: float, grace: float) -> list[float]:
    """Which of the due ticks (oldest first) to start under the catch-up policy."""
    if not due:
        return []
    if catchup == "all":
        return due
    if catchup == "latest":
        return due[-1:]
    return [due[-1]] if now - due[-1] <= grace else []


def check_schedules(
    schedules: Iterable[Schedule], workflows: Mapping[str, Any], *, limit: int
) -> list[Schedule]:
    """The schedules an engine ticks, checked now rather than at the first tick: unique
    names, a registered workflow each, and an input that workflow accepts."""
    checked: dict[str, Schedule] = {}
    for s in schedules:
        if not isinstance(s, Schedule):
            raise UsageError(f"{s!r} is not a bm.Schedule")
        if checked.get(s.name, s) != s:
            raise UsageError(f"two different schedules are named {s.name!r}; give one name=")
        wf = workflows.get(s.workflow)
        if wf is None:
            raise UsageError(
                f"schedule {s.name!r} starts workflow {s.workflow!r}, which is not registered; pass it in "
                "Engine(workflows=[...])"
            )
        args, kwargs = wf.input_from_json(s.input)
        wf.encode_input(args, kwargs, limit=limit)
        checked[s.name] = s
    return list(checked.values())


def load_schedules(path: str | os.PathLike[str]) -> list[Schedule]:
    """The ``schedules:`` of a YAML file (the same file may hold the server's ``hooks:``)::

    schedules:
      nightly-report: {cron: "0 2 * * *", workflow: report, catchup: latest, input: {region: eu}}
    """
    import yaml

    where = Path(path)
    try:
        data = yaml.safe_load(where.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read schedules from {where}: {exc}") from None
    section = data.get("schedules") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise UsageError(f"{where}: no `schedules:` mapping (name: {{cron: ..., workflow: ...}})")
    found = []
    for name, spec in section.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("cron"), str) or "workflow" not in spec:
            raise UsageError(f"{where}: schedule {name!r} needs `cron: '...'` and `workflow: NAME`")
        unknown = set(spec) - {"cron", "workflow", "catchup", "input", "grace"}
        if unknown:
            raise UsageError(f"{where}: schedule {name!r} has unknown keys {sorted(unknown)}")
        found.append(
            Schedule(
                str(name),
                spec["cron"],
                str(spec["workflow"]),
                spec.get("catchup", "skip"),
                spec.get("input"),
                float(spec.get("grace", 60.0)),
            )
        )
    return found
