"""The binding to SakanaAI's ``treequest``: lazy import, a seeded random stream, ask and tell.

``treequest`` (the ``mcts`` extra) is imported only when an AB-MCTS search is configured, so
``import sal_plugins`` works without it. Its AB-MCTS-A draws every Thompson sample from NumPy's
global random state (SciPy's ``rvs`` and ``np.random.normal`` without a generator). To make a
seeded search reproducible without changing what the rest of the process draws, each search keeps
its own NumPy state and swaps it in only while treequest chooses nodes, under a lock shared by
every search of the process; the global state is put back untouched afterwards. Code in another
thread that draws from NumPy's global state during one of those few-millisecond windows would
draw from the search's stream (and make that search irreproducible); nothing in sal-plugins does.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sal_plugins.errors import MissingDependencyError

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["Ask", "Distribution", "TreeQuestSearch", "require_treequest"]

Distribution = Literal["gaussian", "beta"]
"""The family of AB-MCTS-A's Thompson-sampling posteriors (treequest's ``dist_type``)."""

_GLOBAL_RNG = threading.Lock()
"""Held while a search's NumPy state stands in for the global one."""


def require_treequest() -> ModuleType:
    """The ``treequest`` package.

    Raises:
        MissingDependencyError: it is not installed (``pip install 'sal-plugins[mcts]'``).
    """
    try:
        import treequest
        import treequest.trial
    except ImportError as error:
        raise MissingDependencyError("ABMCTS (AB-MCTS over treequest)", "mcts") from error
    _name_trials_with_any_ulid(treequest.trial)
    return treequest


class _UlidNew:
    """``ulid.new()`` over python-ulid's ``ULID()``: all treequest asks of its ``ulid``."""

    def __init__(self, ulid_class: Any) -> None:
        self._ulid_class = ulid_class

    def new(self) -> Any:
        return self._ulid_class()


def _name_trials_with_any_ulid(trial_module: ModuleType) -> None:
    """Let treequest name its trials whichever ``ulid`` package is installed.

    treequest calls ulid-py's ``ulid.new()``; python-ulid (which ``llm``, and so the embedded
    model's wheel, depends on) installs a module of the same name without it, and the one
    installed last wins. treequest only needs a fresh unique id per trial, which python-ulid's
    ``ULID()`` is; only treequest's own reference to the module is replaced.
    """
    current = getattr(trial_module, "ulid", None)
    if current is None or hasattr(current, "new"):
        return
    ulid_class = getattr(current, "ULID", None)
    if ulid_class is not None:
        setattr(trial_module, "ulid", _UlidNew(ulid_class))  # noqa: B010


@dataclass(frozen=True)
class Ask:
    """One node treequest asked to grow.

    Attributes:
        parent: the search-tree node to grow (0: the root, a fresh solution).
        action: how to grow it, one of the actions the search was made with.
        trial_id: treequest's id for this expansion, to tell the result back.
    """

    parent: int
    action: str
    trial_id: str


class TreeQuestSearch:
    """One AB-MCTS-A search over search-tree node ids, with its own seeded random stream.

    treequest's node states are the ids of :class:`~sal_plugins.tree.SearchTree` nodes, so its
    tree mirrors the part of ours it has been told about.

    Args:
        actions: the ways a node can be grown (treequest's actions; with more than one, its
            bandit learns which earns the higher rewards).
        distribution: the posterior family (``"gaussian"``, treequest's default, or ``"beta"``).
        prior_reward: the prior mean reward of an untried branch, in (0, 1); ``None`` keeps
            treequest's prior (Gaussian mean 0, or Jeffreys' Beta(0.5, 0.5)).
        seed: seeds the stream treequest samples from; ``None`` draws one from the system.

    Raises:
        MissingDependencyError: treequest is not installed.
    """

    def __init__(
        self,
        *,
        actions: list[str],
        distribution: Distribution,
        prior_reward: float | None,
        seed: int | None,
    ) -> None:
        treequest = require_treequest()
        import numpy as np
        from treequest.algos.ab_mcts_a.prob_state import PriorConfig

        prior = PriorConfig(dist_type=distribution)
        if prior_reward is not None:
            prior.set_reward_average_prior(prior_reward)
        self._algorithm: Any = treequest.ABMCTSA(dist_type=distribution, prior_config=prior)
        self._state: Any = self._algorithm.init_tree()
        # RandomState takes 32-bit seeds; any Python int (negative too) maps to one.
        numpy_seed = None if seed is None else random.Random(seed).getrandbits(32)
        self._np = np
        self._stream: Any = np.random.RandomState(numpy_seed).get_state()
        self._actions = list(actions)

    def ask(self, count: int) -> list[Ask]:
        """The next ``count`` nodes to grow (the same node may come more than once)."""
        np = self._np
        with _GLOBAL_RNG:
            outside = np.random.get_state()
            np.random.set_state(self._stream)
            try:
                self._state, trials = self._algorithm.ask_batch(self._state, count, self._actions)
            finally:
                self._stream = np.random.get_state()
                np.random.set_state(outside)
        return [
            Ask(
                parent=0 if t.parent_state is None else int(t.parent_state),
                action=t.action,
                trial_id=t.trial_id,
            )
            for t in trials
        ]

    def tell(self, ask: Ask, node_id: int, reward: float) -> None:
        """Report that ``ask`` produced node ``node_id`` with ``reward`` (in [0, 1])."""
        self._state = self._algorithm.tell(self._state, ask.trial_id, (node_id, reward))
