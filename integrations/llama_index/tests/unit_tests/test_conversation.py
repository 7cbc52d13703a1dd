"""A LlamaIndex history becomes the same problem as the same history in LangChain.

``integrations/langchain/tests/unit_tests/test_conversation.py`` feeds LangChain the same
conversation and expects the same :data:`EXPECTED` problem: one rule, in the core.
"""

from __future__ import annotations

from li_fakes import RIGHT, SOLUTIONS, ToolCallingLLM
from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock, ToolCallBlock
from llama_index.core.llms.llm import ToolSelection
from sal_plugins.conversation import Problem, ToolCall
from sal_plugins.solvers import ScriptedSolver

from llama_index_sal import SearchLLM
from llama_index_sal._strategy import problem_from_messages, turns_of

PROBLEM = "What is 2 + 2?"

EXPECTED = Problem(
    text=(
        f"{PROBLEM}\n\nTool calls made for this question and their results:\n"
        '- add(a=2, b=2): 4\n- lookup(q="x"): not found'
    ),
    system_prompt="Be brief.",
)
"""The problem of the shared history (the same literal in the LangChain test)."""


def _calls(*selections: ToolSelection) -> ChatMessage:
    return ChatMessage(
        role=MessageRole.ASSISTANT, content="", additional_kwargs={"tool_calls": list(selections)}
    )


def _result(content: str, call_id: str) -> ChatMessage:
    return ChatMessage(
        role=MessageRole.TOOL, content=content, additional_kwargs={"tool_call_id": call_id}
    )


HISTORY = [
    ChatMessage(role=MessageRole.SYSTEM, content="Be brief."),
    ChatMessage(role=MessageRole.USER, content="An earlier question"),
    _calls(ToolSelection(tool_id="old", tool_name="add", tool_kwargs={"a": 1, "b": 1})),
    _result("2", "old"),
    ChatMessage(role=MessageRole.ASSISTANT, content="It is 2."),
    ChatMessage(role=MessageRole.USER, content=PROBLEM),
    _calls(
        ToolSelection(tool_id="call-add", tool_name="add", tool_kwargs={"a": 2, "b": 2}),
        ToolSelection(tool_id="call-2", tool_name="lookup", tool_kwargs={"q": "x"}),
    ),
    _result("4", "call-add"),
    _result("not found", "call-2"),
]


def test_the_shared_history_becomes_the_shared_problem() -> None:
    assert problem_from_messages(HISTORY) == EXPECTED


def test_tool_call_blocks_are_read_too() -> None:
    # llama-index-core 0.14's function-calling LLMs put their calls in ToolCallBlocks.
    blocks = ChatMessage(
        role=MessageRole.ASSISTANT,
        blocks=[
            TextBlock(text=""),
            ToolCallBlock(tool_call_id="call-add", tool_name="add", tool_kwargs='{"a": 2, "b": 2}'),
            ToolCallBlock(tool_call_id="call-2", tool_name="lookup", tool_kwargs={"q": "x"}),
        ],
    )
    history = [*HISTORY[:6], blocks, *HISTORY[7:]]
    assert turns_of(history)[6].tool_calls == (
        ToolCall("add", {"a": 2, "b": 2}, "call-add"),
        ToolCall("lookup", {"q": "x"}, "call-2"),
    )
    assert problem_from_messages(history) == EXPECTED


def test_the_tool_calling_llm_reads_its_own_calls() -> None:
    assert problem_from_messages(HISTORY, ToolCallingLLM()) == EXPECTED


def test_search_llm_chat_searches_the_shared_problem() -> None:
    solver = ScriptedSolver(SOLUTIONS)
    response = SearchLLM("best_of_n", solver=solver, n=1).chat(HISTORY)
    assert response.message.content in {RIGHT, *SOLUTIONS}
    (request,) = solver.requests
    assert (request.problem, request.system_prompt) == (EXPECTED.text, "Be brief.")
