"""What every strategy shares: configuration, ranking, and the run methods.

A strategy is pure logic. Its :meth:`SearchStrategy.plan` is a generator in the vocabulary of
:mod:`sal_plugins.plan` (:class:`~sal_plugins.plan.Expand`, :class:`~sal_plugins.plan.Score`,
:class:`~sal_plugins.plan.Outcome`): it yields batches of work, reads the
:class:`~sal_plugins.tree.SearchTree` the driver maintains, and returns the final candidates,
best first. The single driver in :mod:`sal_plugins._driver` does all I/O: concurrency, retries,
budgets, events and the tree; ``run``/``arun``/``astream`` hand the strategy to it.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sal_plugins._driver import SearchDriver
from sal_plugins.budget import Budget
from sal_plugins.errors import ConfigError, InputError
from sal_plugins.events import SearchEvent, SearchFinished
from sal_plugins.plan import Aggregation, Expand, Outcome, Plan, Request, Score, aggregate
from sal_plugins.results import SearchResult
from sal_plugins.solvers.base import Solver
from sal_plugins.solvers.prompts import DEFAULT_SYSTEM_PROMPT
from sal_plugins.sync import run_sync
from sal_plugins.tree import Node, SearchTree
from sal_plugins.verifiers.base import Verifier, is_verifier
from sal_plugins.verifiers.function import FunctionVerifier, ScoreFunction

__all__ = [
    "SAL_DEFAULTS",
    "Aggregation",
    "Expand",
    "Outcome",
    "Plan",
    "Request",
    "Score",
    "SearchStrategy",
    "aggregate",
]


SAL_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"temperature": 0.8, "top_p": 1.0, "max_tokens": 2048}
)
"""search-and-learn's sampling settings (``sal.config.Config``), which ``sal_compat=True`` fills in.

