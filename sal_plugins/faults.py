"""The fault policy, in one place: which failures are transient, how long to wait, how often to retry.

Every adapter (the OpenAI-compatible solver, the HTTP verifiers, the LangChain and LlamaIndex
solvers) classifies what its SDK or server raised with the functions here, and the search driver
retries with the one :class:`RetryPolicy`:

* **transient** (retried): HTTP 408, 409, 425, 429 and every 5xx; timeouts; refused, reset or
  dropped connections; bodies that are not valid JSON. Anything else a server answers (400, 401,
  404, 422, ...) is permanent: the same request would fail the same way.
* **how long to wait**: what the server asked for, in ``retry-after-ms`` or ``Retry-After``
  (delta-seconds or an HTTP date), capped at :data:`MAX_RETRY_AFTER_S`; NaN, infinities and
  unparsable values are ignored; otherwise exponential back-off with jitter.
* **how often**: ``max_retries`` retries per request, and a retry only while the search's budget
  can pay for it (the driver decides that part, since only it knows the budget).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sal_plugins._redact import redact, redact_url
from sal_plugins.errors import ProviderError, SalError, SolverError, TransientError

__all__ = [
    "MAX_RETRY_AFTER_S",
    "TRANSIENT_STATUSES",
    "RetryPolicy",
    "is_transient",
    "is_transient_status",
    "looks_transient",
    "parse_retry_after",
    "retry_after_of",
    "status_code_of",
    "translate_openai_error",
    "translate_sdk_error",
]

T = TypeVar("T")

MAX_RETRY_AFTER_S = 60.0
"""Longest wait honoured from a server's ``Retry-After``; a longer one is capped to this."""

TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})
"""The 4xx statuses worth retrying (every 5xx is too)."""

_TRANSIENT_NAME_PARTS = (
    "timeout",
    "ratelimit",
    "connection",
    "overloaded",
    "unavailable",
    "serviceunavailable",
)
"""Parts of exception class names that SDKs give their transient errors (``RateLimitError``,
``APIConnectionError``, ``ReadTimeout``, ``OverloadedError``, ...)."""


def is_transient_status(status: int) -> bool:
    """Whether an HTTP status is worth retrying (408, 409, 425, 429, 5xx)."""
    return status in TRANSIENT_STATUSES or 500 <= status <= 599


def is_transient(error: BaseException) -> bool:
    """Whether the driver should retry after ``error`` (a sal-plugins error marked transient)."""
    return isinstance(error, ProviderError) and error.transient


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds to wait according to ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date).

    Args:
        headers: response headers (looked up case-insensitively); ``None`` for none.
        now: the current POSIX time, for HTTP dates (injectable for tests).

    Returns:
        The wait in seconds, between 0 and :data:`MAX_RETRY_AFTER_S`, or ``None`` when the headers
        carry no usable value (missing, unparsable, NaN or infinite).
    """
    if not headers:
        return None
    lowered = {str(key).lower(): str(value) for key, value in headers.items()}
    seconds: float | None = None
    milliseconds = lowered.get("retry-after-ms")
    if milliseconds is not None:
        seconds = _finite(milliseconds)
        seconds = None if seconds is None else seconds / 1000.0
    value = lowered.get("retry-after")
    if seconds is None and value is not None:
        seconds = _finite(value)
        if seconds is None:
            seconds = _seconds_until(value, time.time() if now is None else now)
    return None if seconds is None else _capped(seconds)


def _capped(seconds: float) -> float:
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def _finite(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _seconds_until(http_date: str, now: float) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(http_date.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment is None:  # pragma: no cover - older Pythons returned None
        return None
    if moment.tzinfo is None:  # an HTTP date is GMT even when it does not say so
        from datetime import timezone

        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp() - now


def status_code_of(error: BaseException) -> int | None:
    """The HTTP status an SDK error carries, on itself or on its ``response`` (``None``: none)."""
    for holder in (error, getattr(error, "response", None)):
        status = getattr(holder, "status_code", None)
        if isinstance(status, int) and not isinstance(status, bool):
            return status
    return None


def retry_after_of(error: BaseException) -> float | None:
    """The wait an SDK error's response asked for (see :func:`parse_retry_after`)."""
    headers = getattr(getattr(error, "response", None), "headers", None)
    if not isinstance(headers, Mapping):
        try:  # httpx.Headers and similar multi-dicts are mappings in all but name
            headers = dict(headers.items()) if headers is not None else None
        except (AttributeError, TypeError):
            return None
    return parse_retry_after(headers)


def looks_transient(error: BaseException) -> bool:
    """Whether an exception without an HTTP status is a transport fault worth retrying.

    Timeouts, connection errors (the standard library's and httpx's transport errors), broken
    JSON, and SDK errors whose class names say rate limit, timeout, connection, overloaded or
    unavailable.
    """
    import httpx

    transport = (TimeoutError, ConnectionError, json.JSONDecodeError, httpx.TransportError)
    if isinstance(error, transport):
        return True
    names = [cls.__name__.lower() for cls in type(error).__mro__]
    return any(part in name for name in names for part in _TRANSIENT_NAME_PARTS)


