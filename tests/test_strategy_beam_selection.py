"""Final-candidate choices: BeamSearch's selection and sort_completed, DVTS's boxed stop, and
what ``sal_compat`` returns and selects in DVTS and BestOfN."""

from __future__ import annotations

from typing import Any

import pytest
from strategy_helpers import drive_plan

from sal_plugins import DVTS, BeamSearch, BestOfN
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.strategies._selection import select_like_sal
from sal_plugins.strategies.base import Expand
from sal_plugins.tree import Node, SearchTree
from sal_plugins.verifiers import ScriptedVerifier

PROBLEM = "What is 2 + 2?"


def boxed(answer: int, tag: str = "") -> str:
    return f"{tag}The answer is $\\boxed{{{answer}}}$."


def scores_by_text(table: dict[str, float]) -> Any:
    """A ``drive_plan`` scorer: the score listed for the trajectory's last step."""
    return lambda steps: table[steps[-1]]


def unused_verifier() -> ScriptedVerifier:
    return ScriptedVerifier(lambda problem, step: 0.5)


# --- BeamSearch(selection=...) ---------------------------------------------------------------

# Round 0 samples four steps: three finish (answers 9, 7, 7), one goes on and finishes as 7.
ROUND_0 = [(boxed(9, "a "), "end"), (boxed(7, "b "), "end"), (boxed(7, "c "), "end"), ("d", "open")]
LAST = [(boxed(7, "e "), "end")] * 4
SCORES = {boxed(9, "a "): 0.9, boxed(7, "b "): 0.6, boxed(7, "c "): 0.5, "d": 0.4}
SCORES[boxed(7, "e ")] = 0.3


def beam_respond(parent: Node, request: Expand, position: int) -> list[tuple[str, str]]:
    return (ROUND_0 if request.parent == 0 else LAST)[: request.n]


def beam(**settings: Any) -> BeamSearch:
    shape: dict[str, Any] = {"n": 4, "beam_width": 4, "max_steps": 2}
    return BeamSearch(solver=ScriptedSolver(["x"]), verifier=unused_verifier(), **shape, **settings)


@pytest.mark.parametrize(
    ("selection", "answer"), [("naive", "9"), ("weighted", "7"), ("majority", "7")]
)
def test_beam_search_selects_the_answer_like_best_of_n(selection: str, answer: str) -> None:
    search = beam(selection=selection, sort_completed=False)
    tree, _, outcome = drive_plan(search, PROBLEM, beam_respond, scores_by_text(SCORES))
    assert tree.answer_of(outcome.ranked[0]) == answer
    # Every finished beam is still a candidate, whatever the selection.
    assert len(outcome.ranked) == 4


def test_beam_search_default_selection_is_the_best_score() -> None:
    search = beam(sort_completed=False)
    tree, _, outcome = drive_plan(search, PROBLEM, beam_respond, scores_by_text(SCORES))
    assert search.selection == "naive"
    assert [tree[i].score for i in outcome.ranked] == sorted(
        (tree[i].score or 0.0 for i in outcome.ranked), reverse=True
    )


# --- BeamSearch(sort_completed=...) ----------------------------------------------------------

# Round 0: one early finisher with a low score and one open beam; its two continuations finish
# with higher scores. Three finished beams for n=2: which two are kept?
EARLY, LATE_HIGH, LATE_MID = boxed(1, "early "), boxed(2, "high "), boxed(3, "mid ")
SORT_SCORES = {EARLY: 0.3, "open": 0.5, LATE_HIGH: 0.9, LATE_MID: 0.8}


def sort_respond(parent: Node, request: Expand, position: int) -> list[tuple[str, str]]:
    if request.parent == 0:
        return [("open", "open"), (EARLY, "end")]
    return [(LATE_HIGH, "end"), (LATE_MID, "end")]


@pytest.mark.parametrize(
    ("sort_completed", "kept"),
    [(True, {LATE_HIGH, LATE_MID}), (False, {EARLY, LATE_HIGH})],
)
def test_sort_completed_keeps_the_best_or_the_first_finishers(
    sort_completed: bool, kept: set[str]
) -> None:
    search = BeamSearch(
        solver=ScriptedSolver(["x"]),
        verifier=unused_verifier(),
        n=2,
        beam_width=2,
        max_steps=3,
        sort_completed=sort_completed,
    )
    tree, _, outcome = drive_plan(search, PROBLEM, sort_respond, scores_by_text(SORT_SCORES))
    assert {tree[i].steps[-1] for i in outcome.ranked} == kept


# --- DVTS(stop_at_boxed=...) -----------------------------------------------------------------

# The server reports the matched delimiter (like vLLM), so a boxed step does not end the solution.
CHECKED = f"2 + 2 = 4, so $\\boxed{{4}}$\n\nCheck: 4 - 2 = 2\n\n{boxed(4)}"


@pytest.mark.parametrize(("stop", "steps"), [(True, 1), (False, 3)])
def test_dvts_stops_a_subtree_at_boxed_when_asked(stop: bool, steps: int) -> None:
    solver = ScriptedSolver([CHECKED])
    search = DVTS(
        solver=solver,
        verifier=ScriptedVerifier(lambda problem, step: 0.5),
        n=2,
        beam_width=2,
        max_steps=5,
        selection="naive",
        stop_at_boxed=stop,
    )
    result = search.run(PROBLEM)
    assert result.answer == "4"
    assert {len(c.steps) for c in result.completions} == {steps}
    assert all(c.finished for c in result.completions)
    assert max(len(r.prefix_steps) for r in solver.requests) == steps - 1


