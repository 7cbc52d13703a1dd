"""Credentials out of every repr, log line and error message.

URLs may carry credentials in their user-info (``https://user:key@host/v1``) or in query parameters
(``?api_key=...``); error texts from SDKs may quote an ``Authorization`` header. Everything the
library shows of a URL or of an upstream error goes through :func:`redact_url` or :func:`redact`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "mask_key", "redact", "redact_url"]

MASK = "***"

_SECRET_PARAM = re.compile(r"key|token|secret|password|passwd|sig|signature|auth", re.IGNORECASE)
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@:]*(?::[^/\s@]*)?@")
_BEARER = re.compile(r"(?P<head>\b(?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{4,}", re.IGNORECASE)
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&][^=&\s]*(?:key|token|secret|password|sig)[^=&\s]*=)[^&\s#]+", re.IGNORECASE
)
_KEY_LIKE = re.compile(r"\b(?:sk|pk|rk|hf|gsk|xai)[-_][A-Za-z0-9_-]{12,}\b")


def redact_url(url: str) -> str:
    """``url`` with its user-info and secret-looking query parameters masked.

    >>> redact_url("https://me:s3cret@api.example.com/v1?api_key=abc&x=1")
    'https://***@api.example.com/v1?api_key=%2A%2A%2A&x=1'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if _SECRET_PARAM.search(k) else v) for k, v in pairs])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str) -> str:
    """``text`` with URL user-info, bearer tokens, secret query values and API-key-like words masked."""
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    text = _BEARER.sub(lambda m: f"{m.group('head')}{MASK}", text)
    text = _QUERY_SECRET.sub(lambda m: f"{m.group('head')}{MASK}", text)
    return _KEY_LIKE.sub(MASK, text)


def mask_key(key: str | None) -> str | None:
    """How a configured key is shown: ``None`` stays ``None``, anything else is masked."""
    return None if key is None else MASK
