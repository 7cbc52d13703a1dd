"""Search workflows: typed start, SearchResult out, progress on the stream, timeouts, errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sal_plugins as sal
from li_fakes import PROBLEM, RIGHT, SOLUTIONS, WRONG, ScriptedLLM, prefers_four, solution_llm
from llama_index.core.workflow import StopEvent, WorkflowTimeoutError
from sal_plugins.errors import ConfigError, SearchError
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.solvers.scripted import fail_calls
from sal_plugins.strategies import STRATEGIES, BeamSearch, BestOfN, SearchStrategy
from sal_plugins.verifiers.judge import JudgeVerifier

from llama_index_sal import (
    ABMCTSWorkflow,
    AdaptiveWorkflow,
    BeamSearchWorkflow,
    BestOfNWorkflow,
    DVTSWorkflow,
    LlamaIndexSolver,
    ParticleFilterWorkflow,
    SearchProgressEvent,
    SearchStartEvent,
    SearchWorkflow,
    SelfRevisionWorkflow,
)

WORKFLOWS: list[tuple[type[SearchWorkflow], dict[str, Any]]] = [
    (BestOfNWorkflow, {"n": 2}),
    (BeamSearchWorkflow, {"n": 2, "beam_width": 1, "max_steps": 4}),
    (DVTSWorkflow, {"n": 2, "beam_width": 1, "max_steps": 4}),
    (ParticleFilterWorkflow, {"n": 2, "max_steps": 4}),
    (ABMCTSWorkflow, {"n": 4, "batch_size": 2, "max_steps": 4}),
    (AdaptiveWorkflow, {"n": 4, "max_steps": 4}),
    (SelfRevisionWorkflow, {"n": 1, "max_revisions": 1, "threshold": 0.5}),
]


def test_every_registered_strategy_has_a_workflow() -> None:
    assert {workflow.strategy_name for workflow, _ in WORKFLOWS} == set(STRATEGIES)


def scripted(workflow: type[SearchWorkflow], **kwargs: Any) -> SearchWorkflow:
    # Self-revision starts from the wrong solution and is served the right one as its revision.
    solutions = [WRONG] if workflow is SelfRevisionWorkflow else SOLUTIONS
    solver = ScriptedSolver(solutions, revisions=[RIGHT])
    return workflow(solver=solver, verifier=prefers_four(), seed=0, **kwargs)


@pytest.mark.parametrize(
    ("workflow", "kwargs"), WORKFLOWS, ids=lambda v: getattr(v, "__name__", "")
)
async def test_run_returns_the_search_result(
    workflow: type[SearchWorkflow], kwargs: dict[str, Any]
) -> None:
    result = await scripted(workflow, **kwargs).run(problem=PROBLEM)

    assert isinstance(result, sal.SearchResult)
    assert result.answer == "4"
    assert result.strategy == workflow.strategy_name


@pytest.mark.parametrize(
    ("workflow", "kwargs"), WORKFLOWS, ids=lambda v: getattr(v, "__name__", "")
)
def test_each_workflow_wraps_its_registered_strategy(
    workflow: type[SearchWorkflow], kwargs: dict[str, Any]
) -> None:
    instance = scripted(workflow, **kwargs)

    assert isinstance(instance.strategy, SearchStrategy)
    assert instance.strategy.name == workflow.strategy_name
    assert instance.strategy.seed == 0


async def test_progress_events_stream_before_the_stop_event() -> None:
    workflow = scripted(BeamSearchWorkflow, n=2, beam_width=1, max_steps=4)

    handler = workflow.run(problem=PROBLEM)
    events = [event async for event in handler.stream_events()]
    result = await handler

    progress = [e for e in events if isinstance(e, SearchProgressEvent)]
    kinds = [e.kind for e in progress]
    assert kinds[0] == "search_started"
    assert kinds[-1] == "search_finished"
    assert "candidates_generated" in kinds and "candidates_scored" in kinds
    assert isinstance(events[-1], StopEvent) and events[-1].result is result
    assert events.index(progress[-1]) < len(events) - 1
    scored = next(e for e in progress if e.kind == "candidates_scored")
    assert scored.data["best_score"] == pytest.approx(0.9)
    assert "best 0.900" in scored.message
    assert progress[-1].data["answer"] == "4"
    assert progress[0].sal_event is not None and progress[0].sal_event.kind == "search_started"


async def test_the_start_event_is_typed() -> None:
    workflow = scripted(BestOfNWorkflow, n=2)

    result = await workflow.run(start_event=SearchStartEvent(problem=PROBLEM))

    assert result.problem == PROBLEM
    assert workflow.start_event_class is SearchStartEvent


def test_default_timeout_lets_long_searches_finish() -> None:
    assert scripted(BestOfNWorkflow, n=2)._timeout is None
    assert scripted(BestOfNWorkflow, n=2, timeout=600.0)._timeout == 600.0


async def test_a_configured_timeout_is_enforced() -> None:
    slow = ScriptedSolver(SOLUTIONS, delay_s=5.0)
    workflow = BestOfNWorkflow(solver=slow, n=1, timeout=0.2)

    with pytest.raises(WorkflowTimeoutError):
        await workflow.run(problem=PROBLEM)


async def test_a_llamaindex_llm_is_accepted_as_solver() -> None:
    workflow = BestOfNWorkflow(solver=solution_llm(), verifier=prefers_four(), n=2, seed=0)

    result = await workflow.run(problem=PROBLEM)

    assert isinstance(workflow.strategy.solver, LlamaIndexSolver)
    assert result.answer == "4"


async def test_a_plain_function_is_accepted_as_verifier() -> None:
    def verifier(problem: str, steps: list[str]) -> float:
        return 1.0 if "4" in steps[-1] else 0.0

    workflow = BestOfNWorkflow(
        solver=ScriptedSolver(SOLUTIONS), verifier=verifier, n=2, selection="naive", seed=0
    )

    assert (await workflow.run(problem=PROBLEM)).answer == "4"


async def test_search_workflow_runs_a_configured_strategy() -> None:
    strategy = BeamSearch(
        solver=ScriptedSolver(SOLUTIONS), verifier=prefers_four(), n=2, beam_width=1, seed=0
    )
    workflow = SearchWorkflow(strategy=strategy)

    assert workflow.strategy is strategy
    assert (await workflow.run(problem=PROBLEM)).strategy == "beam_search"
    named = SearchWorkflow(strategy="best-of-n", solver=ScriptedSolver(SOLUTIONS), n=1)
    assert isinstance(named.strategy, BestOfN)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: BestOfNWorkflow(solver=ScriptedSolver(SOLUTIONS), n=2, beam_width=2),
            "beam_width",
        ),
        (lambda: BeamSearchWorkflow(verifier=prefers_four()), "solver"),
        (lambda: BestOfNWorkflow(solver=ScriptedSolver(SOLUTIONS), n=0), "n"),
        (lambda: SearchWorkflow(), "strategy="),
        (
            lambda: SearchWorkflow(strategy="tree_of_thoughts", solver=ScriptedSolver(SOLUTIONS)),
            "unknown",
        ),
        (
            lambda: BestOfNWorkflow(strategy=BestOfN(solver=ScriptedSolver(SOLUTIONS))),
            "SearchWorkflow(strategy=",
        ),
    ],
)
def test_configuration_mistakes_raise_config_errors(build: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build()


async def test_a_search_with_no_candidates_raises_search_error_with_the_partial_result() -> None:
    failing = ScriptedSolver(SOLUTIONS, fail=fail_calls(*range(1, 50)))
    workflow = BestOfNWorkflow(solver=failing, n=2, max_retries=0)

    with pytest.raises(SearchError) as raised:
        await workflow.run(problem=PROBLEM)

    assert raised.value.result is not None
    assert raised.value.result.usage.failures >= 1
    assert "scripted failure" in raised.value.result.failures[0].error


async def test_a_llamaindex_llm_as_verifier_judges_the_candidates() -> None:
    judge = ScriptedLLM(
        reply=lambda messages, kwargs: (
            "Score: 9/10" if "\\boxed{4}" in (messages[-1].content or "") else "Score: 1/10"
        )
    )
    workflow = BestOfNWorkflow(
        solver=ScriptedSolver(SOLUTIONS), verifier=judge, n=2, selection="naive", seed=0
    )

    result = await workflow.run(problem=PROBLEM)

    assert isinstance(workflow.strategy.verifier, JudgeVerifier)
    assert judge.calls, "the judge LLM was asked"
    assert result.answer == "4"
    assert result.best is not None and result.best.score is not None and result.best.score > 0.5
