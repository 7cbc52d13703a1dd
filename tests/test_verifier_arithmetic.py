"""ArithmeticVerifier: exact checks of the arithmetic written in each step."""

from __future__ import annotations

import pytest

import sal_plugins as sal
from sal_plugins.errors import ConfigError
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.verifiers import ArithmeticVerifier, Trajectory
from sal_plugins.verifiers.arithmetic import find_equations, problem_value


@pytest.mark.parametrize(
    ("text", "verdicts"),
    [
        ("23 + 48 = 71", [True]),
        ("23 + 48 = 72", [False]),
        ("2 + 3 + 4 = 9", [True]),
        ("2 + 3 * 4 = 14", [True]),  # precedence
        ("2 + 3 * 4 = 20", [False]),
        ("$1,200 + $300 = $1,500", [True]),
        ("5 apples + 3 apples = 8 apples", [True]),
        ("3 x 4 = 12 and 3 × 4 = 13", [True, False]),
        ("12 ÷ 4 = 3, 6 \\times 7 = 42, 9 \\div 3 = 3", [True, True, True]),
        ("10 / 3 = 3.33", [True]),  # right to the places written
        ("7 / 2 = 3", [False]),  # an integer result must be exact
        ("0.1 + 0.2 = 0.3", [True]),  # exact, not floating point
        ("-5 + 3 = -2", [True]),
        ("20% * 50 = 10", [True]),
        ("$23 + 48 = 71$", [True]),
        ("So 48 - 23 = 25.", [True]),
        ("100 − 1 = 99", [True]),
        ("8 / 0 = 0", [False]),
        ("x = 2 + 3 = 5", [True]),
        # Not judged: algebra, brackets, powers, comparisons, dates.
        ("2x + 3 = 7", []),
        ("(2 + 3) * 4 = 21", []),
        ("2^3 + 1 = 9", []),
        ("5 == 5, a <= 3", []),
        ("2023-11-27 = today", []),
        ("12 + 5 = 17 - 2", []),  # a running total: not wrong
        # An expression on the right is evaluated too.
        ("23 + 48 = 100 + 128 = 222", [False, False]),
        ("6 * 2 = 10 + 2", [True]),
        ("6 * 2 = 10 + 3", [False]),
        ("5 + 5 = 2 * (3 + 2)", []),
    ],
)
def test_find_equations(text: str, verdicts: list[bool]) -> None:
    assert [e.correct for e in find_equations(text)] == verdicts


def test_rounding_can_be_switched_off() -> None:
    assert [e.correct for e in find_equations("10 / 3 = 3.33", rounding=False)] == [False]
    assert [e.correct for e in find_equations("10 / 4 = 2.5", rounding=False)] == [True]


@pytest.mark.parametrize(
    ("problem", "value"),
    [
        ("What is 23 + 48?", 71),
        ("Compute 1,200 - 300.", 900),
        ("What is 23 + 48 times 2?", None),  # a number outside the expression
        ("Tom has 3 apples. What is 3 + 4?", None),
        ("Solve 2 + x = 5.", None),
    ],
)
def test_problem_value(problem: str, value: int | None) -> None:
    assert problem_value(problem) == value


async def test_step_scores_right_wrong_and_neutral() -> None:
    verifier = ArithmeticVerifier(neutral=0.4)
    trajectory = Trajectory(
        (
            "We add the numbers.",
            "23 + 48 = 71",
            "23 + 48 = 61",
            "Check: 71 - 48 = 23 and 71 - 23 = 48.",
            "The answer is $\\boxed{71}$.",
        )
    )
    rows = await verifier.score("Add 23 and 48.", [trajectory])
    assert rows[0].step_scores == (0.4, 1.0, 0.0, 1.0, 0.4)


async def test_final_answer_is_checked_against_a_bare_expression_problem() -> None:
    verifier = ArithmeticVerifier()
    rows = await verifier.score(
        "What is 23 + 48?",
        [
            Trajectory(("The answer is $\\boxed{71}$.",)),
            Trajectory(("The answer is 61.",)),
            Trajectory(("So the answer is 71 apples.",)),
        ],
    )
    assert [r.step_scores for r in rows] == [(1.0,), (0.0,), (1.0,)]
    no_check = ArithmeticVerifier(check_answer=False)
    rows = await no_check.score("What is 23 + 48?", [Trajectory(("The answer is 61.",))])
    assert rows[0].step_scores == (0.5,)


def test_neutral_must_be_a_score() -> None:
    with pytest.raises(ConfigError, match="neutral"):
        ArithmeticVerifier(neutral=2.0)


def test_arithmetic_verifier_steers_beam_search_away_from_slips() -> None:
    solver = ScriptedSolver(
        [
            "23 + 48 = 61\n\nThe answer is $\\boxed{61}$.",
            "20 + 40 = 60 and 3 + 8 = 11\n\n60 + 11 = 71\n\nThe answer is $\\boxed{71}$.",
            "23 + 48 = 81\n\nThe answer is $\\boxed{81}$.",
        ]
    )
    search = sal.BeamSearch(
        solver=solver, verifier=ArithmeticVerifier(), n=6, beam_width=2, max_steps=5, seed=0
    )
    result = search.run("What is 23 + 48?")
    assert result.answer == "71"
    assert result.best.step_scores == (1.0, 1.0, 1.0)


def test_arithmetic_verifier_ranks_best_of_n() -> None:
    solver = ScriptedSolver(
        ["23 + 48 = 61\n\nThe answer is $\\boxed{61}$.", "23 + 48 = 71\n\nThe answer is 71."]
    )
    search = sal.BestOfN(solver=solver, verifier=ArithmeticVerifier(), n=4, seed=0)
    assert search.run("What is 23 + 48?").answer == "71"
