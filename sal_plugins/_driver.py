"""The one async driver that fulfils every strategy's work requests.

Concurrency limits, retries, budget accounting, events and the search tree live here, once. A
strategy's plan yields a batch; the driver runs the batch's requests concurrently (bounded by
``max_concurrency`` when set), records what came back in the tree, and sends the new node ids
back in request order, so a seeded search builds the same tree however the requests interleave.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

from sal_plugins.errors import SearchError, SolverError
from sal_plugins.events import (
    CandidatesGenerated,
    CandidatesScored,
    ChoiceMade,
    RequestFailed,
    RequestRetried,
    SearchEvent,
    SearchFinished,
    SearchStarted,
)
from sal_plugins.faults import RetryPolicy, is_transient
from sal_plugins.plan import Expand, Outcome, Request, RunSpec, Score
from sal_plugins.results import (
    Completion,
    Failure,
    SearchResult,
    StopReason,
    Usage,
    Verification,
)
from sal_plugins.solvers.base import GenerationRequest, SolverResponse, capabilities_of
from sal_plugins.solvers.fanout import metered_requests
from sal_plugins.tree import Node, SearchTree, ends_solution, split_steps
from sal_plugins.verifiers.base import (
    Judgement,
    Trajectory,
    VerifierUsage,
    check_scores,
    metered,
    wants_logprobs,
)

__all__ = ["SearchDriver"]

T = TypeVar("T")

Stage = Literal["generate", "score"]


def _extends(node: Node, parent: Node) -> bool:
    return node.steps[: len(parent.steps)] == parent.steps


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


@dataclass
class _Skipped:
    """A request the budget did not allow to start."""


@dataclass
class _Failed:
    error: BaseException


@dataclass
class _Reservation:
    """Calls of the budget one request has claimed and not yet spent."""

    held: int


@dataclass
class SearchDriver:
    """Runs one strategy on one problem. Create one per search; use :meth:`events`.

    Args:
        strategy: the configured strategy.
        problem: the (validated) problem text.
        clock: monotonic clock in seconds; injectable so tests control the deadline.
        sleep: how to wait between retries; injectable so tests never wait.
    """

    strategy: RunSpec
    problem: str
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    tree: SearchTree = field(init=False)
    usage: Usage = field(init=False, default_factory=Usage)
    failures: list[Failure] = field(init=False, default_factory=list)
    _events: list[SearchEvent] = field(init=False, default_factory=list)
    _start: float = field(init=False, default=0.0)
    _calls_in_flight: int = field(init=False, default=0)
    _cut_short: StopReason | None = field(init=False, default=None)
    _served: tuple[int, int] = field(init=False, default=(0, 0))  # (requests, generations)
    _choices_announced: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.tree = SearchTree(self.problem, delimiter=self.strategy.step_delimiter)
        self._rng = random.Random(self.strategy.seed)
        self._jitter = random.Random(self.strategy.seed)  # back-off only: never moves a seed
        limit = self.strategy.max_concurrency
        self._semaphore = asyncio.Semaphore(limit) if limit else None
        self._capabilities = capabilities_of(self.strategy.solver)
        self._policy = RetryPolicy(max_retries=self.strategy.max_retries)
        self._logprobs = wants_logprobs(self.strategy.scorer)
        if self._capabilities.pricing is not None:
            self.usage.cost = 0.0

    # --- the loop -----------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[SearchEvent]:
        """Run the search; yield its events, ending with :class:`SearchFinished`."""
        self._start = self.clock()
        yield SearchStarted(elapsed_s=0.0, strategy=self.strategy.name, problem=self.problem)
        plan = self.strategy.plan(self.problem, self.tree)
        outcome: Outcome | None = None
        interrupted: StopReason | None = None
        try:
            batch = next(plan)
            while True:
                for choice in self._choices_made():
                    yield choice
                interrupted = self._exhausted()
                if interrupted:
                    break
                results = await self._fulfil(batch)
                for event in self._drain_events():
                    yield event
                # The plan sees every batch's results: if that was its last batch it ends on its
                # own terms; otherwise the check above stops it before the next one.
                batch = plan.send(results)
        except StopIteration as stop:
            outcome = stop.value
        finally:
            plan.close()
        for choice in self._choices_made():
            yield choice
        if outcome is None:
            outcome = Outcome(self.strategy.best_so_far(self.tree), interrupted or "error")
        elif self._cut_short is not None:
            # The plan ended on its own, but without work the budget or deadline did not allow.
            outcome = replace(outcome, stop_reason=self._cut_short)
        elif not outcome.ranked and self.failures and outcome.stop_reason != "early_stop":
            # Nothing to return because requests failed, not because the search ran its course.
            outcome = replace(outcome, stop_reason="error")
        yield SearchFinished(elapsed_s=self._elapsed(), result=self._result(outcome))

    def _elapsed(self) -> float:
        return self.clock() - self._start

    def _exhausted(self) -> StopReason | None:
        budget = self.strategy.budget
        if budget is None:
            return None
        reason = budget.exhausted(self.usage, self._elapsed())
        return "deadline" if reason == "deadline" else ("budget" if reason else None)

    def _choices_made(self) -> list[ChoiceMade]:
        """Events for the choices the plan recorded since the last call."""
        new = self.tree.choices[self._choices_announced :]
        self._choices_announced += len(new)
        return [ChoiceMade(elapsed_s=self._elapsed(), choice=choice) for choice in new]

    def _drain_events(self) -> list[SearchEvent]:
        events, self._events = self._events, []
        return events

    # --- one batch ----------------------------------------------------------------------------

    async def _fulfil(self, batch: list[Request]) -> list[tuple[int, ...]]:
        if not batch:
            return []
        seeds = [self._next_seed() if isinstance(r, Expand) else None for r in batch]
        tasks = [
            asyncio.ensure_future(self._run_request(request, seed))
            for request, seed in zip(batch, seeds, strict=True)
        ]
        deadline = self._seconds_left()
        try:
            done, pending = await asyncio.wait(tasks, timeout=deadline)
        except asyncio.CancelledError:
            # The caller gave up (a client disconnected, a task was cancelled): so do the
            # requests; asyncio.wait leaves them running otherwise.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        results: list[tuple[int, ...]] = []
        if pending:
            self._cut_short = "deadline"
        for request, task in zip(batch, tasks, strict=True):
            value: object = task.result() if task in done else _Skipped()
            if isinstance(value, _Skipped) and self._cut_short is None:
                self._cut_short = "budget"
            if isinstance(request, Expand):
                results.append(self._record_expansion(request, value))
            else:
                results.append(self._record_scores(request, value))
        return results

    def _seconds_left(self) -> float | None:
        budget = self.strategy.budget
        if budget is None or budget.deadline_s is None:
            return None
        return max(0.0, budget.deadline_s - self._elapsed())

    def _next_seed(self) -> int | None:
        if self.strategy.seed is None:
            return None
        return self._rng.randrange(2**31)

    def _reserve(self, calls: int, *, partial: bool = False) -> int:
        """Claim calls of the budget for a request about to start; returns how many (0: none).

        The claim is released when the request ends. With ``partial``, fewer than ``calls`` may
        be granted when that is all the budget has left.
        """
        budget = self.strategy.budget
        left = budget.calls_left(self.usage) if budget is not None else None
        if left is not None:
            free = left - self._calls_in_flight
            if free < calls and not (partial and free > 0):
                return 0
            calls = min(calls, free)
        self._calls_in_flight += calls
        return calls

    def _spend(self, reservation: _Reservation, calls: int) -> None:
        """``calls`` of a request's claim were spent (and are now counted in usage)."""
        spent = min(reservation.held, calls)
        reservation.held -= spent
        self._calls_in_flight -= spent

    def _release(self, reservation: _Reservation) -> None:
        self._calls_in_flight -= reservation.held
        reservation.held = 0

    def _fans_out(self) -> bool | None:
        """Whether the solver makes one call per continuation (``None``: not known yet)."""
        honours = self._capabilities.honours_n
        return None if honours is None else not honours

    async def _run_request(self, request: Request, seed: int | None) -> object:
        # A request that fans out costs a call per continuation. Until the solver's behaviour is
        # known it may, so it is charged as if it did: a call cap is never overshot.
        may_fan_out = (
            isinstance(request, Expand) and request.n > 1 and self._fans_out() is not False
        )
        want = request.n if isinstance(request, Expand) and may_fan_out else 1
        granted = self._reserve(want, partial=may_fan_out)
        if not granted:
            return _Skipped()
        reservation = _Reservation(granted)
        try:
            if isinstance(request, Expand):
                return await self._generate(request, seed, reservation)
            return await self._score(request, reservation)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # one failed request must not sink the search
            return _Failed(error)
        finally:
            self._release(reservation)

    async def _with_retries(
        self, stage: Stage, reservation: _Reservation, call: Callable[[], Awaitable[T]]
    ) -> T:
        def may_retry(error: BaseException) -> bool:
            # A retry needs a call of the budget: what is left of this request's claim, or one
            # more from what nobody has claimed.
            if reservation.held > 0:
                return True
            reservation.held += self._reserve(1)
            return reservation.held > 0

        def on_retry(error: BaseException, retry: int, wait_s: float) -> None:
            self.usage.retries += 1
            self._events.append(
                RequestRetried(
                    elapsed_s=self._elapsed(),
                    stage=stage,
                    attempt=retry,
                    error=_describe(error),
                    wait_s=wait_s,
                )
            )

        async def attempt() -> T:
            if self._semaphore is None:
                return await call()
            async with self._semaphore:
                return await call()

        return await self._policy.call(
            attempt, may_retry=may_retry, on_retry=on_retry, sleep=self.sleep, rng=self._jitter
        )

    # --- generation ---------------------------------------------------------------------------

    async def _generate(
        self, request: Expand, seed: int | None, reservation: _Reservation
    ) -> SolverResponse:
        strategy = self.strategy
        parent = self.tree[request.parent]
        capabilities = self._capabilities
        base_request = GenerationRequest(
            problem=request.problem if request.problem is not None else self.problem,
            prefix_steps=() if request.problem is not None else parent.steps,
            n=request.n,
            stop=() if request.to_end else (strategy.step_delimiter,),
            temperature=strategy.temperature
            if request.temperature is None
            else request.temperature,
            top_p=strategy.top_p,
            max_tokens=strategy.max_tokens,
            seed=seed,
            system_prompt=strategy.system_prompt,
            step_delimiter=strategy.step_delimiter,
            logprobs=self._logprobs,
        )

        def this_attempt() -> GenerationRequest:
            """The request as the claim allows: at most ``held`` calls."""
            if request.n == 1 or self._fans_out() is False:
                return base_request
            if reservation.held < request.n:  # a failed attempt spent some: claim them again
                reservation.held += self._reserve(request.n - reservation.held, partial=True)
            if reservation.held >= request.n:
                return base_request
            if capabilities.respects_max_requests:
                return replace(base_request, max_requests=reservation.held)
            return replace(base_request, n=reservation.held)  # ask only for what it can pay

        async def call() -> SolverResponse:
            attempt = this_attempt()
            with metered_requests() as sent:
                try:
                    response = await strategy.solver.generate(attempt)
                except BaseException:  # failed or cancelled at the deadline: it reached the server
                    self._charge_generation(reservation, max(1, sent.requests))
                    raise
            self._charge_generation(reservation, response.requests)
            self._count_generation(attempt, response)
            returned = len(response.generations)
            short_by_budget = attempt.max_requests is not None and 0 < returned < attempt.n
            if returned != attempt.n and not short_by_budget:
                raise SolverError(
                    f"{type(strategy.solver).__name__} returned {returned} "
                    f"generations for n={attempt.n}"
                )
            if returned < request.n:  # the call budget could not pay for them all
                self._cut_short = self._cut_short or "budget"
            return response

        return await self._with_retries("generate", reservation, call)

    def _charge_generation(self, reservation: _Reservation, requests: int) -> None:
        self.usage.generation_calls += requests
        self._spend(reservation, requests)

    def _count_generation(self, request: GenerationRequest, response: SolverResponse) -> None:
        usage = self.usage
        self._capabilities.observe(
            asked=request.n, returned=len(response.generations), requests=response.requests
        )
        requests, generations = self._served
        self._served = (requests + response.requests, generations + len(response.generations))
        usage.prompt_tokens += response.prompt_tokens
        usage.completion_tokens += response.completion_tokens
        pricing = self._capabilities.pricing
        if pricing is not None and usage.cost is not None:
            usage.cost += pricing.cost(response.prompt_tokens, response.completion_tokens)

    def _count_verifier(self, spent: VerifierUsage) -> None:
        usage = self.usage
        usage.verifier_calls += 1
        usage.verifier_prompt_tokens += spent.prompt_tokens
        usage.verifier_completion_tokens += spent.completion_tokens
        if spent.cost is not None:
            usage.cost = (usage.cost or 0.0) + spent.cost

    def _calls_for(self, samples: int) -> int:
        """Requests ``samples`` more generations would have taken, at the rate served so far."""
        requests, generations = self._served
        if samples <= 0 or generations == 0:
            return 0
        return math.ceil(samples * requests / generations - 1e-9)

    def _record_expansion(self, request: Expand, value: object) -> tuple[int, ...]:
        if not isinstance(value, SolverResponse):
            self._record_failure("generate", request.round, (request.parent,), value)
            return ()
        parent = self.tree[request.parent]
        base = () if request.problem is not None else parent.steps
        delimiter = self.strategy.step_delimiter
        ids = []
        for generation in value.generations:
            new_steps = split_steps(generation.text, delimiter)
            stop_kind = generation.stop_kind
            if request.to_end and stop_kind == "unknown":
                stop_kind = "end"  # no stop string was requested, so the model stopped itself
            finished = ends_solution(stop_kind, new_steps)
            node = self.tree.add(
                request.parent,
                text=generation.text.strip(),
                steps=base + new_steps,
                round=request.round,
                kind=request.kind,
                stop_kind=stop_kind,
                finished=finished,
                token_logprobs=generation.token_logprobs,
            )
            ids.append(node.id)
        self._events.append(
            CandidatesGenerated(
                elapsed_s=self._elapsed(),
                round=request.round,
                node_ids=tuple(ids),
                finished=sum(self.tree[i].finished for i in ids),
            )
        )
        return tuple(ids)

    # --- scoring ------------------------------------------------------------------------------

    def _trajectory(self, node: Node) -> Trajectory:
        logprobs = None
        if self._logprobs:
            path = self.tree.path(node.id)
            # A node whose steps do not extend its parent's starts a fresh trajectory (a revision).
            start = next(
                (k for k in range(len(path) - 1, 0, -1) if not _extends(path[k], path[k - 1])), 0
            )
            logprobs = tuple(n.token_logprobs for n in path[start:])
        return Trajectory(steps=node.steps, finished=node.finished, token_logprobs=logprobs)

    async def _score_batch(self, nodes: list[Node], reservation: _Reservation) -> list[Judgement]:
        verifier = self.strategy.scorer
        if verifier is None:
            raise SearchError(f"{self.strategy.name} asked for scores but has no verifier")
        trajectories = [self._trajectory(n) for n in nodes]

        async def call() -> list[Judgement]:
            with metered() as spent:
                try:
                    rows = await verifier.score(self.problem, trajectories)
                finally:  # a failed call may have spent tokens too
                    self._count_verifier(spent)
                    self._spend(reservation, 1)
            return check_scores(verifier, trajectories, rows)

        return await self._with_retries("score", reservation, call)

    async def _score(
        self, request: Score, reservation: _Reservation
    ) -> dict[int, Judgement | BaseException]:
        nodes = [self.tree[i] for i in request.nodes if self.tree[i].steps]
        if not nodes:
            return {}
        try:
            judgements = await self._score_batch(nodes, reservation)
            return {n.id: j for n, j in zip(nodes, judgements, strict=True)}
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # A server that stayed down through the retries is down for every trajectory alike:
            # re-scoring them one by one would only multiply the calls.
            if len(nodes) == 1 or is_transient(error):
                return {n.id: error for n in nodes}

        # One bad trajectory must not cost the others their scores: score them one by one.
        async def single(node: Node) -> Judgement | BaseException:
            claim = _Reservation(self._reserve(1))
            if not claim.held:
                return SearchError("the call budget ran out before this trajectory was scored")
            try:
                return (await self._score_batch([node], claim))[0]
            except asyncio.CancelledError:
                raise
            except Exception as error:
                return error
            finally:
                self._release(claim)

        singles = await asyncio.gather(*(single(n) for n in nodes))
        return {n.id: outcome for n, outcome in zip(nodes, singles, strict=True)}

    def _record_scores(self, request: Score, value: object) -> tuple[int, ...]:
        if not isinstance(value, dict):
            self._record_failure("score", request.round, request.nodes, value)
            return ()
        scored = []
        for node_id, outcome in value.items():
            node = self.tree[node_id]
            if isinstance(outcome, Judgement):
                node.step_scores = outcome.step_scores
                node.score = self.strategy.score_of(outcome.step_scores)
                node.critique = outcome.critique
                scored.append(node_id)
            else:
                node.error = _describe(outcome)
                self._record_failure("score", request.round, (node_id,), _Failed(outcome))
        scores = [self.tree[i].score for i in scored]
        self._events.append(
            CandidatesScored(
                elapsed_s=self._elapsed(),
                round=request.round,
                node_ids=tuple(scored),
                best_score=max((s for s in scores if s is not None), default=None),
            )
        )
        return tuple(scored)

    def _record_failure(
        self, stage: Stage, round_: int, node_ids: tuple[int, ...], value: object
    ) -> None:
        if isinstance(value, _Skipped):
            return
        error = value.error if isinstance(value, _Failed) else RuntimeError(repr(value))
        message = _describe(error)
        self.usage.failures += 1
        self.failures.append(Failure(stage=stage, error=message, round=round_, node_ids=node_ids))
        if stage == "generate":
            self.tree.add(node_ids[0], round=round_, kind="failed", error=message)
        self._events.append(
            RequestFailed(elapsed_s=self._elapsed(), stage=stage, round=round_, error=message)
        )

    # --- the result ---------------------------------------------------------------------------

    def _completion(self, node: Node) -> Completion:
        return Completion(
            text=self.tree.text_of(node.id),
            steps=node.steps,
            score=node.score,
            step_scores=node.step_scores,
            finished=node.finished,
            answer=self.tree.answer_of(node.id),
            node_id=node.id,
            critique=node.critique,
        )

    def _verification(self, completions: list[Completion]) -> Verification:
        if self.strategy.scorer is None:
            return "none"
        scored = sum(c.score is not None for c in completions)
        if completions and scored == len(completions):
            return "verified"
        return "partial" if scored else "unverified"

    def _result(self, outcome: Outcome) -> SearchResult:
        self.usage.wall_time_s = self._elapsed()
        self.usage.calls_saved += outcome.calls_saved + self._calls_for(outcome.samples_saved)
        completions = [self._completion(self.tree[i]) for i in outcome.ranked]
        if completions:
            self.tree.mark_selected(completions[0].node_id)
        result = SearchResult(
            problem=self.problem,
            strategy=self.strategy.name,
            completions=completions,
            stop_reason=outcome.stop_reason,
            usage=self.usage,
            tree=self.tree,
            failures=self.failures,
            verification=self._verification(completions),
        )
        if not completions:
            causes = "; ".join(f.error for f in self.failures[-3:]) or outcome.stop_reason
            raise SearchError(
                f"{self.strategy.name} produced no candidate solution ({causes})", result=result
            )
        return result
