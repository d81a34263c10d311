"""The run context of a replayed run: every journaled operation the current code calls is
answered from the recording instead of being executed.

Matching is by operation kind + name + call order: the third ``classify`` step the code calls
gets the answer of the third ``classify`` the recorded run made, wherever its sequence number
is now. That survives added or removed operations elsewhere in the workflow (a ``bm.now()``
more, a step fewer). Router decisions are never answered from the recording: they are
evaluated again by the current code, which is the point of a replay. With ``live_models``,
``bm.call_model`` calls go to today's models too.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from bandmaster.engine.context import RunContext, Suspend
from bandmaster.errors import ReplayDivergence
from bandmaster.replay.recording import Recording
from bandmaster.store.base import StepRow
from bandmaster.store.sqlite import SQLiteStore

# Operations whose value is incidental (not a decision): live values are harmless.
INCIDENTAL = frozenset({"now", "uuid", "random"})
DECISIONS = frozenset({"route"})


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first operation of the current code that has no recorded counterpart."""

    seq: int
    kind: str
    name: str
    reason: str


class ReplayContext(RunContext):
    __slots__ = ("called", "divergence", "live_models", "pending")

    def __init__(
        self,
        recording: Recording,
        *,
        store: SQLiteStore,
        owner: str,
        max_payload: int,
        live_models: bool,
        registry: object | None,
    ) -> None:
        super().__init__(
            run_id=recording.run.id,
            workflow=recording.run.workflow,
            owner=owner,
            store=store,
            recorded={},
            max_payload=max_payload,
            max_inline_sleep=0.0,
            registry=registry,
        )
        self.live_models = live_models
        self.pending: dict[tuple[str, str], deque[StepRow]] = {}
        for row in recording.steps:
            self.pending.setdefault((row.kind, row.name), deque()).append(row)
        self.called: list[tuple[str, str]] = []  # (kind, name) in call order
        self.divergence: Divergence | None = None

    def replayed(self, seq: int, name: str, kind: str) -> StepRow | None:
        """The recorded answer for this call; ``None`` means "execute it here" (decisions,
        live models, incidental values the recording lacks)."""
        if kind not in INCIDENTAL:
            self.called.append((kind, name))
        queue = self.pending.get((kind, name))
        row = queue.popleft() if queue else None
        if kind in DECISIONS or (kind == "model" and self.live_models):
            return None
        if kind in INCIDENTAL:
            return row if row is not None and row.status == "completed" else None
        if kind == "sleep":
            # A replay never waits: the timer is answered as fired.
            now = time.time()
            return StepRow(self.run_id, seq, name, kind, "completed", None, None, 1, now, now, None)
        if row is None:
            self._diverge(seq, kind, name, "the recorded run never called it")
        elif row.status == "waiting":
            # The recording ends here (the run was still waiting): so does the replay.
            raise Suspend()
        return row

    def _diverge(self, seq: int, kind: str, name: str, reason: str) -> None:
        if self.divergence is None:
            self.divergence = Divergence(seq, kind, name, reason)
        raise ReplayDivergence(self.run_id, seq, kind, name)

    def unused(self) -> list[tuple[str, str]]:
        """Recorded step/model/wait operations the current code did not call."""
        return [
            (kind, name)
            for (kind, name), queue in self.pending.items()
            for _ in queue
            if kind not in INCIDENTAL and kind not in DECISIONS and kind != "sleep"
        ]
