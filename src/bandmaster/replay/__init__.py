"""Record and replay: every run is a recording; replay it with the current code.

    report = await replay_runs(triage, db="bm.db", runs="status=completed since=7d")
    report.changed          # runs whose routes, steps or output changed
    report.assert_no_changes()

See ``replay_runs`` for the options (live models, golden labels). Before a deploy,
``check_determinism`` tells whether the new code would resume the recorded runs.
"""

from bandmaster.replay._determinism import DeterminismReport, Divergent, check_determinism
from bandmaster.replay._golden import load_labels
from bandmaster.replay._harness import replay_runs
from bandmaster.replay._recording import Recording, RecordingSource, RunQuery
from bandmaster.replay._report import (
    DivergenceInfo,
    GoldenScore,
    ModelCall,
    ReplayReport,
    RouteTaken,
    RunReplay,
    describe,
)

__all__ = [
    "DeterminismReport",
    "DivergenceInfo",
    "Divergent",
    "GoldenScore",
    "ModelCall",
    "Recording",
    "RecordingSource",
    "ReplayReport",
    "RouteTaken",
    "RunQuery",
    "RunReplay",
    "check_determinism",
    "describe",
    "load_labels",
    "replay_runs",
]
