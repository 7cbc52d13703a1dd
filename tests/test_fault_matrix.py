"""The hardening issue's fault matrix, over real HTTP on loopback.

``benchmarks/fake_server.py`` runs in-process (latency 0) as the OpenAI-compatible solver server and
as every HTTP verifier's server (vLLM ``/pooling`` and ``/classify``, TEI ``/predict``, chat
logprobs); its answers are deterministic functions of the request. The solver and each verifier
reach it through their own fault-injecting proxy (``_fault_proxy.FaultProxy``), which injects 429
with ``Retry-After`` or ``retry-after-ms``, 500/503, hangs past the client's timeout, truncated JSON
and dropped connections.

* each fault kind alone, on the solver and on each verifier, is retried and the search returns
  the fault-free result, for exactly one more request;
* at a 20% seeded fault rate on both proxies, every strategy completes with the fault-free seeded
  result, with and without a call cap;
* a call cap of at most ``n`` survives a fault on the first request of a solver whose handling of
  ``n`` is not known yet, and a server that honours ``n`` serves 16 samples in one call under a
  cap of 13;
* a verifier that always answers 503 costs at most ``R + 1`` calls per scoring batch and the
  result says the ranking is unverified;
* absurd ``Retry-After`` values from a verifier are capped at ``MAX_RETRY_AFTER_S``.

Retry waits go through an injected sleep that records them and returns at once.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from _fake_upstream import fake_upstream
from _fault_proxy import (
    Fault,
    FaultProxy,
    Script,
    dropped,
    hang,
    in_order,
    rate_limited,
    seeded_faults,
    server_error,
    truncated_json,
)

import sal_plugins as sal
from sal_plugins._driver import SearchDriver
from sal_plugins.events import RequestRetried, SearchEvent, SearchFinished
from sal_plugins.faults import MAX_RETRY_AFTER_S
from sal_plugins.plan import Request, Score
from sal_plugins.results import SearchResult
from sal_plugins.solvers import OpenAISolver
from sal_plugins.verifiers import ChatLogprobPRM, ClassifyRM, PoolingPRM, TEIReward, Verifier

PROBLEM = "What is 2 + 3?"
SEED = 7
TIMEOUT = 1.0
"""Seconds before a client (solver or verifier) gives up on one request."""
HANG_S = 3.0
"""How long a hang fault keeps quiet: well past ``TIMEOUT``."""


# --- the servers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """Root URL of the in-process fake server, shared by the module."""
    with fake_upstream() as root:
        yield root


@pytest.fixture(autouse=True)
def no_proxy_left_running() -> Iterator[None]:
    """Every proxy a test starts has stopped, its thread joined, when the test ends."""
    yield
    assert not [t for t in threading.enumerate() if t.name == "fault-proxy"]


@dataclass(frozen=True)
class Component:
    """One HTTP client of the search: where it is served and how to build it from a URL."""

    name: str
    suffix: str  # the upstream path the client's base URL ends in ("" or "/v1")
    path: str  # the route its requests go to, relative to that base URL
    build: Callable[[str], Any]


SOLVER = Component(
    "solver",
    "/v1",
    "/chat/completions",
    lambda url: OpenAISolver("fake", url, timeout=TIMEOUT),
)
VERIFIERS = {
    "pooling": Component(
        "pooling",
        "",
        "/pooling",
        lambda url: PoolingPRM(model="prm", base_url=url, timeout=TIMEOUT),
    ),
    "classify": Component(
        "classify",
        "",
        "/classify",
        lambda url: ClassifyRM(model="rm", base_url=url, timeout=TIMEOUT),
    ),
    "tei": Component(
        "tei",
        "",
        "/predict",
        lambda url: TEIReward(base_url=url, label="correct", per_step=True, timeout=TIMEOUT),
    ),
    "chat_logprob": Component(
        "chat_logprob",
        "/v1",
        "/chat/completions",
        lambda url: ChatLogprobPRM(model="prm", base_url=url, timeout=TIMEOUT),
    ),
}


def proxy_for(upstream: str, component: Component, script: Script | None = None) -> FaultProxy:
    """A proxy in front of ``component``'s server, faulting only its own route."""
    return FaultProxy(f"{upstream}{component.suffix}", script or (), only=(component.path,))


# --- the strategies ---------------------------------------------------------------------------

