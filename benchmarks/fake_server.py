"""A small OpenAI-compatible server with injected latency and vLLM/TEI-shaped reward models.

Used by the overhead and peer benchmarks and by the fault-matrix tests, on 127.0.0.1 only. It is a
stand-in, not a model: every request sleeps for a fixed latency and answers with scripted
arithmetic steps, so a benchmark measures what the search engine adds on top of the server's
latency and nothing else. Every answer is a deterministic function of the request (a seeded
request always gets the same choices, a text always the same score), so a seeded search returns
the same result however often its requests are retried.

Routes:

* ``GET /v1/models``: one model, ``owned_by: "vllm"`` (so ``OpenAISolver`` continues partial
  solutions natively with ``continue_final_message``).
* ``POST /v1/chat/completions`` and ``POST /v1/completions``: ``n`` choices; with a stop string,
  one step per choice (vLLM's ``stop_reason`` names the delimiter), without one, the rest of the
  solution. A solution has ``--steps`` steps; the last states ``\\boxed{}``.
* ``POST /v1/chat/completions`` with ``logprobs``, ``top_logprobs`` and ``max_tokens: 1`` (what
  ``ChatLogprobPRM`` sends, RLHFlow style): a verdict on the last user turn's step. The one
  generated token is ``"+"`` or ``"-"``; ``choices[0].logprobs.content[0].top_logprobs`` holds
  ``[{"token": "+", "logprob": log p}, {"token": "-", "logprob": log(1 - p)}]`` (truncated to
  ``top_logprobs``), so ``P(+) / (P(+) + P(-)) = p``, the step's score (see :func:`score_of`).
* ``POST /pooling``: Qwen2.5-Math-PRM-shaped rows, one ``[p_neg, p_pos]`` per ``<extra_0>``:
  ``{"data": [{"index": i, "object": "pooling", "data": [[p_neg, p_pos], ...]}], "usage": ...}``.
* ``POST /classify`` (vLLM): one two-class result per ``input`` string, the score of the
  assistant turn of the rendered chat:
  ``{"data": [{"index": i, "label": "correct"|"incorrect", "probs": [1 - p, p],
  "num_classes": 2}], "usage": ...}`` (so ``ClassifyRM``'s default ``label_index=-1`` reads ``p``).
* ``POST /predict`` (TEI): for each of ``inputs`` (a ``[problem, solution]`` pair or a one-element
  ``[text]``) a list sorted by score, ``[{"label": "correct", "score": p},
  {"label": "incorrect", "score": 1 - p}]`` (``raw_scores: true``: logits ``±log(p / (1 - p))``
  instead); read it with ``TEIReward(label="correct")``.
* ``GET /stats`` and ``POST /stats/reset``: requests, tokens and peak concurrency; with
  ``--notice-disconnects``, also the generations whose client hung up before the answer
  (``abandoned``: a client that cancels its requests shows here, as vLLM aborts them).

Scores: a text whose ``a + b = c`` / ``a - b = c`` statements are all right scores 0.9, one with a
wrong statement 0.2 (``/pooling`` judges each step by its first statement). With ``jitter`` each
score is lowered by up to 0.096, a deterministic function of the judged text, so candidates
rarely tie (off by default: the benchmarks' scores stay 0.9 and 0.2).

Task mode ``--task chain`` (off by default; ``FakeServer(task="chain", slip=..., prm_noise=...)``)
plays the step-slip chain task of ``benchmarks/_chain_task.py`` instead of the scripted steps: a
generation request's problem ("Start at 7. Add 3, then 4, ... What is the result?") is read from
its user turn, the steps so far from the assistant prefill (``continue_final_message``, as
``OpenAISolver`` continues on a vLLM-looking server), the raw ChatML of ``/v1/completions`` or
the ``<partial_solution>`` of an instructed continuation. Each choice writes the next step (the
rest of the solution without the ``"\\n\\n"`` stop), slipping with probability ``--slip``;
choice ``i`` of a request seeded ``s`` draws as seed ``s + i`` (at temperature 0 the prefix alone
decides), so the text equals what a fanned-out request would get. ``/pooling`` scores each
``<extra_0>``-tagged step of the assistant turn by whether its running value is on the right
path, plus noise of sd ``--prm-noise`` fixed per judged prefix. Generated tokens are counted
as words, as the task counts them. A request without a chain problem is answered 400. The other
scoring routes keep their scripted scores.

Run: ``python benchmarks/fake_server.py --port 0 --gen-latency 0.2 --prm-latency 0.05``; it
prints ``listening on http://127.0.0.1:PORT`` once ready. In-process (tests)::

    with serving(FakeServer(gen_latency=0.0, prm_latency=0.0, jitter=True)) as root:
        ...   # root is "http://127.0.0.1:PORT"; the OpenAI-compatible base URL is root + "/v1"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib
import importlib.util
import math
import re
import socket
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DELIMITER = "\n\n"
STEP_TAG = "<extra_0>"
_CHATML_ASSISTANT = "<|im_start|>assistant\n"
_CHATML_END = "<|im_end|>"
_STATEMENT = re.compile(r"(\d+) ([+-]) (\d+) = (\d+)")
RIGHT, WRONG = 0.9, 0.2
"""Scores of a text whose arithmetic is right, and of one with a wrong statement."""
TASKS = ("scripted", "chain")
"""What the server plays: its scripted arithmetic steps, or the step-slip chain task."""
_PARTIAL = re.compile(r"<partial_solution>\n?(.*?)</partial_solution>", re.DOTALL)


def _sibling(name: str) -> ModuleType:
    """``benchmarks/<name>.py``: imported as usual when ``benchmarks/`` is on ``sys.path`` (the
    scripts run from it), else loaded from its file (tests load this module from its file)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


