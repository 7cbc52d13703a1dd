"""Samples riding along a step-wise search: scored whole solutions whose steps are free candidates.

``Adaptive`` probes a problem with a few whole solutions, scored by the verifier, before it runs
a step-wise search. With a per-step verifier those samples are also scored prefixes: a prefix
scores the same whether or not more steps follow, and the sample came from the same solver and
settings as the search's own steps. So a search that grows nodes by sampling ``count``
continuations of each (beam search, particle filtering) can take a sample's next step as one of
them instead of generating it. Here, once for both:

* :func:`reusable` picks the samples that qualify (scored step by step);
* :func:`ride_along` splits them into chains of step nodes and scores each prefix;
* :func:`expand` is the search's expansion step with the free steps taken first.

With no samples riding, :func:`expand` asks for exactly what the search would have.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

from sal_plugins.plan import Expand, Request
from sal_plugins.tree import SearchTree

__all__ = ["Rides", "expand", "reusable", "ride_along"]

Growth = Sequence[tuple[int, int]]
"""``(node id, continuations wanted)`` per node to grow."""


def reusable(tree: SearchTree, samples: Sequence[int]) -> list[int]:
    """The samples whose every step has its own score (those can ride along)."""
    return [i for i in samples if tree[i].scored_per_step]


@dataclass
class Rides:
    """For each node, the free continuations riding samples offer it.

    Attributes:
        next_step: per node, the next steps of the samples through it (the root: their first).
        end: per chain node, the sample it belongs to (its whole rest).
        given: every node handed out as a free continuation (scored already: not again).
    """

    next_step: dict[int, list[int]] = field(default_factory=dict)
    end: dict[int, int] = field(default_factory=dict)
    given: set[int] = field(default_factory=set)

    def add(self, chain: Sequence[int]) -> None:
        """Let a sample, split into a chain of step nodes (the root's child first), ride along."""
        for parent, child in zip([0, *chain], chain, strict=False):
            self.next_step.setdefault(parent, []).append(child)
        for node_id in chain:
            self.end[node_id] = chain[-1]

    def take(self, node: int, count: int, *, to_end: bool) -> tuple[int, ...]:
        """Up to ``count`` free continuations of ``node``, each handed out once.

        With ``to_end`` each is its sample's whole rest (the search's last round).
        """
        offered = self.next_step.get(node, [])
        ready = offered[:count]
        del offered[:count]  # the rest for the node's next growth (DVTS grows the root per subtree)
        if to_end:
            ready = [self.end[i] for i in ready]
        self.given.update(ready)
        return tuple(ready)


def ride_along(
    tree: SearchTree, samples: Sequence[int], score_of: Callable[[Sequence[float]], float]
) -> Rides:
    """Split the :func:`reusable` samples into step chains, score their prefixes, let them ride.

    Each prefix's ``score`` is ``score_of`` its share of the sample's step scores (the strategy's
    aggregation); the sample keeps its own.
    """
    rides = Rides()
    for sample in reusable(tree, samples):
        chain = tree.step_chain(sample)
        for node_id in chain[:-1]:
            node = tree[node_id]
            if node.step_scores:
                node.score = score_of(node.step_scores)
        rides.add(chain)
    return rides


def expand(
    rides: Rides, growth: Growth, round_: int, *, to_end: bool
) -> Generator[list[Request], list[tuple[int, ...]], list[tuple[int, ...]]]:
    """Grow each node by its count: free continuations first, the rest generated in one batch.

    Returns, per node of ``growth``, the ids of its continuations (free ones first; fewer when a
    request failed). No batch is yielded when every continuation was free.
    """
    free = [rides.take(node, count, to_end=to_end) for node, count in growth]
    requests: list[Request] = [
        Expand(parent=node, n=count - len(ready), round=round_, to_end=to_end)
        for (node, count), ready in zip(growth, free, strict=True)
        if count > len(ready)
    ]
    answers = iter((yield requests) if requests else [])
    return [
        (*ready, *(next(answers) if count > len(ready) else ()))
        for (_, count), ready in zip(growth, free, strict=True)
    ]
