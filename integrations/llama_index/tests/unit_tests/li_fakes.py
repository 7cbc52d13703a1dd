"""Test doubles: a scripted LlamaIndex LLM and the scripted sal solver/verifier set-ups."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.mock import MockFunctionCallingLLM
from pydantic import Field, PrivateAttr
from sal_plugins.verifiers import ScriptedVerifier

PROBLEM = "What is 2 + 2?"
RIGHT = "2 + 2 = 4\n\nThe answer is $\\boxed{4}$."
WRONG = "2 + 2 = 5\n\nThe answer is $\\boxed{5}$."
SOLUTIONS = [WRONG, RIGHT]


def prefers_four() -> ScriptedVerifier:
    """Scores steps that mention 4 high and everything else low."""
    return ScriptedVerifier(lambda problem, step: 0.9 if "4" in step else 0.1)


Reply = Callable[[Sequence[ChatMessage], dict[str, Any]], "ChatResponse | str | Exception"]


class ScriptedLLM(CustomLLM):
    """A LlamaIndex LLM whose chat replies come from a function; it records every call.

    ``reply(messages, kwargs)`` returns a ``ChatResponse``, a string (wrapped in one), or an
    exception to raise. ``complete`` answers with ``reply`` on a single user message.
    """

    reply: Any = Field(exclude=True)
    max_retries: int = 0
    delay_s: float = 0.0
    calls: list[tuple[list[ChatMessage], dict[str, Any]]] = Field(default_factory=list)
    completions: list[tuple[str, dict[str, Any]]] = Field(default_factory=list)
    _started: int = PrivateAttr(default=0)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_chat_model=True, model_name="scripted", context_window=1234)

    def _answer(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        outcome = self.reply(messages, kwargs)
        if isinstance(outcome, Exception):
            raise outcome
        if isinstance(outcome, str):
            return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=outcome))
        return outcome

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.calls.append((list(messages), kwargs))
        return self._answer(messages, kwargs)

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.calls.append((list(messages), kwargs))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return self._answer(messages, kwargs)

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.completions.append((prompt, kwargs))
        response = self._answer([ChatMessage(role=MessageRole.USER, content=prompt)], kwargs)
        return CompletionResponse(
            text=response.message.content or "",
            raw=response.raw,
            logprobs=response.logprobs,
            additional_kwargs=response.additional_kwargs,
        )

    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return self.complete(prompt, formatted=formatted, **kwargs)

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        response = self.complete(prompt, formatted=formatted, **kwargs)

        def gen() -> CompletionResponseGen:
            yield response

        return gen()


def solution_llm(solutions: Sequence[str] = SOLUTIONS) -> ScriptedLLM:
    """A chat LLM that writes whole solutions, alternating through ``solutions`` by seed."""

    def reply(messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> str:
        seed = kwargs.get("seed") or 0
        return solutions[seed % len(solutions)]

    return ScriptedLLM(reply=reply)


class ToolCallingLLM(MockFunctionCallingLLM):
    """A function-calling LLM: asked with tools, it replies with ``decisions`` in turn.

    A decision is a list of tool calls (``[]``: answer in text instead); without tools it writes
    ``solutions`` by seed, like :func:`solution_llm`. Records and counters live in shared
    containers, so the copy a solver makes records into the same ones.
    """

    decisions: list[list[ToolSelection]] = Field(default_factory=list)
    solutions: list[str] = Field(default_factory=lambda: list(SOLUTIONS))
    calls: list[tuple[list[ChatMessage], dict[str, Any]]] = Field(default_factory=list)
    tally: dict[str, int] = Field(default_factory=dict)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            is_chat_model=True, is_function_calling_model=True, model_name="tool-calling"
        )

    def _reply(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        self.calls.append((list(messages), kwargs))
        if "tools" not in kwargs:
            seed = kwargs.get("seed") or 0
            text = self.solutions[seed % len(self.solutions)]
            return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))
        decided = self.tally.get("decided", 0)
        self.tally["decided"] = decided + 1
        selections = self.decisions[decided]
        message = ChatMessage(
            role=MessageRole.ASSISTANT,
            content="" if selections else "I can answer now.",
            additional_kwargs={"tool_calls": selections} if selections else {},
        )
        return ChatResponse(message=message)

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._reply(messages, kwargs)

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._reply(messages, kwargs)
