"""Any LlamaIndex LLM as a sal-plugins solver."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LogProb,
)
from sal_plugins.errors import ConfigError
from sal_plugins.openai_wire import VLLM_CONTINUE, cut_at_stop, generation_from_choice, usage_of
from sal_plugins.solvers.base import (
    ContinuationMode,
    Generation,
    GenerationRequest,
    Pricing,
    SolverCapabilities,
    SolverResponse,
)
from sal_plugins.solvers.fanout import fan_out
from sal_plugins.solvers.openai import served_by_vllm_client
from sal_plugins.solvers.prompts import (
    INSTRUCTED_CONTINUATION,
    PromptTemplate,
    chat_messages,
    chatml,
    completion_prompt,
)

from llama_index_sal._errors import map_llm_error

__all__ = ["DEFAULT_KWARG_NAMES", "Continuation", "LlamaIndexSolver"]

Continuation = ContinuationMode | Literal["auto"]
"""A :data:`~sal_plugins.solvers.base.ContinuationMode`, or ``"auto"`` to pick one per server."""

DEFAULT_KWARG_NAMES: Mapping[str, str] = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_tokens",
    "stop": "stop",
    "seed": "seed",
    "logprobs": "logprobs",
    "top_logprobs": "top_logprobs",
}
"""Per-call settings and the keyword each is passed to ``achat``/``acomplete`` under.

