"""``LangChainSolver``: any LangChain chat model as a sal-plugins solver."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration
from langchain_core.runnables import RunnableConfig, ensure_config
from sal_plugins.errors import ConfigError
from sal_plugins.openai_wire import VLLM_CONTINUE, cut_at_stop, logprobs_of, stop_kind_in
from sal_plugins.solvers.base import (
    ContinuationMode,
    Generation,
    GenerationRequest,
    Pricing,
    SolverCapabilities,
    SolverResponse,
    StopKind,
)
from sal_plugins.solvers.fanout import fan_out
from sal_plugins.solvers.prompts import ChatMessage, chat_messages

from langchain_sal._errors import translate_error
from langchain_sal._run import current_run

__all__ = ["CANDIDATE_TAGS", "PREFILL_PROVIDERS", "LangChainSolver"]

CANDIDATE_TAGS = ("sal_candidate", "nostream")
"""Tags put on every model call a search makes.

``"nostream"`` is LangGraph's ``TAG_NOSTREAM``: ``stream_mode="messages"`` skips tagged calls, so
the candidates a search weighs are not streamed to the end user as if they were the answer.
"""

PREFILL_PROVIDERS = frozenset({"anthropic-chat", "mistralai-chat", "chat-deepseek"})
"""``_llm_type`` of chat models whose APIs continue a final assistant message (prefill)."""

NMode = Literal["auto", "native", "fan_out"]
Continuation = Literal["auto", "native", "instructed"]

_ROLES: dict[str, type[BaseMessage]] = {
    "system": SystemMessage,
    "user": HumanMessage,
    "assistant": AIMessage,
}


def _langchain_messages(messages: Sequence[ChatMessage]) -> list[BaseMessage]:
    return [_ROLES[m["role"]](content=m["content"]) for m in messages]


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return message.text


def stop_kind(metadata: Mapping[str, Any], stop: Sequence[str], *, cut: bool) -> StopKind:
    """A response's :data:`~sal_plugins.solvers.base.StopKind` (the core's one rule).

    ``cut`` says a stop string was found in the text (and removed) on this side: the model ran
    past it, so it ended a step.
    """
    if cut:
        return "delimiter"
    return stop_kind_in(metadata, stops_requested=bool(stop))


def _usage(generations: Sequence[ChatGeneration]) -> tuple[int, int]:
    # Providers report usage per request; LangChain copies it onto every choice of a request, so
    # one request's usage is read once, from its first message that carries it.
    for generation in generations:
        usage = getattr(generation.message, "usage_metadata", None)
        if usage:
            return int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    return 0, 0


def _without_sdk_retries(model: BaseChatModel) -> BaseChatModel:
    """A copy of ``model`` whose SDK does not retry (the search driver does)."""
    if "max_retries" not in type(model).model_fields or getattr(model, "max_retries", 0) == 0:
        return model
    update: dict[str, Any] = {"max_retries": 0}
    for root, leaf in (("root_async_client", "async_client"), ("root_client", "client")):
        client = getattr(model, root, None)
        if client is not None and hasattr(client, "with_options"):
            quiet = client.with_options(max_retries=0)
            update[root] = quiet
            update[leaf] = quiet.chat.completions
    return model.model_copy(update=update)


def with_own_async_client(model: BaseChatModel) -> BaseChatModel:
    """A copy of ``model`` with an HTTP client of its own, for use on the running event loop.

    ``langchain-openai`` models share one cached async HTTP client per base URL across event
    loops: once a loop that used it has closed (each ``asyncio.run``, each sync ``search.run``),
    the next call on a new loop can fail on a connection from the old one. A model the user gave
    no ``http_async_client`` gets a client of its own per loop; any other model is returned as it
    is.
    """
    root = getattr(model, "root_async_client", None)
    if root is None or not hasattr(root, "with_options"):
        return model
    if getattr(model, "http_async_client", None) is not None:
        return model  # the user's own client: theirs to manage
    import openai

    own = root.with_options(http_client=openai.DefaultAsyncHttpxClient(timeout=root.timeout))
    return model.model_copy(update={"root_async_client": own, "async_client": own.chat.completions})


def without_streaming(model: BaseChatModel) -> BaseChatModel:
    """A copy of ``model`` that answers whole even when a streaming handler listens.

    LangChain streams a call as soon as a streaming callback handler is attached (LangGraph's
    ``stream_mode="messages"``), and a streamed ``ChatOpenAI`` call reports no token usage unless
    the server supports ``stream_options``. A search reads whole candidates, so it asks for them
    whole.
    """
    if model.disable_streaming is True:
        return model
    return model.model_copy(update={"disable_streaming": True})


@dataclass(frozen=True)
class LangChainSolver:
    """Any LangChain chat model as a sal-plugins solver.

    The solver turns each generation request into chat-model calls: ``n`` continuations come from
    one call when the model takes an ``n`` parameter and honours it (``ChatOpenAI`` against a server
    that returns ``n`` choices), otherwise from ``n`` concurrent calls; this is learned from the
    first response, so an OpenAI-compatible server that returns one choice whatever ``n`` says
    (llama.cpp) is topped up by fan-out. Stop strings go in the call's ``stop``; sampling
    parameters (``temperature``, ``top_p``, ``max_tokens``, ``seed``, ``logprobs``,
    ``top_logprobs``) are passed where the model declares them. Token usage comes from
    ``usage_metadata``, log-probs and finish reasons from ``response_metadata``. Calls are never
    streamed (whole candidates, full token usage), even under LangGraph's
    ``stream_mode="messages"``. Errors become sal-plugins errors (rate limits, 5xx and timeouts
    as ``TransientError``, which the search driver retries), and the model's own SDK retries are
    switched off.

    Setup:
        .. code-block:: bash

            pip install langchain-sal langchain-openai

    Instantiate:
        .. code-block:: python

            from langchain_openai import ChatOpenAI
            from langchain_sal import LangChainSolver

            solver = LangChainSolver(ChatOpenAI(model="gpt-4o-mini"))

    Invoke (inside any strategy):
        .. code-block:: python

            import sal_plugins as sal

            search = sal.BestOfN(solver=solver, n=4, selection="majority")
            print(search.run("What is 23 + 48?").answer)

    Async:
        .. code-block:: python

            result = await search.arun("What is 23 + 48?")

    Args:
        chat_model: the model that writes the solutions.
        continuation: how a partial solution is continued: ``"native"`` sends it as a final
            assistant message (assistant prefill: Anthropic, Mistral, DeepSeek), ``"instructed"``
            puts it in the user turn with an instruction to write only what comes next, and
            ``"auto"`` picks ``"native"`` for the providers in :data:`PREFILL_PROVIDERS`.
        n_mode: ``"auto"`` (use ``n`` if the model has the parameter, fall back to fan-out when a
            response has fewer choices), ``"native"`` or ``"fan_out"``.
        config: the run config whose callbacks, tags and metadata every call carries; without
            one, the config of the LangChain run the search executes in, if any. Inside a search
            run by a runnable or ``SearchChatModel``, that run's config and ``blocking`` apply
            (see :mod:`langchain_sal._run`).
        tags: tags added to every call (by default :data:`CANDIDATE_TAGS`).
        disable_sdk_retries: switch off the model's SDK retries (the search driver retries).
        continue_final_message: for ``ChatOpenAI`` against vLLM: continue the partial solution
            natively by sending vLLM's ``continue_final_message=True`` and
            ``add_generation_prompt=False`` in ``extra_body`` (implies ``"native"`` continuation).
        pricing: token prices, for cost accounting and ``Budget(max_cost=...)``.
        blocking: make the model's sync calls (``generate``) on worker threads instead of its
            async ones; the sync ``invoke``/``batch`` of the integrations use it, so a model's
            async HTTP client is never shared between the event loops those calls run on.
    """

    chat_model: BaseChatModel
    continuation: Continuation = "auto"
    n_mode: NMode = "auto"
    config: RunnableConfig | None = None
    tags: tuple[str, ...] = CANDIDATE_TAGS
    disable_sdk_retries: bool = True
    blocking: bool = False
    continue_final_message: bool = False
    pricing: Pricing | None = None
    _per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, BaseChatModel] = field(
        default_factory=weakref.WeakKeyDictionary, init=False, repr=False, compare=False
    )
    capabilities: SolverCapabilities = field(default_factory=SolverCapabilities, repr=False)
    """Declared from the model and settings; what ``n`` does is learned (bound copies share it)."""

    def __post_init__(self) -> None:
        if not isinstance(self.chat_model, BaseChatModel):
            raise ConfigError(
                "LangChainSolver needs a LangChain BaseChatModel, got "
                f"{type(self.chat_model).__name__}"
            )
        if self.continuation not in ("auto", "native", "instructed"):
            raise ConfigError(
                f"LangChainSolver(continuation={self.continuation!r}): choose 'auto', 'native' or "
                "'instructed' (raw completion needs a completions endpoint, not a chat model)"
            )
        if self.n_mode not in ("auto", "native", "fan_out"):
            raise ConfigError(
                f"LangChainSolver(n_mode={self.n_mode!r}): choose 'auto', 'native' or 'fan_out'"
            )
        model = without_streaming(self.chat_model)
        if self.disable_sdk_retries:
            model = _without_sdk_retries(model)
        object.__setattr__(self, "chat_model", model)
        capabilities = self.capabilities
        if capabilities.honours_n is None:
            if self.n_mode == "native":
                capabilities.honours_n = True
            elif self.n_mode == "fan_out" or not self._declares("n"):
                capabilities.honours_n, capabilities.max_choices = False, 1
        capabilities.respects_max_requests = True
        capabilities.continuation = self.continuation_mode
        capabilities.logprobs = self._declares("logprobs")
        capabilities.pricing = self.pricing

    # --- configuration ------------------------------------------------------------------------

    def with_config(
        self, config: RunnableConfig | None, *, blocking: bool | None = None
    ) -> LangChainSolver:
        """A copy whose calls carry ``config``'s callbacks (they become that run's children).

        Args:
            config: the run config to attach.
            blocking: override :attr:`blocking` (``None`` keeps it).
        """
        return replace(
            self,
            config=config,
            disable_sdk_retries=False,
            blocking=self.blocking if blocking is None else blocking,
        )

    @property
    def continuation_mode(self) -> ContinuationMode:
        """The continuation mode in force."""
        if self.continue_final_message:
            return "native"
        if self.continuation != "auto":
            return self.continuation
        llm_type = getattr(self.chat_model, "_llm_type", "")
        return "native" if llm_type in PREFILL_PROVIDERS else "instructed"

    def __repr__(self) -> str:
        # Not the model's own repr: it shows base URLs, which may carry credentials.
        return (
            f"LangChainSolver(chat_model={type(self.chat_model).__name__}"
            f"(model={self.model_name!r}), continuation={self.continuation!r}, "
            f"n_mode={self.n_mode!r})"
        )

    @property
    def model_name(self) -> str:
        """A name for error messages."""
        for attr in ("model_name", "model", "model_id"):
            value = getattr(self.chat_model, attr, None)
            if isinstance(value, str) and value:
                return value
        return type(self.chat_model).__name__

    def _declares(self, name: str) -> bool:
        return name in type(self.chat_model).model_fields

    def _call_kwargs(self, request: GenerationRequest, n: int, seed: int | None) -> dict[str, Any]:
        wanted: dict[str, Any] = {
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.top_p is not None:
            wanted["top_p"] = request.top_p
        if seed is not None:
            wanted["seed"] = seed
        if request.logprobs:
            wanted["logprobs"] = True
            if request.top_logprobs:
                wanted["top_logprobs"] = request.top_logprobs
        kwargs = {k: v for k, v in wanted.items() if self._declares(k)}
        if self.continue_final_message and request.prefix_steps:
            extra = getattr(self.chat_model, "extra_body", None) or {}
            kwargs["extra_body"] = {**extra, **VLLM_CONTINUE}
        if n > 1:
            kwargs["n"] = n
            kwargs["stream"] = False  # a streamed response carries one choice only
        return kwargs

    # --- generation ---------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        """Return ``request.n`` continuations of the request's partial solution."""
        messages = _langchain_messages(chat_messages(request, self.continuation_mode))

        async def one_request(part: GenerationRequest) -> SolverResponse:
            n = part.n if self.capabilities.honours_n is not False else 1
            batch, (prompt, completion) = await self._call(messages, part, n, part.seed)
            return SolverResponse(batch, prompt, completion, requests=1)

        return await fan_out(one_request, request, self.capabilities)

    def _model_on_this_loop(self) -> BaseChatModel:
        """The chat model with an async HTTP client bound to the running loop."""
        loop = asyncio.get_running_loop()
        model = self._per_loop.get(loop)
        if model is None:
            model = self._per_loop[loop] = with_own_async_client(self.chat_model)
        return model

    async def _call(
        self, messages: list[BaseMessage], request: GenerationRequest, n: int, seed: int | None
    ) -> tuple[list[Generation], tuple[int, int]]:
        run = current_run()  # the runnable's run, when a runnable's search makes this call
        config = ensure_config(run.config if run is not None else self.config)
        blocking = run.blocking if run is not None else self.blocking
        stop = list(request.stop) or None
        arguments: dict[str, Any] = {
            "stop": stop,
            "callbacks": config.get("callbacks"),
            "tags": list(self.tags),
            "metadata": {"sal_request_n": n},
            **self._call_kwargs(request, n, seed),
        }
        try:
            if blocking:
                result = await asyncio.to_thread(self.chat_model.generate, [messages], **arguments)
            else:
                result = await self._model_on_this_loop().agenerate([messages], **arguments)
        except Exception as error:
            raise translate_error(error, self.model_name) from error
        chat_generations = [g for g in result.generations[0] if isinstance(g, ChatGeneration)]
        return [self._generation(g, request) for g in chat_generations], _usage(chat_generations)

    def _generation(self, generation: ChatGeneration, request: GenerationRequest) -> Generation:
        message = generation.message
        metadata = {**(generation.generation_info or {}), **message.response_metadata}
        text, cut = cut_at_stop(_text(message), request.stop)
        tokens, tops = logprobs_of(metadata.get("logprobs")) if request.logprobs else (None, None)
        return Generation(
            text=text,
            stop_kind=stop_kind(metadata, request.stop, cut=cut),
            token_logprobs=tokens,
            top_logprobs=tops,
        )
