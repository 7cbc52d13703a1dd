"""FunctionVerifier: sync and async functions, outcome and per-step scores, bad returns."""

from __future__ import annotations

import pytest

import sal_plugins as sal
from sal_plugins.errors import ConfigError, InvalidScoreError, ScoreCountError, VerifierError
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.verifiers import FunctionVerifier, Trajectory


def says_four(problem: str, steps: list[str]) -> float:
    return 1.0 if "4" in steps[-1] else 0.0


async def per_step(problem: str, steps: list[str]) -> list[float]:
    return [0.5] * len(steps)


async def test_sync_outcome_and_async_per_step() -> None:
    trajectories = [Trajectory(("2 + 2", "= 4")), Trajectory(("= 5",))]
    outcome = await FunctionVerifier(says_four).score("p", trajectories)
    assert [r.step_scores for r in outcome] == [(1.0,), (0.0,)]
    steps = await FunctionVerifier(per_step).score("p", trajectories)
    assert [r.step_scores for r in steps] == [(0.5, 0.5), (0.5,)]


async def test_errors_name_the_function() -> None:
    wrong_count = FunctionVerifier(lambda problem, steps: [1.0, 1.0, 1.0], name="three")
    with pytest.raises(ScoreCountError, match="three: returned 3 scores"):
        await wrong_count.score("p", [Trajectory(("a", "b"))])
    nan = FunctionVerifier(lambda problem, steps: float("nan"))
    with pytest.raises(InvalidScoreError, match="FunctionVerifier: returned a non-finite"):
        await nan.score("p", [Trajectory(("a",))])
    text = FunctionVerifier(lambda problem, steps: "high")  # type: ignore[arg-type,return-value]
    with pytest.raises(VerifierError, match="expected a float or a list of floats"):
        await text.score("p", [Trajectory(("a",))])
    bounded = FunctionVerifier(says_four, score_range=(0.0, 0.5))
    with pytest.raises(InvalidScoreError, match=r"says_four: returned 1\.0"):
        await bounded.score("p", [Trajectory(("4",))])


def test_needs_a_callable() -> None:
    with pytest.raises(ConfigError, match="needs a callable"):
        FunctionVerifier(3)  # type: ignore[arg-type]


def test_function_verifier_in_beam_search() -> None:
    solver = ScriptedSolver(["2 + 2 = 5\n\nSo $\\boxed{5}$.", "2 + 2 = 4\n\nSo $\\boxed{4}$."])
    search = sal.BeamSearch(
        solver=solver, verifier=says_four, n=4, beam_width=2, max_steps=3, seed=0
    )
    assert search.run("What is 2 + 2?").answer == "4"
