"""Search strategies: one module each, all driven by the same engine."""

from sal_plugins.strategies.base import Aggregation, Expand, Outcome, Plan, Score, SearchStrategy
from sal_plugins.strategies.beam_search import BeamSearch
from sal_plugins.strategies.best_of_n import BestOfN, Selection

__all__ = [
    "Aggregation",
    "BeamSearch",
    "BestOfN",
    "Expand",
    "Outcome",
    "Plan",
    "Score",
    "SearchStrategy",
    "Selection",
]
