"""The search tree and its exports (JSON, Mermaid, HTML)."""

from __future__ import annotations

import dataclasses
import html
import json

import sal_plugins as sal
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.tree import Node, SearchTree
from sal_plugins.verifiers import ScriptedVerifier

PROBLEM = 'Is "x < y" true for x = 1, y = 2?'


def small_tree() -> SearchTree:
    tree = SearchTree(PROBLEM)
    a = tree.add(0, text='Compare "1" and "2"', steps=('Compare "1" and "2"',), round=0)
    b = tree.add(0, text="Guess <script>alert(1)</script>", steps=("Guess",), round=0)
    b.pruned = True
    c = tree.add(a.id, text="1 < 2, so yes: $\\boxed{yes}$", steps=(*a.steps, "1 < 2"), round=1)
    c.finished, c.score, c.step_scores, c.stop_kind = True, 0.9, (0.8, 0.9), "end"
    tree.add(a.id, round=1, kind="failed", error="SolverError: boom")
    tree.mark_selected(c.id)
    return tree


def test_structure() -> None:
    tree = small_tree()
    assert tree.root.kind == "root" and tree.root.parent is None
    assert [n.id for n in tree.children(0)] == [1, 2]
    assert [n.id for n in tree.path(3)] == [1, 3]
    assert [n.id for n in tree.leaves()] == [2, 3, 4]
    assert [n.id for n in tree if n.selected] == [1, 3]
    assert len(tree) == 5
    assert tree[4].failed and not tree[3].failed
    assert not tree[3].truncated


def test_json_round_trips() -> None:
    tree = small_tree()
    tree[3].token_logprobs = (-0.1, -0.2)
    data = json.loads(tree.to_json(indent=2))
    assert data["problem"] == PROBLEM
    assert all("token_logprobs" not in row for row in data["nodes"])
    rebuilt = [
        Node(
            **{
                **row,
                "steps": tuple(row["steps"]),
                "step_scores": None if row["step_scores"] is None else tuple(row["step_scores"]),
            }
        )
        for row in data["nodes"]
    ]
    assert rebuilt == [dataclasses.replace(n, token_logprobs=None) for n in tree.nodes]
    assert SearchTree(data["problem"], rebuilt).to_json() == tree.to_json()


def test_mermaid_escapes_quotes_and_brackets_and_marks_the_selected_path() -> None:
    text = small_tree().to_mermaid(max_label=20)
    assert text.startswith("flowchart TD\n")
    labels = [line for line in text.splitlines() if '["' in line]
    for line in labels:
        inner = line.split('["', 1)[1].rsplit('"]', 1)[0]
        assert '"' not in inner and "<" not in inner and ">" not in inner
    assert "#quot;1#quot;" in text
    assert "#lt;script#gt;" in text
    assert "…" in text  # long labels are cut
    assert "(0.90) ✓" in text
    assert "    n1 --> n3" in text
    assert "class n1,n3 selected" in text
    assert "class n2 pruned" in text
    assert "class n4 failed" in text


def test_html_is_self_contained_and_shows_the_selected_path() -> None:
    tree = small_tree()
    page = tree.to_html(title="My search")
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "My search" in page
    assert html.escape(PROBLEM) in page or html.escape(PROBLEM, quote=False) in page
    assert "<script>alert(1)</script>" not in page  # node text is escaped
    for node in tree.nodes[1:]:
        if node.selected:
            assert html.escape(node.text, quote=False) in page or html.escape(node.text) in page
    for attribute in ('src="http', "src='http", 'href="http', "href='http", "url(http"):
        assert attribute not in page  # nothing is loaded from the network


async def test_exports_of_a_real_search() -> None:
    solver = ScriptedSolver(["1 < 2\n\nSo $\\boxed{yes}$.", "2 < 1\n\nSo $\\boxed{no}$."])
    verifier = ScriptedVerifier(lambda p, s: 0.2 if "2 < 1" in s or "no" in s else 0.9)
    result = await sal.BeamSearch(solver=solver, verifier=verifier, n=4, beam_width=2, seed=0).arun(
        PROBLEM
    )
    tree = result.tree
    best = result.completions[0]
    assert [n.id for n in tree.nodes if n.selected] == [n.id for n in tree.path(best.node_id)]
    assert json.loads(tree.to_json())["nodes"][best.node_id]["selected"] is True
    assert tree.to_mermaid().count("selected") >= 2
    page = tree.to_html()
    assert len(page) > 500 and html.escape("So $\\boxed{yes}$.", quote=False) in page
    summary = result.summary()
    assert summary["answer"] == "yes" and summary["nodes"] == len(tree) - 1
    assert json.loads(json.dumps(result.to_dict()))["tree"]["problem"] == PROBLEM


def test_step_chain_splits_a_whole_solution_into_scored_step_nodes() -> None:
    tree = SearchTree(PROBLEM)
    whole = tree.add(
        0, text="a\n\nb\n\nc", steps=("a", "b", "c"), kind="solution", step_scores=(0.1, 0.2, 0.3)
    )
    whole.finished, whole.score, whole.token_logprobs = True, 0.3, (-0.1, -0.2)
    chain = tree.step_chain(whole.id)
    assert chain[-1] == whole.id and len(chain) == 3
    first, second = tree[chain[0]], tree[chain[1]]
    assert (first.parent, first.steps, first.text, first.step_scores) == (0, ("a",), "a", (0.1,))
    assert (second.parent, second.steps, second.step_scores) == (first.id, ("a", "b"), (0.1, 0.2))
    assert not first.finished and first.score is None  # the strategy aggregates prefix scores
    assert whole.parent == second.id and whole.text == "c" and whole.finished
    assert whole.token_logprobs is None  # they were of the whole text
    assert tree.text_of(whole.id) == "a\n\nb\n\nc"
    assert [n.id for n in tree.path(whole.id)] == chain
    assert tree.step_chain(first.id) == [first.id]  # one step: its own chain


def test_step_chain_leaves_outcome_scores_off_the_prefixes() -> None:
    tree = SearchTree(PROBLEM)
    whole = tree.add(0, steps=("a", "b"), step_scores=(0.7,), kind="solution")
    first = tree[tree.step_chain(whole.id)[0]]
    assert first.step_scores is None and whole.step_scores == (0.7,)
