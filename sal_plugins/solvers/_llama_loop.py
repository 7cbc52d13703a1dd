"""The token loop of :class:`~sal_plugins.solvers.llamacpp.LlamaCppSolver` (synchronous).

``Llama.create_completion`` reports ``finish_reason="stop"`` both when a stop string matched and
when the model emitted an end-of-generation token, so the solver drives ``Llama.generate`` itself:
it sees every token, and knows exactly which of the two ended the continuation.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sal_plugins.solvers.base import Generation, StopKind

__all__ = ["Cancelled", "Sampling", "continue_tokens", "prepare_prompt", "render_template"]


class Cancelled(Exception):
    """The awaiting coroutine was cancelled; the loop stopped early."""


@dataclass(frozen=True)
class Sampling:
    """llama.cpp sampler settings (the defaults of ``llama_cpp.server``)."""

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


def prepare_prompt(llm: Any, prompt: list[int], cached_head: list[int] | None) -> list[int]:
    """Evaluate all but the last prompt token, unless exactly that is cached; return it.

    Floating-point results of llama.cpp depend on how tokens are batched, so a prefix evaluated
    as part of another prompt can shift the logits slightly and change a seeded sample. Every
    prompt is therefore evaluated the same way: its head as one batch (reused only by requests
    with the very same head, such as the ``n`` continuations of one request), then the last token
    alone (``Llama.generate`` re-evaluates it from the cached head).
    """
    head = prompt[:-1]
    if head == cached_head and llm.n_tokens >= len(head):
        return head
    llm.reset()
    if head:
        llm.eval(head)
    return head


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
