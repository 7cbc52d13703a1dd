"""Peers: the same best-of-N budget through sal-plugins and through its-hub, same server, same run.

its-hub (``pip install 'its-hub[lm]'``, Red Hat AI Innovation's inference-time scaling library) is
the test-time-compute library on PyPI that runs against any OpenAI-compatible server. Both
libraries get the same latency-injected fake server (benchmarks/fake_server.py, 127.0.0.1), the
same N, and an outcome reward model behind the same ``/pooling`` route with the same latency
(for its-hub through a small ``AbstractOutcomeRewardModel`` adapter defined here).

Printed per N: wall seconds of each (median of ``--repeats``), requests the server saw, and the
ratio its-hub / sal-plugins (above 1: sal-plugins is faster). sal-plugins runs twice: once
sending ``n`` in one request (vLLM honours it), once fanning out one request per sample (as on
llama.cpp's server, and as its-hub always does).

Run: ``python benchmarks/peers.py``. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any, get_args

import httpx
from _server import fake_server, reset, stats

import sal_plugins as sal
from sal_plugins.solvers import OpenAISolver
from sal_plugins.solvers.openai import Transport
from sal_plugins.verifiers import PoolingPRM

PROBLEM = "Tom has 23 apples and buys 48 more. How many apples does he have?"


def its_hub_runner(root: str, n: int) -> Any:
    from its_hub import BestOfN, OpenAICompatibleLanguageModel
    from its_hub.api.reward_models.orm import AbstractOutcomeRewardModel
    from its_hub.core.orchestrator import LMOrchestrator

    class PoolingORM(AbstractOutcomeRewardModel):  # type: ignore[misc]
        """Scores each candidate's last message with one /pooling call for the batch."""

        def score(self, messages: Any, **kwargs: Any) -> Any:
            return asyncio.run(self.ascore(messages))

        async def ascore(self, messages: Any, orchestrator: Any = None, **kwargs: Any) -> Any:
            conversations = messages if messages and isinstance(messages[0], list) else [messages]
            texts = []
            for conversation in conversations:
                last = conversation[-1]
                content = last["content"] if isinstance(last, dict) else last.content
                texts.append(str(content).replace("\n\n", "<extra_0>") + "<extra_0>")
            async with httpx.AsyncClient() as client:
                body = {"model": "fake-prm", "input": texts}
                answer = (await client.post(f"{root}/pooling", json=body)).json()
            return [item["data"][-1][1] for item in answer["data"]]

    lm = OpenAICompatibleLanguageModel(
        endpoint=f"{root}/v1", api_key="none", model_name="fake", max_tokens=64, temperature=0.8
    )
    algorithm = BestOfN(PoolingORM(), orchestrator=LMOrchestrator(max_concurrency=max(n, 32)))

    async def run() -> None:
        await algorithm.ainfer(lm, PROBLEM, budget=n)

    run.close = lm.close  # type: ignore[attr-defined]
    return run


def sal_runner(root: str, n: int, fan_out: bool, transport: Transport) -> Any:
    solver = OpenAISolver(
        model="fake",
        base_url=f"{root}/v1",
        api_key="none",
        honours_n=False if fan_out else None,
        max_fanout_concurrency=max(n, 8),
        transport=transport,
    )
    search = sal.BestOfN(
        solver=solver,
        verifier=PoolingPRM(model="fake-prm", base_url=root),
        n=n,
        selection="naive",
        max_tokens=64,
        max_concurrency=max(n, 16),
    )

    async def run() -> None:
        await search.arun(PROBLEM)

    run.close = solver.aclose  # type: ignore[attr-defined]
    return run


async def timed(root: str, runner: Any, repeats: int) -> tuple[float, dict[str, Any]]:
    await runner()  # warm-up: connections, imports
    walls = []
    seen: dict[str, Any] = {}
    for _ in range(repeats):  # bounded
        reset(root)
        start = time.perf_counter()
        await runner()
        walls.append(time.perf_counter() - start)
        seen = stats(root)
    return statistics.median(walls), seen


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gen-latency", type=float, default=0.2)
    parser.add_argument("--prm-latency", type=float, default=0.05)
    parser.add_argument("--n", default="4,16,64")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--transport", choices=get_args(Transport), default="aiohttp", help="sal's HTTP stack"
    )
    args = parser.parse_args()
    import its_hub

    print(
        f"its-hub {its_hub.__version__} vs sal-plugins {sal.__version__}; generation latency "
        f"{args.gen_latency}s, verifier latency {args.prm_latency}s, median of {args.repeats}, "
        f"sal over {args.transport}"
    )
    print(
        "| N | sal (n in one request) s | requests | sal (fan-out) s | requests | its-hub s "
        "| requests | its-hub / sal fan-out |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with fake_server(args.gen_latency, args.prm_latency) as root:
        for n in (int(x) for x in args.n.split(",")):
            runners = [sal_runner(root, n, fan_out, args.transport) for fan_out in (False, True)]
            one, one_seen = await timed(root, runners[0], args.repeats)
            fan, fan_seen = await timed(root, runners[1], args.repeats)
            for runner in runners:
                await runner.close()
            hub_runner = its_hub_runner(root, n)
            hub, hub_seen = await timed(root, hub_runner, args.repeats)
            await hub_runner.close()

            def requests(seen: dict[str, Any]) -> str:
                return f"{seen['generation_requests']} + {seen['pooling_requests']}"

            print(
                f"| {n} | {one:.3f} | {requests(one_seen)} | {fan:.3f} | {requests(fan_seen)} "
                f"| {hub:.3f} | {requests(hub_seen)} | {hub / fan:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
