"""as_query_component() inside real QueryPipelines, on llama-index-core 0.12.

Run in an environment with llama-index-core 0.12.x (QueryPipeline was removed in 0.13):

    /work/venv-li012/bin/pytest tests/legacy_0_12
"""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import PromptTemplate
from llama_index.core import __version__ as core_version
from llama_index.core.llms import MockLLM
from llama_index.core.query_pipeline import CustomQueryComponent, InputComponent, QueryPipeline
from sal_plugins.errors import ConfigError
from sal_plugins.results import SearchResult
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.verifiers import ScriptedVerifier

from llama_index_sal import LlamaIndexSolver, as_query_component

PROBLEM = "What is 2 + 2?"
RIGHT = "2 + 2 = 4\n\nThe answer is $\\boxed{4}$."
WRONG = "2 + 2 = 5\n\nThe answer is $\\boxed{5}$."


def component(solver: Any = None, **kwargs: Any) -> Any:
    return as_query_component(
        "best_of_n",
        solver=solver or ScriptedSolver([WRONG, RIGHT]),
        verifier=ScriptedVerifier(lambda problem, step: 0.9 if "4" in step else 0.1),
        n=2,
        seed=0,
        **kwargs,
    )


def test_this_environment_runs_llama_index_core_0_12() -> None:
    assert core_version.startswith("0.12."), core_version


def test_the_component_is_a_custom_query_component() -> None:
    search = component()

    assert isinstance(search, CustomQueryComponent)
    assert search.input_keys.required_keys == {"problem"}
    assert search.output_keys.required_keys == {"output"}


def test_a_chain_feeds_the_prompt_to_the_search() -> None:
    solver = ScriptedSolver([WRONG, RIGHT])
    pipeline = QueryPipeline(
        chain=[PromptTemplate("What is {a} + {b}?"), component(solver, output="answer")]
    )

    answer = pipeline.run(a="2", b="2")

    assert answer == "4"
    assert solver.requests[0].problem == "What is 2 + 2?"


async def test_the_pipeline_runs_async() -> None:
    pipeline = QueryPipeline(chain=[component(output="text")])

    solution = await pipeline.arun(problem=PROBLEM)

    assert solution == RIGHT


def test_the_result_output_carries_the_search_result() -> None:
    pipeline = QueryPipeline(chain=[component()])

    result = pipeline.run(problem=PROBLEM)

    assert isinstance(result, SearchResult)
    assert result.answer == "4"
    assert result.usage.generation_calls >= 1


def test_links_in_a_dag_address_the_problem_key() -> None:
    pipeline = QueryPipeline(verbose=False)
    pipeline.add_modules(
        {
            "input": InputComponent(),
            "prompt": PromptTemplate("Answer carefully: {question}"),
            "search": component(output="answer"),
        }
    )
    pipeline.add_link("input", "prompt", src_key="question", dest_key="question")
    pipeline.add_link("prompt", "search", dest_key="problem")

    assert pipeline.run(question=PROBLEM) == "4"


def test_a_llamaindex_llm_output_is_the_next_problem() -> None:
    solver = ScriptedSolver([RIGHT])
    pipeline = QueryPipeline(chain=[MockLLM(), component(solver, output="answer")])

    assert pipeline.run(input="Restated: what is 2 + 2?") == "4"
    assert solver.requests[0].problem == "Restated: what is 2 + 2?"


def test_a_llamaindex_llm_can_be_the_solver() -> None:
    search = component(MockLLM(max_tokens=3), output="text")

    assert isinstance(search.search.solver, LlamaIndexSolver)
    assert QueryPipeline(chain=[search]).run(problem=PROBLEM) == "text text text"


def test_a_bad_output_setting_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        component(output="json")
