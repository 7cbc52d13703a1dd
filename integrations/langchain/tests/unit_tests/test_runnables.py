"""The strategy runnables on scripted solvers, verifiers and chat models (no network)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
import sal_plugins as sal
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField, RunnableLambda
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langchain_core.tracers.schemas import Run
from langgraph.graph import END, START, MessagesState, StateGraph
from sal_plugins.errors import ConfigError, InputError
from sal_plugins.solvers.base import Generation, GenerationRequest, SolverResponse
from sal_plugins.solvers.scripted import ScriptedSolver
from sal_plugins.verifiers.scripted import ScriptedVerifier

from langchain_sal import (
    BeamSearchRunnable,
    BestOfNRunnable,
    DVTSRunnable,
    LangChainSolver,
    SelfRevisionRunnable,
)
from tests.unit_tests.fakes import SOLUTIONS, JudgingChatModel, RecordingChatModel

PROBLEM = "What is 2 + 2?"


def right_step(problem: str, step: str) -> float:
    """Per-step score for ScriptedVerifier: steps that say 5 are wrong."""
    return 0.1 if "5" in step else 0.9


def right_steps(problem: str, steps: list[str]) -> list[float]:
    """The same as a plain scoring function (wrapped in a FunctionVerifier by the strategy)."""
    return [right_step(problem, step) for step in steps]


def vote(**kwargs: Any) -> BestOfNRunnable:
    return BestOfNRunnable(
        solver=ScriptedSolver(SOLUTIONS), n=3, selection="majority", seed=0, **kwargs
    )


def walk(run: Run) -> Iterator[Run]:
    yield run
    for child in run.child_runs:
        yield from walk(child)


# --- inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        PROBLEM,
        {"problem": PROBLEM},
        {"question": PROBLEM},
        [("human", PROBLEM)],
        {"messages": [("human", "Hi"), ("ai", "Hello"), ("human", PROBLEM)]},
        ChatPromptTemplate.from_messages([("human", "{q}")]).invoke({"q": PROBLEM}),
    ],
    ids=["str", "problem", "question", "messages", "messages-state", "prompt-value"],
)
def test_accepts_every_input_form(value: Any) -> None:
    solver = ScriptedSolver(SOLUTIONS)
    search = BestOfNRunnable(solver=solver, n=2, selection="majority", output="answer")
    assert search.invoke(value) in {"4", "5"}
    assert {r.problem for r in solver.requests} == {PROBLEM}


def test_system_messages_become_the_system_prompt() -> None:
    solver = ScriptedSolver(SOLUTIONS)
    search = BestOfNRunnable(solver=solver, n=1, selection="majority")
    search.invoke([("system", "Be brief."), ("system", "Use digits."), ("human", PROBLEM)])
    assert solver.requests[0].system_prompt == "Be brief.\n\nUse digits."
    search.invoke({"problem": PROBLEM, "system_prompt": "Answer in French."})
    assert solver.requests[1].system_prompt == "Answer in French."
    search.invoke(PROBLEM)
    assert solver.requests[2].system_prompt == sal.BestOfN(solver=solver, n=1).system_prompt


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"text": PROBLEM}, "no 'problem'"),
        ([("system", "Be brief.")], "no user message"),
        (42, "cannot read a problem"),
        ("   ", "empty"),
    ],
)
def test_unreadable_inputs_raise_input_errors(value: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        vote().invoke(value)


# --- outputs ----------------------------------------------------------------------------------


def test_outputs_result_answer_or_message() -> None:
    result = vote().invoke(PROBLEM)
    assert isinstance(result, sal.SearchResult)
    assert result.answer == "4"
    assert vote(output="answer").invoke(PROBLEM) == "4"
    message = vote(output="message").invoke(PROBLEM)
    assert isinstance(message, AIMessage)
    assert message.content == result.text
    summary = message.response_metadata["sal"]
    assert (summary["answer"], summary["strategy"]) == ("4", "best_of_n")
    assert summary["candidates"] == len(result.completions)
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == result.usage.completion_tokens


def test_answer_output_falls_back_to_the_text_without_an_extractable_answer() -> None:
    search = BestOfNRunnable(
        solver=ScriptedSolver(["I am not sure."]), n=1, selection="majority", output="answer"
    )
    assert search.invoke(PROBLEM) == "I am not sure."


# --- configuration ----------------------------------------------------------------------------


def test_takes_the_strategy_keyword_arguments_and_validates_them_like_the_strategy() -> None:
    search = BeamSearchRunnable(solver=ScriptedSolver(SOLUTIONS), verifier=right_steps, n=4)
    assert search.strategy.config()["beam_width"] == 4  # the strategy's default
    with pytest.raises(ConfigError, match="multiple of beam_width"):
        BeamSearchRunnable(solver=ScriptedSolver(SOLUTIONS), verifier=right_steps, n=6)
    with pytest.raises(ConfigError, match="beam_widht"):
        BeamSearchRunnable(solver=ScriptedSolver(SOLUTIONS), verifier=right_steps, beam_widht=2)
    with pytest.raises(ConfigError, match="solver"):
        BestOfNRunnable(solver="gpt-4o", n=2)


def test_a_chat_model_solver_is_wrapped_in_a_langchain_solver() -> None:
    search = BestOfNRunnable(solver=RecordingChatModel(responses=SOLUTIONS), n=2)
    assert isinstance(search.strategy.solver, LangChainSolver)


def test_configurable_fields_reach_the_strategy() -> None:
    solver = ScriptedSolver(SOLUTIONS)
    search = BeamSearchRunnable(
        solver=solver, verifier=right_steps, n=4, beam_width=2, max_steps=3, temperature=0.8
    ).configurable_fields(
        n=ConfigurableField(id="n"),
        beam_width=ConfigurableField(id="beam_width"),
        temperature=ConfigurableField(id="temperature"),
    )
    configured = search.with_config(configurable={"n": 2, "beam_width": 1, "temperature": 0.1})
    configured.invoke(PROBLEM)
    assert solver.requests[0].n == 2
    assert {r.temperature for r in solver.requests} == {0.1}
    solver.requests.clear()
    search.invoke(PROBLEM)
    assert solver.requests[0].n == 4
    assert {r.temperature for r in solver.requests} == {0.8}
    with pytest.raises(ConfigError, match="multiple of beam_width"):
        search.with_config(configurable={"n": 3}).invoke(PROBLEM)


# --- strategies -------------------------------------------------------------------------------


def test_beam_search_picks_the_verified_solution() -> None:
    search = BeamSearchRunnable(
        solver=ScriptedSolver(SOLUTIONS),
        verifier=ScriptedVerifier(right_step),
        n=2,
        beam_width=1,
        max_steps=4,
        seed=0,
        output="answer",
    )
    assert search.invoke(PROBLEM) == "4"


def test_dvts_and_self_revision_run_too() -> None:
    dvts = DVTSRunnable(
        solver=ScriptedSolver(SOLUTIONS),
        verifier=right_steps,
        n=4,
        beam_width=2,
        max_steps=4,
        seed=0,
        output="answer",
    )
    assert dvts.invoke(PROBLEM) == "4"
    revise = SelfRevisionRunnable(
        solver=ScriptedSolver([SOLUTIONS[1]], revisions=[SOLUTIONS[0]]),
        verifier=right_steps,
        max_revisions=2,
        threshold=0.5,
        seed=0,
    )
    result = revise.invoke(PROBLEM)
    assert result.answer == "4"
    assert result.strategy == "self_revision"


# --- async, batch, stream ---------------------------------------------------------------------


async def test_ainvoke_and_astream() -> None:
    search = vote(output="answer")
    assert await search.ainvoke(PROBLEM) == "4"
    assert [chunk async for chunk in search.astream(PROBLEM)] == ["4"]
    assert list(search.stream(PROBLEM)) == ["4"]


class GatedSolver:
    """Holds every request until two searches are in flight at once (or 5 s pass).

    If ``batch`` ran searches one at a time, each request would wait out the timeout and the peak
    would stay 1; if it ignored ``max_concurrency``, the peak would exceed 2.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.two_at_once = threading.Event()

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            if self.in_flight >= 2:
                self.two_at_once.set()
        try:
            await asyncio.to_thread(self.two_at_once.wait, 5)
            return SolverResponse([Generation(SOLUTIONS[0], "end")] * request.n)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_batch_runs_searches_concurrently_within_max_concurrency() -> None:
    solver = GatedSolver()
    search = BestOfNRunnable(solver=solver, n=1, selection="majority", output="answer")
    answers = search.batch([PROBLEM] * 4, config={"max_concurrency": 2})
    assert answers == ["4"] * 4
    assert solver.peak == 2


