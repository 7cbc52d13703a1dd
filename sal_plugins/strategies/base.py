"""What every strategy shares: configuration, the work-request protocol, and the run methods.

A strategy is pure logic. Its :meth:`SearchStrategy.plan` is a generator that yields batches of
work (:class:`Expand`: generate continuations of a node; :class:`Score`: have the verifier score
nodes) and receives, for each request in the batch, the ids of the nodes it produced. It reads the
:class:`~sal_plugins.tree.SearchTree` the driver maintains, and returns an :class:`Outcome`: the
final candidates, best first. The single driver in :mod:`sal_plugins._driver` does all I/O:
concurrency, retries, budgets, events and the tree.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import AsyncIterator, Generator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sal_plugins.budget import Budget
from sal_plugins.errors import ConfigError, InputError
from sal_plugins.events import SearchEvent, SearchFinished
from sal_plugins.results import SearchResult, StopReason
from sal_plugins.solvers.base import Solver
from sal_plugins.solvers.prompts import DEFAULT_SYSTEM_PROMPT
from sal_plugins.sync import run_sync
from sal_plugins.tree import Node, SearchTree
from sal_plugins.verifiers.base import Verifier
from sal_plugins.verifiers.function import FunctionVerifier, ScoreFunction

__all__ = ["Aggregation", "Expand", "Outcome", "Plan", "Score", "SearchStrategy", "aggregate"]

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


def _ranking_key(node: Node) -> tuple[bool, float, int]:
    return (node.score is not None, node.score if node.score is not None else -math.inf, -node.id)


class SearchStrategy(BaseModel):
    """Base of every strategy: shared configuration and the ``run``/``arun``/``astream`` methods.

    Args:
        solver: the model that writes solutions (any :class:`~sal_plugins.solvers.base.Solver`).
        verifier: the scorer (any :class:`~sal_plugins.verifiers.base.Verifier`); a plain function
            ``fn(problem, steps) -> float | list[float]`` is wrapped in a ``FunctionVerifier``.
        budget: caps on calls, tokens, cost and time; the search ends gracefully when one is hit.
        seed: makes the search reproducible (each request gets a seed derived from it).
        system_prompt: the solver's system prompt (a step-by-step math prompt by default).
        step_delimiter: text that separates steps (search-and-learn uses a blank line).
        temperature: sampling temperature.
        max_tokens: cap on tokens per generation request (one step, or a whole solution).
        aggregation: how per-step scores reduce to one: ``last`` (default), ``min``, ``prod``, ``mean``.
        max_concurrency: requests in flight at once.
        max_retries: retries of a request after a transient fault (429, 5xx, timeouts).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    name: ClassVar[str] = "strategy"

    solver: Solver
    verifier: Verifier | ScoreFunction | None = None
    budget: Budget | None = None
    seed: int | None = None
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    step_delimiter: str = Field(default="\n\n", min_length=1)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    max_tokens: int = Field(default=1024, gt=0)
    aggregation: Aggregation = "last"
    max_concurrency: int = Field(default=16, gt=0)
    max_retries: int = Field(default=3, ge=0)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise ConfigError(_describe_validation_error(type(self).__name__, error)) from error

    @field_validator("verifier", mode="before")
    @classmethod
    def _wrap_callable_verifier(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, Verifier) and not callable(value):
            raise ValueError(
                f"{cls.__name__}(verifier=...): expected a Verifier (an object with async "
                "score(problem, trajectories)) or a function fn(problem, steps) -> float | "
                f"list[float], got {type(value).__name__}"
            )
        return _as_verifier(value)

    @property
    def scorer(self) -> Verifier | None:
        """The verifier in force: ``verifier``, a plain function wrapped in a ``FunctionVerifier``.

        Validation already wraps functions; this also covers one set by ``model_copy(update=...)``,
        which skips validation.
        """
        return _as_verifier(self.verifier)

    # --- the strategy's logic -----------------------------------------------------------------

    @abstractmethod
    def plan(self, problem: str, tree: SearchTree) -> Plan:
        """The search as a generator of work batches (see :data:`Plan`)."""

    def score_of(self, step_scores: Sequence[float]) -> float:
        """Aggregate a trajectory's step scores with this strategy's ``aggregation``."""
        return aggregate(step_scores, self.aggregation)

    def rank(self, tree: SearchTree, node_ids: Sequence[int]) -> list[int]:
        """Order candidate nodes best first (highest score; unscored last; ties by age)."""
        return sorted(node_ids, key=lambda i: _ranking_key(tree[i]), reverse=True)

    def best_so_far(self, tree: SearchTree) -> list[int]:
        """Candidates to return when a budget or deadline interrupts the plan.

        Finished solutions if there are any, otherwise the deepest unfinished trajectories (the
        result then has ``finished=False`` on its completions).
        """
        # Look-ahead roll-outs only score their candidate; they are never candidates themselves.
        usable = [
            n for n in tree.nodes[1:] if n.steps and n.error is None and n.kind != "lookahead"
        ]
        finished = [n.id for n in usable if n.finished]
        if finished:
            return self.rank(tree, finished)
        parents = {n.parent for n in usable}
        return self.rank(tree, [n.id for n in usable if n.id not in parents])

    # --- running ------------------------------------------------------------------------------

    async def astream(self, problem: str) -> AsyncIterator[SearchEvent]:
        """Run the search, yielding progress events; the last one is a ``SearchFinished``."""
        from sal_plugins._driver import SearchDriver

        async for event in SearchDriver(self, _check_problem(problem)).events():
            yield event

    async def arun(self, problem: str) -> SearchResult:
        """Run the search and return its result."""
        async for event in self.astream(problem):
            if isinstance(event, SearchFinished):
                return event.result
        raise AssertionError("a search always ends with SearchFinished")  # pragma: no cover

    def run(self, problem: str) -> SearchResult:
        """Run the search synchronously (works inside a running event loop too)."""
        return run_sync(lambda: self.arun(problem))

    def with_solver(self, solver: Solver) -> SearchStrategy:
        """A copy of this strategy with another solver (used by the framework integrations)."""
        return self.model_copy(update={"solver": solver})

    def config(self) -> dict[str, Any]:
        """The strategy's plain settings (everything but the solver, verifier and budget)."""
        return self.model_dump(exclude={"solver", "verifier", "budget"})


def _as_verifier(value: Verifier | ScoreFunction | None) -> Verifier | None:
    if value is None or isinstance(value, Verifier):
        return value
    return FunctionVerifier(value)


def _check_problem(problem: Any) -> str:
    if not isinstance(problem, str):
        raise InputError(f"the problem must be a string, got {type(problem).__name__}")
    if not problem.strip():
        raise InputError("the problem is empty: pass the question to solve")
    try:
        problem.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InputError(
            f"the problem is not valid text: it holds a lone surrogate ({error.object[error.start]!r} "
            f"at position {error.start}); decode its source with errors='replace' or fix it"
        ) from error
    return problem


def _describe_validation_error(owner: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "arguments"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown argument (check the spelling)"
        elif item["type"] == "value_error":
            lines.append(str(item["ctx"]["error"]))
            continue
        elif item["type"] == "is_instance_of":
            expected = item["ctx"].get("class", "another type")
            message = f"expected {expected}, got {type(item['input']).__name__}"
        lines.append(f"{owner}({where}=...): {message}")
    return "; ".join(lines)
