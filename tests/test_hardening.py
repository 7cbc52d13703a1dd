"""Regression tests for the hardening issue: each one failed on the engine before the fix."""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from dataclasses import dataclass, field

import pytest
from strategy_helpers import no_sleep

import sal_plugins as sal
from sal_plugins._driver import SearchDriver
from sal_plugins.errors import ConfigError, InputError, TransientError
from sal_plugins.faults import MAX_RETRY_AFTER_S, RetryPolicy, parse_retry_after
from sal_plugins.solvers import GenerationRequest, OpenAISolver, ScriptedSolver, SolverResponse
from sal_plugins.solvers.base import SolverCapabilities
from sal_plugins.solvers.fanout import fan_out
from sal_plugins.solvers.scripted import fail_calls
from sal_plugins.verifiers import PoolingPRM, ScriptedVerifier, Trajectory

PROBLEM = "What is 2 + 2?"
RIGHT = "2 + 2 = 4\n\nThe answer is $\\boxed{4}$."
STEPS = "First, look.\n\nThen 2 + 2 = 4\n\nThe answer is $\\boxed{4}$."


def good_verifier() -> ScriptedVerifier:
    return ScriptedVerifier(lambda p, s: 0.9, score_range=(0.0, 1.0))


async def run(strategy: sal.SearchStrategy) -> sal.SearchResult:
    async for event in SearchDriver(strategy, PROBLEM, sleep=no_sleep).events():
        if isinstance(event, sal.SearchFinished):
            return event.result
    raise AssertionError("no SearchFinished")


# --- 3. a capped search survives a transient fault on its first request ----------------------


@dataclass
class Undeclared:
    """A solver that declares nothing: how it serves ``n`` is learned from its responses."""

    inner: ScriptedSolver

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        return await self.inner.generate(request)


@pytest.mark.parametrize("cap", [2, 3, 4])
async def test_a_capped_search_retries_a_transient_fault_on_its_first_request(cap: int) -> None:
    flaky = ScriptedSolver([RIGHT], fail=fail_calls(1, transient=True))
    search = sal.BestOfN(
        solver=Undeclared(flaky),
        verifier=good_verifier(),
        n=4,
        early_stop=False,
        budget=sal.Budget(max_calls=cap),
        seed=0,
    )
    result = await run(search)  # raised SearchError after the one failed call
    assert result.answer == "4"
    assert result.usage.retries == 1
    assert result.usage.calls <= cap


@dataclass
class HonoursNServer:
    """Built on the core fan-out helper, like every shipped adapter; the server honours ``n``."""

    capabilities: SolverCapabilities = field(
        default_factory=lambda: SolverCapabilities(respects_max_requests=True)
    )
    inner: ScriptedSolver = field(default_factory=lambda: ScriptedSolver([RIGHT]))
    asked: list[int] = field(default_factory=list)

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        async def one_request(part: GenerationRequest) -> SolverResponse:
            self.asked.append(part.n)
            return await self.inner.generate(part)

        return await fan_out(one_request, request, self.capabilities)


async def test_a_server_that_honours_n_gets_every_sample_under_a_tight_cap() -> None:
    solver = HonoursNServer()
    search = sal.BestOfN(
        solver=solver,
        verifier=good_verifier(),
        n=16,
        early_stop=False,
        budget=sal.Budget(max_calls=13),
        seed=0,
    )
    result = await run(search)
    # It stopped after 2 calls with 13 samples: the first request was shrunk to the cap.
    assert solver.asked == [16]
    assert len(result.completions) == 16
    assert (result.usage.generation_calls, result.usage.verifier_calls) == (1, 1)
    assert result.stop_reason == "finished"


