"""Search strategies: one module each, all driven by the same engine.

:data:`STRATEGIES` maps the public names (``"best_of_n"``, ``"beam_search"``, ...) to classes;
:func:`strategy_class` looks one up, accepting hyphenated spellings too. The CLI and the framework
facades take these names.
"""

from __future__ import annotations

from sal_plugins.errors import ConfigError
from sal_plugins.strategies.base import Aggregation, Expand, Outcome, Plan, Score, SearchStrategy
from sal_plugins.strategies.beam_search import BeamSearch
from sal_plugins.strategies.best_of_n import BestOfN, Selection
from sal_plugins.strategies.dvts import DVTS
from sal_plugins.strategies.self_revision import SelfRevision

__all__ = [
    "DVTS",
    "STRATEGIES",
    "Aggregation",
    "BeamSearch",
    "BestOfN",
    "Expand",
    "Outcome",
    "Plan",
    "Score",
    "SearchStrategy",
    "Selection",
    "SelfRevision",
    "strategy_class",
]

STRATEGIES: dict[str, type[SearchStrategy]] = {
    BestOfN.name: BestOfN,
    BeamSearch.name: BeamSearch,
    DVTS.name: DVTS,
    SelfRevision.name: SelfRevision,
}


def strategy_class(name: str) -> type[SearchStrategy]:
    """The strategy class for a public name (``"beam_search"`` or ``"beam-search"``)."""
    key = name.strip().lower().replace("-", "_")
    try:
        return STRATEGIES[key]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise ConfigError(f"unknown strategy {name!r}: choose one of {known}") from None