STRATEGIES = [
    "best_of_n-naive",
    "best_of_n-weighted",
    "best_of_n-majority",
    "beam_search",
    "dvts",
    "particle_filter",
    "adaptive",
    "self_revision",
]


def strategy(
    kind: str,
    solver: OpenAISolver,
    verifier: Verifier,
    *,
    budget: sal.Budget | None = None,
    **extra: Any,
) -> sal.SearchStrategy:
    """A small seeded search of ``kind``."""
    shared: dict[str, Any] = {
        "solver": solver,
        "verifier": verifier,
        "budget": budget,
        "seed": SEED,
        "aggregation": "min",
        "max_tokens": 64,
        **extra,
    }
    if kind.startswith("best_of_n"):
        selection = kind.split("-", 1)[1]
        return sal.BestOfN(**{"n": 4, "selection": selection, **shared})
    if kind == "beam_search":
        return sal.BeamSearch(**{"n": 4, "beam_width": 2, "max_steps": 4, **shared})
    if kind == "dvts":
        return sal.DVTS(**{"n": 4, "beam_width": 2, "max_steps": 3, **shared})
    if kind == "particle_filter":
        return sal.ParticleFilter(**{"n": 4, "max_steps": 4, **shared})
    if kind == "adaptive":  # a probe of 2, then beam search with the probe riding along
        arm = {"strategy": "beam_search", "n": 4, "settings": {"beam_width": 2, "max_steps": 4}}
        return sal.Adaptive(**{"policy": {"probe": 2, "otherwise": arm}, **shared})
    if kind == "self_revision":
        return sal.SelfRevision(**{"n": 4, "max_revisions": 2, "threshold": 0.5, **shared})
    raise AssertionError(kind)


@dataclass(frozen=True)
class Outcome:
    """What must not change when faults are retried: the selection, the candidates, the scores."""

    answer: str | None
    text: str
    completions: tuple[tuple[str, float | None], ...]
    stop_reason: str
    verification: str


def outcome_of(result: SearchResult) -> Outcome:
    return Outcome(
        answer=result.answer,
        text=result.text,
        completions=tuple((c.text, c.score) for c in result.completions),
        stop_reason=result.stop_reason,
        verification=result.verification,
    )


@dataclass
class Run:
    result: SearchResult
    events: list[SearchEvent]
    waits: list[float]

    @property
    def retried(self) -> list[RequestRetried]:
        return [e for e in self.events if isinstance(e, RequestRetried)]


