"""Particle filtering and particle Gibbs over a process reward model (Puri et al., 2025).

N particles (partial solutions) advance one step at a time. After every step the verifier scores
each new partial solution; every particle gets a weight, the softmax of its log-weight over the
set (the logit of its aggregated score, divided by ``weight_temperature``); and N particles are
drawn again from the set in proportion to those weights (``resampling``: systematic or
multinomial, seeded). A particle drawn k times is grown next round as k continuations of the
same node, ``Expand(parent, n=k)``, so the tree shows one node with k children rather than k
copies; a particle drawn no time is marked pruned. A particle that finished its solution stays
in the set with its final weight and is not advanced; it may be drawn again (its copies stay
finished) or lose its place. The filter ends when every particle has finished (the last of
``max_steps`` rounds generates to the end). The answer is selected among the final particles,
each counted as often as it was drawn.

Particle Gibbs (``iterations > 1``) runs the filter again, conditioned on a reference particle:
at the end of an iteration one final particle is drawn by weight, and in the next iteration it
holds one of the N places at every step (its prefix at that step, weighted by that prefix's
score) while the other N - 1 start afresh. Free particles may be drawn onto the reference's
prefix and then grow their own continuations of it. The answer comes from the last iteration.

Cost, with N = ``n``, S = ``max_steps`` and I = ``iterations``: each round makes one generation
request per distinct open particle (the first round one request for all N; a solver that fans
``n`` out makes one call per open particle, at most N), and one verifier call scoring the new
steps. At most S rounds per iteration: at most I * S * N generation calls and I * S verifier
calls. Resampling concentrates particles on few nodes, so most rounds send fewer requests than
N; the reference particle of particle Gibbs is never regenerated or rescored.

Differences from its_hub's ``ParticleGibbs``, on purpose: resampling draws from a
``random.Random`` seeded by the strategy's ``seed`` (its_hub uses the global generator);
systematic resampling is offered and is the default (lower variance than multinomial); the
reference particle is weighted at each step by the score of its own prefix at that step (its_hub
gives it its final weight throughout); particles cut by ``max_tokens`` or left unscored by the
verifier leave the set instead of carrying a made-up weight; and the configured
``aggregation`` makes the score the weight comes from (``"last"``, the PRM's score of the newest
step, by default).
"""

from __future__ import annotations

import bisect
import math
import random
from collections import Counter
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from sal_plugins.answers import warm_up_equivalence
from sal_plugins.errors import ConfigError
from sal_plugins.plan import Outcome, Plan, Request, Score
from sal_plugins.results import StopReason
from sal_plugins.strategies._reuse import Rides, expand, reusable, ride_along
from sal_plugins.strategies._selection import Selection, select
from sal_plugins.strategies.base import SearchStrategy
from sal_plugins.tree import SearchTree

__all__ = [
    "ParticleFilter",
    "Resampling",
    "Weighting",
    "log_weight",
    "multinomial_resample",
    "particle_weights",
    "resample",
    "systematic_resample",
]

Resampling = Literal["systematic", "multinomial"]
Weighting = Literal["logit", "score"]

_EPSILON = 1e-7  # scores are clipped to [eps, 1 - eps] before the logit, as its_hub does


def log_weight(score: float, weighting: Weighting, temperature: float) -> float:
    """A particle's log-weight from its aggregated score.

    ``"logit"`` (its_hub's and the paper's choice for a PRM's probability) is
    ``log(s / (1 - s)) / temperature`` with ``s`` clipped into ``(0, 1)``; ``"score"`` is
    ``score / temperature``, for verifiers whose scores are not probabilities.
    """
    if weighting == "logit":
        clipped = min(max(score, _EPSILON), 1.0 - _EPSILON)
        return math.log(clipped / (1.0 - clipped)) / temperature
    return score / temperature


def particle_weights(
    scores: Sequence[float], *, temperature: float = 1.0, weighting: Weighting = "logit"
) -> list[float]:
    """Normalised weights of a particle set: the softmax of the particles' log-weights.

    Args:
        scores: each particle's aggregated score (a particle drawn twice appears twice).
        temperature: divides the log-weights; above 1 flattens the weights, below 1 sharpens them.
        weighting: ``"logit"`` or ``"score"`` (see :func:`log_weight`).

    Returns:
        One weight per particle, summing to 1 (empty for no particles).
    """
    if not scores:
        return []
    logs = [log_weight(s, weighting, temperature) for s in scores]
    top = max(logs)
    exps = [math.exp(value - top) for value in logs]  # shifted by the maximum: no overflow
    total = sum(exps)
    return [value / total for value in exps]


def _pick(cumulative: list[float], position: float) -> int:
    # A position at or past the last bound (rounding) goes to the last particle.
    return min(bisect.bisect_right(cumulative, position), len(cumulative) - 1)


