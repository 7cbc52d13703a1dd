"""SelfCertaintyVerifier, EnsembleVerifier and CascadeVerifier on scripted parts."""

from __future__ import annotations

import math

import pytest

import sal_plugins as sal
from sal_plugins.errors import ConfigError, InvalidScoreError, VerifierError
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.verifiers import (
    ArithmeticVerifier,
    CascadeVerifier,
    EnsembleVerifier,
    FunctionVerifier,
    ScriptedVerifier,
    SelfCertaintyVerifier,
    Trajectory,
)

SOLUTIONS = [
    "2 + 2 = 5\n\nThe answer is $\\boxed{5}$.",
    "2 + 2 = 4\n\nThe answer is $\\boxed{4}$.",
]


async def test_self_certainty_is_the_geometric_mean_token_probability() -> None:
    verifier = SelfCertaintyVerifier()
    sure = Trajectory(("a", "b"), token_logprobs=(None, (-0.1, -0.1), (-0.1,)))
    unsure = Trajectory(("a",), token_logprobs=((-2.0, -0.5),))
    rows = await verifier.score("p", [sure, unsure])
    assert rows[0].step_scores[0] == pytest.approx(math.exp(-0.1))
    assert rows[1].step_scores[0] == pytest.approx(math.exp(-1.25))
    assert verifier.needs_logprobs and verifier.granularity == "outcome"
    lowest = SelfCertaintyVerifier(reduction="min")
    assert (await lowest.score("p", [unsure]))[0].step_scores[0] == pytest.approx(math.exp(-2.0))
    last = SelfCertaintyVerifier(window=1)
    assert (await last.score("p", [unsure]))[0].step_scores[0] == pytest.approx(math.exp(-0.5))


async def test_self_certainty_without_logprobs_is_an_error() -> None:
    with pytest.raises(VerifierError, match="SelfCertaintyVerifier: trajectory 0 carries no"):
        await SelfCertaintyVerifier().score("p", [Trajectory(("a",))])
    with pytest.raises(VerifierError, match="finite and <= 0"):
        await SelfCertaintyVerifier().score("p", [Trajectory(("a",), token_logprobs=((0.5,),))])


def test_self_certainty_drives_best_of_n_with_logprobs_from_the_solver() -> None:
    # The scripted solver's fake logprob of a word is -0.1 * (1 + len(word) % 5).
    solver = ScriptedSolver(["It is 5.", "Four."])
    search = sal.BestOfN(solver=solver, verifier=SelfCertaintyVerifier(), n=2, seed=0)
    result = search.run("What is 2 + 2?")
    assert all(r.logprobs for r in solver.requests)  # the driver asked for logprobs
    assert result.best.text == "Four."
    assert result.best.score == pytest.approx(math.exp(-0.1))


def constant(value: float) -> ScriptedVerifier:
    return ScriptedVerifier(lambda problem, step: value, score_range=(0.0, 1.0))


async def test_ensemble_weighted_mean_per_step() -> None:
    ensemble = EnsembleVerifier([constant(1.0), constant(0.0)], weights=[3, 1])
    rows = await ensemble.score("p", [Trajectory(("a", "b"))])
    assert ensemble.granularity == "step"
    assert rows[0].step_scores == (0.75, 0.75)


async def test_ensemble_normalises_ranges_and_reduces_mixed_granularities() -> None:
    ten_point = FunctionVerifier(lambda problem, steps: 5.0, score_range=(0.0, 10.0))
    ensemble = EnsembleVerifier([ArithmeticVerifier(), ten_point], reduce="min")
    assert ensemble.granularity == "outcome"
    rows = await ensemble.score("p", [Trajectory(("2 + 2 = 4", "2 + 2 = 5"))])
    assert rows[0].step_scores == (pytest.approx(0.25),)  # min(1, 0) -> 0; 5/10 -> 0.5


