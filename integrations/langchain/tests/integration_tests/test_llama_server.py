"""langchain-sal against a real server: ChatOpenAI -> llama_cpp.server -> SmolLM2-135M-Instruct.

Few and tiny on purpose (n <= 2, at most 32 tokens per generation).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sal_plugins as sal
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langchain_core.tracers.schemas import Run
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, MessagesState, StateGraph
from pydantic import BaseModel
from sal_plugins.solvers.base import GenerationRequest

from langchain_sal import BeamSearchRunnable, BestOfNRunnable, LangChainSolver, SearchChatModel
from tests.integration_tests.conftest import MAX_TOKENS

pytestmark = pytest.mark.model

PROBLEM = "What is 2 + 3?"


def walk(run: Run) -> Iterator[Run]:
    yield run
    for child in run.child_runs:
        yield from walk(child)


def length_score(problem: str, steps: list[str]) -> float:
    """A cheap outcome score: prefer short solutions (the test checks plumbing, not accuracy)."""
    return 1.0 / (1.0 + len(" ".join(steps)))


async def test_solver_tops_up_n_by_fan_out_and_honours_stop(chat_model: ChatOpenAI) -> None:
    solver = LangChainSolver(chat_model)
    request = GenerationRequest(
        problem=PROBLEM, n=2, stop=("\n\n",), max_tokens=MAX_TOKENS, seed=1, temperature=0.7
    )
    response = await solver.generate(request)
    assert len(response.generations) == 2
    # llama.cpp's server returns one choice whatever n says: one n=2 call, one top-up call
    assert response.requests == 2
    assert all("\n\n" not in g.text for g in response.generations)
    assert all(g.stop_kind in ("unknown", "length") for g in response.generations)
    assert response.prompt_tokens > 0
    assert response.completion_tokens > 0


def test_prompt_search_parser_chain_nests_every_model_call(chat_model: ChatOpenAI) -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "Answer briefly: {question}")])
    search = BestOfNRunnable(
        solver=chat_model,
        verifier=length_score,
        n=2,
        selection="naive",
        max_tokens=MAX_TOKENS,
        seed=0,
        output="message",
    )
    collector = RunCollectorCallbackHandler()
    text = (prompt | search | StrOutputParser()).invoke(
        {"question": PROBLEM}, config={"callbacks": [collector]}
    )
    assert text.strip()
    (root,) = collector.traced_runs
    (search_run,) = [run for run in walk(root) if run.name == "BestOfNRunnable"]
    model_runs = [run for run in walk(root) if run.run_type == "llm"]
    assert len(model_runs) >= 2  # one per candidate (fan-out) plus the n=2 attempt
    assert {run.parent_run_id for run in model_runs} == {search_run.id}


async def test_astream_events_shows_progress(chat_model: ChatOpenAI) -> None:
    search = BeamSearchRunnable(
        solver=chat_model,
        verifier=length_score,
        n=2,
        beam_width=1,
        max_steps=2,
        max_tokens=MAX_TOKENS,
        seed=0,
    )
    kinds = []
    async for event in search.astream_events(PROBLEM, version="v2"):
        if event["event"] == "on_custom_event":
            kinds.append(event["name"])
        elif event["event"] == "on_chain_end" and event["name"] == "BeamSearchRunnable":
            result = event["data"]["output"]
    assert kinds[0] == "sal.search_started"
    assert kinds[-1] == "sal.search_finished"
    assert "sal.candidates_scored" in kinds
    assert isinstance(result, sal.SearchResult)
    assert result.usage.generation_calls >= 2


def test_search_chat_model_in_a_langgraph_graph(chat_model: ChatOpenAI) -> None:
    model = SearchChatModel(
        strategy="best_of_n",
        solver=chat_model,
        verifier=length_score,
        n=2,
        selection="naive",
        max_tokens=MAX_TOKENS,
        seed=0,
    )

    def think(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("think", think)
    graph.add_edge(START, "think")
    graph.add_edge("think", END)
    streamed = [
        message
        for message, _meta in graph.compile().stream(
            {"messages": [("human", PROBLEM)]}, stream_mode="messages"
        )
    ]
    # ChatOpenAI streams when LangGraph listens; the candidates are tagged "nostream", so only
    # the selected answer reaches the stream, in deltas of the SearchChatModel's one message.
    assert all(isinstance(m, AIMessageChunk) for m in streamed)
    assert len({m.id for m in streamed}) == 1
    assert streamed[-1].response_metadata["sal"]["candidates"] == 2


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_bound_tools_reach_the_server_and_come_back_as_tool_calls(chat_model: ChatOpenAI) -> None:
    # A forced tool choice: llama.cpp's server then constrains the reply to the tool's arguments
    # schema, so even the 135M model answers with a well-formed call.
    model = SearchChatModel(strategy="best_of_n", solver=chat_model, n=2, max_tokens=MAX_TOKENS)
    message = model.bind_tools([add], tool_choice="add").invoke(PROBLEM)
    assert isinstance(message, AIMessage)
    (call,) = message.tool_calls
    assert call["name"] == "add"
    assert set(call["args"]) == {"a", "b"}
    assert "sal" not in message.response_metadata  # a tool call, not a search answer


def test_search_chat_model_as_the_model_of_an_agent(chat_model: ChatOpenAI) -> None:
    # SmolLM2's chat template has no tool calling, so with tool_choice left to the model it
    # answers in text: the agent's turn ends with the search's answer.
    model = SearchChatModel(
        strategy="best_of_n",
        solver=chat_model,
        verifier=length_score,
        n=2,
        selection="naive",
        max_tokens=MAX_TOKENS,
        seed=0,
    )
    agent = create_agent(model, [add], system_prompt="Answer briefly.")
    state = agent.invoke({"messages": [("human", PROBLEM)]})
    answer = state["messages"][-1]
    assert isinstance(answer, AIMessage)
    assert answer.text
    summary = answer.response_metadata["sal"]
    assert summary["candidates"] == 2
    assert answer.usage_metadata is not None
    searched = summary["usage"]["prompt_tokens"] + summary["usage"]["completion_tokens"]
    assert answer.usage_metadata["total_tokens"] > searched  # the tool decision's tokens too


class Answer(BaseModel):
    """The final answer."""

    value: int


def test_structured_output_from_a_search_over_real_http(chat_model: ChatOpenAI) -> None:
    # method="function_calling": a forced tool choice, which llama.cpp's server constrains to the
    # schema, so the 135M model fills it in validly (its value need not be right).
    model = SearchChatModel(
        strategy="best_of_n", solver=chat_model, n=2, max_tokens=MAX_TOKENS, seed=0
    )
    structured = model.with_structured_output(Answer, method="function_calling", include_raw=True)
    out = structured.invoke(PROBLEM)
    assert isinstance(out["parsed"], Answer), out["parsing_error"]
    assert out["search"].response_metadata["sal"]["candidates"] >= 1


def test_searches_on_new_event_loops_reuse_no_connection_of_a_closed_one(
    chat_model: ChatOpenAI,
) -> None:
    """Each sync ``run`` and each ``asyncio.run`` is a new loop; with no retries, none may fail.

    langchain-openai caches one async HTTP client per base URL for every loop; a connection it
    kept from a closed loop made the next call on a new loop fail.
    """
    import asyncio

    solver = LangChainSolver(chat_model)
    search = sal.BestOfN(solver=solver, n=1, max_tokens=8, max_retries=0, seed=0)
    for _ in range(3):
        assert not search.run(PROBLEM).failures
        assert not asyncio.run(search.arun(PROBLEM)).failures