chain_task = _sibling("_chain_task")


@dataclass
class Stats:
    """What the server saw since the last reset."""

    generation_requests: int = 0
    pooling_requests: int = 0
    classify_requests: int = 0
    predict_requests: int = 0
    verdict_requests: int = 0
    choices: int = 0
    completion_tokens: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    abandoned: int = 0
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


def _right(a: int, op: str, b: int, c: int) -> bool:
    return (a + b if op == "+" else a - b) == c


def arithmetic_is_right(text: str) -> bool:
    """Whether every ``a + b = c`` / ``a - b = c`` statement in ``text`` holds."""
    return all(_right(int(a), op, int(b), int(c)) for a, op, b, c in _STATEMENT.findall(text))


def score_of(text: str, *, jitter: bool) -> float:
    """The probability that ``text`` is right: 0.9 or 0.2, less the text's jitter if enabled."""
    base = RIGHT if arithmetic_is_right(text) else WRONG
    return round(base - (_digest("jitter", text) % 97) / 1000, 4) if jitter else base


def _assistant_turn(text: str) -> str:
    """The assistant turn of a ChatML-rendered chat (the whole text if it has none)."""
    if _CHATML_ASSISTANT not in text:
        return text
    return text.rsplit(_CHATML_ASSISTANT, 1)[1].split(_CHATML_END, 1)[0]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _choice(index: int, text: str, stop_reason: str | None, chat: bool) -> dict[str, Any]:
    """One choice, vLLM-shaped (``stop_reason``: the stop string matched, ``None`` at the end)."""
    choice: dict[str, Any] = {"index": index, "finish_reason": "stop", "logprobs": None}
    choice["stop_reason"] = stop_reason
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return choice


