"""Selection among final candidates, for every strategy that picks one of several solutions.

Two orderings live here, once:

* :func:`select`, this project's: candidates come sorted by score, and ties fall to the other
  measure (a tied vote to the higher total score, a tied total to the larger group);
* :func:`select_like_sal`, search-and-learn's (``sal.utils.math``): candidates come in the order
  the search returned them, ties fall to the first answer seen, candidates without an answer
  form one group of their own, and the score that counts is the verifier's score of the last
  step whatever the ``aggregation`` (``sal.utils.score.score`` reduces with ``"last"``).

Both return candidates best first, so the first one holds the selected answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

from sal_plugins.answers import group_equivalent
from sal_plugins.plan import Aggregation
from sal_plugins.tree import SearchTree

__all__ = ["Selection", "answer_groups", "sal_score", "select", "select_like_sal"]

Selection = Literal["naive", "weighted", "majority"]
"""How the final answer is picked: best score, heaviest answer by summed score, or most votes."""


def answer_groups(tree: SearchTree, node_ids: Sequence[int]) -> list[list[int]]:
    """Positions in ``node_ids`` grouped by equivalent final answers (first seen first).

    Candidates without an extractable answer belong to no group.
    """
    answers = [tree.answer_of(i) for i in node_ids]
    # Plans run on the event loop: the grouping may hold it for at most a second, whatever the
    # answers (comparisons left then are made as strings; the groups count them).
    groups = group_equivalent(answers, time_budget_s=1.0)
    for reason in groups.reasons:
        tree.note(f"some answers were compared as normalised strings: {reason}")
    return groups


def select(tree: SearchTree, by_score: Sequence[int], selection: Selection) -> list[int]:
    """Order candidates for a selection, best first; ``by_score`` must be sorted by score already.

    ``"naive"`` keeps the score order. ``"weighted"`` puts first the answer whose candidates' scores
    sum highest, ``"majority"`` the most frequent answer (ties broken by the other measure); within
    an answer, candidates keep their score order. Under ``"weighted"`` a candidate without an
    answer competes alone with its own score (a low-scored answer must not win over a better
    solution just because the latter states no answer); under ``"majority"`` it comes last.
    """
    if selection == "naive" or not by_score:
        return list(by_score)
    groups = answer_groups(tree, by_score)
    if selection == "weighted":
        grouped = {i for group in groups for i in group}
        groups += [[i] for i in range(len(by_score)) if i not in grouped]
    if not groups:
        return list(by_score)

    def weight(group: list[int]) -> tuple[float, float]:
        total = sum(tree[by_score[i]].score or 0.0 for i in group)
        return (total, len(group)) if selection == "weighted" else (len(group), total)

    # by_score is sorted, so each group lists its members best first and ties keep age order.
    ordered = sorted(groups, key=weight, reverse=True)
    ranked = [by_score[i] for group in ordered for i in group]
    return ranked + [i for i in by_score if i not in ranked]


def sal_score(tree: SearchTree, node_id: int, aggregation: Aggregation) -> float | None:
    """The score search-and-learn selects with: the verifier's score of the last step.

    With ``aggregation="last"`` that is the node's ``score`` (which, after a look-ahead, is the
    score of the roll-out's last step, as search-and-learn's DVTS records it); otherwise the last
    of the node's own ``step_scores``.
    """
    node = tree[node_id]
    if aggregation == "last" or not node.step_scores:
        return node.score
    return float(node.step_scores[-1])


def select_like_sal(
    tree: SearchTree,
    pool: Sequence[int],
    selection: Selection,
    score: Callable[[int], float | None],
) -> list[int]:
    """Order candidates the way search-and-learn selects among them, best first.

    Args:
        tree: the search tree holding the candidates.
        pool: candidate node ids in the order the search returned them; an id may repeat
            (search-and-learn pads its beams to ``n`` with copies, and every copy votes).
        selection: ``"naive"``: highest score, the first one on a tie; ``"weighted"``: the answer
            whose scores sum highest; ``"majority"``: the most frequent answer. A tie between
            answers goes to the one seen first, and candidates without an answer vote together.
        score: the score of a candidate (see :func:`sal_score`).

    Returns:
        ``pool`` reordered: the selected answer's candidates first (highest score first, the
        earlier on a tie), then the other answers' in the order the selection ranks them.
    """

    def value(position: int) -> float:
        found = score(pool[position])
        return -math.inf if found is None else found

    def by_score(positions: Sequence[int]) -> list[int]:
        return sorted(positions, key=value, reverse=True)  # stable: the earlier wins a tie

    if selection == "naive" or not pool:
        return [pool[p] for p in by_score(range(len(pool)))]
    groups = answer_groups(tree, pool)
    grouped = {p for group in groups for p in group}
    unanswered = [p for p in range(len(pool)) if p not in grouped]
    if unanswered:
        groups.append(unanswered)
    groups.sort(key=min)  # the order search-and-learn first meets each answer in

    def weight(group: list[int]) -> float:
        if selection == "majority":
            return float(len(group))
        return sum(score(pool[p]) or 0.0 for p in group)

    ordered = sorted(groups, key=weight, reverse=True)  # stable: the first seen wins a tie
    return [pool[p] for group in ordered for p in by_score(group)]