def translate_sdk_error(error: BaseException, source: str) -> SalError:
    """The sal-plugins error for whatever a framework model or SDK raised.

    sal-plugins errors pass through; ``openai`` SDK errors (every OpenAI-compatible client) go
    through :func:`translate_openai_error`; anything else is classified by the
    shape HTTP SDKs share: a ``status_code`` on the error or its ``response``, ``Retry-After``
    headers, and timeout or connection error types.

    Args:
        error: the exception (a tenacity ``RetryError`` from an SDK's own retries is unwrapped).
        source: the model or server name, prefixed to the message.
    """
    error = _unwrap_retry_error(error)
    if isinstance(error, SalError):
        return error
    translated = translate_openai_error(error)
    if translated is not None:
        if translated.transient:
            return TransientError(
                f"{source}: {translated}",
                status_code=translated.status_code,
                retry_after=translated.retry_after,
            )
        return SolverError(f"{source}: {translated}", status_code=translated.status_code)
    status = status_code_of(error)
    message = f"{source}: {type(error).__name__}: {error}"
    transient = is_transient_status(status) if status is not None else looks_transient(error)
    if transient:
        return TransientError(message, status_code=status, retry_after=retry_after_of(error))
    return SolverError(message, status_code=status)


def translate_openai_error(error: BaseException) -> ProviderError | None:
    """The sal-plugins error for an ``openai`` SDK or transport error (``None``: not one).

    Transient (:class:`~sal_plugins.errors.TransientError`): the statuses of
    :func:`is_transient_status` (with the wait from ``Retry-After``), timeouts, connection
    failures, and bodies that are not valid JSON. Any other HTTP status is a
    :class:`~sal_plugins.errors.SolverError` carrying the status.
    """
    import openai

    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        detail = _status_detail(error)
        if is_transient_status(status):
            return TransientError(
                f"server answered HTTP {status}: {detail}",
                status_code=status,
                retry_after=parse_retry_after(error.response.headers),
            )
        return SolverError(f"server answered HTTP {status}: {detail}", status_code=status)
    if isinstance(error, openai.APITimeoutError):
        where = redact_url(str(error.request.url))
        dropped = _dropped_connection(error)
        if dropped is None:
            return TransientError(f"request timed out ({where})")
        return TransientError(f"connection to {where} failed: {type(dropped).__name__}: {dropped}")
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__
        reason = f": {type(cause).__name__}: {redact(str(cause))}" if cause else ""
        return TransientError(f"connection to {redact_url(str(error.request.url))} failed{reason}")
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


def _unwrap_retry_error(error: BaseException) -> BaseException:
    # An SDK's own tenacity decorator (when its retries were left on) raises RetryError.
    last_attempt = getattr(error, "last_attempt", None)
    exception = getattr(last_attempt, "exception", None)
    if callable(exception):
        inner = exception()
        if isinstance(inner, BaseException):
            return inner
    return error


@dataclass(frozen=True)
class RetryPolicy:
    """How the search driver retries one request. Built once per search.

    Args:
        max_retries: retries after the first attempt.
        backoff_s: the first back-off wait; it doubles with each retry, up to ``max_backoff_s``.
        max_backoff_s: the longest back-off wait.
        jitter_s: up to this much random time is added to a back-off wait, so that many requests
            failing together do not retry together.
        max_retry_after_s: the longest ``Retry-After`` honoured (longer ones are capped).
    """

    max_retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 20.0
    jitter_s: float = 0.5
    max_retry_after_s: float = MAX_RETRY_AFTER_S

    def wait_s(self, error: BaseException, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first) after ``error``."""
        asked = getattr(error, "retry_after", None)
        if isinstance(asked, int | float) and not isinstance(asked, bool) and math.isfinite(asked):
            return min(max(0.0, float(asked)), self.max_retry_after_s)
        backoff = min(self.max_backoff_s, self.backoff_s * 2.0 ** (retry - 1))
        return float(backoff + rng.uniform(0.0, self.jitter_s))

    async def call(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        may_retry: Callable[[BaseException], bool],
        on_retry: Callable[[BaseException, int, float], None],
        sleep: Callable[[float], Awaitable[Any]],
        rng: random.Random,
    ) -> T:
        """Await ``attempt()`` until it succeeds, retrying transient faults.

        Args:
            attempt: one try of the request.
            may_retry: asked before each retry whether the caller can afford it (the budget).
            on_retry: told ``(error, retry number, wait)`` before each wait.
            sleep: how to wait (injectable, so tests never wait).
            rng: jitter source.

        Raises:
            The last error, once it is not transient, the retries are spent, or ``may_retry``
            says no.
        """
        retry = 0
        while True:
            try:
                return await attempt()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                retry += 1
                if retry > self.max_retries or not is_transient(error) or not may_retry(error):
                    raise
                wait = self.wait_s(error, retry, rng)
                on_retry(error, retry, wait)
            await sleep(wait)
