"""Deciding between models: rule routers over safe expressions, and learned cascades."""

from typing import TYPE_CHECKING

from bandmaster._lazy import lazy_loader
from bandmaster.routing._cascade import Cascade, CascadeSearch, ConfidenceScorer, Scorer, StageAnswer
from bandmaster.routing._cascade_fit import Evaluation, FitReport
from bandmaster.routing._expr import Expression, ExpressionError
from bandmaster.routing._fit import AgreementScorer, Example
from bandmaster.routing._question import (
    GainScorer,
    QuestionModel,
    QuestionRouter,
    QuestionScorer,
    RandomMix,
)
from bandmaster.routing._router import RouteDecision, Router
from bandmaster.routing._signals import LogprobConfidence, SelfConsistency, Verified
from bandmaster.routing._strategy import StrategyReport, select_strategy

__all__ = [
    "FAMILIES",
    "AgreementScorer",
    "Cascade",
    "CascadeSearch",
    "Comparison",
    "ConfidenceScorer",
    "Evaluation",
    "Example",
    "Expression",
    "ExpressionError",
    "FitReport",
    "GainScorer",
    "LogprobConfidence",
    "Option",
    "Outcomes",
    "QuestionModel",
    "QuestionRouter",
    "QuestionScorer",
    "RandomMix",
    "RouteDecision",
    "Router",
    "Scorer",
    "SelfConsistency",
    "StageAnswer",
    "StrategyReport",
    "ThresholdTuner",
    "Verified",
    "collect",
    "select",
    "select_strategy",
]

# Names other rooms use, loaded on first use.
_LAZY = {
    "Comparison": "bandmaster.routing._strategy",
    "FAMILIES": "bandmaster.routing._strategy",
    "Option": "bandmaster.routing._strategy",
    "Outcomes": "bandmaster.routing._fit",
    "ThresholdTuner": "bandmaster.routing._feedback",
    "collect": "bandmaster.routing._fit",
    "select": "bandmaster.routing._strategy",
}

if TYPE_CHECKING:
    from bandmaster.routing._feedback import ThresholdTuner
    from bandmaster.routing._fit import Outcomes, collect
    from bandmaster.routing._strategy import FAMILIES, Comparison, Option, select
else:
    __getattr__, __dir__ = lazy_loader(__name__, _LAZY)
