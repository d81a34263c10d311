"""What of a run the server shows a client: everything but this deployment's internals.

A journaled error keeps its traceback (file paths of the server's code and of the user's
workflows) and a run its lease owner (``host/pid/...`` of the worker). Both help whoever runs
the server, through the CLI or ``--show-internals``; a ``runs:read`` token sees neither by default.
"""

from __future__ import annotations

from typing import Any

from bandmaster.engine import RunInfo, StepInfo


def without_traceback(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """An error record (``serde.error_record``) without tracebacks, including the nested
    records of a group (``errors``) or of parallel branches (``errors_by``)."""
    if record is None:
        return None
    kept = {key: value for key, value in record.items() if key != "traceback"}
    if isinstance(kept.get("errors"), list):
        kept["errors"] = [without_traceback(r) if isinstance(r, dict) else r for r in kept["errors"]]
    if isinstance(kept.get("errors_by"), dict):
        kept["errors_by"] = {
            k: without_traceback(r) if isinstance(r, dict) else r for k, r in kept["errors_by"].items()
        }
    return kept


def shown_step(step: StepInfo, *, internals: bool) -> StepInfo:
    if internals or step.error is None:
        return step
    return step.model_copy(update={"error": without_traceback(step.error)})


def shown_run(run: RunInfo, *, internals: bool) -> RunInfo:
    """``run`` as a client may see it: with ``internals`` as journaled, else without tracebacks
    and lease owner."""
    if internals:
        return run
    return run.model_copy(
        update={
            "error": without_traceback(run.error),
            "lease_owner": None,
            "steps": [shown_step(s, internals=False) for s in run.steps],
        }
    )
