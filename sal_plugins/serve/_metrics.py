"""Prometheus text metrics of ``sal serve``: requests, in flight, search calls, tokens, latency."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Metrics"]

BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Upper bounds of the latency histogram, in seconds (searches take seconds, not milliseconds)."""


@dataclass
class Metrics:
    """Counters one server instance keeps; :meth:`render` is the ``/metrics`` body."""

    requests: Counter[int] = field(default_factory=Counter)
    in_flight: int = 0
    search_calls: int = 0
    cancelled: int = 0
    tokens: Counter[str] = field(default_factory=lambda: Counter(solver=0, verifier=0))
    _latency: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_S) + 1))
    _latency_sum: float = 0.0

    def observe(self, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests[status] += 1
        self._latency[bisect.bisect_left(BUCKETS_S, seconds)] += 1
        self._latency_sum += seconds

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        lines = [
            "# HELP sal_requests_total Chat completion requests answered, by HTTP status.",
            "# TYPE sal_requests_total counter",
            *(f'sal_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.requests.items())),
            "# HELP sal_requests_in_flight Searches running now.",
            "# TYPE sal_requests_in_flight gauge",
            f"sal_requests_in_flight {self.in_flight}",
            "# HELP sal_search_calls_total Generation and verifier calls made by searches.",
            "# TYPE sal_search_calls_total counter",
            f"sal_search_calls_total {self.search_calls}",
            "# HELP sal_searches_cancelled_total Searches cancelled because the client left.",
            "# TYPE sal_searches_cancelled_total counter",
            f"sal_searches_cancelled_total {self.cancelled}",
            "# HELP sal_tokens_total Tokens spent by searches, solver and verifier.",
            "# TYPE sal_tokens_total counter",
            *(f'sal_tokens_total{{kind="{k}"}} {n}' for k, n in sorted(self.tokens.items())),
            "# HELP sal_request_seconds Chat completion latency.",
            "# TYPE sal_request_seconds histogram",
        ]
        total = 0
        for bound, count in zip((*BUCKETS_S, float("inf")), self._latency, strict=True):
            total += count
            label = "+Inf" if bound == float("inf") else f"{bound:g}"
            lines.append(f'sal_request_seconds_bucket{{le="{label}"}} {total}')
        lines.append(f"sal_request_seconds_sum {self._latency_sum:.6f}")
        lines.append(f"sal_request_seconds_count {total}")
        return "\n".join(lines) + "\n"
