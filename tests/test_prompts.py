"""Prompt layout shared by every solver adapter (sal_plugins.solvers.prompts), no network."""

from __future__ import annotations

from sal_plugins.solvers.base import GenerationRequest
from sal_plugins.solvers.prompts import (
    DEFAULT_SYSTEM_PROMPT,
    chat_messages,
    chatml,
    completion_prompt,
)

FRESH = GenerationRequest(problem="What is 2 + 3?", system_prompt="Be brief.")
PARTIAL = GenerationRequest(
    problem="What is 2 + 3?", prefix_steps=("Add 2 and 3.", "2 + 3 = 5"), system_prompt="Be brief."
)


def test_prefix_text_ends_with_the_delimiter() -> None:
    assert PARTIAL.prefix_text == "Add 2 and 3.\n\n2 + 3 = 5\n\n"
    assert FRESH.prefix_text == ""
    custom = GenerationRequest(problem="p", prefix_steps=("a", "b"), step_delimiter="\n")
    assert custom.prefix_text == "a\nb\n"


def test_fresh_request_is_system_then_user_in_every_mode() -> None:
    for mode in ("native", "completion", "instructed"):
        assert chat_messages(FRESH, mode) == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2 + 3?"},
        ]


def test_no_system_message_without_a_system_prompt() -> None:
    request = GenerationRequest(problem="p")
    assert chat_messages(request, "native") == [{"role": "user", "content": "p"}]


def test_native_and_completion_put_the_partial_solution_in_a_final_assistant_turn() -> None:
    for mode in ("native", "completion"):
        messages = chat_messages(PARTIAL, mode)
        assert messages[-1] == {"role": "assistant", "content": PARTIAL.prefix_text}
        assert messages[-2] == {"role": "user", "content": "What is 2 + 3?"}


def test_instructed_puts_problem_and_partial_solution_in_the_user_turn() -> None:
    messages = chat_messages(PARTIAL, "instructed")
    assert [m["role"] for m in messages] == ["system", "user"]
    content = messages[-1]["content"]
    assert content.startswith("What is 2 + 3?")
    assert "<partial_solution>\nAdd 2 and 3.\n\n2 + 3 = 5\n\n</partial_solution>" in content
    assert "Write only what comes next" in content


def test_instructed_template_is_replaceable() -> None:
    messages = chat_messages(PARTIAL, "instructed", instructed_template="{problem}|{partial}")
    assert messages[-1]["content"] == "What is 2 + 3?|" + PARTIAL.prefix_text


def test_chatml_opens_a_new_assistant_turn_or_leaves_the_last_one_open() -> None:
    messages = chat_messages(PARTIAL, "completion")
    opened = chatml(messages, False)
    continued = chatml(messages, True)
    assert continued == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
        "<|im_start|>assistant\nAdd 2 and 3.\n\n2 + 3 = 5\n\n"
    )
    assert opened.endswith("2 + 3 = 5\n\n<|im_end|>\n<|im_start|>assistant\n")


def test_completion_prompt_continues_the_partial_solution_and_opens_a_fresh_one() -> None:
    assert completion_prompt(PARTIAL, chatml).endswith(
        "<|im_start|>assistant\nAdd 2 and 3.\n\n2 + 3 = 5\n\n"
    )
    assert completion_prompt(FRESH, chatml).endswith(
        "What is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_successive_steps_share_the_prompt_prefix() -> None:
    # Prefix caching on the server relies on step k+1's prompt extending step k's.
    one = GenerationRequest(problem="p", prefix_steps=("a",), system_prompt=DEFAULT_SYSTEM_PROMPT)
    two = GenerationRequest(
        problem="p", prefix_steps=("a", "b"), system_prompt=DEFAULT_SYSTEM_PROMPT
    )
    assert completion_prompt(two, chatml).startswith(completion_prompt(one, chatml))
