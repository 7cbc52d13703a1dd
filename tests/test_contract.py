"""One contract every registered strategy must keep, run on the scripted fakes.

The suite is parametrised over ``sal_plugins.strategies.STRATEGIES``, not over its own table: a
strategy registered without an entry in ``CONTRACT`` fails every test here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from sal_plugins import Budget, ConfigError, SearchResult
from sal_plugins._driver import SearchDriver, split_steps
from sal_plugins.errors import TransientError
from sal_plugins.events import (
    CandidatesGenerated,
    CandidatesScored,
    RequestFailed,
    RequestRetried,
    SearchEvent,
    SearchFinished,
    SearchStarted,
)
from sal_plugins.solvers import GenerationRequest, ScriptedSolver, SolverResponse
from sal_plugins.solvers.scripted import fail_calls
from sal_plugins.strategies import (
    ABMCTS,
    DVTS,
    STRATEGIES,
    Adaptive,
    BeamSearch,
    BestOfN,
    ParticleFilter,
    SearchStrategy,
    SelfRevision,
)
from sal_plugins.verifiers import ScriptedVerifier

PROBLEM = "What is (2 + 3) * 2?"
RIGHT = "2 + 3 = 5\n\n5 * 2 = 10\n\nThe answer is $\\boxed{10}$."
WRONG = "2 + 3 = 6\n\n6 * 2 = 12\n\nThe answer is $\\boxed{12}$."
RIGHT_LONG = (
    "2 + 3 = 5\n\n5 * 2 = 10\n\nSo it is ten.\n\nTherefore, the final answer is: $\\boxed{10}$."
)
SOLUTIONS = [RIGHT, WRONG, RIGHT_LONG]
REVISIONS = [RIGHT]
WRONG_MARKS = ("= 6", "= 12", "{12}")


def step_score(problem: str, step: str) -> float:
    """A process reward: wrong arithmetic and wrong answers score low."""
    return 0.1 if any(mark in step for mark in WRONG_MARKS) else 0.9


@dataclass(frozen=True)
class Entry:
    """How the suite configures one strategy.

    Attributes:
        cls: the strategy class.
        settings: its keyword arguments in the suite (a small search that takes several rounds).
        bad_configs: keyword arguments that must raise ConfigError, each with text the message
            must contain.
    """

    cls: type[SearchStrategy]
    settings: dict[str, Any]
    bad_configs: list[tuple[dict[str, Any], str]] = field(default_factory=list)


CONTRACT: dict[str, Entry] = {
    "ab_mcts": Entry(
        ABMCTS,
        {"n": 16, "batch_size": 2, "max_steps": 6},
        [
            ({"batch_size": 32}, "batch_size cannot exceed n"),
            ({"distribution": "uniform"}, "distribution"),
            ({"prior_reward": 1.0}, "prior_reward"),
        ],
    ),
    "adaptive": Entry(
        Adaptive,
        {"n": 8, "max_steps": 6},
        [
            ({"probe": 0}, "probe"),
            ({"policy": "no-such-policy.json"}, "no-such-policy.json not found"),
            ({"policy": {"otherwise": {"strategy": "beam", "n": 4}}}, "unknown strategy 'beam'"),
        ],
    ),
    "best_of_n": Entry(
        BestOfN,
        {"n": 4, "chunk_size": 1},
        [
            ({"n": 0}, "n=..."),
            ({"selection": "best"}, "selection"),
            ({"chunk_size": 0}, "chunk_size"),
            ({"sal_compat": 1}, "sal_compat"),
        ],
    ),
    "beam_search": Entry(
        BeamSearch,
        {"n": 4, "beam_width": 2, "max_steps": 6},
        [
            ({"beam_width": 3}, "multiple"),
            ({"max_steps": 0}, "max_steps"),
            ({"selection": "best"}, "selection"),
            ({"sort_completed": 1}, "sort_completed"),
            ({"sal_compat": "yes"}, "sal_compat"),
        ],
    ),
    "dvts": Entry(
        DVTS,
        {"n": 4, "beam_width": 2, "max_steps": 6},
        [
            ({"beam_width": 3}, "multiple"),
            ({"lookahead": -1}, "lookahead"),
            ({"stop_at_boxed": "on"}, "stop_at_boxed"),
            ({"sal_compat": 1}, "sal_compat"),
        ],
    ),
    "self_revision": Entry(
        SelfRevision,
        {"n": 3, "max_revisions": 2, "threshold": 0.5},
        [
            ({"revision_prompt": "Fix this: {solution}"}, "{problem}"),
            ({"revision_prompt": "{problem} {solution} {hint}"}, "{hint}"),
            ({"max_revisions": -1}, "max_revisions"),
        ],
    ),
    "particle_filter": Entry(
        ParticleFilter,
        {"n": 4, "max_steps": 6},
        [
            ({"resampling": "stratified"}, "resampling"),
            ({"n": 1, "iterations": 2}, "n >= 2"),
            ({"weight_temperature": 0.0}, "weight_temperature"),
        ],
    ),
}

NAMES = sorted(STRATEGIES)


def entry(name: str) -> Entry:
    if name not in CONTRACT:
        pytest.fail(f"strategy {name!r} is registered but has no entry in the contract suite")
    return CONTRACT[name]


@dataclass
class Setup:
    """A strategy with its own fresh fakes."""

    strategy: SearchStrategy
    solver: ScriptedSolver
    verifier: ScriptedVerifier


def build(
    name: str,
    *,
    solver: ScriptedSolver | None = None,
    verifier: ScriptedVerifier | None = None,
    wrap: Callable[[ScriptedSolver], Any] | None = None,
    **overrides: Any,
) -> Setup:
    solver = solver or ScriptedSolver(SOLUTIONS, revisions=REVISIONS)
    verifier = verifier or ScriptedVerifier(step_score, score_range=(0.0, 1.0))
    spec = entry(name)
    settings: dict[str, Any] = {"seed": 7, **spec.settings, **overrides}
    strategy = spec.cls(solver=wrap(solver) if wrap else solver, verifier=verifier, **settings)
    return Setup(strategy, solver, verifier)


@dataclass
class Clock:
    """A clock the fakes advance: each generation request takes one simulated second."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class TickingSolver:
    """Wraps a scripted solver; every request moves the clock forward by ``tick`` seconds."""

    inner: ScriptedSolver
    clock: Clock
    tick: float = 1.0

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        self.clock.now += self.tick
        return await self.inner.generate(request)


