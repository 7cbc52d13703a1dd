"""``SearchChatModel``: a chat model whose every answer is the winner of a search."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackManager,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.ai import add_usage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
)
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from sal_plugins.errors import ConfigError
from sal_plugins.openai_wire import cut_at_stop
from sal_plugins.strategies import SearchStrategy, strategy_settings
from sal_plugins.sync import run_sync

from langchain_sal._errors import translate_error
from langchain_sal._search import build_strategy, parse_input, run_search, search_message
from langchain_sal.solvers import LangChainSolver, without_streaming

__all__ = ["EXTRACTION_PROMPT", "TOOL_DECISION_TAGS", "SearchChatModel"]

_OWN_FIELDS = frozenset({"strategy", "solver", "verifier", "strategy_kwargs"})

EXTRACTION_PROMPT = (
    "Below are a problem and a worked solution to it. Fill in the requested fields from the "
    "solution's final answer. Do not solve the problem again and do not correct the solution."
)
"""The system prompt of the call that turns a search's answer into structured output."""

TOOL_DECISION_TAGS = ("sal_tool_decision", "nostream")
"""Tags on the call that decides between calling a tool and answering (see ``bind_tools``).

``"nostream"``: when that call asks for tools, its message is the chat model's own output, which
LangGraph streams once from the ``SearchChatModel`` run.
"""

EXTRACTION_TAGS = ("sal_extraction", "nostream")
"""Tags on the call that fills structured output in (see ``with_structured_output``)."""


