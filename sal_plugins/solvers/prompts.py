"""Prompt layout shared by every solver adapter.

One place decides how a problem and a partial solution become chat messages or raw text, so the
OpenAI, llama.cpp, LangChain and LlamaIndex adapters all send identical prefixes (which keeps the
server's prefix cache hitting across calls of one search).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypedDict

from sal_plugins.solvers.base import ContinuationMode, GenerationRequest

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "INSTRUCTED_CONTINUATION",
    "ChatMessage",
    "PromptTemplate",
    "chat_messages",
    "chatml",
    "completion_prompt",
]

DEFAULT_SYSTEM_PROMPT = (
    "Solve the following math problem efficiently and clearly.\n\n"
    "Think step by step and separate the steps with a blank line.\n\n"
    "Always conclude with:\n\n"
    "Therefore, the final answer is: $\\boxed{answer}$.\n\n"
    "Where [answer] is just the final number or expression that solves the problem."
)
"""The system prompt used when a strategy is given none (after search-and-learn's math prompt)."""

INSTRUCTED_CONTINUATION = (
    "{problem}\n\n"
    "Here is the start of a solution:\n"
    "<partial_solution>\n{partial}</partial_solution>\n\n"
    "Continue this solution. Write only what comes next, without repeating the steps above."
)
"""User turn for ``"instructed"`` continuation; ``{problem}`` and ``{partial}`` are filled in."""


class ChatMessage(TypedDict):
    """A chat message in the OpenAI wire shape."""

    role: str
    content: str


PromptTemplate = Callable[[Sequence[ChatMessage], bool], str]
"""Renders messages to raw text: ``template(messages, continue_final_message) -> str``.

With ``continue_final_message`` the last (assistant) message is left open for the model to continue;
otherwise a new assistant turn is opened.
"""


def chat_messages(
    request: GenerationRequest,
    mode: ContinuationMode,
    *,
    instructed_template: str = INSTRUCTED_CONTINUATION,
) -> list[ChatMessage]:
    """The chat messages for a request.

    With ``"native"`` or ``"completion"`` mode the partial solution is the final assistant message (to
    be continued); with ``"instructed"`` it goes inside the user turn.
    """
    messages: list[ChatMessage] = []
    if request.system_prompt:
        messages.append({"role": "system", "content": request.system_prompt})
    partial = request.prefix_text
    if not partial:
        messages.append({"role": "user", "content": request.problem})
    elif mode == "instructed":
        content = instructed_template.format(problem=request.problem, partial=partial)
        messages.append({"role": "user", "content": content})
    else:
        messages.append({"role": "user", "content": request.problem})
        messages.append({"role": "assistant", "content": partial})
    return messages


def chatml(messages: Sequence[ChatMessage], continue_final_message: bool) -> str:
    """ChatML, the template of SmolLM2, Qwen and many other open models."""
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    if continue_final_message and messages and messages[-1]["role"] == "assistant":
        last = messages[-1]
        parts[-1] = f"<|im_start|>{last['role']}\n{last['content']}"
    else:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def completion_prompt(request: GenerationRequest, template: PromptTemplate) -> str:
    """Raw text for ``/v1/completions``: the chat template with the partial solution left open."""
    messages = chat_messages(request, "completion")
    return template(messages, bool(request.prefix_steps))
