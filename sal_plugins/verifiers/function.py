"""Wrap a plain (sync or async) function as a verifier."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence

from sal_plugins.errors import ConfigError, VerifierError
from sal_plugins.verifiers._scores import gather_all
from sal_plugins.verifiers.base import Granularity, Judgement, Trajectory, check_scores

__all__ = ["FunctionVerifier", "ScoreFunction"]

ScoreFunction = Callable[
    [str, list[str]], float | Sequence[float] | Awaitable[float | Sequence[float]]
]


class FunctionVerifier:
    """A verifier from ``fn(problem, steps) -> float | list[float]``, sync or async.

    A float scores the last step (an outcome score); a list scores every step and must have one
    entry per step. Sync functions run in a worker thread so they never block the event loop.

    Whatever goes wrong inside the function (it raises, or returns something that is not a
    number or does not convert to a finite float, such as ``10**400``) surfaces as
    :class:`~sal_plugins.errors.VerifierError` naming this verifier, chained to the original
    error, so the search records it as a failure of that candidate. A ``VerifierError`` the
    function raises itself, already naming a verifier, passes through as it is. Cancellation
    (``asyncio.CancelledError``) and ``KeyboardInterrupt``/``SystemExit`` are never wrapped. The
    driver retries only transient provider faults, so a function calling a flaky service should
    retry on its own.

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
        fn_name = getattr(fn, "__name__", None)
        self.name = name or (fn_name if fn_name and fn_name != "<lambda>" else "FunctionVerifier")
        self._is_async = inspect.iscoroutinefunction(fn)

    async def _call(self, problem: str, steps: list[str]) -> float | Sequence[float]:
        """Call the function, with every failure of it typed as this verifier's error."""
        try:
            return await self._call_unchecked(problem, steps)
        except VerifierError as error:
            if error.verifier:
                raise
            raise self._failed(error) from error
        except Exception as error:  # the user's code: anything may come out of it
            raise self._failed(error) from error

    def _failed(self, error: Exception) -> VerifierError:
        return VerifierError(
            f"the scoring function raised {type(error).__name__}: {_describe(error, str)}",
            verifier=self.name,
        )

    async def _call_unchecked(self, problem: str, steps: list[str]) -> float | Sequence[float]:
        if self._is_async:
            return await self.fn(problem, steps)  # type: ignore[no-any-return,misc]
        value = await asyncio.to_thread(self.fn, problem, steps)
        if inspect.isawaitable(value):
            value = await value
        return value  # type: ignore[return-value]

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        """Call the function once per trajectory, concurrently."""
        values = await gather_all(*(self._call(problem, list(t.steps)) for t in trajectories))
        rows = [Judgement(self._scores(index, value)) for index, value in enumerate(values)]
        return check_scores(self, trajectories, rows)

    def _scores(self, index: int, value: object) -> tuple[float, ...]:
        """A float (or numpy scalar) is one score; a list (or array) is one score per step."""
        try:
            if isinstance(value, str | bytes):
                raise TypeError
            if hasattr(value, "__float__") and not hasattr(value, "__len__"):
                return (float(value),)  # type: ignore[arg-type]
            return tuple(float(v) for v in value)  # type: ignore[attr-defined]
        # Not only TypeError/ValueError: float() of a huge int raises OverflowError, and a
        # user-defined __float__ or __iter__ may raise anything.
        except Exception as error:
            raise VerifierError(
                f"returned {_describe(value, repr)} for trajectory {index}; expected a float or "
                "a list of floats",
                verifier=self.name,
            ) from error


def _describe(value: object, show: Callable[[object], str], limit: int = 200) -> str:
    """``show(value)`` cut to ``limit`` characters, or a placeholder if it cannot be shown.

    Showing can itself fail: ``repr`` of an int over 4300 digits raises ValueError, and a
    user's ``__repr__``/``__str__`` may raise anything. An error message must not.
    """
    try:
        text = show(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."