class FakeServer:
    """The application and its settings.

    Args:
        gen_latency: seconds every generation request sleeps.
        prm_latency: seconds every scoring request (``/pooling``, ``/classify``, ``/predict``, a
            chat verdict) sleeps.
        steps: steps of every scripted solution.
        jitter: lower each score by a small deterministic function of the judged text (see the
            module docstring).
        task: ``"scripted"`` (the default) or ``"chain"``, the step-slip chain task (see the
            module docstring); ``steps`` and ``jitter`` are then unused.
        slip: in task mode, the chance that a step slips.
        prm_noise: in task mode, the sd of the noise on ``/pooling`` scores.

    Raises:
        ValueError: an unknown task, a slip outside [0, 1] or a negative noise.
    """

    def __init__(
        self,
        gen_latency: float,
        prm_latency: float,
        steps: int = 4,
        *,
        jitter: bool = False,
        task: str = "scripted",
        slip: float = 0.25,
        prm_noise: float = 0.15,
        notice_disconnects: bool = False,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"task={task!r} is not one of {', '.join(TASKS)}")
        if not 0.0 <= slip <= 1.0 or not prm_noise >= 0.0:
            raise ValueError(
                f"slip must lie in [0, 1] and prm_noise be >= 0, got {slip}, {prm_noise}"
            )
        self.gen_latency = gen_latency
        self.prm_latency = prm_latency
        self.steps = steps
        self.jitter = jitter
        self.task = task
        self.slip = slip
        self.prm_noise = prm_noise
        self.notice_disconnects = notice_disconnects
        self.stats = Stats()
        self.unseeded = 0
        self.app = Starlette(
            routes=[
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/pooling", self.pooling, methods=["POST"]),
                Route("/classify", self.classify, methods=["POST"]),
                Route("/predict", self.predict, methods=["POST"]),
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
                "classify_requests": s.classify_requests,
                "predict_requests": s.predict_requests,
                "verdict_requests": s.verdict_requests,
                "choices": s.choices,
                "completion_tokens": s.completion_tokens,
                "peak_in_flight": s.peak_in_flight,
                "abandoned": s.abandoned,
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
        if self.task == "chain":
            return self._chain_choices(problem, written, n, seed, stop, body, chat)
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
            choices.append(_choice(index, text, stop_reason, chat))
        return choices, tokens

    def _chain_choices(
        self,
        prompt: str,
        written: list[str],
        n: int,
        seed: int | None,
        stop: list[str],
        body: dict[str, Any],
        chat: bool,
    ) -> tuple[list[dict[str, Any]], int]:
        """Task mode: ``n`` continuations of the chain task (see the module docstring)."""
        problem = chain_task.find_problem(prompt)
        if problem is None:
            raise HTTPException(400, "task chain: no 'Start at N. Add A, then B, ...' problem")
        to_end = DELIMITER not in stop
        temperature = float(body.get("temperature", 1.0))
        choices, tokens = [], 0
        for index in range(n):
            if seed is None:  # unseeded clients still get varied samples
                self.unseeded += 1
            draw = f"unseeded-{self.unseeded}" if seed is None else int(seed) + index
            key = chain_task.sample_key(draw, temperature)
            steps, ends = chain_task.write(problem, written, key, self.slip, to_end=to_end)
            text = DELIMITER.join(steps)
            tokens += chain_task.tokens(text)
            choices.append(_choice(index, text, None if ends else DELIMITER, chat))
        return choices, tokens

    async def _unless_abandoned(
        self, request: Request, answer: Coroutine[Any, Any, JSONResponse]
    ) -> JSONResponse:
        """The answer; with ``notice_disconnects``, a 499 (counted) if the client leaves first."""
        if not self.notice_disconnects:
            return await answer

        async def disconnected() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        answering = asyncio.ensure_future(answer)
        left = asyncio.ensure_future(disconnected())
        await asyncio.wait({answering, left}, return_when=asyncio.FIRST_COMPLETED)
        left.cancel()
        if answering.done():
            return answering.result()
        answering.cancel()
        self.stats.abandoned += 1
        return JSONResponse({"error": "the client left"}, status_code=499)

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
        if body.get("logprobs") and body.get("top_logprobs") and body.get("max_tokens") == 1:
            return await self._verdict(body, messages)
        problem = next((m["content"] for m in messages if m.get("role") == "user"), "")
        partial = ""
        if messages and messages[-1].get("role") == "assistant":
            partial = messages[-1].get("content") or ""
        elif (instructed := _PARTIAL.search(problem)) is not None:
            partial = instructed[1]  # an instructed continuation: the partial is in the user turn
        return await self._unless_abandoned(
            request, self._generate(body, problem, partial, chat=True)
        )

    async def _verdict(self, body: dict[str, Any], messages: list[dict[str, Any]]) -> JSONResponse:
        """A generative PRM's one-token verdict on the step in the last user turn."""
        step = next((m.get("content") or "" for m in reversed(messages) if m["role"] == "user"), "")
        await self._scoring_latency()
        self.stats.verdict_requests += 1
        p = score_of(step, jitter=self.jitter)
        ranked = sorted([("+", math.log(p)), ("-", math.log(1.0 - p))], key=lambda t: -t[1])
        alternatives = [
            {"token": token, "logprob": logprob, "bytes": list(token.encode())}
            for token, logprob in ranked
        ]
        chosen = alternatives[0]
        top = alternatives[: max(1, int(body.get("top_logprobs") or 1))]
        prompt_tokens = sum(_tokens(str(m.get("content") or "")) for m in messages)
        return JSONResponse(
            {
                "id": f"verdict-{self.stats.verdict_requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake-prm"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": chosen["token"]},
                        "finish_reason": "length",
                        "logprobs": {"content": [{**chosen, "top_logprobs": top}]},
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": 1,
                    "total_tokens": prompt_tokens + 1,
                },
            }
        )

    async def completions(self, request: Request) -> JSONResponse:
        body = await request.json()
        prompt = str(body.get("prompt") or "")
        head, _, partial = prompt.rpartition(_CHATML_ASSISTANT)
        problem = head.rsplit("<|im_start|>user\n", 1)[-1]
        return await self._unless_abandoned(
            request, self._generate(body, problem, partial, chat=False)
        )

    async def _scoring_latency(self) -> None:
        self.stats.enter()
        try:
            await asyncio.sleep(self.prm_latency)
        finally:
            self.stats.leave()

    async def pooling(self, request: Request) -> JSONResponse:
        body = await request.json()
        inputs = body.get("input") or []
        inputs = [inputs] if isinstance(inputs, str) else inputs
        await self._scoring_latency()
        self.stats.pooling_requests += 1
        data = []
        for index, text in enumerate(inputs):
            if self.task == "chain":
                data.append({"index": index, "object": "pooling", "data": self._chain_rows(text)})
                continue
            rows = []
            for step in text.split(STEP_TAG)[:-1]:
                match = re.search(r"(\d+) ([+-]) (\d+) = (\d+)", step)
                ok = True
                if match:
                    ok = _right(int(match[1]), match[2], int(match[3]), int(match[4]))
                p_pos = RIGHT if ok else WRONG
                if self.jitter:
                    p_pos = round(p_pos - (_digest("jitter", step) % 97) / 1000, 4)
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

    def _chain_rows(self, text: str) -> list[list[float]]:
        """Task mode: one ``[p_neg, p_pos]`` row per ``<extra_0>`` of the assistant turn."""
        problem = chain_task.find_problem(text)
        if problem is None:
            raise HTTPException(400, "task chain: no 'Start at N. Add A, then B, ...' problem")
        steps = _assistant_turn(text).split(STEP_TAG)[:-1]
        return [[1.0 - p, p] for p in chain_task.step_scores(problem, steps, self.prm_noise)]

    async def classify(self, request: Request) -> JSONResponse:
        """vLLM's ``/classify``: two classes per input, ``probs[-1]`` the "correct" one."""
        body = await request.json()
        inputs = body.get("input") or []
        inputs = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs]
        await self._scoring_latency()
        self.stats.classify_requests += 1
        data = []
        for index, text in enumerate(inputs):
            p = score_of(_assistant_turn(text), jitter=self.jitter)
            data.append(
                {
                    "index": index,
                    "label": "correct" if p >= 0.5 else "incorrect",
                    "probs": [round(1.0 - p, 4), p],
                    "num_classes": 2,
                }
            )
        prompt_tokens = sum(_tokens(t) for t in inputs)
        return JSONResponse(
            {
                "id": f"classify-{self.stats.classify_requests}",
                "object": "list",
                "created": int(time.time()),
                "model": body.get("model", "fake-rm"),
                "data": data,
                "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
            }
        )

    async def predict(self, request: Request) -> JSONResponse:
        """TEI's ``/predict``: per input, ``{"label", "score"}`` entries sorted by score."""
        body = await request.json()
        inputs = body.get("inputs") or []
        if isinstance(inputs, str) or (inputs and all(isinstance(x, str) for x in inputs)):
            inputs = [inputs]  # a single input: one text, or one pair
        await self._scoring_latency()
        self.stats.predict_requests += 1
        answer = []
        for item in inputs:
            parts = [item] if isinstance(item, str) else [str(x) for x in item]
            p = score_of(_assistant_turn(parts[-1]), jitter=self.jitter)
            if body.get("raw_scores"):
                logit = round(math.log(p / (1.0 - p)), 4)
                scores = [("correct", logit), ("incorrect", -logit)]
            else:
                scores = [("correct", p), ("incorrect", round(1.0 - p, 4))]
            scores.sort(key=lambda pair: -pair[1])
            answer.append([{"label": label, "score": score} for label, score in scores])
        return JSONResponse(answer)


