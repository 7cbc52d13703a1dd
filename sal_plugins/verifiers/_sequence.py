"""What the one-score-per-sequence reward models share: prefix expansion and score mapping."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from sal_plugins.errors import ConfigError, ScoreCountError
from sal_plugins.verifiers._http import HTTPClient, HTTPEndpoint, server_root
from sal_plugins.verifiers.base import Granularity, Judgement, Trajectory, check_scores

__all__ = ["SequenceRewardModel"]


class SequenceRewardModel:
    """Base of reward models that score a whole (problem, solution) with one number.

    As an outcome verifier each trajectory is sent once. With ``per_step`` every prefix
    (steps 1..k for each k) is sent, so each step is scored by the model's opinion of the solution
    up to it. Either way the whole round goes out as one batch, and answers are mapped back by
    position with the counts checked.
    """

    granularity: Granularity
    score_range: tuple[float, float] | None

    def __init__(
        self,
        *,
        base_url: str | Sequence[str],
        api_key: str | None,
        per_step: bool,
        step_delimiter: str,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None,
        name: str,
        bounded: bool,
    ) -> None:
        if not isinstance(step_delimiter, str):
            raise ConfigError(f"{name}: step_delimiter must be a string")
        self.per_step = per_step
        self.step_delimiter = step_delimiter
        self.name = name
        self.granularity = "step" if per_step else "outcome"
        self.score_range = (0.0, 1.0) if bounded else None
        self.endpoint = HTTPEndpoint(
            server_root(base_url, name),
            verifier=name,
            api_key=api_key,
            timeout=timeout,
            transport=transport,
        )

    async def _score_texts(
        self, client: HTTPClient, problem: str, solutions: list[str]
    ) -> list[float]:
        """One score per solution text, in order (one request for the whole list)."""
        raise NotImplementedError

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        """Score the round in one batched request; per step, every prefix is an input."""
        if not trajectories:
            return []
        solutions: list[str] = []
        counts: list[int] = []
        for trajectory in trajectories:
            steps = trajectory.steps
            prefixes = range(1, len(steps) + 1) if self.per_step else [len(steps)]
            for end in prefixes:
                solutions.append(self.step_delimiter.join(steps[:end]))
            counts.append(len(prefixes))
        async with self.endpoint.client() as client:
            scores = await self._score_texts(client, problem, solutions)
        if len(scores) != len(solutions):
            raise ScoreCountError(
                f"the server returned {len(scores)} scores for {len(solutions)} inputs",
                verifier=self.name,
            )
        rows: list[Judgement] = []
        offset = 0
        for count in counts:
            rows.append(Judgement(tuple(scores[offset : offset + count])))
            offset += count
        return check_scores(self, trajectories, rows)
