"""Beam search over a process reward model, with search-and-learn's semantics.

Each round, the active beams are extended by one step (a step ends at ``step_delimiter``); the
verifier scores every new trajectory; beams that finished leave the pool; of the rest the top
``n // beam_width`` by aggregated score survive and are each expanded into ``beam_width``
continuations next round (so every round samples ``n`` steps). The last round (``max_steps``)
generates to the end of the solution.

Cost per round: one generation request per surviving beam (``n // beam_width`` requests asking
for ``beam_width`` continuations each; ``n`` continuations in all, the first round one request
for ``n``), plus ``lookahead`` greedy requests per candidate when look-ahead is on, and one
verifier call scoring up to ``n`` trajectories. At most ``max_steps`` rounds.

Differences from search-and-learn, on purpose: the configured ``aggregation`` is used for pruning
and for the final ranking (search-and-learn ignores it in places); candidates cut by
``max_tokens`` are not reported as finished; and a failed request drops only its own candidates.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from sal_plugins.errors import ConfigError
from sal_plugins.strategies.base import Expand, Outcome, Plan, Score, SearchStrategy
from sal_plugins.tree import SearchTree

__all__ = ["BeamSearch", "spread"]


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
        lookahead: greedy steps rolled out past each candidate step before scoring it (0: off).
            The candidate keeps the score of its roll-out; only the first step is kept.
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
            raise ConfigError(f"{type(self).__name__} needs a verifier to rank its beams: pass verifier=...")
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
                yield from self._score_with_lookahead(tree, scorable, step)
            elif scorable:
                yield [Score(nodes=scorable, round=step)]
            done += [i for i in candidates if tree[i].finished or tree[i].truncated]
            open_ = [i for i in candidates if not (tree[i].finished or tree[i].truncated)]
            if self.dedup:
                open_ = self._unique(tree, open_)
            if not open_:
                break
            ranked = self.rank(tree, open_)
            active = ranked[: self.survivors]
            for pruned in ranked[self.survivors :]:
                tree[pruned].pruned = True
        finished = [i for i in done if tree[i].finished and tree[i].steps]
        if finished:
            return Outcome(self.rank(tree, finished)[: self.n])
        return Outcome(self.best_so_far(tree)[: self.n], "max_steps")

    def _score_with_lookahead(self, tree: SearchTree, nodes: tuple[int, ...], step: int) -> Plan:
        """Roll each candidate out ``lookahead`` greedy steps; score the roll-out's end."""
        tips = {node: node for node in nodes if not tree[node].finished}
        for _ in range(self.lookahead):
            rolling = [node for node, tip in tips.items() if not tree[tip].finished]
            if not rolling:
                break
            results = yield [
                Expand(parent=tips[node], n=1, round=step, temperature=0.0, kind="lookahead")
                for node in rolling
            ]
            for node, ids in zip(rolling, results, strict=True):
                if ids and tree[ids[0]].steps:
                    tips[node] = ids[0]
        scored_tips = tuple(dict.fromkeys([tips.get(node, node) for node in nodes]))
        if scored_tips:
            yield [Score(nodes=scored_tips, round=step)]
        for node in nodes:
            tip = tree[tips.get(node, node)]
            if tip.id != node:
                tree[node].step_scores = tip.step_scores
                tree[node].score = tip.score
        return Outcome([])

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
