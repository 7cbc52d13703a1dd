"""A LlamaIndex query engine that answers by search."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.response.schema import Response
from llama_index.core.callbacks import CallbackManager
from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.schema import QueryType
from pydantic import Field
from sal_plugins.results import SearchResult
from sal_plugins.strategies import SearchStrategy

from llama_index_sal._strategy import (
    TextOutput,
    build_strategy,
    check_output,
    output_text,
    result_metadata,
)

__all__ = ["SearchQueryEngine", "search_response"]


def search_response(result: SearchResult, output: TextOutput = "text") -> Response:
    """A LlamaIndex ``Response`` for a search result.

    ``response`` is the selected solution (or its answer, with ``output="answer"``);
    ``metadata`` holds the search summary (``answer``, ``score``, ``stop_reason``, ``usage``, ...)
    and the full result under ``"search_result"``.
    """
    metadata: dict[str, Any] = {**result_metadata(result), "search_result": result}
    return Response(response=output_text(result, output), source_nodes=[], metadata=metadata)


class SearchQueryEngine(CustomQueryEngine):
    """A query engine whose answer comes from a test-time compute search.

    The query is the problem; the response is the best solution found, and the response's
    ``metadata`` carries the search summary. It plugs in wherever LlamaIndex takes a query
    engine: a ``RouterQueryEngine`` choice, a ``QueryEngineTool`` for an agent, a sub-question
    engine.

    Setup::

        pip install llama-index-sal llama-index-llms-openai-like

    Instantiate::

        from llama_index.llms.openai_like import OpenAILike
        from llama_index_sal import SearchQueryEngine

        llm = OpenAILike(model="my-model", api_base="http://localhost:8000/v1", api_key="x",
                         is_chat_model=True)
        engine = SearchQueryEngine(strategy="best_of_n", solver=llm, n=8, selection="majority")

    Query (sync or async)::

        response = engine.query("What is 23 + 48?")
        print(response.response, response.metadata["answer"], response.metadata["usage"])
        response = await engine.aquery("What is 23 + 48?")

    As an agent's tool::

        from llama_index.core.tools import QueryEngineTool

        tool = QueryEngineTool.from_defaults(engine, name="math", description="Solves math")

    Args:
        strategy: a strategy name (``"best_of_n"``, ``"beam_search"``, ``"dvts"``,
            ``"particle_filter"``, ``"ab_mcts"``, ``"adaptive"``, ``"self_revision"``; hyphens
            accepted), or a configured sal strategy.
        output: ``"text"`` (default) answers with the whole selected solution, ``"answer"`` with
            its extracted final answer (the solution when none was found).
        callback_manager: LlamaIndex callbacks for the query trace.
        **kwargs: the strategy's keyword arguments; ``solver`` may be any LlamaIndex LLM.

    Attributes:
        search: the configured strategy.
    """

    search: SearchStrategy = Field(exclude=True)
    output: TextOutput = "text"

    def __init__(
        self,
        strategy: str | SearchStrategy = "best_of_n",
        *,
        output: TextOutput = "text",
        callback_manager: CallbackManager | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            search=build_strategy(strategy, **kwargs),
            output=check_output(output),
            callback_manager=callback_manager or CallbackManager([]),
        )

    def query(self, str_or_query_bundle: QueryType) -> Response:
        """Search for an answer to the query (a string or a ``QueryBundle``)."""
        return _as_response(super().query(str_or_query_bundle))

    async def aquery(self, str_or_query_bundle: QueryType) -> Response:
        """Async :meth:`query`."""
        return _as_response(await super().aquery(str_or_query_bundle))

    def custom_query(self, query_str: str) -> Response:
        """Search for an answer to ``query_str``."""
        return search_response(self.search.run(query_str), self.output)

    async def acustom_query(self, query_str: str) -> Response:
        """Search for an answer to ``query_str`` without blocking the event loop."""
        return search_response(await self.search.arun(query_str), self.output)


def _as_response(response: object) -> Response:
    # custom_query always builds a Response; this only narrows the inherited return type.
    if not isinstance(response, Response):  # pragma: no cover
        raise TypeError(f"expected a Response, got {type(response).__name__}")
    return response
