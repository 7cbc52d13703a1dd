"""Wrap a plain (sync or async) function as a verifier."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence

from sal_plugins.errors import ConfigError
from sal_plugins.verifiers.base import Granularity, Judgement, Trajectory

__all__ = ["FunctionVerifier", "ScoreFunction"]

ScoreFunction = Callable[
    [str, list[str]], "float | Sequence[float] | Awaitable[float | Sequence[float]]"
]


class FunctionVerifier:
    """A verifier from ``fn(problem, steps) -> float | list[float]``, sync or async.

    A float scores the last step (an outcome score); a list scores every step and must have one
    entry per step. Sync functions run in a worker thread so they never block the event loop.

    Args:
        fn: the scoring function.
        score_range: inclusive range the scores must fall in (``None``: any finite number).
        name: name used in errors and the tree (defaults to the function's name).

    Example:
        >>> verifier = FunctionVerifier(lambda problem, steps: 1.0 if "42" in steps[-1] else 0.0)
    """

    granularity: Granularity = "mixed"

    def __init__(
        self,
        fn: ScoreFunction,
        *,
        score_range: tuple[float, float] | None = None,
        name: str | None = None,
    ) -> None:
        if not callable(fn):
            raise ConfigError(f"FunctionVerifier needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.score_range = score_range
        self.name = name or getattr(fn, "__name__", "FunctionVerifier")
        self._is_async = inspect.iscoroutinefunction(fn)

    async def _call(self, problem: str, steps: list[str]) -> float | Sequence[float]:
        if self._is_async:
            return await self.fn(problem, steps)  # type: ignore[no-any-return,misc]
        value = await asyncio.to_thread(self.fn, problem, steps)
        if inspect.isawaitable(value):
            value = await value
        return value  # type: ignore[return-value]

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        """Call the function once per trajectory, concurrently."""
        values = await asyncio.gather(*(self._call(problem, list(t.steps)) for t in trajectories))
        rows: list[Judgement] = []
        for value in values:
            if isinstance(value, int | float):
                rows.append(Judgement((float(value),)))
            else:
                rows.append(Judgement(tuple(float(v) for v in value)))
        return rows
