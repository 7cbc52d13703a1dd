"""The one rule that reads a problem out of a conversation (every chat surface uses it)."""

from __future__ import annotations

import pytest

from sal_plugins.conversation import (
    TOOL_RESULTS_HEADER,
    Problem,
    ToolCall,
    Turn,
    problem_from_conversation,
    tool_results,
)
from sal_plugins.errors import InputError

ADD = ToolCall("add", {"a": 2, "b": 2}, "call-add")


def test_a_single_user_turn_is_the_problem() -> None:
    assert problem_from_conversation([Turn("user", "What is 2 + 2?")]) == Problem("What is 2 + 2?")


def test_the_last_user_turn_is_the_problem_and_earlier_turns_are_left_out() -> None:
    problem = problem_from_conversation(
        [
            Turn("user", "I have 2 apples."),
            Turn("assistant", "Noted."),
            Turn("user", "I get 2 more. How many now?"),
        ]
    )
    assert problem == Problem("I get 2 more. How many now?")


def test_system_turns_become_the_system_prompt_wherever_they_stand() -> None:
    problem = problem_from_conversation(
        [
            Turn("system", "Be brief."),
            Turn("user", "q"),
            Turn("system", "   "),  # blank: no part of the prompt
            Turn("system", "Use integers."),
        ]
    )
    assert problem.system_prompt == "Be brief.\n\nUse integers."


def test_tool_results_after_the_question_are_appended_with_their_calls() -> None:
    lookup = ToolCall("lookup", {"q": "x", "lang": "fr"}, "call-2")
    problem = problem_from_conversation(
        [
            Turn("user", "An earlier question"),
            Turn("assistant", "", (ToolCall("add", {"a": 1, "b": 1}, "old"),)),
            Turn("tool", "2", tool_call_id="old"),
            Turn("user", "What is 2 + 2?"),
            Turn("assistant", "", (ADD, lookup)),
            Turn("tool", "4", tool_call_id="call-add"),
            Turn("tool", "not found", tool_call_id="call-2", failed=True),
        ]
    )
    assert problem.text == (
        "What is 2 + 2?\n\n"
        "Tool calls made for this question and their results:\n"
        "- add(a=2, b=2): 4\n"
        '- lookup(q="x", lang="fr") failed: not found'
    )


def test_a_result_whose_call_is_unknown_shows_the_tool_name() -> None:
    turns = [
        Turn("tool", "4", tool_call_id="gone", tool_name="add"),
        Turn("tool", "?", tool_name=None),
    ]
    assert tool_results(turns) == f"{TOOL_RESULTS_HEADER}\n- add: 4\n- tool: ?"


def test_argument_values_are_written_as_json() -> None:
    call = ToolCall("f", {"s": "é", "n": None, "xs": [1, 2], "flag": True}, "1")
    text = tool_results([Turn("assistant", "", (call,)), Turn("tool", "ok", tool_call_id="1")])
    assert text.endswith('- f(s="é", n=null, xs=[1, 2], flag=true): ok')


def test_no_tool_turn_adds_nothing() -> None:
    assert tool_results([Turn("assistant", "", (ADD,))]) == ""


def test_a_conversation_without_a_user_turn_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no user message"):
        problem_from_conversation([Turn("system", "Be brief."), Turn("assistant", "Hi.")])


def test_an_unknown_role_is_an_input_error() -> None:
    with pytest.raises(InputError, match="role must be one of"):
        Turn("human", "q")  # type: ignore[arg-type]
