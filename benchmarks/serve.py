"""Serve: ``sal serve`` under a bounded loopback load vs. the same searches run in-process.

A latency-injected fake upstream (benchmarks/fake_server.py: by default 0.2 s per generation, 0.05 s
per PRM call) serves both. Each repeat sends the same C concurrent best-of-N searches (default
settings, ``n=4``, one seed per request) three ways: in-process (``asyncio.gather`` over ``arun``,
the collector as Python sets it), in-process again with the collector settings ``sal serve`` uses
(``sal_plugins.serve._heap.tuned_collector``: what the hop costs, with that tuning taken out), and
through ``sal serve`` (a child process, as deployed). This process runs on uvloop when it is
installed, as ``sal serve`` does (``--loop asyncio`` for the standard loop).

The requests to ``sal serve`` are sent as a load generator sends them: JSON posted with aiohttp.
``--client openai`` sends them with the ``openai`` SDK over aiohttp, ``--client openai-httpx``
with its default httpx client; the SDK costs the client 1-2 ms of CPU per request, which on this
machine shares the cores with the server and the upstream.

Printed: throughput, p50/p99 latency, errors, CPU milliseconds per request of this process (the
client), ``sal serve`` and the upstream (from /proc: where the hop's cost goes), the server's
resident memory after each repeat (flat means no leak), and the proxy's p50 as a ratio to each
in-process path, with the median over repeats. Bounded: ``--warmup`` unmeasured waves, then
``--repeats`` waves of ``--requests``; ``--gen-latency`` / ``--prm-latency`` set the upstream's.

Run: ``python benchmarks/serve.py`` (about a minute). Prints a Markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import openai
from _server import fake_server

import sal_plugins as sal
from sal_plugins.serve._heap import tuned_collector
from sal_plugins.solvers import OpenAISolver
from sal_plugins.verifiers import PoolingPRM

PROBLEM = "Tom has {a} apples and buys {b} more. How many apples does he have?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def sal_serve(root: str) -> Iterator[tuple[str, int]]:
    """``sal serve`` in front of the fake server; yields its ``/v1`` URL and its pid."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "sal_plugins.cli", "serve", "--port", str(port),
            "--upstream", f"{root}/v1", "--upstream-model", "fake",
            "--prm-url", root, "--prm-model", "fake-prm",
            "--max-concurrency-per-key", "100000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # at most ~30 s
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield f"{url}/v1", process.pid
    finally:
        process.terminate()
        process.wait(timeout=60)


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc (0 where there is none)."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return 0.0
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used, from /proc (0 where there is none)."""
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return 0.0
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pid(marker: str) -> int:
    """The pid of this process's child whose command line holds ``marker`` (0 if none)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == os.getpid() and marker in (entry / "cmdline").read_text():
                return int(entry.name)
    return 0


class CPUMeter:
    """CPU milliseconds per request of the client (this process), ``sal serve`` and the upstream."""

    def __init__(self, server_pid: int, upstream_pid: int) -> None:
        self.pids = (server_pid, upstream_pid)

    def read(self) -> tuple[float, ...]:
        return (time.process_time(), *(cpu_seconds(pid) for pid in self.pids))

    @staticmethod
    def per_request(before: tuple[float, ...], after: tuple[float, ...], count: int) -> str:
        client, server, upstream = (
            (b - a) * 1000 / max(count, 1) for a, b in zip(before, after, strict=True)
        )
        return f"{client:.2f} | {server:.2f} | {upstream:.2f}"


def problem(index: int) -> str:
    return PROBLEM.format(a=10 + index % 50, b=20 + index % 30)


CLIENTS = ("http", "openai", "openai-httpx")


@contextlib.asynccontextmanager
async def requester(kind: str, url: str, n: int) -> AsyncIterator[Callable[[int], Awaitable[str]]]:
    """A function sending request ``i`` (problem ``i``, seed ``i``) and returning the answer.

    ``http`` posts the JSON body with aiohttp and reads the answer with ``json.loads``, as a load
    generator would; ``openai`` and ``openai-httpx`` go through the SDK (over aiohttp or httpx),
    whose request building and response models cost the client about 1-2 ms per request.
    """

    def body(i: int) -> dict[str, Any]:
        return {
            "model": "best_of_n:fake",
            "messages": [{"role": "user", "content": problem(i)}],
            "seed": i,
            "sal": {"n": n},
        }

    if kind == "http":
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def post(i: int) -> str:
                async with session.post(f"{url}/chat/completions", json=body(i)) as response:
                    answer = json.loads(await response.read())
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {answer}")
                return str(answer["choices"][0]["message"]["content"])

            yield post
        return
    client = openai.AsyncOpenAI(
        base_url=url,
        api_key="none",
        max_retries=0,
        timeout=120,
        http_client=(
            openai.DefaultAioHttpClient(timeout=120)
            if kind == "openai"
            else httpx.AsyncClient(limits=httpx.Limits(max_connections=1000), timeout=120)
        ),
    )

    async def create(i: int) -> str:
        fields = body(i)
        completion = await client.chat.completions.create(
            model=fields["model"],
            messages=fields["messages"],
            seed=i,
            extra_body={"sal": fields["sal"]},
        )
        return str(completion.choices[0].message.content)

    try:
        yield create
    finally:
        await client.close()


