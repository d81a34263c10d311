"""``describe`` for the Temporal backend: the embedded engine's step timeline, rebuilt from a
workflow's Temporal history.

Activities (and local-activity markers) carry ``seq|kind|name`` in their activity id, timers
in their summary; waits are memo upserts written by the workflow at their start and end, and
routers' decisions one memo upsert each. A model call's activity returns its step meta (alias,
version, attempts, guard log) with the response, or carries it in its failure's details.
``bm.now/uuid/random`` leave no history event, so they are absent from this timeline.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowExecution, WorkflowExecutionStatus
from temporalio.converter import DataConverter

from bandmaster._types import RunStatus
from bandmaster.engine.backend_kit import RunInfo, StepInfo, error_record
from bandmaster.temporal._activities import response_of
from bandmaster.temporal._failures import meta_of, record_of
from bandmaster.temporal._terms import TERMS_MEMO, terms_from_data
from bandmaster.temporal._workflow import MEMO_PREFIX

STATUS: dict[WorkflowExecutionStatus | None, RunStatus] = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TERMINATED: "failed",
    WorkflowExecutionStatus.TIMED_OUT: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
}


def _time(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime(tzinfo=UTC)


def _stamp(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _parse_id(text: str) -> tuple[int, str, str] | None:
    seq, _, rest = text.partition("|")
    kind, _, name = rest.partition("|")
    return (int(seq), kind, name) if seq.isdigit() and name else None


class _Timeline:
    def __init__(self, converter: DataConverter) -> None:
        self.converter = converter
        self.rows: dict[int, dict[str, Any]] = {}
        self.by_event: dict[int, int] = {}  # scheduling event id -> seq

    def payload(self, payloads: Any) -> Any:
        items = list(payloads.payloads) if payloads is not None else []
        return self.converter.payload_converter.from_payload(items[0]) if items else None

    def failure(self, failure: Any) -> dict[str, Any]:
        return self.failed(failure)["error"]  # type: ignore[no-any-return]

    def failed(self, failure: Any) -> dict[str, Any]:
        """The row fields of a failed operation: its error record, and its meta if it has one."""
        exc = self.converter.failure_converter.from_failure(failure, self.converter.payload_converter)
        cause = exc.__cause__ if record_of(exc) is None and exc.__cause__ is not None else exc
        fields: dict[str, Any] = {"error": record_of(cause) or error_record(cause)}
        meta = meta_of(cause)
        if meta is not None:
            fields["meta"] = meta
        return fields

    @staticmethod
    def result(value: Any) -> dict[str, Any]:
        """The row fields of a completed activity: a model call's result carries its meta."""
        response = response_of(value)
        if response is value:
            return {"output": value}
        return {"output": response, "meta": value["meta"], "attempts": value["attempts"]}

    def open(
        self, event_id: int, ident: str, started: datetime, status: str = "running", **extra: Any
    ) -> None:
        parsed = _parse_id(ident)
        if parsed is None:
            return
        seq, kind, name = parsed
        self.by_event[event_id] = seq
        self.rows[seq] = {
            "seq": seq,
            "name": name,
            "kind": kind,
            "status": status,
            "attempts": 1,
            "started_at": started,
            "ended_at": None,
            **extra,
        }

    def close(self, event_id: int, ended: datetime, status: str, **fields: Any) -> None:
        seq = self.by_event.get(event_id)
        if seq is not None:
            self.rows[seq].update(status=status, ended_at=ended, **fields)

    def add(self, event: HistoryEvent) -> None:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            a = event.activity_task_scheduled_event_attributes
            self.open(event.event_id, a.activity_id, _time(event))
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            a2 = event.activity_task_started_event_attributes
            seq = self.by_event.get(a2.scheduled_event_id)
            if seq is not None:
                self.rows[seq]["attempts"] = a2.attempt
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            a3 = event.activity_task_completed_event_attributes
            self.close(
                a3.scheduled_event_id, _time(event), "completed", **self.result(self.payload(a3.result))
            )
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            a4 = event.activity_task_failed_event_attributes
            self.close(a4.scheduled_event_id, _time(event), "failed", **self.failed(a4.failure))
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            a5 = event.activity_task_timed_out_event_attributes
            self.close(a5.scheduled_event_id, _time(event), "failed", error=self.failure(a5.failure))
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
            a6 = event.activity_task_canceled_event_attributes
            self.close(a6.scheduled_event_id, _time(event), "cancelled")
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            self.local_activity(event)
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            summary = (
                self.converter.payload_converter.from_payload(event.user_metadata.summary)
                if (event.user_metadata.HasField("summary"))
                else ""
            )
            parsed = _parse_id(str(summary))
            if parsed is not None and parsed[1] == "sleep":
                self.open(event.event_id, str(summary), _time(event), status="waiting")
        elif kind == EventType.EVENT_TYPE_TIMER_FIRED:
            self.close(event.timer_fired_event_attributes.started_event_id, _time(event), "completed")
        elif kind == EventType.EVENT_TYPE_TIMER_CANCELED:
            self.close(event.timer_canceled_event_attributes.started_event_id, _time(event), "cancelled")
        elif kind == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
            fields = event.workflow_properties_modified_event_attributes.upserted_memo.fields
            for key, payload in fields.items():
                if key.startswith(MEMO_PREFIX):
                    self.wait(self.converter.payload_converter.from_payload(payload))

    def local_activity(self, event: HistoryEvent) -> None:
        a = event.marker_recorded_event_attributes
        if a.marker_name != "core_local_activity" or "data" not in a.details:
            return
        data = json.loads(a.details["data"].payloads[0].data)
        ident = str(data.get("activity_id", ""))
        ended = _time(event)
        self.open(event.event_id, ident, ended, attempts=int(data.get("attempt", 1)))
        if a.HasField("failure"):
            self.close(event.event_id, ended, "failed", **self.failed(a.failure))
        else:
            output = self.payload(a.details["result"]) if "result" in a.details else None
            self.close(event.event_id, ended, "completed", **self.result(output))

    def wait(self, row: dict[str, Any]) -> None:
        seq = int(row["seq"])
        started = _stamp(row.get("started")) or datetime.now(UTC)
        self.rows[seq] = {
            "seq": seq,
            "name": row["name"],
            "kind": row.get("kind", "wait"),  # waits; approvals and routers' decisions write their own
            "status": row["status"],
            "attempts": 1,
            "started_at": started,
            "ended_at": _stamp(row.get("ended")),
            "output": row.get("output"),
            "error": row.get("error"),
            "meta": row.get("meta") or {},
        }

    def steps(self) -> list[StepInfo]:
        out = []
        for seq in sorted(self.rows):
            row = self.rows[seq]
            ended = row["ended_at"]
            duration = (ended - row["started_at"]).total_seconds() if ended is not None else None
            out.append(StepInfo(duration=duration, **row))
        return out


async def run_info(
    description: WorkflowExecution, events: list[HistoryEvent], converter: DataConverter
) -> RunInfo:
    timeline = _Timeline(converter)
    run_input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            run_input = timeline.payload(event.workflow_execution_started_event_attributes.input)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            output = timeline.payload(event.workflow_execution_completed_event_attributes.result)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            error = timeline.failure(event.workflow_execution_failed_event_attributes.failure)
        else:
            timeline.add(event)
    steps = timeline.steps()
    status = STATUS.get(description.status, "running")
    if status == "running" and steps and steps[-1].status == "waiting":
        status = "waiting"
    memo = await description.memo()
    terms = terms_from_data(memo.get(TERMS_MEMO))
    return RunInfo(
        id=description.id,
        workflow=description.workflow_type,
        version=memo.get("bandmaster.version"),
        status=status,
        input=run_input,
        output=output,
        error=error,
        created_at=description.start_time,
        updated_at=description.close_time or (_time(events[-1]) if events else description.start_time),
        ended_at=description.close_time,
        lease_owner=None,
        claims=1,
        priority=terms.priority,
        tenant=terms.tenant,
        budget_usd=terms.budget_usd,
        steps=steps,
    )
