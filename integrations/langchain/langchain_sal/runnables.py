"""The search strategies as LangChain runnables (``BeamSearchRunnable`` and friends).

Each runnable takes the keyword arguments of the strategy it wraps (they are its pydantic fields,
so ``configurable_fields`` works on every strategy knob), with ``solver`` any LangChain chat model
or sal solver, and ``verifier`` a sal verifier, a chat model (used as an LLM judge) or a scoring
function.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import patch_config
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SkipValidation, ValidationError
from pydantic import create_model as _create_model
from sal_plugins.errors import ConfigError
from sal_plugins.results import SearchResult
from sal_plugins.strategies import (
    ABMCTS,
    DVTS,
    Adaptive,
    BeamSearch,
    BestOfN,
    ParticleFilter,
    SearchStrategy,
    SelfRevision,
    strategy_settings,
)
from sal_plugins.sync import run_sync

from langchain_sal._search import Output, build_strategy, parse_input, run_search, shape_output

__all__ = [
    "ABMCTSRunnable",
    "AdaptiveRunnable",
    "BeamSearchRunnable",
    "BestOfNRunnable",
    "DVTSRunnable",
    "ParticleFilterRunnable",
    "ProblemInput",
    "SearchRunnable",
    "SelfRevisionRunnable",
]


class ProblemInput(BaseModel):
    """The input schema the runnables advertise (and tools built with ``as_tool`` take)."""

    problem: str = Field(description="The problem to solve, in full.")


class SearchRunnable(RunnableSerializable[Any, Any]):
    """Base of the strategy runnables: runs :attr:`strategy_class` on each input.

    Subclasses name their strategy in :attr:`strategy_class`; the strategy's settings are mirrored
    as fields by :func:`strategy_runnable_fields`.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    strategy_class: ClassVar[type[SearchStrategy]]

    solver: Any
    """A LangChain chat model (wrapped in ``LangChainSolver``) or any sal solver."""
    verifier: Any = None
    """A sal verifier, a chat model (used as an LLM judge) or ``fn(problem, steps) -> score``."""
    output: Output = "result"
    """``"result"`` (the ``SearchResult``), ``"answer"`` (a string) or ``"message"``."""

    _strategy: SearchStrategy = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in error.errors()
            )
            raise ConfigError(f"{type(self).__name__}: {problems}") from error
        self._strategy = self._build({})

    def _build(self, overrides: dict[str, Any]) -> SearchStrategy:
        settings = {name: getattr(self, name) for name in strategy_settings(self.strategy_class)}
        unknown = sorted(set(overrides) - set(settings))
        if unknown:
            # The same rule as SearchChatModel: a call takes strategy settings, nothing else.
            raise ConfigError(
                f"{type(self).__name__}: unknown call arguments {unknown}; a call takes the "
                f"strategy's settings ({', '.join(sorted(settings))})"
            )
        return build_strategy(
            self.strategy_class.name,
            solver=self.solver,
            verifier=self.verifier,
            **{**settings, **overrides},
        )

    @property
    def strategy(self) -> SearchStrategy:
        """The configured strategy (its solver is not bound to any run)."""
        return self._strategy

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        """The advertised input: ``{"problem": str}`` (strings and messages are accepted too)."""
        return ProblemInput

    @property
    def OutputType(self) -> Any:
        """The output type for the configured ``output``."""
        from langchain_core.messages import AIMessage

        return {"result": SearchResult, "answer": str, "message": AIMessage}[self.output]

    # --- the runnable protocol ----------------------------------------------------------------

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the search on one input (see the class docstring for inputs and outputs).

        Keyword arguments override strategy settings for this call (``search.bind(n=8)`` too).
        """
        return self._call_with_config(partial(self._invoke, overrides=kwargs), input, config)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the search on one input, asynchronously (keyword arguments as for ``invoke``)."""
        call = partial(self._ainvoke, overrides=kwargs)
        return await self._acall_with_config(call, input, config)

    def _invoke(
        self,
        input: Any,
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
        *,
        overrides: dict[str, Any],
    ) -> Any:
        child = patch_config(config, callbacks=run_manager.get_child())
        return run_sync(lambda: self._search(input, child, overrides, blocking=True))

    async def _ainvoke(
        self,
        input: Any,
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
        *,
        overrides: dict[str, Any],
    ) -> Any:
        child = patch_config(config, callbacks=run_manager.get_child())
        return await self._search(input, child, overrides, blocking=False)

    async def _search(
        self, input: Any, config: RunnableConfig, overrides: dict[str, Any], *, blocking: bool
    ) -> Any:
        strategy = self._build(overrides) if overrides else self._strategy
        result = await run_search(strategy, parse_input(input), config, blocking=blocking)
        return shape_output(result, self.output)


