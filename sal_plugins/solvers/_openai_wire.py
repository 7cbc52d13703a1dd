"""Wire-format translation for :class:`~sal_plugins.solvers.openai.OpenAISolver`.

Pure functions, no I/O: reading choices of ``/v1/chat/completions`` and ``/v1/completions`` bodies
(including vLLM's ``stop_reason`` extension), parsing ``Retry-After``, and the one place where
``openai`` SDK errors become sal-plugins errors.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sal_plugins.errors import ProviderError, SolverError, TransientError
from sal_plugins.solvers.base import Generation, StopKind

__all__ = [
    "MAX_RETRY_AFTER_S",
    "generation_from_choice",
    "parse_retry_after",
    "stop_kind_of",
    "translate_error",
]

MAX_RETRY_AFTER_S = 60.0
"""Longest wait honoured from a ``Retry-After`` header; longer requests are capped to this."""

_TRANSIENT_4XX = frozenset({408, 409, 429})


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait according to ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date).

    Args:
        headers: response headers (looked up case-insensitively).
        now: the current POSIX time, for HTTP dates (injectable for tests).

    Returns:
        The wait in seconds (never negative, at most :data:`MAX_RETRY_AFTER_S`), or ``None`` when
        the headers carry no usable value.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    seconds: float | None = None
    milliseconds = lowered.get("retry-after-ms")
    if milliseconds is not None:
        seconds = _as_float(milliseconds)
        seconds = None if seconds is None else seconds / 1000.0
    value = lowered.get("retry-after")
    if seconds is None and value is not None:
        seconds = _as_float(value)
        if seconds is None:
            seconds = _seconds_until(value, time.time() if now is None else now)
    if seconds is None:
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def _as_float(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def _seconds_until(http_date: str, now: float) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(http_date.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:  # pragma: no cover - older Pythons returned None
        return None
    return moment.timestamp() - now


_MISSING = object()


def stop_kind_of(
    finish_reason: object, stop_reason: object = _MISSING, *, stops_requested: bool
) -> StopKind:
    """Why a choice stopped, from ``finish_reason`` and vLLM's ``stop_reason``.

    * ``"length"`` when the token cap was hit;
    * with ``stop_reason`` present (vLLM): a string is the matched stop string (``"delimiter"``);
      ``None`` or an integer stop-token id means the model ended its answer (``"end"``);
    * without it (OpenAI, llama.cpp): ``"end"`` if no stop string was requested (only end of
      sequence can have stopped it), else ``"unknown"``.

    Args:
        finish_reason: the choice's ``finish_reason``.
        stop_reason: the choice's ``stop_reason``; leave out when the body has no such field.
        stops_requested: whether the request carried stop strings.
    """
    if finish_reason == "length":
        return "length"
    if finish_reason != "stop":
        return "unknown"
    if stop_reason is not _MISSING:
        if isinstance(stop_reason, str):
            return "delimiter"
        if stop_reason is None or isinstance(stop_reason, int):
            return "end"
    return "unknown" if stops_requested else "end"


def _strip_kept_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    for stop in stops:
        if stop and text.endswith(stop):
            return text[: -len(stop)], True
    return text, False


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
    kind = stop_kind_of(
        finish_reason, choice.get("stop_reason", _MISSING), stops_requested=bool(stops)
    )
    if finish_reason == "stop":
        text, kept = _strip_kept_stop(text, stops)
        if kept and kind == "unknown":  # a server that keeps the stop string stopped at it
            kind = "delimiter"
    token_logprobs, top_logprobs = _logprobs(choice.get("logprobs"))
    return Generation(
        text=text, stop_kind=kind, token_logprobs=token_logprobs, top_logprobs=top_logprobs
    )


def _logprobs(
    block: object,
) -> tuple[tuple[float, ...] | None, tuple[dict[str, float], ...] | None]:
    if not isinstance(block, Mapping):
        return None, None
    content = block.get("content")
    if isinstance(content, list):  # chat shape: [{token, logprob, top_logprobs: [...]}, ...]
        entries = [e for e in content if isinstance(e, Mapping)]
        values = tuple(float(e.get("logprob", 0.0)) for e in entries)
        tops = tuple(
            {
                str(alt.get("token")): float(alt.get("logprob", 0.0))
                for alt in (e.get("top_logprobs") or [])
                if isinstance(alt, Mapping)
            }
            for e in entries
        )
        return values, (tops if any(tops) else None)
    token_logprobs = block.get("token_logprobs")
    if isinstance(token_logprobs, list):  # completions shape: parallel lists
        values = tuple(float(v) for v in token_logprobs if v is not None)
        raw_tops = block.get("top_logprobs")
        tops_list = [
            {str(k): float(v) for k, v in top.items()}
            for top in (raw_tops if isinstance(raw_tops, list) else [])
            if isinstance(top, Mapping)
        ]
        return values, (tuple(tops_list) if any(tops_list) else None)
    return None, None


def translate_error(error: BaseException) -> ProviderError | None:
    """The sal-plugins error for an ``openai`` SDK or transport error (``None``: not ours).

    Transient (:class:`TransientError`, retried by the search driver): 429 (with the wait from
    ``Retry-After``), 408, 409, every 5xx, timeouts, connection failures, and bodies that are not
    valid JSON. Any other HTTP status is a :class:`SolverError` carrying the status.
    """
    import openai

    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        detail = _status_detail(error)
        retry_after = parse_retry_after(error.response.headers)
        if status in _TRANSIENT_4XX or status >= 500:
            return TransientError(
                f"server answered HTTP {status}: {detail}",
                status_code=status,
                retry_after=retry_after,
            )
        return SolverError(f"server answered HTTP {status}: {detail}", status_code=status)
    if isinstance(error, openai.APITimeoutError):
        dropped = _dropped_connection(error)
        if dropped is None:
            return TransientError(f"request timed out ({error.request.url})")
        return TransientError(
            f"connection to {error.request.url} failed: {type(dropped).__name__}: {dropped}"
        )
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__
        reason = f": {type(cause).__name__}: {cause}" if cause else ""
        return TransientError(f"connection to {error.request.url} failed{reason}")
    if isinstance(error, openai.APIResponseValidationError):
        return TransientError(f"server sent a malformed response: {error.message}")
    if isinstance(error, json.JSONDecodeError):
        return TransientError(f"server sent broken JSON: {error}")
    return None


def _dropped_connection(error: BaseException) -> BaseException | None:
    """The aiohttp connection error under a "timeout", if that is what it really was.

    The aiohttp transport reports every aiohttp connection error (a server that closed the
    connection, a refused connect) as an httpx timeout; the original is in the cause chain.
    """
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - aiohttp comes with openai[aiohttp]
        return None
    cause = error.__cause__
    for _ in range(5):
        if cause is None:
            return None
        if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, TimeoutError):
            return cause
        cause = cause.__cause__
    return None


def _status_detail(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])[:500]
    return str(getattr(error, "message", error))[:500]
