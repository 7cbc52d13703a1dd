"""Every exception sal-plugins raises.

Two families hang off :class:`SalError`:

* user mistakes (:class:`ConfigError`, :class:`InputError`, :class:`MissingDependencyError`) are raised
  at once, at the boundary, with a message that names the fix;
* run-time failures (:class:`SolverError`, :class:`VerifierError`, :class:`SearchError`) happen while
  a search runs. The driver records them per candidate; only a search that has nothing left to
  return raises, and then :class:`SearchError` carries the partial result.

SDK and HTTP errors are translated into these only inside the adapter that talks to that SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sal_plugins.results import SearchResult

__all__ = [
    "ConfigError",
    "InputError",
    "InvalidScoreError",
    "MissingDependencyError",
    "ProviderError",
    "SalError",
    "ScoreCountError",
    "SearchError",
    "SolverError",
    "TransientError",
    "VerifierError",
]


class SalError(Exception):
    """Root of every error raised by sal-plugins."""


class ConfigError(SalError, ValueError):
    """A strategy, solver or verifier was configured with values that cannot work."""


class InputError(SalError, ValueError):
    """The problem or another run-time input is malformed (for example an empty problem)."""


class MissingDependencyError(SalError, ImportError):
    """An optional dependency is missing; the message names the ``pip install`` that brings it."""

    def __init__(self, feature: str, extra: str, package: str | None = None) -> None:
        target = f"sal-plugins[{extra}]" if package is None else package
        super().__init__(f"{feature} needs an optional dependency: pip install '{target}'")
        self.feature = feature
        self.extra = extra


class ProviderError(SalError):
    """A model server or SDK call failed.

    Attributes:
        status_code: HTTP status when there was one.
        retry_after: seconds the server asked us to wait, when it said so.
        transient: whether retrying the same request may succeed.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
        self.transient = transient


class TransientError(ProviderError):
    """A fault worth retrying: 429, 5xx, timeouts, dropped connections, broken JSON."""

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status_code=status_code, retry_after=retry_after, transient=True)


class SolverError(ProviderError):
    """Generation failed for a request (after retries, when the fault was transient)."""


class VerifierError(SalError):
    """A verifier could not score, or returned scores that cannot be used.

    Attributes:
        verifier: the name of the verifier that failed.
    """

    def __init__(self, message: str, *, verifier: str | None = None) -> None:
        prefix = f"{verifier}: " if verifier else ""
        super().__init__(prefix + message)
        self.verifier = verifier


class ScoreCountError(VerifierError):
    """A verifier returned a number of scores that does not match the number of steps."""


class InvalidScoreError(VerifierError):
    """A verifier returned NaN, an infinity, or a score outside its declared range."""


class SearchError(SalError):
    """A search produced no candidate at all.

    Attributes:
        result: what the search had when it ended (usage, tree, the failures that stopped it).
    """

    def __init__(self, message: str, *, result: SearchResult | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.result = result
        self.extra = extra
