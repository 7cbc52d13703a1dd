"""The LangChain run a search belongs to, as a context variable every ``LangChainSolver`` reads.

A runnable or ``SearchChatModel`` call sets it for the duration of its search; every chat-model
call the search makes (the solver's candidates, a judge's verdicts, the members of an ensemble,
however deeply nested) then carries that run's callbacks, so it is traced as the run's child.
Concurrent searches (``batch``, ``abatch``) each run in their own context and see their own run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from langchain_core.runnables import RunnableConfig

__all__ = ["SearchRun", "bound_to_run", "current_run"]


@dataclass(frozen=True)
class SearchRun:
    """The run a search executes in.

    Attributes:
        config: the config whose callbacks, tags and metadata every model call carries.
        blocking: call chat models through their sync API on worker threads (set on the sync
            entry points, so a model's async client is never shared between event loops).
    """

    config: RunnableConfig
    blocking: bool = False


_CURRENT: ContextVar[SearchRun | None] = ContextVar("langchain_sal_search_run", default=None)


def current_run() -> SearchRun | None:
    """The run the current search belongs to (``None`` outside a runnable's search)."""
    return _CURRENT.get()


@contextmanager
def bound_to_run(config: RunnableConfig, *, blocking: bool) -> Iterator[SearchRun]:
    """Make ``config`` the current search run until the block ends."""
    run = SearchRun(config, blocking)
    token = _CURRENT.set(run)
    try:
        yield run
    finally:
        _CURRENT.reset(token)
