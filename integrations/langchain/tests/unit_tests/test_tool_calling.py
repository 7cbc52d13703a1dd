"""SearchChatModel with tools: the solver model picks the tools, the search writes the answer."""

from __future__ import annotations

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langgraph.prebuilt import create_react_agent
from pydantic import BaseModel
from sal_plugins.errors import ConfigError
from sal_plugins.solvers.scripted import ScriptedSolver

from langchain_sal import TOOL_DECISION_TAGS, LangChainSolver, SearchChatModel
from langchain_sal._search import parse_input
from langchain_sal.chat_models import EXTRACTION_PROMPT
from tests.unit_tests.fakes import SOLUTIONS, ToolCallingChatModel

PROBLEM = "What is 2 + 2?"
FOURS = {SOLUTIONS[0], SOLUTIONS[2]}
ADD_CALL = {"name": "add", "args": {"a": 2, "b": 2}, "id": "call-add"}


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def searching(solver: ToolCallingChatModel | LangChainSolver) -> SearchChatModel:
    return SearchChatModel(strategy="best_of_n", solver=solver, n=3, selection="majority")


def test_a_tool_call_is_returned_without_a_search() -> None:
    solver = ToolCallingChatModel(responses=SOLUTIONS, decisions=[[ADD_CALL]])
    message = searching(solver).bind_tools([add]).invoke(PROBLEM)
    assert isinstance(message, AIMessage)
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("add", {"a": 2, "b": 2})]
    assert "sal" not in message.response_metadata
    assert len(solver.calls) == 1  # the decision only
    (binding,) = solver.bindings
    assert [t["function"]["name"] for t in binding["tools"]] == ["add"]


def test_an_answer_runs_the_search_on_the_question_and_the_tool_results() -> None:
    solver = ToolCallingChatModel(responses=SOLUTIONS, decisions=[[]])
    conversation = [
        HumanMessage(PROBLEM),
        AIMessage("", tool_calls=[ADD_CALL]),
        ToolMessage("4", tool_call_id="call-add"),
    ]
    message = searching(solver).bind_tools([add]).invoke(conversation)
    assert message.content in FOURS
    assert message.response_metadata["sal"]["answer"] == "4"
    decision, *candidates = solver.calls
    assert decision["messages"] == conversation  # the decision sees the whole conversation
    assert len(candidates) == 3
    problem = candidates[0]["messages"][-1].content
    assert PROBLEM in problem
    assert "add(a=2, b=2): 4" in problem
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 40  # the decision's 10 + three candidates'


async def test_async_tool_calling() -> None:
    solver = ToolCallingChatModel(responses=SOLUTIONS, decisions=[[ADD_CALL], []])
    bound = searching(solver).bind_tools([add])
    first = await bound.ainvoke(PROBLEM)
    assert first.tool_calls
    second = await bound.ainvoke(PROBLEM)
    assert second.response_metadata["sal"]["answer"] == "4"


def test_tool_choice_and_other_arguments_reach_the_solver_model() -> None:
    solver = ToolCallingChatModel(responses=SOLUTIONS, decisions=[[ADD_CALL]])
    searching(solver).bind_tools([add], tool_choice="add", parallel_tool_calls=False).invoke(
        PROBLEM
    )
    (binding,) = solver.bindings
    assert (binding["tool_choice"], binding["parallel_tool_calls"]) == ("add", False)


def test_strategy_settings_still_bind_alongside_tools() -> None:
    solver = ToolCallingChatModel(responses=SOLUTIONS, decisions=[[]])
    searching(solver).bind_tools([add]).bind(n=5, early_stop=False).invoke(PROBLEM)
    assert len(solver.calls) == 1 + 5
    assert "n" not in solver.bindings[0]


def test_a_wrapped_solver_model_calls_the_tools() -> None:
    solver = ToolCallingChatModel(responses=SOLUTIONS, decisions=[[ADD_CALL]])
    message = searching(LangChainSolver(solver)).bind_tools([add]).invoke(PROBLEM)
    assert message.tool_calls


def test_a_solver_that_cannot_call_tools_is_refused_at_bind_time() -> None:
    model = SearchChatModel(strategy="best_of_n", solver=ScriptedSolver(SOLUTIONS), n=2)
    with pytest.raises(ConfigError, match="needs a LangChain chat model as solver"):
        model.bind_tools([add])


def test_the_decision_is_a_child_run_tagged_nostream() -> None:
    solver = ToolCallingChatModel(responses=SOLUTIONS, decisions=[[]])
    collector = RunCollectorCallbackHandler()
    searching(solver).bind_tools([add]).invoke(PROBLEM, config={"callbacks": [collector]})
    (root,) = collector.traced_runs
    children = root.child_runs
    assert {run.parent_run_id for run in children} == {root.id}
    decisions = [run for run in children if "sal_tool_decision" in (run.tags or [])]
    assert len(decisions) == 1
    assert set(TOOL_DECISION_TAGS) <= set(decisions[0].tags or [])
    assert len(children) == 1 + 3


