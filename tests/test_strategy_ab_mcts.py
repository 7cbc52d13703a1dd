"""AB-MCTS over treequest: one batch per ask, scores told back, seeded, capped, fault-tolerant."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from strategy_helpers import drive_plan, run_recording

from sal_plugins import ABMCTS, ConfigError
from sal_plugins import cli as sal_cli
from sal_plugins.errors import MissingDependencyError
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.solvers.scripted import fail_calls
from sal_plugins.strategies import build_strategy
from sal_plugins.strategies._treequest import Ask, TreeQuestSearch
from sal_plugins.strategies.base import Expand, Score
from sal_plugins.tree import Node
from sal_plugins.verifiers import FunctionVerifier, ScriptedVerifier

PROBLEM = "What is (2 + 3) * 2?"
RIGHT = "2 + 3 = 5\n\n5 * 2 = 10\n\nThe answer is $\\boxed{10}$."
WRONG = "2 + 3 = 6\n\n6 * 2 = 12\n\nThe answer is $\\boxed{12}$."
RIGHT_LONG = (
    "2 + 3 = 5\n\nSo the sum is 5.\n\n5 * 2 = 10\n\nSo ten.\n\nThe answer is $\\boxed{10}$."
)
WRONG_LONG = (
    "2 + 3 = 6\n\nSo the sum is 6.\n\n6 * 2 = 12\n\nSo twelve.\n\nThe answer is $\\boxed{12}$."
)
SOLUTIONS = [RIGHT, WRONG, RIGHT_LONG, WRONG_LONG]


def step_score(problem: str, step: str) -> float:
    return 0.1 if any(mark in step for mark in ("= 6", "is 6", "= 12", "twelve", "{12}")) else 0.9


def verifier() -> ScriptedVerifier:
    return ScriptedVerifier(step_score, score_range=(0.0, 1.0))


def ab_mcts(**overrides: Any) -> ABMCTS:
    settings: dict[str, Any] = {
        "solver": ScriptedSolver(SOLUTIONS),
        "verifier": verifier(),
        "n": 24,
        "batch_size": 3,
        "max_steps": 8,
        "seed": 3,
        **overrides,
    }
    return ABMCTS(**settings)


def ended(node: Node) -> bool:
    return node.finished or node.truncated


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[list[Ask]]:
    """Every batch of asks treequest answered, in order."""
    batches: list[list[Ask]] = []
    original = TreeQuestSearch.ask

    def recording(self: TreeQuestSearch, count: int) -> list[Ask]:
        asks = original(self, count)
        batches.append(asks)
        return asks

    monkeypatch.setattr(TreeQuestSearch, "ask", recording)
    return batches


@pytest.fixture
def told(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    """Every (node id, reward) told to treequest, in order."""
    rewards: list[tuple[int, float]] = []
    original = TreeQuestSearch.tell

    def recording(self: TreeQuestSearch, ask: Ask, node_id: int, reward: float) -> None:
        rewards.append((node_id, reward))
        original(self, ask, node_id, reward)

    monkeypatch.setattr(TreeQuestSearch, "tell", recording)
    return rewards


# --- one batch per ask ----------------------------------------------------------------------


async def test_each_ask_batch_is_one_generation_batch_and_one_verifier_call(
    asked: list[list[Ask]],
) -> None:
    strategy = ab_mcts()
    scorer = strategy.verifier
    assert isinstance(scorer, ScriptedVerifier)
    result, batches, _ = await run_recording(strategy, PROBLEM)
    tree = result.tree
    assert [len(asks) for asks in asked] == [3] * 8  # n = 24 expansions, batch_size at a time
    # A batch of picks that are all ended solutions needs no work; every other one is one
    # generation batch, then one verifier call.
    needing_work = [[a for a in asks if not (a.parent and ended(tree[a.parent]))] for asks in asked]
    needing_work = [asks for asks in needing_work if asks]
    assert [type(b[0]) for b in batches] == [Expand, Score] * len(needing_work)
    generation = batches[0::2]
    scoring = batches[1::2]
    assert all(len(b) == 1 for b in scoring)
    assert result.usage.verifier_calls == scorer.calls == len(scoring)
    for asks, expands, (score,) in zip(needing_work, generation, scoring, strict=True):
        assert all(isinstance(r, Expand) for r in expands)
        # one request per asked node and action, for as many continuations as it was asked
        assert sum(r.n for r in expands if isinstance(r, Expand)) == len(asks)
        keys = [(r.parent, r.to_end) for r in expands if isinstance(r, Expand)]
        assert len(set(keys)) == len(keys)
        assert {parent for parent, _ in keys} == {a.parent for a in asks}
        # the verifier call scores exactly the nodes that round generated
        assert isinstance(score, Score)
        assert set(score.nodes) == {n.id for n in tree.nodes[1:] if n.round == score.round}


async def test_every_new_scored_node_is_told_with_its_score(told: list[tuple[int, float]]) -> None:
    result = await ab_mcts().arun(PROBLEM)
    scored = [n.id for n in result.tree.nodes[1:] if n.score is not None]
    first_tells = list(dict.fromkeys(node_id for node_id, _ in told))
    assert first_tells == scored  # every scored node, in creation order, and nothing else
    for node_id, reward in told:
        assert reward == result.tree[node_id].score  # a (0, 1) verifier: the score itself
    # Later tells of a node are picks of an ended solution, told its score once more.
    repeats = [node_id for node_id, _ in told[len(scored) :]]
    assert all(ended(result.tree[i]) for i in repeats)


# --- scores steer the search ------------------------------------------------------------------


def branch_expansions(seed: int, good: float, bad: float) -> tuple[int, int]:
    """Grow a tree whose root children alternate between branch G and branch B.

    Every step below a root child stays in its branch and scores what the branch scores.
    Returns how many continuations each branch was grown by (below its root children).
    """
    counter = itertools.count()

    def respond(parent: Node, request: Expand, position: int) -> list[tuple[str, str]]:
        if not parent.steps:
            return [("G" if next(counter) % 2 == 0 else "B", "open") for _ in range(request.n)]
        return [(f"{parent.steps[0]}{len(parent.steps)}", "open")] * request.n

    def score(steps: tuple[str, ...]) -> float:
        return good if steps[0] == "G" else bad

    strategy = ab_mcts(n=60, batch_size=2, max_steps=50, seed=seed, finish_action=False)
    tree, batches, _ = drive_plan(strategy, PROBLEM, respond, score)
    grown = {"G": 0, "B": 0}
    for batch in batches:
        for request in batch:
            if isinstance(request, Expand) and request.parent:
                grown[tree[request.parent].steps[0]] += request.n
    return grown["G"], grown["B"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_high_scoring_branch_is_grown_more_than_a_low_scoring_one(seed: int) -> None:
    good, bad = branch_expansions(seed, good=0.8, bad=0.3)
    assert good > 3 * bad
    # Same seed, same tree shape, only the scores differ: had they not reached treequest, it
    # would make the same picks. Scored low, branch G is hardly grown at all.
    low_good, _ = branch_expansions(seed, good=0.3, bad=0.8)
    assert good > 3 * low_good


# --- randomness -------------------------------------------------------------------------------


def test_seeded_runs_repeat_whatever_numpy_global_state_and_leave_it_alone() -> None:
    np.random.seed(1)
    before = np.random.get_state()
    first = ab_mcts(seed=5).run(PROBLEM)
    after = np.random.get_state()
    assert isinstance(before, tuple) and isinstance(after, tuple)
    assert before[0] == after[0] and np.array_equal(before[1], after[1])
    assert before[2:] == after[2:]
    np.random.seed(2)
    second = ab_mcts(seed=5).run(PROBLEM)
    assert first.tree.to_json() == second.tree.to_json()
    assert first.answer == second.answer
    others = {ab_mcts(seed=s).run(PROBLEM).tree.to_json() for s in range(4)}
    assert len(others) > 1, "the seed must change treequest's choices"


def test_negative_and_huge_seeds_work() -> None:
    for seed in (-1, 2**40):
        result = ab_mcts(seed=seed).run(PROBLEM)
        assert result.tree.to_json() == ab_mcts(seed=seed).run(PROBLEM).tree.to_json()


# --- budgets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n, batch_size", [(10, 4), (7, 7), (5, 1)])
async def test_n_caps_the_generations(asked: list[list[Ask]], n: int, batch_size: int) -> None:
    solver = ScriptedSolver(SOLUTIONS, honours_n=False)  # one call per generation
    strategy = ab_mcts(solver=solver, n=n, batch_size=batch_size)
    result = await strategy.arun(PROBLEM)
    assert sum(len(asks) for asks in asked) == n
    assert all(len(asks) <= batch_size for asks in asked)
    assert solver.calls == result.usage.generation_calls <= n
    # Each of the n picks is either a generation or a pick of an ended solution (saved).
    assert result.usage.generation_calls + result.usage.calls_saved == n


def test_a_settled_search_stops_spending() -> None:
    """Only one solution, scored high: once found, treequest keeps picking it, for free."""
    solver = ScriptedSolver([RIGHT], honours_n=False)
    result = ab_mcts(solver=solver, n=40, batch_size=2).run(PROBLEM)
    assert result.answer == "10"
    assert result.usage.calls_saved > 0
    assert result.usage.generation_calls + result.usage.calls_saved == 40


# --- the tree ---------------------------------------------------------------------------------


@pytest.mark.parametrize("finish_action", [True, False])
def test_ended_nodes_are_never_grown_and_max_steps_holds(finish_action: bool) -> None:
    result = ab_mcts(n=40, max_steps=3, finish_action=finish_action, seed=1).run(PROBLEM)
    tree = result.tree
    for node in tree.nodes[1:]:
        parent = tree[node.parent or 0]
        assert not ended(parent), f"node {node.id} grows an ended solution"
        assert len(tree.path(node.id)) <= 3
        if len(parent.steps) + 1 >= 3:
            assert node.kind == "solution"
        if node.kind == "step":
            assert len(node.steps) == len(parent.steps) + 1
    kinds = {n.kind for n in tree.nodes[1:]}
    assert "step" in kinds
    # The last round grows every pick to the end; before it, without the finish action, only the
    # step limit does.
    last_round = max(n.round for n in tree.nodes[1:])
    assert all(n.kind == "solution" for n in tree.nodes[1:] if n.round == last_round)
    shallow_solutions = [
        n
        for n in tree.nodes[1:]
        if n.kind == "solution" and len(tree[n.parent or 0].steps) < 2 and n.round < last_round
    ]
    assert bool(shallow_solutions) == finish_action
    assert all(tree[c.node_id].finished for c in result.completions)
    assert {c.node_id for c in result.completions} == {
        n.id for n in tree.nodes[1:] if n.finished and n.steps
    }


def test_a_cut_node_is_not_grown_nor_returned() -> None:
    """A step cut at max_tokens scores high, but it cannot be continued or returned."""

    def respond(parent: Node, request: Expand, position: int) -> list[tuple[str, str]]:
        if not parent.steps:
            return [("cut", "length"), ("open", "open")][: request.n] + [("open", "open")] * max(
                0, request.n - 2
            )
        return [("The answer is $\\boxed{4}$.", "end")] * request.n

    def score(steps: tuple[str, ...]) -> float:
        return 0.99 if steps[-1] == "cut" else 0.6

    strategy = ab_mcts(n=30, batch_size=2, finish_action=False)
    tree, batches, outcome = drive_plan(strategy, PROBLEM, respond, score)
    cut = [n.id for n in tree.nodes if n.truncated]
    assert cut
    parents = {r.parent for batch in batches for r in batch if isinstance(r, Expand)}
    assert not parents & set(cut)
    assert outcome.ranked and not set(outcome.ranked) & set(cut)
    assert outcome.samples_saved > 0  # picks of the cut node generated nothing


def test_abmcts_trees_render(tmp_path: Any) -> None:
    result = ab_mcts(n=30, batch_size=4, seed=2).run(PROBLEM)
    tree = result.tree
    assert len(tree.children(0)) > 2  # wide at the root, irregular below
    page = tree.to_html(title="ab_mcts")
    for node in tree.nodes[1:]:
        assert f'id="node-{node.id}"' in page
        assert f'data-node="{node.id}"' in page
    assert page.count("<circle") == len(tree)
    mermaid = tree.to_mermaid()
    assert all(f"n{n.parent} --> n{n.id}" in mermaid for n in tree.nodes[1:])
    assert json.loads(tree.to_json())["nodes"][0]["kind"] == "root"


# --- faults -----------------------------------------------------------------------------------


async def test_an_unscored_node_is_pruned_and_never_grown(told: list[tuple[int, float]]) -> None:
    scorer = ScriptedVerifier(
        step_score, score_range=(0.0, 1.0), fail_when=lambda steps: steps[-1] == "2 + 3 = 6"
    )
    result = await ab_mcts(verifier=scorer, n=30).arun(PROBLEM)
    tree = result.tree
    unscored = [n for n in tree.nodes[1:] if n.steps == ("2 + 3 = 6",)]
    assert unscored and all(n.score is None and n.pruned for n in unscored)
    assert not {n.parent for n in tree.nodes[1:]} & {n.id for n in unscored}
    assert not {node_id for node_id, _ in told} & {n.id for n in unscored}
    assert result.failures and all(f.stage == "score" for f in result.failures)
    assert result.answer == "10"


async def test_a_failed_generation_leaves_its_asks_untold_and_the_search_goes_on(
    told: list[tuple[int, float]],
) -> None:
    solver = ScriptedSolver(SOLUTIONS, fail=fail_calls(1))
    result = await ab_mcts(solver=solver).arun(PROBLEM)
    assert [f.stage for f in result.failures] == ["generate"]
    failed = [n for n in result.tree.nodes if n.kind == "failed"]
    assert len(failed) == 1 and failed[0].parent == 0
    assert failed[0].id not in {node_id for node_id, _ in told}
    assert result.usage.generation_calls > 1
    assert result.answer == "10"


# --- rewards ------------------------------------------------------------------------------------


def test_scores_are_rescaled_by_the_declared_range(told: list[tuple[int, float]]) -> None:
    scorer = FunctionVerifier(lambda problem, steps: 5.0, score_range=(0.0, 10.0))
    result = ab_mcts(verifier=scorer, n=6).run(PROBLEM)
    assert told and {reward for _, reward in told} == {0.5}
    assert all(n.score == 5.0 for n in result.tree.nodes[1:])  # the tree keeps the raw score
    assert not result.tree.notes


@pytest.mark.parametrize("raw, reward", [(3.0, 1.0), (-2.0, 0.0)])
def test_unbounded_scores_are_clamped_with_a_note(
    told: list[tuple[int, float]], raw: float, reward: float
) -> None:
    result = ab_mcts(verifier=FunctionVerifier(lambda problem, steps: raw), n=6).run(PROBLEM)
    assert {value for _, value in told} == {reward}
    assert any("clamped" in note for note in result.tree.notes)


def test_unbounded_scores_within_the_unit_interval_are_told_as_they_are(
    told: list[tuple[int, float]],
) -> None:
    result = ab_mcts(verifier=lambda problem, steps: 0.25, n=6).run(PROBLEM)
    assert {value for _, value in told} == {0.25}
    assert not result.tree.notes


# --- the optional dependency ------------------------------------------------------------------


def test_without_treequest_construction_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "treequest", None)  # import treequest now fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'sal-plugins\[mcts\]'"):
        ab_mcts()
    with pytest.raises(MissingDependencyError, match="ABMCTS"):
        build_strategy("ab-mcts", solver=ScriptedSolver(SOLUTIONS), verifier=verifier())


async def test_without_treequest_a_configured_search_raises_when_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    strategy = ab_mcts()
    monkeypatch.setitem(sys.modules, "treequest", None)
    with pytest.raises(MissingDependencyError, match=r"sal-plugins\[mcts\]"):
        await strategy.arun(PROBLEM)


def test_import_sal_plugins_needs_no_treequest() -> None:
    code = (
        "import sys\n"
        "sys.modules['treequest'] = None\n"
        "import sal_plugins as sal\n"
        "from sal_plugins.solvers import ScriptedSolver\n"
        "assert 'scipy' not in sys.modules and 'numpy' not in sys.modules\n"
        "try:\n"
        "    sal.ABMCTS(solver=ScriptedSolver(['x']), verifier=lambda p, s: 0.5)\n"
        "except sal.SalError as error:\n"
        "    print(type(error).__name__, error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.startswith("MissingDependencyError ")
    assert "pip install 'sal-plugins[mcts]'" in done.stdout


# --- configuration and surfaces ---------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"verifier": None}, "needs a verifier"),
        ({"n": 4, "batch_size": 5}, "batch_size cannot exceed n"),
        ({"prior_reward": 0.0}, "prior_reward"),
        ({"distribution": "normal"}, "distribution"),
        ({"finish_action": "yes"}, "finish_action"),
    ],
)
def test_bad_settings_raise_config_errors(overrides: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        ab_mcts(**overrides)


@pytest.mark.parametrize("distribution", ["gaussian", "beta"])
def test_both_distributions_and_a_prior_run(distribution: str) -> None:
    result = ab_mcts(distribution=distribution, prior_reward=0.5).run(PROBLEM)
    assert result.answer == "10"


def make_solver() -> ScriptedSolver:
    return ScriptedSolver(SOLUTIONS)


def make_verifier() -> ScriptedVerifier:
    return verifier()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = sal_cli.main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if code == 0 else out


def test_sal_run_strategy_ab_mcts(capsys: pytest.CaptureFixture[str]) -> None:
    fakes = [
        f"--solver-factory={__name__}:make_solver",
        f"--verifier-factory={__name__}:make_verifier",
    ]
    args = ["run", PROBLEM, "--strategy", "ab-mcts", "--n", "9", "--max-steps", "4", "--json"]
    code, data = run_cli(capsys, *args, "--set", "batch_size=3", *fakes)
    assert code == 0
    assert data["strategy"] == "ab_mcts"
    assert data["answer"] == "10"
    assert data["usage"]["generation_calls"] + data["usage"]["calls_saved"] <= 9


def test_sal_run_ab_mcts_on_the_embedded_model(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sal_plugins.embedded as embedded

    solvers: list[ScriptedSolver] = []

    def scripted() -> ScriptedSolver:
        solvers.append(ScriptedSolver([s.replace("\n\n", "\n") for s in SOLUTIONS]))
        return solvers[-1]

    monkeypatch.setattr(embedded, "embedded_solver", scripted)
    code, data = run_cli(capsys, "run", PROBLEM, "--strategy", "ab_mcts", "--json")
    assert code == 0, data
    assert data["strategy"] == "ab_mcts"
    assert solvers[-1].requests[0].max_tokens == embedded.EMBEDDED_SEARCH["shared"]["max_tokens"]


def test_build_strategy_by_name() -> None:
    built = build_strategy(
        "AB-MCTS", solver=ScriptedSolver(SOLUTIONS), verifier=verifier(), n=8, batch_size=2
    )
    assert isinstance(built, ABMCTS) and (built.n, built.batch_size) == (8, 2)
    with pytest.raises(ConfigError, match="beam_width"):
        build_strategy(
            "ab_mcts", solver=ScriptedSolver(SOLUTIONS), verifier=verifier(), beam_width=2
        )


def test_runs_when_python_ulid_shadows_ulid_py(monkeypatch: pytest.MonkeyPatch) -> None:
    """``llm`` (the embedded model's wheel) brings python-ulid, whose ``ulid`` has no ``new()``."""
    import types
    import uuid

    import treequest.trial

    python_ulid = types.SimpleNamespace(ULID=lambda: uuid.uuid4().hex)  # no ``new``
    monkeypatch.setattr(treequest.trial, "ulid", python_ulid)
    result = ab_mcts(n=4, batch_size=2).run(PROBLEM)
    assert result.answer == "10"
    assert hasattr(treequest.trial.ulid, "new")
