"""ParticleFilterRunnable: the strategy's settings as fields, the same search as the strategy."""

from __future__ import annotations

from typing import Any

import pytest
import sal_plugins as sal
from langchain_core.runnables import ConfigurableField
from sal_plugins.errors import ConfigError
from sal_plugins.solvers.scripted import ScriptedSolver
from sal_plugins.verifiers.scripted import ScriptedVerifier

from langchain_sal import ParticleFilterRunnable
from tests.unit_tests.fakes import SOLUTIONS

PROBLEM = "What is 2 + 2?"


def right_step(problem: str, step: str) -> float:
    """Steps that say 5 are wrong."""
    return 0.1 if "5" in step else 0.9


def settings(**kwargs: Any) -> dict[str, Any]:
    return {
        "solver": ScriptedSolver(SOLUTIONS),
        "verifier": ScriptedVerifier(right_step, score_range=(0.0, 1.0)),
        "n": 4,
        "max_steps": 4,
        "seed": 0,
        **kwargs,
    }


def test_invoke_matches_the_strategy_run_directly() -> None:
    result = ParticleFilterRunnable(**settings()).invoke(PROBLEM)
    direct = sal.ParticleFilter(**settings()).run(PROBLEM)
    assert result.strategy == "particle_filter"
    assert result.answer == direct.answer == "4"
    assert result.tree.to_json() == direct.tree.to_json()


def test_particle_settings_are_fields_and_configurable() -> None:
    search = ParticleFilterRunnable(
        **settings(iterations=2, resampling="multinomial"), output="answer"
    )
    assert search.strategy.iterations == 2  # type: ignore[attr-defined]
    assert search.strategy.resampling == "multinomial"  # type: ignore[attr-defined]
    tunable = search.configurable_fields(
        weight_temperature=ConfigurableField(id="weight_temperature")
    )
    assert tunable.invoke(PROBLEM, config={"configurable": {"weight_temperature": 2.0}}) == "4"


def test_bad_settings_raise_the_strategy_error() -> None:
    with pytest.raises(ConfigError, match="n >= 2"):
        ParticleFilterRunnable(**settings(n=1, iterations=3))
