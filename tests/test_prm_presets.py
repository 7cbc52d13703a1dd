"""PRM presets: the exact request each one sends and the scores it reads from a documented body.

vLLM cannot run here, so each server is an ``httpx.MockTransport`` that records the request and
answers with a body shaped as vLLM documents it: ``/pooling`` answers ``{"data": [{"index",
"object": "pooling", "data": rows}], ...}`` and chat completions carry ``logprobs.content[0]
.top_logprobs`` as the OpenAI API documents. The row values are chosen so every expected score is
exact in binary floating point, or compared with ``pytest.approx`` where a softmax or sigmoid runs.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import sal_plugins as sal
from sal_plugins._cli_setup import add_model_flags, build_verifier
from sal_plugins.errors import ConfigError, ScoreCountError
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.verifiers import ChatLogprobPRM, PoolingPRM, Trajectory
from sal_plugins.verifiers.presets import PRM_PRESETS, prm_preset

PROBLEM = "What is 2 + 3?"
STEPS = ("2 + 3 = 5.", "The answer is 5.")


class Recorder:
    """Records every request; ``answer(path, body)`` gives the response JSON."""

    def __init__(self, answer: Callable[[str, dict[str, Any]], Any]) -> None:
        self.answer = answer
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append((request.url.path, body))
        return httpx.Response(200, json=self.answer(request.url.path, body))


def pooling_body(rows_per_input: list[Any]) -> dict[str, Any]:
    """A ``/pooling`` response body as vLLM documents it."""
    return {
        "id": "pool-1",
        "object": "list",
        "created": 1737000000,
        "model": "prm",
        "data": [
            {"index": i, "object": "pooling", "data": rows} for i, rows in enumerate(rows_per_input)
        ],
        "usage": {"prompt_tokens": 40, "total_tokens": 40, "completion_tokens": 0},
    }


def chat_body(alternatives: dict[str, float]) -> dict[str, Any]:
    first = next(iter(alternatives))
    top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in alternatives.items()]
    content = [{"token": first, "logprob": alternatives[first], "bytes": None, "top_logprobs": top}]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "prm",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": first},
                "logprobs": {"content": content},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": 1, "total_tokens": 31},
    }


def preset(name: str, server: Recorder, **kwargs: Any) -> Any:
    route = PRM_PRESETS[name].route
    base_url = "http://prm.test:8000/v1" if route == "chat" else "http://prm.test:8001"
    return prm_preset(
        name,
        base_url=base_url,
        api_key="preset-secret",
        transport=httpx.MockTransport(server),
        **kwargs,
    )


async def test_qwen_math_prm_golden_request_and_scores() -> None:
    server = Recorder(lambda path, body: pooling_body([[[0.25, 0.75], [0.875, 0.125]]]))
    rows = await preset("qwen2.5-math-prm", server).score(PROBLEM, [Trajectory(STEPS)])
    assert rows[0].step_scores == (0.75, 0.125)
    assert server.requests == [
        (
            "/pooling",
            {
                "model": "Qwen/Qwen2.5-Math-PRM-7B",
                "input": [
                    "<|im_start|>system\nPlease reason step by step, and put your final answer "
                    "within \\boxed{}.<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
                    "<|im_start|>assistant\n2 + 3 = 5.<extra_0>The answer is 5.<extra_0>"
                    "<|im_end|>\n"
                ],
                "task": "token_classify",
            },
        )
    ]


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("rlhflow-deepseek", "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data"),
        ("rlhflow-mistral", "RLHFlow/Llama3.1-8B-PRM-Mistral-Data"),
    ],
)
async def test_rlhflow_golden_requests_and_scores(name: str, model: str) -> None:
    def answer(path: str, body: dict[str, Any]) -> Any:
        p_plus = 0.75 if len(body["messages"]) == 1 else 0.5
        return chat_body({"+": math.log(p_plus), "-": math.log(0.25), "The": math.log(0.01)})

    server = Recorder(answer)
    rows = await preset(name, server).score(PROBLEM, [Trajectory(STEPS)])
    assert rows[0].step_scores == pytest.approx((0.75 / 1.0, 0.5 / 0.75))
    common = {"max_tokens": 1, "temperature": 0.0, "logprobs": True, "top_logprobs": 20}
    bodies = sorted((body for _, body in server.requests), key=lambda b: len(b["messages"]))
    assert {path for path, _ in server.requests} == {"/v1/chat/completions"}
    assert bodies == [
        {"model": model, "messages": [{"role": "user", "content": "What is 2 + 3? 2 + 3 = 5."}]}
        | common,
        {
            "model": model,
            "messages": [
                {"role": "user", "content": "What is 2 + 3? 2 + 3 = 5."},
                {"role": "assistant", "content": "+"},
                {"role": "user", "content": "The answer is 5."},
            ],
        }
        | common,
    ]


async def test_math_shepherd_golden_request_and_plus_first_rows() -> None:
    # With returned_token_ids [648, 387] vLLM's rows are [P(+), P(-)]: the positive class is 0.
    server = Recorder(lambda path, body: pooling_body([[[0.75, 0.25], [0.125, 0.875]]]))
    steps = ("Janet has 16 eggs. ки", "She sells 9.")
    rows = await preset("math-shepherd", server).score("Q?", [Trajectory(steps)])
    assert rows[0].step_scores == (0.75, 0.125)
    assert server.requests == [
        (
            "/pooling",
            {
                "model": "peiyi9979/math-shepherd-mistral-7b-prm",
                "input": ["Q? Janet has 16 eggs.  ки\nShe sells 9. ки\n"],
                "task": "token_classify",
            },
        )
    ]


async def test_math_shepherd_logit_rows_are_softmaxed() -> None:
    server = Recorder(lambda path, body: pooling_body([[[math.log(3.0), 0.0]]]))
    rows = await preset("math-shepherd", server).score("Q?", [Trajectory(("a",))])
    assert rows[0].step_scores[0] == pytest.approx(0.75)


async def test_pure_prm_golden_request_and_scores() -> None:
    server = Recorder(lambda path, body: pooling_body([[[0.5, 0.5], [0.0625, 0.9375]]]))
    rows = await preset("pure-prm", server).score(PROBLEM, [Trajectory(STEPS)])
    assert rows[0].step_scores == (0.5, 0.9375)
    assert server.requests == [
        (
            "/pooling",
            {
                "model": "jinachris/PURE-PRM-7B",
                "input": ["What is 2 + 3? 2 + 3 = 5.\nThe answer is 5.\n"],
                "task": "token_classify",
            },
        )
    ]


async def test_pure_prm_merged_newline_is_a_count_error_not_a_shift() -> None:
    """One step tag merged into '.\\n' leaves one row for two steps: an error, never a guess."""
    server = Recorder(lambda path, body: pooling_body([[[0.5, 0.5]]]))
    with pytest.raises(ScoreCountError, match=r"pure-prm: .*1 score rows.*2 steps"):
        await preset("pure-prm", server).score(PROBLEM, [Trajectory(STEPS)])


async def test_skywork_golden_prefixes_and_sigmoid_of_last_value() -> None:
    """All-token value rows for the first prefix; one pooled value for the second: both read."""

    def answer(path: str, body: dict[str, Any]) -> Any:
        return pooling_body([[[-3.0], [0.5], [math.log(3.0)]], [math.log(1 / 3)]])

    server = Recorder(answer)
    rows = await preset("skywork-o1-prm", server).score(PROBLEM, [Trajectory(STEPS)])
    assert rows[0].step_scores == pytest.approx((0.75, 0.25))
    assert server.requests == [
        (
            "/pooling",
            {
                "model": "Skywork/Skywork-o1-Open-PRM-Qwen-2.5-7B",
                "input": [
                    "What is 2 + 3?\n2 + 3 = 5.\n",
                    "What is 2 + 3?\n2 + 3 = 5.\nThe answer is 5.\n",
                ],
                "task": "token_classify",
            },
        )
    ]


def test_presets_by_name_alias_and_model_id() -> None:
    big = prm_preset("Qwen/Qwen2.5-Math-PRM-72B", base_url="http://h:1")
    assert isinstance(big, PoolingPRM) and big.model == "Qwen/Qwen2.5-Math-PRM-72B"
    assert big.step_tag == "<extra_0>"
    small = prm_preset("SKYWORK_O1_PRM", base_url="http://h:1", model="served-name")
    assert isinstance(small, PoolingPRM) and small.model == "served-name"
    assert small.rows_at == "prefix_ends"
    chat = prm_preset("RLHFlow/Llama3.1-8B-PRM-Mistral-Data", base_url="http://h:1/v1")
    assert isinstance(chat, ChatLogprobPRM) and chat.name == "ChatLogprobPRM:rlhflow-mistral"


def test_preset_overrides_replace_settings_and_unknown_ones_name_the_choices() -> None:
    custom = prm_preset("qwen2.5-math-prm", base_url="http://h:1", max_batch_size=4, task=None)
    assert isinstance(custom, PoolingPRM)
    assert custom.max_batch_size == 4 and custom.task is None
    with pytest.raises(ConfigError, match=r"PoolingPRM takes no top_k; settings it takes: .*task"):
        prm_preset("qwen2.5-math-prm", base_url="http://h:1", top_k=3)


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown PRM preset 'llemma'.*qwen2.5-math-prm.*pure-prm"
    ):
        prm_preset("llemma", base_url="http://h:1")


def test_pooling_preset_with_v1_url_says_to_use_the_server_root() -> None:
    with pytest.raises(ConfigError, match=r"server root.*'http://h:1'"):
        prm_preset("math-shepherd", base_url="http://h:1/v1")


def test_preset_repr_and_errors_keep_the_api_key_out() -> None:
    verifier = prm_preset("pure-prm", base_url="http://h:1", api_key="sk-very-secret-123")
    assert "sk-very-secret-123" not in repr(verifier.endpoint)  # type: ignore[attr-defined]


def test_every_preset_documents_how_it_is_served() -> None:
    for name, entry in PRM_PRESETS.items():
        assert entry.name == name and entry.model in entry.notes, name
        assert "vllm serve" in entry.notes or "vLLM" in entry.notes, name


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_model_flags(parser)
    return parser.parse_args(list(argv))


def test_cli_prm_preset_builds_the_preset_verifier() -> None:
    verifier, shown = build_verifier(
        parse("--prm-url", "http://prm.test:8001", "--prm-preset", "math-shepherd")
    )
    assert isinstance(verifier, PoolingPRM)
    assert verifier.model == "peiyi9979/math-shepherd-mistral-7b-prm"
    assert verifier.step_tag == " ки\n" and verifier.positive_index == 0
    assert (
        shown == "preset:math-shepherd:peiyi9979/math-shepherd-mistral-7b-prm@http://prm.test:8001"
    )
    named, _ = build_verifier(
        parse("--prm-url", "http://p:1/v1", "--prm-preset", "rlhflow-deepseek", "--prm-model", "m")
    )
    assert isinstance(named, ChatLogprobPRM) and named.model == "m"


def test_cli_prm_preset_needs_a_url() -> None:
    with pytest.raises(ConfigError, match="--prm-preset needs --prm-url"):
        build_verifier(parse("--prm-preset", "pure-prm"))


def test_preset_guides_beam_search_end_to_end() -> None:
    def answer(path: str, body: dict[str, Any]) -> Any:
        rows = []
        for text in body["input"]:
            steps = text.split(" ки\n")[:-1]
            # [P(+), P(-)] per step, as the step pooler returns them for this model
            rows.append([[0.9, 0.1] if "5" in step else [0.1, 0.9] for step in steps])
        return pooling_body(rows)

    solver = ScriptedSolver(
        ["2 + 3 = 6\n\nThe answer is $\\boxed{6}$.", "2 + 3 = 5\n\nThe answer is $\\boxed{5}$."]
    )
    verifier = preset("math-shepherd", Recorder(answer))
    search = sal.BeamSearch(
        solver=solver, verifier=verifier, n=4, beam_width=2, max_steps=4, seed=0
    )
    assert search.run(PROBLEM).answer == "5"
