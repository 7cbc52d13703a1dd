"""Serve: ``sal serve`` under a bounded loopback load vs. the same searches run in-process.

A latency-injected fake upstream (benchmarks/fake_server.py: by default 0.2 s per generation, 0.05 s
per PRM call) serves both. The same C concurrent best-of-N searches (default settings, ``n=4``, one
seed per request) run first in-process (``asyncio.gather`` over ``arun``), then through
``sal serve`` (a child process, as deployed) with the ``openai`` async client (over aiohttp, the SDK's
``openai[aiohttp]`` backend; ``--client httpx`` for its default, whose connection pool costs the
client more CPU than the server at hundreds of requests in flight). Printed: throughput, p50/p99
latency, errors, CPU milliseconds per request of this process (the client), ``sal serve`` and the
upstream (read from /proc: where the proxy's overhead goes), the proxy's p50 as a ratio to
in-process, and the server's resident memory after each repeat (flat means no leak). Bounded:
``--requests`` per wave, ``--repeats`` waves; ``--gen-latency`` / ``--prm-latency`` set the
upstream's.

Run: ``python benchmarks/serve.py`` (about a minute). Prints a Markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

    def read(self) -> tuple[float, float, float]:
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


async def timed(calls: list[Callable[[], Awaitable[object]]]) -> tuple[list[float], int, float]:
    """Run the calls concurrently; their latencies, the error count and the wall time."""

    async def one(call: Callable[[], Awaitable[object]]) -> float | None:
        start = time.perf_counter()
        try:
            await call()
        except Exception:
            return None
        return time.perf_counter() - start

    start = time.perf_counter()
    results = await asyncio.gather(*(one(c) for c in calls))
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
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
    args = parser.parse_args()
    with (
        fake_server(args.gen_latency, args.prm_latency) as root,
        sal_serve(root) as (url, pid),
    ):
        async with requester(args.client, url, args.n) as send:
            await waves(args, root, pid, send)


async def waves(
    args: argparse.Namespace, root: str, pid: int, send: Callable[[int], Awaitable[str]]
) -> None:
    """In-process, then through ``sal serve``, ``args.repeats`` times; prints a row for each."""
    meter = CPUMeter(pid, child_pid("fake_server.py"))
    solver = OpenAISolver(model="fake", base_url=f"{root}/v1", api_key="none")
    prm = PoolingPRM(model="fake-prm", base_url=root)
    print(
        f"{args.requests} concurrent best-of-{args.n} searches per wave, {args.repeats} waves; "
        f"upstream {args.gen_latency} s per generation, {args.prm_latency} s per PRM call"
    )
    print(
        "| path | requests | searches / s | p50 s | p99 s | errors "
        "| CPU ms/request: client | sal serve | upstream | server RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for repeat in range(args.repeats):  # bounded
        local = [
            (
                lambda i=i: sal.BestOfN(solver=solver, verifier=prm, n=args.n, seed=i).arun(
                    problem(i)
                )
            )
            for i in range(args.requests)
        ]
        start = meter.read()
        in_process = await timed(local)  # type: ignore[arg-type]
        middle = meter.read()
        remote = [lambda i=i: send(i) for i in range(args.requests)]
        proxied = await timed(remote)  # type: ignore[arg-type]
        end = meter.read()
        count = args.requests
        print(
            row(
                f"in-process #{repeat + 1}",
                *in_process,
                meter.per_request(start, middle, count),
                "-",
            )
        )
        print(
            row(
                f"sal serve #{repeat + 1}",
                *proxied,
                meter.per_request(middle, end, count),
                f"{rss_mib(pid):.0f}",
            ),
            flush=True,
        )
        if in_process[0] and proxied[0]:
            ratios.append(statistics.median(proxied[0]) / statistics.median(in_process[0]))
    print(f"\np50 through sal serve / in-process: {', '.join(f'{r:.2f}' for r in ratios)}")


if __name__ == "__main__":
    asyncio.run(main())
