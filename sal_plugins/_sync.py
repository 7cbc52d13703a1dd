"""Run a coroutine to completion from synchronous code, even inside a running event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def run_sync(make_coroutine: Callable[[], Awaitable[T]]) -> T:
    """Await ``make_coroutine()`` on a fresh event loop.

    With no loop running in this thread, ``asyncio.run`` is used directly. Inside a running loop
    (a Jupyter cell, an async web handler calling sync code), blocking that loop's thread with a
    nested loop is impossible, so the coroutine runs on a fresh loop in a worker thread.
    """

    async def main() -> T:
        return await make_coroutine()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sal-run") as pool:
        return pool.submit(asyncio.run, main()).result()
