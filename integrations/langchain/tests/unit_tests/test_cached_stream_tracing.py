"""Candidate calls stay child runs when langchain-core streams an ``invoke`` for us."""

from __future__ import annotations

from langchain_core.runnables import RunnableLambda
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langchain_core.tracers.schemas import Run

from langchain_sal import SearchChatModel
from tests.unit_tests.fakes import SOLUTIONS, RecordingChatModel

PROBLEM = "What is 2 + 2?"


def runs(run: Run) -> list[Run]:
    return [run, *(r for child in run.child_runs for r in runs(child))]


async def test_astream_events_on_a_chain_traces_candidates_under_the_search_model() -> None:
    model = SearchChatModel(
        strategy="best_of_n", solver=RecordingChatModel(responses=SOLUTIONS), n=2, seed=0
    )

    async def ask(problem: str) -> str:
        return (await model.ainvoke(problem)).text  # invoke, streamed by astream_events

    chain = RunnableLambda(ask)
    collector = RunCollectorCallbackHandler()

    events = [
        e async for e in chain.astream_events(PROBLEM, {"callbacks": [collector]}, version="v2")
    ]

    assert any(e["event"] == "on_chat_model_stream" for e in events)
    (root,) = collector.traced_runs
    (search,) = [r for r in runs(root) if r.serialized and r.name == "SearchChatModel"]
    candidates = [r for r in runs(root) if "sal_candidate" in (r.tags or [])]
    assert len(candidates) == 2
    assert {r.parent_run_id for r in candidates} == {search.id}
