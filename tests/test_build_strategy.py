"""``build_strategy``: the one way every surface (CLI, LangChain, LlamaIndex) builds a strategy."""

from __future__ import annotations

from typing import Any

import pytest

from sal_plugins import BeamSearch, BestOfN
from sal_plugins.errors import ConfigError
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.strategies import DVTS, SelfRevision, build_strategy, strategy_settings
from sal_plugins.verifiers import ArithmeticVerifier, ScriptedVerifier

SOLUTIONS = ["2 + 2 = 4\n\nThe answer is $\\boxed{4}$."]


def solver() -> ScriptedSolver:
    return ScriptedSolver(SOLUTIONS)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("best_of_n", BestOfN),
        ("beam-search", BeamSearch),
        ("DVTS", DVTS),
        (" self_revision ", SelfRevision),
    ],
)
def test_public_names_and_hyphenated_spellings(name: str, cls: type) -> None:
    assert type(build_strategy(name, solver=solver(), verifier=ArithmeticVerifier())) is cls


def test_settings_are_validated_by_the_strategy() -> None:
    prm = ArithmeticVerifier()
    search = build_strategy("beam_search", solver=solver(), verifier=prm, n=8, beam_width=2)
    assert (search.n, search.beam_width) == (8, 2)
    with pytest.raises(ConfigError, match="multiple of beam_width"):
        build_strategy("beam_search", solver=solver(), verifier=prm, n=6, beam_width=4)


def test_a_configured_strategy_is_returned_as_it_is() -> None:
    search = BestOfN(solver=solver(), n=2)
    assert build_strategy(search) is search
    with pytest.raises(ConfigError, match=r"configured BestOfN and keyword arguments \(n\)"):
        build_strategy(search, n=4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: build_strategy("tree_of_thoughts", solver=solver()), "unknown strategy"),
        (lambda: build_strategy("best_of_n"), "best_of_n needs a solver: pass solver="),
        (lambda: build_strategy(42, solver=solver()), "strategy must be a name"),
        (
            lambda: build_strategy("best_of_n", solver=solver(), beam_width=2),
            "BestOfN(beam_width=...): unknown argument for best_of_n (it is a setting of "
            "beam_search, dvts)",
        ),
        (
            lambda: build_strategy("beam_search", solver=solver(), beam_widht=2),
            "did you mean beam_width?",
        ),
        (
            lambda: build_strategy("best_of_n", solver=solver(), zzz=1),
            "best_of_n takes budget, seed",
        ),
    ],
)
def test_mistakes_raise_config_errors_naming_the_fix(call: Any, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        call()
    assert message in str(error.value)


def test_coercion_hooks_turn_framework_models_into_solver_and_verifier() -> None:
    made = solver()
    judge = ScriptedVerifier(lambda problem, step: 0.5)
    search = build_strategy(
        "best_of_n",
        solver="a framework model",
        verifier="a framework judge",
        coerce_solver=lambda model: made if model == "a framework model" else model,
        coerce_verifier=lambda model: judge if model == "a framework judge" else model,
        n=2,
    )
    assert search.solver is made
    assert search.verifier is judge


def test_the_verifier_hook_is_not_called_without_a_verifier() -> None:
    def refuse(model: Any) -> Any:
        raise AssertionError("called")

    assert build_strategy("best_of_n", solver=solver(), coerce_verifier=refuse).verifier is None


def test_a_verifier_declares_its_preferred_aggregation() -> None:
    # ArithmeticVerifier scores steps 1, 0 or 0.5: the mean, not the last step, ranks trajectories.
    assert ArithmeticVerifier.preferred_aggregation == "mean"
    search = build_strategy("beam_search", solver=solver(), verifier=ArithmeticVerifier())
    assert search.aggregation == "mean"
    chosen = build_strategy(
        "beam_search", solver=solver(), verifier=ArithmeticVerifier(), aggregation="min"
    )
    assert chosen.aggregation == "min"
    other = build_strategy("beam_search", solver=solver(), verifier=lambda p, s: 0.5)
    assert other.aggregation == "last"


def test_strategy_settings_leave_out_solver_and_verifier() -> None:
    settings = strategy_settings(BeamSearch)
    assert "beam_width" in settings and "seed" in settings
    assert not {"solver", "verifier"} & set(settings)
