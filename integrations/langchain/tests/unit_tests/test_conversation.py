"""A LangChain history becomes the same problem as the same history in LlamaIndex.

``integrations/llama_index/tests/unit_tests/test_conversation.py`` feeds LlamaIndex the same
conversation and expects the same :data:`EXPECTED` problem: one rule, in the core.
"""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from sal_plugins.conversation import Problem, ToolCall, Turn, problem_from_conversation
from sal_plugins.solvers.scripted import ScriptedSolver

from langchain_sal import BestOfNRunnable, SearchChatModel
from langchain_sal._search import parse_input, turns_of
from tests.unit_tests.fakes import SOLUTIONS

PROBLEM = "What is 2 + 2?"

EXPECTED = Problem(
    text=(
        f"{PROBLEM}\n\nTool calls made for this question and their results:\n"
        '- add(a=2, b=2): 4\n- lookup(q="x"): not found'
    ),
    system_prompt="Be brief.",
)
"""The problem of the shared history (the same literal in the LlamaIndex test)."""

HISTORY = [
    SystemMessage("Be brief."),
    HumanMessage("An earlier question"),
    AIMessage("", tool_calls=[{"name": "add", "args": {"a": 1, "b": 1}, "id": "old"}]),
    ToolMessage("2", tool_call_id="old"),
    AIMessage("It is 2."),
    HumanMessage(PROBLEM),
    AIMessage(
        "",
        tool_calls=[
            {"name": "add", "args": {"a": 2, "b": 2}, "id": "call-add"},
            {"name": "lookup", "args": {"q": "x"}, "id": "call-2"},
        ],
    ),
    ToolMessage("4", tool_call_id="call-add"),
    ToolMessage("not found", tool_call_id="call-2"),
]


def test_the_shared_history_becomes_the_shared_problem() -> None:
    assert parse_input(HISTORY) == EXPECTED


def test_messages_become_neutral_turns() -> None:
    turns = turns_of(HISTORY)
    assert [t.role for t in turns] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
        "tool",
        "tool",
    ]
    assert turns[6].tool_calls[0] == ToolCall("add", {"a": 2, "b": 2}, "call-add")
    assert turns[8] == Turn("tool", "not found", tool_call_id="call-2")
    assert problem_from_conversation(turns) == EXPECTED


def test_a_failed_tool_message_is_flagged() -> None:
    failed = [*HISTORY[:-1], ToolMessage("not found", tool_call_id="call-2", status="error")]
    assert parse_input(failed).text.endswith('- lookup(q="x") failed: not found')


def test_the_runnable_and_the_chat_model_search_the_same_problem() -> None:
    for make in (
        lambda solver: BestOfNRunnable(solver=solver, n=1),
        lambda solver: SearchChatModel(strategy="best_of_n", solver=solver, n=1),
    ):
        solver = ScriptedSolver(SOLUTIONS)
        make(solver).invoke(HISTORY)
        (request,) = solver.requests
        assert (request.problem, request.system_prompt) == (EXPECTED.text, "Be brief.")
