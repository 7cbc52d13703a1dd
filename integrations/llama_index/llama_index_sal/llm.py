"""An ``LLM`` facade: every completion or chat call runs a search."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.callbacks import CallbackManager
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection
from llama_index.core.prompts import BasePromptTemplate, PromptTemplate
from llama_index.core.tools import BaseTool
from pydantic import BaseModel, Field
from sal_plugins.conversation import Problem
from sal_plugins.errors import ConfigError
from sal_plugins.results import SearchResult
from sal_plugins.strategies import SearchStrategy
from sal_plugins.sync import run_sync

from llama_index_sal._strategy import (
    TextOutput,
    build_strategy,
    check_output,
    output_text,
    problem_from_messages,
    raw_response,
    result_metadata,
    search_for,
)
from llama_index_sal.solver import LlamaIndexSolver

__all__ = ["EXTRACTION_TEMPLATE", "SearchLLM"]

Model = TypeVar("Model", bound=BaseModel)

EXTRACTION_TEMPLATE = PromptTemplate(
    "Below are a problem and a worked solution to it. Fill in the requested fields from the "
    "solution's final answer. Do not solve the problem again and do not correct the solution."
    "\n\nProblem:\n{problem}\n\nSolution:\n{solution}"
)
"""The prompt of the call that turns a search's answer into structured output."""