async def timed(
    call: Callable[[int], Awaitable[object]], count: int
) -> tuple[list[float], int, float]:
    """Run ``call(0)`` ... ``call(count - 1)`` concurrently; latencies, error count, wall time."""

    async def one(i: int) -> float | None:
        start = time.perf_counter()
        try:
            await call(i)
        except Exception:
            return None
        return time.perf_counter() - start

    start = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(count)))
    wall = time.perf_counter() - start
    latencies = [r for r in results if r is not None]
    return latencies, len(results) - len(latencies), wall


def row(name: str, latencies: list[float], errors: int, wall: float, cpu: str, rss: str) -> str:
    ordered = sorted(latencies) or [0.0]
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    throughput = len(latencies) / wall if wall else 0.0
    return (
        f"| {name} | {len(latencies) + errors} | {throughput:.1f} | "
        f"{statistics.median(ordered):.3f} | {p99:.3f} | {errors} | {cpu} | {rss} |"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument(
        "--client",
        choices=CLIENTS,
        default="http",
        help="what sends the requests to sal serve (http: plain aiohttp posts, as a load "
        "generator does; openai: the openai SDK over aiohttp; openai-httpx: the SDK's default)",
    )
    parser.add_argument("--gen-latency", type=float, default=0.2, help="seconds per generation")
    parser.add_argument("--prm-latency", type=float, default=0.05, help="seconds per PRM call")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured waves first (1)")
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        help="this process's event loop (sal serve runs on uvloop where uvicorn[standard] is)",
    )
    return parser.parse_args()


def event_loop(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


async def main(args: argparse.Namespace) -> None:
    with (
        fake_server(args.gen_latency, args.prm_latency) as root,
        sal_serve(root) as (url, pid),
    ):
        async with requester(args.client, url, args.n) as send:
            await waves(args, root, pid, send)


async def waves(
    args: argparse.Namespace, root: str, pid: int, send: Callable[[int], Awaitable[str]]
) -> None:
    """Per repeat: in-process, in-process as ``sal serve`` tunes its collector, then the proxy."""
    meter = CPUMeter(pid, child_pid("fake_server.py"))
    solver = OpenAISolver(model="fake", base_url=f"{root}/v1", api_key="none")
    prm = PoolingPRM(model="fake-prm", base_url=root)

    def local(i: int) -> Awaitable[object]:
        return sal.BestOfN(solver=solver, verifier=prm, n=args.n, seed=i).arun(problem(i))

    for _ in range(args.warmup):  # connections opened, caches filled: not measured
        await timed(local, args.requests)
        await timed(send, args.requests)
    print(
        f"{args.requests} concurrent best-of-{args.n} searches per wave, {args.repeats} waves "
        f"after {args.warmup} warm-up; upstream {args.gen_latency} s per generation, "
        f"{args.prm_latency} s per PRM call; event loop: {args.loop}; client: {args.client}"
    )
    print(
        "| path | requests | searches / s | p50 s | p99 s | errors "
        "| CPU ms/request: client | sal serve | upstream | server RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    paths: dict[str, Callable[[int], Awaitable[object]]] = {
        "in-process": local,
        "in-process, tuned collector": local,
        "sal serve": send,
    }
    p50s: dict[str, list[float]] = {name: [] for name in paths}
    for repeat in range(args.repeats):  # bounded
        for name, call in paths.items():
            tuned = tuned_collector() if name.endswith("collector") else contextlib.nullcontext()
            with tuned:
                before = meter.read()
                latencies, errors, wall = await timed(call, args.requests)
                cpu = meter.per_request(before, meter.read(), args.requests)
            rss = f"{rss_mib(pid):.0f}" if name == "sal serve" else "-"
            print(row(f"{name} #{repeat + 1}", latencies, errors, wall, cpu, rss), flush=True)
            p50s[name].append(statistics.median(latencies) if latencies else float("nan"))
    for baseline in ("in-process", "in-process, tuned collector"):
        ratios = [a / b for a, b in zip(p50s["sal serve"], p50s[baseline], strict=True)]
        print(
            f"\np50 through sal serve / {baseline}: {', '.join(f'{r:.2f}' for r in ratios)} "
            f"(median {statistics.median(ratios):.2f})"
        )


if __name__ == "__main__":
    arguments = parse_args()
    with asyncio.Runner(loop_factory=event_loop(arguments.loop)) as runner:
        runner.run(main(arguments))
