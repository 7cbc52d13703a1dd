"""Helpers shared by the strategy tests: run a search and record the batches its plan asked for."""

from __future__ import annotations

from collections.abc import Callable

from sal_plugins import SearchResult
from sal_plugins._driver import SearchDriver
from sal_plugins.events import SearchEvent, SearchFinished
from sal_plugins.strategies.base import Expand, Outcome, Request, SearchStrategy
from sal_plugins.tree import Node, SearchTree


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


Status = str
"""``"open"`` (a step that continues), ``"end"`` (ends the solution) or ``"length"`` (cut off)."""

Respond = Callable[[Node, Expand, int], list[tuple[str, Status]]]
"""``respond(parent, request, position_in_batch) -> [(text, status), ...]`` (``request.n`` items)."""


def drive_plan(
    strategy: SearchStrategy,
    problem: str,
    respond: Respond,
    score: Callable[[tuple[str, ...]], float],
) -> tuple[SearchTree, list[list[Request]], Outcome]:
    """Step a strategy's plan by hand, with no driver: full control over what each request gets.

    Each generated node adds one step (or, for requests with ``problem`` set, starts a fresh
    trajectory of that one step); scoring gives every step of a trajectory ``score(steps)``.
    """
    tree = SearchTree(problem)
    plan = strategy.plan(problem, tree)
    batches: list[list[Request]] = []
    try:
        batch = next(plan)
        while True:
            batches.append(batch)
            results: list[tuple[int, ...]] = []
            for position, request in enumerate(batch):
                if isinstance(request, Expand):
                    parent = tree[request.parent]
                    base = () if request.problem is not None else parent.steps
                    ids = []
                    for text, status in respond(parent, request, position):
                        node = tree.add(
                            request.parent,
                            text=text,
                            steps=(*base, text),
                            round=request.round,
                            kind=request.kind,
                            finished=status == "end",
                            stop_kind={"end": "end", "length": "length"}.get(status, "delimiter"),
                        )
                        ids.append(node.id)
                    results.append(tuple(ids))
                else:
                    for node_id in request.nodes:
                        value = score(tree[node_id].steps)
                        tree[node_id].step_scores = (value,) * len(tree[node_id].steps)
                        tree[node_id].score = strategy.score_of(tree[node_id].step_scores)
                    results.append(request.nodes)
            batch = plan.send(results)
    except StopIteration as stop:
        return tree, batches, stop.value
