"""Verifiers built from verifiers: a weighted ensemble, and a cheap-then-expensive cascade."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from sal_plugins.errors import ConfigError
from sal_plugins.verifiers._scores import gather_all
from sal_plugins.verifiers.base import (
    Granularity,
    Judgement,
    Trajectory,
    Verifier,
    check_scores,
    verifier_name,
    wants_logprobs,
)

__all__ = ["CascadeVerifier", "EnsembleVerifier"]

Reduce = Literal["last", "min", "prod", "mean"]


def _reduce(scores: Sequence[float], how: Reduce) -> float:
    if how == "last":
        return scores[-1]
    if how == "min":
        return min(scores)
    if how == "prod":
        return math.prod(scores)
    return sum(scores) / len(scores)


def _bounds(verifier: Verifier, owner: str) -> tuple[float, float]:
    bounds = verifier.score_range
    if bounds is None or not bounds[0] < bounds[1]:
        raise ConfigError(
            f"{owner}: {verifier_name(verifier)} declares no bounded score_range, so its scores "
            "cannot be put on a common [0, 1] scale; give it one (e.g. score_range=(0, 1))"
        )
    return float(bounds[0]), float(bounds[1])


def _normalise(value: float, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return (value - low) / (high - low)


def _critique(judgements: Sequence[Judgement]) -> str | None:
    parts = [j.critique for j in judgements if j.critique]
    return "\n\n".join(parts) or None


class EnsembleVerifier:
    """A weighted mean of several verifiers' scores, each first mapped to [0, 1] by its range.

    Every member scores the whole round, concurrently, and its answer is checked (count, NaN,
    range) under its own name. Granularity is explicit: if every member is a ``"step"``
    verifier the ensemble is one too and averages step by step; otherwise it is an ``"outcome"``
    verifier and each member's row is first reduced to one number with ``reduce`` (``"last"``:
    the last step's score, as an outcome verifier gives). Critiques of members are joined.

    Args:
        verifiers: the members (each with a bounded ``score_range``).
        weights: one non-negative weight per member (equal by default).
        reduce: how a per-step row becomes one number in outcome mode.
        name: name used in errors and the tree.

    Example:
        >>> ensemble = EnsembleVerifier([ArithmeticVerifier(), prm], weights=[1, 3])
        >>> search = sal.BeamSearch(solver=solver, verifier=ensemble, n=8)  # doctest: +SKIP
    """

    score_range: tuple[float, float] | None = (0.0, 1.0)

    def __init__(
        self,
        verifiers: Sequence[Verifier],
        weights: Sequence[float] | None = None,
        *,
        reduce: Reduce = "last",
        name: str = "EnsembleVerifier",
    ) -> None:
        if not verifiers:
            raise ConfigError(f"{name}: needs at least one verifier")
        weights = [1.0] * len(verifiers) if weights is None else [float(w) for w in weights]
        if len(weights) != len(verifiers):
            raise ConfigError(f"{name}: {len(weights)} weights for {len(verifiers)} verifiers")
        if any(w < 0 or not math.isfinite(w) for w in weights) or sum(weights) <= 0:
            raise ConfigError(f"{name}: weights must be finite, non-negative, not all zero")
        self.verifiers = list(verifiers)
        self.bounds = [_bounds(v, name) for v in self.verifiers]
        total = sum(weights)
        self.weights = [w / total for w in weights]
        self.reduce: Reduce = reduce
        self.name = name
        self.granularity: Granularity = (
            "step" if all(v.granularity == "step" for v in verifiers)
            else "outcome"
        )  # fmt: skip
        self.needs_logprobs = any(wants_logprobs(v) for v in verifiers)

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        """Score the round with every member, concurrently, and combine."""
        answers = await gather_all(*(v.score(problem, trajectories) for v in self.verifiers))
        checked = [
            check_scores(v, trajectories, rows)
            for v, rows in zip(self.verifiers, answers, strict=True)
        ]
        rows = []
        for index in range(len(trajectories)):
            per_member = [member[index] for member in checked]
            if self.granularity == "step":
                columns = zip(*(j.step_scores for j in per_member), strict=True)
                scores = tuple(
                    sum(
                        w * _normalise(s, b)
                        for w, s, b in zip(self.weights, column, self.bounds, strict=True)
                    )
                    for column in columns
                )
            else:
                scores = (
                    sum(
                        w * _normalise(_reduce(j.step_scores, self.reduce), b)
                        for w, j, b in zip(self.weights, per_member, self.bounds, strict=True)
                    ),
                )
            rows.append(Judgement(scores, critique=_critique(per_member)))
        return check_scores(self, trajectories, rows)


class CascadeVerifier:
    """A cheap verifier prunes, an expensive one ranks only the survivors.

    The cheap verifier scores the whole round; each trajectory's cheap score is reduced to one
    number (``reduce``) and mapped to [0, 1] by the cheap verifier's range. Survivors are those
    at or above ``threshold`` and/or among the ``keep_top`` best (both may be given: a survivor
    must pass both). Only survivors go to the expensive verifier, in one call.

    The combined score (an outcome score in [0, 1]) keeps every survivor above every pruned one:

    * survivor: ``0.5 + 0.5 * expensive`` (in [0.5, 1]);
    * pruned: ``0.45 * cheap`` (in [0, 0.45]), so pruned trajectories keep their cheap order.

    Args:
        cheap: the fast verifier that prunes.
        expensive: the slow verifier that ranks survivors.
        threshold: minimum normalised cheap score to survive.
        keep_top: keep at most this many trajectories by cheap score.
        reduce: how a per-step row becomes one number.
        name: name used in errors and the tree.

    Example:
        >>> cascade = CascadeVerifier(ArithmeticVerifier(), prm, threshold=0.5)
        >>> search = sal.BestOfN(solver=solver, verifier=cascade, n=16)  # doctest: +SKIP
    """

    granularity: Granularity = "outcome"
    score_range: tuple[float, float] | None = (0.0, 1.0)

    def __init__(
        self,
        cheap: Verifier,
        expensive: Verifier,
        *,
        threshold: float | None = None,
        keep_top: int | None = None,
        reduce: Reduce = "last",
        name: str = "CascadeVerifier",
    ) -> None:
        if threshold is None and keep_top is None:
            raise ConfigError(f"{name}: give threshold=..., keep_top=..., or both")
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"{name}: threshold is a normalised score in [0, 1]")
        if keep_top is not None and keep_top < 1:
            raise ConfigError(f"{name}: keep_top must be at least 1")
        self.cheap = cheap
        self.expensive = expensive
        self.cheap_bounds = _bounds(cheap, name)
        self.expensive_bounds = _bounds(expensive, name)
        self.threshold = threshold
        self.keep_top = keep_top
        self.reduce: Reduce = reduce
        self.name = name
        self.needs_logprobs = any(wants_logprobs(v) for v in (cheap, expensive))

    def survivors(self, cheap_scores: Sequence[float]) -> set[int]:
        """Indices that pass the threshold and the top-k cut."""
        alive = {
            i for i, s in enumerate(cheap_scores) if self.threshold is None or s >= self.threshold
        }
        if self.keep_top is not None:
            ranked = sorted(alive, key=lambda i: (-cheap_scores[i], i))
            alive = set(ranked[: self.keep_top])
        return alive

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        """Prune with the cheap verifier, rank the survivors with the expensive one."""
        if not trajectories:
            return []
        cheap_rows = check_scores(
            self.cheap, trajectories, await self.cheap.score(problem, trajectories)
        )
        cheap = [
            _normalise(_reduce(j.step_scores, self.reduce), self.cheap_bounds) for j in cheap_rows
        ]
        alive = sorted(self.survivors(cheap))
        rows = [
            Judgement((0.45 * s,), critique=j.critique)
            for s, j in zip(cheap, cheap_rows, strict=True)
        ]
        if alive:
            chosen = [trajectories[i] for i in alive]
            expensive_rows = check_scores(
                self.expensive, chosen, await self.expensive.score(problem, chosen)
            )
            for index, judgement in zip(alive, expensive_rows, strict=True):
                value = _normalise(
                    _reduce(judgement.step_scores, self.reduce), self.expensive_bounds
                )
                rows[index] = Judgement(
                    (0.5 + 0.5 * value,), critique=_critique([judgement, cheap_rows[index]])
                )
        return check_scores(self, trajectories, rows)
