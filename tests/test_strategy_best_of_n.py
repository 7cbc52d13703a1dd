"""Best-of-N: selections, self-consistency and early stopping."""

from __future__ import annotations

import pytest

from sal_plugins import BestOfN, ConfigError
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.verifiers import FunctionVerifier, ScriptedVerifier

PROBLEM = "What is 1 / 2?"
HALF = "1 / 2 = 0.5\n\nThe answer is $\\boxed{0.5}$."
HALF_FRAC = "Halve it.\n\nThe answer is $\\boxed{\\frac{1}{2}}$."
HALF_SLASH = "Divide.\n\nThe answer is 1/2."
THIRD = "1 / 2 = 0.33\n\nThe answer is $\\boxed{0.33}$."
TWO = "1 / 2 = 2\n\nThe answer is $\\boxed{2}$."


def scores(table: dict[str, float]) -> ScriptedVerifier:
    """A verifier giving each step the score of the first key it contains (else 0.5)."""

    def score(problem: str, step: str) -> float:
        return next((v for k, v in table.items() if k in step), 0.5)

    return ScriptedVerifier(score, score_range=(0.0, 1.0))


def answers(result_completions: list[object]) -> list[str | None]:
    return [getattr(c, "answer", None) for c in result_completions]


async def test_naive_takes_the_highest_score() -> None:
    solver = ScriptedSolver([HALF, THIRD, TWO])
    verifier = scores({"0.33": 0.95, "= 2": 0.2, "0.5": 0.6})
    search = BestOfN(solver=solver, verifier=verifier, n=3, selection="naive", seed=0)
    result = await search.arun(PROBLEM)
    assert result.answer == "0.33"
    assert [c.score for c in result.completions] == sorted(
        [c.score for c in result.completions], reverse=True
    )


async def test_weighted_sums_the_scores_of_equivalent_answers() -> None:
    # Three spellings of one half, each scored lower than the single 0.33.
    solver = ScriptedSolver([HALF, HALF_FRAC, HALF_SLASH, THIRD])
    verifier = scores({"0.33": 0.9, "Halve": 0.5, "Divide": 0.5, "0.5": 0.5})
    naive = await BestOfN(solver=solver, verifier=verifier, n=4, selection="naive", seed=0).arun(
        PROBLEM
    )
    weighted = await BestOfN(solver=solver, verifier=verifier, n=4, seed=0).arun(PROBLEM)
    assert naive.answer == "0.33"
    assert weighted.answer in ("0.5", "\\frac{1}{2}", "1/2")
    # The heaviest answer's candidates come first, then the rest.
    assert weighted.completions[-1].answer == "0.33"


async def test_majority_counts_votes_and_breaks_ties_by_total_score() -> None:
    solver = ScriptedSolver([HALF, TWO])
    verifier = scores({"= 2": 0.9, "0.5": 0.1})
    search = BestOfN(
        solver=solver, verifier=verifier, n=4, selection="majority", early_stop=False, seed=0
    )
    result = await search.arun(PROBLEM)  # two votes each: the higher total wins
    assert sorted(answers(result.completions)) == ["0.5", "0.5", "2", "2"]
    assert result.answer == "2"


async def test_self_consistency_needs_no_verifier_and_groups_equivalent_answers() -> None:
    solver = ScriptedSolver([HALF, HALF_FRAC, HALF_SLASH, THIRD, TWO])
    search = BestOfN(solver=solver, n=5, early_stop=False, seed=0)
    result = await search.arun(PROBLEM)
    assert search.effective_selection == "majority"
    assert result.usage.verifier_calls == 0
    assert result.answer in ("0.5", "\\frac{1}{2}", "1/2")
    assert all(c.score is None for c in result.completions)


def test_selections_that_need_scores_need_a_verifier() -> None:
    solver = ScriptedSolver([HALF])
    for selection in ("naive", "weighted"):
        with pytest.raises(ConfigError, match="needs a verifier"):
            BestOfN(solver=solver, selection=selection)


async def test_chunk_size_splits_the_samples_into_requests() -> None:
    solver = ScriptedSolver([HALF])
    await BestOfN(solver=solver, n=5, chunk_size=2, early_stop=False, seed=0).arun(PROBLEM)
    assert [r.n for r in solver.requests] == [2, 2, 1]
    await BestOfN(solver=solver, n=5, early_stop=False, seed=0).arun(PROBLEM)
    assert solver.requests[-1].n == 5


# --- early stopping -------------------------------------------------------------------------


async def test_majority_stops_once_the_vote_is_settled_and_records_the_saving() -> None:
    solver = ScriptedSolver([HALF, HALF_FRAC], honours_n=False)  # one call per sample
    result = await BestOfN(solver=solver, n=8, seed=0).arun(PROBLEM)
    # Unanimous after n // 2 + 1 = 5 samples: 3 more could not overturn 5 votes.
    assert result.stop_reason == "early_stop"
    assert sum(r.n for r in solver.requests) == 5
    assert len(result.completions) == 5
    assert result.usage.generation_calls == 5
    assert result.usage.calls_saved == 3


async def test_calls_saved_follow_how_the_solver_served_n() -> None:
    solver = ScriptedSolver([HALF], honours_n=True)  # one call per request
    result = await BestOfN(solver=solver, n=8, chunk_size=2, seed=0).arun(PROBLEM)
    assert result.stop_reason == "early_stop"
    assert [r.n for r in solver.requests] == [2, 2, 1]
    assert result.usage.calls_saved == 2  # the two chunk requests (2 + 1 samples) not sent


