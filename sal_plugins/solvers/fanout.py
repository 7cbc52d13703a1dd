"""The one fan-out helper: ``n`` continuations from servers that may return fewer per request.

An adapter implements one thing, "one request for ``k`` choices" (a coroutine taking a
:class:`~sal_plugins.solvers.base.GenerationRequest` and returning a
:class:`~sal_plugins.solvers.base.SolverResponse` with as many generations as the server gave), and
calls :func:`fan_out`. The helper sends ``n`` once; when fewer choices come back (llama.cpp's
server returns one whatever ``n`` says) it learns that in the solver's
:class:`~sal_plugins.solvers.base.SolverCapabilities` and fetches the rest by concurrent requests
with seeds ``seed + i``, asking fan-out from the start on later calls. It keeps to the request's
``max_requests`` (the search's call budget) and counts every request it starts with
:func:`count_request`, so the search charges a failed fan-out for what it really sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace

from sal_plugins.errors import SolverError
from sal_plugins.solvers.base import (
    Generation,
    GenerationRequest,
    SolverCapabilities,
    SolverResponse,
)

__all__ = ["OneRequest", "RequestMeter", "count_request", "fan_out", "metered_requests"]

OneRequest = Callable[[GenerationRequest], Awaitable[SolverResponse]]
"""One model request for ``request.n`` choices; may return fewer (at least one)."""


@dataclass
class RequestMeter:
    """Requests a solver started inside a :func:`metered_requests` block."""

    requests: int = 0


_METER: ContextVar[RequestMeter | None] = ContextVar("sal_request_meter", default=None)


def count_request() -> None:
    """Count one model request about to be sent (a no-op outside :func:`metered_requests`)."""
    meter = _METER.get()
    if meter is not None:
        meter.requests += 1


@contextlib.contextmanager
def metered_requests() -> Iterator[RequestMeter]:
    """Count the requests started inside the block (the search driver wraps each generate)."""
    meter = RequestMeter()
    token = _METER.set(meter)
    try:
        yield meter
    finally:
        _METER.reset(token)


async def fan_out(
    one_request: OneRequest,
    request: GenerationRequest,
    capabilities: SolverCapabilities,
    *,
    max_concurrency: int = 64,
) -> SolverResponse:
    """``request.n`` continuations, topped up by further requests where the server gives fewer.

    Args:
        one_request: the adapter's single request.
        request: what the search asked for.
        capabilities: the solver's capabilities; what the responses show about ``n`` is recorded
            there.
        max_concurrency: requests in flight at once while fanning out.

    Returns:
        ``request.n`` generations in order, or fewer when ``request.max_requests`` ran out first.
    """
    found: dict[int, Generation] = {}
    totals = [0, 0, 0]  # requests, prompt tokens, completion tokens
    limit = request.max_requests

    def add(chunk: list[int], batch: SolverResponse) -> None:
        if not batch.generations:
            raise SolverError("a solver request returned no generation")
        for slot, generation in zip(chunk, batch.generations, strict=False):
            found[slot] = generation
        totals[0] += 1
        totals[1] += batch.prompt_tokens
        totals[2] += batch.completion_tokens
        capabilities.observe(asked=len(chunk), returned=len(batch.generations), requests=1)

    async def send(offset: int, size: int) -> SolverResponse:
        seed = None if request.seed is None else request.seed + offset
        count_request()
        return await one_request(replace(request, n=size, seed=seed, max_requests=1))

    gate = asyncio.Semaphore(max_concurrency)

    async def fetch(chunk: list[int]) -> tuple[list[int], SolverResponse]:
        async with gate:
            return chunk, await send(chunk[0], len(chunk))

    while len(found) < request.n and (limit is None or totals[0] < limit):
        missing = [i for i in range(request.n) if i not in found]
        size = capabilities.choices_per_request or len(missing)
        chunks = [missing[i : i + size] for i in range(0, len(missing), size)]
        if limit is not None:
            chunks = chunks[: limit - totals[0]]
        if len(chunks) == 1:
            results = [await fetch(chunks[0])]
        else:
            results = await _gather([fetch(c) for c in chunks])
        for chunk, batch in results:
            add(chunk, batch)
    served = 0
    while served in found:  # the contiguous prefix: a request cap can leave a tail unfilled
        served += 1
    return SolverResponse(
        generations=[found[i] for i in range(served)],
        prompt_tokens=totals[1],
        completion_tokens=totals[2],
        requests=totals[0],
    )


async def _gather(
    coroutines: list[Awaitable[tuple[list[int], SolverResponse]]],
) -> list[tuple[list[int], SolverResponse]]:
    """Run concurrently; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