async def test_abatch_runs_searches_concurrently_within_max_concurrency() -> None:
    solver = GatedSolver()
    search = BestOfNRunnable(solver=solver, n=1, selection="majority", output="answer")
    answers = await search.abatch([PROBLEM] * 4, config={"max_concurrency": 2})
    assert answers == ["4"] * 4
    assert solver.peak == 2


# --- events and tracing -----------------------------------------------------------------------


async def test_astream_events_carries_search_progress_as_custom_events() -> None:
    search = BeamSearchRunnable(
        solver=ScriptedSolver(SOLUTIONS), verifier=right_steps, n=2, beam_width=1, max_steps=3
    )
    custom = [
        event
        async for event in search.astream_events(PROBLEM, version="v2")
        if event["event"] == "on_custom_event"
    ]
    names = [event["name"] for event in custom]
    assert names[0] == "sal.search_started"
    assert names[-1] == "sal.search_finished"
    assert "sal.candidates_generated" in names
    assert "sal.candidates_scored" in names
    assert all(isinstance(event["data"], sal.SearchEvent) for event in custom)
    assert custom[-1]["data"].result.answer == "4"


class CustomEvents(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.names: list[str] = []

    async def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        self.names.append(name)


def test_sync_invoke_dispatches_custom_events_to_callbacks() -> None:
    handler = CustomEvents()
    vote().invoke(PROBLEM, config={"callbacks": [handler]})
    assert handler.names[0] == "sal.search_started"
    assert handler.names[-1] == "sal.search_finished"


def _model_runs_under_search(collector: RunCollectorCallbackHandler) -> tuple[Run, list[Run]]:
    (root,) = collector.traced_runs
    searches = [run for run in walk(root) if run.name == "BeamSearchRunnable"]
    assert len(searches) == 1
    models = [run for run in walk(root) if run.run_type == "llm"]
    return searches[0], models


def _traced_search(model: RecordingChatModel) -> Any:
    search = BeamSearchRunnable(
        solver=model, verifier=right_steps, n=2, beam_width=1, max_steps=3, output="result"
    )
    return RunnableLambda(lambda x: x, name="prepare") | search


def test_every_model_call_is_a_child_of_the_search_run() -> None:
    collector = RunCollectorCallbackHandler()
    result = _traced_search(RecordingChatModel(responses=SOLUTIONS)).invoke(
        PROBLEM, config={"callbacks": [collector]}
    )
    search_run, model_runs = _model_runs_under_search(collector)
    assert len(model_runs) == result.usage.generation_calls > 0
    assert {run.parent_run_id for run in model_runs} == {search_run.id}
    assert all("nostream" in (run.tags or []) for run in model_runs)


async def test_every_model_call_is_a_child_of_the_search_run_async() -> None:
    collector = RunCollectorCallbackHandler()
    result = await _traced_search(RecordingChatModel(responses=SOLUTIONS)).ainvoke(
        PROBLEM, config={"callbacks": [collector]}
    )
    search_run, model_runs = _model_runs_under_search(collector)
    assert len(model_runs) == result.usage.generation_calls > 0
    assert {run.parent_run_id for run in model_runs} == {search_run.id}


# --- composition ------------------------------------------------------------------------------


def test_prompt_search_parser_chain() -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are careful."), ("human", "Solve: {question}")]
    )
    solver = ScriptedSolver(SOLUTIONS)
    search = BestOfNRunnable(solver=solver, n=3, selection="majority", output="message")
    chain = prompt | search | StrOutputParser()
    text = chain.invoke({"question": PROBLEM})
    assert text.endswith("$\\boxed{4}$.")
    assert solver.requests[0].problem == f"Solve: {PROBLEM}"
    assert solver.requests[0].system_prompt == "You are careful."