These are the OpenAI names, which ``OpenAI``, ``OpenAILike``, vLLM, llama.cpp and most
OpenAI-compatible LLM classes forward to the server. Override with ``kwarg_names``.
"""


@dataclass
class LlamaIndexSolver:
    """Use any LlamaIndex ``LLM`` as the model that writes solutions.

    Each generation request becomes ``n`` concurrent ``achat`` calls (``acomplete`` in
    ``"completion"`` mode), one per sample, with seeds ``seed, seed + 1, ...``. Prompts are built
    by :func:`sal_plugins.solvers.prompts.chat_messages`, like every other solver, so the prefix of
    a search's requests stays the same from call to call.

    Setup::

        pip install llama-index-sal llama-index-llms-openai-like

    Instantiate and search::

        import sal_plugins as sal
        from llama_index.llms.openai_like import OpenAILike
        from llama_index_sal import LlamaIndexSolver

        llm = OpenAILike(model="my-model", api_base="http://localhost:8000/v1", api_key="x",
                         is_chat_model=True)
        search = sal.BestOfN(solver=LlamaIndexSolver(llm=llm), verifier=my_verifier, n=4)
        result = await search.arun("What is 23 + 48?")

    Strategies and the other ``llama_index_sal`` entry points wrap a bare LLM in this class for
    you; build it yourself to change the settings below.

    Per-call settings (temperature, top-p, max tokens, stop strings, seed, logprobs) go to the LLM
    as keyword arguments under the OpenAI names (:data:`DEFAULT_KWARG_NAMES`); rename or drop them
    with ``kwarg_names`` for LLM classes that spell them differently
    (``kwarg_names={"stop": "stop_sequences", "seed": None}``). A ``max_tokens`` set on the LLM
    object itself takes precedence in LlamaIndex's OpenAI classes. Stop strings are also applied to
    the returned text, so an LLM that ignores them still yields one step per call.

    Why a sample stopped, logprobs and token usage are read from the raw OpenAI-shaped response
    when the LLM exposes it (``ChatResponse.raw``), else from LlamaIndex's generic fields
    (``logprobs``; ``prompt_tokens``/``completion_tokens`` in ``additional_kwargs``). The generic
    logprobs list the likeliest tokens per position; the first one stands for the sampled token.

    The LLM's own retries are turned off (on a copy; ``max_retries=0``): the search driver retries
    :class:`~sal_plugins.errors.TransientError` (429, 408, 409, 5xx, timeouts, dropped connections,
    broken JSON), honouring ``Retry-After``. Other failures raise
    :class:`~sal_plugins.errors.SolverError`.

    Args:
        llm: any LlamaIndex LLM.
        continuation: how a partial solution is continued:

            * ``"instructed"``: the steps so far go in the user turn with an instruction to write
              only what comes next; works with every chat model;
            * ``"native"``: the steps are a final assistant message the LLM continues (assistant
              prefill on Anthropic, Mistral, DeepSeek); sent as is, so on vLLM prefer ``"auto"``,
              which adds ``continue_final_message``;
            * ``"completion"``: ``prompt_template`` renders the chat to raw text for
              ``acomplete``; needs an LLM that completes raw text, such as
              ``OpenAILike(is_chat_model=False)`` on ``/v1/completions``;
            * ``"auto"`` (default): for OpenAI-compatible LLMs (an ``api_base`` field) whose
              server's ``/v1/models`` says ``owned_by: "vllm"``, ``"native"`` with vLLM's
              ``continue_final_message``; otherwise ``"instructed"``. Asked once.
        prompt_template: renders messages to raw text in ``"completion"`` mode (ChatML default).
        instructed_template: the user turn of ``"instructed"`` mode.
        kwarg_names: overrides of :data:`DEFAULT_KWARG_NAMES` (``None`` drops a setting).
        extra_kwargs: more keyword arguments for every call.
        disable_llm_retries: turn the LLM's own retries off (recommended; see above).
        max_fanout_concurrency: samples of one request in flight at once.
        pricing: token prices, for ``usage.cost`` and cost budgets.
    """

    llm: BaseLLM
    continuation: Continuation = "auto"
    prompt_template: PromptTemplate = chatml
    instructed_template: str = INSTRUCTED_CONTINUATION
    kwarg_names: Mapping[str, str | None] = field(default_factory=dict)
    extra_kwargs: Mapping[str, Any] = field(default_factory=dict)
    disable_llm_retries: bool = True
    max_fanout_concurrency: int = 8
    pricing: Pricing | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.llm, BaseLLM):
            raise ConfigError(
                f"LlamaIndexSolver(llm=...) needs a LlamaIndex LLM, got {type(self.llm).__name__}"
            )
        if self.continuation not in (*get_args(ContinuationMode), "auto"):
            modes = ", ".join((*get_args(ContinuationMode), "auto"))
            raise ConfigError(
                f"LlamaIndexSolver: continuation={self.continuation!r} is not one of {modes}"
            )
        unknown = set(self.kwarg_names) - set(DEFAULT_KWARG_NAMES)
        if unknown:
            raise ConfigError(
                f"LlamaIndexSolver: kwarg_names has unknown settings {sorted(unknown)}; "
                f"known: {sorted(DEFAULT_KWARG_NAMES)}"
            )
        if self.max_fanout_concurrency < 1:
            raise ConfigError("LlamaIndexSolver: max_fanout_concurrency must be at least 1")
        if self.disable_llm_retries:
            self.llm = _without_retries(self.llm)
        self._mode: ContinuationMode | None = (
            None if self.continuation == "auto" else self.continuation
        )
        self._vllm = False
        # LlamaIndex LLMs take no ``n``: every sample is its own call.
        self.capabilities = SolverCapabilities(
            honours_n=False,
            max_choices=1,
            respects_max_requests=True,
            continuation=self._mode,
            logprobs=True,
            pricing=self.pricing,
        )

    def __repr__(self) -> str:
        # Not the LLM's own repr: LlamaIndex LLMs show their api_key and URLs in it.
        model = getattr(self.llm, "model", None)
        shown = f"model={model!r}" if isinstance(model, str) else ""
        return (
            f"LlamaIndexSolver(llm={type(self.llm).__name__}({shown}), "
            f"continuation={self.continuation!r})"
        )

    @property
    def name(self) -> str:
        """The wrapped LLM's class name (used in error messages)."""
        return type(self.llm).__name__

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        """Return ``request.n`` continuations, from ``n`` concurrent LLM calls."""
        mode = self._mode or await self._resolve_mode()

        async def one_request(part: GenerationRequest) -> SolverResponse:
            generation, prompt, completion = await self._sample(part, mode)
            return SolverResponse([generation], prompt, completion, requests=1)

        return await fan_out(
            one_request, request, self.capabilities, max_concurrency=self.max_fanout_concurrency
        )

    # --- one call -----------------------------------------------------------------------------

    async def _resolve_mode(self) -> ContinuationMode:
        """``"auto"``: ``"native"`` on vLLM (asked once through ``/v1/models``), else instructed.

        The question goes through the LLM's own OpenAI client (OpenAI-based LlamaIndex LLMs
        have one); an LLM without one is not on vLLM as far as the solver can tell.
        """
        make_client = getattr(self.llm, "_get_aclient", None)
        self._vllm = callable(make_client) and await served_by_vllm_client(make_client())
        self._mode = "native" if self._vllm else "instructed"
        self.capabilities.continuation = self._mode
        return self._mode

    async def _sample(
        self, request: GenerationRequest, mode: ContinuationMode
    ) -> tuple[Generation, int, int]:
        kwargs = self._call_kwargs(request, request.seed)
        if self._vllm and mode == "native" and request.prefix_steps:
            extra_body = {**kwargs.get("extra_body", {}), **VLLM_CONTINUE}
            kwargs["extra_body"] = extra_body
        try:
            response: ChatResponse | CompletionResponse
            if mode == "completion":
                prompt = completion_prompt(request, self.prompt_template)
                response = await self.llm.acomplete(prompt, formatted=True, **kwargs)
            else:
                messages = [
                    ChatMessage(role=m["role"], content=m["content"])
                    for m in chat_messages(
                        request, mode, instructed_template=self.instructed_template
                    )
                ]
                response = await self.llm.achat(messages, **kwargs)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            raise map_llm_error(error, self.name) from error
        return _read_response(response, request.stop)

    def _call_kwargs(self, request: GenerationRequest, seed: int | None) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
            "stop": list(request.stop) or None,
            "seed": seed,
            "logprobs": True if request.logprobs else None,
            "top_logprobs": request.top_logprobs if request.logprobs else None,
        }
        kwargs: dict[str, Any] = {}
        for setting, value in settings.items():
            name = self.kwarg_names.get(setting, DEFAULT_KWARG_NAMES[setting])
            if value is not None and name is not None:
                kwargs[name] = value
        kwargs.update(self.extra_kwargs)
        return kwargs


