"""What the LlamaIndex entry points share: strategy building, conversations, result rendering.

Everything here translates between LlamaIndex values and sal-plugins values: strategies are
built by the core's :func:`sal_plugins.strategies.build_strategy` (with LlamaIndex models
coerced into solvers and judges), and conversations are read by the core's one rule,
:func:`sal_plugins.conversation.problem_from_conversation`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole

try:  # llama-index-core 0.13+; 0.12 (the QueryComponent's environment) has no tool-call blocks
    from llama_index.core.base.llms.types import ToolCallBlock
except ImportError:  # pragma: no cover - exercised in the 0.12 environment
    ToolCallBlock = None  # type: ignore[assignment,misc]
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from sal_plugins import strategies
from sal_plugins.conversation import Problem, Role, ToolCall, Turn, problem_from_conversation
from sal_plugins.errors import ConfigError
from sal_plugins.results import SearchResult
from sal_plugins.strategies import SearchStrategy

__all__ = [
    "RawSearchResult",
    "TextOutput",
    "build_strategy",
    "check_output",
    "coerce_solver",
    "coerce_verifier",
    "output_text",
    "problem_from_messages",
    "raw_response",
    "result_metadata",
    "search_for",
    "turns_of",
]

TextOutput = Literal["text", "answer"]
"""What a facade's text is: the selected solution (``"text"``) or its final answer.

Not the LangChain runnables' ``Output`` (``"result" | "answer" | "message"``): every LlamaIndex
entry point returns a LlamaIndex object that carries text (``Response``, ``CompletionResponse``,
``ChatResponse``, ``ToolOutput``) with the ``SearchResult`` attached beside it (``raw``,
``metadata``, ``raw_output``), so only the text is a choice, and ``"message"`` has no meaning.
(The 0.12 ``QueryComponent`` returns a bare value and adds ``"result"``: its ``ComponentOutput``.)
"""


def coerce_solver(solver: Any) -> Any:
    """Wrap a LlamaIndex LLM as a sal solver; leave anything else for the strategy to validate."""
    if isinstance(solver, BaseLLM):
        from llama_index_sal.solver import LlamaIndexSolver

        return LlamaIndexSolver(llm=solver)
    return solver


def coerce_verifier(verifier: Any) -> Any:
    """A LlamaIndex LLM as verifier becomes an LLM judge; anything else is left to the strategy."""
    if isinstance(verifier, BaseLLM):
        from sal_plugins.verifiers import JudgeVerifier

        from llama_index_sal.solver import LlamaIndexSolver

        return JudgeVerifier(solver=LlamaIndexSolver(llm=verifier))
    return verifier


def build_strategy(strategy: str | SearchStrategy, **kwargs: Any) -> SearchStrategy:
    """The core's :func:`~sal_plugins.strategies.build_strategy`, LlamaIndex models accepted.

    ``strategy`` is a public name (hyphens accepted) with its keyword arguments, or an already
    configured :class:`SearchStrategy` (then no keyword arguments may be given). A LlamaIndex
    ``LLM`` passed as ``solver`` is wrapped in a :class:`~llama_index_sal.solver.LlamaIndexSolver`;
    one passed as ``verifier`` becomes a :class:`~sal_plugins.verifiers.JudgeVerifier` (an LLM
    judge, scale 0-10) over it.

    Raises:
        ConfigError: naming the fix (unknown name, no solver, a setting the strategy lacks, ...).
    """
    return strategies.build_strategy(
        strategy, coerce_solver=coerce_solver, coerce_verifier=coerce_verifier, **kwargs
    )


# --- conversations ------------------------------------------------------------------------------

_ROLES: Mapping[str, Role] = {
    MessageRole.SYSTEM.value: "system",
    MessageRole.DEVELOPER.value: "system",
    MessageRole.USER.value: "user",
    MessageRole.ASSISTANT.value: "assistant",
    MessageRole.CHATBOT.value: "assistant",
    MessageRole.MODEL.value: "assistant",
    MessageRole.TOOL.value: "tool",
    MessageRole.FUNCTION.value: "tool",
}


def _arguments(raw: Any) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return {}


def _tool_calls(message: ChatMessage, tool_llm: FunctionCallingLLM | None) -> tuple[ToolCall, ...]:
    """The tool calls of an assistant message, read the way its LLM wrote them.

    With the function-calling LLM that made them, its own ``get_tool_calls_from_response`` reads
    them; otherwise LlamaIndex's ``ToolCallBlock``s and ``ToolSelection``s in
    ``additional_kwargs["tool_calls"]`` are read.
    """
    selections: list[Any] = []
    if tool_llm is not None:
        try:
            selections = tool_llm.get_tool_calls_from_response(
                ChatResponse(message=message), error_on_no_tool_call=False
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            selections = []
    if not selections:
        blocks = message.blocks if ToolCallBlock is not None else []
        selections = [b for b in blocks if isinstance(b, ToolCallBlock)]
        selections += [
            item
            for item in message.additional_kwargs.get("tool_calls") or ()
            if isinstance(item, ToolSelection)
        ]
    calls = []
    for item in selections:
        if isinstance(item, ToolSelection):
            calls.append(ToolCall(item.tool_name, item.tool_kwargs, item.tool_id or None))
        elif ToolCallBlock is not None and isinstance(item, ToolCallBlock):
            args = _arguments(item.tool_kwargs)
            calls.append(ToolCall(item.tool_name, args, item.tool_call_id or None))
    return tuple(calls)


def turns_of(
    messages: Sequence[ChatMessage], tool_llm: FunctionCallingLLM | None = None
) -> list[Turn]:
    """LlamaIndex chat messages as the core's neutral turns.

    Roles map to ``system`` (``system``, ``developer``), ``user``, ``assistant`` (``assistant``,
    ``chatbot``, ``model``; with the tool calls it made) and ``tool`` (``tool``, ``function``;
    with the ``tool_call_id`` and ``name`` from ``additional_kwargs``).

    Args:
        messages: the conversation, oldest first.
        tool_llm: the function-calling LLM that made the tool calls, to read them its way.
    """
    turns = []
    for message in messages:
        role = _ROLES.get(str(getattr(message.role, "value", message.role)))
        if role is None:
            continue
        extra = message.additional_kwargs
        if role == "assistant":
            turns.append(Turn(role, message.content or "", _tool_calls(message, tool_llm)))
        elif role == "tool":
            call_id, name = extra.get("tool_call_id"), extra.get("name")
            turns.append(
                Turn(
                    role,
                    message.content or "",
                    tool_call_id=call_id if isinstance(call_id, str) else None,
                    tool_name=name if isinstance(name, str) else None,
                )
            )
        else:
            turns.append(Turn(role, message.content or ""))
    return turns


def problem_from_messages(
    messages: Sequence[ChatMessage], tool_llm: FunctionCallingLLM | None = None
) -> Problem:
    """The problem a chat conversation poses, by the core's one rule.

    The last user message is the problem, followed by the results of the tool calls made after
    it; system messages become the solver's system prompt (replacing the strategy's); earlier
    turns are not part of the problem (see :mod:`sal_plugins.conversation`). Earlier versions
    rendered the whole conversation as a transcript.

    Raises:
        InputError: the conversation holds no user message.
    """
    return problem_from_conversation(turns_of(messages, tool_llm))


def search_for(search: SearchStrategy, problem: Problem) -> SearchStrategy:
    """``search`` with the problem's system prompt in force, when it came with one."""
    if problem.system_prompt is None:
        return search
    return search.model_copy(update={"system_prompt": problem.system_prompt})


