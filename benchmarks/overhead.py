"""Overhead: wall time of a search vs. its critical path on a server with injected latency.

For each strategy and N, a search runs against benchmarks/fake_server.py (127.0.0.1) whose every
generation request takes ``--gen-latency`` seconds and every /pooling request ``--prm-latency``.
No engine can beat the critical path: a round must generate before it scores, and the next round
needs the scores, so the bound is ``rounds x (generation latency + verifier latency)``. Strategies
whose plan has more sequential waves per round (DVTS's default one-step look-ahead, a greedy
roll-out before scoring) get those waves added: the bound is the sum, over the batches the plan
actually issued one after another, of the slowest request kind in each. The ratio wall / bound is
the engine's overhead (1.0 is perfect; the target is at most 1.2). Also printed: requests and
tokens per search and the peak number of requests the server had in flight at once.

Run: ``python benchmarks/overhead.py`` (about a minute). Prints a Markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any, get_args

from _server import fake_server, reset, stats

import sal_plugins as sal
from sal_plugins.solvers import OpenAISolver
from sal_plugins.solvers.openai import Transport
from sal_plugins.strategies import Expand, Score, strategy_class
from sal_plugins.verifiers import PoolingPRM

PROBLEM = "Tom has 23 apples and buys 48 more. How many apples does he have?"


WAVES: list[tuple[bool, bool]] = []
"""(has generation, has scoring) of every batch the last search issued, in order."""


def counting(cls: type[sal.SearchStrategy]) -> type[sal.SearchStrategy]:
    """A subclass whose plan records each batch it yields (to compute the critical path)."""

    class Counted(cls):  # type: ignore[valid-type,misc]
        def plan(self, problem: str, tree: Any) -> Any:
            inner = cls.plan(self, problem, tree)
            batch = next(inner)
            while True:
                WAVES.append(
                    (
                        any(isinstance(r, Expand) for r in batch),
                        any(isinstance(r, Score) for r in batch),
                    )
                )
                try:
                    batch = inner.send((yield batch))
                except StopIteration as stop:
                    return stop.value

    return Counted


TRANSPORT: Transport = "direct"
"""How the solver sends its requests (``--transport``; the library's default is direct)."""


def build(name: str, n: int, root: str, honours_n: bool) -> sal.SearchStrategy:
    solver = OpenAISolver(
        model="fake",
        base_url=f"{root}/v1",
        api_key="none",
        honours_n=None if honours_n else False,
        transport=TRANSPORT,
    )
    prm = PoolingPRM(model="fake-prm", base_url=root)
    settings: dict[str, object] = {
        "solver": solver,
        "verifier": prm,
        "n": n,
        "seed": 0,
        "max_tokens": 64,
    }
    if name in ("beam_search", "dvts"):
        settings.update(beam_width=4 if n >= 8 else 2, max_steps=10)
    return counting(strategy_class(name))(**settings)


async def measure(
    name: str, n: int, root: str, repeats: int, gen: float, prm: float, honours_n: bool
) -> dict[str, float]:
    walls, ratios = [], []
    last: dict[str, float] = {}
    for _ in range(repeats):  # bounded: `repeats` searches per row
        search = build(name, n, root, honours_n)
        await search.arun("warm-up " + PROBLEM)  # connections and the server-kind probe
        reset(root)
        WAVES.clear()
        start = time.perf_counter()
        result = await search.arun(PROBLEM)
        wall = time.perf_counter() - start
        seen = stats(root)
        rounds = 1 + max(node.round for node in result.tree.nodes[1:])
        bound = sum(max(gen if g else 0.0, prm if s else 0.0) for g, s in WAVES)
        walls.append(wall)
        ratios.append(wall / bound)
        last = {
            "rounds": rounds,
            "waves": len(WAVES),
            "bound": bound,
            "gen_requests": seen["generation_requests"],
            "prm_requests": seen["pooling_requests"],
            "tokens": result.usage.total_tokens,
            "peak": seen["peak_in_flight"],
            "finished": float(all(c.finished for c in result.completions)),
        }
        await search.solver.aclose()  # type: ignore[attr-defined]
    return {**last, "wall": statistics.median(walls), "ratio": statistics.median(ratios)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gen-latency", type=float, default=0.2)
    parser.add_argument("--prm-latency", type=float, default=0.05)
    parser.add_argument("--n", default="4,16,64")
    parser.add_argument("--strategies", default="best_of_n,beam_search,dvts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--fan-out",
        action="store_true",
        help="server returns one choice per request (llama.cpp style)",
    )
    parser.add_argument(
        "--transport",
        choices=get_args(Transport),
        default="direct",
        help="how the solver sends requests (transport='auto' picks direct when aiohttp is there)",
    )
    args = parser.parse_args()
    global TRANSPORT
    TRANSPORT = args.transport
    ns = [int(x) for x in args.n.split(",")]
    print(
        f"generation latency {args.gen_latency}s, verifier latency {args.prm_latency}s, "
        f"median of {args.repeats}, {'fan-out' if args.fan_out else 'n honoured'}, "
        f"{args.transport} transport"
    )
    print(
        "| strategy | N | rounds | sequential batches | wall s | critical path s | wall / critical "
        "| gen requests | PRM requests | tokens | peak concurrency |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with fake_server(args.gen_latency, args.prm_latency) as root:
        for name in args.strategies.split(","):
            for n in ns:
                row = await measure(
                    name,
                    n,
                    root,
                    args.repeats,
                    args.gen_latency,
                    args.prm_latency,
                    honours_n=not args.fan_out,
                )
                print(
                    f"| {name} | {n} | {row['rounds']:.0f} | {row['waves']:.0f} | {row['wall']:.3f} | "
                    f"{row['bound']:.3f} | {row['ratio']:.2f} | {row['gen_requests']:.0f} | "
                    f"{row['prm_requests']:.0f} | {row['tokens']:.0f} | {row['peak']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    asyncio.run(main())
