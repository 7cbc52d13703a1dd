"""The OpenAI-compatible wire format, once, for every adapter (solvers, verifiers, integrations).

Pure functions, no I/O: reading the choices of ``/v1/chat/completions`` and ``/v1/completions``
bodies (including vLLM's ``stop_reason`` extension), stop kinds, cutting at a stop string the
server kept, logprobs, usage, and what vLLM needs to continue a partial assistant turn. Errors of the
``openai`` SDK are the fault policy's business: :func:`sal_plugins.faults.translate_openai_error`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sal_plugins.solvers.base import Generation, StopKind

__all__ = [
    "VLLM_CONTINUE",
    "cut_at_stop",
    "generation_from_choice",
    "generations_of",
    "logprobs_of",
    "served_by_vllm",
    "stop_kind_in",
    "stop_kind_of",
    "usage_of",
]

VLLM_CONTINUE: Mapping[str, bool] = {"continue_final_message": True, "add_generation_prompt": False}
"""Extra body fields that make vLLM continue a final assistant message instead of answering it."""

_MISSING = object()

_LENGTH = frozenset({"length", "max_tokens", "MAX_TOKENS", "model_length"})
_END = frozenset({"end_turn", "eos", "eos_token", "complete"})
_DELIMITER = frozenset({"stop_sequence"})
_PROVIDER_REASONS = _LENGTH | _END | _DELIMITER
"""Finish reasons of other providers, as LangChain and LlamaIndex pass them on (Anthropic's
``stop_reason`` ``end_turn``/``stop_sequence``/``max_tokens``, Gemini's ``MAX_TOKENS``, ...)."""


def stop_kind_of(
    finish_reason: object, stop_reason: object = _MISSING, *, stops_requested: bool
) -> StopKind:
    """Why a choice stopped, from ``finish_reason`` and vLLM's ``stop_reason``.

    * ``"length"`` when the token cap was hit;
    * with ``stop_reason`` present (vLLM): a string is the matched stop string (``"delimiter"``);
      ``None`` or an integer stop-token id means the model ended its answer (``"end"``);
    * without it (OpenAI, llama.cpp): ``"end"`` if no stop string was requested (only end of
      sequence can have stopped it), else ``"unknown"``;
    * other providers' reasons (``end_turn``, ``stop_sequence``, ``max_tokens``, Gemini's
      ``STOP``), in either field, mean what they say.

    Args:
        finish_reason: the choice's ``finish_reason``.
        stop_reason: the choice's ``stop_reason``; leave out when the body has no such field.
        stops_requested: whether the request carried stop strings.
    """
    provider = stop_reason if stop_reason in _PROVIDER_REASONS else None
    reason = finish_reason if finish_reason is not None else provider
    if reason in _LENGTH:
        return "length"
    if reason in _DELIMITER:
        return "delimiter"
    if reason in _END:
        return "end"
    if reason is None and provider is None and isinstance(stop_reason, str) and stop_reason:
        return "delimiter"  # vLLM's matched stop string, passed on without a finish reason
    if not (isinstance(reason, str) and reason.lower() == "stop"):
        return "unknown"
    if stop_reason is not _MISSING and provider is None:
        if isinstance(stop_reason, str):
            return "delimiter"
        if stop_reason is None or isinstance(stop_reason, int):
            return "end"
    return "unknown" if stops_requested else "end"


def stop_kind_in(fields: Mapping[str, Any], *, stops_requested: bool) -> StopKind:
    """:func:`stop_kind_of` for a choice or a framework's response metadata.

    Reads ``finish_reason`` (or Ollama's ``done_reason``) and ``stop_reason`` where present.
    """
    finish = fields.get("finish_reason") or fields.get("done_reason")
    return stop_kind_of(
        finish, fields.get("stop_reason", _MISSING), stops_requested=stops_requested
    )


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to its first stop string, and whether there was one.

    A server that honours ``stop`` either drops the matched string or keeps it at the very end
    (then this removes it); a model or framework that ignores ``stop`` writes on past it (then
    this cuts it there).
    """
    positions = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    if not positions:
        return text, False
    return text[: min(positions)], True


def generation_from_choice(choice: Mapping[str, Any], stops: Sequence[str]) -> Generation:
    """A :class:`Generation` from one choice of a chat or text completion body.

    The choice is the JSON object as the server sent it (``message.content`` for chat, ``text``
    for completions). A stop string the server kept at the end of the text is removed; without a
    ``stop_reason`` to say otherwise, that makes the stop kind ``"delimiter"``.
    """
    message = choice.get("message")
    raw_text = message.get("content") if isinstance(message, Mapping) else choice.get("text")
    text = raw_text if isinstance(raw_text, str) else ""
    finish_reason = choice.get("finish_reason")
    kind = stop_kind_in(choice, stops_requested=bool(stops))
    if finish_reason == "stop":
        text, kept = cut_at_stop(text, stops)
        if kept and kind == "unknown":  # a server that keeps the stop string stopped at it
            kind = "delimiter"
    token_logprobs, top_logprobs = logprobs_of(choice.get("logprobs"))
    return Generation(
        text=text, stop_kind=kind, token_logprobs=token_logprobs, top_logprobs=top_logprobs
    )


def logprobs_of(
    block: object,
) -> tuple[tuple[float, ...] | None, tuple[dict[str, float], ...] | None]:
    """Token log-probabilities and the top alternatives per position, from a ``logprobs`` block.

    Reads the chat shape (``{"content": [{"token", "logprob", "top_logprobs"}]}``) and the
    completions shape (parallel ``token_logprobs`` / ``top_logprobs`` lists); ``(None, None)``
    for anything else.
    """
    if not isinstance(block, Mapping):
        return None, None
    content = block.get("content")
    if isinstance(content, list):  # chat shape: [{token, logprob, top_logprobs: [...]}, ...]
        entries = [e for e in content if isinstance(e, Mapping)]
        values = tuple(float(e.get("logprob", 0.0)) for e in entries)
        tops = tuple(
            _merged(
                (str(alt.get("token")), float(alt.get("logprob", 0.0)))
                for alt in (e.get("top_logprobs") or [])
                if isinstance(alt, Mapping)
            )
            for e in entries
        )
        return values, (tops if any(tops) else None)
    token_logprobs = block.get("token_logprobs")
    if isinstance(token_logprobs, list):  # completions shape: parallel lists
        values = tuple(float(v) for v in token_logprobs if v is not None)
        raw_tops = block.get("top_logprobs")
        tops_list = [
            _merged((str(k), float(v)) for k, v in top.items())
            for top in (raw_tops if isinstance(raw_tops, list) else [])
            if isinstance(top, Mapping)
        ]
        return values, (tuple(tops_list) if any(tops_list) else None)
    return None, None


def _merged(alternatives: Iterable[tuple[str, float]]) -> dict[str, float]:
    """``{token: logprob}``; a token listed twice (two token ids, one text) gets both masses."""
    merged: dict[str, float] = {}
    for token, logprob in alternatives:
        previous = merged.get(token)
        merged[token] = (
            logprob if previous is None else math.log(math.exp(previous) + math.exp(logprob))
        )
    return merged


def generations_of(body: Mapping[str, Any], stops: Sequence[str]) -> list[Generation]:
    """Every choice of a chat or text completion body, in ``index`` order.

    Raises:
        ValueError: the body has no choices (the caller decides whether that is transient).
    """
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError(f"a response without choices: {str(body)[:200]}")
    ordered = sorted(
        (c for c in choices if isinstance(c, Mapping)), key=lambda c: int(c.get("index") or 0)
    )
    return [generation_from_choice(c, stops) for c in ordered]


def usage_of(body: object) -> tuple[int, int]:
    """``(prompt_tokens, completion_tokens)`` of an OpenAI-style ``usage`` block (0 when absent)."""
    usage = body.get("usage") if isinstance(body, Mapping) else None
    if not isinstance(usage, Mapping):
        return 0, 0
    counts = (usage.get("prompt_tokens"), usage.get("completion_tokens"))
    prompt, completion = (
        c if isinstance(c, int) and not isinstance(c, bool) and c > 0 else 0 for c in counts
    )
    return prompt, completion


def served_by_vllm(models_body: object) -> bool:
    """Whether a ``/v1/models`` body says vLLM serves the models (``owned_by == "vllm"``).

    Only vLLM is known to honour ``continue_final_message``; other servers silently ignore it.
    """
    data = models_body.get("data") if isinstance(models_body, Mapping) else None
    if data is None:
        data = getattr(models_body, "data", None)
    entries = data if isinstance(data, list) else []
    owners = {
        e.get("owned_by") if isinstance(e, Mapping) else getattr(e, "owned_by", None)
        for e in entries
    }
    return "vllm" in owners
