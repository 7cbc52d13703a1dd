"""PoolingPRM against response bodies shaped as vLLM's ``/pooling`` route documents them.

vLLM cannot run here, so the server is an ``httpx.MockTransport`` that checks the request and
answers with the documented body: ``{"object": "list", "data": [{"index", "object": "pooling",
"data": [[p_neg, p_pos], ...]}], "usage": ...}``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest

import sal_plugins as sal
from sal_plugins.errors import InvalidScoreError, ScoreCountError, VerifierError
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.verifiers import PoolingPRM, Trajectory

MODEL = "Qwen/Qwen2.5-Math-PRM-7B"


def pooling_body(
    rows_per_input: list[list[list[float]]], *, reverse: bool = False
) -> dict[str, Any]:
    """A ``/pooling`` response body as vLLM documents it."""
    data = [
        {"index": i, "object": "pooling", "data": rows} for i, rows in enumerate(rows_per_input)
    ]
    if reverse:
        data.reverse()
    return {
        "id": "pool-4f7b2c",
        "object": "list",
        "created": 1737000000,
        "model": MODEL,
        "data": data,
        "usage": {"prompt_tokens": 120, "total_tokens": 120, "completion_tokens": 0},
    }


class FakeVLLM:
    """Records requests; answers each input with rows from ``rows_for(text)``."""

    def __init__(self, rows_for: Any, *, reverse: bool = False) -> None:
        self.rows_for = rows_for
        self.reverse = reverse
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append({"path": request.url.path, "body": body, "headers": request.headers})
        rows = [self.rows_for(text) for text in body["input"]]
        return httpx.Response(200, json=pooling_body(rows, reverse=self.reverse))


def rows_by_tag(text: str) -> list[list[float]]:
    """One [p_neg, p_pos] row per <extra_0>: steps containing 'wrong' score low."""
    answer = text.split("<|im_start|>assistant\n", 1)[1]
    steps = answer.split("<extra_0>")[:-1]
    return [[0.9, 0.1] if "wrong" in step else [0.2, 0.8] for step in steps]


def prm(server: Any, **kwargs: Any) -> PoolingPRM:
    return PoolingPRM(
        model=MODEL,
        base_url="http://vllm.test:8001",
        api_key="secret-key",
        transport=httpx.MockTransport(server),
        **kwargs,
    )


async def test_pooling_documented_response_shape_maps_rows_to_steps() -> None:
    server = FakeVLLM(rows_by_tag)
    verifier = prm(server)
    trajectories = [
        Trajectory(("2 + 2 = 4", "So the answer is 4.")),
        Trajectory(("2 + 2 = 5, wrong",)),
    ]
    rows = await verifier.score("What is 2 + 2?", trajectories)
    assert [r.step_scores for r in rows] == [(0.8, 0.8), (0.1,)]
    assert len(server.requests) == 1  # the whole round in one request
    request = server.requests[0]
    assert request["path"] == "/pooling"
    assert request["headers"]["authorization"] == "Bearer secret-key"
    assert request["body"]["model"] == MODEL
    assert request["body"]["input"][0] == (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within "
        "\\boxed{}.<|im_end|>\n<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n"
        "<|im_start|>assistant\n2 + 2 = 4<extra_0>So the answer is 4.<extra_0><|im_end|>\n"
    )


async def test_pooling_documented_response_shape_out_of_order_indices() -> None:
    verifier = prm(FakeVLLM(rows_by_tag, reverse=True))
    rows = await verifier.score("p", [Trajectory(("ok",)), Trajectory(("wrong",))])
    assert [r.step_scores for r in rows] == [(0.8,), (0.1,)]


async def test_pooling_logits_are_softmaxed_and_positive_index_configurable() -> None:
    verifier = prm(FakeVLLM(lambda text: [[0.0, math.log(3.0)]]), rows_are="logits")
    rows = await verifier.score("p", [Trajectory(("a",))])
    assert rows[0].step_scores[0] == pytest.approx(0.75)
    negative = prm(FakeVLLM(lambda text: [[0.25, 0.75]]), positive_index=0)
    rows = await negative.score("p", [Trajectory(("a",))])
    assert rows[0].step_scores == (0.25,)


async def test_pooling_step_tag_inside_a_step_is_removed() -> None:
    server = FakeVLLM(rows_by_tag)
    await prm(server).score("p", [Trajectory(("a <extra_0> b", "c"))])
    assert server.requests[0]["body"]["input"][0].count("<extra_0>") == 2


async def test_pooling_row_count_mismatch_names_the_verifier() -> None:
    verifier = prm(FakeVLLM(lambda text: [[0.2, 0.8]]), step_tag_id=None)
    with pytest.raises(
        ScoreCountError, match=r"PoolingPRM: .*1 score rows for trajectory 0.*2 steps"
    ):
        await verifier.score("p", [Trajectory(("a", "b"))])


async def test_pooling_result_count_mismatch_names_the_verifier() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pooling_body([[[0.2, 0.8]]]))

    with pytest.raises(ScoreCountError, match="PoolingPRM: the server returned 1 results for 2"):
        await prm(handler).score("p", [Trajectory(("a",)), Trajectory(("b",))])


async def test_pooling_nan_row_raises_invalid_score_naming_the_verifier() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.dumps(pooling_body([[[0.5, 0.5]]])).replace("0.5]", "NaN]")
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    with pytest.raises(InvalidScoreError, match="PoolingPRM: returned a non-finite score"):
        await prm(handler).score("p", [Trajectory(("a",))])


async def test_pooling_all_token_rows_are_mapped_through_tokenize() -> None:
    """A server without step pooling returns one row per token; the tag rows are picked out."""
    tokens = [11, 151651, 12, 13, 151651, 14]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/tokenize":
            return httpx.Response(200, json={"count": 6, "max_model_len": 4096, "tokens": tokens})
        rows = [[0.5, 0.5], [0.3, 0.7], [0.5, 0.5], [0.5, 0.5], [0.6, 0.4], [0.5, 0.5]]
        return httpx.Response(200, json=pooling_body([rows]))

    rows = await prm(handler).score("p", [Trajectory(("a", "b"))])
    assert rows[0].step_scores == (0.7, 0.4)


async def test_pooling_sequence_pooled_vector_says_to_ask_for_token_classify() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pooling_body([[0.1, 0.2]]))  # type: ignore[list-item]

    with pytest.raises(VerifierError, match=r"PoolingPRM: result 0 is one vector.*token_classify"):
        await prm(handler).score("p", [Trajectory(("a",))])


async def test_pooling_non_row_data_is_a_verifier_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = pooling_body([[]])
        body["data"][0]["data"] = "AAAA"  # base64, which is not asked for
        return httpx.Response(200, json=body)

    with pytest.raises(VerifierError, match="PoolingPRM: result 0 is not a list of score rows"):
        await prm(handler).score("p", [Trajectory(("a",))])


async def test_pooling_request_states_the_token_classify_task() -> None:
    server = FakeVLLM(rows_by_tag)
    await prm(server).score("p", [Trajectory(("a",))])
    assert server.requests[0]["body"]["task"] == "token_classify"
    untasked = FakeVLLM(rows_by_tag)
    await prm(untasked, task=None).score("p", [Trajectory(("a",))])
    assert "task" not in untasked.requests[0]["body"]


class PreSplitVLLM(FakeVLLM):
    """A server from before the task split: it rejects the field by name, as pydantic does."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if "task" in body:
            self.requests.append({"path": request.url.path, "body": body})
            detail = (
                "1 validation error: body.task: Input should be 'encode', 'embed' or 'classify'"
            )
            return httpx.Response(400, json={"object": "error", "message": detail, "code": 400})
        return super().__call__(request)