def test_tool_results_are_read_into_the_problem() -> None:
    failing = {"name": "lookup", "args": {"q": "x"}, "id": "call-2"}
    problem = parse_input(
        [
            HumanMessage("An earlier question"),
            AIMessage("", tool_calls=[{"name": "add", "args": {"a": 1, "b": 1}, "id": "old"}]),
            ToolMessage("2", tool_call_id="old"),
            ("system", "Be brief."),
            HumanMessage(PROBLEM),
            AIMessage("", tool_calls=[ADD_CALL, failing]),
            ToolMessage("4", tool_call_id="call-add"),
            ToolMessage("not found", tool_call_id="call-2", status="error"),
        ]
    )
    assert problem.text == (
        f"{PROBLEM}\n\nTool calls made for this question and their results:\n"
        '- add(a=2, b=2): 4\n- lookup(q="x") failed: not found'
    )
    assert problem.system_prompt == "Be brief."


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_create_react_agent_calls_the_tool_then_answers_with_the_search() -> None:
    solver = ToolCallingChatModel(responses=SOLUTIONS, decisions=[[ADD_CALL], []])
    agent = create_react_agent(searching(solver), [add])
    state = agent.invoke({"messages": [("human", PROBLEM)]})
    tool_call, tool_result, answer = state["messages"][1:]
    assert tool_call.tool_calls[0]["name"] == "add"
    assert isinstance(tool_result, ToolMessage) and tool_result.text == "4"
    assert answer.content in FOURS
    assert answer.response_metadata["sal"]["answer"] == "4"
    assert "add(a=2, b=2): 4" in solver.calls[-1]["messages"][-1].content


async def test_create_agent_streams_the_tool_call_and_the_answer_but_no_candidate() -> None:
    solver = ToolCallingChatModel(responses=SOLUTIONS, decisions=[[ADD_CALL], []])
    agent = create_agent(searching(solver), [add], system_prompt="Use the tools.")
    streamed = [
        message
        async for message, _meta in agent.astream(
            {"messages": [("human", PROBLEM)]}, stream_mode="messages"
        )
    ]
    # The tool decision as one chunk, the tool's result, then the answer in several deltas.
    kinds = [type(m).__name__ for m in streamed]
    assert kinds[:2] == ["AIMessageChunk", "ToolMessage"]
    assert streamed[0].tool_call_chunks[0]["name"] == "add"
    answer = streamed[2:]
    assert len(answer) > 1 and all(isinstance(m, AIMessageChunk) for m in answer)
    assert len({m.id for m in answer}) == 1
    assert "".join(m.text for m in answer) in FOURS
    system = [c["messages"][0] for c in solver.calls[-3:]]
    assert all(m.content == "Use the tools." for m in system)


class Answer(BaseModel):
    """The final answer."""

    value: int


def test_structured_output_searches_then_fills_the_schema_from_the_winner() -> None:
    fill = {"name": "Answer", "args": {"value": 4}, "id": "call-answer"}
    solver = ToolCallingChatModel(responses=SOLUTIONS, decisions=[[fill]])
    answer = searching(solver).with_structured_output(Answer).invoke(PROBLEM)
    assert answer == Answer(value=4)
    *candidates, extraction = solver.calls
    assert len(candidates) == 3  # the search ran first
    system, shown = extraction["messages"]
    assert system.content == EXTRACTION_PROMPT
    assert PROBLEM in shown.content
    assert any(solution in shown.content for solution in FOURS)  # the winner, not a loser
    assert extraction["tool_choice"] is not None  # the solver model's own structured output


async def test_structured_output_with_the_raw_replies() -> None:
    fill = {"name": "Answer", "args": {"value": 4}, "id": "call-answer"}
    solver = ToolCallingChatModel(responses=SOLUTIONS, decisions=[[fill]])
    out = await searching(solver).with_structured_output(Answer, include_raw=True).ainvoke(PROBLEM)
    assert out["parsed"] == Answer(value=4) and out["parsing_error"] is None
    assert out["raw"].tool_calls[0]["name"] == "Answer"
    assert out["search"].response_metadata["sal"]["answer"] == "4"


def test_structured_output_needs_a_chat_model_solver() -> None:
    model = SearchChatModel(strategy="best_of_n", solver=ScriptedSolver(SOLUTIONS), n=2)
    with pytest.raises(ConfigError, match="structured output"):
        model.with_structured_output(Answer)
