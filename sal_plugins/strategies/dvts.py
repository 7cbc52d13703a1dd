"""Diverse verifier tree search (DVTS), after search-and-learn's ``dvts``.

The N samples are split into N / M independent subtrees (M = ``beam_width``). Each round every
live subtree expands its current node into M candidate steps; all subtrees' requests go out in one
batch, and one verifier call scores every candidate. Each subtree keeps its best candidate (greedy
on the verifier) and drops the rest; a subtree stops when its best candidate ends the solution.
Independent subtrees keep the search diverse where one shared beam would collapse onto a few
prefixes, which is why DVTS overtakes beam search at large N.

Cost, with N = ``n``, M = ``beam_width``, k = ``lookahead`` and S = ``max_steps``: each round makes
at most N / M generation requests of M continuations (N calls on a solver that fans ``n`` out), up
to k rounds of one greedy request per open candidate (k * N calls) when look-ahead is on, and one
verifier call. At most S rounds: at most S * (N / M + k * N) generation requests and S verifier
calls; subtrees that finish early stop costing anything. k defaults to 1, as in
search-and-learn; with k = 0 a round is N / M generation requests and one verifier call.

Differences from search-and-learn, on purpose: only finished candidates are returned
(search-and-learn returns every subtree's last candidates, finished or not); candidates cut by
``max_tokens`` are not finished; the configured ``aggregation`` is honoured; and a failed request
ends only its own subtree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, model_validator

from sal_plugins.answers import warm_up_equivalence
from sal_plugins.errors import ConfigError
from sal_plugins.plan import Expand, Outcome, Plan, Request, Score
from sal_plugins.strategies.base import SearchStrategy
from sal_plugins.strategies.beam_search import score_with_lookahead
from sal_plugins.strategies.best_of_n import Selection, select
from sal_plugins.tree import SearchTree

__all__ = ["DVTS"]


class DVTS(SearchStrategy):
    """Diverse verifier tree search: ``n // beam_width`` independent greedy subtrees.

    The final answer is selected among the finished candidates like best-of-N (``selection``):
    each subtree contributes the finished candidates of its last expansion (its chosen one and
    any finished siblings), so up to N candidates vote.

    Args:
        n: samples per round in all (search-and-learn's ``n``); ``n // beam_width`` subtrees.
        beam_width: candidate steps per subtree and round (``M``); ``n`` must be a multiple.
        max_steps: rounds before the search stops; the last one generates to the end.
        lookahead: greedy steps rolled out past each candidate before scoring it; see
            :func:`~sal_plugins.strategies.beam_search.score_with_lookahead`. The default, 1, is
            search-and-learn's (its published DVTS results use it); 0 turns it off and halves
            the generation requests of each round.
        selection: how the final answer is picked among the finished candidates: ``"weighted"``
            (default), ``"majority"`` or ``"naive"``, as in
            :class:`~sal_plugins.strategies.best_of_n.BestOfN`.
        **kwargs: the shared settings of :class:`~sal_plugins.strategies.base.SearchStrategy`;
            a verifier is required.

    Example:
        >>> search = DVTS(solver=solver, verifier=prm, n=16, beam_width=4, max_steps=40, seed=0)
        >>> result = search.run("What is 23 + 48?")
    """

    name: ClassVar[str] = "dvts"

    n: int = Field(default=16, gt=0)
    beam_width: int = Field(default=4, gt=0)
    max_steps: int = Field(default=40, gt=0)
    lookahead: int = Field(default=1, ge=0)
    selection: Selection = "weighted"

    @model_validator(mode="after")
    def _check_shape(self) -> DVTS:
        if self.verifier is None:
            raise ConfigError(
                "DVTS needs a verifier to choose each subtree's step: pass verifier=..."
            )
        if self.n < self.beam_width or self.n % self.beam_width:
            raise ConfigError(
                f"DVTS(n={self.n}, beam_width={self.beam_width}): n must be a multiple of "
                "beam_width (n // beam_width independent subtrees)"
            )
        return self

    @property
    def subtrees(self) -> int:
        """Independent subtrees searched side by side."""
        return self.n // self.beam_width

    def plan(self, problem: str, tree: SearchTree) -> Plan:
        """Rounds of expand-all, score-all, keep the best candidate per subtree."""
        if self.selection != "naive":
            warm_up_equivalence()  # math-verify loads while the model generates
        current = dict.fromkeys(range(self.subtrees), 0)  # live subtree -> node it grows from
        final: dict[int, list[int]] = {}  # ended subtree -> its finished candidates
        unverified = 0  # subtrees that ended because the verifier scored none of their steps
        for step in range(self.max_steps):
            if not current:
                break
            last = step == self.max_steps - 1
            live = list(current)
            requests: list[Request] = [
                Expand(parent=current[s], n=self.beam_width, round=step, to_end=last) for s in live
            ]
            results = yield requests
            scorable = tuple(i for ids in results for i in ids if tree[i].steps)
            if self.lookahead and not last:
                yield from score_with_lookahead(tree, scorable, self.lookahead, step)
            elif scorable:
                yield [Score(nodes=scorable, round=step)]
            for subtree, ids in zip(live, results, strict=True):
                candidates = [i for i in ids if tree[i].steps]
                scored = [i for i in candidates if tree[i].score is not None]
                if not scored:  # the request or its scoring failed: this subtree ends here
                    unverified += bool(candidates)
                    del current[subtree]
                    final[subtree] = []
                    continue
                candidates = scored
                best, *rest = SearchStrategy.rank(self, tree, candidates)
                for dropped in rest:
                    tree[dropped].pruned = True
                if tree[best].finished or tree[best].truncated or last:
                    del current[subtree]
                    final[subtree] = [i for i in [best, *rest] if tree[i].finished]
                else:
                    current[subtree] = best
        finished = [i for ids in final.values() for i in ids]
        if finished:
            for node_id in finished:
                tree[node_id].pruned = False
            return Outcome(self.rank(tree, finished))
        return Outcome(self.best_so_far(tree), "error" if unverified else "max_steps")

    def rank(self, tree: SearchTree, node_ids: Sequence[int]) -> list[int]:
        """Order final candidates by the configured selection, best first."""
        return select(tree, super().rank(tree, node_ids), self.selection)
