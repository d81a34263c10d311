"""Journal backends: where runs, steps and signals are persisted."""

from bandmaster.store.base import JournalStore, RunRow, StepRow
from bandmaster.store.sqlite import SQLiteStore, resolve_db_path

__all__ = ["JournalStore", "RunRow", "SQLiteStore", "StepRow", "resolve_db_path"]
