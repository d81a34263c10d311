"""``check_determinism``: would the current workflow code resume the recorded runs?

A worker resumes a run by calling its workflow again and taking each operation's answer from
the journal by sequence number; the code must call the same operation (kind and name) at each
recorded seq, and each recorded value must still fit the type the code declares. This check
does exactly that, strictly, for recorded runs, before a deploy:

- an operation at a recorded seq with another kind or name: **changed** (a reordered, renamed
  or inserted step);
- a recorded value that no longer decodes into the declared type: **type**;
- a run whose code now ends before the operations it recorded: **removed**;
- a run input that no longer decodes: **input**.

Operations past the end of a run's recording (an appended step, or the rest of a run that is
still waiting) are new work, not divergence: the check stops there, so it never executes a
step or calls a model. Unlike ``replay_runs``, which matches calls by name to show what
changed, nothing here is forgiven that a resume would not forgive.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from bandmaster.engine import DEFAULT_MAX_PAYLOAD, RunContext, Suspend, Workflow, current_run, new_owner_id
from bandmaster.errors import NonDeterminismError, ReplayError, ReplayTypeMismatch
from bandmaster.replay._recording import Recording, RecordingSource, RunQuery, scratch_run
from bandmaster.store import SQLiteStore, StepRow

EVERY_STATUS = ("pending", "running", "waiting", "completed", "failed", "cancelled")
"""A determinism check looks at in-flight runs too: they are the ones a deploy resumes."""

Reason = Literal["changed", "type", "removed", "input"]


@dataclass(frozen=True, slots=True)
class Divergent:
    """Where one recorded run stops fitting the code: ``recorded`` is what the journal has at
    ``seq`` (``kind name``), ``now`` what the code calls there (empty when it calls nothing)."""

    run_id: str
    workflow: str
    seq: int
    recorded: str
    now: str
    reason: Reason
    detail: str


@dataclass(slots=True)
class DeterminismReport:
    workflows: list[str]
    checked: int = 0
    divergent: list[Divergent] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.divergent

    def to_json(self) -> dict[str, Any]:
        return {
            "workflows": self.workflows,
            "checked": self.checked,
            "ok": self.ok,
            "divergent": [asdict(d) for d in self.divergent],
        }


def determinism_query(runs: str | RunQuery | None) -> RunQuery:
    """``runs`` as for ``bandmaster replay``, but every status unless ``status=`` says otherwise."""
    if isinstance(runs, RunQuery):
        return runs
    if runs is None:
        return RunQuery(statuses=list(EVERY_STATUS))
    query = RunQuery.parse(runs)
    if "status=" not in runs:
        query.statuses = list(EVERY_STATUS)
    return query


async def check_determinism(
    workflows: list[Workflow[..., Any]],
    *,
    db: str | os.PathLike[str] | None,
    runs: str | RunQuery | None = None,
) -> DeterminismReport:
    """Check the recorded runs of each of ``workflows`` in journal ``db`` (read-only) against
    the current code, as a worker resuming them would. ``runs`` selects them (default: the
    newest 1,000 runs of each workflow, whatever their status)."""
    if not workflows:
        raise ReplayError("no workflows to check; name a module that defines @bm.workflow functions")
    for wf in workflows:
        if not isinstance(wf, Workflow):
            raise ReplayError(f"{wf!r} is not a workflow; pass @bm.workflow functions")
    query = determinism_query(runs)
    with RecordingSource(db) as source:
        recordings = [(wf, recording) for wf in workflows for recording in source.runs(wf.name, query)]
    report = DeterminismReport(workflows=[wf.name for wf in workflows])
    with tempfile.TemporaryDirectory(prefix="bandmaster-determinism-") as tmp:
        # Nothing is executed, but the context needs a journal to hold the run's lease: a
        # scratch one, so a stray write could never reach the recorded journal.
        store = SQLiteStore(Path(tmp) / "check.db")
        owner = new_owner_id()
        try:
            for wf, recording in recordings:
                report.checked += 1
                found = await _check(wf, recording, store, owner)
                if found is not None:
                    report.divergent.append(found)
        finally:
            store.close()
    return report


class _StrictContext(RunContext):
    """Answers each operation from the recording by seq, as a resume does, and stops at the
    first operation the recording has no answer for yet."""

    __slots__ = ("called", "last_seq")

    def __init__(self, recording: Recording, store: SQLiteStore, owner: str) -> None:
        super().__init__(
            run_id=recording.run.id,
            workflow=recording.run.workflow,
            owner=owner,
            store=store,
            recorded={row.seq: row for row in recording.steps},
            max_payload=DEFAULT_MAX_PAYLOAD,
            max_inline_sleep=0.0,
        )
        self.last_seq = max(self.recorded, default=0)
        self.called: set[int] = set()

    def replayed(self, seq: int, name: str, kind: str, request: object = None) -> StepRow | None:
        self.called.add(seq)
        row = super().replayed(seq, name, kind, request)  # NonDeterminismError on another op
        if row is None and seq <= self.last_seq:
            raise NonDeterminismError(self.run_id, seq, "nothing (a gap in the journal)", f"{kind} {name}")
        if row is None or row.status not in ("completed", "failed"):
            raise Suspend()  # past the recording, or where the run still waits: new work from here
        return row


async def _check(
    wf: Workflow[..., Any], recording: Recording, store: SQLiteStore, owner: str
) -> Divergent | None:
    run = recording.run
    ctx = _StrictContext(recording, store, owner)
    await store.insert_run(scratch_run(run, owner))

    def divergent(seq: int, recorded: str, now: str, reason: Reason, detail: str) -> Divergent:
        return Divergent(run.id, wf.name, seq, recorded, now, reason, detail)

    try:
        args = wf.decode_input(run.input)
    except Exception as exc:
        return divergent(0, "input", "input", "input", f"{type(exc).__name__}: {exc}")
    token = current_run.set(ctx)
    try:
        await wf.fn(*args)
    except Suspend:
        return None
    except ReplayTypeMismatch as exc:
        return divergent(exc.seq, _recorded(ctx, exc.seq), _recorded(ctx, exc.seq), "type", str(exc))
    except NonDeterminismError as exc:
        return divergent(exc.seq, exc.recorded, exc.called, "changed", str(exc))
    except Exception:
        pass  # the recorded run may have failed the same way; what matters is what it called
    finally:
        current_run.reset(token)
    missed = sorted(seq for seq in ctx.recorded if seq > 0 and seq not in ctx.called)  # < 0: patch markers
    if missed:
        seq = missed[0]
        return divergent(
            seq,
            _recorded(ctx, seq),
            "",
            "removed",
            f"the code no longer calls {_recorded(ctx, seq)} (recorded at seq {seq}) or what follows it",
        )
    return None


def _recorded(ctx: RunContext, seq: int) -> str:
    row = ctx.recorded.get(seq)
    return f"{row.kind} {row.name}" if row is not None else ""
