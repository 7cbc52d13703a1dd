"""The plan vocabulary: what a strategy's plan asks for, and what the driver needs to run one.

The ground floor of the engine. A strategy's plan is a generator that yields batches of work
(:class:`Expand`: generate continuations of a node; :class:`Score`: have the verifier score nodes)
and receives, for each request in the batch, the ids of the nodes it produced; it returns an
:class:`Outcome`. The driver (:mod:`sal_plugins._driver`) depends on this module and on
:class:`RunSpec`, the settings it reads, never on a strategy class.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from sal_plugins.results import StopReason
from sal_plugins.tree import SearchTree

if TYPE_CHECKING:
    from sal_plugins.budget import Budget
    from sal_plugins.solvers.base import Solver
    from sal_plugins.verifiers.base import Verifier

__all__ = ["Aggregation", "Expand", "Outcome", "Plan", "Request", "RunSpec", "Score", "aggregate"]

Aggregation = Literal["last", "min", "prod", "mean"]


@dataclass(frozen=True)
class Expand:
    """Ask the solver for ``n`` continuations of ``parent``.

    Attributes:
        parent: node to continue (0 is the root: a fresh solution).
        n: number of continuations.
        round: the strategy round, for events and the tree.
        to_end: generate to the end of the solution instead of one step.
        temperature: overrides the strategy's temperature (0 for greedy look-ahead).
        kind: how the new nodes are labelled in the tree.
        problem: when set, the solver gets this text as the problem and no partial solution, and the
            new nodes start a fresh trajectory (used for revisions).
    """

    parent: int
    n: int = 1
    round: int = 0
    to_end: bool = False
    temperature: float | None = None
    kind: str = "step"
    problem: str | None = None


@dataclass(frozen=True)
class Score:
    """Ask the verifier to score the trajectories ending at ``nodes`` (in one batch)."""

    nodes: tuple[int, ...]
    round: int = 0


Request = Expand | Score
"""A unit of work a strategy asks for."""

Plan = Generator[list[Request], list[tuple[int, ...]], "Outcome"]
"""A strategy's plan: yields batches, receives per request the ids it produced, returns an Outcome.

For :class:`Expand` the ids are the new child nodes (empty if the request failed); for
:class:`Score` they are the nodes that were scored successfully.
"""


@dataclass(frozen=True)
class Outcome:
    """How a plan ended.

    Attributes:
        ranked: final candidate node ids, best first.
        stop_reason: why the plan ended.
        calls_saved: calls the strategy chose not to make (recorded in usage).
        samples_saved: generations the strategy chose not to ask for; the driver converts them to
            calls at the rate the solver served so far (one call per sample for a solver that fans
            ``n`` out, fewer for one that honours ``n``) and adds them to ``usage.calls_saved``.
    """

    ranked: list[int]
    stop_reason: StopReason = "finished"
    calls_saved: int = 0
    samples_saved: int = 0


def aggregate(step_scores: Sequence[float], how: Aggregation) -> float:
    """Reduce per-step scores to one number (``last``, ``min``, ``prod`` or ``mean``)."""
    if not step_scores:
        raise ValueError("no step scores to aggregate")
    if how == "last":
        return float(step_scores[-1])
    if how == "min":
        return float(min(step_scores))
    if how == "prod":
        return float(math.prod(step_scores))
    return float(sum(step_scores) / len(step_scores))


class RunSpec(Protocol):
    """What the driver reads of the search it runs (every strategy is one).

    Attributes:
        name: the strategy's public name, for events and the result.
        solver: the model that writes solutions.
        scorer: the verifier in force (``None``: no scores are asked for).
        budget: caps on calls, tokens, cost and time.
        seed: the seed each request's seed is drawn from.
        system_prompt, step_delimiter, temperature, top_p, max_tokens: the generation settings
            (``top_p=None``: the solver's default).
        max_concurrency: requests in flight at once (``None``: no per-search limit).
        max_retries: retries of a request after a transient fault.
    """

    @property
    def name(self) -> str: ...
    @property
    def solver(self) -> Solver: ...
    @property
    def scorer(self) -> Verifier | None: ...
    @property
    def budget(self) -> Budget | None: ...
    @property
    def seed(self) -> int | None: ...
    @property
    def system_prompt(self) -> str | None: ...
    @property
    def step_delimiter(self) -> str: ...
    @property
    def temperature(self) -> float: ...
    @property
    def top_p(self) -> float | None: ...
    @property
    def max_tokens(self) -> int: ...
    @property
    def max_concurrency(self) -> int | None: ...
    @property
    def max_retries(self) -> int: ...

    def plan(self, problem: str, tree: SearchTree) -> Plan:
        """The search as a generator of work batches."""
        ...

    def score_of(self, step_scores: Sequence[float]) -> float:
        """One number from a trajectory's step scores."""
        ...

    def best_so_far(self, tree: SearchTree) -> list[int]:
        """Candidates to return when the plan is interrupted, best first."""
        ...
