"""Deciding between models: rule routers over safe expressions, and learned cascades."""

from bandmaster.routing.cascade import Cascade, CascadeSearch, ConfidenceScorer, Scorer, StageAnswer
from bandmaster.routing.cascade_fit import Evaluation, FitReport
from bandmaster.routing.expr import Expression, ExpressionError
from bandmaster.routing.fit import AgreementScorer, Example
from bandmaster.routing.question import (
    GainScorer,
    QuestionModel,
    QuestionRouter,
    QuestionScorer,
    RandomMix,
)
from bandmaster.routing.router import RouteDecision, Router
from bandmaster.routing.signals import LogprobConfidence, SelfConsistency, Verified
from bandmaster.routing.strategy import StrategyReport, select_strategy

__all__ = [
    "AgreementScorer",
    "Cascade",
    "CascadeSearch",
    "ConfidenceScorer",
    "Evaluation",
    "Example",
    "Expression",
    "ExpressionError",
    "FitReport",
    "GainScorer",
    "LogprobConfidence",
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
    "Verified",
    "select_strategy",
]