async def test_fan_out_under_a_request_cap_returns_what_the_cap_allows() -> None:
    capabilities = SolverCapabilities(honours_n=False, max_choices=1)
    served: list[int] = []

    async def one_request(part: GenerationRequest) -> SolverResponse:
        served.append(part.n)
        return await ScriptedSolver([RIGHT]).generate(part)

    request = GenerationRequest(problem=PROBLEM, n=6, seed=0, max_requests=4)
    response = await fan_out(one_request, request, capabilities)
    assert served == [1, 1, 1, 1]
    assert len(response.generations) == response.requests == 4


# --- 4. sync run() returns at its deadline while a sync verifier function still runs ----------


def test_sync_run_returns_at_the_deadline_while_a_sync_verifier_runs() -> None:
    release = threading.Event()

    def slow(problem: str, steps: list[str]) -> float:
        release.wait(30)  # a scorer that hangs
        return 1.0

    search = sal.BestOfN(
        solver=ScriptedSolver([RIGHT]),
        verifier=slow,
        n=2,
        seed=0,
        budget=sal.Budget(deadline_s=1.0),
    )
    started = time.monotonic()
    try:
        result = search.run(PROBLEM)  # returned only when the verifier did, after 30 s
    finally:
        release.set()
    assert time.monotonic() - started < 15
    assert result.stop_reason == "deadline"
    assert result.verification == "unverified"


# --- 5. one retry policy ----------------------------------------------------------------------


@pytest.mark.parametrize("asked", [86400.0, math.inf, math.nan, 1e300])
def test_a_huge_or_broken_retry_after_is_capped(asked: float) -> None:
    policy = RetryPolicy()
    error = TransientError("slow down", status_code=429, retry_after=asked)
    wait = policy.wait_s(error, 1, random.Random(0))
    assert 0.0 <= wait <= MAX_RETRY_AFTER_S


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "86400"},
        {"Retry-After": "inf"},
        {"Retry-After": "nan"},
        {"Retry-After": "Fri, 01 Jan 2099 00:00:00 GMT"},
        {"retry-after-ms": "1e12"},
    ],
)
def test_retry_after_headers_are_capped_or_ignored(headers: dict[str, str]) -> None:
    wait = parse_retry_after(headers)
    assert wait is None or 0.0 <= wait <= MAX_RETRY_AFTER_S


async def test_a_verifier_down_for_good_is_not_rescored_one_by_one() -> None:
    down = ScriptedVerifier(
        lambda p, s: 0.5,
        fail_when=lambda steps: True,
        error=lambda: TransientError("503 from the PRM", status_code=503),
    )
    search = sal.BestOfN(
        solver=ScriptedSolver([RIGHT]), verifier=down, n=8, early_stop=False, max_retries=3
    )
    result = await run(search)
    # (R + 1) calls for the one batch; it was (R + 1) * (N + 1) = 36 with singles after it.
    assert down.calls == 4
    assert result.verification == "unverified"


async def test_a_bad_trajectory_is_still_isolated_by_scoring_one_by_one() -> None:
    picky = ScriptedVerifier(lambda p, s: 0.5, fail_when=lambda steps: "look" in steps[0])
    search = sal.BestOfN(
        solver=ScriptedSolver([RIGHT, STEPS]), verifier=picky, n=2, early_stop=False, seed=0
    )
    result = await run(search)
    assert result.verification == "partial"
    assert result.best is not None and result.best.score == 0.5


# --- 6. a verifier that scores nothing is visible, and beams are not grown blind -------------


async def test_a_verifier_failing_on_everything_is_reported_and_stops_beam_search() -> None:
    broken = ScriptedVerifier(lambda p, s: 0.5, fail_when=lambda steps: True)
    solver = ScriptedSolver([STEPS])
    search = sal.BeamSearch(solver=solver, verifier=broken, n=4, beam_width=2, max_steps=5, seed=0)
    result = await run(search)
    assert result.verification == "unverified"
    assert result.stop_reason == "error"  # was "finished", after expanding every round blind
    assert {r.prefix_steps for r in solver.requests} == {()}  # no unscored beam was grown