Its DVTS hard-codes ``max_tokens=2048``; its beam search and best-of-N read the config's, 2048
by default. This project's ``max_tokens`` defaults to 1024: a step of a math solution rarely
takes more, and a runaway continuation costs half as much.
"""


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
        top_p: nucleus sampling: each token is drawn from the most likely tokens whose
            probabilities add up to ``top_p``. ``None`` (default) sends none, so the solver's own
            default applies (1.0 on OpenAI-compatible servers, 0.95 in ``LlamaCppSolver``).
        max_tokens: cap on tokens per generation request (one step, or a whole solution);
            search-and-learn uses 2048 (``sal_compat=True`` does too).
        aggregation: how per-step scores reduce to one: ``last`` (default), ``min``, ``prod``, ``mean``.
        max_concurrency: requests of this search in flight at once; ``None`` (default) sets no
            per-search limit, so a round's whole wave goes out together and only the solver's
            own connection limit (``OpenAISolver(max_connections=...)``) applies.
        max_retries: retries of a request after a transient fault (429, 5xx, timeouts).
    """

    model_config = ConfigDict(
        arbitrary_types_allowed=True, extra="forbid", frozen=True, strict=True, allow_inf_nan=False
    )

    name: ClassVar[str] = "strategy"

    solver: Solver
    verifier: Verifier | ScoreFunction | None = None
    budget: Budget | None = None
    seed: int | None = None
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    step_delimiter: str = Field(default="\n\n", min_length=1)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int = Field(default=1024, gt=0)
    aggregation: Aggregation = "last"
    max_concurrency: int | None = Field(default=None, gt=0)
    max_retries: int = Field(default=3, ge=0)

    sal_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    """Settings ``sal_compat=True`` fills in when they are not given (search-and-learn's values).

    Only strategies with a ``sal_compat`` setting use it.
    """

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise ConfigError(_describe_validation_error(type(self).__name__, error)) from error

    @model_validator(mode="before")
    @classmethod
    def _fill_sal_defaults(cls, data: Any) -> Any:
        # Settings given explicitly win: search-and-learn has most of them as options too.
        if isinstance(data, dict) and data.get("sal_compat") is True:
            return {**cls.sal_defaults, **data}
        return data

    # Both parts are checked by their members ("plain" validators): a runtime protocol check
    # costs more than the rest of a small search's set-up on Python 3.11.
    @field_validator("solver", mode="plain")
    @classmethod
    def _check_solver(cls, value: Any) -> Any:
        if not callable(getattr(value, "generate", None)):
            raise ValueError(
                f"{cls.__name__}(solver=...): expected a Solver (an object with async "
                f"generate(request)), got {type(value).__name__}"
            )
        return value

    @field_validator("verifier", mode="plain")
    @classmethod
    def _wrap_callable_verifier(cls, value: Any) -> Any:
        if value is not None and not is_verifier(value) and not callable(value):
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

    def reusable_samples(self, tree: SearchTree, samples: Sequence[int]) -> list[int]:
        """The ``samples`` :meth:`plan_reusing` builds on (by default none: it starts afresh).

        ``samples`` are scored whole solutions already in the tree; the caller keeps the ones
        not used as candidates of its own.
        """
        return []

    def plan_reusing(self, problem: str, tree: SearchTree, samples: Sequence[int]) -> Plan:
        """The plan, building on ``samples``: whole solutions already in the tree, generated with
        this search's settings and scored by its verifier (``Adaptive``'s probe).

        Only :meth:`reusable_samples` are used; by default none, and this is :meth:`plan`.
        """
        return self.plan(problem, tree)

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
        # A node whose scoring failed is still a candidate: it ranks below the scored ones.
        usable = [n for n in tree.nodes[1:] if n.steps and n.kind not in ("lookahead", "failed")]
        finished = [n.id for n in usable if n.finished]
        if finished:
            return self.rank(tree, finished)
        parents = {n.parent for n in usable}
        return self.rank(tree, [n.id for n in usable if n.id not in parents])

    # --- running ------------------------------------------------------------------------------

    async def astream(
        self,
        problem: str,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> AsyncGenerator[SearchEvent, None]:
        """Run the search, yielding progress events; the last one is a ``SearchFinished``.

        Args:
            problem: the problem to solve.
            clock: a monotonic clock in seconds, for the deadline (tests pass a fake one).
            sleep: how to wait between retries (tests pass one that returns at once).
        """
        driver = SearchDriver(self, _check_problem(problem), **_timing(clock, sleep))
        async for event in driver.events():
            yield event

    async def arun(
        self,
        problem: str,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> SearchResult:
        """Run the search and return its result (``clock``/``sleep`` as in :meth:`astream`)."""
        async for event in self.astream(problem, clock=clock, sleep=sleep):
            if isinstance(event, SearchFinished):
                return event.result
        raise AssertionError("a search always ends with SearchFinished")  # pragma: no cover

    def run(
        self,
        problem: str,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> SearchResult:
        """Run the search synchronously (works inside a running event loop too)."""
        return run_sync(lambda: self.arun(problem, clock=clock, sleep=sleep))

    def with_solver(self, solver: Solver) -> SearchStrategy:
        """A copy of this strategy with another solver (used by the framework integrations)."""
        return self.model_copy(update={"solver": solver})

    def config(self) -> dict[str, Any]:
        """The strategy's plain settings (everything but the solver, verifier and budget)."""
        return self.model_dump(exclude={"solver", "verifier", "budget"})


def _timing(
    clock: Callable[[], float] | None, sleep: Callable[[float], Awaitable[None]] | None
) -> dict[str, Any]:
    """The driver's keyword arguments for the clock and sleep a caller injected."""
    timing: dict[str, Any] = {}
    if clock is not None:
        timing["clock"] = clock
    if sleep is not None:
        timing["sleep"] = sleep
    return timing


def _as_verifier(value: Verifier | ScoreFunction | None) -> Verifier | None:
    if value is None or is_verifier(value):
        return value
    return FunctionVerifier(cast(ScoreFunction, value))


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
