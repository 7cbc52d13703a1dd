"""Accuracy per arm with Wilson confidence intervals, and what each arm spent."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sal_plugins.eval.runner import Arm, Record

__all__ = ["ArmSummary", "format_table", "summarize", "wilson_interval"]


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0/n and n/n, which
    matters for the small slices evaluations often run on.

    Examples:
        >>> [round(x, 3) for x in wilson_interval(8, 10)]
        [0.49, 0.943]
        >>> wilson_interval(0, 0)
        (0.0, 1.0)
    """
    if total <= 0:
        return (0.0, 1.0)
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class ArmSummary:
    """One row of the results table: an arm's accuracy and mean spend per problem.

    Attributes:
        strategy: the strategy name.
        n: the arm's sample count.
        problems: problems recorded.
        correct: problems answered correctly.
        accuracy: ``correct / problems``.
        ci_low: lower end of the 95% Wilson interval.
        ci_high: upper end of it.
        generation_calls: mean solver requests per problem.
        verifier_calls: mean verifier requests per problem.
        completion_tokens: mean generated tokens per problem.
        total_tokens: mean prompt plus generated tokens per problem, the verifier's included.
        wall_time_s: mean seconds per problem.
        errors: searches that raised.
        stated: share of graded answers the solution stated (the rest: its last number).
    """

    strategy: str
    n: int
    problems: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    generation_calls: float
    verifier_calls: float
    completion_tokens: float
    total_tokens: float
    wall_time_s: float
    errors: int
    stated: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


def summarize(records: Iterable[Record]) -> list[ArmSummary]:
    """One summary per arm, ordered by strategy (first seen) then ``n``."""
    by_arm: dict[Arm, list[Record]] = defaultdict(list)
    order: dict[str, int] = {}
    for record in records:
        by_arm[record.arm].append(record)
        order.setdefault(record.strategy, len(order))
    rows = []
    for arm in sorted(by_arm, key=lambda a: (order[a.strategy], a.n)):
        group = by_arm[arm]
        correct = sum(r.correct for r in group)
        low, high = wilson_interval(correct, len(group))
        rows.append(
            ArmSummary(
                strategy=arm.strategy,
                n=arm.n,
                problems=len(group),
                correct=correct,
                accuracy=correct / len(group),
                ci_low=low,
                ci_high=high,
                generation_calls=_mean(r.generation_calls for r in group),
                verifier_calls=_mean(r.verifier_calls for r in group),
                completion_tokens=_mean(r.completion_tokens for r in group),
                total_tokens=_mean(
                    r.prompt_tokens + r.completion_tokens + r.verifier_tokens for r in group
                ),
                wall_time_s=_mean(r.wall_time_s for r in group),
                errors=sum(r.error is not None for r in group),
                stated=_mean(float(r.answer_source == "stated") for r in group),
            )
        )
    return rows


HEADERS = (
    "strategy",
    "N",
    "problems",
    "accuracy",
    "95% CI",
    "gen calls",
    "verifier calls",
    "gen tokens",
    "all tokens",
    "s/problem",
    "stated",
    "errors",
)


def table_rows(summaries: Sequence[ArmSummary]) -> list[tuple[str, ...]]:
    """The table's cells as strings, one tuple per arm, matching :data:`HEADERS`."""
    return [
        (
            s.strategy,
            str(s.n),
            str(s.problems),
            f"{s.accuracy:.1%}",
            f"{s.ci_low:.1%}-{s.ci_high:.1%}",
            f"{s.generation_calls:.1f}",
            f"{s.verifier_calls:.1f}",
            f"{s.completion_tokens:.0f}",
            f"{s.total_tokens:.0f}",
            f"{s.wall_time_s:.2f}",
            f"{s.stated:.0%}",
            str(s.errors),
        )
        for s in summaries
    ]


def format_table(summaries: Sequence[ArmSummary]) -> str:
    """The results as a Markdown table (calls and tokens are means per problem)."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(summaries)]
    return "\n".join(lines) + "\n"
