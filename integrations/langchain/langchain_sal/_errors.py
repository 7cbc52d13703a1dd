"""Translation of chat-model errors into sal-plugins errors (the only place that does it).

LangChain chat models raise their provider SDK's exceptions unchanged, so the translation looks at
what those exceptions carry (an HTTP status, a ``Retry-After`` header) and at well-known transport
failures, rather than at one SDK's classes.
"""

from __future__ import annotations

import asyncio
import json

import httpx
from sal_plugins.errors import ProviderError, SalError, SolverError, TransientError

__all__ = ["translate_error"]

_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})
_TRANSIENT_NAMES = ("timeout", "ratelimit", "connection", "overloaded", "unavailable")


def _status_code(error: BaseException) -> int | None:
    status = getattr(error, "status_code", None)
    if status is None:
        status = getattr(getattr(error, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _retry_after(error: BaseException) -> float | None:
    headers = getattr(getattr(error, "response", None), "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP date: let the driver's backoff decide


def _is_transient(error: BaseException, status: int | None) -> bool:
    if status is not None:
        return status in _TRANSIENT_STATUS or status >= 500
    transport = (TimeoutError, asyncio.TimeoutError, ConnectionError, json.JSONDecodeError)
    if isinstance(error, (*transport, httpx.TransportError)):
        return True
    name = type(error).__name__.lower()
    return any(part in name for part in _TRANSIENT_NAMES)


def translate_error(error: BaseException, model: str) -> SalError:
    """The sal-plugins error for an exception raised by a chat-model call.

    Rate limits, 5xx, timeouts, dropped connections and broken JSON become
    :class:`~sal_plugins.errors.TransientError` (the search driver retries them, honouring
    ``Retry-After``); anything else becomes :class:`~sal_plugins.errors.SolverError`. sal-plugins
    errors pass through unchanged.
    """
    if isinstance(error, SalError):
        return error
    status = _status_code(error)
    message = f"{model}: {type(error).__name__}: {error}"
    if _is_transient(error, status):
        return TransientError(message, status_code=status, retry_after=_retry_after(error))
    failure: ProviderError = SolverError(message, status_code=status)
    return failure