async def run(search: sal.SearchStrategy, solver: OpenAISolver) -> Run:
    """Run ``search``; retry waits are recorded and not waited for."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    try:
        events = [e async for e in search.astream(PROBLEM, sleep=sleep)]
    finally:
        await solver.aclose()
    finished = events[-1]
    assert isinstance(finished, SearchFinished)
    return Run(finished.result, events, waits)


@dataclass(frozen=True)
class Baseline:
    outcome: Outcome
    calls: int
    solver_requests: int
    verifier_requests: int


_BASELINES: dict[tuple[str, str, str], Baseline] = {}


async def fault_free(upstream: str, kind: str, verifier: Component) -> Baseline:
    """The search through proxies that inject nothing: the result every faulty run must match.

    Run once per upstream, strategy and verifier (the fake server is deterministic, and a fresh
    solver and verifier are built for every run).
    """
    key = (upstream, kind, verifier.name)
    if key not in _BASELINES:
        _BASELINES[key] = await _fault_free(upstream, kind, verifier)
    return _BASELINES[key]


async def _fault_free(upstream: str, kind: str, verifier: Component) -> Baseline:
    solver_proxy, verifier_proxy = proxy_for(upstream, SOLVER), proxy_for(upstream, verifier)
    with solver_proxy as solver_url, verifier_proxy as verifier_url:
        solver = SOLVER.build(solver_url)
        done = await run(strategy(kind, solver, verifier.build(verifier_url)), solver)
    result = done.result
    assert result.usage.retries == 0 and not result.failures
    assert result.verification == "verified" and result.answer is not None
    return Baseline(
        outcome_of(result),
        result.usage.calls,
        _sent(solver_proxy, SOLVER),
        _sent(verifier_proxy, verifier),
    )


def _sent(proxy: FaultProxy, component: Component) -> int:
    return sum(s.path == component.path for s in proxy.seen)


# --- 1. each fault kind alone -----------------------------------------------------------------

FAULTS: dict[str, tuple[Fault, float | None]] = {
    # name: (fault, the wait the server asked for)
    "429-retry-after": (rate_limited("0.1"), 0.1),
    "429-retry-after-ms": (rate_limited("50", header="retry-after-ms"), 0.05),
    "500": (server_error(500), None),
    "503-retry-after": (server_error(503, retry_after="0.2"), 0.2),
    "hang": (hang(HANG_S), None),
    "truncated-json": (truncated_json(), None),
    "dropped": (dropped(), None),
}
COMPONENTS = {"solver": SOLVER, **VERIFIERS}


@pytest.mark.parametrize("fault_name", list(FAULTS))
@pytest.mark.parametrize("where", list(COMPONENTS))
async def test_each_fault_alone_is_retried_and_the_result_does_not_change(
    upstream: str, where: str, fault_name: str
) -> None:
    fault, asked = FAULTS[fault_name]
    verifier = VERIFIERS["pooling" if where == "solver" else where]
    baseline = await fault_free(upstream, "beam_search", verifier)

    faulty = COMPONENTS[where]
    solver_proxy = proxy_for(upstream, SOLVER, in_order(fault) if faulty is SOLVER else None)
    verifier_proxy = proxy_for(upstream, verifier, None if faulty is SOLVER else in_order(fault))
    with solver_proxy as solver_url, verifier_proxy as verifier_url:
        solver = SOLVER.build(solver_url)
        done = await run(strategy("beam_search", solver, verifier.build(verifier_url)), solver)

    result = done.result
    assert outcome_of(result) == baseline.outcome
    assert result.usage.retries == 1 and len(done.retried) == 1
    assert result.usage.failures == 0 and not result.failures
    assert done.retried[0].stage == ("generate" if faulty is SOLVER else "score")
    assert done.waits == [done.retried[0].wait_s]
    if asked is not None:  # the server's Retry-After is what the driver waited
        assert done.waits == [asked]
    else:
        assert 0.0 < done.waits[0] <= MAX_RETRY_AFTER_S
    # Exactly one more request went out, to the faulty component, and one more call was charged.
    faulted = solver_proxy if faulty is SOLVER else verifier_proxy
    assert faulted.injected == [fault]
    assert _sent(solver_proxy, SOLVER) == baseline.solver_requests + (faulty is SOLVER)
    assert _sent(verifier_proxy, verifier) == baseline.verifier_requests + (faulty is not SOLVER)
    assert result.usage.calls == baseline.calls + 1


# --- 2. the 20% matrix ------------------------------------------------------------------------

RANDOM_KINDS = tuple(fault for fault, _ in FAULTS.values())
FIRST_FAULTS = [f for name, (f, _) in FAULTS.items() if name != "hang"]
MATRIX = [(kind, name) for kind in STRATEGIES for name in VERIFIERS]


@pytest.mark.parametrize("capped", [False, True], ids=["uncapped", "capped"])
@pytest.mark.parametrize(("kind", "verifier_name"), MATRIX)
async def test_every_strategy_survives_a_20_percent_fault_rate(
    upstream: str, kind: str, verifier_name: str, capped: bool
) -> None:
    verifier = VERIFIERS[verifier_name]
    baseline = await fault_free(upstream, kind, verifier)
    case = MATRIX.index((kind, verifier_name)) * 2 + capped

    def script(offset: int) -> Script:
        # The first request of each proxy always faults, so no run is fault-free by chance.
        first = FIRST_FAULTS[(case + offset) % len(FIRST_FAULTS)]
        return seeded_faults(0.2, RANDOM_KINDS, seed=case * 10 + offset, first=first)

    # Seeded by request, not by arrival order, so each run meets the same faults. A request faults
    # at most twice in a row: the default three retries always get through, and as each failed
    # attempt costs a call, three times the fault-free calls always suffice.
    budget = sal.Budget(max_calls=3 * baseline.calls) if capped else None
    solver_proxy = proxy_for(upstream, SOLVER, script(0))
    verifier_proxy = proxy_for(upstream, verifier, script(1))
    with solver_proxy as solver_url, verifier_proxy as verifier_url:
        solver = SOLVER.build(solver_url)
        search = strategy(kind, solver, verifier.build(verifier_url), budget=budget)
        done = await run(search, solver)

    result = done.result
    assert outcome_of(result) == baseline.outcome
    assert result.usage.failures == 0 and not result.failures
    injected = len(solver_proxy.injected) + len(verifier_proxy.injected)
    assert solver_proxy.injected and verifier_proxy.injected
    # Every retry answers an injected fault (a verifier call that met several faults at once is
    # retried once), and both components' faults were retried.
    assert 2 <= result.usage.retries <= injected
    assert {e.stage for e in done.retried} == {"generate", "score"}
    assert len(done.waits) == result.usage.retries
    # Each failed attempt was charged one call, and nothing else changed what the search spent.
    assert result.usage.calls == baseline.calls + result.usage.retries
    if budget is not None:
        assert budget.max_calls is not None and result.usage.calls <= budget.max_calls


# --- 3. capped searches and a solver whose n handling is not known yet -------------------------


@pytest.mark.parametrize("fault", [rate_limited("0.1"), server_error(503)], ids=["429", "503"])
@pytest.mark.parametrize(
    ("where", "cap"),
    [("solver", 2), ("solver", 3), ("solver", 4), ("verifier", 3), ("verifier", 4)],
)
async def test_a_capped_search_retries_a_fault_on_its_first_request(
    upstream: str, fault: Fault, where: str, cap: int
) -> None:
    verifier = VERIFIERS["pooling"]
    baseline = await fault_free(upstream, "best_of_n-naive", verifier)
    solver_proxy = proxy_for(upstream, SOLVER, in_order(fault) if where == "solver" else None)
    verifier_proxy = proxy_for(upstream, verifier, in_order(fault) if where == "verifier" else None)
    with solver_proxy as solver_url, verifier_proxy as verifier_url:
        solver = SOLVER.build(solver_url)
        assert solver.honours_n is None  # nothing known about n yet
        search = strategy(
            "best_of_n-naive",
            solver,
            verifier.build(verifier_url),
            budget=sal.Budget(max_calls=cap),
        )
        done = await run(search, solver)  # no SearchError

    result = done.result
    assert result.usage.retries == 1 and result.usage.failures == 0
    assert len(result.completions) == 4 and solver.honours_n is True
    assert result.usage.calls <= cap
    assert result.usage.generation_calls == 1 + (where == "solver")
    if cap == 2:  # the retry took the call the verifier would have had
        assert result.verification == "unverified" and result.stop_reason == "budget"
        assert result.usage.verifier_calls == 0
    else:
        assert outcome_of(result) == baseline.outcome
        assert result.usage.verifier_calls == 1 + (where == "verifier")


@pytest.mark.parametrize("fault", [None, server_error(503)], ids=["no-fault", "503-first"])
async def test_a_server_that_honours_n_serves_16_samples_under_a_cap_of_13(
    upstream: str, fault: Fault | None
) -> None:
    verifier = VERIFIERS["pooling"]
    solver_proxy = proxy_for(upstream, SOLVER, in_order(fault))
    verifier_proxy = proxy_for(upstream, verifier)
    with solver_proxy as solver_url, verifier_proxy as verifier_url:
        solver = SOLVER.build(solver_url)
        search = strategy(
            "best_of_n-naive",
            solver,
            verifier.build(verifier_url),
            n=16,
            budget=sal.Budget(max_calls=13),
        )
        done = await run(search, solver)

    result = done.result
    retried = fault is not None
    assert len(result.completions) == 16 and result.stop_reason == "finished"
    assert result.verification == "verified"
    assert result.usage.generation_calls == 1 + retried and result.usage.verifier_calls == 1
    assert result.usage.retries == retried
    sent = [s.body["n"] for s in solver_proxy.seen if s.path == SOLVER.path]
    assert sent == [16] * (1 + retried)  # all 16 asked of one request, not fanned out
    assert _sent(verifier_proxy, verifier) == 1


# --- 4. a verifier down for good ---------------------------------------------------------------

RETRIES = 2


def _always(fault: Fault) -> Script:
    def script(index: int, path: str, body: dict[str, Any]) -> Fault | None:
        return fault

    return script


async def _run_recording(
    search: sal.SearchStrategy, solver: OpenAISolver
) -> tuple[SearchResult, list[Request]]:
    """Run ``search`` through the driver, recording every request its plan asked for."""
    driver = SearchDriver(search, PROBLEM, sleep=_no_wait)
    requests: list[Request] = []
    fulfil = driver._fulfil

    async def recording(batch: list[Request]) -> list[tuple[int, ...]]:
        requests.extend(batch)
        return await fulfil(batch)

    driver._fulfil = recording  # type: ignore[method-assign]
    try:
        events = [e async for e in driver.events()]
    finally:
        await solver.aclose()
    finished = events[-1]
    assert isinstance(finished, SearchFinished)
    return finished.result, requests


async def _no_wait(seconds: float) -> None:
    return None


@pytest.mark.parametrize("verifier_name", list(VERIFIERS))
@pytest.mark.parametrize("kind", ["best_of_n-naive", "beam_search", "dvts", "self_revision"])
async def test_a_verifier_that_always_answers_503_costs_r_plus_1_calls_per_batch(
    upstream: str, kind: str, verifier_name: str
) -> None:
    verifier = VERIFIERS[verifier_name]
    verifier_proxy = proxy_for(upstream, verifier, _always(server_error(503)))
    with proxy_for(upstream, SOLVER) as solver_url, verifier_proxy as verifier_url:
        solver = SOLVER.build(solver_url)
        search = strategy(kind, solver, verifier.build(verifier_url), max_retries=RETRIES)
        result, requests = await _run_recording(search, solver)

    batches = [r for r in requests if isinstance(r, Score)]
    assert batches  # the plan did ask for scores
    # Each batch: the first try and R retries, and never one call per trajectory after that
    # (which would cost (R + 1) * (N + 1)).
    assert result.usage.verifier_calls == (RETRIES + 1) * len(batches)
    assert result.usage.retries == RETRIES * len(batches)
    sent = _sent(verifier_proxy, verifier)
    if verifier_name == "chat_logprob":  # one HTTP request per step prefix, in every call
        prefixes = sum(
            len(
                {
                    result.tree[i].steps[:k]
                    for i in b.nodes
                    for k in range(1, 1 + len(result.tree[i].steps))
                }
            )
            for b in batches
        )
        assert sent == (RETRIES + 1) * prefixes
    else:  # one HTTP request per call
        assert sent == result.usage.verifier_calls
    assert result.verification == "unverified"
    assert result.completions and all(c.score is None for c in result.completions)
    assert result.failures and {f.stage for f in result.failures} == {"score"}


# --- 5. absurd Retry-After values are capped ---------------------------------------------------

ABSURD_WAITS = {
    "a-day": ("Retry-After", "86400"),
    "inf": ("Retry-After", "inf"),
    "nan": ("Retry-After", "nan"),
    "http-date-2099": ("Retry-After", "Thu, 01 Jan 2099 00:00:00 GMT"),
    "a-day-in-ms": ("retry-after-ms", "86400000"),
}


@pytest.mark.parametrize("wait_name", list(ABSURD_WAITS))
@pytest.mark.parametrize("verifier_name", list(VERIFIERS))
async def test_an_absurd_retry_after_from_a_verifier_is_capped(
    upstream: str, verifier_name: str, wait_name: str
) -> None:
    header, value = ABSURD_WAITS[wait_name]
    verifier = VERIFIERS[verifier_name]
    baseline = await fault_free(upstream, "best_of_n-naive", verifier)
    slept: list[float] = []

    async def recording_sleep(seconds: float) -> None:
        slept.append(seconds)

    fault = rate_limited(value, header=header)
    verifier_proxy = proxy_for(upstream, verifier, in_order(fault))
    with proxy_for(upstream, SOLVER) as solver_url, verifier_proxy as verifier_url:
        solver = SOLVER.build(solver_url)
        search = strategy("best_of_n-naive", solver, verifier.build(verifier_url))
        driver = SearchDriver(search, PROBLEM, sleep=recording_sleep)
        try:
            events = [e async for e in driver.events()]
        finally:
            await solver.aclose()

    finished = events[-1]
    assert isinstance(finished, SearchFinished)
    assert outcome_of(finished.result) == baseline.outcome
    assert verifier_proxy.injected == [fault] and len(slept) == 1
    assert math.isfinite(slept[0]) and 0.0 <= slept[0] <= MAX_RETRY_AFTER_S
    if wait_name in ("inf", "nan"):  # no usable value: the policy's own back-off instead
        assert slept[0] < MAX_RETRY_AFTER_S
    else:
        assert slept[0] == MAX_RETRY_AFTER_S
