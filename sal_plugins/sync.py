"""Run a coroutine to completion from synchronous code, even inside a running event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["run_sync"]

T = TypeVar("T")


def run_sync(make_coroutine: Callable[[], Awaitable[T]]) -> T:
    """Await ``make_coroutine()`` on a fresh event loop and return its result.

    With no loop running in this thread, the coroutine runs on a new loop here. Inside a running
    loop (a Jupyter cell, an async web handler calling sync code), blocking that loop's thread
    with a nested loop is impossible, so it runs on a new loop in a worker thread.

    Work the coroutine handed to threads (``asyncio.to_thread``: a sync verifier function, for
    example) does not hold the call: once the coroutine is done (a search returns at its
    deadline), ``run_sync`` returns, and a thread still running is left to finish on its own.
    ``asyncio.run`` would instead wait for every such thread at loop shutdown.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_on_new_loop(make_coroutine)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sal-run") as pool:
        return pool.submit(_run_on_new_loop, make_coroutine).result()


def _run_on_new_loop(make_coroutine: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make_coroutine()

    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(thread_name_prefix="sal-to-thread")
    loop.set_default_executor(executor)
    try:
        return loop.run_until_complete(main())
    finally:
        try:
            _cancel_remaining(loop)
            # Finalises open async generators: the solvers' per-loop HTTP clients close here.
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            loop.close()


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