def systematic_resample(weights: Sequence[float], count: int, rng: random.Random) -> list[int]:
    """Draw ``count`` particle indices by systematic resampling, in ascending order.

    One uniform ``u`` from ``rng.random()`` places ``count`` evenly spaced pointers
    ``(u + i) / count`` over the cumulative weights; particle ``j`` is drawn once for every
    pointer in its interval, so it is drawn ``floor(count * w_j)`` or ``ceil(count * w_j)``
    times.
    """
    if count <= 0 or not weights:
        return []
    cumulative = list(accumulate(weights))
    total = cumulative[-1]
    offset = rng.random()
    return [_pick(cumulative, (offset + i) / count * total) for i in range(count)]


def multinomial_resample(weights: Sequence[float], count: int, rng: random.Random) -> list[int]:
    """Draw ``count`` particle indices independently by weight, one ``rng.random()`` each."""
    if count <= 0 or not weights:
        return []
    cumulative = list(accumulate(weights))
    total = cumulative[-1]
    return [_pick(cumulative, rng.random() * total) for _ in range(count)]


def resample(
    weights: Sequence[float], count: int, rng: random.Random, method: Resampling
) -> list[int]:
    """Draw ``count`` indices of ``weights`` with ``method`` (see the two functions above)."""
    if method == "systematic":
        return systematic_resample(weights, count, rng)
    return multinomial_resample(weights, count, rng)


@dataclass
class _Filtered:
    """What one run of the filter left: its final particles (with repeats) and how it ended.

    ``unverified``: the set emptied because nothing new was generated and scored.
    """

    particles: list[int]
    rounds: int
    unverified: bool


_Filter = Generator[list[Request], list[tuple[int, ...]], _Filtered]


