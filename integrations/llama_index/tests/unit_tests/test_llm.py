"""SearchLLM: complete/chat, sync/async/streaming, and use as a query engine's LLM."""

from __future__ import annotations

from typing import Any

import pytest
from li_fakes import PROBLEM, RIGHT, SOLUTIONS, prefers_four, solution_llm
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import LLM
from sal_plugins.errors import ConfigError
from sal_plugins.results import SearchResult
from sal_plugins.solvers import ScriptedSolver

from llama_index_sal import SearchLLM
from llama_index_sal._strategy import RawSearchResult


def search_llm(solver: Any = None, **kwargs: Any) -> SearchLLM:
    return SearchLLM(
        "best_of_n",
        solver=solver or ScriptedSolver(SOLUTIONS),
        verifier=prefers_four(),
        n=2,
        seed=0,
        **kwargs,
    )


def test_complete_runs_the_search() -> None:
    llm = search_llm()

    response = llm.complete(PROBLEM)

    assert isinstance(llm, LLM)
    assert response.text == RIGHT
    assert response.additional_kwargs["answer"] == "4"
    assert isinstance(response.raw, SearchResult)


async def test_acomplete_with_answer_output() -> None:
    response = await search_llm(output="answer").acomplete(PROBLEM)

    assert response.text == "4"


def test_chat_answers_as_the_assistant() -> None:
    response = search_llm().chat([ChatMessage(role=MessageRole.USER, content=PROBLEM)])

    assert response.message.role == MessageRole.ASSISTANT
    assert response.message.content == RIGHT
    assert response.additional_kwargs["stop_reason"] == "finished"


async def test_achat() -> None:
    response = await search_llm(output="answer").achat([ChatMessage(role="user", content=PROBLEM)])

    assert response.message.content == "4"


def check_deltas(chunks: list[Any], texts: list[str]) -> None:
    """Several deltas that join into the answer; each chunk's text is the text so far."""
    deltas = [chunk.delta for chunk in chunks]
    assert len(deltas) > 2
    assert "".join(deltas) == RIGHT
    assert texts == ["".join(deltas[: i + 1]) for i in range(len(deltas))]
    *partial, last = chunks
    assert all(chunk.raw is None and not chunk.additional_kwargs for chunk in partial)
    assert isinstance(last.raw, RawSearchResult)
    assert last.raw["usage"]["total_tokens"] == last.raw.usage.total_tokens > 0
    assert last.additional_kwargs["answer"] == "4"
    assert last.additional_kwargs["stop_reason"] == "finished"


def test_streaming_yields_the_answer_in_several_deltas() -> None:
    llm = search_llm()

    chunks = list(llm.stream_complete(PROBLEM))
    chat_chunks = list(llm.stream_chat([ChatMessage(role="user", content=PROBLEM)]))

    check_deltas(chunks, [c.text for c in chunks])
    check_deltas(chat_chunks, [c.message.content for c in chat_chunks])
    assert {c.message.role for c in chat_chunks} == {MessageRole.ASSISTANT}


async def test_async_streaming_yields_the_answer_in_several_deltas() -> None:
    llm = search_llm()

    chunks = [c async for c in await llm.astream_complete(PROBLEM)]
    chat_chunks = [
        c async for c in await llm.astream_chat([ChatMessage(role="user", content=PROBLEM)])
    ]

    check_deltas(chunks, [c.text for c in chunks])
    check_deltas(chat_chunks, [c.message.content for c in chat_chunks])
    answers = search_llm(output="answer").astream_chat([ChatMessage(role="user", content=PROBLEM)])
    assert [c.delta async for c in await answers] == ["4"]  # one word, one delta


def test_token_counting_counts_a_streamed_search_once() -> None:
    counter = TokenCountingHandler(tokenizer=lambda text: text.split())
    solver = ScriptedSolver(SOLUTIONS)
    llm = search_llm(solver, callback_manager=CallbackManager([counter]))

    chunks = list(llm.stream_chat([ChatMessage(role=MessageRole.USER, content=PROBLEM)]))

    assert len(chunks) > 2
    (event,) = counter.llm_token_counts
    assert (event.prompt_token_count, event.completion_token_count) == (
        solver.prompt_tokens,
        solver.completion_tokens,
    )


def test_the_problem_is_the_last_user_message_and_system_messages_the_system_prompt() -> None:
    solver = ScriptedSolver(SOLUTIONS)
    llm = search_llm(solver)

    llm.chat([ChatMessage(role="user", content=PROBLEM)])
    llm.chat(
        [
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="user", content="I have 2 apples."),
            ChatMessage(role="assistant", content="Noted."),
            ChatMessage(role="user", content="I get 2 more. How many now?"),
        ]
    )

    # The one rule of every sal chat surface: the last user message is the problem and system
    # messages become the system prompt. (Up to 0.1 the whole transcript was the problem.)
    first, last = solver.requests[0], solver.requests[-1]
    assert (first.problem, first.system_prompt) == (PROBLEM, llm.search.system_prompt)
    assert (last.problem, last.system_prompt) == ("I get 2 more. How many now?", "Be brief.")
    assert llm.search.system_prompt != "Be brief."  # the configured strategy is left alone


def test_metadata_names_the_search_and_borrows_the_context_window() -> None:
    metadata = search_llm(solution_llm(), max_tokens=77).metadata

    assert metadata.model_name == "sal-best_of_n"
    assert metadata.num_output == 77
    assert metadata.context_window == 1234
    assert SearchLLM.class_name() == "SearchLLM"


def test_strategy_keywords_go_to_the_strategy_not_the_llm() -> None:
    llm = search_llm(system_prompt="Answer in one line.")

    assert llm.search.system_prompt == "Answer in one line."
    assert llm.system_prompt is None
    with pytest.raises(ConfigError):
        search_llm(beam_width=3)


def test_a_query_engine_answers_through_the_search() -> None:
    solver = ScriptedSolver(SOLUTIONS)
    documents = [Document(text="Two plus two makes four in ordinary arithmetic.")]
    index = VectorStoreIndex.from_documents(documents, embed_model=MockEmbedding(embed_dim=8))
    engine = index.as_query_engine(llm=search_llm(solver))

    response = engine.query(PROBLEM)

    assert str(response) == RIGHT
    problem = solver.requests[0].problem
    assert "Two plus two makes four" in problem and PROBLEM in problem


def test_llama_index_token_counting_sees_every_token_the_search_spent() -> None:
    counter = TokenCountingHandler(tokenizer=lambda text: text.split())
    solver = ScriptedSolver(SOLUTIONS)
    llm = SearchLLM(
        "best_of_n",
        solver=solver,
        verifier=prefers_four(),
        n=2,
        callback_manager=CallbackManager([counter]),
    )
    response = llm.chat([ChatMessage(role=MessageRole.USER, content=PROBLEM)])
    assert isinstance(response.raw, SearchResult) and response.raw.answer == "4"
    (event,) = counter.llm_token_counts
    assert (event.prompt_token_count, event.completion_token_count) == (
        solver.prompt_tokens,
        solver.completion_tokens,
    )
    assert event.prompt_token_count > 0