def test_as_tool_takes_a_problem_argument() -> None:
    tool = vote(output="answer").as_tool(name="solve_math", description="Solves math problems.")
    assert set(tool.args) == {"problem"}
    assert tool.invoke({"problem": PROBLEM}) == "4"


class QAState(TypedDict, total=False):
    question: str
    answer: str


def test_runs_as_a_langgraph_node() -> None:
    search = vote(output="answer")
    graph = StateGraph(QAState)
    graph.add_node("solve", search | RunnableLambda(lambda answer: {"answer": answer}))
    graph.add_edge(START, "solve")
    graph.add_edge("solve", END)
    assert graph.compile().invoke({"question": PROBLEM}) == {"question": PROBLEM, "answer": "4"}


def test_runs_as_a_messages_state_node() -> None:
    search = vote(output="message")
    graph = StateGraph(MessagesState)
    graph.add_node("solve", search | RunnableLambda(lambda message: {"messages": [message]}))
    graph.add_edge(START, "solve")
    graph.add_edge("solve", END)
    state = graph.compile().invoke({"messages": [("human", PROBLEM)]})
    assert state["messages"][-1].response_metadata["sal"]["answer"] == "4"


async def test_sync_invoke_inside_a_running_loop_still_nests_model_calls() -> None:
    # invoke() from async code runs the search on a worker thread, where context variables do
    # not follow; the callbacks are passed explicitly, so the nesting holds anyway.
    collector = RunCollectorCallbackHandler()
    result = _traced_search(RecordingChatModel(responses=SOLUTIONS)).invoke(
        PROBLEM, config={"callbacks": [collector]}
    )
    search_run, model_runs = _model_runs_under_search(collector)
    assert len(model_runs) == result.usage.generation_calls > 0
    assert {run.parent_run_id for run in model_runs} == {search_run.id}


