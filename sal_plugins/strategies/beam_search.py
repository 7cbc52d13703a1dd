"""Beam search over a process reward model, with search-and-learn's semantics.

Each round, the active beams are extended by one step (a step ends at ``step_delimiter``); the
verifier scores every new trajectory; beams that finished leave the pool; of the rest the top
``n // beam_width`` by aggregated score survive and are each expanded into ``beam_width``
continuations next round (so every round samples ``n`` steps). The last round (``max_steps``)
generates to the end of the solution. The finished beams, up to ``n`` of them, are the final
candidates; ``selection`` picks the answer among them.

Cost, with N = ``n``, M = ``beam_width``, k = ``lookahead`` and S = ``max_steps``: each round
makes one generation request per surviving beam (N / M requests asking for M continuations each,
N continuations in all; the first round one request for N; a solver that fans ``n`` out makes N
calls), plus up to k rounds of one greedy request per open candidate (k * N calls) when
look-ahead is on, and one verifier call scoring up to N trajectories. At most S rounds: at most
S * (N / M + k * N) generation requests and S verifier calls.

Differences from search-and-learn (``sal.search.beam_search``), on purpose, and what
``sal_compat=True`` does about each:

* Ties at the pruning cut go to the beam generated first; search-and-learn keeps the top of
  ``np.argsort`` of the scores, which on numpy's portable sort keeps the later of tied beams
  (numpy's AVX-512 sort orders ties in no defined way, so there search-and-learn itself is not
  reproducible on ties). ``sal_compat``: the later beam, and the survivors keep their order.
* Survivors are expanded one request per beam, continuations of a beam side by side;
  search-and-learn makes one request per continuation, the survivors' copies interleaved
  (``[a, b, a, b]``), which decides the order of later ties, of ``dedup`` and of the finishers.
  ``sal_compat``: candidates are put in search-and-learn's order (the requests stay the same).
* ``sort_completed=True`` (default): the top ``n`` finished beams by score are the final
  candidates; search-and-learn's default (``sort_completed=False``) keeps the first ``n`` to
  finish. ``sal_compat`` defaults it to ``False``.
* The final answer is selected with the configured ``aggregation``; search-and-learn selects
  (naive, weighted and majority, in ``sal.utils.score``) with the last step's score whatever its
  ``agg_strategy``, breaks ties between answers by first occurrence, and pads the returned beams
  to ``n`` with copies of the first ones, which vote again. ``sal_compat``: all three.
* Candidates cut by ``max_tokens`` are not finished and not returned; search-and-learn counts
  them as completed. ``sal_compat`` returns them (with ``finished=False``).
* With look-ahead the verifier scores each candidate extended by its roll-out;
  search-and-learn's beam search generates the roll-out but scores the candidate without it.
  ``sal_compat`` scores the candidate alone and generates no roll-out (it could not change the
  result).
* ``max_tokens`` defaults to 1024 and ``top_p`` to the solver's own; search-and-learn uses 2048
  and 1.0, which ``sal_compat`` fills in (settings given explicitly win).
* Not changed by ``sal_compat``: a failed request drops only its own candidates (search-and-learn
  stops); a beam the verifier could not score is pruned; answers are compared with math-verify
  (search-and-learn uses its own canonical form); the system prompt is this project's (pass
  search-and-learn's as ``system_prompt``); and ``dedup`` stays off by default as in
  search-and-learn's config (its beam-search recipes turn ``filter_duplicates`` on).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any, ClassVar

from pydantic import Field, model_validator

from sal_plugins.answers import warm_up_equivalence
from sal_plugins.errors import ConfigError
from sal_plugins.plan import Expand, Outcome, Plan, Request, Score
from sal_plugins.results import StopReason
from sal_plugins.strategies._reuse import Rides, expand, reusable, ride_along
from sal_plugins.strategies._selection import Selection, sal_score, select, select_like_sal
from sal_plugins.strategies.base import SAL_DEFAULTS, SearchStrategy
from sal_plugins.tree import Node, SearchTree

__all__ = ["BeamSearch", "Work", "score_with_lookahead", "spread"]

Work = Generator[list[Request], list[tuple[int, ...]], None]
"""A piece of a plan: yields batches like a :data:`~sal_plugins.strategies.base.Plan`, returns nothing."""


def _ended(node: Node) -> bool:
    return node.finished or node.truncated


def score_with_lookahead(tree: SearchTree, nodes: tuple[int, ...], steps: int, round_: int) -> Work:
    """Score candidate steps by where ``steps`` greedy steps past them lead (search-and-learn).

    Each candidate that has not ended is rolled out up to ``steps`` more steps at temperature 0,
    stopping early at the end of the solution (or at a failed or truncated roll-out step); then
    every candidate's trajectory, extended by its roll-out, is scored in one verifier call. The
    candidate takes the roll-out's aggregated score as its ``score`` and, from a per-step
    verifier, the scores of its own steps as ``step_scores``; only its own step stays in the
    search. Roll-out nodes stay in the tree (``kind="lookahead"``, marked pruned) so the work is
    visible, but are never candidates.

    Cost: up to ``steps`` rounds of one greedy request per open candidate, and one verifier call.
    """
    tips = {node: node for node in nodes}
    rolling = [node for node in nodes if not _ended(tree[node])]
    for _ in range(steps):
        if not rolling:
            break
        results = yield [
            Expand(parent=tips[node], n=1, round=round_, temperature=0.0, kind="lookahead")
            for node in rolling
        ]
        still_rolling = []
        for node, ids in zip(rolling, results, strict=True):
            if not ids:
                continue  # the roll-out failed: score the candidate as far as it got
            tips[node] = ids[0]
            tree[ids[0]].pruned = True
            if not _ended(tree[ids[0]]):
                still_rolling.append(node)
        rolling = still_rolling
    to_score = tuple(dict.fromkeys(tips[node] for node in nodes))
    if to_score:
        yield [Score(nodes=to_score, round=round_)]
    for node_id in nodes:
        candidate, tip = tree[node_id], tree[tips[node_id]]
        if tip is candidate or tip.step_scores is None:
            continue
        own = len(candidate.steps)
        per_step = len(tip.step_scores) == len(tip.steps) and len(tip.steps) > 1
        candidate.step_scores = tip.step_scores[:own] if per_step else tip.step_scores
        candidate.score = tip.score


def spread(total: int, buckets: int) -> list[int]:
    """Split ``total`` into ``buckets`` near-equal counts, larger ones first."""
    base, extra = divmod(total, buckets)
    return [base + (1 if i < extra else 0) for i in range(buckets)]


class BeamSearch(SearchStrategy):
    """PRM-guided beam search (search-and-learn's ``beam_search``).

    Args:
        n: steps sampled per round (search-and-learn's ``n``); also the number of completions kept.
        beam_width: continuations per surviving beam (search-and-learn's ``beam_width``, ``M``);
            ``n // beam_width`` beams survive each round. ``n`` must be a multiple of it.
        max_steps: rounds before the search stops; the last one generates to the end.
        lookahead: greedy steps rolled out past each candidate step before scoring it (0: off;
            search-and-learn's ``lookahead``). The candidate is ranked by the score of its
            roll-out; only its own step is kept (see :func:`score_with_lookahead`). The last
            round, which generates to the end, needs none.
        dedup: drop candidates whose trajectory repeats another's before pruning
            (search-and-learn's ``filter_duplicates``).
        selection: how the answer is picked among the final candidates: ``"naive"`` (default:
            the best-scored), ``"weighted"`` or ``"majority"``, as in
            :class:`~sal_plugins.strategies.best_of_n.BestOfN`.
        sort_completed: keep the ``n`` best-scored finished beams (default) rather than the
            first ``n`` to finish (search-and-learn's default, and ``sal_compat``'s).
        sal_compat: reproduce search-and-learn's choices where this class differs on purpose
            (see the module docstring): tie-breaking, candidate order, ``sort_completed=False``,
            selection by the last step's score with padding to ``n``, length-cut beams returned,
            candidates scored without their roll-out, ``max_tokens=2048`` and ``top_p=1.0``.
        **kwargs: the shared settings of :class:`~sal_plugins.strategies.base.SearchStrategy`;
            a verifier is required.

    Example:
        >>> search = BeamSearch(solver=solver, verifier=prm, n=16, beam_width=4, max_steps=40, seed=0)
        >>> result = search.run("What is 23 + 48?")
    """

    name: ClassVar[str] = "beam_search"
    sal_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {**SAL_DEFAULTS, "sort_completed": False}
    )

    n: int = Field(default=16, gt=0)
    beam_width: int = Field(default=4, gt=0)
    max_steps: int = Field(default=40, gt=0)
    lookahead: int = Field(default=0, ge=0)
    dedup: bool = False
    selection: Selection = "naive"
    sort_completed: bool = True
    sal_compat: bool = False

    @model_validator(mode="after")
    def _check_shape(self) -> BeamSearch:
        if self.verifier is None:
            raise ConfigError(
                f"{type(self).__name__} needs a verifier to rank its beams: pass verifier=..."
            )
        if self.n < self.beam_width or self.n % self.beam_width:
            raise ConfigError(
                f"{type(self).__name__}(n={self.n}, beam_width={self.beam_width}): n must be a "
                "multiple of beam_width (n // beam_width beams survive each round)"
            )
        return self

    @property
    def survivors(self) -> int:
        """Beams kept per round."""
        return self.n // self.beam_width

    def plan(self, problem: str, tree: SearchTree) -> Plan:
        """Rounds of expand, score and prune, as described in the module docstring."""
        return (yield from self._rounds(tree, Rides()))

    def reusable_samples(self, tree: SearchTree, samples: Sequence[int]) -> list[int]:
        """The samples scored step by step (a beam can grow along those); none with ``sal_compat``."""
        return [] if self.sal_compat else reusable(tree, samples)

    def plan_reusing(self, problem: str, tree: SearchTree, samples: Sequence[int]) -> Plan:
        """Beam search with ``samples`` riding along: their steps are free candidates.

        Each reusable sample (see :meth:`reusable_samples`) is split into one node per step
        (:meth:`~sal_plugins.tree.SearchTree.step_chain`), each prefix scored from the sample's
        own step scores (:mod:`~sal_plugins.strategies._reuse`). Its first step is one of round
        0's ``n`` candidates; whenever one of its prefixes survives the cut, its next step is one
        of that beam's ``beam_width`` continuations, and in the last round the rest of the sample
        is. Those candidates are neither generated nor scored again, so the search is beam search
        with some of its samples already drawn (``usage.calls_saved`` counts them).
        """
        riding = self.reusable_samples(tree, samples)
        return (yield from self._rounds(tree, ride_along(tree, riding, self.score_of)))

    def _rounds(self, tree: SearchTree, rides: Rides) -> Plan:
        if self.selection != "naive":
            warm_up_equivalence()  # math-verify loads while the model generates
        active = [0]
        done: list[int] = []
        unverified = False
        for step in range(self.max_steps):
            last = step == self.max_steps - 1
            counts = spread(self.n, len(active))
            growth = [(beam, count) for beam, count in zip(active, counts, strict=True) if count]
            results = yield from expand(rides, growth, step, to_end=last)
            candidates = _interleaved(results) if self.sal_compat else _side_by_side(results)
            scorable = tuple(i for i in candidates if tree[i].steps and i not in rides.given)
            if self.lookahead and not last and not self.sal_compat:
                yield from score_with_lookahead(tree, scorable, self.lookahead, step)
            elif scorable:
                yield [Score(nodes=scorable, round=step)]
            done += [i for i in candidates if _ended(tree[i])]
            open_ = [i for i in candidates if not _ended(tree[i])]
            if self.dedup:
                unique = self._unique(tree, open_)
                for repeated in set(open_) - set(unique):
                    tree[repeated].pruned = True
                open_ = unique
            # A beam the verifier could not score has no rank: growing it would be a blind pick.
            scored = [i for i in open_ if tree[i].score is not None]
            for unscored in set(open_) - set(scored):
                tree[unscored].pruned = True
            unverified = bool(open_) and not scored
            open_ = scored
            if not open_:
                break
            active = self._keep(tree, open_)
            for pruned in set(open_) - set(active):
                tree[pruned].pruned = True
        outcome = self._outcome(tree, done, unverified)
        return replace(outcome, samples_saved=outcome.samples_saved + len(rides.given))

    def _keep(self, tree: SearchTree, open_: list[int]) -> list[int]:
        """The beams that survive the cut, in the order they grow next round."""
        if not self.sal_compat:
            return SearchStrategy.rank(self, tree, open_)[: self.survivors]
        # np.argsort(scores)[-k:] on numpy's portable (stable) sort: of tied beams the later
        # ones survive; the survivors keep their candidate order (sal.search.beam_search).
        ascending = sorted(range(len(open_)), key=lambda p: _score(tree, open_[p]))
        kept = set(ascending[-self.survivors :])
        return [node_id for p, node_id in enumerate(open_) if p in kept]

    def _outcome(self, tree: SearchTree, done: list[int], unverified: bool) -> Outcome:
        if self.sal_compat:
            pool = [i for i in done if tree[i].steps]  # length-cut beams count as completed
        else:
            pool = [i for i in done if tree[i].finished and tree[i].steps]
        if not pool:
            return Outcome(self.best_so_far(tree)[: self.n], "error" if unverified else "max_steps")
        stop: StopReason = "finished" if any(tree[i].finished for i in pool) else "max_steps"
        if self.sort_completed:
            pool = self._by_score(tree, pool)
        pool = pool[: self.n]
        if not self.sal_compat:
            return Outcome(self.rank(tree, pool), stop)
        padded = (pool * (self.n // len(pool) + 1))[: self.n]
        return Outcome(self._select_like_sal(tree, padded), stop)

    def _by_score(self, tree: SearchTree, node_ids: list[int]) -> list[int]:
        if self.sal_compat:  # sorted(..., reverse=True): ties keep their finishing order
            return sorted(node_ids, key=lambda i: _score(tree, i), reverse=True)
        return SearchStrategy.rank(self, tree, node_ids)

    def _select_like_sal(self, tree: SearchTree, pool: list[int]) -> list[int]:
        return select_like_sal(
            tree, pool, self.selection, lambda i: sal_score(tree, i, self.aggregation)
        )

    def rank(self, tree: SearchTree, node_ids: Sequence[int]) -> list[int]:
        """Order final candidates by the configured selection, best first."""
        if self.sal_compat:
            return self._select_like_sal(tree, list(node_ids))
        return select(tree, super().rank(tree, node_ids), self.selection)

    @staticmethod
    def _unique(tree: SearchTree, node_ids: list[int]) -> list[int]:
        seen: set[tuple[str, ...]] = set()
        unique = []
        for node_id in node_ids:
            steps = tree[node_id].steps
            if steps not in seen:
                seen.add(steps)
                unique.append(node_id)
        return unique


def _score(tree: SearchTree, node_id: int) -> float:
    score = tree[node_id].score
    return -math.inf if score is None else score


def _side_by_side(results: list[tuple[int, ...]]) -> list[int]:
    """Candidates request by request: each beam's continuations together."""
    return [i for ids in results for i in ids]


def _interleaved(results: list[tuple[int, ...]]) -> list[int]:
    """Candidates in search-and-learn's order: one continuation of each beam in turn.

    search-and-learn copies the survivors round-robin to ``n`` beams (``[a, b, a, b]``) and
    samples one continuation of each copy.
    """
    widest = max((len(ids) for ids in results), default=0)
    return [ids[k] for k in range(widest) for ids in results if k < len(ids)]