async def no_sleep(seconds: float) -> None:
    """Retries wait for nothing in tests."""


async def drive(
    strategy: SearchStrategy, clock: Callable[[], float] | None = None
) -> tuple[list[SearchEvent], SearchResult]:
    driver = SearchDriver(strategy, PROBLEM, sleep=no_sleep, **({"clock": clock} if clock else {}))
    events = [event async for event in driver.events()]
    final = events[-1]
    assert isinstance(final, SearchFinished)
    return events, final.result


def assert_usage_matches(result: SearchResult, setup: Setup) -> None:
    usage = result.usage
    assert usage.generation_calls == setup.solver.calls
    assert usage.prompt_tokens == setup.solver.prompt_tokens
    assert usage.completion_tokens == setup.solver.completion_tokens
    assert usage.verifier_calls == setup.verifier.calls


def assert_tree_consistent(result: SearchResult) -> None:
    tree = result.tree
    assert json.loads(tree.to_json()) == json.loads(json.dumps(tree.to_dict()))
    assert result.completions, "a result always carries at least one completion"
    for node in tree.nodes[1:]:
        assert node.parent is not None and node.parent < node.id
        if node.failed:
            continue
        own = split_steps(node.text, "\n\n")
        if node.kind == "revision":  # a revision starts a fresh trajectory
            assert node.steps == own
        else:
            assert node.steps == tree[node.parent].steps + own
    for completion in result.completions:
        node = tree[completion.node_id]
        assert completion.steps == node.steps
        assert completion.text == "\n\n".join(node.steps)
        assert completion.score == node.score
        assert completion.finished == node.finished
    selected_path = {n.id for n in tree.path(result.completions[0].node_id)}
    assert {n.id for n in tree.nodes if n.selected} == selected_path


# --- the registry ---------------------------------------------------------------------------


def test_every_registered_strategy_has_a_contract_entry() -> None:
    assert set(CONTRACT) == set(STRATEGIES), (
        "add every strategy in STRATEGIES to CONTRACT (and nothing else)"
    )


@pytest.mark.parametrize("name", NAMES)
def test_docstrings_state_the_cost(name: str) -> None:
    cls = STRATEGIES[name]
    text = (cls.__doc__ or "") + (sys.modules[cls.__module__].__doc__ or "")
    assert "Cost" in text and "verifier call" in text, f"{cls.__name__} must document its cost"


@pytest.mark.parametrize("name", NAMES)
def test_registry_name_matches_class(name: str) -> None:
    assert STRATEGIES[name].name == name
    assert type(build(name).strategy) is STRATEGIES[name]


