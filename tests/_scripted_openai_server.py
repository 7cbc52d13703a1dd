"""A tiny scripted OpenAI-compatible server on loopback, for tests of the adapters' wire handling.

``ScriptedOpenAIServer(reply)`` serves ``POST /v1/chat/completions`` (plain JSON and SSE) and
``GET /v1/models`` with uvicorn on a free port in a thread. ``reply(body)`` decides the text of
every choice from the request body; the server then behaves like OpenAI or llama.cpp: it cuts the
text at the first requested stop string (dropping it), reports ``finish_reason="stop"`` and never
sends vLLM's ``stop_reason``, so a client cannot tell a matched stop string from the end of the
answer.

    with ScriptedOpenAIServer(reply) as base_url:   # "http://127.0.0.1:PORT/v1"
        ...

A reply may also be an assistant message (``{"content": ..., "tool_calls": [...]}``, OpenAI's
shape): its tool calls are sent as they are, with ``finish_reason="tool_calls"``.
``max_choices=1`` makes the server answer one choice whatever ``n`` says, as llama.cpp's does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["Reply", "ScriptedOpenAIServer", "last_user_text"]

Reply = Callable[[dict[str, Any]], str | dict[str, Any]]
"""Given a chat-completions request body, one choice: its text (before stop strings are cut), or
an assistant message with ``content`` and ``tool_calls``."""

MODEL = "scripted"


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message of a chat-completions body."""
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content", "")
            if isinstance(content, list):  # content parts
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content)
    return ""


def _cut(text: str, stops: list[str]) -> str:
    positions = [text.find(s) for s in stops if s and s in text]
    return text[: min(positions)] if positions else text


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _finish_reason(message: dict[str, Any]) -> str:
    return "tool_calls" if message.get("tool_calls") else "stop"


class ScriptedOpenAIServer:
    """An OpenAI-compatible chat server whose answers come from ``reply``.

    Attributes:
        requests: every chat-completions body received, in order.
    """

    def __init__(self, reply: Reply, *, max_choices: int | None = None) -> None:
        self._reply = reply
        self._max_choices = max_choices
        self.requests: list[dict[str, Any]] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # --- the app ------------------------------------------------------------------------------

    def _choices(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        stop = body.get("stop") or []
        stops = [stop] if isinstance(stop, str) else list(stop)
        n = int(body.get("n") or 1)
        if self._max_choices is not None:
            n = min(n, self._max_choices)
        messages = []
        for _ in range(n):
            reply = self._reply(body)
            message = {"content": reply} if isinstance(reply, str) else dict(reply)
            if message.get("content"):
                message["content"] = _cut(message["content"], stops)
            messages.append({"role": "assistant", **message})
        return messages

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        choices = self._choices(body)
        texts = [m.get("content") or "" for m in choices]
        prompt_tokens = sum(_tokens(str(m.get("content", ""))) for m in body.get("messages", []))
        completion_tokens = sum(_tokens(t) for t in texts)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if body.get("stream"):
            return StreamingResponse(self._sse(choices, usage), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "chatcmpl-scripted",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", MODEL),
                "choices": [
                    {
                        "index": i,
                        "message": message,
                        # and no stop_reason, as OpenAI and llama.cpp
                        "finish_reason": _finish_reason(message),
                    }
                    for i, message in enumerate(choices)
                ],
                "usage": usage,
            }
        )

    async def _sse(
        self, choices: list[dict[str, Any]], usage: dict[str, int]
    ) -> AsyncIterator[str]:
        def chunk(index: int, delta: dict[str, Any], finish: str | None) -> str:
            data = {
                "id": "chatcmpl-scripted",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": MODEL,
                "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(data)}\n\n"

        for index, message in enumerate(choices):
            yield chunk(index, {"role": "assistant", "content": ""}, None)
            text = message.get("content") or ""
            for word in text.split(" ") if text else []:
                yield chunk(index, {"content": word + " "}, None)
            for position, call in enumerate(message.get("tool_calls") or []):
                yield chunk(index, {"tool_calls": [{"index": position, **call}]}, None)
            yield chunk(index, {}, _finish_reason(message))
        final = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "choices": []}
        yield f"data: {json.dumps({**final, 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"

    async def _models(self, request: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "tests"}]}
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> str:
        """Start serving on a free loopback port; return the base URL (ending in ``/v1``)."""
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="scripted-openai-server", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the scripted OpenAI-compatible server did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        self._server, self._thread = server, thread
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    def stop(self) -> None:
        """Stop the server and wait for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._server = self._thread = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serving(reply: Reply) -> Iterator[ScriptedOpenAIServer]:
    """A generator for a pytest fixture: the started server, stopped afterwards."""
    server = ScriptedOpenAIServer(reply)
    server.start()
    try:
        yield server
    finally:
        server.stop()