def _bound_socket(port: int, *, nodelay: bool = False) -> socket.socket:
    # asyncio sets TCP_NODELAY on accepted connections only when the listening socket names its
    # protocol; without it a keep-alive response (headers and body written apart) waits ~40 ms
    # for the client's delayed ACK (Nagle), which swamps a zero-latency server.
    protocol = socket.IPPROTO_TCP if nodelay else 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@contextlib.contextmanager
def serving(
    server: FakeServer, *, start_timeout_s: float = 10.0, nodelay: bool = False
) -> Iterator[str]:
    """Serve ``server`` in this process (uvicorn in a thread, a free loopback port).

    Yields the root URL, ``http://127.0.0.1:PORT``; the OpenAI-compatible base URL is that plus
    ``/v1``. When the block ends the server stops (open connections are closed) and the thread
    is joined. ``nodelay`` sends every response at once (``TCP_NODELAY``, see ``--tcp-nodelay``).
    """
    sock = _bound_socket(0, nodelay=nodelay)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        server.app,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,
    )
    runner = uvicorn.Server(config)
    thread = threading.Thread(
        target=runner.run, kwargs={"sockets": [sock]}, name="fake-server", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout_s
        while not runner.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake server did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        runner.should_exit = True
        thread.join(timeout=10)
        sock.close()
        if thread.is_alive():  # pragma: no cover - uvicorn ignored should_exit
            raise RuntimeError("the fake server did not stop")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--gen-latency", type=float, default=0.2)
    parser.add_argument("--prm-latency", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument(
        "--jitter", action="store_true", help="vary scores a little by text (fewer ties)"
    )
    parser.add_argument("--task", choices=TASKS, default="scripted", help="what the server plays")
    parser.add_argument("--slip", type=float, default=0.25, help="task chain: chance a step slips")
    parser.add_argument(
        "--prm-noise", type=float, default=0.15, help="task chain: sd of the /pooling noise"
    )
    parser.add_argument(
        "--tcp-nodelay",
        action="store_true",
        help="send every response at once (TCP_NODELAY): no ~40 ms stall per keep-alive request",
    )
    parser.add_argument(
        "--notice-disconnects",
        action="store_true",
        help="stop a generation whose client hangs up, and count it in /stats as abandoned",
    )
    args = parser.parse_args(argv)
    sock = _bound_socket(args.port, nodelay=args.tcp_nodelay)
    server = FakeServer(
        args.gen_latency,
        args.prm_latency,
        args.steps,
        jitter=args.jitter,
        task=args.task,
        slip=args.slip,
        prm_noise=args.prm_noise,
        notice_disconnects=args.notice_disconnects,
    )
    config = uvicorn.Config(
        server.app, log_level="warning", access_log=False, backlog=2048, timeout_keep_alive=30
    )
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
