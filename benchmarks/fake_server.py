"""A small OpenAI-compatible server with injected latency and a vLLM-shaped ``/pooling`` PRM.

Used by the overhead and peer benchmarks, on 127.0.0.1 only. It is a stand-in, not a model: every
request sleeps for a fixed latency and answers with scripted arithmetic steps, so a benchmark
measures what the search engine adds on top of the server's latency and nothing else.

Routes:

* ``GET /v1/models``: one model, ``owned_by: "vllm"`` (so ``OpenAISolver`` continues partial
  solutions natively with ``continue_final_message``).
* ``POST /v1/chat/completions`` and ``POST /v1/completions``: ``n`` choices; with a stop string,
  one step per choice (vLLM's ``stop_reason`` names the delimiter), without one, the rest of the
  solution. A solution has ``--steps`` steps; the last states ``\\boxed{}``.
* ``POST /pooling``: Qwen2.5-Math-PRM-shaped rows, one ``[p_neg, p_pos]`` per ``<extra_0>``.
* ``GET /stats`` and ``POST /stats/reset``: requests, tokens and peak concurrency.

Run: ``python benchmarks/fake_server.py --port 0 --gen-latency 0.2 --prm-latency 0.05``; it
prints ``listening on http://127.0.0.1:PORT`` once ready.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DELIMITER = "\n\n"
STEP_TAG = "<extra_0>"
_CHATML_ASSISTANT = "<|im_start|>assistant\n"


@dataclass
class Stats:
    """What the server saw since the last reset."""

    generation_requests: int = 0
    pooling_requests: int = 0
    choices: int = 0
    completion_tokens: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    started: float = field(default_factory=time.monotonic)

    def enter(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self) -> None:
        self.in_flight -= 1


def _digest(*parts: object) -> int:
    text = "|".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _problem_numbers(problem: str) -> tuple[int, int]:
    numbers = [int(x) for x in re.findall(r"\d+", problem)[:2]]
    while len(numbers) < 2:
        numbers.append(len(numbers) + 2)
    return numbers[0], numbers[1]


def solution_steps(problem: str, variant: int, steps: int) -> list[str]:
    """A scripted solution: ``steps - 1`` arithmetic steps, then the boxed answer.

    One variant in three slips in its first step and carries the error to its answer.
    """
    a, b = _problem_numbers(problem)
    slip = 1 if variant % 3 == 2 else 0
    total = a + b + slip
    lines = [f"Add the numbers: {a} + {b} = {total}."]
    for k in range(1, steps - 1):
        lines.append(f"Check step {k}: {total} - {b} = {total - b}.")
    lines.append(f"The answer is $\\boxed{{{total}}}$.")
    return lines[:steps]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class FakeServer:
    """The application and its settings."""

    def __init__(self, gen_latency: float, prm_latency: float, steps: int) -> None:
        self.gen_latency = gen_latency
        self.prm_latency = prm_latency
        self.steps = steps
        self.stats = Stats()
        self.unseeded = 0
        self.app = Starlette(
            routes=[
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/pooling", self.pooling, methods=["POST"]),
                Route("/stats", self.get_stats, methods=["GET"]),
                Route("/stats/reset", self.reset, methods=["POST"]),
            ]
        )

    async def models(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "vllm"}]}
        )

    async def get_stats(self, request: Request) -> JSONResponse:
        s = self.stats
        return JSONResponse(
            {
                "generation_requests": s.generation_requests,
                "pooling_requests": s.pooling_requests,
                "choices": s.choices,
                "completion_tokens": s.completion_tokens,
                "peak_in_flight": s.peak_in_flight,
            }
        )

    async def reset(self, request: Request) -> JSONResponse:
        self.stats = Stats()
        return JSONResponse({"ok": True})

    def _choices(
        self, problem: str, written: list[str], body: dict[str, Any], chat: bool
    ) -> tuple[list[dict[str, Any]], int]:
        n = int(body.get("n") or 1)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        seed = body.get("seed")
        choices, tokens = [], 0
        for index in range(n):
            if seed is None:  # unseeded clients still get varied samples
                self.unseeded += 1
                variant = _digest(problem, written, self.unseeded)
            else:
                variant = _digest(problem, written, seed, index)
            steps = solution_steps(problem, variant, self.steps)
            rest = steps[len(written) :]
            if DELIMITER in stop and len(rest) > 1:
                text, stop_reason = rest[0], DELIMITER
            else:
                text, stop_reason = DELIMITER.join(rest), None
            tokens += _tokens(text)
            choice: dict[str, Any] = {"index": index, "finish_reason": "stop", "logprobs": None}
            choice["stop_reason"] = stop_reason
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            choices.append(choice)
        return choices, tokens

    async def _generate(
        self, body: dict[str, Any], problem: str, partial: str, chat: bool
    ) -> JSONResponse:
        self.stats.enter()
        try:
            await asyncio.sleep(self.gen_latency)
            written = [s for s in partial.split(DELIMITER) if s.strip()]
            choices, tokens = self._choices(problem, written, body, chat)
        finally:
            self.stats.leave()
        self.stats.generation_requests += 1
        self.stats.choices += len(choices)
        self.stats.completion_tokens += tokens
        prompt_tokens = _tokens(problem + partial)
        return JSONResponse(
            {
                "id": f"fake-{self.stats.generation_requests}",
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": tokens,
                    "total_tokens": prompt_tokens + tokens,
                },
            }
        )

    async def chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        messages = body.get("messages") or []
        problem = next((m["content"] for m in messages if m.get("role") == "user"), "")
        partial = ""
        if messages and messages[-1].get("role") == "assistant":
            partial = messages[-1].get("content") or ""
        elif "<partial>" in problem:  # instructed continuation puts the partial in the user turn
            partial = problem.split("<partial>", 1)[1].split("</partial>", 1)[0]
        return await self._generate(body, problem, partial, chat=True)

    async def completions(self, request: Request) -> JSONResponse:
        body = await request.json()
        prompt = str(body.get("prompt") or "")
        head, _, partial = prompt.rpartition(_CHATML_ASSISTANT)
        problem = head.rsplit("<|im_start|>user\n", 1)[-1]
        return await self._generate(body, problem, partial, chat=False)

    async def pooling(self, request: Request) -> JSONResponse:
        body = await request.json()
        inputs = body.get("input") or []
        inputs = [inputs] if isinstance(inputs, str) else inputs
        self.stats.enter()
        try:
            await asyncio.sleep(self.prm_latency)
        finally:
            self.stats.leave()
        self.stats.pooling_requests += 1
        data = []
        for index, text in enumerate(inputs):
            rows = []
            for step in text.split(STEP_TAG)[:-1]:
                match = re.search(r"(\d+) ([+-]) (\d+) = (\d+)", step)
                ok = True
                if match:
                    a, op, b, c = int(match[1]), match[2], int(match[3]), int(match[4])
                    ok = (a + b if op == "+" else a - b) == c
                p_pos = 0.9 if ok else 0.2
                rows.append([round(1 - p_pos, 4), p_pos])
            data.append({"index": index, "object": "pooling", "data": rows})
        return JSONResponse(
            {
                "id": f"pool-{self.stats.pooling_requests}",
                "object": "list",
                "created": int(time.time()),
                "model": body.get("model", "fake-prm"),
                "data": data,
                "usage": {"prompt_tokens": sum(_tokens(t) for t in inputs), "total_tokens": 0},
            }
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--gen-latency", type=float, default=0.2)
    parser.add_argument("--prm-latency", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    server = FakeServer(args.gen_latency, args.prm_latency, args.steps)
    config = uvicorn.Config(
        server.app, log_level="warning", access_log=False, backlog=2048, timeout_keep_alive=30
    )
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