# --- behaviour --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
async def test_finds_the_verified_answer_with_finished_completions(name: str) -> None:
    setup = build(name)
    result = await setup.strategy.arun(PROBLEM)
    assert result.stop_reason in ("finished", "early_stop")
    assert result.answer == "10"
    assert all(c.finished for c in result.completions)
    assert result.strategy == name
    assert_tree_consistent(result)
    assert_usage_matches(result, setup)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("honours_n", [True, False])
async def test_usage_equals_what_the_fakes_served(name: str, honours_n: bool) -> None:
    solver = ScriptedSolver(SOLUTIONS, revisions=REVISIONS, honours_n=honours_n)
    setup = build(name, solver=solver)
    result = await setup.strategy.arun(PROBLEM)
    assert_usage_matches(result, setup)
    assert result.usage.generation_calls > 0 and result.usage.verifier_calls > 0


@pytest.mark.parametrize("name", NAMES)
async def test_seeded_runs_repeat_exactly(name: str) -> None:
    first = await build(name).strategy.arun(PROBLEM)
    second = await build(name).strategy.arun(PROBLEM)
    assert first.tree.to_json() == second.tree.to_json()
    assert first.answer == second.answer
    assert [c.node_id for c in first.completions] == [c.node_id for c in second.completions]


@pytest.mark.parametrize("name", NAMES)
def test_sync_run_matches_async(name: str) -> None:
    result = build(name).strategy.run(PROBLEM)
    events = build(name).strategy.astream(PROBLEM)

    async def last() -> SearchResult:
        final = None
        async for event in events:
            final = event
        assert isinstance(final, SearchFinished)
        return final.result

    import asyncio

    streamed = asyncio.run(last())
    assert result.tree.to_json() == streamed.tree.to_json()


@pytest.mark.parametrize("name", NAMES)
async def test_events_arrive_in_order_and_the_last_carries_the_result(name: str) -> None:
    setup = build(name)
    events = [event async for event in setup.strategy.astream(PROBLEM)]
    assert isinstance(events[0], SearchStarted)
    assert events[0].strategy == name and events[0].problem == PROBLEM
    assert isinstance(events[-1], SearchFinished)
    assert not any(isinstance(e, SearchStarted | SearchFinished) for e in events[1:-1])
    result = events[-1].result
    generated = [e for e in events if isinstance(e, CandidatesGenerated)]
    scored = [e for e in events if isinstance(e, CandidatesScored)]
    assert generated and scored
    # Every node the events announce is in the tree, and every expanded node was announced.
    announced = {i for e in generated for i in e.node_ids}
    assert announced == {n.id for n in result.tree.nodes[1:]}
    assert {i for e in scored for i in e.node_ids} <= announced
    elapsed = [e.elapsed_s for e in events]
    assert elapsed == sorted(elapsed)
    assert result.tree.to_json() == (await build(name).strategy.arun(PROBLEM)).tree.to_json()


# --- budgets --------------------------------------------------------------------------------


async def unbudgeted(name: str) -> SearchResult:
    return await build(name).strategy.arun(PROBLEM)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("honours_n", [True, False])
