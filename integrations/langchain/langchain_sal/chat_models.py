"""``SearchChatModel``: a chat model whose every answer is the winner of a search."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar, Token
from typing import Any
from uuid import UUID

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    BaseCallbackManager,
    CallbackManager,
    CallbackManagerForLLMRun,
    UsageMetadataCallbackHandler,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.messages.ai import add_usage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
    ensure_config,
)
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from sal_plugins.budget import Budget
from sal_plugins.errors import ConfigError
from sal_plugins.openai_wire import cut_at_stop
from sal_plugins.strategies import SearchStrategy, strategy_settings
from sal_plugins.sync import run_sync

from langchain_sal._errors import translate_error
from langchain_sal._search import build_strategy, parse_input, run_search, search_message
from langchain_sal.solvers import LangChainSolver, without_streaming

__all__ = [
    "EXTRACTION_PROMPT",
    "STANDARD_PARAMS",
    "TOOL_BINDING_KWARGS",
    "TOOL_DECISION_TAGS",
    "SearchChatModel",
]

_OWN_FIELDS = frozenset({"strategy", "solver", "verifier", "strategy_kwargs"})

STANDARD_PARAMS = ("stop", "temperature", "max_tokens", "max_retries", "timeout", "streaming")
"""LangChain's standard chat-model parameters ``SearchChatModel`` takes.

``temperature`` and ``max_tokens`` are the strategy's (every candidate call uses them),
``max_retries`` is the search driver's retry count for transient faults, ``timeout`` the
search's deadline (``budget=sal.Budget(deadline_s=timeout)``), ``stop`` cuts the answer.
"""

TOOL_BINDING_KWARGS = frozenset({"tools", "tool_choice", "parallel_tool_calls", "strict"})
"""Per-call keyword arguments that go to the tool decision (see ``bind_tools``)."""

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
    # The search's message reports every token the search spent (the children's included), so a
    # usage handler (``get_usage_metadata_callback``) hears it from this run alone: were the
    # children to report too, their tokens would be counted twice.
    manager.set_handlers([h for h in run_manager.inheritable_handlers if not _counts_usage(h)])
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    return manager


def _counts_usage(handler: Any) -> bool:
    return isinstance(handler, UsageMetadataCallbackHandler)


@contextmanager
def _usage_reported_once() -> Iterator[None]:
    """Keep ``get_usage_metadata_callback()``'s handler away from the search's own model calls.

    That handler lives in a context variable that LangChain adds to every callback manager it
    configures, so leaving it out of the children's handlers is not enough: for the duration of
    the search the variable is cleared (in this context only; concurrent calls are unaffected).
    The search's total then reaches the handler once, from this model's run.
    """
    try:
        from langchain_core.tracers.context import _configure_hooks
    except ImportError:  # pragma: no cover - a langchain-core without configure hooks
        yield
        return
    tokens = [(var, var.set(None)) for var, *_ in _configure_hooks if _counts_usage(var.get())]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class _RunCapture(BaseCallbackHandler):
    """Learns the id of the chat-model run that ``stream``/``astream`` opens.

    LangChain opens that run and calls ``_stream`` without its run manager, so the search's
    model calls would not be traced as its children: this handler, added to the call's
    callbacks, hears the run start, and :func:`_stream_children` builds the children's manager.
    """

    run_inline = True

    def __init__(self, config: RunnableConfig) -> None:
        self.config = config
        self.run_id: UUID | None = None

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        if self.run_id is None:  # the model's own run comes first; its children later
            self.run_id = kwargs["run_id"]


_STREAM_RUN: ContextVar[_RunCapture | None] = ContextVar("langchain_sal_stream_run", default=None)

_CACHED_STREAM_RUN: ContextVar[CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None] = (
    ContextVar("langchain_sal_cached_stream_run", default=None)
)
"""The run manager langchain-core's generate path passed to ``_should_stream``.

