"""The run context of a replayed run: every journaled operation the current code calls is
answered from the recording instead of being executed.

Matching is by operation kind + name + call order: the third ``classify`` step the code calls
gets the answer of the third ``classify`` the recorded run made, wherever its sequence number
is now. That survives added or removed operations elsewhere in the workflow (a ``bm.now()``
more, a step fewer). Model calls also carry their request, which the journal records: when
the call-order candidate was asked something else, the recorded call of that name with the
same request fingerprint answers instead (calls made in another order); when none has it,
the call-order answer is used and the run is flagged (``model_inputs``: the prompt changed).

Router decisions are never answered from the recording: they are evaluated again by the
current code, which is the point of a replay. With ``live_models``, ``bm.call_model`` calls go
to today's models too.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass

from pydantic import ValidationError

from bandmaster.engine import RunContext, Suspend
from bandmaster.errors import ReplayDivergence
from bandmaster.models import ModelRequest
from bandmaster.replay._recording import Recording
from bandmaster.store import SQLiteStore, StepRow

# Operations whose value is incidental (not a decision): live values are harmless. Patch
# markers too: which branch a run takes is answered from its recording (``decide_patch``).
INCIDENTAL = frozenset({"now", "uuid", "random", "patch"})
DECISIONS = frozenset({"route"})


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first operation of the current code that has no recorded counterpart."""

    seq: int
    kind: str
    name: str
    reason: str


class ReplayContext(RunContext):
    __slots__ = ("_fingerprints", "called", "divergence", "live_models", "new_inputs", "pending")

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
        self.new_inputs: list[str] = []  # model calls answered although their request changed
        self._fingerprints: dict[int, str | None] = {}  # recorded seq -> request fingerprint

    def replayed(self, seq: int, name: str, kind: str, request: object = None) -> StepRow | None:
        """The recorded answer for this call; ``None`` means "execute it here" (decisions,
        live models, incidental values the recording lacks)."""
        if kind not in INCIDENTAL:
            self.called.append((kind, name))
        queue = self.pending.get((kind, name))
        row = self._take(queue, request) if queue else None
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

    def _take(self, queue: deque[StepRow], request: object) -> StepRow:
        """The next recorded call, unless another one of the queue was asked ``request``."""
        if not isinstance(request, ModelRequest):
            return queue.popleft()
        wanted = request.fingerprint()
        if self._fingerprint(queue[0]) != wanted:
            for row in queue:
                if self._fingerprint(row) == wanted:
                    queue.remove(row)
                    return row
            self.new_inputs.append(queue[0].name)
        return queue.popleft()

    def _fingerprint(self, row: StepRow) -> str | None:
        if row.seq not in self._fingerprints:
            recorded = json.loads(row.meta or "{}").get("request")
            try:
                fingerprint = ModelRequest.model_validate(recorded).fingerprint() if recorded else None
            except ValidationError:
                fingerprint = None  # a request this version cannot read: order decides
            self._fingerprints[row.seq] = fingerprint
        return self._fingerprints[row.seq]

    def _diverge(self, seq: int, kind: str, name: str, reason: str) -> None:
        if self.divergence is None:
            self.divergence = Divergence(seq, kind, name, reason)
        raise ReplayDivergence(self.run_id, seq, kind, name)

    def decide_patch(self, patch_id: str) -> bool:
        """The branch the recorded run took: the new one if it recorded the patch's marker."""
        decided = self.patches.get(patch_id)
        if decided is None:
            decided = self.patches[patch_id] = bool(self.pending.get(("patch", patch_id)))
        return decided

    def unused(self) -> list[tuple[str, str]]:
        """Recorded step/model/wait operations the current code did not call."""
        return [
            (kind, name)
            for (kind, name), queue in self.pending.items()
            for _ in queue
            if kind not in INCIDENTAL and kind not in DECISIONS and kind != "sleep"
        ]