def _without_retries(llm: BaseLLM) -> BaseLLM:
    """A copy of ``llm`` whose own retry loop is off (the search driver retries instead)."""
    if "max_retries" not in type(llm).model_fields or not getattr(llm, "max_retries", 0):
        return llm
    copy = llm.model_copy(update={"max_retries": 0})
    # OpenAI-based LLMs build their SDK clients lazily; one built already keeps its own retries.
    for attribute in ("_client", "_aclient"):
        client = getattr(copy, attribute, None)
        with_options = getattr(client, "with_options", None)
        if callable(with_options):
            setattr(copy, attribute, with_options(max_retries=0))
    return copy


# --- reading responses ------------------------------------------------------------------------


def _read_response(
    response: ChatResponse | CompletionResponse, stops: Sequence[str]
) -> tuple[Generation, int, int]:
    text = (response.message.content if isinstance(response, ChatResponse) else response.text) or ""
    raw = _as_mapping(response.raw)
    choices = raw.get("choices") if raw is not None else None
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        generation = generation_from_choice(choices[0], stops)
        if not generation.text and text:
            generation = replace(generation, text=text)
    else:
        generation = Generation(text=text, stop_kind="unknown" if stops else "end")
    if generation.token_logprobs is None and response.logprobs:
        generation = replace(generation, **_generic_logprobs(response.logprobs))
    text, cut = cut_at_stop(generation.text, stops)
    if cut:  # an LLM that does not honour ``stop`` itself
        generation = replace(generation, text=text, stop_kind="delimiter")
    prompt_tokens, completion_tokens = _usage(response.additional_kwargs, raw)
    return generation, prompt_tokens, completion_tokens


def _as_mapping(raw: Any) -> Mapping[str, Any] | None:
    if isinstance(raw, Mapping):
        return raw
    dump = getattr(raw, "model_dump", None)
    if callable(dump):
        try:
            dumped = dump()
        except Exception:
            return None
        return dumped if isinstance(dumped, Mapping) else None
    return None


def _generic_logprobs(positions: Sequence[Sequence[LogProb]]) -> dict[str, Any]:
    filled = [position for position in positions if position]
    return {
        "token_logprobs": tuple(float(position[0].logprob) for position in filled),
        "top_logprobs": tuple(
            {lp.token: float(lp.logprob) for lp in position} for position in filled
        ),
    }


def _usage(additional: Mapping[str, Any], raw: Mapping[str, Any] | None) -> tuple[int, int]:
    if "prompt_tokens" in additional:
        return usage_of({"usage": additional})
    return usage_of(raw)