async def test_pooling_server_rejecting_task_is_asked_again_without_it_and_remembered() -> None:
    server = PreSplitVLLM(rows_by_tag)
    verifier = prm(server)
    trajectories = [Trajectory(("ok",)), Trajectory(("wrong", "ok"))]
    rows = await verifier.score("p", trajectories)
    assert [r.step_scores for r in rows] == [(0.8,), (0.1, 0.8)]
    await verifier.score("p", trajectories)
    assert ["task" in r["body"] for r in server.requests] == [True, False, False]
    assert server.requests[1]["body"]["input"] == server.requests[0]["body"]["input"]


async def test_pooling_400_not_about_task_is_not_retried_without_it() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(400, json={"object": "error", "message": "prompt is too long"})

    with pytest.raises(VerifierError, match=r"HTTP 400.*too long"):
        await prm(handler, batch_input=True).score("p", [Trajectory(("a",))])
    assert len(bodies) == 1 and bodies[0]["task"] == "token_classify"


async def test_pooling_per_token_rows_with_task_token_classify() -> None:
    """A token-classification server without step pooling: one row per token, as vLLM's
    token_classify task answers; the rows at the step tags are picked out through /tokenize."""
    tokens = [9, 151651, 10, 151651]
    requests: list[tuple[str, dict[str, Any]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        requests.append((request.url.path, body))
        if request.url.path == "/tokenize":
            return httpx.Response(200, json={"count": 4, "max_model_len": 4096, "tokens": tokens})
        rows = [[0.5, 0.5], [0.25, 0.75], [0.5, 0.5], [0.875, 0.125]]
        return httpx.Response(200, json=pooling_body([rows]))

    rows = await prm(handler).score("p", [Trajectory(("a", "b"))])
    assert rows[0].step_scores == (0.75, 0.125)
    assert [path for path, _ in requests] == ["/pooling", "/tokenize"]
    assert requests[0][1]["task"] == "token_classify"
    assert requests[1][1]["prompt"] == requests[0][1]["input"][0]


async def test_pooling_prefix_ends_reads_the_last_row_of_every_prefix() -> None:
    server = FakeVLLM(lambda text: [[0.0], [float(text.count("<extra_0>"))]])
    verifier = prm(server, rows_at="prefix_ends", rows_are="logits", positive_index=0)
    rows = await verifier.score("p", [Trajectory(("a", "b")), Trajectory(("c",))])
    sigmoid = [1 / (1 + math.exp(-k)) for k in (1.0, 2.0, 1.0)]
    assert [r.step_scores for r in rows] == [tuple(sigmoid[:2]), (sigmoid[2],)]
    inputs = server.requests[0]["body"]["input"]
    assert len(server.requests) == 1 and len(inputs) == 3
    assert [text.count("<extra_0>") for text in inputs] == [1, 2, 1]


async def test_pooling_batches_split_by_max_batch_size() -> None:
    server = FakeVLLM(rows_by_tag)
    verifier = prm(server, max_batch_size=2)
    rows = await verifier.score("p", [Trajectory((f"s{i}",)) for i in range(5)])
    assert len(rows) == 5
    assert [len(r["body"]["input"]) for r in server.requests] == [2, 2, 1]


async def test_pooling_falls_back_to_one_string_per_request() -> None:
    """A server that only takes ``"input": "<string>"`` (as vLLM's example sends) still works."""
    bodies: list[Any] = []

    def strings_only(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body["input"])
        if not isinstance(body["input"], str):
            return httpx.Response(
                400, json={"object": "error", "message": "input must be a string"}
            )
        return httpx.Response(200, json=pooling_body([rows_by_tag(body["input"])]))

    verifier = prm(strings_only)
    trajectories = [Trajectory(("ok",)), Trajectory(("wrong", "ok"))]
    rows = await verifier.score("p", trajectories)
    assert [r.step_scores for r in rows] == [(0.8,), (0.1, 0.8)]
    rows = await verifier.score("p", trajectories)  # remembered: no list is tried again
    assert [type(b).__name__ for b in bodies] == ["list", "str", "str", "str", "str"]
    strict = prm(strings_only, batch_input=True)
    with pytest.raises(VerifierError, match="HTTP 400"):
        await strict.score("p", trajectories)


def test_pooling_prm_guides_beam_search() -> None:
    solver = ScriptedSolver(
        [
            "2 + 2 = 5, wrong\n\nThe answer is $\\boxed{5}$.",
            "2 + 2 = 4\n\nThe answer is $\\boxed{4}$.",
        ]
    )
    search = sal.BeamSearch(
        solver=solver, verifier=prm(FakeVLLM(rows_by_tag)), n=4, beam_width=2, max_steps=4, seed=0
    )
    result = search.run("What is 2 + 2?")
    assert result.answer == "4"
