"""The OpenAI chat-completions wire format of ``sal serve``: requests in, completions and chunks out.

Requests are validated with pydantic at the boundary: an unknown OpenAI field is accepted and
ignored (clients send many), a malformed one is a 400 naming the field. The ``sal`` object
(``extra_body={"sal": {...}}`` in the ``openai`` SDK) carries the search settings, validated by the
same strategy constructors as the Python API.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sal_plugins.conversation import ToolCall, Turn
from sal_plugins.results import SearchResult

__all__ = [
    "ChatRequest",
    "completion_body",
    "content_chunks",
    "error_body",
    "progress_chunk",
    "role_chunk",
    "turns_of",
    "usage_body",
]

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class Message(BaseModel):
    """One chat message as OpenAI clients send it."""

    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(BaseModel):
    """``stream_options``: only ``include_usage`` changes what is sent."""

    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions``: the fields the proxy reads; others are passed on or ignored.

    Attributes:
        model: ``MODEL`` (passed through untouched) or ``STRATEGY:MODEL`` (searched).
        messages: the conversation.
        stream: answer with Server-Sent Events.
        sal: search settings (``strategy``, ``n``, ``budget``, any strategy keyword).
    """

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1)
    stop: str | list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    sal: dict[str, Any] | None = None


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(str(part.get("text", "")) for part in content if part.get("type") == "text")


def turns_of(messages: Sequence[Message]) -> list[Turn]:
    """The request's messages as the core's neutral conversation turns."""
    names: dict[str, str] = {}
    turns: list[Turn] = []
    for message in messages:
        role = {"developer": "system", "function": "tool"}.get(message.role, message.role)
        calls = tuple(_tool_call(call) for call in message.tool_calls or ())
        names.update({call.id: call.name for call in calls if call.id})
        tool_name = message.name or names.get(message.tool_call_id or "")
        turns.append(
            Turn(
                role=role,  # type: ignore[arg-type]
                content=_text(message.content),
                tool_calls=calls,
                tool_call_id=message.tool_call_id,
                tool_name=tool_name,
            )
        )
    return turns


def _tool_call(call: Mapping[str, Any]) -> ToolCall:
    import json

    function = call.get("function") or {}
    raw = function.get("arguments") or "{}"
    try:
        args = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (ValueError, TypeError):
        args = {"arguments": raw}
    return ToolCall(name=str(function.get("name", "")), args=args, id=call.get("id"))


def new_id() -> str:
    """An id in OpenAI's style."""
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def usage_body(result: SearchResult) -> dict[str, Any]:
    """OpenAI ``usage`` for a whole search: solver and verifier tokens, with the breakdown."""
    usage = result.usage
    prompt = usage.prompt_tokens + usage.verifier_prompt_tokens
    completion = usage.completion_tokens + usage.verifier_completion_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "sal": {
            "solver_prompt_tokens": usage.prompt_tokens,
            "solver_completion_tokens": usage.completion_tokens,
            "verifier_prompt_tokens": usage.verifier_prompt_tokens,
            "verifier_completion_tokens": usage.verifier_completion_tokens,
            "generation_calls": usage.generation_calls,
            "verifier_calls": usage.verifier_calls,
        },
    }


def search_summary(result: SearchResult) -> dict[str, Any]:
    """What the ``sal`` field of a response says about the search."""
    summary = result.summary()
    summary["completions"] = [
        {"answer": c.answer, "score": c.score, "finished": c.finished} for c in result.completions
    ]
    return summary


def completion_body(result: SearchResult, model: str) -> dict[str, Any]:
    """A ``chat.completion`` whose message is the selected solution."""
    return {
        "id": new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": usage_body(result),
        "sal": search_summary(result),
    }


def _chunk(
    chunk_id: str, model: str, delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }


def role_chunk(chunk_id: str, model: str) -> dict[str, Any]:
    """The first chunk of a stream: the assistant's role, no content yet."""
    return _chunk(chunk_id, model, {"role": "assistant", "content": ""})


def progress_chunk(chunk_id: str, model: str, event: Mapping[str, Any]) -> dict[str, Any]:
    """A chunk with empty content that carries one search event in its ``sal_event`` field."""
    chunk = _chunk(chunk_id, model, {"content": ""})
    chunk["sal_event"] = dict(event)
    return chunk


def content_chunks(
    chunk_id: str, model: str, result: SearchResult, *, include_usage: bool, piece: int = 24
) -> Iterator[dict[str, Any]]:
    """The selected answer as content deltas, then the finish chunk (and usage, if asked)."""
    text = result.text
    for start in range(0, len(text), piece):
        yield _chunk(chunk_id, model, {"content": text[start : start + piece]})
    final = _chunk(chunk_id, model, {}, finish="stop")
    final["sal"] = search_summary(result)
    yield final
    if include_usage:
        usage = _chunk(chunk_id, model, {})
        usage["choices"] = []
        usage["usage"] = usage_body(result)
        yield usage


def error_body(
    message: str, *, kind: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
