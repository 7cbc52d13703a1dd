"""The verifier protocol: score a batch of partial or complete solutions, one score per step.

A verifier sees one problem and the trajectories of one search round, and returns for each
trajectory either one score per step (a process reward model) or a single score for the last step
(an outcome scorer, ``granularity = "outcome"``). The search driver checks every answer with
:func:`check_scores`, so a verifier that returns the wrong count or a NaN fails loudly, by name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from sal_plugins.errors import InvalidScoreError, ScoreCountError

__all__ = [
    "Granularity",
    "Judgement",
    "Trajectory",
    "Verifier",
    "check_scores",
    "verifier_name",
]

Granularity = Literal["step", "outcome", "mixed"]
"""``step``: one score per step; ``outcome``: one score per trajectory; ``mixed``: either, per row."""


@dataclass(frozen=True)
class Trajectory:
    """A (partial) solution to be scored.

    Attributes:
        steps: the steps so far, without delimiters.
        finished: whether the solver ended the solution.
        token_logprobs: per step, the solver's token log-probabilities when it returned them
            (``None`` for a step without them). Used by verifiers such as self-certainty.
    """

    steps: tuple[str, ...]
    finished: bool = False
    token_logprobs: tuple[tuple[float, ...] | None, ...] | None = None


@dataclass(frozen=True)
class Judgement:
    """Scores for one trajectory, with an optional critique (what a judge said was wrong).

    Attributes:
        step_scores: one score per step, or a single score for an outcome verifier.
        critique: free text that self-revision can show the solver.
    """

    step_scores: tuple[float, ...]
    critique: str | None = None


ScoreRow = Sequence[float] | Judgement


@runtime_checkable
class Verifier(Protocol):
    """Anything that can score trajectories.

    Attributes:
        granularity: ``"step"`` if it returns one score per step, ``"outcome"`` if one per trajectory,
            ``"mixed"`` if either, row by row.
        score_range: the inclusive range its scores fall in, or ``None`` if unbounded.
    """

    granularity: Granularity
    score_range: tuple[float, float] | None

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> Sequence[ScoreRow]:
        """Score every trajectory of one problem; return one row per trajectory, in order."""
        ...


def verifier_name(verifier: object) -> str:
    """The name used in error messages and the search tree."""
    return str(getattr(verifier, "name", None) or type(verifier).__name__)


def check_scores(
    verifier: Verifier, trajectories: Sequence[Trajectory], rows: Sequence[ScoreRow]
) -> list[Judgement]:
    """Validate a verifier's answer and normalise it to :class:`Judgement` rows.

    Raises:
        ScoreCountError: the number of rows, or of scores in a row, does not match the input.
        InvalidScoreError: a score is NaN, infinite, or outside ``verifier.score_range``.
    """
    name = verifier_name(verifier)
    if len(rows) != len(trajectories):
        raise ScoreCountError(
            f"returned {len(rows)} score rows for {len(trajectories)} trajectories",
            verifier=name,
        )
    granularity = getattr(verifier, "granularity", "step")
    bounds = getattr(verifier, "score_range", None)
    judgements: list[Judgement] = []
    for index, (trajectory, row) in enumerate(zip(trajectories, rows, strict=True)):
        judgement = row if isinstance(row, Judgement) else Judgement(tuple(float(s) for s in row))
        expected = 1 if granularity == "outcome" else len(trajectory.steps)
        count = len(judgement.step_scores)
        if count != expected and not (granularity == "mixed" and count == 1):
            raise ScoreCountError(
                f"returned {len(judgement.step_scores)} scores for trajectory {index}, which has "
                f"{len(trajectory.steps)} steps (a {granularity} verifier must return {expected}"
                + (" or 1" if granularity == "mixed" else "")
                + ")",
                verifier=name,
            )
        for value in judgement.step_scores:
            if not math.isfinite(value):
                raise InvalidScoreError(
                    f"returned a non-finite score ({value}) for trajectory {index}", verifier=name
                )
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                raise InvalidScoreError(
                    f"returned {value} for trajectory {index}, outside its declared range "
                    f"[{bounds[0]}, {bounds[1]}]",
                    verifier=name,
                )
        judgements.append(judgement)
    return judgements