def strategy_runnable_fields(strategy: type[SearchStrategy]) -> type[SearchRunnable]:
    """A :class:`SearchRunnable` subclass whose fields are ``strategy``'s settings.

    The fields keep the strategy's defaults; validation is left to the strategy itself, so a bad
    value raises the same ``ConfigError`` as it would on the strategy.
    """
    fields: dict[str, Any] = {}
    for name in strategy_settings(strategy):
        info = strategy.model_fields[name]
        default = info.default_factory if info.default_factory is not None else info.default
        spec = (
            Field(default_factory=default) if info.default_factory is not None else Field(default)
        )
        annotation = SkipValidation[info.annotation]  # type: ignore[name-defined]
        fields[name] = (annotation, ... if info.is_required() else spec)
    model = _create_model(  # type: ignore[call-overload]
        f"{strategy.__name__}RunnableFields",
        __base__=SearchRunnable,
        __module__=__name__,
        **fields,
    )
    runnable: type[SearchRunnable] = model
    runnable.strategy_class = strategy
    return runnable


if TYPE_CHECKING:
    _ABMCTSFields = SearchRunnable
    _AdaptiveFields = SearchRunnable
    _BeamSearchFields = SearchRunnable
    _BestOfNFields = SearchRunnable
    _DVTSFields = SearchRunnable
    _ParticleFilterFields = SearchRunnable
    _SelfRevisionFields = SearchRunnable
else:
    _ABMCTSFields = strategy_runnable_fields(ABMCTS)
    _AdaptiveFields = strategy_runnable_fields(Adaptive)
    _BeamSearchFields = strategy_runnable_fields(BeamSearch)
    _BestOfNFields = strategy_runnable_fields(BestOfN)
    _DVTSFields = strategy_runnable_fields(DVTS)
    _ParticleFilterFields = strategy_runnable_fields(ParticleFilter)
    _SelfRevisionFields = strategy_runnable_fields(SelfRevision)


class BeamSearchRunnable(_BeamSearchFields):
    """PRM-guided beam search (:class:`sal_plugins.BeamSearch`) as a LangChain runnable.

    Takes the keyword arguments of ``sal.BeamSearch`` (``n``, ``beam_width``, ``max_steps``,
    ``lookahead``, ``aggregation``, ``temperature``, ``max_tokens``, ``seed``, ``budget``, ...),
    with ``solver`` any LangChain chat model (or sal solver) and ``verifier`` a sal verifier, a
    chat model used as judge, or ``fn(problem, steps) -> score``.

    Input: a string, a dict with ``"problem"`` (or ``"question"``), a prompt value or a list of
    messages (system messages become the system prompt, the last human message is the problem).
    Output, by ``output``: the ``SearchResult`` (default), the answer string, or an ``AIMessage``
    with the search summary in ``response_metadata["sal"]``. Every model call is traced as a child
    of the runnable's run, progress is dispatched as custom events ``"sal.<event kind>"``, and
    ``batch``/``abatch`` honour ``max_concurrency``.

    Setup:
        .. code-block:: bash

            pip install langchain-sal langchain-openai

    Instantiate:
        .. code-block:: python

            from langchain_openai import ChatOpenAI
            from langchain_sal import BeamSearchRunnable
            from sal_plugins.verifiers import PoolingPRM

            search = BeamSearchRunnable(
                solver=ChatOpenAI(model="meta-llama/Llama-3.2-1B-Instruct",
                                  base_url="http://localhost:8000/v1", api_key="x"),
                verifier=PoolingPRM(model="Qwen/Qwen2.5-Math-PRM-7B",
                                    base_url="http://localhost:8001"),
                n=8, beam_width=4, max_steps=20, seed=0, output="answer",
            )

    Invoke:
        .. code-block:: python

            search.invoke("What is 23 + 48?")            # '71'
            chain = prompt | search | StrOutputParser()   # inside a chain
            search.batch(problems, config={"max_concurrency": 4})

    Async:
        .. code-block:: python

            await search.ainvoke({"problem": "What is 23 + 48?"})
            async for event in search.astream_events("What is 23 + 48?", version="v2"):
                if event["event"] == "on_custom_event":
                    print(event["name"], event["data"])
    """


class BestOfNRunnable(_BestOfNFields):
    """Best-of-N sampling (:class:`sal_plugins.BestOfN`) as a LangChain runnable.

    Takes the keyword arguments of ``sal.BestOfN`` (``n``, ``selection``, ``temperature``,
    ``max_tokens``, ``seed``, ...); without a verifier it is self-consistency (majority vote).
    Inputs, outputs, tracing and events are as for :class:`BeamSearchRunnable`.

    Setup:
        .. code-block:: bash

            pip install langchain-sal langchain-openai

    Instantiate:
        .. code-block:: python

            from langchain_openai import ChatOpenAI
            from langchain_sal import BestOfNRunnable

            vote = BestOfNRunnable(solver=ChatOpenAI(model="gpt-4o-mini"), n=5,
                                   selection="majority", output="answer")

    Invoke:
        .. code-block:: python

            vote.invoke("What is 23 + 48?")   # '71'
            tool = vote.as_tool(name="solve_math", description="Solves a math problem.")

    Async:
        .. code-block:: python

            answers = await vote.abatch(problems, config={"max_concurrency": 4})
    """


