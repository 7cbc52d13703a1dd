"""Replicas of one model: which base URL serves a request, and which are resting after a fault.

Users outgrow one model server; :class:`~sal_plugins.solvers.openai.OpenAISolver` and the HTTP
verifiers take a list of base URLs (replicas of the same model) and spread their requests with
one :class:`ReplicaSet`:

* **least requests in flight**: a request goes to the healthy replica with the fewest requests
  in flight (among equals, the one chosen least often, so sequential requests alternate);
* **affinity**: the requests of one search carry a key (:func:`affinity_of` its problem text)
  and stay on the replica the key was first given, so the server's prefix cache keeps hitting;
  a request leaves it for the least-loaded replica when the preferred one is much busier
  (:attr:`ReplicaPolicy.spill_margin`), and the key moves for good when its replica is down;
* **cool-down**: a replica that failed with a transient fault (what
  :func:`sal_plugins.faults.is_transient` says: refused or reset connections, timeouts, 5xx, 429,
  broken JSON) rests for ``cooldown_s``, doubling with each failure in a row up to
  ``max_cooldown_s`` (or as long as its ``Retry-After`` asked, within that cap), and the request
  is sent again at once to another healthy replica; the search's retry budget is spent only when
  no healthy replica is left. A replica whose rest is over is tried again; one success clears
  its record.

With a single URL nothing changes: every request goes to it and every fault reaches the caller
as before. Time comes from an injected clock, so tests never wait.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sal_plugins._redact import redact_url
from sal_plugins.errors import ConfigError
from sal_plugins.faults import is_transient

__all__ = ["Replica", "ReplicaPolicy", "ReplicaSet", "affinity_of", "replica_urls"]

T = TypeVar("T")


class ReplicaPolicy(BaseModel):
    """How a :class:`ReplicaSet` spreads requests and rests failed replicas.

    Args:
        cooldown_s: rest of a replica after its first failure in a row; doubled for each
            further one.
        max_cooldown_s: the longest rest (also caps a ``Retry-After`` the replica sent).
        spill_margin: a request leaves its search's replica for the least-loaded one when the
            preferred replica has at least twice as many requests in flight plus this many.
        remembered: how many searches' replicas are remembered (the oldest are forgotten).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    cooldown_s: float = Field(default=1.0, gt=0.0)
    max_cooldown_s: float = Field(default=30.0, gt=0.0)
    spill_margin: int = Field(default=8, ge=0)
    remembered: int = Field(default=4096, ge=1)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in item['loc']) or 'arguments'}: {item['msg']}"
                for item in error.errors()
            )
            raise ConfigError(f"ReplicaPolicy: {problems}") from error

    @model_validator(mode="after")
    def _longest_at_least_first(self) -> ReplicaPolicy:
        if self.max_cooldown_s < self.cooldown_s:
            raise ValueError(
                f"max_cooldown_s ({self.max_cooldown_s}) must be at least cooldown_s "
                f"({self.cooldown_s})"
            )
        return self

    def rest_s(self, failures: int, retry_after: float | None = None) -> float:
        """Cool-down after failure number ``failures`` in a row (at least what the server asked)."""
        backoff = self.cooldown_s * 2.0 ** max(0, failures - 1)
        asked = retry_after if retry_after is not None else 0.0
        return min(self.max_cooldown_s, max(backoff, asked))


def replica_urls(base_url: str | Sequence[str], owner: str) -> tuple[str, ...]:
    """``base_url`` as a tuple of URLs, checked: at least one, each http(s), no duplicates.

    Args:
        base_url: one URL, or a list of replicas of the same model.
        owner: the class taking them, named in every error.

    Returns:
        The URLs, stripped, without trailing slashes, in the order given.

    Raises:
        ConfigError: an empty list, a value that is not a URL, or the same URL twice.
    """
    values = [base_url] if isinstance(base_url, str) else base_url
    if isinstance(values, bytes | bytearray) or not isinstance(values, Sequence):
        raise ConfigError(
            f"{owner}: base_url must be a URL or a list of URLs (replicas of one model), "
            f"got {type(base_url).__name__}"
        )
    if not values:
        raise ConfigError(f"{owner}: base_url is an empty list: give at least one URL")
    urls: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise ConfigError(
                f"{owner}: every base_url must be a string, got {type(value).__name__}"
            )
        url = value.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"{owner}: base_url must start with http:// or https://, got {redact_url(value)!r}"
            )
        if url in urls:
            raise ConfigError(
                f"{owner}: base_url {redact_url(url)!r} is listed twice: list each replica once"
            )
        urls.append(url)
    return tuple(urls)


def affinity_of(*parts: str | None) -> str:
    """The affinity key of a search: a short digest of the texts its requests all start with.

    The solver passes the system prompt and the problem, the verifiers the problem: every
    request of one search shares them, and so does the prefix the server caches.
    """
    text = "\x1f".join("" if part is None else part for part in parts)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


