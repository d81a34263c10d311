"""The hook behind ``Engine(live_steps=True)``: each step, as it starts, becomes a marker row in
the journal's ``stream_chunks`` side channel, so observers (the SSE endpoint, ``bandmaster runs
watch``) see steps running, not only once they are journaled.

Off by default: the journal records a step once, when it ends. With the option, a started step
costs a list append; the markers of a batch go in one INSERT through the store's group commit,
never awaited on the step's path. Only the step's seq, name and kind are published (code, not
user data), never its input, so redacting workflows are covered too.
"""

from __future__ import annotations

from bandmaster.engine.hooks import Hooks, RunFinished, StepStarted
from bandmaster.store import SQLiteStore, StepMarkers


class LiveSteps(Hooks):
    """Publishes step starts; the engine attaches its store when it opens."""

    def __init__(self) -> None:
        self.markers: StepMarkers | None = None

    def attach(self, store: SQLiteStore) -> None:
        self.markers = StepMarkers(store)

    def step_started(self, event: StepStarted) -> None:
        if self.markers is not None:
            self.markers.add(event.run_id, event.seq, event.name, event.kind, event.started)

    def run_finished(self, event: RunFinished) -> None:
        # Released: the run goes on in another execution, whose markers must stay.
        if self.markers is not None and event.outcome != "released":
            self.markers.run_ended(event.run_id)