# --- results ------------------------------------------------------------------------------------


def check_output(output: str) -> TextOutput:
    """Validate an ``output=`` argument."""
    if output == "text":
        return "text"
    if output == "answer":
        return "answer"
    raise ConfigError(f"output must be 'text' or 'answer', got {output!r}")


def output_text(result: SearchResult, output: TextOutput) -> str:
    """The text a facade hands back: the selected solution, or its extracted answer."""
    if output == "answer":
        return result.answer if result.answer is not None else result.text
    return result.text


@dataclass
class RawSearchResult(SearchResult):
    """A :class:`~sal_plugins.results.SearchResult` that also reads as a raw response mapping.

    LlamaIndex's token counting (``TokenCountingHandler``) turns a response's ``raw`` into a dict
    and reads its ``"usage"``; this result answers with every token the search spent (the
    solver's and the verifier's), so token and cost callbacks count the search. In every other
    respect it is the search's result.
    """

    def keys(self) -> list[str]:
        """The one key of the mapping view."""
        return ["usage"]

    def __getitem__(self, key: str) -> dict[str, int]:
        if key != "usage":
            raise KeyError(key)
        usage = self.usage
        return {
            "prompt_tokens": usage.prompt_tokens + usage.verifier_prompt_tokens,
            "completion_tokens": usage.completion_tokens + usage.verifier_completion_tokens,
            "total_tokens": usage.total_tokens,
        }


def raw_response(result: SearchResult) -> RawSearchResult:
    """``result`` as a response's ``raw`` (see :class:`RawSearchResult`)."""
    return RawSearchResult(**{f.name: getattr(result, f.name) for f in fields(result)})


def result_metadata(result: SearchResult) -> dict[str, Any]:
    """JSON-ready metadata for a response: the search summary plus the problem."""
    return {"problem": result.problem, **result.summary()}
