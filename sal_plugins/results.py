"""What a search returns: :class:`SearchResult`, its :class:`Completion` candidates and :class:`Usage`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sal_plugins.tree import SearchTree

__all__ = ["Completion", "Failure", "SearchResult", "StopReason", "Usage", "Verification"]

StopReason = Literal["finished", "budget", "deadline", "max_steps", "early_stop", "error"]
"""Why a search ended.

* ``"finished"``: the strategy ran to its natural end;
* ``"budget"``: a call, token or cost cap was reached; the result is the best found so far;
* ``"deadline"``: the wall-clock deadline passed; likewise;
* ``"max_steps"``: the step limit ended the search before every candidate finished;
* ``"early_stop"``: the strategy stopped because more work could not change the answer;
* ``"error"``: failures left nothing better to do (the result still holds what was found).
"""


Verification = Literal["verified", "partial", "unverified", "none"]
"""Whether the ranking of the final candidates rests on the verifier's scores.

* ``"verified"``: every final candidate was scored;
* ``"partial"``: some were not (their scoring failed); they rank below the scored ones;
* ``"unverified"``: the verifier scored none of them (it failed on every call): the order is
  the solver's, not the verifier's, and the pick is no better than a guess;
* ``"none"``: the strategy ran without a verifier (self-consistency), by design.
"""


@dataclass
class Usage:
    """Work a search consumed.

    Attributes:
        generation_calls: requests that reached the solver's model (fan-out counts each request).
        verifier_calls: scoring requests that reached the verifier.
        prompt_tokens: prompt tokens reported by the solver.
        completion_tokens: generated tokens reported by the solver.
        verifier_prompt_tokens: prompt tokens the verifier reported (an LLM judge, a PRM served
            over HTTP; see :func:`~sal_plugins.verifiers.base.report_usage`).
        verifier_completion_tokens: tokens the verifier's model calls generated.
        wall_time_s: wall-clock seconds from start to result.
        cost: money spent, when the solver or the verifier has a price; ``None`` otherwise.
        retries: transient faults that were retried.
        failures: requests that failed for good (their candidates were dropped).
        calls_saved: calls a strategy chose not to make (e.g. best-of-N stopping once the vote is
            decided).
    """

    generation_calls: int = 0
    verifier_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    verifier_prompt_tokens: int = 0
    verifier_completion_tokens: int = 0
    wall_time_s: float = 0.0
    cost: float | None = None
    retries: int = 0
    failures: int = 0
    calls_saved: int = 0

    @property
    def calls(self) -> int:
        """Generation and verifier calls together."""
        return self.generation_calls + self.verifier_calls

    @property
    def total_tokens(self) -> int:
        """Every token: the solver's and the verifier's, prompt and completion."""
        return (
            self.prompt_tokens
            + self.completion_tokens
            + self.verifier_prompt_tokens
            + self.verifier_completion_tokens
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Completion:
    """One final candidate solution.

    Attributes:
        text: the whole solution text (steps joined by the strategy's delimiter).
        steps: the solution's steps.
        score: the aggregated verifier score (``None`` when unscored).
        step_scores: the verifier's scores, one per step (or one for an outcome verifier).
        finished: whether the solver ended the solution (``False``: cut by a limit).
        answer: the final answer extracted from ``text``, if one was found.
        node_id: the tree node this completion ends at.
        critique: what the verifier said about it, if anything.
    """

    text: str
    steps: tuple[str, ...]
    score: float | None
    step_scores: tuple[float, ...] | None
    finished: bool
    answer: str | None
    node_id: int
    critique: str | None = None


@dataclass(frozen=True)
class Failure:
    """A request that failed for good during a search.

    Attributes:
        stage: ``"generate"`` or ``"score"``.
        error: the error's type and message.
        round: the strategy round it happened in.
        node_ids: the nodes affected (the parent for generation, the scored nodes for scoring).
    """

    stage: Literal["generate", "score"]
    error: str
    round: int
    node_ids: tuple[int, ...] = ()


@dataclass
class SearchResult:
    """The outcome of one search.

    Attributes:
        problem: the problem that was searched.
        strategy: the strategy's name.
        completions: the final candidates, best first.
        stop_reason: why the search ended (see :data:`StopReason`).
        usage: what it consumed.
        tree: every node expanded.
        failures: requests that failed for good (the search went on without them).
        verification: whether the ranking rests on the verifier's scores (see
            :data:`Verification`).
    """

    problem: str
    strategy: str
    completions: list[Completion]
    stop_reason: StopReason
    usage: Usage
    tree: SearchTree
    failures: list[Failure] = field(default_factory=list)
    verification: Verification = "verified"

    @property
    def best(self) -> Completion | None:
        """The selected completion (``None`` only if the search produced nothing)."""
        return self.completions[0] if self.completions else None

    @property
    def answer(self) -> str | None:
        """The extracted final answer of the selected completion."""
        return self.best.answer if self.best else None

    @property
    def text(self) -> str:
        """The selected completion's text (empty if there is none)."""
        return self.best.text if self.best else ""

    def summary(self) -> dict[str, Any]:
        """A compact JSON-ready summary: answer, score, stop reason, usage and counts."""
        best = self.best
        return {
            "strategy": self.strategy,
            "answer": self.answer,
            "score": best.score if best else None,
            "finished": best.finished if best else False,
            "stop_reason": self.stop_reason,
            "verification": self.verification,
            "notes": list(self.tree.notes),
            "choices": [asdict(choice) for choice in self.tree.choices],
            "candidates": len(self.completions),
            "nodes": len(self.tree) - 1,
            "failures": len(self.failures),
            "usage": self.usage.to_dict(),
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (the tree included)."""
        return {
            "problem": self.problem,
            **self.summary(),
            "completions": [asdict(c) for c in self.completions],
            "failure_details": [asdict(f) for f in self.failures],
            "tree": self.tree.to_dict(),
        }