def _children_of(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun,
) -> BaseCallbackManager:
    """A callback manager for the children of a chat-model run.

    LangChain gives chain runs ``get_child()`` but not model runs, which are normally leaves; the
    search's own model calls are children of this model's run, so the manager is built the same way.
    """
    asynchronous = isinstance(run_manager, AsyncCallbackManagerForLLMRun)
    cls = AsyncCallbackManager if asynchronous else CallbackManager
    manager = cls(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(run_manager.inheritable_handlers)
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    return manager


class SearchChatModel(BaseChatModel):
    """A chat model that answers by running a sal-plugins search over another chat model.

    Every call runs the chosen strategy with ``solver`` writing the candidates and returns the
    selected completion as an ``AIMessage`` (the search summary in ``response_metadata["sal"]``,
    the search's total tokens in ``usage_metadata``), so it drops in wherever a chat model goes: a
    chain, or the model of a LangGraph node. System messages become the solver's system prompt and
    the last human message is the problem. The candidate generations are traced as children of this
    model's run and tagged ``"nostream"``, so LangGraph's ``stream_mode="messages"`` streams only
    the final answer, not the candidates. Strategy settings can also be passed per call
    (``model.invoke(messages, n=8)``, or ``model.bind(n=8)``).

    With tools bound (:meth:`bind_tools`, as LangGraph's ``create_react_agent`` does), each call
    first lets the solver model, with the tools, decide: its tool calls are returned as they are,
    and only when it answers instead does the search run, on the question plus the results of the
    tool calls made so far. The search is spent on answers, not on choosing tools.

    Setup:
        .. code-block:: bash

            pip install langchain-sal langchain-openai

    Instantiate:
        .. code-block:: python

            from langchain_openai import ChatOpenAI
            from langchain_sal import SearchChatModel

            model = SearchChatModel(
                strategy="best_of_n",
                solver=ChatOpenAI(model="gpt-4o-mini"),
                n=5,
                selection="majority",
            )

    Invoke:
        .. code-block:: python

            message = model.invoke([("system", "Be brief."), ("human", "What is 23 + 48?")])
            print(message.content, message.response_metadata["sal"]["answer"])

    Async:
        .. code-block:: python

            message = await model.ainvoke("What is 23 + 48?")

    Args:
        strategy: ``"best_of_n"``, ``"beam_search"``, ``"dvts"`` or ``"self_revision"``.
        solver: the chat model (or sal solver) that writes the candidates.
        verifier: a sal verifier, a chat model used as judge, or ``fn(problem, steps) -> score``.
        **kwargs: that strategy's keyword arguments (``n``, ``beam_width``, ``temperature``, ...),
            collected in ``strategy_kwargs``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    strategy: str = "best_of_n"
    solver: Any
    verifier: Any = None
    strategy_kwargs: dict[str, Any] = Field(default_factory=dict)

    _strategy: SearchStrategy = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _collect_strategy_kwargs(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields) | _OWN_FIELDS
        extra = {k: v for k, v in data.items() if k not in known}
        if not extra:
            return data
        kept = {k: v for k, v in data.items() if k in known}
        return {**kept, "strategy_kwargs": {**data.get("strategy_kwargs", {}), **extra}}

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        # Built once here, so a bad setting fails at construction with a ConfigError.
        self._strategy = self._build({})

    def _build(self, overrides: dict[str, Any]) -> SearchStrategy:
        settings = {**self.strategy_kwargs, **overrides}
        return build_strategy(self.strategy, solver=self.solver, verifier=self.verifier, **settings)

    @property
    def _llm_type(self) -> str:
        return "sal-search"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"strategy": self.strategy, **self._strategy.config()}

    # --- tools --------------------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools: the solver model decides when to call them, the search writes the answers.

        Each call of the bound model first calls the solver model with the tools and the whole
        conversation (one call, traced as a child tagged :data:`TOOL_DECISION_TAGS`). If it asks
        for tools, that message is returned as it is: no search runs. Otherwise its reply is
        dropped and the strategy searches for the answer to the last human message, given the
        results of the tool calls made after it. ``usage_metadata`` counts both.

        A ``tool_choice`` that forces a tool therefore returns the solver model's own tool call,
        without a search (:meth:`with_structured_output` searches first).

        Args:
            tools: what the solver model's ``bind_tools`` accepts (LangChain tools, functions,
                pydantic models, OpenAI tool dicts); passed on in OpenAI's tool format.
            tool_choice: passed to the solver model's ``bind_tools``.
            **kwargs: other ``bind_tools`` arguments of the solver model
                (``parallel_tool_calls``, ``strict``, ...).

        Raises:
            ConfigError: the solver is not a LangChain chat model, so it cannot call tools.
        """
        self._tool_model()
        binding: dict[str, Any] = {"tools": [convert_to_openai_tool(tool) for tool in tools]}
        if tool_choice is not None:
            binding["tool_choice"] = tool_choice
        return self.bind(**binding, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Search, then have the solver model fill ``schema`` in from the winning solution.

        The search runs as for :meth:`invoke`; one more call of the solver model (its own
        ``with_structured_output(schema, **kwargs)``) reads the problem and the selected
        solution under :data:`EXTRACTION_PROMPT` and returns the schema's object. With
        ``include_raw=True`` the result is LangChain's ``{"raw", "parsed", "parsing_error"}``
        for that call, plus ``"search"``: the search's ``AIMessage`` (its summary in
        ``response_metadata["sal"]``).

        Raises:
            ConfigError: the solver is not a LangChain chat model.
        """
        extractor = self._tool_model().with_structured_output(
            schema, include_raw=include_raw, **kwargs
        )

        def extraction_prompt(state: dict[str, Any]) -> list[BaseMessage]:
            problem = parse_input(state["input"])
            return [
                SystemMessage(EXTRACTION_PROMPT),
                HumanMessage(f"Problem:\n{problem.text}\n\nSolution:\n{state['search'].text}"),
            ]

        searched = RunnableParallel(input=RunnablePassthrough(), search=self)
        extracted = RunnableLambda(extraction_prompt) | extractor.with_config(
            tags=list(EXTRACTION_TAGS)
        )
        if not include_raw:
            return (searched | extracted).with_config(run_name="SearchStructuredOutput")
        with_search = RunnablePassthrough.assign(extracted=extracted) | RunnableLambda(
            lambda state: {**state["extracted"], "search": state["search"]}
        )
        return (searched | with_search).with_config(run_name="SearchStructuredOutput")

    def _tool_model(self) -> BaseChatModel:
        """The solver's chat model, which calls tools and fills structured output in."""
        solver = self.solver
        if isinstance(solver, LangChainSolver):
            solver = solver.chat_model
        if not isinstance(solver, BaseChatModel):
            raise ConfigError(
                "SearchChatModel needs a LangChain chat model as solver to call tools or fill "
                f"structured output in; got {type(solver).__name__}. Pass a chat model (e.g. "
                "ChatOpenAI)."
            )
        return solver

    async def _decide(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        callbacks: BaseCallbackManager | None,
        tool_binding: dict[str, Any],
        *,
        blocking: bool,
    ) -> AIMessage:
        """The solver model's reply, with the tools bound, to the whole conversation."""
        model = without_streaming(self._tool_model())
        tools = tool_binding.pop("tools")
        bound = model.bind_tools(tools, **tool_binding)
        if stop:
            bound = bound.bind(stop=stop)
        config: RunnableConfig = {"callbacks": callbacks, "tags": list(TOOL_DECISION_TAGS)}
        try:
            if blocking:
                reply = await asyncio.to_thread(bound.invoke, messages, config)
            else:
                reply = await bound.ainvoke(messages, config)
        except Exception as error:
            raise translate_error(error, type(model).__name__) from error
        if not isinstance(reply, AIMessage):  # pragma: no cover - chat models return AIMessages
            raise TypeError(f"the tool decision returned {type(reply).__name__}, not an AIMessage")
        return reply

    # --- generation ---------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        callbacks = _children_of(run_manager) if run_manager else None
        result: ChatResult = run_sync(
            lambda: self._search(messages, stop, callbacks, kwargs, blocking=True)
        )
        return result

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        callbacks = _children_of(run_manager) if run_manager else None
        return await self._search(messages, stop, callbacks, kwargs, blocking=False)

    async def _search(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        callbacks: BaseCallbackManager | None,
        overrides: dict[str, Any],
        *,
        blocking: bool,
    ) -> ChatResult:
        known = strategy_settings(type(self._strategy))
        settings = {k: v for k, v in overrides.items() if k in known}
        decision: AIMessage | None = None
        if overrides.get("tools"):
            tool_binding = {k: v for k, v in overrides.items() if k not in known}
            decision = await self._decide(
                messages, stop, callbacks, tool_binding, blocking=blocking
            )
            if decision.tool_calls:
                return ChatResult(generations=[ChatGeneration(message=decision)])
        strategy = self._build(settings) if settings else self._strategy
        config: RunnableConfig = {"callbacks": callbacks} if callbacks is not None else {}
        result = await run_search(strategy, parse_input(messages), config, blocking=blocking)
        message = search_message(result)
        if decision is not None and decision.usage_metadata and message.usage_metadata:
            message.usage_metadata = add_usage(message.usage_metadata, decision.usage_metadata)
        if stop:
            text, cut = cut_at_stop(message.text, stop)
            if cut:
                message.content = text
        return ChatResult(
            generations=[ChatGeneration(message=message)],
            llm_output={"sal": result.summary()},
        )
