"""Online threshold tuning from feedback (a reviewer's override says an accepted answer was
wrong; an unchanged auto-reply says it was right).

For each stage the tuner keeps a decayed count of feedback on answers that stage accepted. Every
``every`` events it compares the observed accuracy with the accuracy the fit expected: clearly
worse raises that stage's threshold (escalate more), clearly better lowers it (save cost).
Guard rails: one step per update, and never further than ``max_drift`` from the fitted value,
so a burst of feedback (or an attacker flooding it) cannot swing the cascade.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ThresholdTuner:
    fitted: list[float]  # thresholds as fitted offline
    expected: list[float]  # accuracy the fit expects of answers each stage accepts
    step_up: float = 0.02
    step_down: float = 0.01
    max_drift: float = 0.1
    margin: float = 0.03
    every: int = 20
    decay: float = 0.98
    thresholds: list[float] = field(default_factory=list)
    _right: list[float] = field(default_factory=list)
    _seen: list[float] = field(default_factory=list)
    _pending: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.thresholds = list(self.thresholds or self.fitted)
        stages = len(self.fitted)
        self._right, self._seen, self._pending = [0.0] * stages, [0.0] * stages, [0] * stages

    def observe(self, stage: int, correct: bool) -> list[float]:
        """Record feedback on an answer accepted at ``stage``; returns the thresholds."""
        if stage >= len(self.fitted):
            return self.thresholds  # the last stage has no threshold to tune
        self._right[stage] = self._right[stage] * self.decay + float(correct)
        self._seen[stage] = self._seen[stage] * self.decay + 1.0
        self._pending[stage] += 1
        if self._pending[stage] >= self.every:
            self._pending[stage] = 0
            self._adjust(stage)
        return self.thresholds

    def observed(self, stage: int) -> float | None:
        return self._right[stage] / self._seen[stage] if self._seen[stage] else None

    def _adjust(self, stage: int) -> None:
        accuracy = self.observed(stage)
        if accuracy is None:
            return
        low = self.fitted[stage] - self.max_drift
        high = self.fitted[stage] + self.max_drift
        current = self.thresholds[stage]
        if accuracy < self.expected[stage] - self.margin:
            current += self.step_up
        elif accuracy > self.expected[stage] + self.margin:
            current -= self.step_down
        self.thresholds[stage] = min(high, max(low, current))