async def test_ensemble_member_errors_name_the_member() -> None:
    broken = FunctionVerifier(lambda problem, steps: float("nan"), score_range=(0, 1), name="nanfn")
    with pytest.raises(InvalidScoreError, match="nanfn: returned a non-finite score"):
        await EnsembleVerifier([ArithmeticVerifier(), broken]).score("p", [Trajectory(("a",))])


def test_ensemble_config_errors() -> None:
    with pytest.raises(ConfigError, match="no bounded score_range"):
        EnsembleVerifier([FunctionVerifier(lambda p, s: 1.0)])
    with pytest.raises(ConfigError, match="2 weights for 1"):
        EnsembleVerifier([ArithmeticVerifier()], weights=[1, 2])
    with pytest.raises(ConfigError, match="non-negative"):
        EnsembleVerifier([ArithmeticVerifier()], weights=[-1])


async def test_cascade_prunes_and_ranks_survivors() -> None:
    cheap = ArithmeticVerifier()
    expensive = ScriptedVerifier(
        lambda problem, step: 0.2 if "slow" in step else 0.9, score_range=(0.0, 1.0)
    )
    cascade = CascadeVerifier(cheap, expensive, threshold=0.5)
    trajectories = [
        Trajectory(("2 + 2 = 5",)),  # pruned: cheap 0
        Trajectory(("2 + 2 = 4",)),  # survives, expensive 0.9
        Trajectory(("2 + 2 = 4, slow",)),  # survives, expensive 0.2
        Trajectory(("no arithmetic",)),  # survives (neutral 0.5), expensive 0.9
    ]
    rows = await cascade.score("p", trajectories)
    scores = [r.step_scores[0] for r in rows]
    assert scores == pytest.approx([0.0, 0.95, 0.6, 0.95])
    assert expensive.trajectories_scored == 3  # only survivors reached the expensive one
    assert min(scores[1:]) > max(scores[:1])


async def test_cascade_keep_top_and_pruned_order() -> None:
    cheap = FunctionVerifier(lambda problem, steps: float(len(steps[-1])) / 10, score_range=(0, 1))
    cascade = CascadeVerifier(cheap, constant(0.0), keep_top=1)
    trajectories = [Trajectory(("aa",)), Trajectory(("aaaa",)), Trajectory(("a",))]
    scores = [r.step_scores[0] for r in await cascade.score("p", trajectories)]
    assert scores[1] == 0.5  # the survivor, ranked by the expensive verifier (0)
    assert scores[0] == pytest.approx(0.45 * 0.2) and scores[2] == pytest.approx(0.45 * 0.1)
    assert scores[1] > scores[0] > scores[2]


def test_cascade_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"threshold=\.\.\., keep_top=\.\.\."):
        CascadeVerifier(ArithmeticVerifier(), ArithmeticVerifier())
    with pytest.raises(ConfigError, match="threshold"):
        CascadeVerifier(ArithmeticVerifier(), ArithmeticVerifier(), threshold=2)


def test_cascade_and_ensemble_run_inside_beam_search() -> None:
    solver = ScriptedSolver(SOLUTIONS)
    judge_like = ScriptedVerifier(
        lambda problem, step: 0.0 if "5" in step else 1.0, score_range=(0.0, 1.0)
    )
    for verifier in (
        CascadeVerifier(ArithmeticVerifier(), judge_like, threshold=0.5),
        EnsembleVerifier([ArithmeticVerifier(), judge_like]),
    ):
        search = sal.BeamSearch(
            solver=solver, verifier=verifier, n=4, beam_width=2, max_steps=3, seed=0
        )
        assert search.run("What is 2 + 2?").answer == "4"


@pytest.mark.model
def test_self_certainty_with_the_embedded_model(embedded_llama: object) -> None:
    """Real token logprobs from the in-process SmolLM2: every candidate gets exp(mean logprob)."""
    search = sal.BestOfN(
        solver=embedded_llama, verifier=SelfCertaintyVerifier(), n=2, max_tokens=40, seed=0
    )
    result = search.run("What is 23 + 48?")
    assert not result.failures
    scores = [c.score for c in result.completions]
    assert all(s is not None and 0.0 < s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
