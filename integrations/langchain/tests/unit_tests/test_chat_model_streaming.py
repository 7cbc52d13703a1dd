"""SearchChatModel as a streaming chat model: deltas, metadata, usage, standard parameters."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from sal_plugins.budget import Budget
from sal_plugins.errors import ConfigError
from sal_plugins.solvers.scripted import ScriptedSolver

from langchain_sal import BestOfNRunnable, SearchChatModel
from tests.unit_tests.fakes import SOLUTIONS, RecordingChatModel

PROBLEM = "What is 2 + 2?"
FOURS = {SOLUTIONS[0], SOLUTIONS[2]}


class NamedChatModel(RecordingChatModel):
    """A recording model that names itself in ``response_metadata``, as provider models do."""

    model_name: str = "tiny-solver"

    def _message(self, text: str) -> AIMessage:
        message = super()._message(text)
        message.response_metadata["model_name"] = self.model_name
        return message


def majority(solver: Any, **kwargs: Any) -> SearchChatModel:
    return SearchChatModel(strategy="best_of_n", solver=solver, n=3, selection="majority", **kwargs)


def joined(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


def _check_stream(chunks: list[AIMessageChunk]) -> None:
    assert len(chunks) > 1  # deltas, not one blob
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert [c.chunk_position for c in chunks][-1] == "last"
    assert all(c.chunk_position is None for c in chunks[:-1])
    message = joined(chunks)
    assert message.text in FOURS
    assert message.response_metadata["model_name"] == "best_of_n:tiny-solver"
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.response_metadata["sal"]["answer"] == "4"
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 30  # counted once, not once per chunk


def test_stream_yields_the_answer_in_deltas() -> None:
    chunks = list(majority(NamedChatModel(responses=SOLUTIONS)).stream(PROBLEM))
    _check_stream(chunks)  # type: ignore[arg-type]


async def test_astream_yields_the_answer_in_deltas() -> None:
    chunks = [c async for c in majority(NamedChatModel(responses=SOLUTIONS)).astream(PROBLEM)]
    _check_stream(chunks)  # type: ignore[arg-type]


async def test_astream_events_show_progress_then_the_model_stream() -> None:
    model = majority(NamedChatModel(responses=SOLUTIONS))
    events = [e async for e in model.astream_events(PROBLEM, version="v2")]
    own = [e for e in events if e["name"] == "SearchChatModel" or e["event"] == "on_custom_event"]
    kinds = [e["event"] for e in own]
    assert kinds[0] == "on_chat_model_start" and kinds[-1] == "on_chat_model_end"
    streamed = [i for i, k in enumerate(kinds) if k == "on_chat_model_stream"]
    progress = [i for i, k in enumerate(kinds) if k == "on_custom_event"]
    assert len(streamed) > 1
    assert {own[i]["name"] for i in progress} >= {"sal.search_started", "sal.search_finished"}
    assert max(progress) < min(streamed)  # progress while it searched, then the answer
    text = "".join(own[i]["data"]["chunk"].text for i in streamed)
    assert text in FOURS


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_streamed_search_traces_candidates_as_children(asynchronous: bool) -> None:
    collector = RunCollectorCallbackHandler()
    model = majority(NamedChatModel(responses=SOLUTIONS))
    config: Any = {"callbacks": [collector]}
    if asynchronous:
        _ = [c async for c in model.astream(PROBLEM, config=config)]
    else:
        _ = list(model.stream(PROBLEM, config=config))
    (root,) = collector.traced_runs
    assert root.name == "SearchChatModel"
    assert [run.name for run in root.child_runs] == ["NamedChatModel"] * 3


def test_stream_events_v3_gives_the_answer_text() -> None:
    model = majority(NamedChatModel(responses=SOLUTIONS))
    if "v3" not in str(type(model).stream_events.__annotations__.get("version", "")):
        pytest.skip("this langchain-core has no stream_events(version='v3')")
    stream = model.stream_events(PROBLEM, version="v3")
    assert "".join(stream.text) in FOURS


def test_invoke_and_stream_agree() -> None:
    solver = ScriptedSolver([SOLUTIONS[0]])
    model = majority(solver)
    assert joined(list(model.stream(PROBLEM))).text == model.invoke(PROBLEM).text  # type: ignore[arg-type]


# --- usage --------------------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
def test_usage_callback_records_the_search_total_once(streamed: bool) -> None:
    model = majority(NamedChatModel(responses=SOLUTIONS))
    with get_usage_metadata_callback() as usage:
        if streamed:
            message: Any = joined(list(model.stream(PROBLEM)))  # type: ignore[arg-type]
        else:
            message = model.invoke(PROBLEM)
    # One key: the three candidate calls are inside the search's total, not counted again.
    assert usage.usage_metadata == {"best_of_n:tiny-solver": message.usage_metadata}
    assert usage.usage_metadata["best_of_n:tiny-solver"]["input_tokens"] == 30


def test_usage_callback_still_counts_calls_outside_the_search() -> None:
    solver = NamedChatModel(responses=SOLUTIONS)
    model = majority(solver)
    with get_usage_metadata_callback() as usage:
        model.invoke(PROBLEM)
        solver.invoke(PROBLEM)
    assert usage.usage_metadata["tiny-solver"]["input_tokens"] == 10
    assert usage.usage_metadata["best_of_n:tiny-solver"]["input_tokens"] == 30


def test_ls_params_name_the_search_and_the_candidate_settings() -> None:
    model = majority(
        NamedChatModel(responses=SOLUTIONS), temperature=0.3, max_tokens=64, stop=["\n\n"]
    )
    params = model._get_ls_params()
    assert params["ls_model_name"] == "best_of_n:tiny-solver"
    assert params["ls_model_type"] == "chat"
    assert (params["ls_temperature"], params["ls_max_tokens"]) == (0.3, 64)
    assert params["ls_stop"] == ["\n\n"]
    assert model._get_ls_params(stop=["END"], temperature=0.9)["ls_stop"] == ["END"]
    assert model._get_ls_params(temperature=0.9)["ls_temperature"] == 0.9


# --- standard parameters and call arguments ------------------------------------------------------


def test_constructor_standard_parameters_reach_the_search() -> None:
    solver = ScriptedSolver(SOLUTIONS)
    model = majority(solver, stop=["\n\n"], temperature=0.25, max_tokens=77, max_retries=1)
    assert model.invoke(PROBLEM).content == "2 + 2 = 4"  # cut at the constructor's stop
    assert {(r.temperature, r.max_tokens) for r in solver.requests} == {(0.25, 77)}
    assert model.strategy_kwargs["max_retries"] == 1


def test_timeout_is_the_search_deadline() -> None:
    model = majority(ScriptedSolver(SOLUTIONS), timeout=5)
    budget = model._strategy.budget
    assert budget is not None and budget.deadline_s == 5
    with pytest.raises(ConfigError, match="either timeout or budget"):
        majority(ScriptedSolver(SOLUTIONS), timeout=5, budget=Budget(max_calls=3))


def test_unknown_call_arguments_are_rejected_by_the_chat_model_and_the_runnables() -> None:
    solver = ScriptedSolver(SOLUTIONS)
    with pytest.raises(ConfigError, match=r"unknown call arguments \['beam_width'\].*selection"):
        majority(solver).invoke(PROBLEM, beam_width=2)
    runnable = BestOfNRunnable(solver=solver, n=3, selection="majority")
    with pytest.raises(ConfigError, match=r"unknown call arguments \['beam_width'\].*selection"):
        runnable.invoke(PROBLEM, beam_width=2)


async def test_an_adaptive_search_dispatches_what_it_chose() -> None:
    votes = {"strategy": "best_of_n", "n": 3, "settings": {"selection": "majority"}}
    model = SearchChatModel(
        strategy="adaptive",
        solver=NamedChatModel(responses=SOLUTIONS),
        policy={"probe": 2, "otherwise": votes},
    )
    events = [e async for e in model.astream_events(PROBLEM, version="v2")]
    chosen = [
        e for e in events if e["event"] == "on_custom_event" and e["name"] == "sal.choice_made"
    ]
    assert len(chosen) == 1
    choice = chosen[0]["data"].choice
    assert choice.choice.startswith("best_of_n n=3") and "probe of 2" in choice.because
