"""Workflow events: the typed start event of a search and its progress on the event stream."""

from __future__ import annotations

from typing import Any

from llama_index.core.workflow import Event, StartEvent
from pydantic import PrivateAttr
from sal_plugins.events import (
    CandidatesGenerated,
    CandidatesScored,
    ChoiceMade,
    RequestFailed,
    RequestRetried,
    SearchEvent,
    SearchFinished,
    SearchStarted,
    event_data,
)

__all__ = ["SearchProgressEvent", "SearchStartEvent"]


class SearchStartEvent(StartEvent):
    """Starts a search workflow: ``workflow.run(problem="...")`` builds it for you.

    Attributes:
        problem: the problem to solve.
    """

    problem: str


class SearchProgressEvent(Event):
    """One step of a running search, as written to the workflow's event stream.

    Each wraps one :mod:`sal_plugins.events` event: the search started, candidates were generated
    or scored, the strategy chose how to go on, a request was retried or failed, the search
    finished.

    Attributes:
        kind: the wrapped event's kind (``"search_started"``, ``"candidates_generated"``,
            ``"candidates_scored"``, ``"choice_made"``, ``"request_retried"``, ``"request_failed"``,
            ``"search_finished"``).
        elapsed_s: seconds since the search started.
        message: a one-line description, for logs and progress displays.
        data: the wrapped event's fields, JSON-ready (``search_finished`` carries the result's
            summary instead of the result).
    """

    kind: str
    elapsed_s: float
    message: str
    data: dict[str, Any]
    _sal_event: SearchEvent | None = PrivateAttr(default=None)

    @property
    def sal_event(self) -> SearchEvent | None:
        """The original sal-plugins event (``None`` after the event was serialized)."""
        return self._sal_event

    @classmethod
    def from_sal(cls, event: SearchEvent) -> SearchProgressEvent:
        """Wrap a sal-plugins search event."""
        if isinstance(event, SearchFinished):
            data: dict[str, Any] = event.result.summary()
        else:
            data = event_data(event, exclude=("kind", "elapsed_s"))
        progress = cls(
            kind=event.kind, elapsed_s=event.elapsed_s, message=describe(event), data=data
        )
        progress._sal_event = event
        return progress


def describe(event: SearchEvent) -> str:
    """A one-line description of a search event."""
    if isinstance(event, SearchStarted):
        return f"{event.strategy} search started"
    if isinstance(event, CandidatesGenerated):
        return (
            f"round {event.round}: generated {len(event.node_ids)} candidates "
            f"({event.finished} finished)"
        )
    if isinstance(event, CandidatesScored):
        best = "none" if event.best_score is None else f"{event.best_score:.3f}"
        return f"round {event.round}: scored {len(event.node_ids)} candidates, best {best}"
    if isinstance(event, ChoiceMade):
        return f"chose {event.choice.choice} ({event.choice.because})"
    if isinstance(event, RequestRetried):
        return (
            f"{event.stage} request retried (attempt {event.attempt}, wait {event.wait_s:.1f}s): "
            f"{event.error}"
        )
    if isinstance(event, RequestFailed):
        return f"round {event.round}: {event.stage} request failed: {event.error}"
    if isinstance(event, SearchFinished):
        result = event.result
        return (
            f"{result.strategy} search finished ({result.stop_reason}): answer {result.answer!r}, "
            f"{result.usage.calls} calls"
        )
    return event.kind
