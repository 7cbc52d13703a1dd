"""Score a solution by how sure the solver itself was of it: no second model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from sal_plugins.errors import ConfigError, VerifierError
from sal_plugins.verifiers.base import Granularity, Judgement, Trajectory, check_scores

__all__ = ["SelfCertaintyVerifier"]


class SelfCertaintyVerifier:
    """Scores each trajectory from the token log-probabilities its solver reported.

    The search driver sees ``needs_logprobs = True``, asks the solver for logprobs, and passes
    them in :attr:`Trajectory.token_logprobs` (one tuple per generated node on the path). With
    ``reduction="mean"`` (default) the score is the geometric-mean token probability

        ``score = exp(mean(log p(token)))``  (= 1 / perplexity, in (0, 1])

    over the last ``window`` tokens (all when ``None``); ``reduction="min"`` uses the least likely
    token instead (``exp(min log p)``), which punishes a single guess. Confident solutions score
    near 1. The score covers the whole trajectory (``granularity = "outcome"``): a node's
    tokens can span several steps, so there is no honest per-step split.

    Args:
        reduction: ``"mean"`` or ``"min"`` (see above).
        window: use only the last ``window`` tokens (``None``: all of them).
        name: name used in errors and the tree.

    Raises:
        VerifierError: (when scoring) a trajectory carries no logprobs, i.e. the solver does not
            return them.

    Example:
        >>> verifier = SelfCertaintyVerifier()
        >>> search = sal.BestOfN(solver=solver, verifier=verifier, n=8)  # doctest: +SKIP
    """

    granularity: Granularity = "outcome"
    score_range: tuple[float, float] | None = (0.0, 1.0)
    needs_logprobs = True

    def __init__(
        self,
        *,
        reduction: Literal["mean", "min"] = "mean",
        window: int | None = None,
        name: str = "SelfCertaintyVerifier",
    ) -> None:
        if reduction not in ("mean", "min"):
            raise ConfigError(f"{name}: reduction must be 'mean' or 'min', got {reduction!r}")
        if window is not None and window < 1:
            raise ConfigError(f"{name}: window must be at least 1, got {window}")
        self.reduction = reduction
        self.window = window
        self.name = name

    def certainty(self, logprobs: Sequence[float]) -> float:
        """The score of one token log-probability sequence."""
        values = list(logprobs)[-self.window :] if self.window else list(logprobs)
        if any(math.isnan(v) or v > 1e-6 for v in values):
            raise VerifierError(
                "log-probabilities must be finite and <= 0 (got a NaN or a positive value)",
                verifier=self.name,
            )
        if self.reduction == "min":
            return math.exp(min(values))
        return math.exp(sum(values) / len(values))

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        """One score per trajectory from its tokens' log-probabilities."""
        rows = []
        for index, trajectory in enumerate(trajectories):
            tokens = [value for node in trajectory.token_logprobs or () if node for value in node]
            if not tokens:
                raise VerifierError(
                    f"trajectory {index} carries no token logprobs; use a solver that returns "
                    "them (OpenAISolver, LlamaCppSolver)",
                    verifier=self.name,
                )
            rows.append(Judgement((min(1.0, self.certainty(tokens)),)))
        return check_scores(self, trajectories, rows)
