"""``benchmarks/fake_server.py --task chain``: the step-slip chain task over real HTTP.

The server plays ``benchmarks/_chain_task.py`` for ``OpenAISolver`` and ``PoolingPRM``; the
in-process solver and verifier of ``benchmarks/accuracy_scripted.py`` play the same module. A
seeded search must come out the same on both paths (the server reads the problem, the steps so
far, the seed of each choice and the judged steps exactly as the in-process pair gets them), and
the slip and the scores must follow the task's rules.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _fake_upstream import fake_server_module

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import _chain_task as task
from accuracy_scripted import NoisyPRM, SlipSolver

import sal_plugins as sal
from sal_plugins.errors import SalError
from sal_plugins.solvers import OpenAISolver
from sal_plugins.solvers.base import ContinuationMode, GenerationRequest
from sal_plugins.verifiers import PoolingPRM, Trajectory

SLIP, NOISE = 0.25, 0.15
PROBLEMS = task.make_problems(3, 6, seed=11)


@contextlib.contextmanager
def chain_server(slip: float = SLIP, noise: float = NOISE) -> Iterator[str]:
    """A latency-free fake server in task mode; yields its root URL."""
    module = fake_server_module()
    server = module.FakeServer(0.0, 0.0, task="chain", slip=slip, prm_noise=noise)
    with module.serving(server, nodelay=True) as root:
        yield str(root)


@pytest.fixture(scope="module")
def root() -> Iterator[str]:
    with chain_server() as url:
        yield url


Build = Callable[[Any, Any, int], sal.SearchStrategy]

ARMS: dict[str, Build] = {
    "greedy": lambda s, v, seed: sal.BestOfN(
        solver=s, verifier=v, seed=seed, n=1, temperature=0.0, selection="naive"
    ),
    "best_of_n": lambda s, v, seed: sal.BestOfN(
        solver=s, verifier=v, seed=seed, n=8, selection="weighted"
    ),
    "beam_search": lambda s, v, seed: sal.BeamSearch(
        solver=s, verifier=v, seed=seed, n=4, beam_width=2, max_steps=9
    ),
    "particle_filter": lambda s, v, seed: sal.ParticleFilter(
        solver=s, verifier=v, seed=seed, n=4, max_steps=9
    ),
}


@pytest.mark.parametrize("arm", sorted(ARMS))
async def test_a_seeded_search_is_the_same_over_http_and_in_process(root: str, arm: str) -> None:
    solver = OpenAISolver(model="fake", base_url=f"{root}/v1")
    prm = PoolingPRM(model="fake-prm", base_url=root)
    try:
        for seed, (problem, _) in enumerate(PROBLEMS):
            over_http = await ARMS[arm](solver, prm, seed).arun(problem)
            local = await ARMS[arm](SlipSolver(SLIP), NoisyPRM(NOISE), seed).arun(problem)
            assert over_http.answer == local.answer
            assert [c.text for c in over_http.completions] == [c.text for c in local.completions]
            assert [c.step_scores for c in over_http.completions] == [
                c.step_scores for c in local.completions
            ]
            assert over_http.usage.completion_tokens == local.usage.completion_tokens
            assert over_http.usage.generation_calls == local.usage.generation_calls
    finally:
        await solver.aclose()
    if arm in ("beam_search", "particle_filter"):  # partial solutions went as assistant prefill
        assert solver.continuation == "native"


@pytest.mark.parametrize(("slip", "right"), [(0.0, True), (1.0, False)])
async def test_the_slip_decides_whether_a_solution_is_right(slip: float, right: bool) -> None:
    with chain_server(slip=slip, noise=0.0) as url:
        solver = OpenAISolver(model="fake", base_url=f"{url}/v1")
        prm = PoolingPRM(model="fake-prm", base_url=url)
        try:
            for seed, (problem, answer) in enumerate(PROBLEMS):
                result = await ARMS["best_of_n"](solver, prm, seed).arun(problem)
                assert (result.answer == str(answer)) is right
                assert len(result.best.steps) == len(task.chain_of(problem)[1]) + 1
                if right:
                    assert result.best.step_scores == pytest.approx([task.ON_PATH] * 7)
        finally:
            await solver.aclose()


async def test_pooling_scores_each_step_by_its_running_value() -> None:
    problem = "Start at 5. Add 3, then 4, then 2. What is the result?"
    steps = ("5 + 3 = 8", "8 + 4 = 13", "13 + 2 = 15", "The answer is $\\boxed{15}$.")
    with chain_server(noise=0.0) as url:
        prm = PoolingPRM(model="fake-prm", base_url=url)
        judged = await prm.score(problem, [Trajectory(steps), Trajectory(steps[:1])])
    low, high = task.OFF_PATH, task.ON_PATH
    assert [j.step_scores for j in judged] == [
        pytest.approx((high, low, low, low)),
        pytest.approx((high,)),
    ]


async def test_noise_is_fixed_per_judged_prefix(root: str) -> None:
    problem, _ = PROBLEMS[0]
    steps = tuple(task.write(problem, (), 3, SLIP, to_end=True)[0])
    prm = PoolingPRM(model="fake-prm", base_url=root)
    whole, again, head = await prm.score(
        problem, [Trajectory(steps), Trajectory(steps), Trajectory(steps[:2])]
    )
    assert whole.step_scores == again.step_scores
    assert whole.step_scores == tuple(task.step_scores(problem, steps, NOISE))
    assert whole.step_scores[:2] == head.step_scores
    assert len(set(whole.step_scores)) == len(steps)  # the noise is there


async def generated(
    root: str, continuation: ContinuationMode, request: GenerationRequest
) -> list[str]:
    """The texts the fake server at ``root`` writes for ``request`` in one continuation mode."""
    solver = OpenAISolver(model="fake", base_url=f"{root}/v1", continuation=continuation)
    try:
        response = await solver.generate(request)
    finally:
        await solver.aclose()
    return [g.text for g in response.generations]


@pytest.mark.parametrize("mode", ["completion", "instructed"])
async def test_every_continuation_mode_reads_the_same_partial(
    root: str, mode: ContinuationMode
) -> None:
    problem, _ = PROBLEMS[1]
    prefix = tuple(task.write(problem, (), 5, SLIP, to_end=True)[0][:3])
    request = GenerationRequest(
        problem=problem, prefix_steps=prefix, n=3, stop=("\n\n",), temperature=1.0, seed=40
    )
    texts = {c: await generated(root, c, request) for c in ("native", mode)}
    expected = [task.write(problem, prefix, 40 + i, SLIP, to_end=False)[0][0] for i in range(3)]
    assert texts["native"] == texts[mode] == expected


async def test_a_request_without_a_chain_problem_is_refused(root: str) -> None:
    solver = OpenAISolver(model="fake", base_url=f"{root}/v1")
    request = GenerationRequest(problem="What is 2 + 3?", n=1, temperature=1.0, seed=0)
    try:
        with pytest.raises(SalError, match="400"):
            await solver.generate(request)
    finally:
        await solver.aclose()


def test_bad_task_settings_are_refused() -> None:
    module = fake_server_module()
    with pytest.raises(ValueError, match="task"):
        module.FakeServer(0.0, 0.0, task="chains")
    with pytest.raises(ValueError, match="slip"):
        module.FakeServer(0.0, 0.0, task="chain", slip=1.5)


async def test_the_plain_mode_reads_an_instructed_partial_too() -> None:
    module = fake_server_module()
    with module.serving(module.FakeServer(0.0, 0.0), nodelay=True) as url:
        request = GenerationRequest(
            problem="What is 2 + 3?",
            prefix_steps=("Step one", "Step two"),
            n=2,
            stop=("\n\n",),
            temperature=1.0,
            seed=3,
        )
        texts = {c: await generated(url, c, request) for c in ("native", "instructed")}
        fresh = GenerationRequest(problem="What is 2 + 3?", n=1, seed=3)
        first = await generated(url, "instructed", fresh)

    # Both continue after the two steps given (the step written is numbered by them); the
    # instructed request used to be read as a fresh start.
    def labels(found: list[str]) -> list[str]:
        return [text.split(":")[0] for text in found]

    assert labels(texts["native"]) == labels(texts["instructed"])
    assert labels(texts["instructed"])[0] != labels(first)[0]
