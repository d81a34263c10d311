"""What a replay found: per run, whether the decisions changed; in total, how many runs
changed, the cost delta of live models, and golden-label accuracy. With assertion helpers
for pytest and the ``--max-diff`` check for CI."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

ReplayStatus = Literal["completed", "failed", "diverged", "waiting"]
Change = Literal["routes", "steps", "output", "status", "diverged", "model_outputs", "model_inputs"]


class RouteTaken(BaseModel):
    router: str
    route: str
    rule: str | None = None


class ModelCall(BaseModel):
    """One ``bm.call_model`` of the run: the recorded answer and, with live models, today's."""

    name: str
    recorded_output: Any = None
    live_output: Any = None
    recorded_cost: float = 0.0
    live_cost: float = 0.0
    live_model: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.recorded_output != self.live_output)


class DivergenceInfo(BaseModel):
    seq: int
    kind: str
    name: str
    reason: str


class RunReplay(BaseModel):
    """One recorded run replayed by the current code. ``changes`` lists what differs:
    ``routes`` (a router took another route), ``steps`` (another sequence of operations),
    ``output``, ``status``, ``diverged`` (the code called an operation the recording lacks),
    ``model_outputs`` (live models answered differently), ``model_inputs`` (a model was asked
    something the recorded run never asked it; the recorded answer of that call was used)."""

    run_id: str
    recorded_status: str
    status: ReplayStatus
    recorded_output: Any = None
    output: Any = None
    error: str | None = None
    recorded_error: str | None = None
    recorded_routes: list[RouteTaken] = []
    routes: list[RouteTaken] = []
    recorded_steps: list[str] = []
    steps: list[str] = []
    divergence: DivergenceInfo | None = None
    unused: list[str] = []  # recorded operations the current code no longer calls
    new_model_inputs: list[str] = []  # model calls whose request differs from every recorded one
    model_calls: list[ModelCall] = []
    recorded_cost: float = 0.0
    cost: float = 0.0
    changes: list[Change] = []
    input: Any = None
    label: Any = None
    decision: Any = None
    recorded_decision: Any = None

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    @property
    def cost_delta(self) -> float:
        return self.cost - self.recorded_cost


class GoldenScore(BaseModel):
    """Decisions scored against golden labels. ``confusion[label][decision]`` counts runs;
    ``recorded_accuracy`` scores the recorded runs' own decisions, for comparison."""

    labelled: int
    correct: int
    accuracy: float
    recorded_correct: int
    recorded_accuracy: float
    confusion: dict[str, dict[str, int]]
    unlabelled_runs: int
    unmatched_labels: int


class ReplayReport(BaseModel):
    workflow: str
    mode: Literal["recorded", "live-models"]
    runs: list[RunReplay] = []
    golden: GoldenScore | None = None
    model_calls_made: int = Field(0, description="live model calls made by the replay (0 unless live)")

    @property
    def changed(self) -> list[RunReplay]:
        return [run for run in self.runs if run.changed]

    @property
    def changed_ids(self) -> list[str]:
        return [run.run_id for run in self.changed]

    @property
    def recorded_cost(self) -> float:
        return sum(run.recorded_cost for run in self.runs)

    @property
    def cost(self) -> float:
        return sum(run.cost for run in self.runs)

    @property
    def cost_delta(self) -> float:
        return self.cost - self.recorded_cost

    def summary(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "mode": self.mode,
            "runs": len(self.runs),
            "changed": len(self.changed),
            "diverged": sum(1 for run in self.runs if run.status == "diverged"),
            "recorded_cost": self.recorded_cost,
            "cost": self.cost,
            "cost_delta": self.cost_delta,
            "model_calls_made": self.model_calls_made,
        }

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["summary"] = self.summary()
        return data

    def exceeds(self, max_diff: int | float) -> bool:
        """True when more runs changed than allowed: an ``int`` is a count, a ``float`` in
        [0, 1] a fraction of the replayed runs."""
        changed = len(self.changed)
        if isinstance(max_diff, float):
            return bool(self.runs) and changed / len(self.runs) > max_diff
        return changed > max_diff

    # --- assertions for tests ---------------------------------------------------------------

    def assert_no_changes(self) -> None:
        """Fail (``AssertionError``) listing every changed run and what changed in it."""
        if self.changed:
            raise AssertionError(self._describe_changes())

    def assert_changed(self, run_ids: list[str] | set[str]) -> None:
        """Exactly these runs changed, no others."""
        expected, actual = set(run_ids), set(self.changed_ids)
        if expected != actual:
            raise AssertionError(
                f"expected changed runs {sorted(expected)}, got {sorted(actual)}; "
                f"unexpected: {sorted(actual - expected)}, missing: {sorted(expected - actual)}\n"
                + self._describe_changes()
            )

    def assert_accuracy(self, *, at_least: float) -> None:
        if self.golden is None:
            raise AssertionError("no golden labels were given to replay_runs(golden=...)")
        if self.golden.accuracy < at_least:
            raise AssertionError(
                f"accuracy {self.golden.accuracy:.3f} < {at_least} "
                f"({self.golden.correct}/{self.golden.labelled}); confusion: {self.golden.confusion}"
            )

    def assert_max_changes(self, max_diff: int | float) -> None:
        if self.exceeds(max_diff):
            raise AssertionError(
                f"{len(self.changed)} of {len(self.runs)} runs changed (max {max_diff})\n"
                + self._describe_changes()
            )

    def _describe_changes(self) -> str:
        lines = [f"{len(self.changed)} of {len(self.runs)} replayed runs changed:"]
        for run in self.changed:
            lines.append(f"  {run.run_id}: {describe(run)}")
        return "\n".join(lines)


def describe(run: RunReplay) -> str:
    """One line saying what changed in a run."""
    parts: list[str] = []
    if "routes" in run.changes:
        before = ", ".join(f"{r.router}→{r.route}" for r in run.recorded_routes) or "none"
        after = ", ".join(f"{r.router}→{r.route}" for r in run.routes) or "none"
        parts.append(f"routes {before} ⇒ {after}")
    if run.divergence is not None:
        parts.append(f"diverged at {run.divergence.kind} {run.divergence.name!r} ({run.divergence.reason})")
    elif "steps" in run.changes:
        parts.append(f"steps {' '.join(run.recorded_steps)} ⇒ {' '.join(run.steps)}")
    if "output" in run.changes and run.status == "completed":
        parts.append(f"output {run.recorded_output!r} ⇒ {run.output!r}")
    elif "output" in run.changes:
        parts.append(f"error {run.recorded_error} ⇒ {run.error}")
    if "status" in run.changes:
        parts.append(
            f"status {run.recorded_status} ⇒ {run.status}" + (f" ({run.error})" if run.error else "")
        )
    if "model_inputs" in run.changes:
        parts.append(f"new requests to {', '.join(sorted(set(run.new_model_inputs)))}")
    if "model_outputs" in run.changes:
        names = sorted({call.name for call in run.model_calls if call.changed})
        parts.append(f"model answers changed: {', '.join(names)}")
    return "; ".join(parts) or "unchanged"
