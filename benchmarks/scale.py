"""Scale-out: problems per second of a local evaluation vs. the same one on Ray actors.

One run, one latency-injected fake server (benchmarks/fake_server.py on 127.0.0.1, a child
process): the same dataset and beam search is evaluated

* locally (``run_arms``, ``--jobs J``: J searches in flight in this process),
* on Ray with 1 actor searching J at once, and with 2 actors searching J/2 each (the same J
  searches in flight, so only the overhead differs), and with 2 actors searching J each (twice
  the searches in flight, what ``--ray-actors 2 --jobs J`` gives),

each into a fresh run folder. Ray's start-up is timed apart; an actor's start-up is inside its
run. On a 2-core machine that also runs the fake server this shows overhead, not speed-up: the
searches are latency-bound, so what raises throughput is searches in flight, which one process
can already hold by the hundred.

Then a paper estimate for 8 nodes x 8 model replicas, from the measured per-search cost (requests,
rounds and engine CPU per search) and the assumptions printed beside it.

Run: ``python benchmarks/scale.py`` (about a minute). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _server import fake_server, reset, stats

import sal_plugins as sal
from sal_plugins.eval import Arm, RunFolder, load_problems, run_arms
from sal_plugins.eval.distributed import ray_session, run_arms_on_ray
from sal_plugins.eval.runner import StrategyFactory
from sal_plugins.solvers import OpenAISolver
from sal_plugins.verifiers import PoolingPRM

ARM = Arm("beam_search", 4)


@dataclass(frozen=True)
class Builder:
    """Builds the factory where it runs (this process, or each Ray actor): config only."""

    root: str

    def __call__(self) -> StrategyFactory:
        solver = OpenAISolver("fake", f"{self.root}/v1")
        prm = PoolingPRM(model="fake-prm", base_url=self.root)

        def factory(arm: Arm, seed: int | None) -> sal.SearchStrategy:
            return sal.BeamSearch(
                solver=solver, verifier=prm, n=arm.n, beam_width=2, max_steps=8, seed=seed
            )

        return factory


def write_dataset(folder: Path, count: int) -> Path:
    path = folder / "sums.jsonl"
    rows = [
        {"problem": f"What is {a} + {a * 7 % 50}?", "answer": str(a + a * 7 % 50), "id": str(a)}
        for a in range(count)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@dataclass
class Measured:
    label: str
    in_flight: int
    problems: int
    wall_s: float
    driver_cpu_s: float
    requests: int
    verifier_calls: int

    @property
    def per_s(self) -> float:
        return self.problems / self.wall_s


def measure(label: str, in_flight: int, root: str, run: Callable[[], list[Any]]) -> Measured:
    reset(root)
    cpu, start = time.process_time(), time.perf_counter()
    records = run()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    seen = stats(root)
    verifier_calls = sum(r.verifier_calls for r in records)
    return Measured(
        label, in_flight, len(records), wall, cpu, seen["generation_requests"], verifier_calls
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=8, help="searches in flight per process")
    parser.add_argument("--gen-latency", type=float, default=0.05)
    parser.add_argument("--prm-latency", type=float, default=0.02)
    group = parser.add_argument_group("paper estimate (assumptions)")
    group.add_argument("--nodes", type=int, default=8)
    group.add_argument("--replicas-per-node", type=int, default=8)
    group.add_argument(
        "--replica-slots", type=int, default=64, help="requests one replica serves at once"
    )
    group.add_argument(
        "--step-latency", type=float, default=1.0, help="s per generation request (one step)"
    )
    group.add_argument("--score-latency", type=float, default=0.2, help="s per PRM call")
    group.add_argument("--cores-per-node", type=int, default=32)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as tmp,
        fake_server(args.gen_latency, args.prm_latency) as root,
    ):
        data = write_dataset(Path(tmp), args.problems)
        problems = load_problems(str(data))
        builder = Builder(root)
        folders = iter(range(100))

        def folder() -> RunFolder:
            return RunFolder(Path(tmp) / f"run{next(folders)}", {"bench": "scale"})

        def local() -> list[Any]:
            factory = builder()
            return asyncio.run(run_arms(problems, [ARM], factory, folder(), jobs=args.jobs))

        results = [measure("local", args.jobs, root, local)]
        started = time.perf_counter()
        with ray_session(num_cpus=2) as ray:
            ray_start = time.perf_counter() - started
            for actors, jobs in [(1, args.jobs), (2, args.jobs // 2), (2, args.jobs)]:

                def on_ray(actors: int = actors, jobs: int = jobs) -> list[Any]:
                    return run_arms_on_ray(
                        problems, [ARM], builder, folder(), jobs=jobs, actors=actors
                    )

                label = f"ray, {actors} actor{'s' if actors > 1 else ''} x {jobs}"
                results.append(measure(label, actors * jobs, root, on_ray))
            cluster_cpus = ray.cluster_resources().get("CPU", 0)

    print(
        f"## {args.problems} problems, {ARM.strategy} N={ARM.n} (beam width 2), fake server "
        f"latency {args.gen_latency} s/generation, {args.prm_latency} s/PRM call, "
        f"{os.cpu_count()} cores\n"
    )
    print(
        f"Ray start-up (local, {cluster_cpus:.0f} CPUs): {ray_start:.1f} s, not in the runs below.\n"
    )
    print("| run | searches in flight | wall s | problems/s | vs. local | driver CPU ms/problem |")
    print("|---|---|---|---|---|---|")
    base = results[0].per_s
    for m in results:
        print(
            f"| {m.label} | {m.in_flight} | {m.wall_s:.2f} | {m.per_s:.1f} | "
            f"{m.per_s / base:.2f}x | {1000 * m.driver_cpu_s / m.problems:.1f} |"
        )
    print(
        "\nOn this machine the actors share 2 cores with the driver and the fake server, and "
        "each Ray run includes its actors' start-up: the table shows Ray's overhead, not a "
        "speed-up. Searches are latency-bound; throughput follows searches in flight "
        "(compare the two 2-actor rows), which one process can already hold by the hundred."
    )

    local = results[0]
    requests = local.requests / local.problems
    rounds = local.verifier_calls / local.problems  # beam search: one PRM call per round
    engine_cpu = local.driver_cpu_s / local.problems  # this process ran every search
    driver_cpu = min(m.driver_cpu_s / m.problems for m in results[1:])
    replicas = args.nodes * args.replicas_per_node
    search_s = rounds * (args.step_latency + args.score_latency)
    per_round = requests / rounds
    upstream = replicas * args.replica_slots / per_round / search_s
    cpu_bound = args.nodes * args.cores_per_node / engine_cpu
    driver_bound = 1 / driver_cpu if driver_cpu > 0 else float("inf")
    print(f"\n## Paper estimate: {args.nodes} nodes x {args.replicas_per_node} replicas\n")
    print("Measured per search (local run above):")
    print(
        f"- {requests:.1f} generation requests over {rounds:.1f} rounds ({per_round:.1f} a round)"
    )
    print(f"- {1000 * engine_cpu:.1f} ms of engine CPU (search, HTTP, grading, record)")
    print(f"- {1000 * driver_cpu:.2f} ms of driver CPU per record on Ray (receive and append)")
    print("Assumed:")
    print(
        f"- {replicas} vLLM replicas, each serving {args.replica_slots} requests at once at "
        f"{args.step_latency} s per step request; the PRM answers in {args.score_latency} s and "
        "keeps up (its own replicas)"
    )
    print(
        f"- a search waits rounds x (step + score) = {search_s:.1f} s; the engine's overhead "
        "over that critical path is small (benchmarks/overhead.py)"
    )
    print(f"- {args.cores_per_node} cores per node for actors, engine CPU as measured here")
    print("Bounds (searches/s):")
    print(
        f"- replicas: {replicas} x {args.replica_slots} slots / {per_round:.1f} requests a "
        f"search holds / {search_s:.1f} s = {upstream:.0f}"
    )
    print(
        f"- actor CPU: {args.nodes * args.cores_per_node} cores / {1000 * engine_cpu:.1f} ms = "
        f"{cpu_bound:.0f}"
    )
    print(f"- the one driver writing records: 1 / {1000 * driver_cpu:.2f} ms = {driver_bound:.0f}")
    estimate = min(upstream, cpu_bound, driver_bound)
    in_flight = estimate * search_s
    print(
        f"Estimate: about {estimate:.0f} problems/s ({estimate * 3600:,.0f} an hour), with about "
        f"{in_flight:.0f} searches in flight (e.g. --ray-actors {args.nodes * 8} --jobs "
        f"{max(1, round(in_flight / (args.nodes * 8)))}). A single process searching the same "
        f"count at once is bound by its one core instead: 1 / {1000 * engine_cpu:.1f} ms = "
        f"{1 / engine_cpu:.0f} problems/s."
    )


if __name__ == "__main__":
    main()
