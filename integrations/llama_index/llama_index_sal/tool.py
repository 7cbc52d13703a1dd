"""A ``FunctionTool`` that lets an agent solve a problem by search."""

# No ``from __future__ import annotations`` here: FunctionTool finds the Context parameter by
# comparing the evaluated annotation with the Context class, which a string annotation would defeat.

from typing import Any

from llama_index.core.tools import FunctionTool, ToolOutput
from llama_index.core.workflow import Context
from sal_plugins.events import SearchFinished
from sal_plugins.results import SearchResult
from sal_plugins.strategies import SearchStrategy
from sal_plugins.sync import run_sync

from llama_index_sal._strategy import TextOutput, build_strategy, check_output, output_text
from llama_index_sal.events import SearchProgressEvent

__all__ = ["search_tool"]

DEFAULT_TOOL_NAME = "solve_with_search"


def search_tool(
    strategy: str | SearchStrategy = "best_of_n",
    *,
    name: str = DEFAULT_TOOL_NAME,
    description: str | None = None,
    output: TextOutput = "text",
    return_direct: bool = False,
    **kwargs: Any,
) -> FunctionTool:
    """A tool for ``FunctionAgent``, ``ReActAgent`` and ``AgentWorkflow`` that solves by search.

    The agent calls it with one argument, ``problem``. While the search runs, every search event
    is written to the agent's event stream through the injected workflow ``Context`` as a
    :class:`~llama_index_sal.events.SearchProgressEvent`, so ``handler.stream_events()`` shows
    the search's progress between the agent's own events. The tool's text output is the selected
    solution (or its answer); ``ToolOutput.raw_output`` is the full
    :class:`~sal_plugins.results.SearchResult`.

    It is a plain ``FunctionTool`` too: ``tool.call(problem=...)``, ``await
    tool.acall(problem=...)`` and ``llm.predict_and_call([tool], ...)`` run the search and
    return the same output. The workflow ``Context`` is optional: workflow agents inject it, and
    then progress events are written to it; without one the search runs without them. To stream
    progress from your own workflow step, pass the step's context:
    ``await tool.acall(ctx=ctx, problem=...)``.

    Example::

        from llama_index.core.agent.workflow import FunctionAgent
        from llama_index_sal import SearchProgressEvent, search_tool

        tool = search_tool("beam_search", solver=small_llm, verifier=prm, n=8, beam_width=2)
        agent = FunctionAgent(tools=[tool], llm=agent_llm)
        handler = agent.run("What is 23 + 48? Use the solver tool.")
        async for event in handler.stream_events():
            if isinstance(event, SearchProgressEvent):
                print(event.message)
        print(await handler)

    Args:
        strategy: a strategy name (``"best_of_n"``, ``"beam_search"``, ``"dvts"``,
            ``"particle_filter"``, ``"ab_mcts"``, ``"adaptive"``, ``"self_revision"``; hyphens
            accepted), or a configured sal strategy.
        name: the tool's name, as the agent's LLM sees it.
        description: what the agent's LLM is told the tool does (a sensible default otherwise).
        output: ``"text"`` (default): the tool returns the whole selected solution;
            ``"answer"``: only its extracted final answer.
        return_direct: end the agent's turn with the tool's output.
        **kwargs: the strategy's keyword arguments; ``solver`` may be any LlamaIndex LLM.

    Returns:
        A ``FunctionTool``.
    """
    search = build_strategy(strategy, **kwargs)
    output = check_output(output)

    async def solve(ctx: Context, problem: str) -> SearchResult:
        """Solve a problem step by step, checking several candidate solutions.

        Args:
            problem: the complete problem statement, with every number and condition it needs.
        """
        async for event in search.astream(problem):
            if ctx is not None:  # None when called as a plain tool, outside any workflow
                ctx.write_event_to_stream(SearchProgressEvent.from_sal(event))
            if isinstance(event, SearchFinished):
                return event.result
        raise AssertionError("a search always ends with SearchFinished")  # pragma: no cover

    def solve_sync(ctx: Context, problem: str) -> SearchResult:
        """Solve a problem step by step, checking several candidate solutions.

        Args:
            problem: the complete problem statement, with every number and condition it needs.
        """
        return run_sync(lambda: solve(ctx, problem))

    async def to_text(result: SearchResult) -> ToolOutput | str:
        return output_text(result, output)

    return FunctionTool.from_defaults(
        fn=solve_sync,
        async_fn=solve,
        # The Context stays in the signature, so agents see `requires_context` and inject theirs;
        # this default lets a caller without one (`tool.call`, `predict_and_call`) leave it out.
        partial_params={"ctx": None},
        name=name,
        description=description or _default_description(search),
        return_direct=return_direct,
        async_callback=to_text,
    )


def _default_description(search: SearchStrategy) -> str:
    return (
        f"Solves a math or reasoning problem step by step with {search.name} search: several "
        "candidate solutions are written and checked, and the best one is returned. Pass the "
        "complete problem statement as `problem`."
    )
