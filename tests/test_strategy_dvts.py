"""DVTS: independent greedy subtrees, batched rounds, only finished candidates returned."""

from __future__ import annotations

import pytest
from strategy_helpers import drive_plan, run_recording

from sal_plugins import DVTS, ConfigError
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.strategies.base import Expand, Score
from sal_plugins.tree import Node, SearchTree
from sal_plugins.verifiers import ScriptedVerifier

PROBLEM = "What is 2 + 2?"

# Per subtree (its position in the first batch), what the first round samples; later rounds are
# keyed by the step being continued. Status: "open" continues, "end" finishes, "length" is cut.
FIRST_ROUND = {
    0: [("A1", "open"), ("A1x", "end")],  # keeps the open A1 (scores higher), goes on
    1: [("B1 end", "end"), ("B1b", "open")],  # best finishes at once: the subtree stops
    2: [("C1 end", "end"), ("C1 also end", "end")],  # both finished: both are returned
    3: [("D1 cut", "length"), ("D1b", "open")],  # best cut by max_tokens: stops, returns nothing
}
LATER = {"A1": [("A2 end", "end"), ("A2b", "open")]}
SCORES = {
    "A1": 0.9,
    "A1x": 0.3,
    "A2 end": 0.8,
    "A2b": 0.7,
    "B1 end": 0.95,
    "B1b": 0.2,
    "C1 end": 0.6,
    "C1 also end": 0.5,
    "D1 cut": 0.99,
    "D1b": 0.1,
}


def respond(parent: Node, request: Expand, position: int) -> list[tuple[str, str]]:
    if not parent.steps:
        return FIRST_ROUND[position]
    return LATER[parent.steps[-1]]


def score(steps: tuple[str, ...]) -> float:
    return SCORES[steps[-1]]


def dvts(**kw: object) -> DVTS:
    settings: dict[str, object] = {
        "solver": ScriptedSolver(["unused"]),
        "verifier": lambda p, s: 0.5,
        "n": 8,
        "beam_width": 2,
        "max_steps": 5,
        "lookahead": 0,
        **kw,
    }
    return DVTS(**settings)  # type: ignore[arg-type]


def test_rounds_batch_every_subtree_and_score_once() -> None:
    tree, batches, _ = drive_plan(dvts(), PROBLEM, respond, score)
    assert len(batches) == 4
    first, first_scores, second, second_scores = batches
    assert [(r.parent, r.n) for r in first if isinstance(r, Expand)] == [(0, 2)] * 4
    assert len(first_scores) == 1 and isinstance(first_scores[0], Score)
    assert len(first_scores[0].nodes) == 8  # all subtrees' candidates in one verifier call
    # Only subtree 0 is still open; it grows from its best candidate.
    (only,) = second
    assert isinstance(only, Expand) and tree[only.parent].text == "A1"
    assert isinstance(second_scores[0], Score) and len(second_scores[0].nodes) == 2


def test_each_subtree_keeps_its_best_candidate_and_returns_only_finished_ones() -> None:
    tree, _, outcome = drive_plan(dvts(selection="naive"), PROBLEM, respond, score)
    texts = [tree[i].text for i in outcome.ranked]
    assert texts == ["B1 end", "A2 end", "C1 end", "C1 also end"]
    assert all(tree[i].finished for i in outcome.ranked)
    assert outcome.stop_reason == "finished"
    pruned = {n.text for n in tree.nodes if n.pruned}
    assert pruned == {"A1x", "A2b", "B1b", "D1b"}


def test_nothing_finished_falls_back_to_the_best_so_far() -> None:
    def cut(parent: Node, request: Expand, position: int) -> list[tuple[str, str]]:
        return [(f"cut {position} {i}", "length") for i in range(request.n)]

    tree, _, outcome = drive_plan(dvts(n=4), PROBLEM, cut, lambda steps: 0.5)
    assert outcome.stop_reason == "max_steps"
    assert outcome.ranked and not any(tree[i].finished for i in outcome.ranked)


def test_the_last_round_generates_to_the_end() -> None:
    def endless(parent: Node, request: Expand, position: int) -> list[tuple[str, str]]:
        status = "end" if request.to_end else "open"
        return [(f"{parent.text}>{i}", status) for i in range(request.n)]

    tree, batches, outcome = drive_plan(dvts(n=4, max_steps=3), PROBLEM, endless, lambda s: 0.5)
    expands = [b for b in batches if isinstance(b[0], Expand)]
    assert len(expands) == 3
    assert all(r.to_end for r in expands[-1]) and not any(r.to_end for r in expands[0])
    assert len(outcome.ranked) == 4 and all(tree[i].finished for i in outcome.ranked)


def test_final_selection_reuses_best_of_n_ranking() -> None:
    tree = SearchTree(PROBLEM)
    for text, value in [("$\\boxed{4}$", 0.5)] * 3 + [("$\\boxed{5}$", 0.9)]:
        node = tree.add(0, text=text, steps=(text,), finished=True)
        node.score = value
    ids = [n.id for n in tree.nodes[1:]]
    assert tree[dvts(selection="naive").rank(tree, ids)[0]].text == "$\\boxed{5}$"
    assert tree[dvts(selection="weighted").rank(tree, ids)[0]].text == "$\\boxed{4}$"
    assert tree[dvts(selection="majority").rank(tree, ids)[0]].text == "$\\boxed{4}$"


async def test_end_to_end_with_the_scripted_fakes_and_lookahead() -> None:
    solutions = [
        "Looks great\n\nBad: 2 + 2 = 5\n\nThe answer is $\\boxed{5}$.",
        "Plain start\n\n2 + 2 = 4\n\nThe answer is $\\boxed{4}$.",
    ]
    table = {"Looks great": 0.95, "Plain": 0.6, "= 5": 0.05, "{5}": 0.05, "= 4": 0.9, "{4}": 0.9}
    verifier = ScriptedVerifier(
        lambda p, s: next(v for k, v in table.items() if k in s), score_range=(0.0, 1.0)
    )
    common = {"solver": ScriptedSolver(solutions), "verifier": verifier, "n": 4, "seed": 3}
    greedy = await dvts(**common).arun(PROBLEM)
    ahead, batches, _ = await run_recording(dvts(lookahead=1, **common), PROBLEM)
    assert greedy.answer == "5"  # every subtree falls for the attractive first step
    assert ahead.answer == "4"  # looking one step ahead avoids it
    assert all(c.finished for c in ahead.completions)
    assert all(n.kind != "lookahead" for n in (ahead.tree[c.node_id] for c in ahead.completions))
    assert any(isinstance(r, Expand) and r.kind == "lookahead" for b in batches for r in b)


def test_configuration_is_checked() -> None:
    with pytest.raises(ConfigError, match="multiple of beam_width"):
        dvts(n=6, beam_width=4)
    with pytest.raises(ConfigError, match="needs a verifier"):
        dvts(verifier=None)
    with pytest.raises(ConfigError, match="selection"):
        dvts(selection="best")
    assert dvts(n=16, beam_width=4).subtrees == 4
    # search-and-learn's config defaults lookahead to 0, and its DVTS recipes keep it.
    assert DVTS(solver=ScriptedSolver(["x"]), verifier=lambda p, s: 0.5).lookahead == 0
