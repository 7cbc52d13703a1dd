"""search_tool: agents call it, and search progress reaches the agent's event stream."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from li_fakes import PROBLEM, SOLUTIONS, ScriptedLLM, prefers_four
from llama_index.core.agent.workflow import (
    AgentWorkflow,
    FunctionAgent,
    ReActAgent,
    ToolCallResult,
)
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context, StartEvent, StopEvent, Workflow, step
from sal_plugins.errors import ConfigError
from sal_plugins.results import SearchResult
from sal_plugins.solvers import ScriptedSolver

from llama_index_sal import SearchProgressEvent, search_tool


def tool(**kwargs: Any) -> FunctionTool:
    return search_tool(
        "best_of_n",
        solver=ScriptedSolver(SOLUTIONS),
        verifier=prefers_four(),
        n=2,
        seed=0,
        **kwargs,
    )


def calls_the_tool_then_answers(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
    """A function-calling model: asks for the search tool, then answers from its result."""
    results = [m for m in messages if m.role == MessageRole.TOOL]
    if not results:
        call = ToolCallBlock(
            tool_call_id="call-1", tool_name="solve_with_search", tool_kwargs={"problem": PROBLEM}
        )
        return ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])
    return ChatMessage(role=MessageRole.ASSISTANT, content=f"Solved: {results[-1].content}")


def test_the_schema_shows_only_the_problem() -> None:
    search = tool()

    schema = search.metadata.get_parameters_dict()

    assert search.metadata.name == "solve_with_search"
    assert search.requires_context
    assert list(schema["properties"]) == ["problem"]
    assert schema["required"] == ["problem"]
    assert "best_of_n" in search.metadata.description


async def test_function_agent_streams_search_progress_and_uses_the_result() -> None:
    llm = MockFunctionCallingLLM(response_generator=calls_the_tool_then_answers)
    agent = FunctionAgent(tools=[tool(output="answer")], llm=llm)

    handler = agent.run(user_msg=PROBLEM)
    events = [event async for event in handler.stream_events()]
    response = await handler

    progress = [e for e in events if isinstance(e, SearchProgressEvent)]
    assert [progress[0].kind, progress[-1].kind] == ["search_started", "search_finished"]
    (result_event,) = [e for e in events if isinstance(e, ToolCallResult)]
    assert events.index(progress[-1]) < events.index(result_event)
    assert result_event.tool_output.content == "4"
    assert isinstance(result_event.tool_output.raw_output, SearchResult)
    assert "Solved: 4" in str(response)


async def test_agent_workflow_hands_the_context_to_the_tool() -> None:
    llm = MockFunctionCallingLLM(response_generator=calls_the_tool_then_answers)
    agent = FunctionAgent(name="solver", description="Solves problems.", tools=[tool()], llm=llm)
    workflow = AgentWorkflow(agents=[agent], root_agent="solver")

    handler = workflow.run(user_msg=PROBLEM)
    kinds = [e.kind async for e in handler.stream_events() if isinstance(e, SearchProgressEvent)]
    response = await handler

    assert kinds[0] == "search_started" and kinds[-1] == "search_finished"
    assert "$\\boxed{4}$" in str(response)


async def test_react_agent_uses_the_tool() -> None:
    def react(messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> str:
        transcript = "\n".join(m.content or "" for m in messages)
        conversation = transcript.split("## Current Conversation")[-1]  # past the instructions
        if "Observation:" not in conversation:
            arguments = json.dumps({"problem": PROBLEM})
            return (
                "Thought: I should solve this with the tool.\n"
                f"Action: solve_with_search\nAction Input: {arguments}\n"
            )
        return "Thought: I can answer without using any more tools.\nAnswer: 4"

    agent = ReActAgent(tools=[tool(output="answer")], llm=ScriptedLLM(reply=react))

    handler = agent.run(user_msg=PROBLEM)
    events = [event async for event in handler.stream_events()]
    response = await handler

    assert any(isinstance(e, SearchProgressEvent) for e in events)
    (result_event,) = [e for e in events if isinstance(e, ToolCallResult)]
    assert result_event.tool_output.content == "4"
    assert str(response).strip().endswith("4")


async def test_a_workflow_step_can_call_the_tool_with_its_context() -> None:
    search = tool(output="answer", name="math", description="Solves math.")

    class Caller(Workflow):
        @step
        async def ask(self, ctx: Context, ev: StartEvent) -> StopEvent:
            output = await search.acall(ctx=ctx, problem=ev.problem)
            return StopEvent(result=output.content)

    handler = Caller(timeout=None).run(problem=PROBLEM)
    kinds = [e.kind async for e in handler.stream_events() if isinstance(e, SearchProgressEvent)]

    assert await handler == "4"
    assert kinds[0] == "search_started" and kinds[-1] == "search_finished"
    assert search.metadata.name == "math"
    assert search.metadata.description == "Solves math."


def test_a_plain_call_runs_the_search_without_a_context() -> None:
    output = tool(output="answer").call(problem=PROBLEM)

    assert output.content == "4"
    assert isinstance(output.raw_output, SearchResult)
    assert output.raw_output.completions[0].answer == "4"
    assert output.raw_input == {"args": (), "kwargs": {"problem": PROBLEM}}


async def test_a_plain_async_call_runs_the_search_without_a_context() -> None:
    search = tool()

    output = await search.acall(problem=PROBLEM)
    called = search(problem=PROBLEM)  # the sync path, from inside a running event loop

    assert "$\\boxed{4}$" in output.content
    assert isinstance(output.raw_output, SearchResult)
    assert called.content == output.content


def test_predict_and_call_uses_the_tool() -> None:
    llm = MockFunctionCallingLLM(response_generator=calls_the_tool_then_answers)

    response = llm.predict_and_call([tool(output="answer")], user_msg=PROBLEM)

    assert response.response == "4"
    (source,) = response.sources
    assert source.tool_name == "solve_with_search" and not source.is_error
    assert isinstance(source.raw_output, SearchResult)


async def test_apredict_and_call_uses_the_tool() -> None:
    llm = MockFunctionCallingLLM(response_generator=calls_the_tool_then_answers)

    response = await llm.apredict_and_call([tool(output="answer")], user_msg=PROBLEM)

    assert response.response == "4"
    assert not response.sources[0].is_error


def test_bad_arguments_raise_config_errors() -> None:
    with pytest.raises(ConfigError):
        search_tool("best_of_n", solver=ScriptedSolver(SOLUTIONS), n=2, beam_width=3)
    with pytest.raises(ConfigError):
        tool(output="xml")