@dataclass(eq=False)
class Replica:
    """One base URL and what the set knows of it.

    Attributes:
        url: the base URL (requests append their path to it).
        in_flight: requests sent to it and not yet answered.
        failures: transient failures in a row (cleared by an answer).
        resting_until: clock time its cool-down ends (0: not resting).
        picks: how often it has been chosen.
        last_error: the last failure, already redacted by the adapter that raised it.
    """

    url: str
    in_flight: int = 0
    failures: int = 0
    resting_until: float = 0.0
    picks: int = 0
    last_error: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (
            f"Replica(url={redact_url(self.url)!r}, in_flight={self.in_flight}, "
            f"failures={self.failures})"
        )


class ReplicaSet:
    """The replicas of one model and the one rule for choosing among them (module docstring).

    Safe to share between event loops and threads (each choice is made under a lock).

    Args:
        urls: the base URLs (see :func:`replica_urls`).
        policy: cool-down and spill settings (the defaults of :class:`ReplicaPolicy`).
        clock: monotonic clock in seconds; injectable so tests control the cool-down.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        policy: ReplicaPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ConfigError("ReplicaSet needs at least one URL")
        if len(set(urls)) != len(urls):
            raise ConfigError("ReplicaSet: every URL must be listed once")
        self.replicas: tuple[Replica, ...] = tuple(Replica(url) for url in urls)
        self.policy = policy or ReplicaPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._homes: OrderedDict[Hashable, Replica] = OrderedDict()

    def __repr__(self) -> str:
        urls = [redact_url(r.url) for r in self.replicas]
        return f"ReplicaSet(urls={urls!r}, healthy={len(self.healthy())}/{len(self.replicas)})"

    def __len__(self) -> int:
        return len(self.replicas)

    @property
    def urls(self) -> tuple[str, ...]:
        """Every replica's base URL, in the order given."""
        return tuple(r.url for r in self.replicas)

    def healthy(self) -> list[Replica]:
        """The replicas not resting after a failure."""
        now = self._clock()
        return [r for r in self.replicas if r.resting_until <= now]

    def pick(self, affinity: Hashable | None = None, *, exclude: Sequence[Replica] = ()) -> Replica:
        """Choose the replica for one request and count it in flight (pair with :meth:`release`).

        Args:
            affinity: the search the request belongs to (:func:`affinity_of`); ``None`` for none.
            exclude: replicas this request has already failed on.

        Returns:
            A healthy replica not excluded; when there is none, the one whose rest ends first
            (a request is never refused here: the server's answer says whether it is back).
        """
        with self._lock:
            now = self._clock()
            open_ = [r for r in self.replicas if r not in exclude]
            healthy = [r for r in open_ if r.resting_until <= now]
            if not healthy:
                chosen = min(open_ or self.replicas, key=lambda r: r.resting_until)
            else:
                chosen = min(healthy, key=lambda r: (r.in_flight, r.picks))
                if affinity is not None:
                    chosen = self._by_affinity(affinity, chosen, healthy)
            chosen.in_flight += 1
            chosen.picks += 1
            return chosen

    def _by_affinity(self, key: Hashable, least: Replica, healthy: list[Replica]) -> Replica:
        home = self._homes.get(key)
        if home is None or home not in healthy:
            self._homes[key] = least  # a new search, or its replica is down: it moves for good
            home = least
        self._homes.move_to_end(key)
        while len(self._homes) > self.policy.remembered:
            self._homes.popitem(last=False)
        if home.in_flight >= 2 * least.in_flight + self.policy.spill_margin:
            return least  # this request only; the search keeps its replica
        return home

    def release(self, replica: Replica, *, answered: bool) -> None:
        """A request to ``replica`` ended; ``answered``: the server answered (clears its record)."""
        with self._lock:
            replica.in_flight -= 1
            if answered:
                replica.failures = 0
                replica.resting_until = 0.0
                replica.last_error = None

    def mark_failed(self, replica: Replica, error: BaseException | None = None) -> float:
        """Rest ``replica`` after a transient failure; returns the rest in seconds."""
        asked = getattr(error, "retry_after", None)
        with self._lock:
            replica.failures += 1
            rest = self.policy.rest_s(
                replica.failures, asked if isinstance(asked, int | float) else None
            )
            replica.resting_until = self._clock() + rest
            replica.last_error = None if error is None else f"{type(error).__name__}: {error}"
            return rest

    async def call(self, affinity: Hashable | None, send: Callable[[Replica], Awaitable[T]]) -> T:
        """``await send(replica)`` on the chosen replica, failing over on transient faults.

        A transient fault (by the fault policy) rests that replica and the request goes at once
        to another healthy one; the fault is raised when no healthy replica is left untried
        (the caller's retries take over), and any other error is raised as it is.
        """
        tried: list[Replica] = []
        while True:
            replica = self.pick(affinity, exclude=tried)
            answered = False
            try:
                result = await send(replica)
                answered = True
                return result
            except Exception as error:
                if not is_transient(error):
                    answered = True  # the server answered (a 4xx): it is up
                    raise
                self.mark_failed(replica, error)
                tried.append(replica)
                if len(self.replicas) == 1 or not self._untried_healthy(tried):
                    raise
            finally:
                self.release(replica, answered=answered)

    def _untried_healthy(self, tried: list[Replica]) -> bool:
        return any(r not in tried for r in self.healthy())
