"""Every registered strategy has a runnable, and it runs the same search as the strategy itself."""

from __future__ import annotations

from typing import Any

import pytest
from sal_plugins.solvers.scripted import ScriptedSolver
from sal_plugins.strategies import STRATEGIES
from sal_plugins.verifiers.scripted import ScriptedVerifier

import langchain_sal
from langchain_sal import SearchRunnable
from tests.unit_tests.fakes import SOLUTIONS

PROBLEM = "What is 2 + 2?"

RUNNABLES = {
    cls.strategy_class.name: cls
    for name in langchain_sal.__all__
    if isinstance(cls := getattr(langchain_sal, name), type)
    and issubclass(cls, SearchRunnable)
    and cls is not SearchRunnable
}


def right_step(problem: str, step: str) -> float:
    """Steps that say 5 are wrong."""
    return 0.1 if "5" in step else 0.9


def settings(name: str) -> dict[str, Any]:
    fields = STRATEGIES[name].model_fields
    small = {"n": 4, "max_steps": 4, "beam_width": 2, "batch_size": 2, "max_revisions": 1}
    return {
        "solver": ScriptedSolver(SOLUTIONS),
        "verifier": ScriptedVerifier(right_step, score_range=(0.0, 1.0)),
        "seed": 0,
        **{key: value for key, value in small.items() if key in fields},
    }


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_each_strategy_has_a_runnable_that_matches_it(name: str) -> None:
    assert name in RUNNABLES, f"langchain_sal exports no runnable for the {name!r} strategy"
    result = RUNNABLES[name](**settings(name)).invoke(PROBLEM)
    direct = STRATEGIES[name](**settings(name)).run(PROBLEM)
    assert result.strategy == name
    assert result.answer == direct.answer
    assert result.tree.to_json() == direct.tree.to_json()
