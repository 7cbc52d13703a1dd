"""A ``QueryComponent`` for ``QueryPipeline`` projects still on llama-index-core 0.12.

``QueryPipeline`` and ``QueryComponent`` were removed in llama-index-core 0.13. On 0.13 and later
use a workflow (:class:`~llama_index_sal.workflows.BeamSearchWorkflow` and friends) or
:class:`~llama_index_sal.query_engine.SearchQueryEngine` instead.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from sal_plugins.errors import ConfigError, MissingDependencyError
from sal_plugins.results import SearchResult
from sal_plugins.strategies import SearchStrategy

from llama_index_sal._strategy import build_strategy, output_text

__all__ = ["ComponentOutput", "QueryPipelineUnavailableError", "as_query_component"]

ComponentOutput = Literal["result", "text", "answer"]
"""What the component outputs: the ``SearchResult``, the selected solution, or its answer."""


class QueryPipelineUnavailableError(MissingDependencyError):
    """The installed llama-index-core has no ``QueryPipeline`` (removed in 0.13)."""

    def __init__(self, installed: str) -> None:
        message = (
            f"as_query_component() needs llama-index-core 0.12: QueryPipeline and QueryComponent "
            f"were removed in 0.13, and {installed} is installed. Either pin "
            f"pip install 'llama-index-core>=0.12,<0.13', or move the pipeline to a workflow: "
            f"llama_index_sal.BeamSearchWorkflow (and BestOfN/DVTS/SelfRevision workflows) or "
            f"llama_index_sal.SearchQueryEngine."
        )
        ImportError.__init__(self, message)
        self.feature = "as_query_component"
        self.extra = "llama-index-core<0.13"


def as_query_component(
    strategy: str | SearchStrategy = "best_of_n",
    *,
    output: ComponentOutput = "result",
    **kwargs: Any,
) -> Any:
    """A ``QueryComponent`` that runs a search, for ``QueryPipeline`` on llama-index-core 0.12.

    The component takes one input, ``problem`` (a string, or anything with a string form such as
    the output of a prompt component), and has one output, ``output``. Used in a chain, the
    previous module's output is the problem::

        from llama_index.core.query_pipeline import QueryPipeline
        from llama_index_sal import as_query_component

        solve = as_query_component("beam_search", solver=llm, verifier=prm, n=8, output="text")
        pipeline = QueryPipeline(chain=[prompt_template, solve])
        solution = pipeline.run(topic="...")

    It runs sync (``run``) and async (``arun``).

    Args:
        strategy: a strategy name (``"best_of_n"``, ``"beam_search"``, ``"dvts"``,
            ``"particle_filter"``, ``"ab_mcts"``, ``"adaptive"``, ``"self_revision"``; hyphens
            accepted), or a configured sal strategy.
        output: ``"result"`` (default) outputs the :class:`~sal_plugins.results.SearchResult`;
            ``"text"`` the selected solution; ``"answer"`` its extracted answer.
        **kwargs: the strategy's keyword arguments; ``solver`` may be any LlamaIndex LLM.

    Returns:
        A ``CustomQueryComponent`` instance.

    Raises:
        QueryPipelineUnavailableError: on llama-index-core 0.13 or later (an ``ImportError``
            whose message names the fix).
    """
    base = _custom_query_component_class()
    if output not in ("result", "text", "answer"):
        raise ConfigError(f"output must be 'result', 'text' or 'answer', got {output!r}")
    return _component_class(base)(search=build_strategy(strategy, **kwargs), output=output)


def _custom_query_component_class() -> type[Any]:
    try:
        module = importlib.import_module("llama_index.core.query_pipeline")
        return module.CustomQueryComponent  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        try:
            installed = f"llama-index-core {version('llama-index-core')}"
        except PackageNotFoundError:  # pragma: no cover - llama_index imports without metadata
            installed = "a llama-index-core without QueryPipeline"
        raise QueryPipelineUnavailableError(installed) from None


def _component_class(base: type[Any]) -> type[Any]:
    """The component class, built once on top of 0.12's ``CustomQueryComponent``."""
    cached = _COMPONENT_CLASSES.get(base)
    if cached is None:
        cached = _COMPONENT_CLASSES[base] = _build_component_class(base)
    return cached


_COMPONENT_CLASSES: dict[type[Any], type[Any]] = {}


def _build_component_class(base: type[Any]) -> type[Any]:
    class SearchQueryComponent(base):  # type: ignore[misc, valid-type]
        """Runs a sal search on its ``problem`` input."""

        search: SearchStrategy
        output: str = "result"

        @property
        def _input_keys(self) -> set[str]:
            return {"problem"}

        @property
        def _output_keys(self) -> set[str]:
            return {"output"}

        def _validate_component_inputs(self, input: dict[str, Any]) -> dict[str, Any]:
            return {"problem": _problem_text(input["problem"])}

        def _run_component(self, **kwargs: Any) -> dict[str, Any]:
            return {"output": self._render(self.search.run(kwargs["problem"]))}

        async def _arun_component(self, **kwargs: Any) -> dict[str, Any]:
            return {"output": self._render(await self.search.arun(kwargs["problem"]))}

        def _render(self, result: SearchResult) -> Any:
            if self.output == "result":
                return result
            return output_text(result, "answer" if self.output == "answer" else "text")

    return SearchQueryComponent


def _problem_text(value: Any) -> str:
    """The problem from a pipeline input: a string, a response object, or a chat message."""
    if isinstance(value, str):
        return value
    for attribute in ("text", "response", "content"):
        text = getattr(value, attribute, None)
        if isinstance(text, str):
            return text
    message = getattr(value, "message", None)
    content = getattr(message, "content", None)
    if isinstance(content, str):
        return content
    return str(value)