class SearchLLM(FunctionCallingLLM):
    """A LlamaIndex ``LLM`` that answers every prompt with a test-time compute search.

    Drop it in wherever LlamaIndex takes an LLM (``Settings.llm``, a query engine's or chat
    engine's ``llm=``) and each completion or chat call runs the configured strategy over the
    underlying solver. The prompt (or the conversation, see below) is the problem; the response
    text is the selected solution, or only its answer with ``output="answer"``.

    Setup::

        pip install llama-index-sal llama-index-llms-openai-like

    Instantiate::

        from llama_index.llms.openai_like import OpenAILike
        from llama_index_sal import SearchLLM

        small = OpenAILike(model="my-1b-model", api_base="http://localhost:8000/v1",
                           api_key="x", is_chat_model=True)
        llm = SearchLLM(strategy="beam_search", solver=small, verifier=prm, n=8, beam_width=2)

    Invoke (sync, async, streaming)::

        response = llm.complete("What is 23 + 48?")
        print(response.text, response.additional_kwargs["answer"])
        response = await llm.achat([ChatMessage(role="user", content="What is 23 + 48?")])
        for chunk in llm.stream_complete("What is 23 + 48?"):
            print(chunk.delta, end="")

    In a query engine::

        engine = index.as_query_engine(llm=llm)

    Responses carry the search summary (answer, score, stop reason, usage) in
    ``additional_kwargs`` and the full :class:`~sal_plugins.results.SearchResult` in ``raw``.
    Streaming runs the search first (a search has no meaningful partial text before it selects
    a solution), then yields the selected text in several deltas, word by word; each response's
    ``text`` (``message.content``) is the text so far, and the last one is the whole response,
    with the summary in ``additional_kwargs`` and the result (and its usage) in ``raw``.
    Per-call keyword arguments (``temperature=...``) are ignored: the strategy's settings apply.

    Chat: the conversation is read by the same rule as every sal chat surface
    (:func:`sal_plugins.conversation.problem_from_conversation`): the last user message is the
    problem, followed by the results of the tool calls made after it (``- add(a=2, b=2): 4``);
    the caller's system messages become the solver's system prompt, replacing the strategy's
    ``system_prompt``. Earlier turns are not part of the problem. (Earlier versions sent the
    whole conversation as a transcript; put what the search must see in the last user
    message.)

    Agents (``FunctionAgent``, ``AgentWorkflow``): when the solver is a function-calling LLM
    (``OpenAI``, ``OpenAILike(is_function_calling_model=True)``, ...), so is this one. Each
    ``achat_with_tools`` call first lets the solver LLM, with the tools, decide: its tool calls
    are returned as they are, and only when it answers instead does the search run, on the
    last user message and the results of the tool calls made after it. The search is spent on
    answers, not on choosing tools; the decision's tokens are not in the search's usage.

    Every sync method runs its async twin's body (on a fresh event loop, or a worker thread
    inside a running loop), so the two cannot drift apart.

    Structured output (``structured_predict``, ``as_structured_llm``) searches first, then one
    more call of the solver LLM fills the schema in from the winning solution.

    Args:
        strategy: a strategy name (``"best_of_n"``, ``"beam_search"``, ``"dvts"``,
            ``"particle_filter"``, ``"ab_mcts"``, ``"adaptive"``, ``"self_revision"``; hyphens
            accepted), or a configured sal strategy.
        output: ``"text"`` (default) or ``"answer"``.
        callback_manager: LlamaIndex callbacks.
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

    @classmethod
    def class_name(cls) -> str:
        """The class name LlamaIndex serializes this LLM under."""
        return "SearchLLM"

    @property
    def metadata(self) -> LLMMetadata:
        """The search's name as the model name; the solver LLM's context window when known."""
        solver = self.search.solver
        context_window = DEFAULT_CONTEXT_WINDOW
        if isinstance(solver, LlamaIndexSolver):
            context_window = solver.llm.metadata.context_window
        return LLMMetadata(
            context_window=context_window,
            num_output=self.search.max_tokens,
            is_chat_model=False,
            is_function_calling_model=self._tool_llm() is not None,
            model_name=f"sal-{self.search.name}",
        )

    # --- structured output --------------------------------------------------------------------

    def _extractor(self) -> LLM:
        """The solver's LLM, which fills structured output in."""
        solver = self.search.solver
        llm = solver.llm if isinstance(solver, LlamaIndexSolver) else solver
        if not isinstance(llm, LLM):
            raise ConfigError(
                "SearchLLM fills structured output in with its solver's LLM: pass a LlamaIndex "
                f"LLM as solver (got {type(llm).__name__})"
            )
        return llm

    def structured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """Search on the prompt, then have the solver's LLM fill ``output_cls`` in.

        The prompt (formatted with ``prompt_args``) is the problem. One more call of the solver
        LLM (its own ``astructured_predict``) reads the problem and the selected solution under
        :data:`EXTRACTION_TEMPLATE`. This also serves ``as_structured_llm`` and programs built on
        this LLM, so structured output never skips the search.
        """
        return run_sync(
            lambda: self._astructured_predict(output_cls, prompt, llm_kwargs, prompt_args)
        )

    async def astructured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """Async :meth:`structured_predict`."""
        return await self._astructured_predict(output_cls, prompt, llm_kwargs, prompt_args)

    def stream_structured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Generator[Model, None, None]:
        """:meth:`structured_predict` when iterated; yields the finished object once."""

        def stream() -> Generator[Model, None, None]:
            yield run_sync(
                lambda: self._astructured_predict(output_cls, prompt, llm_kwargs, prompt_args)
            )

        return stream()

    async def astream_structured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> AsyncGenerator[Model, None]:
        """Async :meth:`stream_structured_predict`."""

        async def stream() -> AsyncGenerator[Model, None]:
            yield await self._astructured_predict(output_cls, prompt, llm_kwargs, prompt_args)

        return stream()

    async def _astructured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None,
        prompt_args: dict[str, Any],
    ) -> Model:
        llm = self._extractor()
        result = await self._asearch(problem_from_messages(prompt.format_messages(**prompt_args)))
        filled: Model = await llm.astructured_predict(
            output_cls, EXTRACTION_TEMPLATE, llm_kwargs=llm_kwargs, **_extraction_args(result)
        )
        return filled

    # --- tools --------------------------------------------------------------------------------

    def _tool_llm(self) -> FunctionCallingLLM | None:
        """The solver's LLM, when it can call tools."""
        solver = self.search.solver
        llm = solver.llm if isinstance(solver, LlamaIndexSolver) else None
        if isinstance(llm, FunctionCallingLLM) and llm.metadata.is_function_calling_model:
            return llm
        return None

    def _require_tool_llm(self) -> FunctionCallingLLM:
        llm = self._tool_llm()
        if llm is None:
            raise ConfigError(
                "SearchLLM can call tools only when its solver is a function-calling LlamaIndex "
                "LLM (e.g. OpenAI, or OpenAILike(is_function_calling_model=True)); got "
                f"{type(self.search.solver).__name__}"
            )
        return llm

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The solver LLM's request for a chat with ``tools``."""
        return self._require_tool_llm()._prepare_chat_with_tools(
            tools,
            user_msg=user_msg,
            chat_history=chat_history,
            verbose=verbose,
            allow_parallel_tool_calls=allow_parallel_tool_calls,
            **_required(tool_required),
            **kwargs,
        )

    def chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """The solver LLM's tool calls, or, when it answers instead, the search's answer."""
        call = _ToolChat(tools, user_msg, chat_history, verbose, allow_parallel_tool_calls)
        return run_sync(lambda: self._achat_with_tools(call, tool_required, kwargs))

    async def achat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Async :meth:`chat_with_tools`."""
        call = _ToolChat(tools, user_msg, chat_history, verbose, allow_parallel_tool_calls)
        return await self._achat_with_tools(call, tool_required, kwargs)

    def stream_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponseGen:
        """:meth:`chat_with_tools` when iterated; a searched answer comes in several deltas."""
        call = _ToolChat(tools, user_msg, chat_history, verbose, allow_parallel_tool_calls)

        def stream() -> Generator[ChatResponse, None, None]:
            yield from _chat_chunks(
                run_sync(lambda: self._achat_with_tools(call, tool_required, kwargs))
            )

        return stream()

    async def astream_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponseAsyncGen:
        """Async :meth:`stream_chat_with_tools` (what ``FunctionAgent`` calls when streaming)."""
        call = _ToolChat(tools, user_msg, chat_history, verbose, allow_parallel_tool_calls)

        async def stream() -> AsyncGenerator[ChatResponse, None]:
            for chunk in _chat_chunks(await self._achat_with_tools(call, tool_required, kwargs)):
                yield chunk

        return stream()

    async def _achat_with_tools(
        self, call: _ToolChat, tool_required: bool, kwargs: dict[str, Any]
    ) -> ChatResponse:
        llm = self._require_tool_llm()
        decision = await llm.achat_with_tools(
            call.tools,
            user_msg=call.user_msg,
            chat_history=call.chat_history,
            verbose=call.verbose,
            allow_parallel_tool_calls=call.allow_parallel_tool_calls,
            **_required(tool_required),
            **kwargs,
        )
        if llm.get_tool_calls_from_response(decision, error_on_no_tool_call=False):
            return decision
        answer: ChatResponse = await self.achat(_conversation(call.user_msg, call.chat_history))
        return answer

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls in a response of :meth:`achat_with_tools` (read by the solver LLM)."""
        llm = self._tool_llm()
        if llm is None:
            if error_on_no_tool_call:
                raise ValueError("SearchLLM made no tool call: its solver cannot call tools")
            return []
        return llm.get_tool_calls_from_response(
            response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
        )

    # --- completion ---------------------------------------------------------------------------

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Run the search on ``prompt``."""
        return run_sync(lambda: self._acomplete(prompt))

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Run the search on ``prompt`` without blocking the event loop."""
        return await self._acomplete(prompt)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Run the search on ``prompt`` when iterated, then yield its text in several deltas."""

        def stream() -> Generator[CompletionResponse, None, None]:
            yield from _completion_chunks(run_sync(lambda: self._acomplete(prompt)))

        return stream()

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Async :meth:`stream_complete`."""

        async def stream() -> AsyncGenerator[CompletionResponse, None]:
            for chunk in _completion_chunks(await self._acomplete(prompt)):
                yield chunk

        return stream()

    async def _acomplete(self, prompt: str) -> CompletionResponse:
        result = await self._asearch(Problem(prompt))
        return CompletionResponse(
            text=output_text(result, self.output),
            raw=raw_response(result),
            additional_kwargs=result_metadata(result),
        )

    # --- chat ---------------------------------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Run the search on the problem the conversation poses."""
        return run_sync(lambda: self._achat(messages))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async :meth:`chat`."""
        return await self._achat(messages)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Run the search when iterated, then yield the answer in several deltas.

        The last response is the whole one: the full message, ``additional_kwargs`` with the
        search summary and ``raw`` with the result and its usage.
        """

        def stream() -> Generator[ChatResponse, None, None]:
            yield from _chat_chunks(run_sync(lambda: self._achat(messages)))

        return stream()

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Async :meth:`stream_chat`."""

        async def stream() -> AsyncGenerator[ChatResponse, None]:
            for chunk in _chat_chunks(await self._achat(messages)):
                yield chunk

        return stream()

    async def _achat(self, messages: Sequence[ChatMessage]) -> ChatResponse:
        result = await self._asearch(problem_from_messages(messages, self._tool_llm()))
        message = ChatMessage(role=MessageRole.ASSISTANT, content=output_text(result, self.output))
        return ChatResponse(
            message=message, raw=raw_response(result), additional_kwargs=result_metadata(result)
        )

    # --- the search ---------------------------------------------------------------------------

    async def _asearch(self, problem: Problem) -> SearchResult:
        """The one search every method runs (a system prompt that came with it applies)."""
        return await search_for(self.search, problem).arun(problem.text)


@dataclass(frozen=True)
class _ToolChat:
    """The arguments of a ``chat_with_tools`` call that go to the solver LLM as they are."""

    tools: Sequence[BaseTool]
    user_msg: str | ChatMessage | None
    chat_history: list[ChatMessage] | None
    verbose: bool
    allow_parallel_tool_calls: bool


_PIECE = re.compile(r"\S+\s*|\s+")


def _pieces(text: str) -> list[str]:
    """``text`` as stream deltas: one word with the whitespace after it, joined back exactly."""
    return _PIECE.findall(text) or [text]


def _completion_chunks(response: CompletionResponse) -> Iterator[CompletionResponse]:
    """``response`` streamed: its text so far with each delta, the last chunk the whole response.

    Only the last chunk carries ``raw`` (the result and its usage) and ``additional_kwargs``, so
    a consumer that sums usage over chunks counts the search once.
    """
    pieces = _pieces(response.text)
    text = ""
    for piece in pieces[:-1]:
        text += piece
        yield CompletionResponse(text=text, delta=piece)
    yield response.model_copy(update={"delta": pieces[-1]})


def _chat_chunks(response: ChatResponse) -> Iterator[ChatResponse]:
    """``response`` streamed as :func:`_completion_chunks` streams a completion."""
    pieces = _pieces(response.message.content or "")
    text = ""
    for piece in pieces[:-1]:
        text += piece
        message = ChatMessage(role=response.message.role, content=text)
        yield ChatResponse(message=message, delta=piece)
    yield response.model_copy(update={"delta": pieces[-1]})


def _extraction_args(result: SearchResult) -> dict[str, str]:
    return {"problem": result.problem, "solution": result.text}


def _required(tool_required: bool) -> dict[str, bool]:
    """``tool_required`` for LLM classes that know it (LlamaIndex 0.13+); omitted when false."""
    return {"tool_required": True} if tool_required else {}


def _conversation(
    user_msg: str | ChatMessage | None, chat_history: list[ChatMessage] | None
) -> list[ChatMessage]:
    messages = list(chat_history or [])
    if isinstance(user_msg, str):
        messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
    elif user_msg is not None:
        messages.append(user_msg)
    return messages
