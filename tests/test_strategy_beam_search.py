"""Beam search: rounds, pruning, de-duplication and search-and-learn's look-ahead."""

from __future__ import annotations

from strategy_helpers import run_recording

from sal_plugins import BeamSearch
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.solvers.scripted import fail_calls
from sal_plugins.strategies.base import Expand, Score
from sal_plugins.verifiers import ScriptedVerifier

PROBLEM = "What is 2 + 2?"
TRAP = "Looks great\n\nBad: 2 + 2 = 5\n\nThe answer is $\\boxed{5}$."
GOOD = "Plain start\n\n2 + 2 = 4\n\nThe answer is $\\boxed{4}$."
TABLE = {"Looks great": 0.95, "Plain start": 0.6, "= 5": 0.05, "{5}": 0.05, "= 4": 0.9, "{4}": 0.9}


def prm(granularity: str = "step") -> ScriptedVerifier:
    def score(problem: str, step: str) -> float:
        return next(v for k, v in TABLE.items() if k in step)

    return ScriptedVerifier(score, granularity=granularity, score_range=(0.0, 1.0))  # type: ignore[arg-type]


def search(lookahead: int = 0, **kw: object) -> BeamSearch:
    settings: dict[str, object] = {
        "solver": ScriptedSolver([TRAP, GOOD]),
        "verifier": prm(),
        "n": 2,
        "beam_width": 2,
        "max_steps": 5,
        "seed": 0,
        "lookahead": lookahead,
        **kw,
    }
    return BeamSearch(**settings)  # type: ignore[arg-type]


async def test_greedy_scoring_falls_for_the_trap_and_lookahead_avoids_it() -> None:
    plain = await search().arun(PROBLEM)
    ahead = await search(lookahead=1).arun(PROBLEM)
    assert plain.answer == "5"
    assert ahead.answer == "4"


async def test_lookahead_rolls_out_greedily_and_keeps_only_the_first_step() -> None:
    result, batches, _ = await run_recording(search(lookahead=1), PROBLEM)
    rollouts = [
        r for batch in batches for r in batch if isinstance(r, Expand) and r.kind == "lookahead"
    ]
    assert rollouts
    assert all(r.temperature == 0.0 and r.n == 1 and not r.to_end for r in rollouts)
    tree = result.tree
    lookahead_nodes = [n for n in tree.nodes if n.kind == "lookahead"]
    assert lookahead_nodes and all(n.pruned for n in lookahead_nodes)
    assert all(not tree.children(n.id) for n in lookahead_nodes)  # never expanded further
    assert not {c.node_id for c in result.completions} & {n.id for n in lookahead_nodes}
    # Each candidate is ranked by its roll-out's score but keeps its own steps' scores.
    first_round = [n for n in tree.children(0)]
    for candidate in first_round:
        (rollout,) = [c for c in tree.children(candidate.id) if c.kind == "lookahead"]
        assert candidate.score == rollout.score
        assert candidate.step_scores is not None
        assert len(candidate.step_scores) == len(candidate.steps)
        assert rollout.step_scores is not None
        assert candidate.step_scores == rollout.step_scores[: len(candidate.steps)]
    trap = next(n for n in first_round if n.steps == ("Looks great",))
    assert trap.score == 0.05 and trap.pruned


async def test_lookahead_batches_every_candidate_together_and_scores_once() -> None:
    _, batches, _ = await run_recording(search(lookahead=2), PROBLEM)
    for batch in batches:
        kinds = {type(r) for r in batch}
        assert len(kinds) == 1  # a batch is all generation or all scoring
        if Score in kinds:
            assert len(batch) == 1
    first_rollouts = batches[1]
    assert all(isinstance(r, Expand) and r.kind == "lookahead" for r in first_rollouts)
    assert len(first_rollouts) == 2  # both first-round candidates, in one batch


async def test_lookahead_stops_at_the_end_of_the_solution_and_skips_the_last_round() -> None:
    result, batches, _ = await run_recording(search(lookahead=10, max_steps=3), PROBLEM)
    rollout_batches = [b for b in batches if any(getattr(r, "kind", "") == "lookahead" for r in b)]
    # Round 0: candidates are one step in, two steps from the end: two roll-out rounds, not ten.
    # Round 1: one step from the end: one roll-out round. Round 2 (the last) needs none.
    assert [len({r.round for r in b}) for b in rollout_batches] == [1, 1, 1]
    assert [b[0].round for b in rollout_batches] == [0, 0, 1]
    last = [r for b in batches for r in b if isinstance(r, Expand) and r.round == 2]
    assert last and all(r.to_end and r.kind == "step" for r in last)
    assert result.answer == "4"


async def test_lookahead_with_an_outcome_verifier() -> None:
    result = await search(lookahead=1, verifier=prm("outcome")).arun(PROBLEM)
    assert result.answer == "4"
    first = result.tree.children(0)
    assert all(n.step_scores is not None and len(n.step_scores) == 1 for n in first)


async def test_a_failed_rollout_scores_the_candidate_as_far_as_it_got() -> None:
    # Call 1 samples the first round; call 2 is the first candidate's roll-out.
    solver = ScriptedSolver([TRAP, GOOD], fail=fail_calls(2))
    result = await search(lookahead=1, solver=solver).arun(PROBLEM)
    assert [f.stage for f in result.failures] == ["generate"]
    first = result.tree.children(0)
    assert all(n.score is not None for n in first)
    assert result.completions and all(c.finished for c in result.completions)


async def test_every_round_samples_n_steps_from_the_surviving_beams() -> None:
    solver = ScriptedSolver([TRAP, GOOD, GOOD.replace("Plain", "Calm")])
    beam = search(solver=solver, n=4, beam_width=2, max_steps=4)
    result, batches, _ = await run_recording(beam, PROBLEM)
    expansions = [b for b in batches if isinstance(b[0], Expand)]
    assert [r.n for r in expansions[0]] == [4]  # the first round: one request for n
    for batch in expansions[1:]:
        assert len(batch) <= beam.survivors
        assert sum(r.n for r in batch) == 4
    assert expansions[-1][0].to_end or result.stop_reason == "finished"
    # Pruned candidates are never expanded.
    tree = result.tree
    assert all(not tree.children(n.id) for n in tree.nodes if n.pruned and n.kind == "step")


async def test_dedup_drops_repeated_trajectories_before_pruning() -> None:
    # Both scripts share their first step, so the first round samples it four times.
    scripts = [GOOD, GOOD.replace("\n\n2 + 2", "\n\nSo 2 + 2")]
    expanded = {}
    for dedup in (False, True):
        beam = search(solver=ScriptedSolver(scripts), n=4, beam_width=2, dedup=dedup)
        result = await beam.arun(PROBLEM)
        tree = result.tree
        first = tree.children(0)
        assert len(first) == 4 and len({n.steps for n in first}) == 1
        expanded[dedup] = [n for n in first if tree.children(n.id)]
        assert all(n.pruned for n in first if n not in expanded[dedup])
        assert result.answer == "4"
    assert len(expanded[False]) == 2  # two copies of the same beam survive
    assert len(expanded[True]) == 1  # one beam: the copies were dropped
