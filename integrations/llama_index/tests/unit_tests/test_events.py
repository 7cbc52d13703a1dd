"""SearchProgressEvent: every sal event becomes a readable, JSON-ready workflow event."""

from __future__ import annotations

import json

import pytest
import sal_plugins as sal
from li_fakes import PROBLEM, SOLUTIONS, prefers_four
from sal_plugins.events import (
    CandidatesGenerated,
    CandidatesScored,
    ChoiceMade,
    RequestFailed,
    RequestRetried,
    SearchEvent,
    SearchStarted,
)
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.tree import Choice

from llama_index_sal import SearchProgressEvent

EVENTS: list[tuple[SearchEvent, str]] = [
    (
        SearchStarted(elapsed_s=0.0, strategy="beam_search", problem=PROBLEM),
        "beam_search search started",
    ),
    (
        CandidatesGenerated(elapsed_s=0.1, round=2, node_ids=(3, 4), finished=1),
        "round 2: generated 2 candidates (1 finished)",
    ),
    (
        CandidatesScored(elapsed_s=0.2, round=2, node_ids=(3, 4), best_score=None),
        "round 2: scored 2 candidates, best none",
    ),
    (
        ChoiceMade(
            elapsed_s=0.25,
            choice=Choice(0, "beam_search n=16", "bin 'hard'", {"agreement": 0.25}),
        ),
        "chose beam_search n=16 (bin 'hard')",
    ),
    (
        RequestRetried(elapsed_s=0.3, stage="generate", attempt=1, error="HTTP 503", wait_s=0.5),
        "generate request retried (attempt 1, wait 0.5s): HTTP 503",
    ),
    (
        RequestFailed(elapsed_s=0.4, stage="score", round=3, error="VerifierError: down"),
        "round 3: score request failed: VerifierError: down",
    ),
]


@pytest.mark.parametrize(("event", "message"), EVENTS, ids=lambda v: getattr(v, "kind", ""))
def test_each_event_kind_is_described_and_serializable(event: SearchEvent, message: str) -> None:
    progress = SearchProgressEvent.from_sal(event)

    assert progress.kind == event.kind
    assert progress.elapsed_s == event.elapsed_s
    assert progress.message == message
    assert progress.sal_event is event
    dumped = json.loads(json.dumps(progress.model_dump()))
    assert dumped["kind"] == event.kind
    assert "kind" not in dumped["data"] and "elapsed_s" not in dumped["data"]


async def test_the_finished_event_carries_the_summary_not_the_result() -> None:
    search = sal.BestOfN(solver=ScriptedSolver(SOLUTIONS), verifier=prefers_four(), n=2, seed=0)
    events = [e async for e in search.astream(PROBLEM)]

    progress = SearchProgressEvent.from_sal(events[-1])

    assert progress.kind == "search_finished"
    assert progress.data["answer"] == "4"
    assert "answer '4'" in progress.message
    json.dumps(progress.model_dump())
