"""Best-of-N and self-consistency: sample N whole solutions, score them, pick one.

Cost, for N samples: one generation request per chunk of ``chunk_size`` samples (by default all N
in one request; a solver that fans ``n`` out makes one call per sample), and one verifier call
scoring every trajectory (none without a verifier). With early stopping the N samples are drawn in
rounds, so it costs at most as many generations, and each round of a ``"weighted"`` or ``"naive"``
selection adds one verifier call (``"majority"`` still scores once, at the end).

Differences from search-and-learn (``sal.search.best_of_n`` and the selection in
``sal.utils.score``), on purpose, and what ``sal_compat=True`` does about each:

* The final answer is selected with the configured ``aggregation``, among the candidates sorted
  by score (ties between answers fall to the other measure: votes or total score);
  search-and-learn selects with the last step's score whatever its ``agg_strategy``, among the
  candidates in sampling order (ties fall to the first answer seen). ``sal_compat``: as
  search-and-learn.
* Only finished samples compete when there are any; search-and-learn lets all ``n`` compete,
  length-cut ones included. ``sal_compat``: all ``n``.
* Early stopping (on by default for ``"majority"``) may draw fewer than ``n`` samples;
  search-and-learn always draws ``n``. ``sal_compat`` defaults ``early_stop`` to off.
* ``max_tokens`` defaults to 1024 and ``top_p`` to the solver's own; search-and-learn uses 2048
  and 1.0, which ``sal_compat`` fills in (settings given explicitly win).
* Not changed by ``sal_compat``: without a verifier this is self-consistency (search-and-learn
  always scores); answers are compared with math-verify; the system prompt is this project's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

from pydantic import Field, model_validator

from sal_plugins.answers import warm_up_equivalence
from sal_plugins.errors import ConfigError
from sal_plugins.strategies._selection import (
    Selection,
    answer_groups,
    sal_score,
    select,
    select_like_sal,
)
from sal_plugins.strategies.base import (
    SAL_DEFAULTS,
    Aggregation,
    Expand,
    Outcome,
    Plan,
    Request,
    Score,
    SearchStrategy,
)
from sal_plugins.tree import SearchTree
from sal_plugins.verifiers.base import Verifier

__all__ = ["BestOfN", "Selection", "aggregated_bounds", "answer_groups", "select"]


def aggregated_bounds(
    verifier: Verifier | None, aggregation: Aggregation
) -> tuple[float, float] | None:
    """Bounds of an aggregated score, when the verifier's declared range makes them provable.

    Only non-negative ranges qualify (a negative score could lower a leader's total); ``"prod"``
    also needs an upper bound of at most 1 (otherwise products grow past it).
    """
    bounds = verifier.score_range if verifier is not None else None
    if bounds is None:
        return None
    low, high = float(bounds[0]), float(bounds[1])
    if low < 0 or (aggregation == "prod" and high > 1):
        return None
    return (0.0 if aggregation == "prod" else low, high)


class BestOfN(SearchStrategy):
    """Sample ``n`` complete solutions and select one; self-consistency without a verifier.

    Selections (as in search-and-learn):

    * ``"naive"``: the solution with the highest aggregated verifier score;
    * ``"weighted"``: sum the scores of solutions whose final answers are equivalent (math-verify)
      and take the best-scored solution of the heaviest answer;
    * ``"majority"``: the most frequent answer (ties: higher total score, then first seen). With
      ``verifier=None`` this is self-consistency, which needs no verifier at all.

    Early stopping draws the samples in rounds and stops as soon as the selected answer can no
    longer change, whatever the remaining samples say: for ``"majority"`` when the leading
    answer's votes exceed the runner-up's plus the samples left (on by default); for
    ``"weighted"`` when the leader's score total exceeds the runner-up's plus the samples left
    times the highest possible score; for ``"naive"`` when a candidate reaches the highest
    possible score. The last two need the verifier to declare a non-negative ``score_range`` and
    are off unless asked for. The first round draws ``n // 2 + 1`` samples (no vote can be settled
    with fewer), later rounds ``chunk_size`` (default ``ceil(n / 4)``) each. A stopped search has
    ``stop_reason == "early_stop"`` and the calls it avoided in ``usage.calls_saved``.

    Unlike search-and-learn, the aggregation setting is honoured when scoring (it defaults to
    ``"last"``, the PRM's score of the final step); the module docstring lists every difference.

    Cost: one generation request for all ``n`` samples, or ``ceil(n / chunk_size)`` requests
    with a chunk size, or with early stopping at most 3 rounds of one request each (``n`` calls
    in all on a solver that fans ``n`` out, fewer when it stops early); and one verifier call (one
    per round for early-stopping ``"weighted"``/``"naive"``).

    Args:
        n: number of solutions to sample.
        selection: how to pick among them (``"weighted"`` by default, ``"majority"`` without a
            verifier).
        early_stop: stop once the selected answer is settled (default: on for ``"majority"``, off
            otherwise; turning it on for ``"weighted"``/``"naive"`` needs a bounded verifier).
        chunk_size: samples per generation request. By default each round is one request: all
            ``n`` samples, or with early stopping ``n // 2 + 1`` first and ``ceil(n / 4)`` per
            later round. Smaller chunks also isolate failures: a failed request loses only its
            own samples.
        sal_compat: reproduce search-and-learn's choices where this class differs on purpose
            (see the module docstring): selection by the last step's score in sampling order,
            all samples competing, ``early_stop=False``, ``max_tokens=2048`` and ``top_p=1.0``.
        **kwargs: the shared settings of :class:`~sal_plugins.strategies.base.SearchStrategy`.

    Example:
        >>> search = BestOfN(solver=solver, verifier=prm, n=16, selection="weighted", seed=0)
        >>> search.run("What is 23 + 48?").answer
        '71'
        >>> BestOfN(solver=solver, n=16).run("What is 23 + 48?").stop_reason  # self-consistency
        'early_stop'
    """

    name: ClassVar[str] = "best_of_n"
    sal_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {**SAL_DEFAULTS, "early_stop": False}
    )

    n: int = Field(default=4, gt=0)
    selection: Selection | None = None
    early_stop: bool | None = None
    chunk_size: int | None = Field(default=None, gt=0)
    sal_compat: bool = False

    @model_validator(mode="after")
    def _check_selection(self) -> BestOfN:
        if self.selection in ("naive", "weighted") and self.verifier is None:
            raise ConfigError(
                f"BestOfN(selection={self.selection!r}) needs a verifier: pass verifier=... "
                "or use selection='majority' (self-consistency)"
            )
        if (
            self.early_stop
            and self.effective_selection != "majority"
            and aggregated_bounds(self.scorer, self.aggregation) is None
        ):
            raise ConfigError(
                f"BestOfN(early_stop=True, selection={self.effective_selection!r}) can only stop "
                "early when the verifier declares a non-negative score_range (and, with "
                "aggregation='prod', one within [0, 1]): without bounds a later sample could "
                "always overtake the leader. Use selection='majority' or early_stop=False"
            )
        return self

    @property
    def effective_selection(self) -> Selection:
        """The selection in force (``selection`` or its default)."""
        if self.selection is not None:
            return self.selection
        return "majority" if self.verifier is None else "weighted"

    @property
    def stops_early(self) -> bool:
        """Whether this search draws its samples in rounds and may stop before ``n``."""
        if self.early_stop is not None:
            return self.early_stop
        return self.effective_selection == "majority"

    def _requests(self, count: int, round_: int) -> list[Request]:
        size = self.chunk_size or count
        sizes = [size] * (count // size) + ([count % size] if count % size else [])
        return [Expand(parent=0, n=s, round=round_, to_end=True, kind="solution") for s in sizes]

    def plan(self, problem: str, tree: SearchTree) -> Plan:
        """Sample in one batch (or in rounds, when stopping early), score, select."""
        if self.effective_selection != "naive":
            warm_up_equivalence()  # math-verify loads while the model generates
        scores_each_round = self.verifier is not None and self.effective_selection != "majority"
        candidates: list[int] = []
        asked, round_ = 0, 0
        want = min(self.n, self.n // 2 + 1) if self.stops_early else self.n
        while asked < self.n:
            results = yield self._requests(want, round_)
            asked += want
            new = tuple(i for ids in results for i in ids if tree[i].steps)
            candidates += [i for ids in results for i in ids]
            if scores_each_round and new:
                yield [Score(nodes=new, round=round_)]
            if (
                asked < self.n
                and self.stops_early
                and self._settled(tree, candidates, self.n - asked)
            ):
                break
            round_ += 1
            want = min(self.chunk_size or math.ceil(self.n / 4), self.n - asked)
        scorable = tuple(i for i in candidates if tree[i].steps)
        if self.verifier is not None and not scores_each_round and scorable:
            yield [Score(nodes=scorable, round=round_)]
        finished = [i for i in candidates if tree[i].finished and tree[i].steps]
        pool = list(scorable) if self.sal_compat else finished or list(scorable)
        if asked < self.n:
            return Outcome(self.rank(tree, pool), "early_stop", samples_saved=self.n - asked)
        return Outcome(self.rank(tree, pool), "finished" if finished else "max_steps")

    def _settled(self, tree: SearchTree, candidates: list[int], remaining: int) -> bool:
        """Whether ``remaining`` more samples could not change the selected answer."""
        pool = [i for i in candidates if tree[i].finished and tree[i].steps]
        if not pool:
            return False
        selection = self.effective_selection
        if selection == "naive":
            bounds = aggregated_bounds(self.scorer, self.aggregation)
            scores = [s for i in pool if (s := tree[i].score) is not None]
            top = max(scores, default=None)
            # Ties go to the older candidate, so reaching the bound settles it.
            return bounds is not None and top is not None and top >= bounds[1]
        groups = answer_groups(tree, pool)
        if selection == "majority":
            weights = sorted((float(len(g)) for g in groups), reverse=True)
            per_sample = 1.0
        else:
            bounds = aggregated_bounds(self.scorer, self.aggregation)
            if bounds is None:
                return False
            weights = sorted(
                (sum(tree[pool[i]].score or 0.0 for i in g) for g in groups), reverse=True
            )
            per_sample = bounds[1]
        if not weights:
            return False
        runner_up = weights[1] if len(weights) > 1 else 0.0
        # Strictly ahead: a tie could still be broken against the leader.
        return weights[0] > runner_up + remaining * per_sample

    def rank(self, tree: SearchTree, node_ids: Sequence[int]) -> list[int]:
        """Order candidates by the configured selection, best first."""
        if self.sal_compat:
            return select_like_sal(
                tree,
                list(node_ids),
                self.effective_selection,
                lambda i: sal_score(tree, i, self.aggregation),
            )
        by_score = super().rank(tree, node_ids)
        return select(tree, by_score, self.effective_selection)
