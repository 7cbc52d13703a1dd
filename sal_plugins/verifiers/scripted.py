"""A scripted verifier for tests: scores from a function, and it counts what it served."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sal_plugins.verifiers.base import Granularity, Judgement, Trajectory

__all__ = ["ScriptedVerifier"]

StepScorer = Callable[[str, str], float]
"""``score(problem, step) -> float``: the score of one step, independent of the others."""


@dataclass
class ScriptedVerifier:
    """Scores every step with ``step_score(problem, step)``; counts calls and trajectories.

    Args:
        step_score: the per-step scoring function.
        granularity: ``"step"`` (one score per step) or ``"outcome"`` (the last step's score only).
        fail_when: ``fail_when(steps)`` true makes a call containing that trajectory raise ``error``.
        error: the exception raised by ``fail_when`` (a ``RuntimeError`` by default).
        delay_s: seconds each call takes.
    """

    step_score: StepScorer
    granularity: Granularity = "step"
    score_range: tuple[float, float] | None = None
    fail_when: Callable[[tuple[str, ...]], bool] | None = None
    error: Callable[[], Exception] = field(
        default=lambda: RuntimeError("scripted verifier failure")
    )
    delay_s: float = 0.0
    name: str = "ScriptedVerifier"
    calls: int = field(default=0, init=False)
    trajectories_scored: int = field(default=0, init=False)

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        """Score each trajectory; raise if ``fail_when`` matches any of them."""
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_when is not None and any(self.fail_when(t.steps) for t in trajectories):
            raise self.error()
        self.trajectories_scored += len(trajectories)
        rows = []
        for trajectory in trajectories:
            scores = tuple(self.step_score(problem, step) for step in trajectory.steps)
            rows.append(Judgement(scores[-1:] if self.granularity == "outcome" else scores))
        return rows
