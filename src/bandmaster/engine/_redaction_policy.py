"""Which redactor rewrites a workflow's values: a property of the workflow in the journal.

``@bm.workflow(redact=...)`` (and the engine-wide ``bm.Engine(redact=...)``) is recorded in the
journal, so it does not depend on every process being configured alike. Every engine that
holds a workflow with a redactor records it (``kv`` key ``redaction:<workflow>``; the
engine-wide one as ``redaction:*``), as data (``redactor_spec``). Every writer then applies
the recorded redactor, its own copy when it holds one, else one rebuilt from the record: a
worker executing the run, a plain client (``bm.Engine(db, worker=False)``) starting or
signalling it, the CLI, the server, an approval comment. A writer that cannot rebuild it (the
redactor holds a secret, or its class is not importable here) is refused with
``RedactionError`` saying how to fix it, before anything is written.

Order of events: the record is written when an engine opens with the workflow registered (a
worker, or a client built with ``workflows=[...]``) and when a client starts a run with the
workflow object. A run started *by name* before anything has recorded the workflow cannot be
known to redact, and is written with the engine-wide redactor when one is recorded, else as
given: start workers (or a client holding the workflow) first, as the README says.

A record is never downgraded: a process hosting the workflow without a redactor applies the
recorded one, so an old or misconfigured worker cannot switch redaction off for everyone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bandmaster.engine._redaction import Redactor, redactor_from_spec, redactor_spec
from bandmaster.engine._workflow import Workflow
from bandmaster.store import SQLiteStore

ANY_WORKFLOW = "*"
"""The record of the engine-wide redactor: every workflow without one of its own."""


def _key(workflow: str) -> str:
    return f"redaction:{workflow}"


class RedactionPolicy:
    """The redactors of one journal, as one engine (process) sees them: its own, recorded for
    the others, and the recorded ones rebuilt when it holds none."""

    def __init__(
        self, store: SQLiteStore, workflows: Mapping[str, Workflow[..., Any]], default: Redactor | None
    ) -> None:
        self.store = store
        self.workflows = workflows
        self.default = default
        self._recorded: set[str] = set()
        self._rebuilt: dict[str, Redactor] = {}  # by spec text: a Presidio analyzer is costly

    def declare(self, name: str, redactor: Redactor | None) -> None:
        """Record that ``name``'s values are redacted by ``redactor`` (once per process)."""
        if redactor is None or name in self._recorded:
            return
        spec = json.dumps(redactor_spec(redactor), sort_keys=True)
        # A read-only journal (a reader on read-only media) takes no writes, so no record either.
        if not self.store.read_only and self.store.kv_get(_key(name)) != spec:
            self.store.kv_put(_key(name), spec)
        self._recorded.add(name)

    def declare_all(self) -> None:
        """Record the engine-wide redactor and every registered workflow's own."""
        self.declare(ANY_WORKFLOW, self.default)
        for name, wf in self.workflows.items():
            self.declare(name, wf.redact)

    def for_workflow(self, name: str, wf: Workflow[..., Any] | None = None) -> Redactor | None:
        """The redactor of ``name``'s values: the workflow's own (the one given, the registered
        one, else the recorded one), else the engine-wide one (this engine's, else the
        recorded one); ``RedactionError`` when the journal says it redacts and this process
        cannot."""
        wf = wf if wf is not None else self.workflows.get(name)
        if wf is not None and wf.redact is not None:
            self.declare(name, wf.redact)
            return wf.redact
        own = self._recorded_redactor(name)
        if own is not None:
            return own
        if self.default is not None:
            return self.default
        return self._recorded_redactor(ANY_WORKFLOW, workflow=name)

    def _recorded_redactor(self, key: str, *, workflow: str | None = None) -> Redactor | None:
        text = self.store.kv_get(_key(key))
        if text is None:
            return None
        cached = self._rebuilt.get(text)
        if cached is None:
            cached = self._rebuilt[text] = redactor_from_spec(json.loads(text), workflow=workflow or key)
        return cached