class DVTSRunnable(_DVTSFields):
    """Diverse verifier tree search (:class:`sal_plugins.DVTS`) as a LangChain runnable.

    Takes the keyword arguments of ``sal.DVTS`` (``n``, ``beam_width``, ``max_steps``, ...). Inputs,
    outputs, tracing and events are as for :class:`BeamSearchRunnable`.

    Setup:
        .. code-block:: bash

            pip install langchain-sal langchain-openai

    Instantiate:
        .. code-block:: python

            from langchain_sal import DVTSRunnable

            search = DVTSRunnable(solver=chat_model, verifier=prm, n=16, beam_width=4)

    Invoke:
        .. code-block:: python

            result = search.invoke("What is 23 + 48?")
            print(result.answer, result.usage)

    Async:
        .. code-block:: python

            result = await search.ainvoke("What is 23 + 48?")
    """


class ParticleFilterRunnable(_ParticleFilterFields):
    """Particle filtering and particle Gibbs (:class:`sal_plugins.ParticleFilter`) as a runnable.

    Takes the keyword arguments of ``sal.ParticleFilter`` (``n``, ``max_steps``, ``iterations``,
    ``weight_temperature``, ``resampling``, ``selection``, ...). Inputs, outputs, tracing and
    events are as for :class:`BeamSearchRunnable`.

    Setup:
        .. code-block:: bash

            pip install langchain-sal langchain-openai

    Instantiate:
        .. code-block:: python

            from langchain_sal import ParticleFilterRunnable

            search = ParticleFilterRunnable(solver=chat_model, verifier=prm, n=16, seed=0)

    Invoke:
        .. code-block:: python

            result = search.invoke("What is 23 + 48?")
            print(result.answer, result.usage)

    Async:
        .. code-block:: python

            result = await search.ainvoke("What is 23 + 48?")
    """


class SelfRevisionRunnable(_SelfRevisionFields):
    """Self-revision (:class:`sal_plugins.SelfRevision`) as a LangChain runnable.

    Takes the keyword arguments of ``sal.SelfRevision`` (``max_revisions``, ``threshold``, ...): the
    solver writes a solution, the verifier scores (and may critique) it, and the solver revises it
    until it scores above the threshold. Inputs, outputs, tracing and events are as for
    :class:`BeamSearchRunnable`.

    Setup:
        .. code-block:: bash

            pip install langchain-sal langchain-openai

    Instantiate:
        .. code-block:: python

            from langchain_sal import SelfRevisionRunnable

            revise = SelfRevisionRunnable(solver=chat_model, verifier=judge_model,
                                          max_revisions=2, output="message")

    Invoke:
        .. code-block:: python

            message = revise.invoke([("system", "Be brief."), ("human", "What is 23 + 48?")])

    Async:
        .. code-block:: python

            message = await revise.ainvoke("What is 23 + 48?")
    """


class ABMCTSRunnable(_ABMCTSFields):
    """Adaptive branching MCTS over treequest (:class:`sal_plugins.ABMCTS`) as a runnable.

    Takes the keyword arguments of ``sal.ABMCTS`` (``n``, ``batch_size``, ``max_steps``,
    ``selection``, ...). Inputs, outputs, tracing and events are as for
    :class:`BeamSearchRunnable`.

    Setup:
        .. code-block:: bash

            pip install langchain-sal langchain-openai 'sal-plugins[mcts]'

    Instantiate:
        .. code-block:: python

            from langchain_sal import ABMCTSRunnable

            search = ABMCTSRunnable(solver=chat_model, verifier=prm, n=32, seed=0)

    Invoke:
        .. code-block:: python

            result = search.invoke("What is 23 + 48?")
            print(result.answer, result.usage)

    Async:
        .. code-block:: python

            result = await search.ainvoke("What is 23 + 48?")
    """


class AdaptiveRunnable(_AdaptiveFields):
    """Compute-optimal search (:class:`sal_plugins.Adaptive`) as a LangChain runnable.

    Takes the keyword arguments of ``sal.Adaptive`` (``policy``, ``probe``, ``n``,
    ``max_steps``, ...): a probe decides per problem whether to stop, continue best-of-N or
    switch to a tree search. Inputs, outputs, tracing and events are as for
    :class:`BeamSearchRunnable`.

    Setup:
        .. code-block:: bash

            pip install langchain-sal langchain-openai

    Instantiate:
        .. code-block:: python

            from langchain_sal import AdaptiveRunnable

            search = AdaptiveRunnable(solver=chat_model, verifier=prm, policy="policy.json")

    Invoke:
        .. code-block:: python

            result = search.invoke("What is 23 + 48?")
            print(result.answer, result.usage)

    Async:
        .. code-block:: python

            result = await search.ainvoke("What is 23 + 48?")
    """