async def test_call_budget_is_never_exceeded(name: str, honours_n: bool) -> None:
    def solver() -> ScriptedSolver:
        return ScriptedSolver(SOLUTIONS, revisions=REVISIONS, honours_n=honours_n)

    full = await build(name, solver=solver()).strategy.arun(PROBLEM)
    cap = max(2, full.usage.calls // 2)
    assert cap < full.usage.calls
    setup = build(name, solver=solver(), budget=Budget(max_calls=cap))
    result = await setup.strategy.arun(PROBLEM)
    assert result.usage.calls <= cap
    assert result.stop_reason == "budget"
    assert result.completions  # the best found so far
    assert_tree_consistent(result)
    assert_usage_matches(result, setup)


@pytest.mark.parametrize("name", NAMES)
async def test_token_budget_stops_the_search(name: str) -> None:
    full = await unbudgeted(name)
    cap = full.usage.total_tokens // 3
    setup = build(name, budget=Budget(max_tokens=cap))
    result = await setup.strategy.arun(PROBLEM)
    assert result.stop_reason == "budget"
    assert result.usage.total_tokens >= cap  # it stops because the cap was reached...
    assert result.usage.calls < full.usage.calls  # ...before doing all the work
    assert result.completions
    assert_tree_consistent(result)
    assert_usage_matches(result, setup)


@pytest.mark.parametrize("name", NAMES)
async def test_deadline_stops_the_search_with_the_best_so_far(name: str) -> None:
    clock = Clock()
    full_setup = build(name, wrap=lambda s: TickingSolver(s, clock))
    _, full = await drive(full_setup.strategy, clock)
    simulated = clock.now
    assert simulated >= 2, "the suite's configuration must take more than one round"

    clock = Clock()
    setup = build(
        name, wrap=lambda s: TickingSolver(s, clock), budget=Budget(deadline_s=simulated / 2)
    )
    _, result = await drive(setup.strategy, clock)
    assert result.stop_reason == "deadline"
    assert result.completions
    assert result.usage.calls < full.usage.calls
    assert_tree_consistent(result)
    assert_usage_matches(result, setup)


# --- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
async def test_a_failed_generation_does_not_sink_the_search(name: str) -> None:
    solver = ScriptedSolver(SOLUTIONS, revisions=REVISIONS, fail=fail_calls(2))
    setup = build(name, solver=solver)
    events, result = await drive(setup.strategy)
    assert result.answer == "10"
    assert [f.stage for f in result.failures] == ["generate"]
    assert result.usage.failures == 1
    assert any(isinstance(e, RequestFailed) and e.stage == "generate" for e in events)
    assert any(n.kind == "failed" and n.error for n in result.tree.nodes)
    assert all(c.finished for c in result.completions)
    assert_tree_consistent(result)
    assert_usage_matches(result, setup)


@pytest.mark.parametrize("name", NAMES)
async def test_a_verifier_failure_on_one_candidate_does_not_sink_the_search(name: str) -> None:
    verifier = ScriptedVerifier(
        step_score,
        score_range=(0.0, 1.0),
        fail_when=lambda steps: steps[0] == "2 + 3 = 6",
    )
    setup = build(name, verifier=verifier)
    events, result = await drive(setup.strategy)
    assert result.answer == "10"
    assert result.failures and all(f.stage == "score" for f in result.failures)
    assert any(isinstance(e, RequestFailed) and e.stage == "score" for e in events)
    # Only the failing trajectories lost their scores; the others were scored one by one.
    scored = [n for n in result.tree.nodes[1:] if n.score is not None]
    assert scored and all(n.steps[0] != "2 + 3 = 6" for n in scored)
    assert result.best is not None and result.best.score is not None
    assert_tree_consistent(result)
    assert_usage_matches(result, setup)


@pytest.mark.parametrize("name", NAMES)
async def test_transient_faults_are_retried(name: str) -> None:
    reference = await unbudgeted(name)
    failed_once: list[bool] = []

    def verifier_fails_once(steps: tuple[str, ...]) -> bool:
        if failed_once:
            return False
        failed_once.append(True)
        return True

    solver = ScriptedSolver(SOLUTIONS, revisions=REVISIONS, fail=fail_calls(1, transient=True))
    verifier = ScriptedVerifier(
        step_score,
        score_range=(0.0, 1.0),
        fail_when=verifier_fails_once,
        error=lambda: TransientError("scripted 503", status_code=503),
    )
    setup = build(name, solver=solver, verifier=verifier)
    events, result = await drive(setup.strategy)
    assert result.usage.retries == 2
    assert {e.stage for e in events if isinstance(e, RequestRetried)} == {"generate", "score"}
    assert not result.failures
    # A retried request keeps its seed, so the search is the one without faults.
    assert result.tree.to_json() == reference.tree.to_json()
    assert result.answer == reference.answer
    assert_usage_matches(result, setup)


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_bad_configuration_raises_a_clear_config_error(name: str) -> None:
    cls = STRATEGIES[name]
    assert entry(name).bad_configs, "list at least one invalid configuration for this strategy"
    for overrides, word in entry(name).bad_configs:
        with pytest.raises(ConfigError) as caught:
            build(name, **overrides)
        assert word in str(caught.value), (overrides, str(caught.value))
    with pytest.raises(ConfigError, match="unknown argument"):
        build(name, bogus=1)
    with pytest.raises(ConfigError, match="temperature"):
        build(name, temperature=-1.0)
    for top_p in (0.0, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="top_p"):
            build(name, top_p=top_p)
    with pytest.raises(ConfigError, match=cls.__name__):
        build(name, beam_width=0) if "beam_width" in cls.model_fields else build(name, n=0)


@pytest.mark.parametrize("name", NAMES)
def test_config_and_with_solver(name: str) -> None:
    setup = build(name)
    other = ScriptedSolver([RIGHT])
    copy = setup.strategy.with_solver(other)
    assert copy.solver is other and setup.strategy.solver is setup.solver
    assert copy.config() == setup.strategy.config()
    assert "solver" not in setup.strategy.config()
    json.dumps(setup.strategy.config())
