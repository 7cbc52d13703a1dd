"""The search driver: sync and async entry points, deadlines, retries, budgets, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
from strategy_helpers import no_sleep

from sal_plugins import (
    BeamSearch,
    BestOfN,
    Budget,
    InputError,
    SearchError,
    SearchFinished,
    SelfRevision,
)
from sal_plugins._driver import SearchDriver
from sal_plugins.errors import SolverError, TransientError
from sal_plugins.events import RequestRetried
from sal_plugins.solvers import Generation, GenerationRequest, ScriptedSolver, SolverResponse
from sal_plugins.solvers.base import SolverCapabilities
from sal_plugins.solvers.scripted import fail_calls
from sal_plugins.strategies.base import Expand, Outcome, Plan, SearchStrategy
from sal_plugins.tree import SearchTree, split_steps
from sal_plugins.verifiers import Judgement, ScriptedVerifier, Trajectory
from sal_plugins.verifiers.base import report_usage

PROBLEM = "What is 2 + 2?"
RIGHT = "2 + 2 = 4\n\nThe answer is $\\boxed{4}$."
STEPS = "First, look.\n\nThen 2 + 2 = 4\n\nThe answer is $\\boxed{4}$."


def verifier() -> ScriptedVerifier:
    return ScriptedVerifier(lambda p, s: 0.9, score_range=(0.0, 1.0))


async def finish(driver: SearchDriver) -> tuple[list[object], SearchFinished]:
    events = [event async for event in driver.events()]
    final = events[-1]
    assert isinstance(final, SearchFinished)
    return events, final


# --- entry points ---------------------------------------------------------------------------


async def test_sync_run_works_inside_a_running_event_loop() -> None:
    asyncio.get_running_loop()  # this test runs inside one
    result = BestOfN(solver=ScriptedSolver([RIGHT]), n=2, seed=0).run(PROBLEM)
    assert result.answer == "4"


def test_sync_run_works_without_a_loop() -> None:
    assert BestOfN(solver=ScriptedSolver([RIGHT]), n=2, seed=0).run(PROBLEM).answer == "4"


@pytest.mark.parametrize("problem", ["", "   ", None, 42])
def test_bad_problems_raise_input_error(problem: object) -> None:
    search = BestOfN(solver=ScriptedSolver([RIGHT]))
    with pytest.raises(InputError):
        search.run(problem)  # type: ignore[arg-type]


def test_split_steps_drops_blank_steps_and_delimiters() -> None:
    assert split_steps("a\n\n\n\nb \n\n  ", "\n\n") == ("a", "b")
    assert split_steps("", "\n\n") == ()


# --- seeds and concurrency ------------------------------------------------------------------


async def test_requests_get_seeds_derived_from_the_strategy_seed() -> None:
    seeded = ScriptedSolver([RIGHT])
    await BestOfN(solver=seeded, n=4, chunk_size=1, early_stop=False, seed=5).arun(PROBLEM)
    again = ScriptedSolver([RIGHT])
    await BestOfN(solver=again, n=4, chunk_size=1, early_stop=False, seed=5).arun(PROBLEM)
    seeds = [r.seed for r in seeded.requests]
    assert None not in seeds and len(set(seeds)) == 4
    assert seeds == [r.seed for r in again.requests]
    unseeded = ScriptedSolver([RIGHT])
    await BestOfN(solver=unseeded, n=2, chunk_size=1, early_stop=False).arun(PROBLEM)
    assert [r.seed for r in unseeded.requests] == [None, None]


@dataclass
class CountingSolver:
    """Counts how many requests are in flight at once."""

    inner: ScriptedSolver
    in_flight: int = 0
    most: int = 0

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return await self.inner.generate(request)
        finally:
            self.in_flight -= 1


async def test_max_concurrency_bounds_requests_in_flight() -> None:
    for limit, expected in ((2, 2), (16, 6)):
        solver = CountingSolver(ScriptedSolver([RIGHT]))
        search = BestOfN(
            solver=solver, n=6, chunk_size=1, early_stop=False, max_concurrency=limit, seed=0
        )
        await search.arun(PROBLEM)
        assert solver.most == expected


# --- deadlines and budgets ------------------------------------------------------------------


@dataclass
class HangAfter:
    """Answers the first ``quick`` requests at once; later ones hang until cancelled."""

    inner: ScriptedSolver
    quick: int = 1
    served: int = 0
    cancelled: int = 0

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        self.served += 1
        if self.served > self.quick:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        return await self.inner.generate(request)


@pytest.mark.timeout(30)
async def test_a_real_deadline_cancels_hanging_requests_and_keeps_the_best_so_far() -> None:
    solver = HangAfter(ScriptedSolver([STEPS]))
    search = BeamSearch(
        solver=solver, verifier=verifier(), n=2, beam_width=2, budget=Budget(deadline_s=0.5)
    )
    result = await search.arun(PROBLEM)
    assert result.stop_reason == "deadline"
    assert solver.cancelled == 1
    assert result.completions and not result.completions[0].finished
    assert result.completions[0].steps == ("First, look.",)
    assert result.usage.generation_calls == 2  # the cancelled request reached the server


async def test_work_skipped_for_the_budget_is_reported_even_if_the_plan_ends() -> None:
    solver = ScriptedSolver([RIGHT])
    search = BestOfN(
        solver=solver, n=4, chunk_size=1, early_stop=False, budget=Budget(max_calls=2), seed=0
    )
    result = await search.arun(PROBLEM)
    assert solver.calls == 2
    assert len(result.completions) == 2
    assert result.stop_reason == "budget"


async def test_a_plan_that_ends_exactly_at_the_budget_finished() -> None:
    search = BestOfN(
        solver=ScriptedSolver([RIGHT]), verifier=verifier(), n=2, budget=Budget(max_calls=2)
    )
    result = await search.arun(PROBLEM)
    assert result.usage.calls == 2
    assert result.stop_reason == "finished"


@pytest.mark.parametrize("declared", [True, False])
async def test_a_solver_that_fans_out_is_charged_a_call_per_continuation(declared: bool) -> None:
    for cap in range(1, 16):
        solver = ScriptedSolver([STEPS], honours_n=False)
        if not declared:  # nothing declared: the driver learns it from the first response
            solver.capabilities = SolverCapabilities()
        search = BeamSearch(
            solver=solver,
            verifier=verifier(),
            n=4,
            beam_width=2,
            seed=0,
            budget=Budget(max_calls=cap),
        )
        result = await search.arun(PROBLEM)
        assert result.usage.calls == solver.calls + search.verifier.calls  # type: ignore[union-attr]
        assert result.usage.calls <= cap, cap


async def test_a_fanned_out_request_shrinks_to_the_calls_left() -> None:
    solver = ScriptedSolver([RIGHT], honours_n=False)
    search = BestOfN(solver=solver, n=6, early_stop=False, budget=Budget(max_calls=3), seed=0)
    result = await search.arun(PROBLEM)
    assert [r.n for r in solver.requests] == [3]
    assert solver.calls == result.usage.calls == 3
    assert len(result.completions) == 3
    assert result.stop_reason == "budget"


@dataclass
class Undeclared:
    """A solver that says nothing about how it serves ``n``."""

    inner: ScriptedSolver

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        return await self.inner.generate(request)


async def test_an_undeclared_solver_is_charged_as_fanning_out_until_a_response_shows() -> None:
    # Honours n, but does not say so: the first request is charged n calls (so a fan-out solver
    # could not overshoot the cap); once a response shows n choices from one request, one call.
    solver = ScriptedSolver([RIGHT], honours_n=True)
    search = BestOfN(
        solver=Undeclared(solver), n=6, selection="majority", budget=Budget(max_calls=2), seed=0
    )
    result = await search.arun(PROBLEM)
    # Round one wanted 4 samples and shrank to the 2 calls the cap allows; its answer showed one
    # request serves n, so round two's 2 samples were charged the one call left.
    assert [r.n for r in solver.requests] == [2, 2]
    assert result.usage.generation_calls == 2
    assert result.stop_reason == "budget"


async def test_retries_stop_when_the_call_budget_cannot_pay_for_them() -> None:
    flaky = ScriptedSolver([RIGHT], fail=fail_calls(1, 2, transient=True))
    search = BestOfN(
        solver=flaky, n=3, chunk_size=1, early_stop=False, budget=Budget(max_calls=3), seed=0
    )
    _, final = await finish(SearchDriver(search, PROBLEM, sleep=no_sleep))
    assert flaky.calls <= 3
    assert final.result.usage.calls <= 3
    assert final.result.stop_reason == "budget"


async def test_injected_clock_drives_the_deadline() -> None:
    ticks = iter(range(100))
    search = BeamSearch(
        solver=ScriptedSolver([STEPS]),
        verifier=verifier(),
        n=2,
        beam_width=2,
        budget=Budget(deadline_s=3),
    )
    driver = SearchDriver(search, PROBLEM, clock=lambda: float(next(ticks)))
    _, final = await finish(driver)
    assert final.result.stop_reason == "deadline"
    assert final.result.completions


# --- faults ---------------------------------------------------------------------------------


@dataclass
class RetryAfterSolver:
    """Fails the first call with a 429 asking to wait ``retry_after`` seconds."""

    inner: ScriptedSolver
    retry_after: float = 7.5
    calls: int = 0

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        self.calls += 1
        if self.calls == 1:
            raise TransientError("rate limited", status_code=429, retry_after=self.retry_after)
        return await self.inner.generate(request)


async def test_retry_after_is_honoured_with_the_injected_sleep() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    search = BestOfN(solver=RetryAfterSolver(ScriptedSolver([RIGHT])), n=2, seed=0)
    events, final = await finish(SearchDriver(search, PROBLEM, sleep=sleep))
    assert waits == [7.5]
    retried = [e for e in events if isinstance(e, RequestRetried)]
    assert len(retried) == 1 and retried[0].wait_s == 7.5 and "429" not in retried[0].stage
    assert final.result.usage.retries == 1
    assert final.result.answer == "4"


async def test_permanent_errors_are_not_retried() -> None:
    permanent = ScriptedSolver([RIGHT], fail=fail_calls(1))
    search = BestOfN(solver=permanent, n=2, chunk_size=1, early_stop=False, seed=0)
    _, final = await finish(SearchDriver(search, PROBLEM, sleep=no_sleep))
    assert final.result.usage.retries == 0 and final.result.usage.failures == 1
    assert len(final.result.completions) == 1


async def test_transient_errors_are_retried_until_max_retries() -> None:
    # Every request fails on its first attempt (told apart by seed); its retry succeeds.
    seen: set[int | None] = set()

    def first_attempt_fails(request: GenerationRequest, call: int) -> Exception | None:
        if request.seed in seen:
            return None
        seen.add(request.seed)
        return TransientError("scripted 503", status_code=503)

    flaky = ScriptedSolver([RIGHT], fail=first_attempt_fails)
    search = BestOfN(solver=flaky, n=2, chunk_size=1, early_stop=False, max_retries=1, seed=0)
    _, final = await finish(SearchDriver(search, PROBLEM, sleep=no_sleep))
    assert final.result.usage.retries == 2 and final.result.usage.failures == 0
    assert final.result.usage.generation_calls == flaky.calls == 4

    # One request failing twice with one retry allowed fails for good.
    flaky = ScriptedSolver([RIGHT], fail=fail_calls(1, 2, transient=True))
    search = BestOfN(solver=flaky, n=1, max_retries=1, seed=0)
    with pytest.raises(SearchError) as caught:
        await finish(SearchDriver(search, PROBLEM, sleep=no_sleep))
    result = caught.value.result
    assert result is not None and result.usage.retries == 1 and result.usage.failures == 1


@dataclass
class ShortSolver:
    """Returns one generation fewer than asked for."""

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        return SolverResponse([Generation(RIGHT, "end")] * (request.n - 1))


async def test_a_solver_returning_the_wrong_count_fails_the_request() -> None:
    search = BestOfN(solver=ShortSolver(), n=2)
    with pytest.raises(SearchError) as caught:
        await search.arun(PROBLEM)
    result = caught.value.result
    assert result is not None
    assert result.failures and "returned 1 generations for n=2" in result.failures[0].error


async def test_a_search_with_nothing_to_return_raises_with_the_partial_result() -> None:
    search = BestOfN(solver=ScriptedSolver([RIGHT], fail=lambda r, c: SolverError("down")), n=2)
    with pytest.raises(SearchError, match="produced no candidate") as caught:
        await search.arun(PROBLEM)
    assert caught.value.result is not None
    assert caught.value.result.usage.failures == 1


@pytest.mark.parametrize(
    ("strategy", "settings"),
    [
        (BestOfN, {"n": 2}),
        (BeamSearch, {"n": 2, "beam_width": 2, "max_steps": 2}),
        (SelfRevision, {}),
    ],
)
async def test_a_search_whose_every_request_failed_stops_with_error(
    strategy: type[SearchStrategy], settings: dict[str, int]
) -> None:
    """Not "finished" or "max_steps": nothing ran its course, the requests failed."""
    down = ScriptedSolver([RIGHT], fail=lambda r, c: SolverError("down"))
    verifier = ScriptedVerifier(lambda problem, step: 0.5)
    search = strategy(solver=down, verifier=verifier, seed=0, max_retries=0, **settings)
    with pytest.raises(SearchError) as caught:
        await search.arun(PROBLEM)
    assert caught.value.result is not None
    assert caught.value.result.stop_reason == "error"


# --- plans --------------------------------------------------------------------------------


class EmptyBatchFirst(SearchStrategy):
    """A plan that yields an empty batch before its real work."""

    name: ClassVar[str] = "empty_batch_first"

    def plan(self, problem: str, tree: SearchTree) -> Plan:
        nothing = yield []
        assert nothing == []
        (ids,) = yield [Expand(parent=0, to_end=True, kind="solution")]
        return Outcome(list(ids))


async def test_an_empty_batch_is_answered_with_no_results() -> None:
    result = await EmptyBatchFirst(solver=ScriptedSolver([RIGHT])).arun(PROBLEM)
    assert result.answer == "4"


@dataclass
class LogprobVerifier:
    """Records the trajectories it is given; needs the solver's logprobs."""

    granularity: str = "step"
    score_range: tuple[float, float] = (0.0, 1.0)
    needs_logprobs: bool = True
    seen: list[Trajectory] = field(default_factory=list)

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        self.seen += trajectories
        return [Judgement(tuple(0.1 for _ in t.steps)) for t in trajectories]


