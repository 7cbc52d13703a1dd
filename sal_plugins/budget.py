"""Compute budgets: caps on calls, tokens, cost and wall-clock time, counting verifier work too.

A :class:`Budget` is configuration. The driver checks it before every request it sends; once a cap
is reached no new request starts, the search ends gracefully with the best result found so far,
and ``result.stop_reason`` says ``"budget"`` or ``"deadline"``. Budgets compose with ``&``: the
tighter cap of each kind wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

from sal_plugins.errors import ConfigError
from sal_plugins.results import Usage

__all__ = ["Budget"]

_Number = TypeVar("_Number", int, float)


@dataclass(frozen=True)
class Budget:
    """Caps on what one search may spend. ``None`` means no cap.

    Args:
        max_calls: generation plus verifier requests.
        max_tokens: prompt plus completion tokens, the solver's and those the verifier reports.
        max_cost: money, in the unit of the solver's :class:`~sal_plugins.solvers.base.Pricing`.
        deadline_s: wall-clock seconds from the start of the search; requests still running at the
            deadline are cancelled.

    Note:
        Calls are checked before a request starts, so a search never exceeds ``max_calls``. Tokens
        and cost are only known once a request returns: requests already running when the cap is
        reached still finish, so the last round may overshoot by at most one round's work.
    """

    max_calls: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    deadline_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens"):
            value = self.__dict__[name]
            whole = isinstance(value, int) and not isinstance(value, bool)
            if value is not None and not (whole and value > 0):
                raise ConfigError(
                    f"Budget({name}={value!r}): must be a positive whole number, or None for no cap"
                )
        for name in ("max_cost", "deadline_s"):
            value = self.__dict__[name]
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not (number and math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"Budget({name}={value!r}): must be a positive finite number, or None for "
                    "no cap"
                )

    def __and__(self, other: Budget) -> Budget:
        return Budget(
            max_calls=_tighter(self.max_calls, other.max_calls),
            max_tokens=_tighter(self.max_tokens, other.max_tokens),
            max_cost=_tighter(self.max_cost, other.max_cost),
            deadline_s=_tighter(self.deadline_s, other.deadline_s),
        )

    def calls_left(self, usage: Usage) -> int | None:
        """How many more requests may start (``None``: unlimited)."""
        if self.max_calls is None:
            return None
        return max(0, self.max_calls - usage.calls)

    def exhausted(self, usage: Usage, elapsed_s: float) -> str | None:
        """``"deadline"`` or ``"budget"`` if a cap is reached, else ``None``."""
        if self.deadline_s is not None and elapsed_s >= self.deadline_s:
            return "deadline"
        if self.max_calls is not None and usage.calls >= self.max_calls:
            return "budget"
        if self.max_tokens is not None and usage.total_tokens >= self.max_tokens:
            return "budget"
        if self.max_cost is not None and usage.cost is not None and usage.cost >= self.max_cost:
            return "budget"
        return None


def _tighter(a: _Number | None, b: _Number | None) -> _Number | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
