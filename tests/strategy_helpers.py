"""Helpers shared by the strategy tests: run a search and record the batches its plan asked for."""

from __future__ import annotations

from sal_plugins import SearchResult
from sal_plugins._driver import SearchDriver
from sal_plugins.events import SearchEvent, SearchFinished
from sal_plugins.strategies.base import Request, SearchStrategy


async def no_sleep(seconds: float) -> None:
    """Retries wait for nothing in tests."""


async def run_recording(
    strategy: SearchStrategy, problem: str
) -> tuple[SearchResult, list[list[Request]], list[SearchEvent]]:
    """Run ``strategy`` and return its result, every batch the plan yielded, and the events."""
    driver = SearchDriver(strategy, problem, sleep=no_sleep)
    batches: list[list[Request]] = []
    fulfil = driver._fulfil

    async def recording(batch: list[Request]) -> list[tuple[int, ...]]:
        batches.append(list(batch))
        return await fulfil(batch)

    driver._fulfil = recording  # type: ignore[method-assign]
    events = [event async for event in driver.events()]
    final = events[-1]
    assert isinstance(final, SearchFinished)
    return final.result, batches, events
