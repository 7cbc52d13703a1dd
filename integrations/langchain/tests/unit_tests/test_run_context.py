"""The run a search belongs to reaches every LangChainSolver through a context variable."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import sal_plugins as sal
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langchain_core.tracers.schemas import Run
from sal_plugins.verifiers import (
    ArithmeticVerifier,
    CascadeVerifier,
    EnsembleVerifier,
    JudgeVerifier,
)

from langchain_sal import BestOfNRunnable, LangChainSolver, SearchChatModel
from langchain_sal._run import current_run
from tests.unit_tests.fakes import SOLUTIONS, JudgingChatModel, RecordingChatModel

PROBLEM = "What is 2 + 2?"


def walk(run: Run) -> Iterator[Run]:
    yield run
    for child in run.child_runs:
        yield from walk(child)


def tagged(root: Run, tag: str) -> list[Run]:
    return [run for run in walk(root) if tag in (run.tags or [])]


def test_a_judge_nested_in_composite_verifiers_is_traced_under_the_run() -> None:
    # Deeper than the old reflective re-binding looked: a judge inside an ensemble inside a
    # cascade, built by the user around their own LangChainSolver.
    judge = JudgingChatModel()
    inner = JudgeVerifier(solver=LangChainSolver(judge, tags=("my_judge",)))
    verifier = CascadeVerifier(ArithmeticVerifier(), EnsembleVerifier([inner]), threshold=0.5)
    search = BestOfNRunnable(
        solver=RecordingChatModel(responses=SOLUTIONS[:2]), verifier=verifier, n=2
    )
    collector = RunCollectorCallbackHandler()
    result = search.invoke(PROBLEM, config={"callbacks": [collector]})
    assert result.answer == "4"
    (root,) = collector.traced_runs
    judged = tagged(root, "my_judge")
    assert len(judged) == 1  # "2 + 2 = 5" fails the arithmetic check: only the other is judged
    assert {run.parent_run_id for run in judged} == {root.id}


async def test_concurrent_searches_each_trace_under_their_own_run() -> None:
    model = RecordingChatModel(responses=SOLUTIONS)
    search = BestOfNRunnable(solver=model, n=2, selection="majority")
    first, second = RunCollectorCallbackHandler(), RunCollectorCallbackHandler()
    await asyncio.gather(
        search.ainvoke(PROBLEM, config={"callbacks": [first]}),
        search.ainvoke(PROBLEM, config={"callbacks": [second]}),
    )
    for collector in (first, second):
        (root,) = collector.traced_runs
        candidates = tagged(root, "sal_candidate")
        assert len(candidates) == 2
        assert {run.parent_run_id for run in candidates} == {root.id}


def test_the_run_is_unset_after_the_search_and_the_strategy_is_not_copied() -> None:
    model = SearchChatModel(
        strategy="best_of_n", solver=RecordingChatModel(responses=SOLUTIONS), n=2
    )
    solver = model._strategy.solver
    model.invoke(PROBLEM)
    assert current_run() is None
    assert model._strategy.solver is solver  # no per-run copies of solvers and verifiers


def test_a_solver_outside_a_runnable_uses_its_own_config() -> None:
    model = RecordingChatModel(responses=SOLUTIONS)
    collector = RunCollectorCallbackHandler()
    solver = LangChainSolver(model, config={"callbacks": [collector]})
    sal.BestOfN(solver=solver, n=2).run(PROBLEM)
    assert len(collector.traced_runs) == 2  # top-level model runs: no search run to nest under