class ParticleFilter(SearchStrategy):
    """Particle filtering (``iterations=1``) and particle Gibbs (``iterations > 1``) over a PRM.

    Args:
        n: particles. With ``iterations > 1`` one of them is the reference particle.
        max_steps: rounds per iteration; the last one generates to the end of the solution.
        iterations: runs of the filter; each after the first keeps a reference particle drawn
            from the previous run's final particles (particle Gibbs).
        weight_temperature: divides the log-weights before the softmax (1 by default, as in
            its_hub); higher keeps weaker particles alive longer, lower follows the verifier more
            greedily. Unrelated to the sampling ``temperature``.
        weighting: the log-weight of a score: ``"logit"`` (default; for scores that are
            probabilities, as a PRM's are) or ``"score"`` (the score itself, for reward models
            with unbounded scores).
        resampling: ``"systematic"`` (default: one uniform, evenly spaced pointers) or
            ``"multinomial"`` (independent draws, as its_hub does).
        selection: how the answer is picked among the final particles, each counted as often as
            it was drawn: ``"weighted"`` (default; the answer whose particles' scores sum
            highest), ``"majority"`` (the answer held by most particles) or ``"naive"`` (the
            highest-scored particle, its_hub's ``argmax``), as in
            :class:`~sal_plugins.strategies.best_of_n.BestOfN`.
        **kwargs: the shared settings of :class:`~sal_plugins.strategies.base.SearchStrategy`;
            a verifier is required, and ``seed`` seeds the resampling too.

    Example:
        >>> search = ParticleFilter(solver=solver, verifier=prm, n=16, max_steps=40, seed=0)
        >>> result = search.run("What is 23 + 48?")
    """

    name: ClassVar[str] = "particle_filter"

    n: int = Field(default=16, gt=0)
    max_steps: int = Field(default=40, gt=0)
    iterations: int = Field(default=1, gt=0)
    weight_temperature: float = Field(default=1.0, gt=0.0)
    weighting: Weighting = "logit"
    resampling: Resampling = "systematic"
    selection: Selection = "weighted"

    @model_validator(mode="after")
    def _check_shape(self) -> ParticleFilter:
        if self.verifier is None:
            raise ConfigError(
                "ParticleFilter needs a verifier to weight its particles: pass verifier=..."
            )
        if self.iterations > 1 and self.n < 2:
            raise ConfigError(
                f"ParticleFilter(n={self.n}, iterations={self.iterations}): particle Gibbs keeps "
                "one reference particle beside the free ones, so it needs n >= 2 (or iterations=1)"
            )
        bounds = self.scorer.score_range if self.scorer is not None else None
        if self.weighting == "logit" and bounds is not None and (bounds[0] < 0 or bounds[1] > 1):
            raise ConfigError(
                f"ParticleFilter(weighting='logit') takes the logit of scores in [0, 1], but the "
                f"verifier's scores range over [{bounds[0]}, {bounds[1]}]: pass weighting='score'"
            )
        return self

    def resampler(self) -> random.Random:
        """A fresh generator for the resampling draws, derived from ``seed`` (unseeded: random).

        Derived apart from the driver's per-request seeds so the two streams do not correlate.
        """
        return random.Random(None if self.seed is None else f"{self.name}:{self.seed}")

    def weights_of(self, tree: SearchTree, particles: Sequence[int]) -> list[float]:
        """The normalised weights of ``particles`` (node ids; repeats allowed), all scored."""
        scores = [tree[i].score for i in particles]
        if any(s is None for s in scores):
            raise ValueError("every particle must be scored before it is weighted")
        if self.weighting == "logit" and any(s is not None and not 0 <= s <= 1 for s in scores):
            tree.note("scores outside [0, 1] were clipped before the logit (use weighting='score')")
        return particle_weights(
            [s for s in scores if s is not None],
            temperature=self.weight_temperature,
            weighting=self.weighting,
        )

    def plan(self, problem: str, tree: SearchTree) -> Plan:
        """The filter, ``iterations`` times, as described in the module docstring."""
        return (yield from self._iterations(tree, Rides()))

    def reusable_samples(self, tree: SearchTree, samples: Sequence[int]) -> list[int]:
        """The samples scored step by step (a particle can grow along those)."""
        return reusable(tree, samples)

    def plan_reusing(self, problem: str, tree: SearchTree, samples: Sequence[int]) -> Plan:
        """Particle filtering with ``samples`` riding along: their steps are free particles.

        As for beam search (:meth:`~sal_plugins.strategies.beam_search.BeamSearch.plan_reusing`):
        each reusable sample is split into scored step nodes; its first step is one of the first
        iteration's ``n`` initial particles, and a particle on its chain, drawn ``c`` times, takes
        the sample's next step as one of its ``c`` continuations. Later iterations start afresh.
        """
        riding = self.reusable_samples(tree, samples)
        return (yield from self._iterations(tree, ride_along(tree, riding, self.score_of)))

    def _iterations(self, tree: SearchTree, rides: Rides) -> Plan:
        if self.selection != "naive":
            warm_up_equivalence()  # math-verify loads while the model generates
        rng = self.resampler()
        reference: tuple[int, ...] = ()
        round_ = 0
        filtered = _Filtered([], 0, False)
        for iteration in range(self.iterations):
            filtered = yield from self._filter(tree, rng, reference, round_, rides)
            round_ += filtered.rounds
            if not filtered.particles:
                break
            if iteration < self.iterations - 1:
                reference = self._next_reference(tree, rng, filtered.particles)
        final = filtered.particles
        saved = len(rides.given)
        if final:
            return Outcome(self._rank_particles(tree, final), samples_saved=saved)
        stop: StopReason = "error" if filtered.unverified else "max_steps"
        return Outcome(self.best_so_far(tree), stop, samples_saved=saved)

    def _filter(
        self,
        tree: SearchTree,
        rng: random.Random,
        reference: tuple[int, ...],
        first_round: int,
        rides: Rides,
    ) -> _Filter:
        """One run of the filter; with a ``reference`` path, conditioned on it."""
        free = self.n - (1 if reference else 0)
        particles = [0] * free  # node ids; the root: not started yet
        kept = set(reference)
        rounds = 0
        for step in range(self.max_steps):
            open_ = Counter(p for p in particles if not tree[p].finished)
            if not open_:
                break
            round_ = first_round + step
            rounds += 1
            last = step == self.max_steps - 1
            results = yield from expand(rides, list(open_.items()), round_, to_end=last)
            new = [i for ids in results for i in ids]
            scorable = tuple(i for i in new if tree[i].steps and i not in rides.given)
            if scorable:
                yield [Score(nodes=scorable, round=round_)]
            # Unscored particles have no weight, and truncated ones can neither go on nor answer.
            grown = [i for i in new if tree[i].score is not None and not tree[i].truncated]
            for dropped in set(new) - set(grown):
                tree[dropped].pruned = True
            finished = [p for p in particles if tree[p].finished]
            pool = finished + grown
            if reference:
                pool.append(reference[min(step, len(reference) - 1)])
            if not pool:  # failures left no particle: "error", unless all ran out of tokens
                unscored = all(tree[i].score is None for i in new)
                return _Filtered([], rounds, unverified=unscored)
            drawn = sorted(resample(self.weights_of(tree, pool), free, rng, self.resampling))
            particles = [pool[j] for j in drawn]
            for lost in set(pool) - set(particles) - kept:
                tree[lost].pruned = True
        final = [p for p in particles if tree[p].finished]
        if reference:
            final.append(reference[-1])
        return _Filtered(final, rounds, unverified=False)

    def _next_reference(
        self, tree: SearchTree, rng: random.Random, particles: list[int]
    ) -> tuple[int, ...]:
        """Draw the next iteration's reference by weight; the other final particles are pruned."""
        chosen = particles[multinomial_resample(self.weights_of(tree, particles), 1, rng)[0]]
        path = tuple(node.id for node in tree.path(chosen))
        for other in set(particles) - set(path):
            tree[other].pruned = True
        return path

    def _rank_particles(self, tree: SearchTree, particles: list[int]) -> list[int]:
        """Distinct final particles, best first, each weighing as often as it was drawn."""
        by_score = SearchStrategy.rank(self, tree, particles)
        return list(dict.fromkeys(select(tree, by_score, self.selection)))

    def rank(self, tree: SearchTree, node_ids: Sequence[int]) -> list[int]:
        """Order candidates by the configured selection, best first."""
        return self._rank_particles(tree, list(node_ids))
