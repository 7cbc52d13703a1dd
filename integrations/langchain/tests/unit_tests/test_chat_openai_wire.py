"""LangChainSolver over a real ChatOpenAI, against OpenAI-shaped HTTP responses (httpx mock).

The bodies follow the documented ``/v1/chat/completions`` response and error shapes; no network.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from langchain_openai import ChatOpenAI
from sal_plugins.errors import SolverError, TransientError
from sal_plugins.solvers.base import GenerationRequest

from langchain_sal import LangChainSolver

Handler = Callable[[httpx.Request], httpx.Response]


def chat_openai(handler: Handler, seen: list[dict[str, Any]]) -> ChatOpenAI:
    def record(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return handler(request)

    transport = httpx.MockTransport(record)
    return ChatOpenAI(
        model="test-model",
        api_key="x",
        base_url="http://openai.test/v1",
        max_retries=2,
        http_client=httpx.Client(transport=transport),
        http_async_client=httpx.AsyncClient(transport=transport),
    )


def completion(*texts: str, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "test-model",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": text},
                "logprobs": {
                    "content": [{"token": text, "logprob": -0.5, "bytes": None, "top_logprobs": []}]
                },
                "finish_reason": finish_reason,
            }
            for i, text in enumerate(texts)
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28},
    }


REQUEST = GenerationRequest(
    problem="What is 2 + 2?", n=2, stop=("\n\n",), max_tokens=16, seed=3, logprobs=True
)


async def test_n_choices_from_one_request_with_usage_counted_once() -> None:
    seen: list[dict[str, Any]] = []
    model = chat_openai(lambda r: httpx.Response(200, json=completion("2 + 2 = 4", "4")), seen)
    response = await LangChainSolver(model).generate(REQUEST)
    assert len(seen) == 1
    body = seen[0]
    assert (body["n"], body["seed"], body["stop"], body["logprobs"]) == (2, 3, ["\n\n"], True)
    assert body.get("stream") in (None, False)
    assert [g.text for g in response.generations] == ["2 + 2 = 4", "4"]
    assert [g.stop_kind for g in response.generations] == ["unknown", "unknown"]
    assert response.generations[0].token_logprobs == (-0.5,)
    assert (response.requests, response.prompt_tokens, response.completion_tokens) == (1, 20, 8)


async def test_a_server_returning_one_choice_is_topped_up() -> None:
    seen: list[dict[str, Any]] = []
    model = chat_openai(lambda r: httpx.Response(200, json=completion("4")), seen)
    response = await LangChainSolver(model).generate(REQUEST)
    assert len(response.generations) == 2
    assert [body.get("n") for body in seen] == [2, None]
    assert [body["seed"] for body in seen] == [3, 4]
    assert (response.requests, response.prompt_tokens) == (2, 40)


@pytest.mark.parametrize(
    ("status", "headers", "expected", "retry_after"),
    [
        (429, {"retry-after": "2"}, TransientError, 2.0),
        (503, {}, TransientError, None),
        (500, {}, TransientError, None),
        (400, {}, SolverError, None),
        (401, {}, SolverError, None),
    ],
)
async def test_http_errors_are_translated_and_not_retried_by_the_sdk(
    status: int, headers: dict[str, str], expected: type[Exception], retry_after: float | None
) -> None:
    seen: list[dict[str, Any]] = []
    body = {"error": {"message": "nope", "type": "server_error", "param": None, "code": None}}
    model = chat_openai(lambda r: httpx.Response(status, headers=headers, json=body), seen)
    with pytest.raises(expected) as caught:
        await LangChainSolver(model, n_mode="fan_out").generate(
            GenerationRequest(problem="What is 2 + 2?")
        )
    assert isinstance(caught.value, TransientError) is (expected is TransientError)
    assert getattr(caught.value, "status_code", None) == status
    assert getattr(caught.value, "retry_after", None) == retry_after
    assert len(seen) == 1  # the SDK's own retries are off: the search driver retries


async def test_a_dropped_connection_is_transient() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("server disconnected", request=request)

    model = chat_openai(drop, [])
    with pytest.raises(TransientError):
        await LangChainSolver(model).generate(GenerationRequest(problem="What is 2 + 2?"))


async def test_vllm_style_native_continuation() -> None:
    seen: list[dict[str, Any]] = []
    model = chat_openai(lambda r: httpx.Response(200, json=completion("The answer is 4.")), seen)
    solver = LangChainSolver(model, continue_final_message=True)
    step = GenerationRequest(problem="What is 2 + 2?", prefix_steps=("2 + 2 = 4",), stop=("\n\n",))
    await solver.generate(step)
    body = seen[0]
    assert body["messages"][-1] == {"role": "assistant", "content": "2 + 2 = 4\n\n"}
    assert (body["continue_final_message"], body["add_generation_prompt"]) == (True, False)
    seen.clear()
    await solver.generate(GenerationRequest(problem="What is 2 + 2?"))  # a fresh start
    assert "continue_final_message" not in seen[0]
    assert seen[0]["messages"][-1]["role"] == "user"
