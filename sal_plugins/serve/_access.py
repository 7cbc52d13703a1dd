"""The access log of ``sal serve``: one JSON line per chat completion, without its body by default.

Each line says when the request ended, what it asked for and how it went: path, status, seconds
(to the last byte, for a stream too), the model asked for, the strategy (``pass-through`` when
none), whether it streamed, the search's calls and tokens, and which client key sent it as a
fingerprint (``sha256:`` and 12 hex digits, never the key). The request body is added only when
the server is told to log bodies, with anything that looks like a credential masked.

The lines go to the ``sal_plugins.serve.access`` logger; ``sal serve`` sends them to stderr
(:func:`log_access_to`). An application that mounts the app configures that logger as it likes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import IO, Any

from sal_plugins._redact import redact
from sal_plugins.results import SearchResult
from sal_plugins.serve._metrics import Metrics

__all__ = ["ACCESS_LOGGER", "AccessRecord", "key_fingerprint", "log_access_to"]

ACCESS_LOGGER = "sal_plugins.serve.access"

log = logging.getLogger(ACCESS_LOGGER)


def key_fingerprint(key: str) -> str:
    """How a client key appears in the log: a short digest that tells keys apart, not the key."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:12]


def log_access_to(stream: IO[str]) -> None:
    """Write the access log's lines to ``stream``, one JSON object per line (``sal serve``)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


@dataclass
class AccessRecord:
    """What one request's log line will say; the handler fills it in as it goes."""

    path: str
    started: float = field(default_factory=time.monotonic)
    status: int = 200
    key: str | None = None
    """The client key's fingerprint (``None`` without authentication)."""
    model: str | None = None
    strategy: str | None = None
    stream: bool = False
    result: SearchResult | None = None
    body: str | None = None
    _done: bool = field(default=False, repr=False)

    def keep_body(self, body: bytes) -> None:
        """Log the body too (only when the server logs bodies), credentials masked."""
        self.body = redact(body.decode("utf-8", errors="replace"))

    def finish(self, metrics: Metrics) -> None:
        """Count the request in the metrics and write its line; later calls do nothing."""
        if self._done:
            return
        self._done = True
        seconds = time.monotonic() - self.started
        metrics.observe(self.status, seconds)
        if log.isEnabledFor(logging.INFO):
            log.info(json.dumps(self.fields(seconds), ensure_ascii=False))

    def fields(self, seconds: float) -> dict[str, Any]:
        """The line's fields (those with no value left out)."""
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "path": self.path,
            "status": self.status,
            "seconds": round(seconds, 3),
            "model": self.model,
            "strategy": self.strategy,
            "stream": self.stream,
            "key": self.key,
        }
        if self.result is not None:
            usage = self.result.usage
            line["calls"] = usage.calls
            line["tokens"] = usage.total_tokens
            line["stop_reason"] = self.result.stop_reason
        if self.body is not None:
            line["body"] = self.body
        return {name: value for name, value in line.items() if value is not None}