async def test_logprobs_follow_the_trajectory_and_restart_with_a_revision() -> None:
    lp = LogprobVerifier()
    solver = ScriptedSolver([STEPS], revisions=[RIGHT])
    await SelfRevision(solver=solver, verifier=lp, max_revisions=1, seed=0).arun(PROBLEM)
    assert all(r.logprobs for r in solver.requests)
    first, revised = lp.seen
    assert first.token_logprobs is not None and len(first.token_logprobs) == 1
    assert revised.token_logprobs is not None and len(revised.token_logprobs) == 1
    assert revised.token_logprobs != first.token_logprobs

    lp = LogprobVerifier()
    await BeamSearch(solver=ScriptedSolver([STEPS]), verifier=lp, n=1, beam_width=1, seed=0).arun(
        PROBLEM
    )
    deepest = max(lp.seen, key=lambda t: len(t.steps))
    assert deepest.token_logprobs is not None
    assert len(deepest.token_logprobs) == len(deepest.steps) == 3


@dataclass
class MeteredVerifier:
    """Reports 7 prompt + 3 completion tokens per call, from a task it starts and from a thread;
    fails the first call after reporting."""

    granularity: ClassVar[str] = "outcome"
    score_range: ClassVar[tuple[float, float] | None] = None
    calls: int = 0

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        self.calls += 1
        await asyncio.gather(asyncio.to_thread(report_usage, 5, 1), asyncio.sleep(0))
        await asyncio.create_task(_report(2, 2))
        if self.calls == 1:
            raise TransientError("the scorer hiccuped")
        return [Judgement((1.0,)) for _ in trajectories]


async def _report(prompt: int, completion: int) -> None:
    report_usage(prompt, completion, cost=0.5)


async def test_verifier_reported_usage_is_counted_even_for_a_failed_call() -> None:
    verifier = MeteredVerifier()
    solver = ScriptedSolver(["1 + 1 = 2\n\nThe answer is 2."])
    search = BestOfN(solver=solver, verifier=verifier, n=2, seed=0)
    _, final = await finish(SearchDriver(search, PROBLEM, sleep=no_sleep))
    result = final.result
    assert verifier.calls == 2  # the first failed and was retried
    usage = result.usage
    assert (usage.verifier_prompt_tokens, usage.verifier_completion_tokens) == (14, 6)
    assert usage.cost == 1.0  # the solver has no price; the verifier reported one
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens + 20


def test_report_usage_outside_a_search_is_a_no_op() -> None:
    report_usage(10, 10)  # nothing to report to, and no error
