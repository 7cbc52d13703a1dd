"""Self-revision: revision prompts, keeping the best version, chains in shared batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from strategy_helpers import run_recording

from sal_plugins import ConfigError, SelfRevision
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.strategies.base import Expand, Score
from sal_plugins.strategies.self_revision import revision_feedback
from sal_plugins.tree import Node
from sal_plugins.verifiers import Judgement, ScriptedVerifier, Trajectory

PROBLEM = "What is (2 + 2) * 3?"
INITIAL = "2 + 2 = 4\n\n4 * 3 = 13\n\nThe answer is $\\boxed{13}$."
BETTER = "2 + 2 = 4\n\n4 * 3 = 12\n\nThe answer is $\\boxed{12}$."
WORSE = "2 + 2 = 5\n\n5 * 3 = 15\n\nThe answer is $\\boxed{15}$."
LOW = {"= 13": 0.2, "{13}": 0.3, "= 5": 0.05, "= 15": 0.05, "{15}": 0.05}


def step_score(problem: str, step: str) -> float:
    return next((v for k, v in LOW.items() if k in step), 0.9)


def prm(granularity: str = "step") -> ScriptedVerifier:
    return ScriptedVerifier(step_score, granularity=granularity, score_range=(0.0, 1.0))  # type: ignore[arg-type]


@dataclass
class CritiqueVerifier:
    """Scores like ``prm()`` and adds a critique to every judgement."""

    critique: str = "4 * 3 is 12, not 13."
    granularity: str = "step"
    score_range: tuple[float, float] = (0.0, 1.0)
    seen: list[Trajectory] = field(default_factory=list)

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        self.seen += trajectories
        return [
            Judgement(tuple(step_score(problem, s) for s in t.steps), critique=self.critique)
            for t in trajectories
        ]


def revision(**kw: object) -> SelfRevision:
    settings: dict[str, object] = {
        "solver": ScriptedSolver([INITIAL], revisions=[BETTER]),
        "verifier": prm(),
        "n": 1,
        "max_revisions": 2,
        "threshold": 0.5,
        "seed": 0,
        **kw,
    }
    return SelfRevision(**settings)  # type: ignore[arg-type]


async def test_a_low_scored_solution_is_revised_and_the_revision_kept() -> None:
    search = revision()
    result = await search.arun(PROBLEM)
    assert result.answer == "12"
    assert result.stop_reason == "finished"
    tree = result.tree
    best = tree[result.completions[0].node_id]
    assert best.kind == "revision" and best.steps == tuple(BETTER.split("\n\n"))
    first = tree[best.parent or 0]
    assert first.kind == "solution" and first.score == 0.3
    assert first.selected and best.selected  # the selected path runs through the revision
    # 0.9 reached after one revision: the second was not needed.
    assert result.usage.generation_calls == 2
    assert result.usage.calls_saved == 1


async def test_the_revision_prompt_shows_problem_solution_and_first_weak_step() -> None:
    search = revision()
    await search.arun(PROBLEM)
    solver = search.solver
    assert isinstance(solver, ScriptedSolver)
    prompt = solver.requests[1].problem
    assert prompt.startswith(PROBLEM)
    assert INITIAL in prompt
    assert "step 2 of 3" in prompt
    assert "4 * 3 = 13" in prompt.split("step 2 of 3")[1]
    assert "critique" not in prompt  # the verifier gave none
    assert solver.requests[1].prefix_steps == ()


async def test_the_verifier_critique_is_shown_when_there_is_one() -> None:
    verifier = CritiqueVerifier()
    search = revision(verifier=verifier)
    await search.arun(PROBLEM)
    assert isinstance(search.solver, ScriptedSolver)
    assert "The verifier's critique: 4 * 3 is 12, not 13." in search.solver.requests[1].problem


async def test_outcome_only_verifiers_say_the_solution_as_a_whole_scored_low() -> None:
    search = revision(verifier=prm("outcome"))
    result = await search.arun(PROBLEM)
    assert isinstance(search.solver, ScriptedSolver)
    prompt = search.solver.requests[1].problem
    assert "as a whole 0.30" in prompt and "step 2" not in prompt
    assert result.answer == "12"


async def test_a_worse_revision_never_replaces_the_best_version() -> None:
    search = revision(solver=ScriptedSolver([INITIAL], revisions=[WORSE]))
    result = await search.arun(PROBLEM)
    assert result.answer == "13"
    tree = result.tree
    revisions = [n for n in tree.nodes if n.kind == "revision"]
    assert len(revisions) == 2 and all(n.pruned for n in revisions)
    # Both revisions start again from the best version, the first solution.
    assert {n.parent for n in revisions} == {result.completions[0].node_id}
    assert result.completions[0].score == 0.3


async def test_chains_share_batches_and_stop_at_the_threshold() -> None:
    solver = ScriptedSolver([INITIAL, BETTER, INITIAL], revisions=[BETTER])
    search = revision(solver=solver, n=3, max_revisions=3)
    result, batches, _ = await run_recording(search, PROBLEM)
    kinds = [[type(r).__name__ for r in batch] for batch in batches]
    # First solutions (one request for all chains), one verifier call; then one revision
    # request per chain still below the threshold, in one batch, and one verifier call.
    assert kinds == [["Expand"], ["Score"], ["Expand", "Expand"], ["Score"]]
    first, _, revise, scoring = batches
    assert isinstance(first[0], Expand) and first[0].n == 3
    assert all(isinstance(r, Expand) and r.kind == "revision" and r.problem for r in revise)
    assert isinstance(scoring[0], Score) and len(scoring[0].nodes) == 2
    assert [c.answer for c in result.completions] == ["12", "12", "12"]
    assert result.usage.calls_saved == 3 * 3 - 2


async def test_a_custom_template_is_used() -> None:
    template = (
        "Problem: {problem}\n<solution>{solution}</solution>\nFix step {step_number}: {step_text}"
    )
    search = revision(revision_prompt=template)
    await search.arun(PROBLEM)
    assert isinstance(search.solver, ScriptedSolver)
    assert search.solver.requests[1].problem.endswith("Fix step 2: 4 * 3 = 13")


async def test_no_revisions_when_none_are_allowed_or_needed() -> None:
    result = await revision(max_revisions=0).arun(PROBLEM)
    assert result.usage.generation_calls == 1 and result.answer == "13"
    good = await revision(solver=ScriptedSolver([BETTER])).arun(PROBLEM)
    assert good.usage.generation_calls == 1 and good.usage.calls_saved == 2


async def test_an_unscored_version_ends_its_chain() -> None:
    verifier = ScriptedVerifier(step_score, fail_when=lambda steps: steps[1].endswith("13"))
    result = await revision(verifier=verifier).arun(PROBLEM)
    assert result.usage.generation_calls == 1
    assert result.failures and result.failures[0].stage == "score"
    assert result.answer == "13"


def test_weak_step_is_the_first_below_threshold_else_the_lowest() -> None:
    node = Node(id=1, parent=0, steps=("a", "b", "c"), step_scores=(0.9, 0.4, 0.1), score=0.1)
    assert revision_feedback(node, 0.5, outcome_only=False)["step_number"] == 2
    node = Node(id=1, parent=0, steps=("a", "b"), step_scores=(0.7, 0.6), score=0.42)
    values = revision_feedback(node, 0.5, outcome_only=False)  # prod below, no step below
    assert values["step_number"] == 2 and values["step_text"] == "b"
    assert revision_feedback(node, 0.5, outcome_only=True)["step_number"] == 0


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{solution}", "{problem}"),
        ("{problem}", "{solution}"),
        ("{problem} {solution} {mood}", "unknown placeholder {mood}"),
        ("{problem} {solution} {}", "unknown placeholder"),
        ("{problem} {solution} {", "Single '{'"),
        ("{problem} {solution} {score:q}", "format code"),
    ],
)
def test_bad_templates_raise_config_error(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match="revision_prompt") as caught:
        revision(revision_prompt=template)
    assert message in str(caught.value)


def test_needs_a_verifier() -> None:
    with pytest.raises(ConfigError, match="needs a verifier"):
        revision(verifier=None)