When ``astream_events`` (or LangGraph's ``stream_mode="messages"``) listens, ``invoke`` is
streamed by that path, which calls ``_stream`` without the run manager it just showed
``_should_stream``; ``_stream`` takes it from here, so the candidates stay child runs.
"""


def _capturing(config: RunnableConfig | None) -> tuple[RunnableConfig, _RunCapture]:
    config = ensure_config(config)
    capture = _RunCapture(config)
    callbacks = config.get("callbacks")
    if isinstance(callbacks, BaseCallbackManager):
        callbacks = callbacks.copy()
        callbacks.add_handler(capture, inherit=False)
    else:
        callbacks = [*(callbacks or []), capture]
    return {**config, "callbacks": callbacks}, capture


def _reset(token: Token[_RunCapture | None]) -> None:
    # A stream finished from another context has nothing to restore here.
    with suppress(ValueError):
        _STREAM_RUN.reset(token)


def _stream_children(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
    *,
    asynchronous: bool,
) -> BaseCallbackManager | None:
    """The children's callback manager inside ``_stream``/``_astream``."""
    if run_manager is None:
        run_manager = _CACHED_STREAM_RUN.get()
        _CACHED_STREAM_RUN.set(None)  # for this one stream only
    if run_manager is not None:
        return _children_of(run_manager)
    capture = _STREAM_RUN.get()
    if capture is None or capture.run_id is None:
        return None
    cls = AsyncCallbackManager if asynchronous else CallbackManager
    config = capture.config
    manager = cls.configure(
        inheritable_callbacks=config.get("callbacks"),
        inheritable_tags=config.get("tags"),
        inheritable_metadata=config.get("metadata"),
    )
    manager.parent_run_id = capture.run_id
    manager.set_handlers([h for h in manager.handlers if h is not capture and not _counts_usage(h)])
    return manager


_PIECE = re.compile(r"\S+\s*|\s+")


def _pieces(text: str) -> list[str]:
    """``text`` as stream deltas: one word with the whitespace after it, joined back exactly."""
    return _PIECE.findall(text) or [text]


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
        strategy: a strategy name: ``"best_of_n"``, ``"beam_search"``, ``"dvts"``,
            ``"particle_filter"``, ``"ab_mcts"``, ``"adaptive"`` or ``"self_revision"``.
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
    stop: list[str] | None = None
    """Stop strings for every call: the selected answer is cut before the first one found."""
    streaming: bool = False
    """Answer ``invoke`` through :meth:`stream` (LangChain's standard flag)."""

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
        timeout = data.pop("timeout", None)
        if timeout is not None:
            # A call of this model is one search, so its timeout is the search's deadline: the
            # search ends in time with the best answer so far (sal.Budget(deadline_s=...)).
            if data.get("budget") is not None or "budget" in data.get("strategy_kwargs", {}):
                raise ConfigError(
                    "SearchChatModel: pass either timeout or budget, not both (timeout is "
                    "budget=sal.Budget(deadline_s=timeout))"
                )
            data["budget"] = Budget(deadline_s=timeout)
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

    def _search_model_name(self) -> str:
        """``"<strategy>:<solver model>"`` (``sal serve``'s spelling), or the strategy's name."""
        solver = self.solver.chat_model if isinstance(self.solver, LangChainSolver) else self.solver
        for attribute in ("model_name", "model", "model_id"):
            name = getattr(solver, attribute, None)
            if isinstance(name, str) and name:
                return f"{self._strategy.name}:{name}"
        return self._strategy.name

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """LangSmith's standard parameters: the search's model name and the candidates' settings."""
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "sal"
        model = kwargs.get("model")
        params["ls_model_name"] = model if isinstance(model, str) else self._search_model_name()
        temperature = kwargs.get("temperature", getattr(self._strategy, "temperature", None))
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", getattr(self._strategy, "max_tokens", None))
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        stops = stop or self.stop
        if stops:
            params["ls_stop"] = list(stops)
        return params

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

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Search, then stream the selected answer in several chunks (see :meth:`astream`)."""
        config, capture = _capturing(config)
        token = _STREAM_RUN.set(capture)
        try:
            yield from super().stream(input, config, stop=stop, **kwargs)
        finally:
            _reset(token)

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """Search, then stream the selected answer in several chunks.

        While the search runs its progress is dispatched as ``sal.*`` custom events (the
        candidate calls are child runs, as for ``invoke``); then the answer arrives word by
        word, the last chunk (``chunk_position="last"``) carrying ``usage_metadata`` and
        ``response_metadata`` (``model_name``, ``finish_reason``, the search summary in
        ``"sal"``).
        """
        config, capture = _capturing(config)
        token = _STREAM_RUN.set(capture)
        try:
            async for chunk in super().astream(input, config, stop=stop, **kwargs):
                yield chunk
        finally:
            _reset(token)

    def _should_stream(
        self,
        *,
        async_api: bool,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> bool:
        should = super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs)
        if should and run_manager is not None:
            _CACHED_STREAM_RUN.set(run_manager)
        return should

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Search (progress as ``sal.*`` custom events), then stream the answer word by word."""
        callbacks = _stream_children(run_manager, asynchronous=False)
        result: ChatResult = run_sync(
            lambda: self._search(messages, stop, callbacks, kwargs, blocking=True)
        )
        yield from _answer_chunks(result)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """Search (progress as ``sal.*`` custom events), then stream the answer word by word.

        The search has to finish before its answer is known, so the deltas follow the search;
        ``astream_events`` shows the progress events first, then ``on_chat_model_stream``.
        """
        callbacks = _stream_children(run_manager, asynchronous=True)
        result = await self._search(messages, stop, callbacks, kwargs, blocking=False)
        for chunk in _answer_chunks(result):
            yield chunk

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
        unknown = sorted(set(overrides) - set(known) - TOOL_BINDING_KWARGS)
        if unknown:
            raise ConfigError(
                f"SearchChatModel: unknown call arguments {unknown}; a call takes the strategy's "
                f"settings ({', '.join(sorted(known))}) and, with tools bound, "
                f"{', '.join(sorted(TOOL_BINDING_KWARGS))}"
            )
        settings = {k: v for k, v in overrides.items() if k in known}
        stop = stop or self.stop
        decision: AIMessage | None = None
        with _usage_reported_once():
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
        # model_name keys the usage of get_usage_metadata_callback(); finish_reason is what every
        # chat model reports (the search ended its answer, whatever its own stop reason).
        message.response_metadata.update(model_name=self._search_model_name(), finish_reason="stop")
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


def _answer_chunks(result: ChatResult) -> Iterator[ChatGenerationChunk]:
    """The message of ``result`` as stream chunks: its text in several deltas, then the rest.

    The last chunk carries ``usage_metadata``, ``response_metadata`` and any tool calls, once
    (merging chunks concatenates strings, so the model name must not be repeated), and
    ``chunk_position="last"``.
    """
    message = result.generations[0].message
    if not isinstance(message, AIMessage):  # pragma: no cover - _search returns AIMessages
        raise TypeError(f"expected an AIMessage, got {type(message).__name__}")
    pieces = _pieces(message.text) if message.text else []
    for piece in pieces[:-1]:
        yield ChatGenerationChunk(message=AIMessageChunk(content=piece, id=message.id))
    calls = [
        tool_call_chunk(
            name=call["name"], args=json.dumps(call["args"]), id=call.get("id"), index=index
        )
        for index, call in enumerate(message.tool_calls)
    ]
    last = AIMessageChunk(
        content=pieces[-1] if pieces else "",
        id=message.id,
        tool_call_chunks=calls,
        usage_metadata=message.usage_metadata,
        response_metadata=dict(message.response_metadata),
        chunk_position="last",
    )
    yield ChatGenerationChunk(message=last)
