"""The token loop of :class:`~sal_plugins.solvers.llamacpp.LlamaCppSolver` (synchronous).

``Llama.create_completion`` reports ``finish_reason="stop"`` both when a stop string matched and
when the model emitted an end-of-generation token, so the solver drives ``Llama.generate`` itself:
it sees every token, and knows exactly which of the two ended the continuation.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sal_plugins.solvers.base import Generation, StopKind

__all__ = ["CHUNK", "Cancelled", "PromptCache", "Sampling", "continue_tokens", "render_template"]


class Cancelled(Exception):
    """The awaiting coroutine was cancelled; the loop stopped early."""


@dataclass(frozen=True)
class Sampling:
    """llama.cpp sampler settings (the defaults of ``llama_cpp.server``).

    A request's ``top_p``, when set, replaces ``top_p`` for that request.
    """

    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0


class _LogprobRecorder:
    """A logits processor that keeps the model's log-probabilities at each sampled position.

    llama.cpp only stores logits for every position when the model is loaded with
    ``logits_all=True`` (slow for every call); this sees the raw logits as sampling happens.
    """

    def __init__(self, top: int) -> None:
        import numpy as np

        self._np = np
        self.top = top
        self.last: Any = None
        self.values: list[float] = []
        self.tops: list[dict[str, float]] = []

    def __call__(self, input_ids: Any, logits: Any) -> Any:
        self.last = self._np.array(logits, dtype=self._np.float64)
        return logits

    def record(self, llm: Any, token: int, previous: list[int]) -> None:
        np = self._np
        logits = self.last
        shifted = logits - logits.max()
        logprobs = shifted - np.log(np.exp(shifted).sum())
        self.values.append(float(logprobs[token]))
        if self.top:
            best = np.argpartition(-logprobs, self.top)[: self.top]
            self.tops.append(
                {
                    llm.detokenize([int(i)], prev_tokens=previous).decode(
                        "utf-8", "replace"
                    ): float(logprobs[int(i)])
                    for i in best[np.argsort(-logprobs[best])]
                }
            )


CHUNK = 32
"""Prompt tokens are evaluated in batches of this size, aligned at multiples of it."""


@dataclass
class PromptCache:
    """What the llama.cpp KV cache holds that a new prompt may reuse, deterministically.

    llama.cpp's floating-point results depend on how tokens are batched, so reusing a prefix that
    was evaluated in another shape (inside a longer batch, or token by token while generating) can
    change a seeded sample in a later request. Every prompt is therefore evaluated in one
    canonical way: full batches of :data:`CHUNK` tokens aligned at multiples of it, then the
    rest of the head in one batch, then the last token alone (``Llama.generate`` does that part).
    A batch depends only on the tokens up to its end, so aligned full batches shared with the
    previous prompt are reused as they are, and so is the whole head when a request repeats it
    (the ``n`` continuations of one request). Results then depend on the prompt alone, not on
    what ran before, while successive steps of a solution still reuse most of their prefix.

    Attributes:
        head: the head (all but the last token) of the prompt last evaluated.
        chunks: the aligned full batches of ``head`` (a prefix of it).
    """

    head: list[int] | None = None
    chunks: list[int] = field(default_factory=list)

    def prepare(self, llm: Any, prompt: list[int]) -> int:
        """Evaluate ``prompt[:-1]`` canonically, reusing what allows it; return tokens evaluated."""
        head = prompt[:-1]
        if head == self.head and llm.n_tokens >= len(head):
            return 0
        shared = 0
        for cached, token in zip(self.chunks, head, strict=False):
            if cached != token:
                break
            shared += 1
        keep = shared // CHUNK * CHUNK
        if keep and llm.n_tokens >= keep:
            llm.n_tokens = keep  # Llama.eval drops the KV cache beyond n_tokens first
        else:
            keep = 0
            llm.reset()
        # Until the evaluation completes, only the kept blocks are known to be in the cache.
        self.head, self.chunks = None, head[:keep]
        for start in range(keep, len(head), CHUNK):
            llm.eval(head[start : start + CHUNK])
        self.head = head
        self.chunks = head[: len(head) // CHUNK * CHUNK]
        return len(head) - keep


def continue_tokens(
    llm: Any,
    prompt: list[int],
    *,
    stops: Sequence[str],
    max_tokens: int,
    temperature: float,
    seed: int,
    sampling: Sampling,
    logprobs: bool,
    top_logprobs: int | None,
    cancel: threading.Event,
) -> tuple[Generation, int]:
    """Generate one continuation of ``prompt``; return it and the number of tokens generated.

    The stop kind is exact: ``"end"`` when the model emitted an end-of-generation token,
    ``"delimiter"`` when a stop string appeared (the text is cut before it), ``"length"`` when
    ``max_tokens`` ran out.
    """
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    recorder = _LogprobRecorder(top_logprobs or 0) if logprobs or top_logprobs else None
    processors = llama_cpp.LogitsProcessorList([recorder]) if recorder else None
    stop_bytes = [s.encode("utf-8") for s in stops if s]
    llm.set_seed(seed % 2**32)  # llama.cpp seeds are 32-bit
    tokens: list[int] = []
    kind: StopKind = "length"
    cut: int | None = None
    generator = llm.generate(
        prompt,
        temp=temperature,
        top_k=sampling.top_k,
        top_p=sampling.top_p,
        min_p=sampling.min_p,
        repeat_penalty=sampling.repeat_penalty,
        logits_processor=processors,
    )
    try:
        for token in generator:
            if cancel.is_set():
                raise Cancelled
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                kind = "end"
                break
            if recorder is not None:
                recorder.record(llm, token, prompt + tokens)
            tokens.append(token)
            text = llm.detokenize(tokens, prev_tokens=prompt)
            hits = [text.find(s) for s in stop_bytes if s in text]
            if hits:
                cut = min(hits)
                kind = "delimiter"
                break
            if len(tokens) >= max_tokens:
                break
    finally:
        generator.close()
    data = llm.detokenize(tokens, prev_tokens=prompt)
    kept = len(tokens)
    if cut is not None:
        data = data[:cut]
        # Keep the log-probabilities of the tokens that produced the kept text only.
        while kept > 1 and len(llm.detokenize(tokens[: kept - 1], prev_tokens=prompt)) >= cut:
            kept -= 1
    generation = Generation(
        text=data.decode("utf-8", errors="ignore"),
        stop_kind=kind,
        token_logprobs=tuple(recorder.values[:kept]) if recorder else None,
        top_logprobs=tuple(recorder.tops[:kept]) if recorder and recorder.top else None,
    )
    return generation, len(tokens) + (1 if kind == "end" else 0)


def render_template(
    formatter: Any, generation_formatter: Any, messages: Sequence[Any], continue_final: bool
) -> str:
    """Render messages with a GGUF (Jinja) chat template.

    Chat templates cannot leave the last assistant turn open, so like ``transformers``'
    ``continue_final_message`` the text is rendered closed and cut right after the final message.
    """
    if not continue_final or not messages or messages[-1]["role"] != "assistant":
        return str(generation_formatter(messages=list(messages)).prompt)
    rendered = str(formatter(messages=list(messages)).prompt)
    final = str(messages[-1]["content"])
    anchor = final.strip()
    if not anchor:
        raise ValueError("cannot continue an empty assistant message")
    at = rendered.rindex(anchor)
    if rendered[at : at + len(final.lstrip())] == final.lstrip():
        return rendered[: at + len(final.lstrip())]
    return rendered[: at + len(anchor)]
