"""Translate whatever a LlamaIndex LLM raised into sal-plugins errors.

LlamaIndex LLMs raise their SDK's exceptions unchanged (``openai.RateLimitError``,
``httpx.ReadTimeout``, ``anthropic.APIStatusError``, ...). ``openai`` errors (every
OpenAI-compatible LLM class) go through the core's own translation; others are mapped by the shape
HTTP SDKs share: a ``status_code`` on the error or its ``response``, ``Retry-After`` headers, and
timeout or connection error types.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from sal_plugins.adapters import parse_retry_after
from sal_plugins.adapters import translate_openai_error as translate_error
from sal_plugins.errors import SalError, SolverError, TransientError

__all__ = ["map_llm_error"]

_TRANSIENT_STATUS = frozenset({408, 409, 429})
_TRANSIENT_NAMES = ("Timeout", "Connection", "RateLimit", "ServiceUnavailable", "Overloaded")


def map_llm_error(error: BaseException, source: str) -> SalError:
    """The sal error for ``error`` raised by the LLM named ``source``.

    429, 408, 409 and 5xx responses, timeouts, dropped connections and broken JSON become
    :class:`~sal_plugins.errors.TransientError` (which the search driver retries, honouring
    ``Retry-After``); everything else becomes :class:`~sal_plugins.errors.SolverError`.
    """
    error = _unwrap(error)
    if isinstance(error, SalError):
        return error
    translated = translate_error(error)
    if translated is not None:
        if translated.transient:
            return TransientError(
                f"{source}: {translated}",
                status_code=translated.status_code,
                retry_after=translated.retry_after,
            )
        return SolverError(f"{source}: {translated}", status_code=translated.status_code)
    status = _status_code(error)
    message = f"{source}: {type(error).__name__}: {error}"
    transient = (
        (status is not None and (status in _TRANSIENT_STATUS or status >= 500))
        or (status is None and _looks_transient(error))
        or isinstance(error, json.JSONDecodeError)
    )
    if transient:
        return TransientError(message, status_code=status, retry_after=_retry_after(error))
    return SolverError(message, status_code=status)


def _unwrap(error: BaseException) -> BaseException:
    # An LLM's own tenacity decorator (when its retries were left on) raises RetryError.
    last_attempt = getattr(error, "last_attempt", None)
    exception = getattr(last_attempt, "exception", None)
    if callable(exception):
        inner = exception()
        if isinstance(inner, BaseException):
            return inner
    return error


def _status_code(error: BaseException) -> int | None:
    for holder in (error, getattr(error, "response", None)):
        status = getattr(holder, "status_code", None)
        if isinstance(status, int):
            return status
    return None


def _looks_transient(error: BaseException) -> bool:
    if isinstance(error, (TimeoutError, asyncio.TimeoutError, ConnectionError)):
        return True
    names = [cls.__name__ for cls in type(error).__mro__]
    return any(marker in name for name in names for marker in _TRANSIENT_NAMES)


def _retry_after(error: BaseException) -> float | None:
    headers = getattr(getattr(error, "response", None), "headers", None)
    if not isinstance(headers, Mapping):
        return None
    return parse_retry_after({str(k): str(v) for k, v in headers.items()})
