"""The verifier protocol: score a batch of partial or complete solutions, one score per step.

A verifier sees one problem and the trajectories of one search round, and returns for each
trajectory either one score per step (a process reward model) or a single score for the last step
(an outcome scorer, ``granularity = "outcome"``). The search driver checks every answer with
:func:`check_scores`, so a verifier that returns the wrong count or a NaN fails loudly, by name.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, Protocol, TypeGuard, runtime_checkable

from sal_plugins.errors import InvalidScoreError, ScoreCountError

__all__ = [
    "Granularity",
    "Judgement",
    "Trajectory",
    "Verifier",
    "VerifierUsage",
    "check_scores",
    "metered",
    "report_usage",
    "verifier_name",
    "wants_logprobs",
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


_VERIFIER_MEMBERS = ("score", "granularity", "score_range")


def is_verifier(value: object) -> TypeGuard[Verifier]:
    """Whether ``value`` has the :class:`Verifier` protocol's members.

    The same test as ``isinstance(value, Verifier)``, without the cost of a runtime protocol
    check (on Python 3.11 it walks the protocol's members on every call; a search checks its
    verifier several times).
    """
    return all(hasattr(value, member) for member in _VERIFIER_MEMBERS)


@dataclass
class VerifierUsage:
    """Tokens and money a verifier reported while scoring (see :func:`report_usage`).

    Attributes:
        prompt_tokens: prompt tokens its model calls took.
        completion_tokens: tokens its model calls generated.
        cost: money, when the verifier knows its price; ``None`` otherwise.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None


_REPORTED: ContextVar[VerifierUsage | None] = ContextVar("sal_verifier_usage", default=None)


def report_usage(
    prompt_tokens: int = 0, completion_tokens: int = 0, *, cost: float | None = None
) -> None:
    """Report what a model call made by a verifier spent, from inside its ``score``.

    The search counts it in ``usage.verifier_prompt_tokens`` / ``verifier_completion_tokens``
    (and ``usage.cost``), so token and cost budgets see the verifier's work too. Safe to call from
    tasks and threads the ``score`` call starts (they inherit its context); a no-op outside a
    :func:`metered` block.
    """
    usage = _REPORTED.get()
    if usage is None:
        return
    usage.prompt_tokens += max(0, int(prompt_tokens))
    usage.completion_tokens += max(0, int(completion_tokens))
    if cost is not None:
        usage.cost = (usage.cost or 0.0) + cost


@contextlib.contextmanager
def metered() -> Iterator[VerifierUsage]:
    """Collect what :func:`report_usage` reports inside the block (the search driver uses it)."""
    usage = VerifierUsage()
    token = _REPORTED.set(usage)
    try:
        yield usage
    finally:
        _REPORTED.reset(token)


def wants_logprobs(verifier: object) -> bool:
    """Whether a verifier declares ``needs_logprobs = True`` (it scores the solver's logprobs).

    The one place the search reads that declaration; a verifier that does not declare it needs
    none.
    """
    return bool(getattr(verifier, "needs_logprobs", False))


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
    granularity = verifier.granularity
    bounds = verifier.score_range
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
