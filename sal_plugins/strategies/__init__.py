"""Search strategies: one module each, all driven by the same engine.

:data:`STRATEGIES` maps the public names (``"best_of_n"``, ``"beam_search"``, ...) to classes;
:func:`strategy_class` looks one up, accepting hyphenated spellings too, and
:func:`build_strategy` builds a validated strategy from a name and its settings. The CLI and the
framework facades take these names and build through that one function.
"""

from __future__ import annotations

from sal_plugins.strategies.ab_mcts import ABMCTS
from sal_plugins.strategies.adaptive import Adaptive
from sal_plugins.strategies.base import Aggregation, Expand, Outcome, Plan, Score, SearchStrategy
from sal_plugins.strategies.beam_search import BeamSearch
from sal_plugins.strategies.best_of_n import BestOfN, Selection
from sal_plugins.strategies.build import (
    STRATEGIES,
    Coerce,
    build_strategy,
    strategy_class,
    strategy_settings,
)
from sal_plugins.strategies.dvts import DVTS
from sal_plugins.strategies.particle_filter import ParticleFilter
from sal_plugins.strategies.self_revision import SelfRevision

__all__ = [
    "ABMCTS",
    "DVTS",
    "STRATEGIES",
    "Adaptive",
    "Aggregation",
    "BeamSearch",
    "BestOfN",
    "Coerce",
    "Expand",
    "Outcome",
    "ParticleFilter",
    "Plan",
    "Score",
    "SearchStrategy",
    "Selection",
    "SelfRevision",
    "build_strategy",
    "strategy_class",
    "strategy_settings",
]
