"""Best-of-N: sample N whole solutions, score them, pick one.

Cost: ``ceil(N / n_per_request)`` generation requests (one request with ``n=N`` on servers that
honour ``n``; N requests where the solver fans out), and one verifier call scoring N trajectories.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from sal_plugins.answers import extract_answer, group_equivalent
from sal_plugins.errors import ConfigError
from sal_plugins.strategies.base import Expand, Outcome, Plan, Score, SearchStrategy
from sal_plugins.tree import SearchTree

__all__ = ["BestOfN", "Selection"]

Selection = Literal["naive", "weighted", "majority"]


class BestOfN(SearchStrategy):
    """Sample ``n`` complete solutions and select one.

    Selections (as in search-and-learn):

    * ``"naive"``: the solution with the highest aggregated verifier score;
    * ``"weighted"``: sum the scores of solutions whose final answers are equivalent (math-verify)
      and take the best-scored solution of the heaviest answer;
    * ``"majority"``: the most frequent answer (ties: higher total score, then first seen). With
      ``verifier=None`` this is self-consistency, which needs no verifier at all.

    Unlike search-and-learn, the aggregation setting is honoured when scoring (it defaults to
    ``"last"``, the PRM's score of the final step).

    Args:
        n: number of solutions to sample.
        selection: how to pick among them (``"weighted"`` by default, ``"majority"`` without a
            verifier).
        **kwargs: the shared settings of :class:`~sal_plugins.strategies.base.SearchStrategy`.

    Example:
        >>> search = BestOfN(solver=solver, verifier=prm, n=16, selection="weighted", seed=0)
        >>> search.run("What is 23 + 48?").answer
        '71'
    """

    name: ClassVar[str] = "best_of_n"

    n: int = Field(default=4, gt=0)
    selection: Selection | None = None

    @model_validator(mode="after")
    def _check_selection(self) -> BestOfN:
        if self.selection in ("naive", "weighted") and self.verifier is None:
            raise ConfigError(
                f"BestOfN(selection={self.selection!r}) needs a verifier: pass verifier=... "
                "or use selection='majority' (self-consistency)"
            )
        return self

    @property
    def effective_selection(self) -> Selection:
        """The selection in force (``selection`` or its default)."""
        if self.selection is not None:
            return self.selection
        return "majority" if self.verifier is None else "weighted"

    def plan(self, problem: str, tree: SearchTree) -> Plan:
        """One batch of ``n`` full solutions, then one verifier call over all of them."""
        (candidates,) = yield [Expand(parent=0, n=self.n, to_end=True, kind="solution")]
        scorable = tuple(i for i in candidates if tree[i].steps)
        if self.verifier is not None and scorable:
            yield [Score(nodes=scorable)]
        finished = [i for i in candidates if tree[i].finished and tree[i].steps]
        pool = finished or list(scorable)
        return Outcome(self.rank(tree, pool), "finished" if finished else "max_steps")

    def rank(self, tree: SearchTree, node_ids: Sequence[int]) -> list[int]:
        """Order candidates by the configured selection, best first."""
        by_score = super().rank(tree, node_ids)
        selection = self.effective_selection
        if selection == "naive" or not by_score:
            return by_score
        answers = [extract_answer(self.step_delimiter.join(tree[i].steps)) for i in by_score]
        groups = group_equivalent(answers)
        if not groups:
            return by_score

        def weight(group: list[int]) -> tuple[float, float]:
            total = sum(tree[by_score[i]].score or 0.0 for i in group)
            if selection == "weighted":
                return (total, len(group))
            return (len(group), total)

        # by_score is sorted, so each group lists its members best first and ties keep age order.
        ordered = sorted(groups, key=weight, reverse=True)
        ranked = [by_score[i] for group in ordered for i in group]
        return ranked + [i for i in by_score if i not in ranked]