def test_a_chat_model_verifier_judges_and_its_calls_nest_too() -> None:
    solver = RecordingChatModel(responses=SOLUTIONS[:2])
    judge = JudgingChatModel()
    search = BestOfNRunnable(solver=solver, verifier=judge, n=2, selection="naive")
    collector = RunCollectorCallbackHandler()
    result = search.invoke(PROBLEM, config={"callbacks": [collector]})
    assert [c.score for c in result.completions] == [0.9, 0.1]
    assert result.answer == "4"
    (root,) = collector.traced_runs
    judged = [run for run in walk(root) if "sal_judge" in (run.tags or [])]
    written = [run for run in walk(root) if "sal_candidate" in (run.tags or [])]
    assert (len(judged), len(written)) == (2, 2)
    assert {run.parent_run_id for run in judged + written} == {root.id}
    assert "Score: N/10" in judge.calls[0]["messages"][-1].content
    # The judge's tokens (10 prompt + 5 completion a call) count as the search's verifier work.
    assert (result.usage.verifier_prompt_tokens, result.usage.verifier_completion_tokens) == (
        20,
        10,
    )


def test_sync_invoke_calls_the_chat_model_through_its_sync_api() -> None:
    # Each sync invoke runs the search on a fresh event loop; calling the model's sync API keeps
    # its async HTTP client from being shared between those loops.
    model = RecordingChatModel(responses=SOLUTIONS)
    BestOfNRunnable(solver=model, n=2, selection="majority").invoke(PROBLEM)
    assert model.sync_calls == len(model.calls) == 2


async def test_async_invoke_calls_the_chat_model_through_its_async_api() -> None:
    model = RecordingChatModel(responses=SOLUTIONS)
    await BestOfNRunnable(solver=model, n=2, selection="majority").ainvoke(PROBLEM)
    assert (model.sync_calls, len(model.calls)) == (0, 2)


def test_strategy_settings_can_be_bound_per_call() -> None:
    solver = ScriptedSolver(SOLUTIONS)
    search = BestOfNRunnable(solver=solver, n=2, selection="majority", early_stop=False)
    search.bind(n=5).invoke(PROBLEM)
    search.invoke(PROBLEM)
    assert [r.n for r in solver.requests] == [5, 2]
    with pytest.raises(ConfigError, match="unknown call arguments"):
        search.invoke(PROBLEM, beam_width=2)
