"""Step-wise searches building on scored whole solutions (Adaptive's probe); the choice event."""

from __future__ import annotations

import dataclasses
import json

import pytest
from strategy_helpers import run_recording
from test_strategy_beam_search import GOOD, PROBLEM, TRAP, prm

from sal_plugins import Adaptive, AdaptivePolicy, BeamSearch
from sal_plugins.events import CandidatesGenerated, ChoiceMade
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.strategies.adaptive import PolicyArm
from sal_plugins.strategies.base import Expand, Score
from sal_plugins.tree import SearchTree
from sal_plugins.verifiers import ScriptedVerifier


def probe_then_beam(
    solver: ScriptedSolver, verifier: ScriptedVerifier, arm: str = "beam_search"
) -> Adaptive:
    """A probe of 2, then always ``arm`` at n=4 (beam_width=2 where it has one)."""
    settings: dict[str, bool | int | float | str] = (
        {} if arm == "particle_filter" else {"beam_width": 2}
    )
    policy = AdaptivePolicy(probe=2, otherwise=PolicyArm(strategy=arm, n=4, settings=settings))
    return Adaptive(solver=solver, verifier=verifier, policy=policy, max_steps=5, seed=0)


def beam_batches(batches: list[list[Expand | Score]]) -> list[list[Expand | Score]]:
    """The batches after the probe's generation and scoring."""
    return batches[2:]


async def test_probe_steps_ride_along_and_are_neither_generated_nor_scored_again() -> None:
    solver, verifier = ScriptedSolver([TRAP, GOOD]), prm()
    result, batches, _ = await run_recording(probe_then_beam(solver, verifier), PROBLEM)
    probe_nodes = {n.id for n in result.tree.nodes[1:] if n.round == 0}
    assert len([n for n in result.tree.nodes if n.kind == "solution"]) == 2

    beam = beam_batches(batches)
    first = [r for r in beam[0] if isinstance(r, Expand)]
    # Round 0 of the beam needs 4 first steps; the probe's 2 are free, so 2 are generated.
    assert [(r.parent, r.n) for r in first] == [(0, 2)]
    for batch in beam:
        for request in batch:
            if isinstance(request, Score):
                assert not probe_nodes & set(request.nodes)  # scored once, by the probe

    plain_solver = ScriptedSolver([TRAP, GOOD])
    plain = await BeamSearch(
        solver=plain_solver, verifier=prm(), n=4, beam_width=2, max_steps=5, seed=0
    ).arun(PROBLEM)
    probe_samples = 2
    beam_samples = sum(r.n for r in solver.requests) - probe_samples
    assert beam_samples < sum(r.n for r in plain_solver.requests)
    assert result.usage.calls_saved > 0
    assert plain.answer == "5"  # plain beam search at this width falls for the trap ...
    assert result.answer == "4"  # ... the probe's right sample is still a candidate


@pytest.mark.parametrize("arm", ["beam_search", "dvts", "particle_filter"])
async def test_every_step_wise_arm_takes_the_probe_first_steps_for_free(arm: str) -> None:
    solver, verifier = ScriptedSolver([TRAP, GOOD]), prm()
    result, batches, _ = await run_recording(probe_then_beam(solver, verifier, arm), PROBLEM)
    probe_nodes = {n.id for n in result.tree.nodes[1:] if n.round == 0}
    beam = beam_batches(batches)
    from_root = [r for r in beam[0] if isinstance(r, Expand) and r.parent == 0]
    assert sum(r.n for r in from_root) == 4 - 2  # n first steps, 2 of them the probe's
    scored = {i for b in beam for r in b if isinstance(r, Score) for i in r.nodes}
    assert scored and not probe_nodes & scored
    assert result.usage.calls_saved > 0 and result.answer == "4"
    assert f"{arm} n=4" in result.tree.choices[0].choice


async def test_a_surviving_probe_prefix_continues_with_its_own_next_step() -> None:
    solver, verifier = ScriptedSolver([TRAP, GOOD]), prm()
    result, batches, _ = await run_recording(probe_then_beam(solver, verifier), PROBLEM)
    tree = result.tree
    probe_first = [n for n in tree.children(0) if n.round == 0]
    assert sorted(n.text for n in probe_first) == ["Looks great", "Plain start"]
    # Each probe prefix that survived round 0 asked the solver for one continuation fewer.
    second = [r for r in beam_batches(batches)[2] if isinstance(r, Expand)]
    survivors_from_probe = {n.id for n in probe_first if not n.pruned}
    assert survivors_from_probe
    for request in second:
        assert request.n == (1 if request.parent in survivors_from_probe else 2)
    # Every node on the selected answer's path adds one step (a probe sample among them was
    # split into a chain of step nodes, not left as one node holding its whole solution).
    path = tree.path(result.completions[0].node_id)
    assert [len(n.steps) for n in path] == list(range(1, len(path) + 1))
    assert any(n.round == 0 for n in tree.nodes[1:] if n.kind == "step")


def test_reuse_needs_scores_per_step_and_is_off_with_sal_compat() -> None:
    tree = SearchTree(PROBLEM)
    per_step = tree.add(0, steps=("a", "b"), step_scores=(0.5, 0.6), kind="solution")
    outcome = tree.add(0, steps=("a", "c"), step_scores=(0.7,), kind="solution")
    unscored = tree.add(0, steps=("a", "d"), kind="solution")
    samples = [per_step.id, outcome.id, unscored.id]
    settings: dict[str, object] = {
        "solver": ScriptedSolver([GOOD]),
        "verifier": prm(),
        "n": 2,
        "beam_width": 2,
    }
    assert BeamSearch(**settings).reusable_samples(tree, samples) == [per_step.id]  # type: ignore[arg-type]
    compat = BeamSearch(**settings, sal_compat=True)  # type: ignore[arg-type]
    assert compat.reusable_samples(tree, samples) == []


async def test_the_choice_is_announced_before_the_arm_runs_and_is_json() -> None:
    result, _, events = await run_recording(
        probe_then_beam(ScriptedSolver([TRAP, GOOD]), prm()), PROBLEM
    )
    choices = [i for i, e in enumerate(events) if isinstance(e, ChoiceMade)]
    assert len(choices) == 1
    event = events[choices[0]]
    assert isinstance(event, ChoiceMade) and event.choice == result.tree.choices[0]
    arm_work = [
        i for i, e in enumerate(events) if isinstance(e, CandidatesGenerated) and e.round >= 1
    ]
    assert arm_work and choices[0] < arm_work[0]
    assert event.choice.choice.startswith("beam_search n=4 (beam_width=2)")
    assert "2 of them riding along step by step" in event.choice.choice
    assert set(event.choice.signals) == {"agreement", "stated", "best_score", "mean_score"}
    summary = json.loads(json.dumps(result.summary()))
    assert summary["choices"] == [dataclasses.asdict(result.tree.choices[0])]


def test_sal_serve_streams_the_choice_as_json() -> None:
    pytest.importorskip("fastapi")
    from sal_plugins.serve._app import event_fields
    from sal_plugins.tree import Choice

    choice = Choice(round=0, choice="stop", because="probe of 4: ...", signals={"agreement": 1.0})
    fields = event_fields(ChoiceMade(elapsed_s=0.5, choice=choice))
    assert json.loads(json.dumps(fields))["choice"] == dataclasses.asdict(choice)
