"""Search progress inside a LangGraph node reaches ``stream_mode="custom"``."""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from sal_plugins.events import SearchEvent, SearchFinished
from sal_plugins.solvers.scripted import ScriptedSolver

from langchain_sal import BestOfNRunnable, SearchChatModel
from tests.unit_tests.fakes import SOLUTIONS

PROBLEM = "What is 2 + 2?"


class QAState(TypedDict, total=False):
    question: str
    answer: str


def qa_graph() -> CompiledStateGraph[Any, Any, Any, Any]:
    search = BestOfNRunnable(
        solver=ScriptedSolver(SOLUTIONS), n=3, selection="majority", seed=0, output="answer"
    )
    graph = StateGraph(QAState)
    graph.add_node("solve", search | RunnableLambda(lambda answer: {"answer": answer}))
    graph.add_edge(START, "solve")
    graph.add_edge("solve", END)
    return graph.compile()


def check_search_events(custom: list[Any]) -> None:
    names = [chunk["name"] for chunk in custom]
    assert names[0] == "sal.search_started" and names[-1] == "sal.search_finished"
    assert "sal.candidates_generated" in names
    assert all(isinstance(chunk["data"], SearchEvent) for chunk in custom)
    assert [chunk["name"] for chunk in custom] == ["sal." + c["data"].kind for c in custom]
    finished = custom[-1]["data"]
    assert isinstance(finished, SearchFinished) and finished.result.answer == "4"


def test_a_node_streams_search_progress_to_stream_mode_custom() -> None:
    custom = list(qa_graph().stream({"question": PROBLEM}, stream_mode="custom"))

    check_search_events(custom)


def test_custom_and_updates_together_give_progress_then_the_answer() -> None:
    chunks = list(qa_graph().stream({"question": PROBLEM}, stream_mode=["custom", "updates"]))

    modes = [mode for mode, _ in chunks]
    check_search_events([chunk for mode, chunk in chunks if mode == "custom"])
    assert [chunk for mode, chunk in chunks if mode == "updates"] == [{"solve": {"answer": "4"}}]
    assert modes[-1] == "updates"  # the node's update follows its search's progress


async def test_an_async_graph_streams_search_progress_too() -> None:
    custom = [
        chunk async for chunk in qa_graph().astream({"question": PROBLEM}, stream_mode="custom")
    ]

    check_search_events(custom)


async def test_a_search_chat_model_node_streams_search_progress() -> None:
    model = SearchChatModel(
        strategy="best_of_n", solver=ScriptedSolver(SOLUTIONS), n=3, selection="majority", seed=0
    )

    async def respond(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("respond", respond)
    graph.add_edge(START, "respond")
    graph.add_edge("respond", END)
    stream = graph.compile().astream({"messages": [("human", PROBLEM)]}, stream_mode="custom")

    check_search_events([chunk async for chunk in stream])
