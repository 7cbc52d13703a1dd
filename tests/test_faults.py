"""Fault layer: a search through OpenAISolver survives a faulty server.

A loopback proxy (``_fault_proxy.FaultProxy``) in front of the real ``llama_cpp.server`` injects,
request by request, 429 with ``Retry-After``, 500/503, truncated JSON, dropped connections and a
hang past the client's timeout. The driver retries transient faults (honouring ``Retry-After``)
and the search still returns; a non-transient 4xx costs only the candidate it hit.
"""

from __future__ import annotations

from typing import Any

import pytest
from _fault_proxy import (
    FaultProxy,
    client_error,
    dropped,
    hang,
    rate_limited,
    server_error,
    truncated_json,
)

import sal_plugins as sal
from sal_plugins._driver import SearchDriver
from sal_plugins.events import RequestFailed, RequestRetried, SearchEvent, SearchFinished
from sal_plugins.results import SearchResult
from sal_plugins.solvers import OpenAISolver
from sal_plugins.verifiers import FunctionVerifier

pytestmark = pytest.mark.model

MODEL = "smollm2"
PROBLEM = "What is 2 + 3?"


def constant(problem: str, steps: list[str]) -> float:
    return 0.5


def best_of_n(url: str, *, timeout: float = 60.0, **config: Any) -> sal.BestOfN:
    solver = OpenAISolver(MODEL, url, continuation="completion", timeout=timeout)
    verifier = FunctionVerifier(constant, score_range=(0.0, 1.0))
    return sal.BestOfN(solver=solver, verifier=verifier, seed=0, max_tokens=8, **config)


async def run_collecting(
    search: sal.SearchStrategy, **driver: Any
) -> tuple[SearchResult, list[SearchEvent]]:
    events = [e async for e in SearchDriver(search, PROBLEM, **driver).events()]
    finished = events[-1]
    assert isinstance(finished, SearchFinished)
    return finished.result, events


async def test_transient_faults_are_retried_with_retry_after_and_the_search_finishes(
    llama_server: str,
) -> None:
    faults = [
        rate_limited(retry_after="7"),
        server_error(503),
        server_error(500, retry_after="2"),
        truncated_json(),
        dropped(),
    ]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # injected: the test never waits
        slept.append(seconds)

    proxy = FaultProxy(llama_server, faults, only=("/completions",))
    with proxy as url:
        result, events = await run_collecting(best_of_n(url, n=1, max_retries=5), sleep=sleep)
    assert proxy.faults == [*faults, None]  # five faults, then the real server answered
    retried = [e for e in events if isinstance(e, RequestRetried)]
    assert result.usage.retries == len(retried) == 5
    assert slept == [e.wait_s for e in retried]
    assert slept[0] == 7.0 and slept[2] == 2.0  # Retry-After honoured (429 and 500)
    messages = [e.error for e in retried]
    assert "429" in messages[0] and "503" in messages[1] and "500" in messages[2]
    assert "JSON" in messages[3] and "connection" in messages[4].lower()
    assert len(result.completions) == 1 and result.completions[0].text
    assert result.usage.failures == 0 and not result.failures


async def test_a_hang_past_the_client_timeout_is_retried(llama_server: str) -> None:
    proxy = FaultProxy(llama_server, [hang(120)], only=("/completions",))
    with proxy as url:
        search = best_of_n(url, n=1, max_retries=2, timeout=5.0, max_concurrency=1)
        result, events = await run_collecting(search, sleep=_no_wait)
    retried = [e for e in events if isinstance(e, RequestRetried)]
    assert "timed out" in retried[0].error
    assert proxy.faults[:2] == [hang(120), None]
    assert len(result.completions) == 1 and result.usage.failures == 0


async def test_retry_after_is_honoured_through_the_public_api(llama_server: str) -> None:
    faults = [rate_limited("0.05"), rate_limited("100", header="retry-after-ms")]
    with FaultProxy(llama_server, faults, only=("/completions",)) as url:
        events = [e async for e in best_of_n(url, n=1, max_retries=2).astream(PROBLEM)]
    waits = [e.wait_s for e in events if isinstance(e, RequestRetried)]
    assert waits == [0.05, 0.1]
    finished = events[-1]
    assert isinstance(finished, SearchFinished) and finished.result.usage.retries == 2


async def test_a_client_error_fails_only_the_candidate_it_hit(llama_server: str) -> None:
    proxy = FaultProxy(llama_server, [None, client_error(400)], only=("/completions",))
    with proxy as url:
        search = best_of_n(url, n=3, chunk_size=1, max_retries=3)
        result, events = await run_collecting(search, sleep=_no_wait)
    assert len(proxy.seen) == 3  # the 400 was not retried
    assert len(result.completions) == 2  # the other two candidates made it
    assert result.usage.retries == 0 and result.usage.failures == 1
    assert "400" in result.failures[0].error
    assert any(isinstance(e, RequestFailed) and "400" in e.error for e in events)


async def _no_wait(seconds: float) -> None:
    return None
