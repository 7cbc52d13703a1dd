"""Engine cost: candidate steps per second of pure engine work, with zero-latency scripted fakes.

The solver and verifier answer instantly, in constant time per continuation (``StepSolver`` below
computes the next step from the prefix's length and the seed; the package's ``ScriptedSolver``
scans its scripts for a matching prefix, which at N=64 costs more than the engine itself), so
the time measured is the engine's: planning, the driver's bookkeeping, the tree, events,
scoring aggregation and answer extraction. A "candidate step" is one node added to the tree.

Run: ``python benchmarks/engine_cost.py`` (a few seconds). Prints a Markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from sal_plugins.solvers import Generation, GenerationRequest, SolverResponse
from sal_plugins.solvers.base import SolverCapabilities, seeds_for
from sal_plugins.strategies import strategy_class
from sal_plugins.verifiers import ScriptedVerifier


class StepSolver:
    """``steps``-step solutions, each step computed in O(1) from the prefix length and seed."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.capabilities = SolverCapabilities(honours_n=True)

    def _next(self, request: GenerationRequest, seed: int | None) -> Generation:
        variant = (seed or 0) % 8
        done = len(request.prefix_steps)
        if not request.stop:  # to the end
            rest = [self._step(variant, k) for k in range(done + 1, self.steps + 1)]
            return Generation("\n\n".join(rest), "end")
        last = done + 1 >= self.steps
        return Generation(self._step(variant, done + 1), "end" if last else "delimiter")

    def _step(self, variant: int, k: int) -> str:
        if k >= self.steps:
            return f"The answer is $\\boxed{{{variant % 7}}}$."
        return f"Step {k}: {variant} + {k} = {variant + k}"

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        generations = [self._next(request, seed) for seed in seeds_for(request)]
        return SolverResponse(generations, prompt_tokens=10, completion_tokens=10 * request.n)


def score(problem: str, step: str) -> float:
    return (sum(map(ord, step)) % 89) / 88


async def measure(name: str, n: int, steps: int, repeats: int) -> tuple[float, int, float]:
    settings: dict[str, object] = {
        "solver": StepSolver(steps),
        "verifier": ScriptedVerifier(score),
        "n": n,
        "seed": 0,
    }
    if name in ("beam_search", "dvts"):
        settings.update(beam_width=4, max_steps=steps + 2)
    search = strategy_class(name)(**settings)
    await search.arun("warm-up")
    nodes, elapsed = 0, 0.0
    for index in range(repeats):  # bounded
        start = time.perf_counter()
        result = await search.arun(f"Problem {index}: add the numbers.")
        elapsed += time.perf_counter() - start
        nodes += len(result.tree) - 1
    return nodes / elapsed, nodes // repeats, 1000 * elapsed / repeats


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per scripted solution")
    args = parser.parse_args()
    print(f"{args.steps}-step solutions, {args.repeats} searches per row, default settings")
    print("| strategy | N | candidate steps per search | ms per search | candidate steps / s |")
    print("|---|---|---|---|---|")
    for name in ("best_of_n", "beam_search", "dvts"):
        for n in (4, 16, 64):
            rate, per_search, ms = await measure(name, n, args.steps, args.repeats)
            print(f"| {name} | {n} | {per_search} | {ms:.1f} | {rate:,.0f} |", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
