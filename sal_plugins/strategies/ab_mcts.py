"""AB-MCTS: adaptive-branching Monte Carlo tree search over a PRM, driven by SakanaAI's treequest.

AB-MCTS (Inoue et al., 2025, "Wider or Deeper?") decides at every node, by Thompson sampling,
whether to go wider (sample a new child of that node) or deeper (descend into one of its
children and decide again there). The tree policy is treequest's AB-MCTS-A (``ABMCTSA``, the
``mcts`` extra); this module only maps it onto the plan vocabulary, so the driver does all I/O.

The mapping. A treequest node is one node of the search tree, scored by the verifier on the
trajectory that ends there: what a process reward model judges, so the search can branch at
any step. A node is grown by one of two treequest actions: ``"step"`` generates one more step
of its trajectory (from the root: the first step of a fresh solution), ``"finish"`` generates
the rest of its solution at once (from the root: a whole solution). AB-MCTS-A's bandit learns
which action earns the higher scores. Without ``"finish"`` (``finish_action=False``) a solution
ends only when a line of "deeper" picks reaches its last step, which AB-MCTS, inclined to go
wider, seldom does within a modest budget; with it, every region of the tree can yield
finished candidates. A node ``max_steps - 1`` steps deep is always grown to the end, and so is
every node picked in the last round (as beam search's last round generates to the end), so the
search ends with finished solutions from where treequest was looking.

Each round, treequest is asked for ``batch_size`` nodes to grow; the round becomes one
generation batch (one request per asked node and action, for as many continuations as treequest
asked of it) and one verifier call scoring every new node, and the scores are told back. Scores
are put on treequest's [0, 1] scale through the verifier's declared ``score_range`` (clamped to
[0, 1] when it declares none; the tree's notes say so when that changed a score).

A node that ended its solution (finished, or cut at ``max_tokens``) has nothing to grow: when
treequest picks one, the pick costs no generation and its score is told back once more (how
Monte Carlo tree search treats a terminal state), so a search that has settled on a good
solution stops spending; those picks are counted in ``usage.calls_saved``. A node the verifier
could not score is never told to treequest and is marked pruned (growing it would be a blind
pick); a failed generation request leaves its asks untold, and the search goes on.

Cost, with N = ``n`` and B = ``batch_size``: at most ceil(N / B) rounds; each round at most B
generation requests (fewer when treequest asks for the same node twice: one request for both
continuations), at most N generations in all (a pick of an ended solution costs none; a solver
that fans ``n`` out makes one call per generation), and one verifier call per round, so at most
ceil(N / B) verifier calls.

The answer is selected among every finished solution in the tree, as best-of-N selects
(``selection``). treequest's own tree stays inside the search; ``result.tree`` holds every node
generated, with its score (``kind="step"`` for one step, ``"solution"`` for the rest of one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, model_validator

from sal_plugins.answers import warm_up_equivalence
from sal_plugins.errors import ConfigError
from sal_plugins.plan import Expand, Outcome, Plan, Score
from sal_plugins.results import StopReason
from sal_plugins.strategies._selection import Selection, select
from sal_plugins.strategies._treequest import (
    Ask,
    Distribution,
    TreeQuestSearch,
    require_treequest,
)
from sal_plugins.strategies.base import SearchStrategy
from sal_plugins.tree import Node, SearchTree

__all__ = ["ABMCTS"]

_CLAMPED = (
    "AB-MCTS clamped verifier scores outside [0, 1] before telling them to treequest (the "
    "verifier declares no score_range to rescale by)"
)


def _ended(node: Node) -> bool:
    return node.finished or node.truncated


class ABMCTS(SearchStrategy):
    """Adaptive-branching MCTS (AB-MCTS-A) over the verifier's scores: wider or deeper per node.

    Needs ``treequest``: ``pip install 'sal-plugins[mcts]'`` (Python 3.11 or later).

    Args:
        n: expansions in all: the nodes treequest asks to grow, each one generation (one step,
            or the rest of a solution); a pick of an already ended solution counts too but
            generates nothing. At most ``n`` generations.
        batch_size: nodes asked for per round; a round is one generation batch and one verifier
            call. Larger batches are faster on a server that runs requests in parallel, but
            each round's picks are made before any of its results are known (treequest suggests
            at most 5).
        max_steps: most steps per solution; a node ``max_steps - 1`` steps deep is grown by
            generating the rest of its solution (as is every node picked in the last round).
        selection: how the final answer is picked among the finished solutions: ``"weighted"``
            (default), ``"majority"`` or ``"naive"``, as in
            :class:`~sal_plugins.strategies.best_of_n.BestOfN`.
        distribution: the family of AB-MCTS-A's posteriors over rewards, ``"gaussian"``
            (treequest's default) or ``"beta"``.
        prior_reward: the mean reward every posterior starts from before any score is seen,
            in (0, 1). ``None`` keeps treequest's prior (a Gaussian around 0, or the Jeffreys
            Beta(0.5, 0.5)).
        finish_action: let treequest also grow a node by generating the rest of its solution
            (the ``"finish"`` action, weighed by its bandit against one more step). Off, every
            expansion is one step, and solutions finish only through long lines of "deeper"
            picks (see the module docstring).
        **kwargs: the shared settings of :class:`~sal_plugins.strategies.base.SearchStrategy`;
            a verifier is required.

    Randomness: treequest's choices come from a NumPy stream seeded from ``seed`` and private to
    the search (see :mod:`sal_plugins.strategies._treequest`), so a seeded search repeats
    exactly and leaves NumPy's global random state as it found it.

    Example:
        >>> search = ABMCTS(solver=solver, verifier=prm, n=32, batch_size=4, max_steps=40, seed=0)
        >>> result = search.run("What is 23 + 48?")
    """

    name: ClassVar[str] = "ab_mcts"

    n: int = Field(default=32, gt=0)
    batch_size: int = Field(default=4, gt=0)
    max_steps: int = Field(default=40, gt=0)
    selection: Selection = "weighted"
    distribution: Distribution = "gaussian"
    prior_reward: float | None = Field(default=None, gt=0.0, lt=1.0)
    finish_action: bool = True

    @model_validator(mode="after")
    def _check_shape(self) -> ABMCTS:
        if self.verifier is None:
            raise ConfigError(
                "ABMCTS needs a verifier: its scores steer the search (pass verifier=...)"
            )
        if self.batch_size > self.n:
            raise ConfigError(
                f"ABMCTS(n={self.n}, batch_size={self.batch_size}): batch_size cannot exceed n "
                "(n counts every node asked for); lower batch_size or raise n"
            )
        require_treequest()
        return self

    @property
    def actions(self) -> list[str]:
        """treequest's actions: ``"step"``, and ``"finish"`` unless ``finish_action`` is off."""
        return ["step", "finish"] if self.finish_action else ["step"]

    def plan(self, problem: str, tree: SearchTree) -> Plan:
        """Rounds of ask, generate, score and tell, as described in the module docstring."""
        search = TreeQuestSearch(
            actions=self.actions,
            distribution=self.distribution,
            prior_reward=self.prior_reward,
            seed=self.seed,
        )
        if self.selection != "naive":
            warm_up_equivalence()  # math-verify loads while the model generates
        asked = revisits = round_ = 0
        while asked < self.n:
            asks = search.ask(min(self.batch_size, self.n - asked))
            asked += len(asks)
            growing = self._route(search, tree, asks, last=asked >= self.n)
            revisits += len(asks) - sum(len(group) for group in growing.values())
            if not growing:
                continue
            results = yield [
                Expand(
                    parent=parent,
                    n=len(group),
                    round=round_,
                    to_end=to_end,
                    kind="solution" if to_end else "step",
                )
                for (parent, to_end), group in growing.items()
            ]
            # A request the call budget cut short returns fewer nodes: the rest stay untold.
            grown = [
                (ask, node_id)
                for group, ids in zip(growing.values(), results, strict=True)
                for ask, node_id in zip(group, ids, strict=False)
            ]
            scorable = tuple(node_id for _, node_id in grown if tree[node_id].steps)
            if scorable:
                yield [Score(nodes=scorable, round=round_)]
            for ask, node_id in grown:
                node = tree[node_id]
                if node.score is not None:
                    search.tell(ask, node_id, self._reward(tree, node))
                elif not _ended(node):
                    node.pruned = True  # unscored: treequest never hears of it
            round_ += 1
        finished = [n.id for n in tree.nodes[1:] if n.finished and n.steps]
        if finished:
            return Outcome(self.rank(tree, finished), samples_saved=revisits)
        scored = any(n.score is not None for n in tree.nodes[1:])
        stop: StopReason = "max_steps" if scored else "error"
        return Outcome(self.best_so_far(tree), stop, samples_saved=revisits)

    def _route(
        self, search: TreeQuestSearch, tree: SearchTree, asks: list[Ask], *, last: bool
    ) -> dict[tuple[int, bool], list[Ask]]:
        """The asks that need a generation, by (parent, to the end); picks of ended ones are told.

        A pick of an ended solution generates nothing: its score is told back once more. In the
        ``last`` round every node is grown to the end.
        """
        growing: dict[tuple[int, bool], list[Ask]] = {}
        for ask in asks:
            node = tree[ask.parent]
            if ask.parent and _ended(node):
                search.tell(ask, node.id, self._reward(tree, node))
                continue
            to_end = last or ask.action == "finish" or len(node.steps) + 1 >= self.max_steps
            growing.setdefault((ask.parent, to_end), []).append(ask)
        return growing

    def _reward(self, tree: SearchTree, node: Node) -> float:
        """A scored node's reward on treequest's [0, 1] scale."""
        if node.score is None:
            raise AssertionError("only scored nodes are told to treequest")  # pragma: no cover
        value = node.score
        scorer = self.scorer
        bounds = scorer.score_range if scorer is not None else None
        if bounds is not None and bounds[1] > bounds[0]:
            value = (value - bounds[0]) / (bounds[1] - bounds[0])
        if 0.0 <= value <= 1.0:
            return value
        if bounds is None:
            tree.note(_CLAMPED)
        return min(1.0, max(0.0, value))

    def rank(self, tree: SearchTree, node_ids: Sequence[int]) -> list[int]:
        """Order final candidates by the configured selection, best first."""
        return select(tree, super().rank(tree, node_ids), self.selection)
