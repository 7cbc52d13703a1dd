"""Typed progress events of a search, as yielded by ``strategy.astream(problem)``.

Events arrive in order: one :class:`SearchStarted`, then for each round the work done
(:class:`CandidatesGenerated`, :class:`CandidatesScored`, :class:`ChoiceMade` when the strategy
chooses how to go on, and :class:`RequestFailed` / :class:`RequestRetried` when faults happen),
and last one :class:`SearchFinished` that carries the
:class:`~sal_plugins.results.SearchResult`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Literal

from sal_plugins.results import SearchResult
from sal_plugins.tree import Choice

__all__ = [
    "CandidatesGenerated",
    "CandidatesScored",
    "ChoiceMade",
    "RequestFailed",
    "RequestRetried",
    "SearchEvent",
    "SearchFinished",
    "SearchStarted",
    "event_data",
]


@dataclass(frozen=True, kw_only=True)
class SearchEvent:
    """Base of every event.

    Attributes:
        elapsed_s: seconds since the search started.
    """

    elapsed_s: float
    kind: str = field(init=False, default="event")


@dataclass(frozen=True, kw_only=True)
class SearchStarted(SearchEvent):
    """The search began."""

    strategy: str
    problem: str
    kind: str = field(init=False, default="search_started")


@dataclass(frozen=True, kw_only=True)
class CandidatesGenerated(SearchEvent):
    """A batch of generation requests completed.

    Attributes:
        round: the strategy round.
        node_ids: the new nodes, in request order.
        finished: how many of them ended their solution.
    """

    round: int
    node_ids: tuple[int, ...]
    finished: int
    kind: str = field(init=False, default="candidates_generated")


@dataclass(frozen=True, kw_only=True)
class CandidatesScored(SearchEvent):
    """A batch of trajectories was scored.

    Attributes:
        round: the strategy round.
        node_ids: the nodes scored.
        best_score: the highest aggregated score among them (``None`` if none could be scored).
    """

    round: int
    node_ids: tuple[int, ...]
    best_score: float | None
    kind: str = field(init=False, default="candidates_scored")


@dataclass(frozen=True, kw_only=True)
class RequestRetried(SearchEvent):
    """A transient fault (429, 5xx, timeout) is being retried."""

    stage: Literal["generate", "score"]
    attempt: int
    error: str
    wait_s: float
    kind: str = field(init=False, default="request_retried")


@dataclass(frozen=True, kw_only=True)
class RequestFailed(SearchEvent):
    """A request failed for good; the search goes on without its candidates."""

    stage: Literal["generate", "score"]
    round: int
    error: str
    kind: str = field(init=False, default="request_failed")


@dataclass(frozen=True, kw_only=True)
class ChoiceMade(SearchEvent):
    """The strategy chose how to go on (``Adaptive``: the arm its probe called for, and why).

    The same choice is in ``result.tree.choices`` and ``result.summary()["choices"]``.
    """

    choice: Choice
    kind: str = field(init=False, default="choice_made")


@dataclass(frozen=True, kw_only=True)
class SearchFinished(SearchEvent):
    """The search ended; ``result`` is what ``arun`` returns."""

    result: SearchResult
    kind: str = field(init=False, default="search_finished")


def event_data(event: SearchEvent, *, exclude: Collection[str] = ()) -> dict[str, Any]:
    """An event's fields as JSON-ready values, but for ``exclude``.

    Records (a :class:`ChoiceMade`'s choice) become dicts and tuples lists; the one place that
    says how an event is written out (``sal serve``'s progress chunks, LlamaIndex's events).
    """
    return {f.name: _plain(getattr(event, f.name)) for f in fields(event) if f.name not in exclude}


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return list(value) if isinstance(value, tuple) else value
