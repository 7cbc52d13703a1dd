"""Self-revision: the model revises its own solution where the verifier doubts it.

Each of ``n`` chains samples a whole solution and has the verifier score it. While a chain's best
score is below ``threshold`` and revisions remain, the solver gets a revision prompt showing the
problem, the chain's best solution so far, where the verifier found the first weak step (or, from
an outcome-only verifier, that the solution as a whole scored low) and the verifier's critique
when it gave one; the revision is scored, and it replaces the chain's best only if it is better.
All chains' requests of a round go out in one batch, and one verifier call scores them.

Cost, with N = ``n`` chains and R = ``max_revisions``: one generation request for the N first
solutions (N calls on a solver that fans ``n`` out) and one verifier call; then per revision round
one request per chain still below the threshold and one verifier call. At most 1 + N * R
generation requests and 1 + R verifier calls; chains that reach the threshold stop early.
"""

from __future__ import annotations

import string
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from sal_plugins.errors import ConfigError
from sal_plugins.plan import Expand, Outcome, Plan, Request, Score
from sal_plugins.strategies.base import SearchStrategy
from sal_plugins.tree import Node, SearchTree

__all__ = ["DEFAULT_REVISION_PROMPT", "REVISION_FIELDS", "SelfRevision", "revision_feedback"]

DEFAULT_REVISION_PROMPT = (
    "{problem}\n\n"
    "Here is a solution to this problem:\n"
    "<solution>\n{solution}\n</solution>\n\n"
    "{feedback}\n\n"
    "Write a corrected, complete solution: keep the steps that are right, redo the doubtful step "
    "and everything after it, separate the steps with a blank line, and end with the final answer "
    "in $\\boxed{{}}$."
)
"""The default revision prompt (a ``str.format`` template over :data:`REVISION_FIELDS`)."""

REVISION_FIELDS = {
    "problem": "the original problem",
    "solution": "the solution being revised (its steps joined by the step delimiter)",
    "feedback": "what the verifier found, in a sentence or two (weak step, score, critique)",
    "step_number": "1-based number of the first weak step (0 when only an outcome score exists)",
    "step_text": "text of the first weak step ('' when only an outcome score exists)",
    "score": "the solution's aggregated score (a float)",
    "critique": "the verifier's critique ('' when it gave none)",
}
"""Placeholders a revision prompt may use; ``{problem}`` and ``{solution}`` are required."""

_SAMPLE_VALUES: dict[str, Any] = {
    "problem": "p",
    "solution": "s",
    "feedback": "f",
    "step_number": 1,
    "step_text": "t",
    "score": 0.5,
    "critique": "c",
}


def _weak_step(node: Node, threshold: float, outcome_only: bool) -> tuple[int, float] | None:
    """(1-based number, score) of the first step below ``threshold``, else the lowest step."""
    scores = node.step_scores
    if outcome_only or not scores or len(scores) != len(node.steps):
        return None
    for number, value in enumerate(scores, start=1):
        if value < threshold:
            return number, value
    lowest = min(scores)
    return scores.index(lowest) + 1, lowest


def revision_feedback(node: Node, threshold: float, outcome_only: bool) -> dict[str, Any]:
    """The template values describing what the verifier found in ``node``'s solution.

    Args:
        node: the scored solution to revise.
        threshold: the score a solution needs.
        outcome_only: the verifier gives one score per solution, not one per step.

    Returns:
        Values for every :data:`REVISION_FIELDS` entry but ``problem`` and ``solution``.
    """
    score = node.score if node.score is not None else float("nan")
    critique = (node.critique or "").strip()
    weak = _weak_step(node, threshold, outcome_only)
    if weak is None:
        feedback = (
            f"A verifier scored this solution as a whole {score:.2f} (it needs {threshold:.2f}), "
            "without saying which step is wrong: check every step."
        )
        number, text = 0, ""
    else:
        number, value = weak
        text = node.steps[number - 1]
        feedback = (
            f"A verifier checked this solution step by step. The first step it doubts is step "
            f"{number} of {len(node.steps)} (score {value:.2f}, it needs {threshold:.2f}):\n"
            f"> {' '.join(text.split())}"
        )
    if critique:
        feedback += f"\nThe verifier's critique: {critique}"
    return {
        "feedback": feedback,
        "step_number": number,
        "step_text": text,
        "score": score,
        "critique": critique,
    }


