"""Accuracy vs. generated tokens on a scripted step-slip task, every strategy in one run.

No model: by default every arm runs through ``OpenAISolver`` and ``PoolingPRM`` (library defaults
but for the arms' own settings) against ``benchmarks/fake_server.py --task chain`` in a child
process at zero latency, so the figures measure the search strategies over the real client path
(HTTP, vLLM-style continuation, ``/pooling`` rows) and nothing else. ``--in-process`` plays the
same task through an in-process solver and verifier instead: much faster, and seeded the same way
it gives the same table (the task is one module, ``benchmarks/_chain_task.py``, on both paths).

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

Run: ``python benchmarks/accuracy_scripted.py`` (about 4.5 minutes on two cores at the default
100 problems, over half of it AB-MCTS); ``--in-process`` (about 2.5 minutes, most of it AB-MCTS);
``--problems`` trades time for tighter intervals. Prints which path ran and the table; asserts
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import _chain_task as task
from _server import fake_server

from sal_plugins import DVTS, BeamSearch, BestOfN, ParticleFilter, SearchStrategy
from sal_plugins.eval.report import wilson_interval
from sal_plugins.solvers import OpenAISolver
from sal_plugins.solvers.base import (
    Generation,
    GenerationRequest,
    Solver,
    SolverCapabilities,
    SolverResponse,
    StopKind,
    seeds_for,
)
from sal_plugins.verifiers import Granularity, Judgement, PoolingPRM, Trajectory, Verifier


@dataclass
class SlipSolver:
    """The task's solver in-process: one addition per step, each slipping with ``slip``.

    A continuation's randomness comes from its seed and its prefix (at temperature 0 from the
    prefix alone), so a seeded search is reproducible and a retried request gets the same text.
    """

    slip: float
    capabilities: SolverCapabilities = field(
        default_factory=lambda: SolverCapabilities(honours_n=True)
    )

    def _continue(self, request: GenerationRequest, seed: int | None) -> Generation:
        key = task.sample_key(seed, request.temperature)
        steps, ends = task.write(
            request.problem, request.prefix_steps, key, self.slip, to_end=not request.stop
        )
        kind: StopKind = "end" if ends else "delimiter"
        return Generation(text=request.step_delimiter.join(steps), stop_kind=kind)

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        """``request.n`` continuations: one step each, or the rest of the solution without stops."""
        generations = [self._continue(request, seed) for seed in seeds_for(request)]
        prompt = task.tokens(request.problem) + sum(map(task.tokens, request.prefix_steps))
        return SolverResponse(
            generations=generations,
            prompt_tokens=prompt,
            completion_tokens=sum(task.tokens(g.text) for g in generations),
            requests=1,
        )


@dataclass
class NoisyPRM:
    """The task's process reward model in-process: one noisy score per step."""

    noise: float
    granularity: Granularity = "step"
    score_range: tuple[float, float] | None = (0.0, 1.0)

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        """One score per step of every trajectory."""
        return [
            Judgement(tuple(task.step_scores(problem, t.steps, self.noise))) for t in trajectories
        ]


def task_server(slip: float, noise: float) -> contextlib.AbstractContextManager[str]:
    """``fake_server.py --task chain`` at zero latency in a child process; yields its root URL."""
    flags = ["--task", "chain", "--slip", str(slip), "--prm-noise", str(noise), "--tcp-nodelay"]
    return fake_server(0.0, 0.0, extra_args=flags)


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
        def build(solver: Solver, verifier: Verifier, seed: int) -> SearchStrategy:
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


Backend = Callable[[], tuple[Solver, Verifier]]
"""Makes a fresh solver and verifier for one arm, on the arm's event loop."""


async def run_arm(arm: Arm, problems: list[tuple[str, int]], backend: Backend) -> None:
    """Run one arm over every problem (seeded by the problem's position)."""
    solver, verifier = backend()
    started = time.perf_counter()
    try:
        for seed, (problem, answer) in enumerate(problems):
            result = await arm.build(solver, verifier, seed).arun(problem)
            arm.problems += 1
            arm.correct += result.answer == str(answer)
            arm.tokens += result.usage.completion_tokens
            arm.calls += result.usage.generation_calls
    finally:
        if isinstance(solver, OpenAISolver):
            await solver.aclose()
    arm.seconds = time.perf_counter() - started


def in_process_backend(slip: float, noise: float) -> Backend:
    """``SlipSolver`` and ``NoisyPRM``: the same task with no HTTP."""

    def pair() -> tuple[Solver, Verifier]:
        return SlipSolver(slip), NoisyPRM(noise)

    return pair


def http_backend(root: str) -> Backend:
    """``OpenAISolver`` and ``PoolingPRM`` with library defaults, against the server at ``root``."""

    def pair() -> tuple[Solver, Verifier]:
        solver = OpenAISolver(model="fake", base_url=f"{root}/v1")
        return solver, PoolingPRM(model="fake-prm", base_url=root)

    return pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--steps", type=int, default=12, help="additions per problem")
    parser.add_argument("--slip", type=float, default=0.25, help="chance a step slips")
    parser.add_argument("--noise", type=float, default=0.15, help="sd of the verifier's noise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="play the task in-process instead of over HTTP against the fake server",
    )
    args = parser.parse_args()

    problems = task.make_problems(args.problems, args.steps, args.seed)
    single = (1 - args.slip) ** args.steps
    print(
        f"{args.problems} problems of {args.steps} steps, slip {args.slip}, verifier noise "
        f"sd {args.noise}; a single sample is right with probability {single:.1%}"
    )
    table = arms(args.steps)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.in_process:
            print("path: in-process (SlipSolver and NoisyPRM, no HTTP)")
            backend = in_process_backend(args.slip, args.noise)
        else:
            root = stack.enter_context(task_server(args.slip, args.noise))
            print(
                "path: HTTP (OpenAISolver and PoolingPRM against benchmarks/fake_server.py "
                f"--task chain at {root}, zero latency, in a child process)"
            )
            backend = http_backend(root)
        for arm in table:
            asyncio.run(run_arm(arm, problems, backend))
    elapsed = time.perf_counter() - started
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
    print(f"\nwall time {elapsed:.0f} s")


if __name__ == "__main__":
    main()
