"""Particle filtering and particle Gibbs: weights, resampling, the particle set and the tree."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Sequence

import pytest
from strategy_helpers import Respond, drive_plan, run_recording

from sal_plugins import BestOfN, Budget, ConfigError, ParticleFilter, SearchTree
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.solvers.scripted import fail_calls
from sal_plugins.strategies import STRATEGIES, build_strategy
from sal_plugins.strategies.base import Expand, Request, Score
from sal_plugins.strategies.particle_filter import (
    multinomial_resample,
    particle_weights,
    systematic_resample,
)
from sal_plugins.tree import Node
from sal_plugins.verifiers import ScriptedVerifier

PROBLEM = "What is 7 + 3 + 4 + 2 + 5?"


class FixedRandom(random.Random):
    """A generator whose ``random()`` returns scripted values, for hand-computed draws."""

    def __init__(self, values: Sequence[float]) -> None:
        super().__init__(0)
        self._values = iter(values)

    def random(self) -> float:
        return next(self._values)


def flat_verifier(score: float = 0.9) -> ScriptedVerifier:
    return ScriptedVerifier(lambda problem, step: score, score_range=(0.0, 1.0))


def search(**settings: object) -> ParticleFilter:
    defaults: dict[str, object] = {
        "solver": ScriptedSolver(["a\n\nb\n\nThe answer is $\\boxed{1}$."]),
        "verifier": flat_verifier(),
        "n": 4,
        "max_steps": 4,
        "seed": 0,
    }
    return ParticleFilter(**{**defaults, **settings})  # type: ignore[arg-type]


def expands(batch: list[Request]) -> list[Expand]:
    return [r for r in batch if isinstance(r, Expand)]


def open_steps(label: str) -> Respond:
    """A ``respond`` for ``drive_plan``: every continuation is one open step named by position."""

    def respond(parent: Node, request: Expand, position: int) -> list[tuple[str, str]]:
        status = "end" if request.to_end else "open"
        return [(f"{label}{request.round}.{position}.{k}", status) for k in range(request.n)]

    return respond


# --- weights --------------------------------------------------------------------------------


def test_weights_are_the_softmax_of_score_logits() -> None:
    # logit(0.9) = ln 9, logit(0.5) = 0, logit(0.1) = -ln 9: weights in the ratio 9 : 1 : 1/9.
    total = 9 + 1 + 1 / 9
    assert particle_weights([0.9, 0.5, 0.1]) == pytest.approx([9 / total, 1 / total, 1 / 9 / total])


def test_weight_temperature_flattens_and_sharpens() -> None:
    # At temperature 2 the log-weights halve: the ratio becomes 3 : 1 : 1/3.
    total = 3 + 1 + 1 / 3
    assert particle_weights([0.9, 0.5, 0.1], temperature=2.0) == pytest.approx(
        [3 / total, 1 / total, 1 / 3 / total]
    )
    sharp = particle_weights([0.9, 0.5, 0.1], temperature=0.1)
    assert sharp[0] > 0.99999


def test_score_weighting_and_extreme_scores() -> None:
    e2 = math.exp(2)
    weights = particle_weights([1.0, 0.0], temperature=0.5, weighting="score")
    assert weights == pytest.approx([e2 / (e2 + 1), 1 / (e2 + 1)])
    # Scores of exactly 0 and 1 are clipped before the logit, never a division by zero.
    clipped = particle_weights([1.0, 0.0, 1.0])
    assert clipped[0] == pytest.approx(0.5) and 0 < clipped[1] < 1e-12
    assert particle_weights([]) == []


def test_a_repeated_particle_weighs_once_per_copy() -> None:
    # logit odds 7/3, 7/3 and 1/4: a total of 59/12.
    assert particle_weights([0.7, 0.7, 0.2]) == pytest.approx([28 / 59, 28 / 59, 3 / 59])


# --- resampling -----------------------------------------------------------------------------


def test_systematic_resampling_by_hand() -> None:
    # Cumulative weights 0.5, 0.8, 1.0; u = 0.5 puts pointers at 0.125, 0.375, 0.625, 0.875.
    assert systematic_resample([0.5, 0.3, 0.2], 4, FixedRandom([0.5])) == [0, 0, 1, 2]
    # u = 0.9: pointers at 0.18, 0.38, 0.58, 0.78 (the last particle is missed).
    assert systematic_resample([0.5, 0.3, 0.2], 5, FixedRandom([0.9])) == [0, 0, 1, 1, 2]
    # Unnormalised weights mean the same.
    assert systematic_resample([5.0, 3.0, 2.0], 4, FixedRandom([0.5])) == [0, 0, 1, 2]


def test_multinomial_resampling_by_hand() -> None:
    draws = FixedRandom([0.1, 0.6, 0.85, 0.45, 0.79])
    assert multinomial_resample([0.5, 0.3, 0.2], 5, draws) == [0, 1, 2, 0, 1]


def test_systematic_draws_each_particle_floor_or_ceil_of_its_share() -> None:
    weights = [0.37, 0.05, 0.21, 0.3, 0.07]
    for seed in range(200):
        counts = Counter(systematic_resample(weights, 8, random.Random(seed)))
        for index, weight in enumerate(weights):
            assert counts[index] in (math.floor(8 * weight), math.ceil(8 * weight))


def test_multinomial_frequencies_follow_the_weights() -> None:
    weights = [0.5, 0.3, 0.2]
    counts = Counter(multinomial_resample(weights, 20_000, random.Random(3)))
    for index, weight in enumerate(weights):
        assert counts[index] / 20_000 == pytest.approx(weight, abs=0.015)


# --- the particle set and the tree ----------------------------------------------------------


def test_a_particle_drawn_k_times_grows_k_continuations_of_one_node() -> None:
    # Of four first steps two are good (0.9) and two bad (0.01): systematic resampling gives each
    # good one exactly two of the four places, whatever the uniform.
    def score(steps: tuple[str, ...]) -> float:
        return 0.01 if steps[0].endswith((".1", ".3")) else 0.9

    tree, batches, outcome = drive_plan(search(max_steps=2), PROBLEM, open_steps("s"), score)
    first = tree.children(0)
    good, bad = [first[0], first[2]], [first[1], first[3]]
    assert expands(batches[0]) == [Expand(parent=0, n=4, round=0)]
    assert expands(batches[2]) == [
        Expand(parent=good[0].id, n=2, round=1, to_end=True),
        Expand(parent=good[1].id, n=2, round=1, to_end=True),
    ]
    assert all(n.pruned for n in bad) and not any(n.pruned for n in good)
    assert all(not tree.children(n.id) for n in bad)
    assert outcome.stop_reason == "finished"
    assert {tree[i].parent for i in outcome.ranked} == {n.id for n in good}


def test_finished_particles_stay_and_are_not_advanced() -> None:
    def respond(parent: Node, request: Expand, position: int) -> list[tuple[str, str]]:
        if request.parent == 0:  # one solution ends at once, the other goes on
            return [("done: $\\boxed{3}$", "end"), ("open", "open")][: request.n]
        return [(f"more {request.round}", "end" if request.to_end else "open")] * request.n

    strategy = search(n=2, max_steps=3, selection="naive")
    tree, batches, outcome = drive_plan(strategy, PROBLEM, respond, lambda steps: 0.9)
    done = tree.children(0)[0]
    assert done.finished
    grown = [r for batch in batches for r in expands(batch)]
    assert all(r.parent != done.id for r in grown)  # never advanced
    # It kept its place at equal weight: one of the two particles every round, and a final one.
    assert sum(r.n for r in grown[1:]) == 2  # the open particle: one continuation per round
    assert done.id in outcome.ranked and not done.pruned


def test_a_finished_particle_can_lose_its_place() -> None:
    def respond(parent: Node, request: Expand, position: int) -> list[tuple[str, str]]:
        if request.parent == 0:
            return [("weak end", "end"), ("strong", "open")][: request.n]
        return [("strong end $\\boxed{9}$", "end" if request.to_end else "open")] * request.n

    strategy = search(n=2, max_steps=3, resampling="systematic")
    tree, _, outcome = drive_plan(
        strategy, PROBLEM, respond, lambda steps: 0.001 if steps[-1] == "weak end" else 0.999
    )
    weak = tree.children(0)[0]
    assert weak.pruned and weak.id not in outcome.ranked
    assert all(tree.answer_of(i) == "9" for i in outcome.ranked)


def test_final_selection_counts_each_copy_of_a_particle() -> None:
    tree = SearchTree(PROBLEM)
    often = tree.add(0, text="$\\boxed{1}$", steps=("$\\boxed{1}$",), finished=True, score=0.6)
    once = tree.add(0, text="$\\boxed{2}$", steps=("$\\boxed{2}$",), finished=True, score=0.9)
    particles = [often.id, often.id, often.id, once.id]
    assert search(selection="weighted").rank(tree, particles) == [often.id, once.id]
    assert search(selection="majority").rank(tree, particles) == [often.id, once.id]
    assert search(selection="naive").rank(tree, particles) == [once.id, often.id]
    assert search(selection="weighted").rank(tree, [often.id, once.id]) == [once.id, often.id]


# --- particle Gibbs -------------------------------------------------------------------------


def test_gibbs_keeps_the_reference_particle_at_every_step() -> None:
    # Steps of the first iteration score high, later ones low: every free particle of the second
    # iteration is drawn onto the reference's prefix, which is in the set at each step.
    def score(steps: tuple[str, ...]) -> float:
        return 0.99 if steps[-1].startswith(("r0.", "r1.")) else 0.01

    strategy = search(n=3, max_steps=2, iterations=2)
    tree, batches, outcome = drive_plan(strategy, PROBLEM, open_steps("r"), score)
    second = [expands(b) for b in batches if expands(b) and expands(b)[0].round >= 2]
    assert second[0] == [Expand(parent=0, n=2, round=2)]  # n - 1 free particles start afresh
    ref_leaf = next(i for i in outcome.ranked if tree[i].round == 1)
    reference = [n.id for n in tree.path(ref_leaf)]
    assert second[1] == [Expand(parent=reference[0], n=2, round=3, to_end=True)]
    assert not any(tree[i].pruned for i in reference)
    assert outcome.stop_reason == "finished"


def test_gibbs_reference_survives_every_iteration() -> None:
    # Each iteration's steps score far above the last one's, so no free particle ever picks the
    # reference: only the reference rule keeps an older solution among the final particles.
    def score(steps: tuple[str, ...]) -> float:
        iteration = int(steps[-1][1:].split(".")[0]) // 2
        return (0.01, 0.5, 0.99)[iteration]

    strategy = search(n=3, max_steps=2, iterations=3)
    tree, batches, outcome = drive_plan(strategy, PROBLEM, open_steps("r"), score)
    starts = [r for batch in batches for r in expands(batch) if r.parent == 0]
    assert [(r.n, r.round) for r in starts] == [(3, 0), (2, 2), (2, 4)]
    old = [i for i in outcome.ranked if tree[i].round < 4]
    assert len(old) == 1  # the reference drawn at the end of the second iteration
    assert tree[old[0]].round == 3 and not any(n.pruned for n in tree.path(old[0]))
    assert len(outcome.ranked) == 3  # two free particles and the reference


async def test_gibbs_seeded_runs_repeat_and_stay_consistent() -> None:
    solutions = [f"{a}\n\n{b}\n\nThe answer is $\\boxed{{{a}{b}}}$." for a in "xyz" for b in "pq"]
    scores = {"x": 0.8, "y": 0.5, "z": 0.2, "p": 0.7, "q": 0.4}

    def run() -> ParticleFilter:
        verifier = ScriptedVerifier(
            lambda problem, step: scores.get(step[:1], 0.6), score_range=(0.0, 1.0)
        )
        return search(solver=ScriptedSolver(solutions), verifier=verifier, n=4, iterations=3)

    first = await run().arun(PROBLEM)
    second = await run().arun(PROBLEM)
    assert first.tree.to_json() == second.tree.to_json()
    assert first.stop_reason == "finished" and first.answer is not None
    assert len({c.node_id for c in first.completions}) == len(first.completions)


# --- determinism, budgets, faults, stop reasons ---------------------------------------------


def _spread_search(seed: int, resampling: str = "multinomial") -> ParticleFilter:
    solutions = [f"{a}\n\n{b}\n\nThe answer is $\\boxed{{{a}{b}}}$." for a in "uvwx" for b in "01"]
    verifier = ScriptedVerifier(
        lambda problem, step: 0.3 + 0.1 * (sum(map(ord, step)) % 5), score_range=(0.0, 1.0)
    )
    return search(
        solver=ScriptedSolver(solutions),
        verifier=verifier,
        n=6,
        seed=seed,
        resampling=resampling,
    )


@pytest.mark.parametrize("resampling", ["systematic", "multinomial"])
async def test_seed_makes_the_search_repeat_and_other_seeds_differ(resampling: str) -> None:
    first = await _spread_search(5, resampling).arun(PROBLEM)
    again = await _spread_search(5, resampling).arun(PROBLEM)
    assert first.tree.to_json() == again.tree.to_json()
    others = {(await _spread_search(s, resampling).arun(PROBLEM)).tree.to_json() for s in range(6)}
    assert len(others) > 1


def test_resampling_is_seeded_apart_from_global_state() -> None:
    strategy = _spread_search(11)
    random.seed(1)
    draws = [strategy.resampler().random() for _ in range(3)]
    random.seed(2)
    assert [strategy.resampler().random() for _ in range(3)] == draws


@pytest.mark.parametrize("honours_n", [True, False])
async def test_call_budget_caps_particle_gibbs(honours_n: bool) -> None:
    def strategy(budget: Budget | None) -> ParticleFilter:
        solver = ScriptedSolver(
            ["a\n\nb\n\nc\n\nThe answer is $\\boxed{1}$.", "a\n\nd\n\nThe answer is $\\boxed{2}$."],
            honours_n=honours_n,
        )
        return search(solver=solver, n=4, iterations=3, budget=budget)

    full = await strategy(None).arun(PROBLEM)
    cap = full.usage.calls // 2
    capped = await strategy(Budget(max_calls=cap)).arun(PROBLEM)
    assert capped.usage.calls <= cap
    assert capped.stop_reason == "budget"
    assert capped.completions


async def test_a_failed_request_loses_its_particles_and_resampling_refills_the_set() -> None:
    solutions = [f"{a}\n\n{b}\n\nc\n\nThe answer is $\\boxed{{{a}}}$." for a in "xy" for b in "pq"]
    solver = ScriptedSolver(solutions, honours_n=True, fail=fail_calls(2))
    result, batches, _ = await run_recording(search(solver=solver, n=4), PROBLEM)
    assert [f.stage for f in result.failures] == ["generate"]
    rounds = [expands(b) for b in batches if expands(b)]
    asked = [sum(r.n for r in batch) for batch in rounds]
    assert asked[0] == 4 and asked[1] == 4  # the second round's first request fails...
    assert asked[2] == 4  # ...and the next round has four particles again
    assert result.stop_reason == "finished" and result.answer in ("x", "y")


async def test_a_verifier_that_always_fails_ends_with_error() -> None:
    verifier = ScriptedVerifier(lambda problem, step: 0.5, fail_when=lambda steps: True)
    result = await search(verifier=verifier).arun(PROBLEM)
    assert result.stop_reason == "error"
    assert result.verification == "unverified"
    assert result.completions and all(c.score is None for c in result.completions)


def test_particles_cut_by_max_tokens_leave_and_the_search_says_max_steps() -> None:
    def respond(parent: Node, request: Expand, position: int) -> list[tuple[str, str]]:
        status = "length" if request.to_end else "open"
        return [(f"s{request.round}.{k}", status) for k in range(request.n)]

    tree, batches, outcome = drive_plan(search(max_steps=2), PROBLEM, respond, lambda s: 0.8)
    assert outcome.stop_reason == "max_steps"
    truncated = [n for n in tree.nodes if n.stop_kind == "length"]
    assert truncated and all(n.pruned for n in truncated)
    assert sum(isinstance(r, Score) for b in batches for r in b) == 2


async def test_stop_reason_finished_and_usage() -> None:
    setup = search()
    result = await setup.arun(PROBLEM)
    assert result.stop_reason == "finished" and result.answer == "1"
    assert result.strategy == "particle_filter"
    assert result.usage.verifier_calls == 3  # one per round of the three-step solution


# --- configuration --------------------------------------------------------------------------


def test_configuration_errors_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="needs a verifier"):
        search(verifier=None)
    with pytest.raises(ConfigError, match="n >= 2"):
        search(n=1, iterations=2)
    wide = ScriptedVerifier(lambda problem, step: 3.0, score_range=(-5.0, 5.0))
    with pytest.raises(ConfigError, match="weighting='score'"):
        search(verifier=wide)
    assert search(verifier=wide, weighting="score").weighting == "score"
    with pytest.raises(ConfigError, match="resampling"):
        search(resampling="residual")


def test_registered_and_built_by_name() -> None:
    assert STRATEGIES["particle_filter"] is ParticleFilter
    built = build_strategy(
        "particle-filter", solver=ScriptedSolver(["x"]), verifier=flat_verifier(), n=8
    )
    assert isinstance(built, ParticleFilter) and built.n == 8


# --- a noisy but informative verifier -------------------------------------------------------

ADDENDS = (3, 4, 2, 5)
START = 7
TRUE_VALUES = set(itertools.accumulate(ADDENDS, initial=START))
TRUTH = str(START + sum(ADDENDS))


def slipping_solutions() -> list[str]:
    """Every way the chain of additions can go, each step slipping by one a quarter of the time.

    A slip carries through: later steps add to the wrong value. Each step's right version is
    listed three times, its slip once, so the solver picks a slip with probability 1/4.
    """
    out: list[str] = []

    def grow(value: int, position: int, steps: list[str]) -> None:
        if position == len(ADDENDS):
            out.append("\n\n".join([*steps, f"The answer is $\\boxed{{{value}}}$."]))
            return
        addend = ADDENDS[position]
        for slip, copies in ((0, 3), (1, 1)):
            new = value + addend + slip
            for _ in range(copies):
                grow(new, position + 1, [*steps, f"{value} + {addend} = {new}"])

    grow(START, 0, [])
    random.Random(0).shuffle(out)  # consecutive seeds must not pick neighbouring scripts
    return out


def noisy_prm(problem: str, step: str) -> float:
    """Higher for a step that reaches a value on the right path, with fixed noise of +-0.3."""
    noise = random.Random(step).uniform(-0.3, 0.3)
    value = int(step.rstrip("$.}").split("{")[-1].split("=")[-1])
    return min(1.0, max(0.0, (0.6 if value in TRUE_VALUES else 0.4) + noise))


async def test_a_noisy_informative_verifier_beats_the_first_sample() -> None:
    solutions = slipping_solutions()
    filtered = first = 0
    for seed in range(30):
        verifier = ScriptedVerifier(noisy_prm, score_range=(0.0, 1.0))
        result = await ParticleFilter(
            solver=ScriptedSolver(solutions), verifier=verifier, n=8, max_steps=8, seed=seed
        ).arun(PROBLEM)
        sample = await BestOfN(solver=ScriptedSolver(solutions), n=1, seed=seed).arun(PROBLEM)
        filtered += result.answer == TRUTH
        first += sample.answer == TRUTH
    # A single sample is right (3/4)^4 = 32% of the time; the filter should be right far more.
    assert first <= 18
    assert filtered >= first + 8
