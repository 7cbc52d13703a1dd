"""ChatLogprobPRM: the RLHFlow conversation layout and P(+)/(P(+)+P(-)) from ``top_logprobs``.

The unit tests answer with chat-completion bodies shaped as the OpenAI API documents them
(``choices[0].logprobs.content[0].top_logprobs``); the ``model`` tests go over real HTTP to
``llama_cpp.server`` serving the embedded SmolLM2 model.
"""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest

import sal_plugins as sal
from sal_plugins.errors import ConfigError, VerifierError
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.verifiers import ChatLogprobPRM, JudgeVerifier, Trajectory


def chat_body(alternatives: dict[str, float]) -> dict[str, Any]:
    """A chat completion with ``logprobs`` and ``top_logprobs`` as the OpenAI API documents."""
    first = next(iter(alternatives))
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "prm",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": first},
                "logprobs": {
                    "content": [
                        {
                            "token": first,
                            "logprob": alternatives[first],
                            "bytes": None,
                            "top_logprobs": [
                                {"token": t, "logprob": lp, "bytes": None}
                                for t, lp in alternatives.items()
                            ],
                        }
                    ]
                },
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 1, "total_tokens": 21},
    }


class FakeChat:
    """Answers '+' with probability 0.9 for steps without 'wrong', else 0.2."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        last = body["messages"][-1]["content"]
        p_plus = 0.2 if "wrong" in last else 0.9
        alternatives = {"+": math.log(p_plus), "-": math.log(1 - p_plus) - 1e-9, "The": -5.0}
        if "no minus" in last:
            alternatives = {"+": math.log(0.6), "The": math.log(0.1), "A": math.log(0.05)}
        return httpx.Response(200, json=chat_body(alternatives))


def prm(server: FakeChat, **kwargs: Any) -> ChatLogprobPRM:
    return ChatLogprobPRM(
        model="prm",
        base_url="http://llm.test/v1",
        transport=httpx.MockTransport(server),
        **kwargs,
    )


async def test_rlhflow_layout_and_documented_logprob_shape() -> None:
    server = FakeChat()
    verifier = prm(server)
    rows = await verifier.score("What is 2 + 2?", [Trajectory(("2 + 2 = 4", "wrong step", "ok"))])
    assert rows[0].step_scores == pytest.approx((0.9, 0.2, 0.9))
    assert len(server.requests) == 3
    last = max(server.requests, key=lambda body: len(body["messages"]))
    assert last["messages"] == [
        {"role": "user", "content": "What is 2 + 2? 2 + 2 = 4"},
        {"role": "assistant", "content": "+"},
        {"role": "user", "content": "wrong step"},
        {"role": "assistant", "content": "+"},
        {"role": "user", "content": "ok"},
    ]
    assert last["max_tokens"] == 1 and last["logprobs"] is True and last["top_logprobs"] == 20


async def test_absent_label_is_bounded_by_the_smallest_returned_logprob() -> None:
    rows = await prm(FakeChat()).score("p", [Trajectory(("no minus here",))])
    assert rows[0].step_scores[0] == pytest.approx(0.6 / (0.6 + 0.05))


async def test_prefixes_are_scored_once_per_search() -> None:
    server = FakeChat()
    verifier = prm(server)
    await verifier.score("p", [Trajectory(("a",)), Trajectory(("b",))])
    await verifier.score("p", [Trajectory(("a", "c")), Trajectory(("a", "d")), Trajectory(("b",))])
    assert len(server.requests) == 4  # a, b, then only (a, c) and (a, d)
    uncached = prm(FakeChat(), cache_size=0)
    await uncached.score("p", [Trajectory(("a",))])
    await uncached.score("p", [Trajectory(("a",))])


async def test_a_failed_prefix_does_not_cost_the_others_a_second_request() -> None:
    server = FakeChat()

    def handler(request: httpx.Request) -> httpx.Response:
        if "unreadable" in json.loads(request.content)["messages"][-1]["content"]:
            return httpx.Response(200, json=chat_body({"The": -0.5}))
        return server(request)

    verifier = prm(server)
    verifier.endpoint = prm(handler).endpoint  # type: ignore[arg-type]
    with pytest.raises(VerifierError, match="neither label"):
        await verifier.score("p", [Trajectory(("a", "b")), Trajectory(("unreadable",))])
    rows = await verifier.score("p", [Trajectory(("a", "b"))])
    assert rows[0].step_scores == pytest.approx((0.9, 0.9))
    assert len(server.requests) == 2  # "a" and ("a", "b"), each asked once


async def test_no_label_in_top_k_and_no_logprobs_are_errors() -> None:
    def no_labels(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=chat_body({"The": -0.5, "A": -1.0}))

    with pytest.raises(VerifierError, match="ChatLogprobPRM: neither label"):
        await prm(no_labels).score("p", [Trajectory(("a",))])  # type: ignore[arg-type]

    def no_logprobs(request: httpx.Request) -> httpx.Response:
        body = chat_body({"+": -0.1})
        body["choices"][0]["logprobs"] = None
        return httpx.Response(200, json=body)

    with pytest.raises(VerifierError, match="no logprobs for its first token"):
        await prm(no_logprobs).score("p", [Trajectory(("a",))])  # type: ignore[arg-type]


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="placeholder"):
        prm(FakeChat(), next_turn="no step here")
    with pytest.raises(ConfigError, match="positive"):
        prm(FakeChat(), positive="")


def test_chat_logprob_prm_guides_beam_search() -> None:
    solver = ScriptedSolver(
        [
            "2 + 2 = 5, wrong\n\nThe answer is $\\boxed{5}$.",
            "2 + 2 = 4\n\nThe answer is $\\boxed{4}$.",
        ]
    )
    search = sal.BeamSearch(
        solver=solver, verifier=prm(FakeChat()), n=4, beam_width=2, max_steps=3, seed=0
    )
    result = search.run("What is 2 + 2?")
    assert result.answer == "4"
    # Every request's documented "usage" (20 prompt + 1 completion) is counted as verifier work.
    requests = result.usage.verifier_completion_tokens
    assert requests > 0
    assert result.usage.verifier_prompt_tokens == 20 * requests


class CountingTransport(httpx.AsyncHTTPTransport):
    """The real network transport, counting requests."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        return await super().handle_async_request(request)


