"""Diverse verifier tree search (DVTS), after search-and-learn's ``dvts``.

The N samples are split into N / M independent subtrees (M = ``beam_width``). Each round every
live subtree expands its current node into M candidate steps; all subtrees' requests go out in one
batch, and one verifier call scores every candidate. Each subtree keeps its best candidate (greedy
on the verifier; the first generated on a tie, as search-and-learn's ``np.argmax``) and drops the
rest; a subtree stops when its best candidate ends the solution. Independent subtrees keep the
search diverse where one shared beam would collapse onto a few prefixes, which is why DVTS
overtakes beam search at large N.

Cost, with N = ``n``, M = ``beam_width``, k = ``lookahead`` and S = ``max_steps``: each round makes
at most N / M generation requests of M continuations (N calls on a solver that fans ``n`` out), up
to k rounds of one greedy request per open candidate (k * N calls) when look-ahead is on, and one
verifier call. At most S rounds: at most S * (N / M + k * N) generation requests and S verifier
calls; subtrees that finish early stop costing anything. k defaults to 0, as in
search-and-learn (its config's default, which its DVTS recipes keep); each step of look-ahead
adds a wave of N greedy requests to every round.

Differences from search-and-learn (``sal.search.diverse_verifier_tree_search``), on purpose, and
what ``sal_compat=True`` does about each:

* Only finished candidates are returned; search-and-learn returns every subtree's last M
  candidates, finished or not, subtree by subtree. ``sal_compat`` returns those, in that order.
* A subtree goes on when its step states a boxed answer but the server says the model has not
  ended (vLLM reports the matched stop string); search-and-learn stops a subtree once its text
  contains ``boxed{``. ``stop_at_boxed=True`` does too; ``sal_compat`` defaults it on. (A server
  that does not say which stop matched ends the solution at a stated answer either way, see
  :func:`~sal_plugins.tree.ends_solution`.)
* The final answer is selected with the configured ``aggregation``; search-and-learn selects with
  the last step's score (of the roll-out, with look-ahead) and breaks ties between answers by
  first occurrence. ``sal_compat`` does both (with look-ahead and an ``aggregation`` other than
  ``"last"``, it takes the candidate's own last step).
* Candidates cut by ``max_tokens`` are not finished (search-and-learn's ``"EOS"`` covers both); a
  subtree ends at either, as in search-and-learn.
* ``max_tokens`` defaults to 1024 and ``top_p`` to the solver's own; search-and-learn uses 2048
  and 1.0, which ``sal_compat`` fills in (settings given explicitly win).
* Not changed by ``sal_compat``: a failed request ends only its own subtree (search-and-learn
  drops a subtree that got fewer than M candidates, and stops on errors); answers are compared
  with math-verify; the system prompt is this project's (pass search-and-learn's as
  ``system_prompt``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

from pydantic import Field, model_validator

from sal_plugins.answers import warm_up_equivalence
from sal_plugins.errors import ConfigError
from sal_plugins.plan import Outcome, Plan, Score
from sal_plugins.results import StopReason
from sal_plugins.strategies._reuse import Rides, expand, reusable, ride_along
from sal_plugins.strategies._selection import Selection, sal_score, select, select_like_sal
from sal_plugins.strategies.base import SAL_DEFAULTS, SearchStrategy
from sal_plugins.strategies.beam_search import score_with_lookahead
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
            :func:`~sal_plugins.strategies.beam_search.score_with_lookahead`. The default, 0, is
            search-and-learn's; each step of look-ahead adds N greedy requests to a round.
        selection: how the final answer is picked among the finished candidates: ``"weighted"``
            (default), ``"majority"`` or ``"naive"``, as in
            :class:`~sal_plugins.strategies.best_of_n.BestOfN`.
        stop_at_boxed: treat a candidate whose trajectory contains ``boxed{`` as finished, even
            when the server says the model has not ended, so its subtree stops there
            (search-and-learn's rule; off by default).
        sal_compat: reproduce search-and-learn's choices where this class differs on purpose
            (see the module docstring): every subtree's last candidates returned in its order,
            ``stop_at_boxed=True``, selection by the last step's score, ``max_tokens=2048`` and
            ``top_p=1.0``.
        **kwargs: the shared settings of :class:`~sal_plugins.strategies.base.SearchStrategy`;
            a verifier is required.

    Example:
        >>> search = DVTS(solver=solver, verifier=prm, n=16, beam_width=4, max_steps=40, seed=0)
        >>> result = search.run("What is 23 + 48?")
    """

    name: ClassVar[str] = "dvts"
    sal_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {**SAL_DEFAULTS, "stop_at_boxed": True}
    )

    n: int = Field(default=16, gt=0)
    beam_width: int = Field(default=4, gt=0)
    max_steps: int = Field(default=40, gt=0)
    lookahead: int = Field(default=0, ge=0)
    selection: Selection = "weighted"
    stop_at_boxed: bool = False
    sal_compat: bool = False

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
        return (yield from self._rounds(tree, Rides()))

    def reusable_samples(self, tree: SearchTree, samples: Sequence[int]) -> list[int]:
        """The samples scored step by step (a subtree can grow along those); none with ``sal_compat``."""
        return [] if self.sal_compat else reusable(tree, samples)

    def plan_reusing(self, problem: str, tree: SearchTree, samples: Sequence[int]) -> Plan:
        """DVTS with ``samples`` riding along: their steps are free candidates.

        As for beam search (:meth:`~sal_plugins.strategies.beam_search.BeamSearch.plan_reusing`):
        the samples' first steps are the first subtrees' first candidates (``beam_width`` per
        subtree, in order), and a subtree growing from a sample's prefix takes the sample's next
        step as one of its ``beam_width`` continuations.
        """
        riding = self.reusable_samples(tree, samples)
        return (yield from self._rounds(tree, ride_along(tree, riding, self.score_of)))

    def _rounds(self, tree: SearchTree, rides: Rides) -> Plan:
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
            growth = [(current[s], self.beam_width) for s in live]
            results = yield from expand(rides, growth, step, to_end=last)
            scorable = tuple(
                i for ids in results for i in ids if tree[i].steps and i not in rides.given
            )
            if self.lookahead and not last:
                yield from score_with_lookahead(tree, scorable, self.lookahead, step)
            elif scorable:
                yield [Score(nodes=scorable, round=step)]
            if self.stop_at_boxed:  # free candidates from riding samples too
                self._finish_at_boxed(tree, [i for ids in results for i in ids if tree[i].steps])
            for subtree, ids in zip(live, results, strict=True):
                candidates = [i for i in ids if tree[i].steps]
                scored = [i for i in candidates if tree[i].score is not None]
                if not scored:  # the request or its scoring failed: this subtree ends here
                    unverified += bool(candidates)
                    del current[subtree]
                    final[subtree] = []
                    continue
                best, *rest = SearchStrategy.rank(self, tree, scored)
                for dropped in rest:
                    tree[dropped].pruned = True
                if self._ends(tree, best) or last:
                    del current[subtree]
                    # search-and-learn returns the subtree's last candidates in generation order.
                    final[subtree] = (
                        scored if self.sal_compat else [i for i in scored if tree[i].finished]
                    )
                else:
                    current[subtree] = best
        returned = [i for subtree in sorted(final) for i in final[subtree]]
        if returned:
            for node_id in returned:
                tree[node_id].pruned = False
            stop: StopReason = (
                "finished" if any(tree[i].finished for i in returned) else "max_steps"
            )
            return Outcome(self.rank(tree, returned), stop, samples_saved=len(rides.given))
        return Outcome(
            self.best_so_far(tree),
            "error" if unverified else "max_steps",
            samples_saved=len(rides.given),
        )

    @staticmethod
    def _ends(tree: SearchTree, node_id: int) -> bool:
        """Whether a subtree whose best candidate is ``node_id`` stops growing."""
        return tree[node_id].finished or tree[node_id].truncated

    @staticmethod
    def _finish_at_boxed(tree: SearchTree, node_ids: Sequence[int]) -> None:
        """Mark candidates whose trajectory states a boxed answer as finished.

        After scoring, so a look-ahead still rolls them out as search-and-learn does.
        """
        for node_id in node_ids:
            node = tree[node_id]
            if not (node.finished or node.truncated) and "boxed{" in tree.text_of(node_id):
                node.finished = True

    def rank(self, tree: SearchTree, node_ids: Sequence[int]) -> list[int]:
        """Order final candidates by the configured selection, best first."""
        if self.sal_compat:
            return select_like_sal(
                tree,
                list(node_ids),
                self.selection,
                lambda i: sal_score(tree, i, self.aggregation),
            )
        return select(tree, super().rank(tree, node_ids), self.selection)
