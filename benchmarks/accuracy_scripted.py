"""Accuracy vs. generated tokens on a scripted step-slip task, every strategy in one run.

No model and no server: a latency-free in-process solver and a noisy process reward model, both
deterministic functions of what they are asked, so the figures measure the search strategies
and nothing else.

The task. Each problem is a chain of ``--steps`` additions ("Start at 7. Add 3, then 4, ...").
The solver writes one addition per step; each step slips with probability ``--slip`` (the sum
comes out 1 to 9 too high) and a slip carries through: later steps add to the wrong value, so one
slip anywhere makes the final answer wrong. A single sample is right with probability
``(1 - slip) ** steps`` (about 3% at the defaults: long enough that best-of-N rarely draws a
right solution). At temperature 0 the solver is deterministic per prefix (greedy), at the same
slip rate.

The verifier. A step whose running value is on the right path scores about 0.65, one off it
about 0.4, each plus Gaussian noise (sd ``--noise``) fixed per judged step text: informative on
average, wrong often enough on any one step that a single comparison misleads.

Arms: greedy, best-of-N at 4/16/64 (weighted), beam search at 4/16 (beam width 4, or 2 at N=4),
DVTS at 16 (beam width 4, no look-ahead), particle filtering at 4/16 (and at 16 with
``weight_temperature=0.25``, sharper weights), and AB-MCTS (when
``sal_plugins.strategies.ab_mcts`` and ``treequest`` are installed) at a comparable number of
step generations. Each arm reports accuracy with a Wilson 95% interval, mean generated tokens and
calls per problem.

Run: ``python benchmarks/accuracy_scripted.py`` (about a minute on two cores); ``--problems``
trades time for tighter intervals. Prints the table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sal_plugins import DVTS, BeamSearch, BestOfN, ParticleFilter, SearchStrategy
from sal_plugins.eval.report import wilson_interval
from sal_plugins.solvers.base import (
    Generation,
    GenerationRequest,
    SolverCapabilities,
    SolverResponse,
    StopKind,
    seeds_for,
)
from sal_plugins.verifiers import Judgement, Trajectory

_NUMBERS = re.compile(r"-?\d+")
_PHRASINGS = (
    "{value} + {addend} = {total}",
    "Adding {addend} to {value} gives {total}",
    "{value} plus {addend} makes {total}",
    "Then {value} + {addend}, which is {total}",
)
"""How a step may be worded (each ends with its running total): right solutions differ in text,
as a model's do, so the verifier's noise is drawn afresh for each of them."""


def make_problems(count: int, steps: int, seed: int) -> list[tuple[str, int]]:
    """``count`` chains of ``steps`` additions and their answers, reproducible from ``seed``."""
    rng = random.Random(seed)
    problems = []
    for _ in range(count):
        start = rng.randint(2, 30)
        addends = [rng.randint(2, 19) for _ in range(steps)]
        text = f"Start at {start}. Add {', then '.join(map(str, addends))}. What is the result?"
        problems.append((text, start + sum(addends)))
    return problems


def _chain(problem: str) -> tuple[int, list[int]]:
    start, *addends = (int(x) for x in _NUMBERS.findall(problem))
    return start, addends


def _last_number(step: str) -> int | None:
    numbers = _NUMBERS.findall(step)
    return int(numbers[-1]) if numbers else None


@dataclass
class SlipSolver:
    """Writes the chain one addition per step; each step slips with probability ``slip``.

    A continuation's randomness comes from its seed and its prefix (at temperature 0 from the
    prefix alone), so a seeded search is reproducible and a retried request gets the same text.
    """

    slip: float
    capabilities: SolverCapabilities = field(
        default_factory=lambda: SolverCapabilities(honours_n=True)
    )

    def _step(self, problem: str, prefix: tuple[str, ...], rng: random.Random) -> tuple[str, bool]:
        start, addends = _chain(problem)
        done = len(prefix)
        value = (_last_number(prefix[-1]) or 0) if prefix else start
        if done >= len(addends):
            return f"The answer is $\\boxed{{{value}}}$.", True
        addend = addends[done]
        slipped = rng.random() < self.slip
        total = value + addend + (rng.randint(1, 9) if slipped else 0)
        wording = rng.choice(_PHRASINGS)
        return wording.format(value=value, addend=addend, total=total), False

    def _continue(self, request: GenerationRequest, seed: int | None) -> Generation:
        prefix = request.prefix_steps
        written: list[str] = []
        while True:
            key = seed if request.temperature > 0 else "greedy"
            rng = random.Random(f"{key}|{request.problem}|{'/'.join(prefix)}")
            text, ends = self._step(request.problem, prefix, rng)
            written.append(text)
            prefix = (*prefix, text)
            if ends or request.stop:
                kind: StopKind = "end" if ends else "delimiter"
                return Generation(text=request.step_delimiter.join(written), stop_kind=kind)

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        """``request.n`` continuations: one step each, or the rest of the solution without stops."""
        generations = [self._continue(request, seed) for seed in seeds_for(request)]
        prompt = len(request.problem.split()) + sum(len(s.split()) for s in request.prefix_steps)
        return SolverResponse(
            generations=generations,
            prompt_tokens=prompt,
            completion_tokens=sum(len(g.text.split()) for g in generations),
            requests=1,
        )


@dataclass
class NoisyPRM:
    """A process reward model: on the right path about 0.65 a step, off it about 0.4, plus noise.

    The noise (Gaussian, sd ``noise``) is a fixed function of the problem and the trajectory up
    to the judged step, so a trajectory always gets the same scores, as from a real PRM.
    """

    noise: float
    granularity: str = "step"
    score_range: tuple[float, float] = (0.0, 1.0)

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        """One score per step of every trajectory."""
        start, addends = _chain(problem)
        truth = set(itertools.accumulate(addends, initial=start))
        rows = []
        for trajectory in trajectories:
            scores = []
            for depth, step in enumerate(trajectory.steps, start=1):
                base = 0.65 if _last_number(step) in truth else 0.4
                key = "|".join((problem, *trajectory.steps[:depth]))
                jitter = random.Random(key).gauss(0.0, self.noise)
                scores.append(min(1.0, max(0.0, base + jitter)))
            rows.append(Judgement(tuple(scores)))
        return rows


@dataclass
class Arm:
    """One strategy at one setting, and what it did over the problems."""

    label: str
    build: Any  # (solver, verifier, seed) -> SearchStrategy
    correct: int = 0
    tokens: int = 0
    calls: int = 0
    problems: int = 0
    seconds: float = 0.0


def arms(steps: int) -> list[Arm]:
    """Every arm of the table (AB-MCTS only when it is installed)."""
    rounds = steps + 1  # one round per addition and one for the answer
    common = {"max_steps": rounds + 1, "max_tokens": 4096}

    def make(cls: type[SearchStrategy], **settings: Any) -> Any:
        def build(solver: SlipSolver, verifier: NoisyPRM, seed: int) -> SearchStrategy:
            return cls(solver=solver, verifier=verifier, seed=seed, **settings)

        return build

    table = [
        Arm("greedy", make(BestOfN, n=1, temperature=0.0, selection="naive")),
        *(Arm(f"best_of_n@{n}", make(BestOfN, n=n, selection="weighted")) for n in (4, 16, 64)),
        Arm("beam_search@4", make(BeamSearch, n=4, beam_width=2, **common)),
        Arm("beam_search@16", make(BeamSearch, n=16, beam_width=4, **common)),
        Arm("dvts@16", make(DVTS, n=16, beam_width=4, lookahead=0, **common)),
        Arm("particle_filter@4", make(ParticleFilter, n=4, **common)),
        Arm("particle_filter@16", make(ParticleFilter, n=16, **common)),
        Arm(
            "particle_filter@16 T=0.25",
            make(ParticleFilter, n=16, weight_temperature=0.25, **common),
        ),
    ]
    try:
        from sal_plugins.strategies._treequest import require_treequest
        from sal_plugins.strategies.ab_mcts import ABMCTS

        require_treequest()
    except Exception as error:  # not written yet, or treequest missing: say so, skip the arm
        print(f"note: AB-MCTS skipped ({type(error).__name__}: {error})")
    else:
        # n counts generations; 16 solutions of `rounds` steps is about 16 * rounds of them.
        table.append(
            Arm(
                f"ab_mcts@{16 * rounds}",
                make(ABMCTS, n=16 * rounds, batch_size=4, max_steps=rounds + 1, max_tokens=4096),
            )
        )
    return table


async def run_arm(arm: Arm, problems: list[tuple[str, int]], slip: float, noise: float) -> None:
    """Run one arm over every problem (seeded by the problem's position)."""
    started = time.perf_counter()
    for seed, (problem, answer) in enumerate(problems):
        search = arm.build(SlipSolver(slip), NoisyPRM(noise), seed)
        result = await search.arun(problem)
        arm.problems += 1
        arm.correct += result.answer == str(answer)
        arm.tokens += result.usage.completion_tokens
        arm.calls += result.usage.generation_calls
    arm.seconds = time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--steps", type=int, default=12, help="additions per problem")
    parser.add_argument("--slip", type=float, default=0.25, help="chance a step slips")
    parser.add_argument("--noise", type=float, default=0.15, help="sd of the verifier's noise")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    problems = make_problems(args.problems, args.steps, args.seed)
    single = (1 - args.slip) ** args.steps
    print(
        f"{args.problems} problems of {args.steps} steps, slip {args.slip}, verifier noise "
        f"sd {args.noise}; a single sample is right with probability {single:.1%}"
    )
    table = arms(args.steps)
    for arm in table:
        asyncio.run(run_arm(arm, problems, args.slip, args.noise))
    print()
    print("| arm | accuracy | 95% CI | gen tokens/problem | gen calls/problem | s/problem |")
    print("|---|---|---|---|---|---|")
    for arm in table:
        low, high = wilson_interval(arm.correct, arm.problems)
        print(
            f"| {arm.label} | {arm.correct / arm.problems:.1%} | {low:.1%}-{high:.1%} | "
            f"{arm.tokens / arm.problems:.0f} | {arm.calls / arm.problems:.1f} | "
            f"{arm.seconds / arm.problems:.3f} |"
        )


if __name__ == "__main__":
    main()
