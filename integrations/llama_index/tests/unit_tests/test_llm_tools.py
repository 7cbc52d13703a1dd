"""SearchLLM with tools: the solver LLM picks the tools, the search writes the answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from li_fakes import PROBLEM, RIGHT, ScriptedLLM, ToolCallingLLM, solution_llm
from llama_index.core.agent.workflow import AgentStream, FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel
from sal_plugins.errors import ConfigError

from llama_index_sal import SearchLLM

ADD = ToolSelection(tool_id="call-add", tool_name="add", tool_kwargs={"a": 2, "b": 2})


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


TOOL = FunctionTool.from_defaults(fn=add)


def searching(solver: object) -> SearchLLM:
    return SearchLLM("best_of_n", solver=solver, n=2, selection="majority", seed=0)


def test_a_function_calling_solver_makes_a_function_calling_llm() -> None:
    assert searching(ToolCallingLLM()).metadata.is_function_calling_model
    assert not searching(solution_llm()).metadata.is_function_calling_model


async def test_a_tool_call_is_returned_without_a_search() -> None:
    solver = ToolCallingLLM(decisions=[[ADD]])
    llm = searching(solver)
    response = await llm.achat_with_tools([TOOL], user_msg=PROBLEM)
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == [ADD]
    assert len(solver.calls) == 1  # the decision only


async def test_an_answer_runs_the_search_on_the_question_and_its_tool_results() -> None:
    solver = ToolCallingLLM(decisions=[[]], solutions=[RIGHT])
    history = [
        ChatMessage(role=MessageRole.USER, content=PROBLEM),
        ChatMessage(
            role=MessageRole.ASSISTANT, content="", additional_kwargs={"tool_calls": [ADD]}
        ),
        ChatMessage(
            role=MessageRole.TOOL, content="4", additional_kwargs={"tool_call_id": "call-add"}
        ),
    ]
    response = await searching(solver).achat_with_tools([TOOL], chat_history=history)
    assert response.additional_kwargs["answer"] == "4"
    decision, *candidates = solver.calls
    assert decision[0] == history
    assert len(candidates) == 2
    problem = candidates[0][0][-1].content
    assert f"{PROBLEM}\n\nTool calls made for this question and their results:\n" in problem
    assert "- add(a=2, b=2): 4" in problem


def test_sync_and_streaming_tool_calls() -> None:
    solver = ToolCallingLLM(decisions=[[ADD], []], solutions=[RIGHT])
    llm = searching(solver)
    (chunk,) = list(llm.stream_chat_with_tools([TOOL], user_msg=PROBLEM))
    assert llm.get_tool_calls_from_response(chunk, error_on_no_tool_call=False) == [ADD]
    answer = llm.chat_with_tools([TOOL], user_msg=PROBLEM)
    assert answer.additional_kwargs["answer"] == "4"


async def test_a_solver_that_cannot_call_tools_is_refused() -> None:
    llm = searching(solution_llm())
    with pytest.raises(ConfigError, match="function-calling"):
        await llm.achat_with_tools([TOOL], user_msg=PROBLEM)
    plain = ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content="4"))
    assert llm.get_tool_calls_from_response(plain, error_on_no_tool_call=False) == []


@pytest.mark.parametrize("streaming", [False, True])
async def test_function_agent_calls_the_tool_then_answers_with_the_search(streaming: bool) -> None:
    solver = ToolCallingLLM(decisions=[[ADD], []], solutions=[RIGHT])
    agent = FunctionAgent(tools=[TOOL], llm=searching(solver), streaming=streaming)
    output = await agent.run(user_msg=PROBLEM)
    assert [call.tool_name for call in output.tool_calls] == ["add"]
    assert output.tool_calls[0].tool_output.raw_output == 4
    assert "\\boxed{4}" in str(output.response.content)
    searched = solver.calls[-1][0][-1].content
    assert "- add(a=2, b=2): 4" in searched


async def test_a_streaming_function_agent_streams_the_searched_answer_in_deltas() -> None:
    solver = ToolCallingLLM(decisions=[[ADD], []], solutions=[RIGHT])
    agent = FunctionAgent(tools=[TOOL], llm=searching(solver), streaming=True)

    handler = agent.run(user_msg=PROBLEM)
    deltas = [e.delta async for e in handler.stream_events() if isinstance(e, AgentStream)]
    output = await handler

    answer_deltas = [delta for delta in deltas if delta]
    assert len(answer_deltas) > 2
    assert "".join(answer_deltas) == RIGHT == output.response.content


class Answer(BaseModel):
    """The final answer."""

    value: int


FILL = ToolSelection(tool_id="call-answer", tool_name="Answer", tool_kwargs={"value": 4})
ASK = PromptTemplate("Solve: {question}")


def test_structured_predict_searches_then_fills_the_schema_from_the_winner() -> None:
    solver = ToolCallingLLM(decisions=[[FILL]], solutions=[RIGHT])
    answer = searching(solver).structured_predict(Answer, ASK, question=PROBLEM)
    assert answer == Answer(value=4)
    *candidates, extraction = solver.calls
    assert len(candidates) == 2  # the search ran first, on the formatted prompt
    assert candidates[0][0][-1].content.endswith(f"Solve: {PROBLEM}")
    shown = extraction[0][-1].content
    assert "Fill in the requested fields" in shown and RIGHT in shown
    assert "tools" in extraction[1]  # the solver LLM's own function calling


async def test_async_and_streamed_structured_predict() -> None:
    solver = ToolCallingLLM(decisions=[[FILL], [FILL]], solutions=[RIGHT])
    llm = searching(solver)
    assert await llm.astructured_predict(Answer, ASK, question=PROBLEM) == Answer(value=4)
    streamed = [
        a async for a in await llm.astream_structured_predict(Answer, ASK, question=PROBLEM)
    ]
    assert streamed == [Answer(value=4)]


def test_as_structured_llm_goes_through_the_search() -> None:
    solver = ToolCallingLLM(decisions=[[FILL]], solutions=[RIGHT])
    structured = searching(solver).as_structured_llm(Answer)
    response = structured.chat([ChatMessage(role=MessageRole.USER, content=PROBLEM)])
    assert response.raw == Answer(value=4)
    assert len(solver.calls) == 2 + 1


def test_a_text_only_solver_fills_the_schema_in_as_json() -> None:
    def reply(messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> str:
        asked = messages[-1].content or ""
        return '{"value": 4}' if "Fill in the requested fields" in asked else RIGHT

    solver = ScriptedLLM(reply=reply)
    assert searching(solver).structured_predict(Answer, ASK, question=PROBLEM) == Answer(value=4)
    assert len(solver.calls) + len(solver.completions) == 2 + 1
