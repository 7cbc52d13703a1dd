"""Beam search over a process reward model, with search-and-learn's semantics.

Each round, the active beams are extended by one step (a step ends at ``step_delimiter``); the
verifier scores every new trajectory; beams that finished leave the pool; of the rest the top
``n // beam_width`` by aggregated score survive and are each expanded into ``beam_width``
continuations next round (so every round samples ``n`` steps). The last round (``max_steps``)
generates to the end of the solution.

Cost, with N = ``n``, M = ``beam_width``, k = ``lookahead`` and S = ``max_steps``: each round
makes one generation request per surviving beam (N / M requests asking for M continuations each,
N continuations in all; the first round one request for N; a solver that fans ``n`` out makes N
calls), plus up to k rounds of one greedy request per open candidate (k * N calls) when
look-ahead is on, and one verifier call scoring up to N trajectories. At most S rounds: at most
S * (N / M + k * N) generation requests and S verifier calls.

Differences from search-and-learn, on purpose: the configured ``aggregation`` is used for pruning
and for the final ranking (search-and-learn ignores it in places); candidates cut by
``max_tokens`` are not reported as finished; a failed request drops only its own candidates; and
with look-ahead the verifier scores each candidate extended by its roll-out (search-and-learn's
DVTS does this, while its beam search generates the roll-out but scores the candidate without it).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import ClassVar

from pydantic import Field, model_validator

from sal_plugins.errors import ConfigError
from sal_plugins.plan import Expand, Outcome, Plan, Request, Score
from sal_plugins.strategies.base import SearchStrategy
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
        dedup: drop candidates whose trajectory repeats another's before pruning.
        **kwargs: the shared settings of :class:`~sal_plugins.strategies.base.SearchStrategy`;
            a verifier is required.

    Example:
        >>> search = BeamSearch(solver=solver, verifier=prm, n=16, beam_width=4, max_steps=40, seed=0)
        >>> result = search.run("What is 23 + 48?")
    """

    name: ClassVar[str] = "beam_search"

    n: int = Field(default=16, gt=0)
    beam_width: int = Field(default=4, gt=0)
    max_steps: int = Field(default=40, gt=0)
    lookahead: int = Field(default=0, ge=0)
    dedup: bool = False

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
        active = [0]
        done: list[int] = []
        unverified = False
        for step in range(self.max_steps):
            last = step == self.max_steps - 1
            counts = spread(self.n, len(active))
            results = yield [
                Expand(parent=beam, n=count, round=step, to_end=last)
                for beam, count in zip(active, counts, strict=True)
                if count
            ]
            candidates = [i for ids in results for i in ids]
            scorable = tuple(i for i in candidates if tree[i].steps)
            if self.lookahead and not last:
                yield from score_with_lookahead(tree, scorable, self.lookahead, step)
            elif scorable:
                yield [Score(nodes=scorable, round=step)]
            done += [i for i in candidates if tree[i].finished or tree[i].truncated]
            open_ = [i for i in candidates if not (tree[i].finished or tree[i].truncated)]
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
            ranked = self.rank(tree, open_)
            active = ranked[: self.survivors]
            for pruned in ranked[self.survivors :]:
                tree[pruned].pruned = True
        finished = [i for i in done if tree[i].finished and tree[i].steps]
        if finished:
            return Outcome(self.rank(tree, finished)[: self.n])
        return Outcome(self.best_so_far(tree)[: self.n], "error" if unverified else "max_steps")

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