def test_dvts_sal_compat_stops_at_boxed_by_default() -> None:
    verifier = ScriptedVerifier(lambda problem, step: 0.5)
    assert DVTS(solver=ScriptedSolver(["x"]), verifier=verifier, sal_compat=True).stop_at_boxed
    assert not DVTS(solver=ScriptedSolver(["x"]), verifier=verifier).stop_at_boxed


# --- DVTS(sal_compat=True): every subtree's last candidates ----------------------------------

DVTS_STEPS = {
    0: [("open 0", "open"), (boxed(3, "s0 "), "end")],
    1: [(boxed(5, "s1 "), "end"), ("open 1", "open")],
}
DVTS_SCORES = {"open 0": 0.2, boxed(3, "s0 "): 0.9, boxed(5, "s1 "): 0.7, "open 1": 0.8}
DVTS_SCORES[boxed(8, "t ")] = 0.1


def dvts_respond(parent: Node, request: Expand, position: int) -> list[tuple[str, str]]:
    if request.parent == 0:
        return DVTS_STEPS[position]
    return [(boxed(8, "t "), "end"), (boxed(8, "t "), "end")]


def test_dvts_sal_compat_returns_every_subtrees_last_candidates_in_order() -> None:
    settings: dict[str, Any] = {"n": 4, "beam_width": 2, "max_steps": 3, "selection": "naive"}
    ours = DVTS(solver=ScriptedSolver(["x"]), verifier=unused_verifier(), **settings)
    tree, _, outcome = drive_plan(ours, PROBLEM, dvts_respond, scores_by_text(DVTS_SCORES))
    assert {tree[i].steps[-1] for i in outcome.ranked} == {boxed(3, "s0 "), boxed(8, "t ")}
    compat = DVTS(
        solver=ScriptedSolver(["x"]), verifier=unused_verifier(), sal_compat=True, **settings
    )
    tree, _, outcome = drive_plan(compat, PROBLEM, dvts_respond, scores_by_text(DVTS_SCORES))
    # Subtree 0 ended at its boxed step: both its candidates come back, the open one too.
    returned = [tree[i].steps[-1] for i in outcome.ranked]
    assert sorted(returned) == sorted(["open 0", boxed(3, "s0 "), boxed(8, "t "), boxed(8, "t ")])
    assert tree.answer_of(outcome.ranked[0]) == "3"


# --- BestOfN(sal_compat=True) ----------------------------------------------------------------

SAMPLES = [
    (boxed(5, "cut "), "length"),
    (boxed(4, "a "), "end"),
    (boxed(4, "b "), "end"),
    (boxed(6, "c "), "end"),
]
SAMPLE_SCORES = {boxed(5, "cut "): 0.75, boxed(4, "a "): 0.5, boxed(4, "b "): 0.25}
SAMPLE_SCORES[boxed(6, "c ")] = 0.125


def samples(parent: Node, request: Expand, position: int) -> list[tuple[str, str]]:
    return SAMPLES[: request.n]


@pytest.mark.parametrize(
    ("selection", "ours", "sal"),
    [("naive", "4", "5"), ("weighted", "4", "5"), ("majority", "4", "4")],
)
def test_best_of_n_sal_compat_lets_every_sample_compete_and_ties_go_to_the_first(
    selection: str, ours: str, sal: str
) -> None:
    def answer(**settings: Any) -> str | None:
        search = BestOfN(solver=ScriptedSolver(["x"]), verifier=unused_verifier(), n=4, **settings)
        tree, _, outcome = drive_plan(search, PROBLEM, samples, scores_by_text(SAMPLE_SCORES))
        return tree.answer_of(outcome.ranked[0])

    assert answer(selection=selection) == ours
    # The length-cut 5 scores 0.75, as much as both 4s together: the first seen wins the tie.
    assert answer(selection=selection, sal_compat=True) == sal


# --- select_like_sal -------------------------------------------------------------------------


def tree_of(texts: list[str], scores: list[float | None]) -> tuple[SearchTree, list[int]]:
    tree = SearchTree(PROBLEM)
    ids = []
    for text, score in zip(texts, scores, strict=True):
        ids.append(tree.add(0, text=text, steps=(text,), score=score).id)
    return tree, ids


def test_select_like_sal_ties_go_to_the_first_seen_answer() -> None:
    tree, ids = tree_of([boxed(2), boxed(1), boxed(1), boxed(2)], [0.1, 0.4, 0.2, 0.5])
    ranked = select_like_sal(tree, ids, "majority", lambda i: tree[i].score)
    assert tree.answer_of(ranked[0]) == "2" and ranked[:2] == [ids[3], ids[0]]
    tree, ids = tree_of([boxed(1), boxed(2)], [0.5, 0.5])
    for selection in ("naive", "weighted"):
        ranked = select_like_sal(tree, ids, selection, lambda i: tree[i].score)  # type: ignore[arg-type]
        assert ranked == ids


def test_select_like_sal_counts_every_copy_and_groups_unanswered_candidates() -> None:
    tree, ids = tree_of([boxed(1), "no answer", "still none"], [0.9, 0.4, 0.4])
    pool = [ids[0], ids[1], ids[2], ids[1]]  # padded with a copy, as search-and-learn does
    ranked = select_like_sal(tree, pool, "majority", lambda i: tree[i].score)
    assert tree.answer_of(ranked[0]) is None and len(ranked) == 4
    ranked = select_like_sal(tree, pool, "weighted", lambda i: tree[i].score)
    assert tree.answer_of(ranked[0]) is None  # 0.9 for "1" against 0.4 * 3 for no answer