YES_NO = {
    "positive": ("Yes", "yes"),
    "negative": ("No", "no"),
    "system_prompt": "For each step, answer Yes if it is correct and No if it is wrong.",
}


@pytest.mark.model
def test_chat_logprob_prm_over_real_http_in_best_of_n(llama_server: str) -> None:
    """Real logprobs from llama_cpp.server; a weak model, so only the mechanics are asserted."""
    transport = CountingTransport()
    verifier = ChatLogprobPRM(
        model="smollm2", base_url=llama_server, transport=transport, top_logprobs=10, **YES_NO
    )
    solver = ScriptedSolver(
        ["23 + 48 = 71\n\nThe answer is 71.", "23 + 48 = 61\n\nThe answer is 61."]
    )
    result = sal.BestOfN(solver=solver, verifier=verifier, n=2, seed=0).run("What is 23 + 48?")
    assert not result.failures
    for completion in result.completions:
        assert len(completion.step_scores) == 2
        assert all(0.0 < s < 1.0 for s in completion.step_scores)  # a ratio, not a parsed word
    assert transport.count == 4  # one request per distinct step prefix
    # llama.cpp reports usage on every response: the PRM's tokens are counted, one generated each
    assert result.usage.verifier_completion_tokens == 4
    assert result.usage.verifier_prompt_tokens > 4 * 10


@pytest.mark.model
async def test_chat_logprob_prm_real_server_without_labels_fails_by_name(llama_server: str) -> None:
    """SmolLM2 never says '+'/'-' unprompted: a clear error naming the verifier, not a guess."""
    verifier = ChatLogprobPRM(model="smollm2", base_url=llama_server, top_logprobs=5)
    with pytest.raises(VerifierError, match="ChatLogprobPRM: neither label"):
        await verifier.score("What is 23 + 48?", [Trajectory(("23 + 48 = 71",))])


@pytest.mark.model
async def test_judge_yes_no_from_real_logprobs(llama_server: str) -> None:
    from sal_plugins.solvers import OpenAISolver

    judge = JudgeVerifier(
        solver=OpenAISolver(model="smollm2", base_url=llama_server), mode="yes_no"
    )
    rows = await judge.score(
        "What is 23 + 48?", [Trajectory(("23 + 48 = 71", "The answer is $\\boxed{71}$."))]
    )
    assert 0.0 < rows[0].step_scores[0] < 1.0  # read from top_logprobs, not from the word
