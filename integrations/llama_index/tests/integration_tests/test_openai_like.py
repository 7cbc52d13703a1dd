"""Every entry point against a real server: OpenAILike -> llama_cpp.server (SmolLM2-135M).

The model is tiny, so these tests check the plumbing (requests reach the server, responses come
back parsed, usage is counted, progress streams), not the answers' correctness.
"""

from __future__ import annotations

import pytest
from conftest import MAX_TOKENS
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.response.schema import Response
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai_like import OpenAILike
from sal_plugins.errors import TransientError
from sal_plugins.results import SearchResult
from sal_plugins.solvers import GenerationRequest

from llama_index_sal import (
    BestOfNWorkflow,
    LlamaIndexSolver,
    SearchLLM,
    SearchProgressEvent,
    SearchQueryEngine,
)

pytestmark = pytest.mark.model

PROBLEM = "What is 3 + 4?"


def shortest_is_best(problem: str, steps: list[str]) -> float:
    """A stand-in outcome verifier: prefers short solutions (deterministic, no model)."""
    return 1.0 / (1 + len(" ".join(steps)))


async def test_solver_samples_concurrently_with_logprobs_and_usage(llm: OpenAILike) -> None:
    solver = LlamaIndexSolver(llm=llm)
    request = GenerationRequest(
        problem=PROBLEM,
        n=2,
        stop=("\n\n",),
        temperature=0.8,
        max_tokens=16,
        seed=3,
        system_prompt="Solve step by step.",
        logprobs=True,
        top_logprobs=2,
    )

    response = await solver.generate(request)

    assert len(response.generations) == 2
    assert response.requests == 2
    assert response.prompt_tokens > 0 and response.completion_tokens > 0
    for generation in response.generations:
        assert "\n\n" not in generation.text
        assert generation.stop_kind in ("unknown", "length", "delimiter", "end")
        assert generation.token_logprobs, "llama_cpp.server returns chat logprobs"
        assert all(value <= 0.0 for value in generation.token_logprobs)


async def test_completion_mode_continues_raw_chatml_text(llama_server_url: str) -> None:
    completions_llm = OpenAILike(
        api_base=llama_server_url, api_key="x", model="smollm2", is_chat_model=False, timeout=600
    )
    solver = LlamaIndexSolver(llm=completions_llm, continuation="completion")
    request = GenerationRequest(
        problem=PROBLEM, prefix_steps=("3 + 4 = 7.",), stop=("\n\n",), max_tokens=12, seed=1
    )

    response = await solver.generate(request)

    (generation,) = response.generations
    assert response.completion_tokens > 0
    assert "<|im_start|>" not in generation.text and "\n\n" not in generation.text
    assert generation.stop_kind in ("unknown", "length", "delimiter", "end")


async def test_workflow_streams_progress_and_returns_the_result(llm: OpenAILike) -> None:
    workflow = BestOfNWorkflow(
        solver=llm,
        verifier=shortest_is_best,
        n=2,
        selection="naive",
        max_tokens=MAX_TOKENS,
        seed=0,
    )

    handler = workflow.run(problem=PROBLEM)
    progress = [e async for e in handler.stream_events() if isinstance(e, SearchProgressEvent)]
    result = await handler

    assert isinstance(result, SearchResult)
    # Both samples were drawn; the candidates are the finished ones (a sample the 32-token cap
    # cut short is returned only when none finished).
    samples = [n for n in result.tree.nodes if n.kind == "solution"]
    assert len(samples) == 2 and result.text
    assert 1 <= len(result.completions) <= 2
    assert all(c.finished for c in result.completions) or len(result.completions) == 2
    assert result.usage.completion_tokens > 0
    kinds = [e.kind for e in progress]
    assert kinds[0] == "search_started" and kinds[-1] == "search_finished"
    assert "candidates_generated" in kinds and "candidates_scored" in kinds


async def test_query_engine_and_search_llm_answer_through_the_server(llm: OpenAILike) -> None:
    settings = {"solver": llm, "n": 1, "max_tokens": MAX_TOKENS, "seed": 0}
    engine = SearchQueryEngine("best_of_n", selection="majority", **settings)
    search_llm = SearchLLM("best_of_n", selection="majority", **settings)

    response = await engine.aquery(PROBLEM)
    completion = await search_llm.acomplete(PROBLEM)

    assert isinstance(response, Response) and response.response
    assert (response.metadata or {})["usage"]["generation_calls"] == 1
    assert completion.text
    assert isinstance(completion.raw, SearchResult)


async def test_auto_continuation_asks_the_server_who_serves_the_model(
    llama_server_url: str,
) -> None:
    # Through the LLM's own OpenAI client: llama_cpp.server answers /v1/models and is not vLLM.
    llm = OpenAILike(api_base=llama_server_url, api_key="x", model="smollm2", is_chat_model=True)
    solver = LlamaIndexSolver(llm=llm)
    assert await solver._resolve_mode() == "instructed"
    dead = OpenAILike(api_base="http://127.0.0.1:9/v1", api_key="x", model="m", is_chat_model=True)
    assert await LlamaIndexSolver(llm=dead)._resolve_mode() == "instructed"


async def test_an_unreachable_server_is_a_transient_fault(llama_server_url: str) -> None:
    dead = OpenAILike(
        api_base="http://127.0.0.1:9/v1", api_key="x", model="smollm2", is_chat_model=True
    )

    with pytest.raises(TransientError, match="OpenAILike"):
        await LlamaIndexSolver(llm=dead).generate(GenerationRequest(problem=PROBLEM, max_tokens=4))


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def test_search_llm_as_the_llm_of_a_function_agent(llama_server_url: str) -> None:
    solver = OpenAILike(
        api_base=llama_server_url,
        api_key="x",
        model="smollm2",
        is_chat_model=True,
        is_function_calling_model=True,
        max_tokens=MAX_TOKENS,
        timeout=600,
    )
    llm = SearchLLM("best_of_n", solver=solver, n=2, max_tokens=MAX_TOKENS, seed=0)
    tool = FunctionTool.from_defaults(fn=add)
    # A forced tool choice: llama.cpp's server constrains the reply to the tool's arguments
    # schema, so the 135M model answers with a well-formed call, returned without a search.
    forced = await llm.achat_with_tools([tool], user_msg=PROBLEM, tool_choice="add")
    (call,) = llm.get_tool_calls_from_response(forced)
    assert call.tool_name == "add" and set(call.tool_kwargs) == {"a", "b"}
    assert "answer" not in forced.additional_kwargs
    # Left to the model, SmolLM2 (no tool calling in its template) answers in text: the agent's
    # answer is the search's.
    agent = FunctionAgent(tools=[tool], llm=llm)
    output = await agent.run(user_msg=PROBLEM)
    assert output.response.content
    assert isinstance(output.raw, SearchResult)  # the answer came from the search
