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
    "EMBEDDED_EXAMPLES",
    "EMBEDDED_SYSTEM_PROMPT",
    "INSTRUCTED_CONTINUATION",
    "ChatMessage",
    "PromptTemplate",
    "chat_messages",
    "chatml",
    "completion_prompt",
    "with_examples",
]

DEFAULT_SYSTEM_PROMPT = (
    "Solve the following math problem efficiently and clearly.\n\n"
    "Think step by step and separate the steps with a blank line.\n\n"
    "Always conclude with:\n\n"
    "Therefore, the final answer is: $\\boxed{answer}$.\n\n"
    "Where [answer] is just the final number or expression that solves the problem."
)
"""The system prompt used when a strategy is given none (after search-and-learn's math prompt)."""

EMBEDDED_SYSTEM_PROMPT = (
    "Solve the math problem. Write each calculation as an equation on its own line, then the "
    "answer. When you add, write the larger number first."
)
"""The system prompt of the embedded SmolLM2-135M: one ``a op b = c`` per line, which
``ArithmeticVerifier`` checks line by line (the step delimiter is ``"\\n"``). A 135M model does not
follow a format it is only told about; it copies one it is shown, so the embedded solver shows
:data:`EMBEDDED_EXAMPLES` as earlier turns of the chat (see :func:`with_examples`)."""

EMBEDDED_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("What is 19 + 64?", "64 + 19 = 83\nThe answer is 83."),
    ("What is 28 + 45?", "45 + 28 = 73\nThe answer is 73."),
    (
        "A box holds 52 pens. 17 pens are taken out. How many pens are left in the box?",
        "52 - 17 = 35\nThe answer is 35.",
    ),
    (
        "A pen costs 4 dollars. How much do 6 pens and a ruler that costs 3 dollars cost together?",
        "6 * 4 = 24\n24 + 3 = 27\nThe answer is 27.",
    ),
)
"""Worked examples (question, solution) in the format :data:`EMBEDDED_SYSTEM_PROMPT` asks for.

Chosen on generated problems (``benchmarks/embedded_lift.py`` reports on others, see
``benchmarks/README.md``): additions written larger number first (on generated two-digit
additions with a carry and the smaller number first, this made a right first equation twice as
likely per sample: 0.20 against 0.08), a subtraction, and two operations chained through an
intermediate result."""

INSTRUCTED_CONTINUATION = (
    "{problem}\n\n"
    "Here is the start of a solution:\n"
    "<partial_solution>\n{partial}</partial_solution>\n\n"
    "Continue this solution. Write only what comes next, without repeating the steps above. "
    "If the solution above already states its final answer, reply with nothing."
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


def with_examples(
    template: PromptTemplate,
    examples: Sequence[tuple[str, str]],
    *,
    system_prompt: str,
) -> PromptTemplate:
    """A template that shows worked examples as earlier turns when the system prompt asks for them.

    When the messages open with ``system_prompt`` as the system message, each ``(question,
    solution)`` of ``examples`` is inserted after it as a user turn and an assistant turn; any
    other messages are rendered by ``template`` unchanged. The examples come before the problem,
    so every request of a search shares them as a prefix (and the prefix cache still hits).

    Args:
        template: the template to render with.
        examples: ``(question, solution)`` pairs, in order.
        system_prompt: the system prompt that comes with these examples.

    Example:
        >>> shown = with_examples(chatml, [("1 + 1?", "1 + 1 = 2")], system_prompt="Be brief.")
        >>> text = shown([{"role": "system", "content": "Be brief."},
        ...               {"role": "user", "content": "2 + 2?"}], False)
        >>> text.count("<|im_start|>user")
        2
    """
    turns: list[ChatMessage] = []
    for question, solution in examples:
        turns += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": solution},
        ]

    def render(messages: Sequence[ChatMessage], continue_final_message: bool) -> str:
        if messages and messages[0] == {"role": "system", "content": system_prompt}:
            messages = [messages[0], *turns, *messages[1:]]
        return template(messages, continue_final_message)

    return render
