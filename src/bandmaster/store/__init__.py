"""Journal backends: where runs, steps and signals are persisted."""

from typing import TYPE_CHECKING

from bandmaster._lazy import lazy_loader
from bandmaster.store._base import JournalStore, RunRow, StepRow
from bandmaster.store._sqlite import SQLiteStore, resolve_db_path

__all__ = [
    "BUCKET_RATIO",
    "FORMAT",
    "MODEL_KEY",
    "MODEL_SUMS",
    "SCHEMA_VERSION",
    "SMALLEST_BUCKET",
    "STEP_KEY",
    "STEP_SUMS",
    "UNFINISHED",
    "ApprovalRow",
    "ApprovalStore",
    "AuditRow",
    "BreakerStore",
    "ChunkPublisher",
    "ChunkRow",
    "JournalStore",
    "LimitStore",
    "RunRow",
    "SQLiteStore",
    "ScheduleRow",
    "ScheduleStore",
    "SessionRow",
    "Spend",
    "SpendStore",
    "StepMarkers",
    "StepRow",
    "TokenRow",
    "TokenStore",
    "UnservedRow",
    "WorkerRoster",
    "catch_up",
    "check_readable",
    "check_schema",
    "chunks_after",
    "connect_read_only",
    "integrity_problems",
    "journal_error",
    "model_rows_sql",
    "require_sound",
    "resolve_db_path",
    "step_rows_sql",
    "unserved_rows",
]

# Names other rooms use, loaded on first use.
_LAZY = {
    "UnservedRow": "bandmaster.store._workers",
    "WorkerRoster": "bandmaster.store._workers",
    "ApprovalRow": "bandmaster.store._approvals",
    "ApprovalStore": "bandmaster.store._approvals",
    "AuditRow": "bandmaster.store._approvals",
    "BUCKET_RATIO": "bandmaster.store._rollups",
    "BreakerStore": "bandmaster.store._breakers",
    "ChunkPublisher": "bandmaster.store._streams",
    "ChunkRow": "bandmaster.store._streams",
    "FORMAT": "bandmaster.store._sqlite",
    "MODEL_KEY": "bandmaster.store._rollups",
    "MODEL_SUMS": "bandmaster.store._rollups",
    "SCHEMA_VERSION": "bandmaster.store._schema",
    "Spend": "bandmaster.store._budgets",
    "SpendStore": "bandmaster.store._budgets",
    "SMALLEST_BUCKET": "bandmaster.store._rollups",
    "STEP_KEY": "bandmaster.store._rollups",
    "STEP_SUMS": "bandmaster.store._rollups",
    "LimitStore": "bandmaster.store._limits",
    "ScheduleRow": "bandmaster.store._schedules",
    "ScheduleStore": "bandmaster.store._schedules",
    "SessionRow": "bandmaster.store._tokens",
    "StepMarkers": "bandmaster.store._streams",
    "TokenRow": "bandmaster.store._tokens",
    "TokenStore": "bandmaster.store._tokens",
    "UNFINISHED": "bandmaster.store._rollups",
    "catch_up": "bandmaster.store._rollups",
    "check_readable": "bandmaster.store._journal_file",
    "check_schema": "bandmaster.store._journal_file",
    "chunks_after": "bandmaster.store._streams",
    "connect_read_only": "bandmaster.store._journal_file",
    "integrity_problems": "bandmaster.store._journal_file",
    "journal_error": "bandmaster.store._journal_file",
    "model_rows_sql": "bandmaster.store._rollups",
    "require_sound": "bandmaster.store._journal_file",
    "step_rows_sql": "bandmaster.store._rollups",
    "unserved_rows": "bandmaster.store._workers",
}

if TYPE_CHECKING:
    from bandmaster.store._approvals import ApprovalRow, ApprovalStore, AuditRow
    from bandmaster.store._breakers import BreakerStore
    from bandmaster.store._budgets import Spend, SpendStore
    from bandmaster.store._journal_file import (
        check_readable,
        check_schema,
        connect_read_only,
        integrity_problems,
        journal_error,
        require_sound,
    )
    from bandmaster.store._limits import LimitStore
    from bandmaster.store._rollups import (
        BUCKET_RATIO,
        MODEL_KEY,
        MODEL_SUMS,
        SMALLEST_BUCKET,
        STEP_KEY,
        STEP_SUMS,
        UNFINISHED,
        catch_up,
        model_rows_sql,
        step_rows_sql,
    )
    from bandmaster.store._schedules import ScheduleRow, ScheduleStore
    from bandmaster.store._schema import SCHEMA_VERSION
    from bandmaster.store._sqlite import FORMAT
    from bandmaster.store._streams import ChunkPublisher, ChunkRow, StepMarkers, chunks_after
    from bandmaster.store._tokens import SessionRow, TokenRow, TokenStore
    from bandmaster.store._workers import UnservedRow, WorkerRoster, unserved_rows
else:
    __getattr__, __dir__ = lazy_loader(__name__, _LAZY)
