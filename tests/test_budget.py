"""Budgets: validation, composition, and what counts as exhausted."""

from __future__ import annotations

import pytest

from sal_plugins import Budget, ConfigError, Usage


@pytest.mark.parametrize("field", ["max_calls", "max_tokens", "max_cost", "deadline_s"])
@pytest.mark.parametrize("value", [0, -1, "10"])
def test_caps_must_be_positive_numbers(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        Budget(**{field: value})  # type: ignore[arg-type]


def test_none_means_no_cap() -> None:
    budget = Budget()
    assert budget.calls_left(Usage(generation_calls=10**6)) is None
    assert budget.exhausted(Usage(generation_calls=10**6, prompt_tokens=10**9), 10**6) is None


def test_budgets_compose_to_the_tighter_cap_of_each_kind() -> None:
    a = Budget(max_calls=10, max_tokens=1000)
    b = Budget(max_calls=5, deadline_s=30.0)
    both = a & b
    assert both == Budget(max_calls=5, max_tokens=1000, deadline_s=30.0)
    assert both == b & a
    assert a & Budget() == a


def test_calls_count_generation_and_verifier_work() -> None:
    budget = Budget(max_calls=5)
    usage = Usage(generation_calls=3, verifier_calls=1)
    assert budget.calls_left(usage) == 1
    assert budget.exhausted(usage, 0.0) is None
    usage.verifier_calls += 1
    assert budget.calls_left(usage) == 0
    assert budget.exhausted(usage, 0.0) == "budget"


def test_tokens_cost_and_deadline() -> None:
    assert Budget(max_tokens=100).exhausted(Usage(prompt_tokens=60, completion_tokens=40), 0) == (
        "budget"
    )
    assert (
        Budget(max_tokens=100).exhausted(Usage(prompt_tokens=60, completion_tokens=39), 0) is None
    )
    assert Budget(max_cost=1.0).exhausted(Usage(cost=1.5), 0) == "budget"
    assert Budget(max_cost=1.0).exhausted(Usage(cost=None), 0) is None  # unpriced solver
    assert Budget(deadline_s=2.0).exhausted(Usage(), 2.0) == "deadline"
    assert Budget(deadline_s=2.0).exhausted(Usage(), 1.9) is None
    # The deadline is reported first when both are reached.
    assert Budget(max_calls=1, deadline_s=1).exhausted(Usage(generation_calls=1), 5) == "deadline"
