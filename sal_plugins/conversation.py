"""One rule for reading a problem out of a chat conversation, for every chat surface.

A search solves one problem. A chat surface (LangChain's ``SearchChatModel`` and runnables, the
LlamaIndex ``SearchLLM``, ``sal serve``) is handed a whole conversation instead, so each converts
its framework's messages into neutral :class:`Turn` values and calls
:func:`problem_from_conversation`, and the same history becomes the same problem everywhere:

* the **system turns** become the solver's system prompt (joined by blank lines; they replace the
  strategy's own ``system_prompt``);
* the **last user turn** is the problem;
* the **tool results** that came after it (an agent's tool calls and what they returned) are
  appended, one line per result, the call rendered with its arguments::

      What is 2 + 2?

      Tool calls made for this question and their results:
      - add(a=2, b=2): 4
      - lookup(q="x") failed: not found

Earlier turns (previous questions, answers and tool results) are not part of the problem.

Example:
    >>> problem_from_conversation(
    ...     [Turn("system", "Be brief."), Turn("user", "What is 23 + 48?")]
    ... )
    Problem(text='What is 23 + 48?', system_prompt='Be brief.')
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sal_plugins.errors import InputError

__all__ = [
    "TOOL_RESULTS_HEADER",
    "Problem",
    "Role",
    "ToolCall",
    "Turn",
    "problem_from_conversation",
    "tool_results",
]

Role = Literal["system", "user", "assistant", "tool"]
"""Who wrote a turn. Frameworks' other roles map onto these (``human`` is ``user``, ...)."""

TOOL_RESULTS_HEADER = "Tool calls made for this question and their results:"
"""The line that introduces the tool results appended to a problem."""


@dataclass(frozen=True)
class ToolCall:
    """A tool call an assistant turn made.

    Attributes:
        name: the tool's name.
        args: the arguments it was called with.
        id: the call's id, which the tool turn answering it names (``None`` if the framework
            gives none).
    """

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class Turn:
    """One message of a conversation, in no framework's terms.

    Attributes:
        role: ``"system"``, ``"user"``, ``"assistant"`` or ``"tool"``.
        content: the message's text.
        tool_calls: on an assistant turn, the tool calls it made.
        tool_call_id: on a tool turn, the id of the call it answers.
        tool_name: on a tool turn, the tool's name (shown when the call it answers is unknown).
        failed: on a tool turn, the tool reported an error instead of a result.

    Raises:
        InputError: ``role`` is not one of the four.
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None
    failed: bool = False

    def __post_init__(self) -> None:
        if self.role not in get_args(Role):
            raise InputError(
                f"a turn's role must be one of {', '.join(get_args(Role))}, got {self.role!r}"
            )


@dataclass(frozen=True)
class Problem:
    """What a search is asked: the problem text and, when the input gave one, a system prompt.

    Attributes:
        text: the problem to solve.
        system_prompt: the system prompt that came with it (``None``: keep the strategy's own).
    """

    text: str
    system_prompt: str | None = None


def problem_from_conversation(turns: Iterable[Turn]) -> Problem:
    """The problem a conversation poses (the rule is in the module docstring).

    Args:
        turns: the conversation, oldest turn first.

    Returns:
        The last user turn, followed by the results of the tool calls made after it, with the
        system turns as the system prompt (``None`` when there is none with text).

    Raises:
        InputError: the conversation holds no user turn.
    """
    conversation = list(turns)
    system = [t.content for t in conversation if t.role == "system" and t.content.strip()]
    asked = [i for i, turn in enumerate(conversation) if turn.role == "user"]
    if not asked:
        raise InputError(
            "the conversation holds no user message: the last user message is the problem to solve"
        )
    question = conversation[asked[-1]].content
    results = tool_results(conversation[asked[-1] + 1 :])
    text = f"{question}\n\n{results}" if results else question
    return Problem(text, "\n\n".join(system) if system else None)


def tool_results(turns: Sequence[Turn]) -> str:
    """The tool results among ``turns`` as text for the problem (``""`` when there are none).

    Each tool turn becomes ``- name(arg=value, ...): content``, the call found by its id among
    the assistant turns' tool calls (``- name: content`` when it cannot be found), with
    ``failed`` before the colon when the tool reported an error. Values are written as JSON.
    """
    calls = {call.id: call for turn in turns for call in turn.tool_calls if call.id}
    lines = []
    for turn in turns:
        if turn.role != "tool":
            continue
        call = calls.get(turn.tool_call_id) if turn.tool_call_id else None
        made = _call_text(call) if call is not None else (turn.tool_name or "tool")
        failed = " failed" if turn.failed else ""
        lines.append(f"- {made}{failed}: {turn.content}")
    if not lines:
        return ""
    return TOOL_RESULTS_HEADER + "\n" + "\n".join(lines)


def _call_text(call: ToolCall) -> str:
    arguments = ", ".join(
        f"{name}={json.dumps(value, ensure_ascii=False, default=str)}"
        for name, value in call.args.items()
    )
    return f"{call.name}({arguments})"
