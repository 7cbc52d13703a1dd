"""Engine cost: candidate steps per second of pure engine work, with zero-latency scripted fakes.

The solver and verifier answer instantly (``ScriptedSolver``, ``ScriptedVerifier``), so all the
time measured is the engine's: planning, the driver's bookkeeping, the tree, events, scoring
aggregation and answer extraction. A "candidate step" is one node added to the search tree.

Run: ``python benchmarks/engine_cost.py`` (a few seconds). Prints a Markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from sal_plugins.solvers import ScriptedSolver
from sal_plugins.strategies import strategy_class
from sal_plugins.verifiers import ScriptedVerifier


def solutions(count: int, steps: int) -> list[str]:
    return [
        "\n\n".join(
            [f"Step {k}: {a} + {k} = {a + k}" for k in range(1, steps)]
            + [f"The answer is $\\boxed{{{a % 7}}}$."]
        )
        for a in range(count)
    ]


def score(problem: str, step: str) -> float:
    return (sum(map(ord, step)) % 89) / 88


async def measure(name: str, n: int, steps: int, repeats: int) -> tuple[float, int, float]:
    settings: dict[str, object] = {
        "solver": ScriptedSolver(solutions(max(n, 8), steps)),
        "verifier": ScriptedVerifier(score),
        "n": n,
        "seed": 0,
        "max_concurrency": 64,
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
    print(f"{args.steps}-step scripted solutions, {args.repeats} searches per row")
    print("| strategy | N | candidate steps per search | ms per search | candidate steps / s |")
    print("|---|---|---|---|---|")
    for name in ("best_of_n", "beam_search", "dvts"):
        for n in (4, 16, 64):
            rate, per_search, ms = await measure(name, n, args.steps, args.repeats)
            print(f"| {name} | {n} | {per_search} | {ms:.1f} | {rate:,.0f} |", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
