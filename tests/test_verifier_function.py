"""FunctionVerifier: sync and async functions, outcome and per-step scores, bad returns."""

from __future__ import annotations

import asyncio

import pytest

import sal_plugins as sal
from sal_plugins.errors import ConfigError, InvalidScoreError, ScoreCountError, VerifierError
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.verifiers import FunctionVerifier, Trajectory
from sal_plugins.verifiers.function import ScoreFunction


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


class Unconvertible:
    """A number-like return whose conversion fails in the user's own code."""

    def __float__(self) -> float:
        raise ZeroDivisionError("no float for you")


def raises_runtime_error(problem: str, steps: list[str]) -> float:
    raise RuntimeError("model crashed")


async def raises_overflow(problem: str, steps: list[str]) -> float:
    raise OverflowError("math range error")


@pytest.mark.parametrize(
    ("fn", "raised"),
    [
        (raises_runtime_error, "RuntimeError: model crashed"),
        (raises_overflow, "OverflowError: math range error"),
    ],
)
async def test_an_exception_in_the_function_is_a_verifier_error_naming_it(
    fn: ScoreFunction, raised: str
) -> None:
    with pytest.raises(
        VerifierError, match=f"^{fn.__name__}: the scoring function raised {raised}"
    ):
        await FunctionVerifier(fn).score("p", [Trajectory(("a",))])
    with pytest.raises(VerifierError) as caught:
        await FunctionVerifier(fn, name="mine").score("p", [Trajectory(("a",))])
    assert caught.value.verifier == "mine"
    assert isinstance(caught.value.__cause__, RuntimeError | OverflowError)


@pytest.mark.parametrize(
    ("value", "cause"),
    [
        (10**400, OverflowError),  # float() of a huge int
        ([0.5, 10**400], OverflowError),
        (10**5000, OverflowError),  # too long even to repr in an error message
        (Unconvertible(), ZeroDivisionError),
    ],
    ids=["huge-int", "huge-int-in-list", "unprintable-int", "raising-float"],
)
async def test_a_return_that_does_not_convert_is_a_verifier_error(
    value: object, cause: type[Exception]
) -> None:
    def odd(problem: str, steps: list[str]) -> float:
        return value  # type: ignore[return-value]

    verifier = FunctionVerifier(odd)
    with pytest.raises(VerifierError, match=r"^odd: returned .* for trajectory 0") as caught:
        await verifier.score("p", [Trajectory(("a", "b"))])
    assert isinstance(caught.value.__cause__, cause)
    assert len(str(caught.value)) < 400


async def test_a_verifier_error_from_the_function_keeps_its_name_or_gets_this_one() -> None:
    named = VerifierError("inner scorer failed", verifier="inner")

    def delegates(problem: str, steps: list[str]) -> float:
        raise named

    with pytest.raises(VerifierError) as caught:
        await FunctionVerifier(delegates).score("p", [Trajectory(("a",))])
    assert caught.value is named

    def anonymous(problem: str, steps: list[str]) -> float:
        raise VerifierError("no name")

    with pytest.raises(VerifierError, match=r"^anonymous: the scoring function raised"):
        await FunctionVerifier(anonymous).score("p", [Trajectory(("a",))])


async def test_cancellation_inside_the_function_is_not_wrapped() -> None:
    async def cancelled(problem: str, steps: list[str]) -> float:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await FunctionVerifier(cancelled).score("p", [Trajectory(("a",))])


def test_a_raising_function_costs_the_search_its_scores_not_its_run() -> None:
    solver = ScriptedSolver(["2 + 2 = 4\n\nSo $\\boxed{4}$."])
    result = sal.BestOfN(solver=solver, verifier=raises_runtime_error, n=2, seed=0).run("2 + 2?")
    assert result.answer == "4" and result.failures
    assert result.failures[0].error.startswith(
        "VerifierError: raises_runtime_error: the scoring function raised RuntimeError"
    )
