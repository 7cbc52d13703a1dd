"""One LlamaIndex ``Workflow`` per search strategy."""

from __future__ import annotations

from typing import Any, ClassVar

from llama_index.core.workflow import Context, StopEvent, Workflow, step
from sal_plugins.errors import ConfigError
from sal_plugins.events import SearchFinished
from sal_plugins.strategies import SearchStrategy

from llama_index_sal._strategy import build_strategy
from llama_index_sal.events import SearchProgressEvent, SearchStartEvent

__all__ = [
    "ABMCTSWorkflow",
    "AdaptiveWorkflow",
    "BeamSearchWorkflow",
    "BestOfNWorkflow",
    "DVTSWorkflow",
    "ParticleFilterWorkflow",
    "SearchWorkflow",
    "SelfRevisionWorkflow",
]


class SearchWorkflow(Workflow):
    """A workflow that runs one search strategy on the problem it is started with.

    Subclasses name their strategy (``strategy_name``); the constructor takes that strategy's
    keyword arguments, plus the workflow's own ``timeout`` and ``verbose``. ``solver`` may be any
    LlamaIndex LLM (wrapped in a :class:`~llama_index_sal.solver.LlamaIndexSolver`) or a sal
    solver; ``verifier`` a sal verifier, a function ``fn(problem, steps) -> float | list[float]``,
    or a LlamaIndex LLM (used as an LLM judge through ``sal_plugins.verifiers.JudgeVerifier``).

    The workflow has one step. It writes a :class:`~llama_index_sal.events.SearchProgressEvent`
    to the event stream for every search event and ends with a ``StopEvent`` whose ``result`` is
    the :class:`~sal_plugins.results.SearchResult`, so ``await workflow.run(problem=...)``
    returns the ``SearchResult`` itself. (A ``StopEvent`` subclass would make ``run`` return the
    event instead, so the stop event is the plain one.)

    Args:
        strategy: only on ``SearchWorkflow`` itself: a strategy name plus its keyword arguments,
            or a configured strategy (``SearchWorkflow(strategy=sal.BeamSearch(...))``).
        timeout: seconds before LlamaIndex abandons the run; ``None`` (default) never does, since
            a search may legitimately run for minutes (LlamaIndex's own default is 45 s). Bound a
            search with ``budget=sal.Budget(deadline_s=...)`` to end it gracefully with the best
            result so far instead.
        verbose: print workflow step activity.
        **kwargs: the strategy's keyword arguments (``solver``, ``verifier``, ``n``, ...).

    Attributes:
        strategy: the configured sal strategy.
    """

    strategy_name: ClassVar[str] = ""

    def __init__(
        self,
        *,
        timeout: float | None = None,
        verbose: bool = False,
        strategy: str | SearchStrategy | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(timeout=timeout, verbose=verbose)
        name = type(self).__name__
        if self.strategy_name and strategy is not None:
            raise ConfigError(
                f"{name} runs {self.strategy_name}: pass its keyword arguments, or use "
                "SearchWorkflow(strategy=...) for another strategy"
            )
        if not self.strategy_name and strategy is None:
            raise ConfigError(
                f"{name} needs strategy=<'best_of_n', 'beam_search', 'dvts', 'self_revision' "
                "or a configured strategy>"
            )
        self.strategy = build_strategy(strategy or self.strategy_name, **kwargs)

    @step
    async def search(self, ctx: Context, ev: SearchStartEvent) -> StopEvent:
        """Run the search, streaming its progress; the stop event carries the result."""
        async for event in self.strategy.astream(ev.problem):
            ctx.write_event_to_stream(SearchProgressEvent.from_sal(event))
            if isinstance(event, SearchFinished):
                return StopEvent(result=event.result)
        raise AssertionError("a search always ends with SearchFinished")  # pragma: no cover


class BestOfNWorkflow(SearchWorkflow):
    """Best-of-N as a workflow: takes the arguments of :class:`sal_plugins.BestOfN`.

    Example:
        >>> workflow = BestOfNWorkflow(solver=llm, verifier=prm, n=8, selection="weighted")
        >>> result = await workflow.run(problem="What is 23 + 48?")
        >>> result.answer
        '71'
    """

    strategy_name: ClassVar[str] = "best_of_n"


class BeamSearchWorkflow(SearchWorkflow):
    """Beam search as a workflow: takes the arguments of :class:`sal_plugins.BeamSearch`.

    Setup::

        pip install llama-index-sal llama-index-llms-openai-like

    Instantiate::

        from llama_index.llms.openai_like import OpenAILike
        from llama_index_sal import BeamSearchWorkflow
        from sal_plugins.verifiers import PoolingPRM

        llm = OpenAILike(model="meta-llama/Llama-3.2-1B-Instruct",
                         api_base="http://localhost:8000/v1", api_key="x", is_chat_model=True)
        prm = PoolingPRM(model="Qwen/Qwen2.5-Math-PRM-7B", base_url="http://localhost:8001")
        workflow = BeamSearchWorkflow(solver=llm, verifier=prm, n=8, beam_width=2, seed=0)

    Run::

        result = await workflow.run(problem="What is 23 + 48?")   # a SearchResult
        print(result.answer, result.usage)

    Stream progress::

        handler = workflow.run(problem="What is 23 + 48?")
        async for event in handler.stream_events():
            if isinstance(event, SearchProgressEvent):
                print(event.message)
        result = await handler
    """

    strategy_name: ClassVar[str] = "beam_search"


class DVTSWorkflow(SearchWorkflow):
    """Diverse verifier tree search as a workflow: takes the arguments of ``sal_plugins.DVTS``.

    Example:
        >>> workflow = DVTSWorkflow(solver=llm, verifier=prm, n=16, beam_width=4)
        >>> result = await workflow.run(problem="What is 23 + 48?")
    """

    strategy_name: ClassVar[str] = "dvts"


class ParticleFilterWorkflow(SearchWorkflow):
    """Particle filtering or particle Gibbs as a workflow: the arguments of ``sal.ParticleFilter``.

    Example:
        >>> workflow = ParticleFilterWorkflow(solver=llm, verifier=prm, n=16, iterations=1)
        >>> result = await workflow.run(problem="What is 23 + 48?")
    """

    strategy_name: ClassVar[str] = "particle_filter"


class ABMCTSWorkflow(SearchWorkflow):
    """AB-MCTS over treequest as a workflow: the arguments of ``sal.ABMCTS`` (extra ``mcts``).

    Example:
        >>> workflow = ABMCTSWorkflow(solver=llm, verifier=prm, n=32, batch_size=4)
        >>> result = await workflow.run(problem="What is 23 + 48?")
    """

    strategy_name: ClassVar[str] = "ab_mcts"


class AdaptiveWorkflow(SearchWorkflow):
    """Compute-optimal search as a workflow: the arguments of ``sal.Adaptive``.

    Example:
        >>> workflow = AdaptiveWorkflow(solver=llm, verifier=prm, policy="policy.json")
        >>> result = await workflow.run(problem="What is 23 + 48?")
    """

    strategy_name: ClassVar[str] = "adaptive"


class SelfRevisionWorkflow(SearchWorkflow):
    """Self-revision as a workflow: takes the arguments of ``sal_plugins.SelfRevision``.

    Example:
        >>> workflow = SelfRevisionWorkflow(solver=llm, verifier=judge, max_revisions=2)
        >>> result = await workflow.run(problem="What is 23 + 48?")
    """

    strategy_name: ClassVar[str] = "self_revision"