async def test_dvts_stops_a_subtree_whose_steps_were_not_scored() -> None:
    broken = ScriptedVerifier(lambda p, s: 0.5, fail_when=lambda steps: True)
    solver = ScriptedSolver([STEPS])
    search = sal.DVTS(
        solver=solver, verifier=broken, n=4, beam_width=2, max_steps=5, lookahead=0, seed=0
    )
    result = await run(search)
    assert result.verification == "unverified"
    assert result.stop_reason == "error"
    assert {r.prefix_steps for r in solver.requests} == {()}


async def test_self_consistency_says_it_had_no_verifier() -> None:
    search = sal.BestOfN(solver=ScriptedSolver([RIGHT]), n=3, selection="majority", seed=0)
    assert (await run(search)).verification == "none"


# --- 7. no credential in any repr or error ----------------------------------------------------


def test_http_verifier_reprs_hide_the_api_key() -> None:
    prm = PoolingPRM(
        model="m", base_url="http://user:hunter2@prm.test", api_key="sk-secret-key-1234"
    )
    shown = repr(prm.endpoint) + repr(prm)
    assert "sk-secret-key-1234" not in shown
    assert "hunter2" not in shown


def test_openai_solver_repr_hides_url_credentials() -> None:
    solver = OpenAISolver(model="m", base_url="https://me:hunter2@api.test/v1?api_key=abc123xyz")
    assert "hunter2" not in repr(solver) and "abc123xyz" not in repr(solver)
    assert "api.test" in repr(solver)


async def test_a_connection_error_message_hides_url_credentials() -> None:
    prm = PoolingPRM(model="m", base_url="http://user:hunter2@127.0.0.1:9", timeout=2.0)
    with pytest.raises(TransientError) as caught:
        await prm.score(PROBLEM, [Trajectory(("a",))])
    assert "hunter2" not in str(caught.value)


# --- 8. typed errors at the boundary ----------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"max_calls": math.nan},
        {"max_calls": True},
        {"max_calls": 2.5},
        {"max_tokens": math.inf},
        {"deadline_s": math.nan},
        {"deadline_s": math.inf},
        {"max_cost": False},
        {"max_cost": -1.0},
    ],
)
def test_budget_rejects_values_that_would_silently_remove_a_cap(
    settings: dict[str, object],
) -> None:
    with pytest.raises(ConfigError, match="Budget"):
        sal.Budget(**settings)  # type: ignore[arg-type]


def test_a_lone_surrogate_in_the_problem_is_an_input_error() -> None:
    search = sal.BestOfN(solver=ScriptedSolver([RIGHT]), n=1)
    with pytest.raises(InputError, match="surrogate"):
        search.run("What is 2 + 2?\ud800")


def test_the_fault_policy_loop_does_not_sleep_after_the_last_try() -> None:
    slept: list[float] = []
    attempts = 0

    async def always_503() -> None:
        nonlocal attempts
        attempts += 1
        raise TransientError("503", status_code=503, retry_after=0.01)

    async def record(seconds: float) -> None:
        slept.append(seconds)

    async def main() -> None:
        await RetryPolicy(max_retries=2).call(
            always_503,
            may_retry=lambda error: True,
            on_retry=lambda error, retry, wait: None,
            sleep=record,
            rng=random.Random(0),
        )

    with pytest.raises(TransientError):
        asyncio.run(main())
    assert attempts == 3 and slept == [0.01, 0.01]


async def test_cancelling_a_search_cancels_its_requests_in_flight() -> None:
    started, finished = asyncio.Event(), []

    class Slow(ScriptedSolver):
        async def generate(self, request: GenerationRequest) -> SolverResponse:
            started.set()
            await asyncio.sleep(30)
            finished.append(request)
            return await super().generate(request)

    search = sal.BestOfN(solver=Slow([RIGHT]), n=2, seed=0)
    task = asyncio.ensure_future(search.arun(PROBLEM))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert pending == [] and finished == []  # the request task was left running, for 30 s