async def test_majority_keeps_sampling_while_the_vote_is_open() -> None:
    solver = ScriptedSolver([HALF, TWO])  # alternating answers within a request
    result = await BestOfN(solver=solver, n=6, chunk_size=6, seed=0).arun(PROBLEM)
    assert result.stop_reason == "finished"
    assert sum(r.n for r in solver.requests) == 6
    assert result.usage.calls_saved == 0


@pytest.mark.parametrize("seed", range(12))
async def test_early_stopping_never_changes_the_majority_answer(seed: int) -> None:
    pool = [HALF, HALF_FRAC, TWO, THIRD, TWO]
    early = await BestOfN(solver=ScriptedSolver(pool), n=9, chunk_size=1, seed=seed).arun(PROBLEM)
    full = await BestOfN(
        solver=ScriptedSolver(pool), n=9, chunk_size=1, early_stop=False, seed=seed
    ).arun(PROBLEM)
    assert early.answer == full.answer or (
        early.answer in ("0.5", "\\frac{1}{2}") and full.answer in ("0.5", "\\frac{1}{2}")
    )


async def test_the_property_check_above_sees_both_outcomes() -> None:
    pool = [HALF, HALF_FRAC, TWO, THIRD, TWO]
    reasons = set()
    for seed in range(12):
        result = await BestOfN(solver=ScriptedSolver(pool), n=9, chunk_size=1, seed=seed).arun(
            PROBLEM
        )
        reasons.add(result.stop_reason)
    assert reasons == {"early_stop", "finished"}


async def test_weighted_stops_early_only_with_bounded_scores() -> None:
    solver = ScriptedSolver([HALF])
    bounded = ScriptedVerifier(lambda p, s: 0.9, score_range=(0.0, 1.0))
    search = BestOfN(solver=solver, verifier=bounded, n=8, chunk_size=2, early_stop=True, seed=0)
    result = await search.arun(PROBLEM)
    # 0.9 * k > 1.0 * (8 - k) first holds at k = 5 (4.5 > 3); the first round draws 5.
    assert result.stop_reason == "early_stop"
    assert result.usage.verifier_calls == 1
    with pytest.raises(ConfigError, match="score_range"):
        BestOfN(solver=solver, verifier=lambda p, s: 1.0, early_stop=True)
    with pytest.raises(ConfigError, match="score_range"):
        BestOfN(
            solver=solver,
            verifier=ScriptedVerifier(lambda p, s: 1.0, score_range=(-1, 1)),
            early_stop=True,
        )
    unbounded_prod = ScriptedVerifier(lambda p, s: 1.0, score_range=(0.0, 2.0))
    with pytest.raises(ConfigError, match="prod"):
        BestOfN(solver=solver, verifier=unbounded_prod, aggregation="prod", early_stop=True)


async def test_weighted_keeps_sampling_when_the_leader_could_still_be_caught() -> None:
    solver = ScriptedSolver([HALF])
    low = ScriptedVerifier(lambda p, s: 0.4, score_range=(0.0, 1.0))
    result = await BestOfN(
        solver=solver, verifier=low, n=8, chunk_size=2, early_stop=True, seed=0
    ).arun(PROBLEM)
    # 0.4 * k > 8 - k needs k > 5.7: not after the first 5 samples, but after 5 + 2.
    assert result.stop_reason == "early_stop"
    assert sum(r.n for r in solver.requests) == 7
    assert result.usage.verifier_calls == 2  # one per round


async def test_weighted_and_naive_do_not_stop_early_by_default() -> None:
    solver = ScriptedSolver([HALF])
    verifier = ScriptedVerifier(lambda p, s: 1.0, score_range=(0.0, 1.0))
    for selection in ("weighted", "naive"):
        result = await BestOfN(
            solver=solver, verifier=verifier, n=6, selection=selection, seed=0
        ).arun(PROBLEM)
        assert result.stop_reason == "finished"
        assert len(result.completions) == 6


async def test_naive_stops_when_a_candidate_reaches_the_highest_possible_score() -> None:
    solver = ScriptedSolver([HALF, TWO])
    verifier = ScriptedVerifier(lambda p, s: 1.0 if "0.5" in s else 0.3, score_range=(0.0, 1.0))
    result = await BestOfN(
        solver=solver, verifier=verifier, n=8, selection="naive", early_stop=True, seed=0
    ).arun(PROBLEM)
    assert result.stop_reason == "early_stop"
    assert result.answer == "0.5"
    assert result.best is not None and result.best.score == 1.0


def test_function_verifier_bounds_are_used() -> None:
    solver = ScriptedSolver([HALF])
    verifier = FunctionVerifier(lambda p, s: 1.0, score_range=(0.0, 1.0))
    search = BestOfN(solver=solver, verifier=verifier, early_stop=True)
    assert search.stops_early


def test_weighted_selection_lets_an_unanswered_candidate_beat_a_low_scored_answer() -> None:
    # A solution that states no final answer but scores well must not lose to a wrong answer
    # that scores zero just because only the latter forms an answer group.
    solutions = [
        "Add the tens, then the ones\n\nSo that is seventy-one",
        "23 + 48 = 222\n\nThe answer is $\\boxed{222}$.",
    ]
    verifier = ScriptedVerifier(lambda problem, step: 0.0 if "222" in step else 0.9)
    result = BestOfN(
        solver=ScriptedSolver(solutions), verifier=verifier, n=2, selection="weighted", seed=0
    ).run("What is 23 + 48?")
    assert result.best is not None
    assert "seventy-one" in result.best.text
    assert result.answer is None