class SelfRevision(SearchStrategy):
    """Sample, score, and have the solver revise below-threshold solutions, keeping the best.

    Works with step-level verifiers (the prompt names the first weak step) and outcome-only ones
    (the prompt says the solution as a whole scored low). A version that could not be scored ends
    its chain's revisions (there is nothing to compare against). The returned completions are each
    chain's best finished version, best first.

    Args:
        n: independent chains.
        max_revisions: revisions per chain at most.
        threshold: the aggregated score that counts as good enough (on the verifier's scale).
        revision_prompt: ``str.format`` template of the revision request; placeholders from
            :data:`REVISION_FIELDS`, ``{problem}`` and ``{solution}`` required. A bad template
            raises :class:`~sal_plugins.errors.ConfigError`.
        **kwargs: the shared settings of :class:`~sal_plugins.strategies.base.SearchStrategy`;
            a verifier is required.

    Example:
        >>> search = SelfRevision(solver=solver, verifier=prm, n=4, max_revisions=3, threshold=0.7)
        >>> result = search.run("What is 23 + 48?")
    """

    name: ClassVar[str] = "self_revision"

    n: int = Field(default=1, gt=0)
    max_revisions: int = Field(default=3, ge=0)
    threshold: float = 0.5
    revision_prompt: str = DEFAULT_REVISION_PROMPT

    @field_validator("revision_prompt")
    @classmethod
    def _check_template(cls, template: str) -> str:
        known = ", ".join("{" + name + "}" for name in REVISION_FIELDS)
        try:
            parsed = string.Formatter().parse(template)
            fields = {name for _, name, _, _ in parsed if name is not None}
            unknown = sorted(name for name in fields if name not in REVISION_FIELDS)
            if unknown:
                names = ", ".join("{" + name + "}" for name in unknown)
                raise ValueError(f"unknown placeholder {names}")
            template.format(**_SAMPLE_VALUES)
        except (ValueError, KeyError, IndexError, AttributeError) as error:
            raise ValueError(
                f"SelfRevision(revision_prompt=...): not a usable template ({error!s}); use "
                f"placeholders from {known}, and double any literal brace ({{{{ or }}}})"
            ) from None
        missing = [name for name in ("problem", "solution") if name not in fields]
        if missing:
            raise ValueError(
                "SelfRevision(revision_prompt=...): the template must show "
                + " and ".join("{" + m + "}" for m in missing)
            )
        return template

    @model_validator(mode="after")
    def _check_verifier(self) -> SelfRevision:
        if self.verifier is None:
            raise ConfigError(
                "SelfRevision needs a verifier to judge each version: pass verifier=..."
            )
        return self

    def revision_request(self, problem: str, node: Node) -> str:
        """The revision prompt for ``node``'s solution."""
        outcome_only = self.scorer is not None and self.scorer.granularity == "outcome"
        values = revision_feedback(node, self.threshold, outcome_only)
        solution = self.step_delimiter.join(node.steps)
        return self.revision_prompt.format(problem=problem, solution=solution, **values)

    def plan(self, problem: str, tree: SearchTree) -> Plan:
        """First solutions, then rounds of revising every chain still below the threshold."""
        (first,) = yield [Expand(parent=0, n=self.n, to_end=True, kind="solution")]
        chains = [i for i in first if tree[i].steps]
        if chains:
            yield [Score(nodes=tuple(chains), round=0)]
        revised = 0
        for round_ in range(1, self.max_revisions + 1):
            open_ = [c for c, best in enumerate(chains) if self._needs_revision(tree[best])]
            if not open_:
                break
            requests: list[Request] = [
                Expand(
                    parent=chains[c],
                    round=round_,
                    to_end=True,
                    kind="revision",
                    problem=self.revision_request(problem, tree[chains[c]]),
                )
                for c in open_
            ]
            results = yield requests
            revised += len(open_)
            new = tuple(i for ids in results for i in ids if tree[i].steps)
            if new:
                yield [Score(nodes=new, round=round_)]
            for chain, ids in zip(open_, results, strict=True):
                for candidate in ids:
                    if tree[candidate].steps and _better(tree[candidate], tree[chains[chain]]):
                        chains[chain] = candidate
                    else:
                        tree[candidate].pruned = True
        saved = len(chains) * self.max_revisions - revised
        finished = [i for i in chains if tree[i].finished]
        if finished:
            return Outcome(self.rank(tree, finished), calls_saved=saved)
        return Outcome(self.rank(tree, chains), "max_steps", calls_saved=saved)

    def _needs_revision(self, node: Node) -> bool:
        return node.score is not None and node.score < self.threshold


def _better(candidate: Node, incumbent: Node) -> bool:
    """A finished version beats an unfinished one; then the higher score wins (ties: keep)."""
    if candidate.score is None:
        return False
    if candidate.finished != incumbent.finished:
        return candidate.finished
    return incumbent.score is None or candidate.score > incumbent.score
