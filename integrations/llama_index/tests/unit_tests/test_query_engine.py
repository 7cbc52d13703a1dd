"""SearchQueryEngine: Response out with the search summary, in routers and as a tool."""

from __future__ import annotations

from typing import Any

import pytest
from li_fakes import PROBLEM, SOLUTIONS, ScriptedLLM, prefers_four, solution_llm
from llama_index.core.base.response.schema import Response
from llama_index.core.query_engine import CustomQueryEngine, RouterQueryEngine
from llama_index.core.selectors import LLMSingleSelector
from llama_index.core.tools import QueryEngineTool
from sal_plugins.errors import ConfigError
from sal_plugins.results import SearchResult
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.strategies import BestOfN

from llama_index_sal import SearchQueryEngine


def engine(**kwargs: Any) -> SearchQueryEngine:
    return SearchQueryEngine(
        "best_of_n",
        solver=ScriptedSolver(SOLUTIONS),
        verifier=prefers_four(),
        n=2,
        seed=0,
        **kwargs,
    )


def test_query_returns_the_solution_with_the_search_summary() -> None:
    response = engine().query(PROBLEM)

    assert isinstance(response, Response)
    assert response.response is not None and response.response.endswith("$\\boxed{4}$.")
    metadata = response.metadata or {}
    assert metadata["answer"] == "4"
    assert metadata["strategy"] == "best_of_n"
    assert metadata["stop_reason"] == "finished"
    assert metadata["usage"]["generation_calls"] >= 1
    assert metadata["problem"] == PROBLEM
    assert isinstance(metadata["search_result"], SearchResult)


async def test_aquery_and_answer_output() -> None:
    response = await engine(output="answer").aquery(PROBLEM)

    assert isinstance(response, Response)
    assert response.response == "4"


def test_strategy_names_and_configured_strategies_are_accepted() -> None:
    strategy = BestOfN(solver=ScriptedSolver(SOLUTIONS), n=1)

    assert SearchQueryEngine(strategy).search is strategy
    assert SearchQueryEngine(
        "beam-search", solver=solution_llm(), verifier=prefers_four()
    ).search.name == ("beam_search")
    with pytest.raises(ConfigError):
        SearchQueryEngine(strategy, n=3)
    with pytest.raises(ConfigError):
        engine(output="json")
    assert isinstance(engine(), CustomQueryEngine)


def test_router_picks_the_search_engine_and_returns_its_response() -> None:
    class Echo(CustomQueryEngine):
        def custom_query(self, query_str: str) -> str:
            return "lookup: " + query_str

    tools = [
        QueryEngineTool.from_defaults(Echo(), name="lookup", description="Looks up facts."),
        QueryEngineTool.from_defaults(engine(), name="math", description="Solves math problems."),
    ]
    selector_llm = ScriptedLLM(
        reply=lambda m, k: '[{"choice": 2, "reason": "it is a math problem"}]'
    )
    router = RouterQueryEngine(
        selector=LLMSingleSelector.from_defaults(llm=selector_llm),
        query_engine_tools=tools,
        llm=selector_llm,
    )

    response = router.query(PROBLEM)

    assert isinstance(response, Response)
    assert (response.metadata or {})["answer"] == "4"
    assert selector_llm.calls or selector_llm.completions


async def test_as_query_engine_tool() -> None:
    tool = QueryEngineTool.from_defaults(engine(output="answer"), name="math", description="Math.")

    output = await tool.acall(input=PROBLEM)

    assert output.content == "4"
    assert isinstance(output.raw_output, Response)
    assert (output.raw_output.metadata or {})["stop_reason"] == "finished"
