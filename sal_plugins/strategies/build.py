"""Strategies by name: the registry, and :func:`build_strategy`, which every surface calls.

The CLI (``sal run --strategy beam-search``), the LangChain runnables and ``SearchChatModel``, and
the LlamaIndex workflows, query engine, tool and ``SearchLLM`` all call :func:`build_strategy`, so
a name, a setting or a mistake means the same everywhere. A framework's own models (a LangChain
chat model, a LlamaIndex ``LLM``) are turned into a solver or a judge by hooks the integration
passes in; the core never imports a framework.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from sal_plugins.errors import ConfigError
from sal_plugins.strategies.ab_mcts import ABMCTS
from sal_plugins.strategies.adaptive import Adaptive
from sal_plugins.strategies.base import SearchStrategy
from sal_plugins.strategies.beam_search import BeamSearch
from sal_plugins.strategies.best_of_n import BestOfN
from sal_plugins.strategies.dvts import DVTS
from sal_plugins.strategies.particle_filter import ParticleFilter
from sal_plugins.strategies.self_revision import SelfRevision

__all__ = ["STRATEGIES", "Coerce", "build_strategy", "strategy_class", "strategy_settings"]

STRATEGIES: dict[str, type[SearchStrategy]] = {
    BestOfN.name: BestOfN,
    BeamSearch.name: BeamSearch,
    DVTS.name: DVTS,
    SelfRevision.name: SelfRevision,
    ParticleFilter.name: ParticleFilter,
    ABMCTS.name: ABMCTS,
    Adaptive.name: Adaptive,
}
"""The strategies by public name."""

Coerce = Callable[[Any], Any]
"""A hook that turns a framework's model into a sal solver or verifier (anything else it returns
unchanged, for the strategy to validate)."""

_PARTS = frozenset({"solver", "verifier"})


def strategy_class(name: str) -> type[SearchStrategy]:
    """The strategy class for a public name (``"beam_search"``; any case, hyphens accepted).

    Raises:
        ConfigError: the name is not a strategy's.
    """
    key = name.strip().lower().replace("-", "_")
    try:
        return STRATEGIES[key]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise ConfigError(
            f"unknown strategy {name!r}: choose one of {known} (hyphens accepted, e.g. beam-search)"
        ) from None


def strategy_settings(strategy: type[SearchStrategy]) -> list[str]:
    """The keyword arguments of ``strategy`` other than ``solver`` and ``verifier``."""
    return [name for name in strategy.model_fields if name not in _PARTS]


def build_strategy(
    strategy: str | SearchStrategy,
    *,
    solver: Any = None,
    verifier: Any = None,
    coerce_solver: Coerce | None = None,
    coerce_verifier: Coerce | None = None,
    **settings: Any,
) -> SearchStrategy:
    """A validated strategy from a public name and its keyword arguments.

    The verifier may declare defaults for the strategies that use it: a verifier with a
    ``preferred_aggregation`` attribute (``ArithmeticVerifier`` prefers ``"mean"``: its steps
    score 1, 0 or a neutral 0.5, and the final "The answer is ..." step alone says little) sets
    ``aggregation`` unless ``settings`` name one.

    Args:
        strategy: a name in :data:`STRATEGIES` (``"best_of_n"``, ``"beam_search"``, ``"dvts"``,
            ``"particle_filter"``, ``"ab_mcts"``, ``"adaptive"``, ``"self_revision"``; any case,
            hyphens accepted: ``"beam-search"``), or a configured strategy, which is returned as
            it is (then pass nothing else).
        solver: the model that writes solutions: a sal ``Solver``, or whatever ``coerce_solver``
            accepts.
        verifier: a sal ``Verifier``, a function ``fn(problem, steps) -> float | list[float]``,
            ``None``, or whatever ``coerce_verifier`` accepts.
        coerce_solver: the integration's hook turning its framework's model into a solver; called
            on ``solver`` before validation.
        coerce_verifier: the same for ``verifier`` (a chat model becomes an LLM judge, say).
        **settings: the strategy's other keyword arguments (``n``, ``beam_width``, ``seed``, ...).

    Returns:
        The configured strategy.

    Raises:
        ConfigError: the name is unknown, no solver was given, a setting belongs to another
            strategy or to none, or a value cannot work; the message names the fix.

    Example:
        >>> search = build_strategy("beam-search", solver=solver, verifier=prm, n=8)  # doctest: +SKIP
        >>> search.beam_width  # doctest: +SKIP
        4
    """
    if isinstance(strategy, SearchStrategy):
        parts = {"solver": solver, "verifier": verifier}
        given = sorted([*settings, *(name for name, part in parts.items() if part is not None)])
        if given:
            raise ConfigError(
                f"got a configured {type(strategy).__name__} and keyword arguments "
                f"({', '.join(given)}): pass either the strategy object or a strategy name with "
                "its arguments"
            )
        return strategy
    if not isinstance(strategy, str):
        raise ConfigError(
            "strategy must be a name such as 'beam_search' or a configured SearchStrategy, got "
            f"{type(strategy).__name__}"
        )
    cls = strategy_class(strategy)
    _check_settings(cls, settings)
    if solver is None:
        raise ConfigError(
            f"{cls.name} needs a solver: pass solver=<the model that writes solutions>"
        )
    if coerce_solver is not None:
        solver = coerce_solver(solver)
    if verifier is not None and coerce_verifier is not None:
        verifier = coerce_verifier(verifier)
    preferred = getattr(verifier, "preferred_aggregation", None)
    if isinstance(preferred, str) and "aggregation" not in settings:
        settings["aggregation"] = preferred
    return cls(solver=solver, verifier=verifier, **settings)


def _check_settings(cls: type[SearchStrategy], settings: dict[str, Any]) -> None:
    """Refuse a setting ``cls`` does not take, naming where it belongs or what was meant."""
    known = strategy_settings(cls)
    for name in settings:
        if name in known:
            continue
        owners = sorted(key for key, other in STRATEGIES.items() if name in other.model_fields)
        if owners:
            hint = f"it is a setting of {', '.join(owners)}"
        else:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"{cls.name} takes {', '.join(known)}"
        raise ConfigError(f"{cls.__name__}({name}=...): unknown argument for {cls.name} ({hint})")
