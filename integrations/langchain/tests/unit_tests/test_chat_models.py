"""SearchChatModel on scripted chat models: a drop-in chat model whose answer won a search."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langchain_core.tracers.schemas import Run
from langgraph.graph import END, START, MessagesState, StateGraph
from sal_plugins.errors import ConfigError
from sal_plugins.solvers.scripted import ScriptedSolver

from langchain_sal import LangChainSolver, SearchChatModel
from tests.unit_tests.fakes import SOLUTIONS, RecordingChatModel

PROBLEM = "What is 2 + 2?"
FOURS = {SOLUTIONS[0], SOLUTIONS[2]}


def walk(run: Run) -> Iterator[Run]:
    yield run
    for child in run.child_runs:
        yield from walk(child)


def majority(solver: Any, **kwargs: Any) -> SearchChatModel:
    return SearchChatModel(strategy="best_of_n", solver=solver, n=3, selection="majority", **kwargs)


def test_answers_with_the_selected_completion() -> None:
    model = majority(RecordingChatModel(responses=SOLUTIONS))
    message = model.invoke([("system", "Be brief."), ("human", PROBLEM)])
    assert isinstance(message, AIMessage)
    assert message.content in FOURS  # candidates arrive concurrently, so either of the two
    summary = message.response_metadata["sal"]
    assert (summary["answer"], summary["strategy"]) == ("4", "best_of_n")
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 30  # three calls of 10 prompt tokens


async def test_async_invoke() -> None:
    model = majority(RecordingChatModel(responses=SOLUTIONS))
    message = await model.ainvoke(PROBLEM)
    assert message.response_metadata["sal"]["answer"] == "4"


def test_strategy_keyword_arguments_are_collected_and_validated() -> None:
    solver = ScriptedSolver(SOLUTIONS)
    model = SearchChatModel(
        strategy="beam-search", solver=solver, verifier=lambda p, s: 0.5, n=4, beam_width=2
    )
    assert model.strategy_kwargs == {"n": 4, "beam_width": 2}
    with pytest.raises(ConfigError, match="multiple of beam_width"):
        SearchChatModel(strategy="beam_search", solver=solver, verifier=lambda p, s: 0.5, n=3)
    with pytest.raises(ConfigError, match="unknown strategy"):
        SearchChatModel(strategy="tree_of_thoughts", solver=solver)
    with pytest.raises(ConfigError):
        SearchChatModel(strategy="best_of_n", solver=solver, beam_width=2)  # not a BestOfN knob


def test_strategy_settings_can_be_bound_per_call() -> None:
    solver = ScriptedSolver(SOLUTIONS)
    model = SearchChatModel(
        strategy="best_of_n", solver=solver, n=2, selection="majority", early_stop=False
    )
    model.bind(n=5).invoke(PROBLEM)
    assert [r.n for r in solver.requests] == [5]
    model.invoke(PROBLEM)
    assert [r.n for r in solver.requests] == [5, 2]


def test_stop_cuts_the_final_answer() -> None:
    model = majority(ScriptedSolver(SOLUTIONS))
    assert model.invoke(PROBLEM, stop=["\n\n"]).content == "2 + 2 = 4"


def test_drops_into_a_chain() -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "Solve: {question}")])
    chain = prompt | majority(ScriptedSolver(SOLUTIONS)) | StrOutputParser()
    assert chain.invoke({"question": PROBLEM}) == SOLUTIONS[0]


def test_candidate_calls_are_children_of_the_chat_model_run() -> None:
    collector = RunCollectorCallbackHandler()
    message = majority(RecordingChatModel(responses=SOLUTIONS)).invoke(
        PROBLEM, config={"callbacks": [collector]}
    )
    (root,) = collector.traced_runs
    assert root.name == "SearchChatModel"
    children = [run for run in walk(root) if run is not root]
    calls = message.response_metadata["sal"]["usage"]["generation_calls"]
    assert len(children) == calls == 3
    assert {run.parent_run_id for run in children} == {root.id}


def _streamed_messages(model: SearchChatModel) -> list[BaseMessage]:
    def think(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("think", think)
    graph.add_edge(START, "think")
    graph.add_edge("think", END)
    app = graph.compile()
    return [
        message
        for message, _meta in app.stream({"messages": [("human", PROBLEM)]}, stream_mode="messages")
    ]


def test_langgraph_messages_stream_shows_only_the_final_answer() -> None:
    # FakeListChatModel streams token by token when a streaming handler is attached, so any
    # candidate call LangGraph did not skip would show up as chunks here.
    solver = FakeListChatModel(responses=SOLUTIONS)
    streamed = _streamed_messages(majority(solver))
    _assert_one_streamed_answer(streamed)


def _assert_one_streamed_answer(streamed: list[BaseMessage]) -> None:
    """Only the SearchChatModel's answer was streamed, in several deltas of one message."""
    assert len(streamed) > 1
    assert all(isinstance(m, AIMessageChunk) for m in streamed)
    assert len({m.id for m in streamed}) == 1  # one run: no candidate leaked
    assert "".join(m.text for m in streamed) in FOURS
    assert streamed[-1].response_metadata["sal"]["answer"] == "4"


def test_langgraph_messages_stream_traces_candidates_under_the_search_run() -> None:
    """Streamed with stream_mode="messages", the trace still nests every candidate call."""
    model = majority(RecordingChatModel(responses=SOLUTIONS))

    def think(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("think", think)
    graph.add_edge(START, "think")
    graph.add_edge("think", END)
    collector = RunCollectorCallbackHandler()
    streamed = list(
        graph.compile().stream(
            {"messages": [("human", PROBLEM)]},
            stream_mode="messages",
            config={"callbacks": [collector]},
        )
    )
    assert streamed
    runs = [run for root in collector.traced_runs for run in walk(root)]
    (search,) = [run for run in runs if run.name == "SearchChatModel"]
    assert any(run.name == "think" and search.parent_run_id == run.id for run in runs)
    candidates = [run for run in walk(search) if run is not search]
    assert len(candidates) == 3
    assert {run.parent_run_id for run in candidates} == {search.id}
    assert all("sal_candidate" in run.tags for run in candidates)


def test_without_the_nostream_tag_candidates_would_leak() -> None:
    # The control for the test above: the same graph, candidates not tagged. (They arrive whole:
    # the solver never streams, so LangGraph emits each when its call ends.)
    solver = LangChainSolver(FakeListChatModel(responses=SOLUTIONS), tags=())
    streamed = _streamed_messages(majority(solver))
    whole = [m for m in streamed if not isinstance(m, AIMessageChunk)]
    assert len(whole) == 3  # the candidates, each emitted when its call ends
    assert len({m.id for m in streamed if isinstance(m, AIMessageChunk)}) == 1  # the answer


async def test_langgraph_async_messages_stream_shows_only_the_final_answer() -> None:
    model = majority(FakeListChatModel(responses=SOLUTIONS))

    async def think(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("think", think)
    graph.add_edge(START, "think")
    graph.add_edge("think", END)
    streamed = [
        message
        async for message, _meta in graph.compile().astream(
            {"messages": [("human", PROBLEM)]}, stream_mode="messages"
        )
    ]
    _assert_one_streamed_answer(streamed)
