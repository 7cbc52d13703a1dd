"""Scripted chat models for the unit tests (no network)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.tool import tool_call
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from pydantic import Field

SOLUTIONS = [
    "2 + 2 = 4\n\nThe answer is $\\boxed{4}$.",
    "2 + 2 = 5\n\nThe answer is $\\boxed{5}$.",
    "Two and two make 4\n\nThe answer is $\\boxed{4}$.",
]


class RecordingChatModel(BaseChatModel):
    """Answers with ``responses`` in turn and records every call.

    Each call records its messages, ``stop`` and keyword arguments. ``metadata_for(i)`` lets a test
    give the i-th response a ``response_metadata`` (finish reasons, log-probs). The records and
    counters live in shared containers, so copies of the model (``model_copy``, as the solver
    makes) record into the same ones.
    """

    responses: list[str]
    finish_reason: str | None = None
    usage: tuple[int, int] = (10, 5)
    errors: list[BaseException] = Field(default_factory=list)
    calls: list[dict[str, Any]] = Field(default_factory=list)
    tally: dict[str, int] = Field(default_factory=dict)

    @property
    def served(self) -> int:
        return self.tally.get("served", 0)

    @property
    def sync_calls(self) -> int:
        return self.tally.get("sync_calls", 0)

    def _count(self, name: str) -> int:
        """Increment counter ``name``; return its value before."""
        value = self.tally.get(name, 0)
        self.tally[name] = value + 1
        return value

    @property
    def _llm_type(self) -> str:
        return "recording-chat"

    def _message(self, text: str) -> AIMessage:
        metadata: dict[str, Any] = {}
        if self.finish_reason is not None:
            metadata["finish_reason"] = self.finish_reason
        prompt, completion = self.usage
        return AIMessage(
            content=text,
            response_metadata=metadata,
            usage_metadata={
                "input_tokens": prompt,
                "output_tokens": completion,
                "total_tokens": prompt + completion,
            },
        )

    def _next(self) -> str:
        return self.responses[self._count("served") % len(self.responses)]

    def _result(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> ChatResult:
        self.calls.append({"messages": messages, "stop": stop, **kwargs})
        if self.errors:
            raise self.errors.pop(0)
        return ChatResult(generations=[ChatGeneration(message=self._message(self._next()))])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._count("sync_calls")
        return self._result(messages, stop, kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result(messages, stop, kwargs)


class SamplingChatModel(RecordingChatModel):
    """Declares OpenAI-style sampling parameters; returns ``n`` choices if ``honours_n``."""

    n: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    honours_n: bool = True
    logprob_content: list[dict[str, Any]] | None = None

    def _result(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> ChatResult:
        self.calls.append({"messages": messages, "stop": stop, **kwargs})
        if self.errors:
            raise self.errors.pop(0)
        count = int(kwargs.get("n") or 1) if self.honours_n else 1
        generations = []
        for _ in range(count):
            message = self._message(self._next())
            info: dict[str, Any] = {}
            if self.logprob_content is not None and kwargs.get("logprobs"):
                info["logprobs"] = {"content": self.logprob_content}
            generations.append(ChatGeneration(message=message, generation_info=info or None))
        return ChatResult(generations=generations)


class PrefillChatModel(RecordingChatModel):
    """Poses as a provider with assistant prefill (Anthropic's ``_llm_type``)."""

    @property
    def _llm_type(self) -> str:
        return "anthropic-chat"


class HTTPStatusFault(Exception):
    """Shaped like an SDK's status error: ``status_code`` and a response with headers."""

    def __init__(self, status_code: int, retry_after: str | None = None) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        self.response = type("Response", (), {"status_code": status_code, "headers": headers})()


class JudgingChatModel(RecordingChatModel):
    """A judge: 9/10 for a candidate whose answer is 4, 1/10 otherwise (order-independent)."""

    responses: list[str] = Field(default_factory=list)

    def _next(self) -> str:
        candidate = self.calls[-1]["messages"][-1].content
        return "Correct. Score: 9/10" if "boxed{4}" in candidate else "Wrong sum. Score: 1/10"


class ToolCallingChatModel(RecordingChatModel):
    """A tool-calling model: with tools bound, it replies with ``decisions`` in turn.

    A decision is a list of tool calls (``[]``: answer instead, with ``"I can answer now."``);
    without tools it answers with ``responses`` like :class:`RecordingChatModel`. ``bindings``
    records the arguments of every ``bind_tools`` call.
    """

    decisions: list[list[dict[str, Any]]] = Field(default_factory=list)
    bindings: list[dict[str, Any]] = Field(default_factory=list)

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        self.bindings.append({"tools": list(tools), "tool_choice": tool_choice, **kwargs})
        return self.bind(tools=list(tools), tool_choice=tool_choice, **kwargs)

    def _result(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> ChatResult:
        if "tools" not in kwargs:
            return super()._result(messages, stop, kwargs)
        self.calls.append({"messages": messages, "stop": stop, **kwargs})
        decided = self._count("decided")
        calls = self.decisions[decided]
        message = self._message("" if calls else "I can answer now.")
        message.tool_calls = [
            tool_call(name=c["name"], args=c["args"], id=c.get("id", f"call-{decided}"))
            for c in calls
        ]
        return ChatResult(generations=[ChatGeneration(message=message)])
