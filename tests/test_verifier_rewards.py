"""ClassifyRM and TEIReward against response bodies shaped as vLLM ``/classify`` and TEI
``/predict`` document them (neither server runs here; an ``httpx.MockTransport`` plays them)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

import sal_plugins as sal
from sal_plugins.errors import ConfigError, InvalidScoreError, ScoreCountError, VerifierError
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.verifiers import ClassifyRM, TEIReward, Trajectory

SOLUTIONS = [
    "2 + 2 = 5\n\nThe answer is $\\boxed{5}$.",
    "2 + 2 = 4\n\nThe answer is $\\boxed{4}$.",
]


def reward_of(text: str) -> float:
    """The fake model likes solutions that say 4 and dislikes ones that say 5."""
    if "= 5" in text or "{5}" in text:
        return 0.1
    return 0.9 if "4" in text else 0.5


def classify_body(scores: list[float], *, reverse: bool = False) -> dict[str, Any]:
    """A ``/classify`` response body as vLLM documents it (two classes)."""
    data = [
        {"index": i, "label": "LABEL_1", "probs": [1.0 - s, s], "num_classes": 2}
        for i, s in enumerate(scores)
    ]
    if reverse:
        data.reverse()
    return {
        "id": "classify-9bf17f2847b046c7b2d5495f4b4f9682",
        "object": "list",
        "created": 1745383213,
        "model": "reward-model",
        "data": data,
        "usage": {"prompt_tokens": 10, "total_tokens": 10, "completion_tokens": 0},
    }


class FakeServer:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[tuple[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append((request.url.path, body))
        # json.dumps writes NaN as vLLM's and TEI's JSON encoders do; httpx's json= refuses it.
        content = json.dumps(self.answer(body))
        return httpx.Response(200, content=content, headers={"content-type": "application/json"})


def classify_rm(server: FakeServer, **kwargs: Any) -> ClassifyRM:
    return ClassifyRM(
        model="reward-model",
        base_url="http://vllm.test:8002",
        transport=httpx.MockTransport(server),
        **kwargs,
    )


def tei_rm(server: FakeServer, **kwargs: Any) -> TEIReward:
    return TEIReward(
        base_url="http://tei.test:8080", transport=httpx.MockTransport(server), **kwargs
    )


async def test_classify_documented_response_shape_outcome() -> None:
    server = FakeServer(
        lambda body: classify_body([reward_of(t) for t in body["input"]], reverse=True)
    )
    rm = classify_rm(server)
    trajectories = [Trajectory(tuple(s.split("\n\n"))) for s in SOLUTIONS]
    rows = await rm.score("What is 2 + 2?", trajectories)
    assert [r.step_scores for r in rows] == [(0.1,), (0.9,)]
    path, body = server.requests[0]
    assert path == "/classify" and len(server.requests) == 1
    assert body["input"][1] == (
        "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n"
        "2 + 2 = 4\n\nThe answer is $\\boxed{4}$.<|im_end|>\n"
    )
    assert rm.granularity == "outcome" and rm.score_range == (0.0, 1.0)


async def test_classify_documented_response_shape_per_step_scores_every_prefix() -> None:
    server = FakeServer(lambda body: classify_body([reward_of(t) for t in body["input"]]))
    rm = classify_rm(server, per_step=True)
    rows = await rm.score("p", [Trajectory(("2 + 2 = 4", "so 4")), Trajectory(("2 + 2 = 5",))])
    assert [r.step_scores for r in rows] == [(0.9, 0.9), (0.1,)]
    assert len(server.requests) == 1 and len(server.requests[0][1]["input"]) == 3
    assert rm.granularity == "step"


async def test_classify_logits_are_unbounded_raw_scores() -> None:
    server = FakeServer(
        lambda body: {
            **classify_body([0.0]),
            "data": [{"index": 0, "label": "LABEL_0", "probs": [3.5], "num_classes": 1}],
        }
    )
    rm = classify_rm(server, scores_are="logits")
    rows = await rm.score("p", [Trajectory(("a",))])
    assert rows[0].step_scores == (3.5,) and rm.score_range is None


async def test_classify_count_mismatch_and_nan_name_the_verifier() -> None:
    short = classify_rm(FakeServer(lambda body: classify_body([0.5])))
    with pytest.raises(ScoreCountError, match="ClassifyRM: the server returned 1 results for 2"):
        await short.score("p", [Trajectory(("a",)), Trajectory(("b",))])
    nan = classify_rm(FakeServer(lambda body: classify_body([float("nan")])))
    with pytest.raises(InvalidScoreError, match="ClassifyRM: returned a non-finite score"):
        await nan.score("p", [Trajectory(("a",))])
    high = classify_rm(FakeServer(lambda body: classify_body([0.5])), label_index=0)
    assert (await high.score("p", [Trajectory(("a",))]))[0].step_scores == (0.5,)


async def test_classify_rejects_bad_config() -> None:
    with pytest.raises(ConfigError, match="scores_are"):
        classify_rm(FakeServer(lambda body: {}), scores_are="percent")  # type: ignore[arg-type]


def tei_predictions(scores: list[float]) -> list[list[dict[str, Any]]]:
    """A ``/predict`` batch response as TEI documents it: one prediction list per input."""
    return [[{"score": s, "label": "LABEL_0"}] for s in scores]


async def test_tei_documented_response_shape_batch_of_pairs() -> None:
    server = FakeServer(lambda body: tei_predictions([reward_of(p[1]) for p in body["inputs"]]))
    rm = tei_rm(server)
    rows = await rm.score("What is 2 + 2?", [Trajectory(tuple(s.split("\n\n"))) for s in SOLUTIONS])
    assert [r.step_scores for r in rows] == [(0.1,), (0.9,)]
    path, body = server.requests[0]
    assert path == "/predict"
    assert body["inputs"][0] == ["What is 2 + 2?", SOLUTIONS[0]]
    assert body["truncate"] is True and body["truncation_direction"] == "Left"
    assert body["raw_scores"] is False


async def test_tei_documented_response_shape_multi_label_picks_label() -> None:
    def answer(body: dict[str, Any]) -> list[list[dict[str, Any]]]:
        # TEI sorts each input's predictions by score, so position says nothing about the label.
        return [
            [{"score": 0.7, "label": "bad"}, {"score": 0.3, "label": "good"}]
            for _ in body["inputs"]
        ]

    rm = tei_rm(FakeServer(answer), label="good", input_format="text", per_step=True)
    rows = await rm.score("p", [Trajectory(("a", "b"))])
    assert rows[0].step_scores == (0.3, 0.3)
    unlabelled = tei_rm(FakeServer(answer))
    with pytest.raises(VerifierError, match="TEIReward: input 0 got 2 labelled scores"):
        await unlabelled.score("p", [Trajectory(("a",))])


async def test_tei_count_mismatch_and_nan_name_the_verifier() -> None:
    short = tei_rm(FakeServer(lambda body: tei_predictions([0.5])))
    with pytest.raises(ScoreCountError, match="TEIReward: the server returned 1 predictions"):
        await short.score("p", [Trajectory(("a",)), Trajectory(("b",))])
    nan = tei_rm(FakeServer(lambda body: tei_predictions([float("nan")])))
    with pytest.raises(InvalidScoreError, match="TEIReward: returned a non-finite score"):
        await nan.score("p", [Trajectory(("a",))])
    too_high = tei_rm(FakeServer(lambda body: tei_predictions([1.5])))
    with pytest.raises(InvalidScoreError, match=r"TEIReward: returned 1\.5 .* outside"):
        await too_high.score("p", [Trajectory(("a",))])


def test_tei_reward_ranks_best_of_n() -> None:
    server = FakeServer(lambda body: tei_predictions([reward_of(p[1]) for p in body["inputs"]]))
    search = sal.BestOfN(solver=ScriptedSolver(SOLUTIONS), verifier=tei_rm(server), n=4, seed=0)
    assert search.run("What is 2 + 2?").answer == "4"


def test_classify_rm_ranks_best_of_n() -> None:
    server = FakeServer(lambda body: classify_body([reward_of(t) for t in body["input"]]))
    search = sal.BestOfN(
        solver=ScriptedSolver(SOLUTIONS), verifier=classify_rm(server), n=4, seed=1
    )
    assert search.run("What is 2 + 2?").answer == "4"
