"""OpenAISolver: pure wire logic, documented vLLM bodies, and real HTTP against llama_cpp.server.

Tests marked ``model`` talk to SmolLM2-135M served by ``llama_cpp.server`` on loopback (the
``llama_server`` fixture); the others use an in-memory transport and need no network.
"""

from __future__ import annotations

import asyncio
import gc
import json
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any, cast

import httpx2
import openai
import pytest
from _fault_proxy import FaultProxy

import sal_plugins as sal
from sal_plugins.errors import ConfigError, MissingDependencyError, SolverError, TransientError
from sal_plugins.faults import MAX_RETRY_AFTER_S, parse_retry_after
from sal_plugins.openai_wire import generation_from_choice, stop_kind_of
from sal_plugins.solvers import OpenAISolver
from sal_plugins.solvers.base import GenerationRequest
from sal_plugins.solvers.prompts import chatml, completion_prompt
from sal_plugins.verifiers import FunctionVerifier

MODEL = "smollm2"
SYSTEM = "Solve the problem. Think step by step and separate the steps with a blank line."
STEP = GenerationRequest(
    problem="What is 23 + 48?",
    prefix_steps=("We add the tens and the units.",),
    n=2,
    stop=("\n\n",),
    max_tokens=16,
    seed=11,
    system_prompt=SYSTEM,
)

# --- pure wire logic ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "stop_reason", "stops", "kind"),
    [
        ("length", "\n\n", True, "length"),
        ("stop", "\n\n", True, "delimiter"),  # vLLM: the stop string that matched
        ("stop", None, True, "end"),  # vLLM: EOS
        ("stop", 128009, True, "end"),  # vLLM: a stop token id (e.g. <|eot_id|>)
        ("stop", "absent", True, "unknown"),  # OpenAI / llama.cpp: can't tell
        ("stop", "absent", False, "end"),  # no stop string asked: only EOS can stop
        ("content_filter", "absent", True, "unknown"),
    ],
)
def test_stop_kind_mapping(finish: str, stop_reason: object, stops: bool, kind: str) -> None:
    if stop_reason == "absent":
        assert stop_kind_of(finish, stops_requested=stops) == kind
    else:
        assert stop_kind_of(finish, stop_reason, stops_requested=stops) == kind


def test_retry_after_in_seconds_milliseconds_and_http_dates() -> None:
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after-ms": "150", "retry-after": "9"}) == pytest.approx(0.15)
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    later = format_datetime(datetime(2026, 1, 1, 12, 0, 30, tzinfo=timezone.utc), usegmt=True)
    assert parse_retry_after({"Retry-After": later}, now=now.timestamp()) == pytest.approx(30.0)
    assert parse_retry_after({"Retry-After": later}, now=now.timestamp() + 60) == 0.0  # past
    assert parse_retry_after({"Retry-After": "3600"}) == MAX_RETRY_AFTER_S
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


def test_kept_stop_string_is_stripped_and_means_delimiter() -> None:
    choice = {"index": 0, "text": "2 + 3 = 5\n\n", "finish_reason": "stop"}
    generation = generation_from_choice(choice, ["\n\n"])
    assert (generation.text, generation.stop_kind) == ("2 + 3 = 5", "delimiter")
    # vLLM said EOS: the model wrote the blank line itself, then ended.
    ended = generation_from_choice({**choice, "stop_reason": None}, ["\n\n"])
    assert (ended.text, ended.stop_kind) == ("2 + 3 = 5", "end")


def test_chat_and_completion_logprob_shapes() -> None:
    chat = {
        "index": 0,
        "message": {"role": "assistant", "content": "Hi"},
        "finish_reason": "length",
        "logprobs": {
            "content": [
                {"token": "H", "logprob": -0.5, "top_logprobs": [{"token": "H", "logprob": -0.5}]},
                {"token": "i", "logprob": -1.5, "top_logprobs": [{"token": "o", "logprob": -0.2}]},
            ]
        },
    }
    generation = generation_from_choice(chat, [])
    assert generation.token_logprobs == (-0.5, -1.5)
    assert generation.top_logprobs == ({"H": -0.5}, {"o": -0.2})
    completion = {
        "index": 0,
        "text": "Hi",
        "finish_reason": "length",
        "logprobs": {"tokens": ["H", "i"], "token_logprobs": [-0.5, -1.5], "top_logprobs": None},
    }
    generation = generation_from_choice(completion, [])
    assert (generation.token_logprobs, generation.top_logprobs) == ((-0.5, -1.5), None)


# --- documented vLLM bodies over an in-memory transport ---------------------------------------

Handler = Callable[[httpx2.Request], httpx2.Response]


def mock_solver(handler: Handler, **kwargs: Any) -> OpenAISolver:
    client = openai.AsyncOpenAI(
        base_url="http://vllm.test/v1",
        api_key="k",
        http_client=cast(Any, httpx2.AsyncClient(transport=httpx2.MockTransport(handler))),
    )
    return OpenAISolver(MODEL, client=client, **kwargs)


def vllm_chat_body(*choices: tuple[str, str, object]) -> dict[str, Any]:
    """A /v1/chat/completions body shaped as vLLM documents it (with ``stop_reason``)."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": text, "tool_calls": []},
                "logprobs": None,
                "finish_reason": finish,
                "stop_reason": stop_reason,
            }
            for i, (text, finish, stop_reason) in enumerate(choices)
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42},
        "prompt_logprobs": None,
    }


async def test_vllm_documented_chat_body_native_continuation_and_stop_reasons() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        body = vllm_chat_body(("23 + 48 = 71", "stop", "\n\n"), ("So 71.", "stop", None))
        return httpx2.Response(200, json=body)

    solver = mock_solver(handler, continuation="native")
    response = await solver.generate(STEP)
    assert [(g.text, g.stop_kind) for g in response.generations] == [
        ("23 + 48 = 71", "delimiter"),
        ("So 71.", "end"),
    ]
    assert (response.requests, response.prompt_tokens, response.completion_tokens) == (1, 30, 12)
    body = seen[0]
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert body["messages"][-1] == {"role": "assistant", "content": STEP.prefix_text}
    assert (body["n"], body["seed"], body["stop"]) == (2, 11, ["\n\n"])


async def test_vllm_documented_completion_body_and_raw_prompt() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        choice = {"index": 0, "text": "71", "logprobs": None, "finish_reason": "stop"}
        body = {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 1,
            "model": MODEL,
            "choices": [
                {**choice, "stop_reason": None},
                {**choice, "index": 1, "stop_reason": "\n\n"},
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        }
        return httpx2.Response(200, json=body)

    response = await mock_solver(handler, continuation="completion").generate(STEP)
    assert [g.stop_kind for g in response.generations] == ["end", "delimiter"]
    assert str(seen[0]["prompt"]) == completion_prompt(STEP, chatml)


async def test_auto_continuation_is_native_on_vllm_and_instructed_elsewhere() -> None:
    def serve(owner: str) -> Handler:
        def handler(request: httpx2.Request) -> httpx2.Response:
            if request.url.path.endswith("/models"):
                model = {"id": MODEL, "object": "model", "created": 1, "owned_by": owner}
                return httpx2.Response(200, json={"object": "list", "data": [model]})
            return httpx2.Response(
                200, json=vllm_chat_body(("x", "stop", None), ("y", "stop", None))
            )

        return handler

    vllm = mock_solver(serve("vllm"))
    other = mock_solver(serve("llamacpp"))
    assert vllm.continuation == "auto"
    await vllm.generate(STEP)
    await other.generate(STEP)
    assert (vllm.continuation, other.continuation) == ("native", "instructed")


async def test_auto_continuation_does_not_hold_up_a_fresh_start() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/models"):
            return httpx2.Response(503, json={"error": {"message": "models busy"}})
        return httpx2.Response(200, json=vllm_chat_body(("x", "stop", None), ("y", "stop", None)))

    solver = mock_solver(handler)
    fresh = await solver.generate(GenerationRequest(problem="p", n=2))
    assert len(fresh.generations) == 2 and solver.continuation == "auto"
    with pytest.raises(TransientError, match="models busy"):  # a partial solution needs the answer
        await solver.generate(STEP)


async def test_fewer_choices_than_n_are_topped_up_with_consecutive_seeds_and_remembered() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append(body)
        return httpx2.Response(200, json=vllm_chat_body((f"seed {body['seed']}", "stop", None)))

    solver = mock_solver(handler, continuation="native")
    request = GenerationRequest(problem="p", n=3, seed=100)
    first = await solver.generate(request)
    assert [g.text for g in first.generations] == ["seed 100", "seed 101", "seed 102"]
    assert first.requests == 3 and solver.honours_n is False
    assert [b["n"] for b in seen] == [3, 1, 1]
    seen.clear()
    second = await solver.generate(request)
    assert second.requests == 3 and sorted(b["n"] for b in seen) == [1, 1, 1]


async def test_a_server_capping_n_is_topped_up_in_requests_of_its_cap() -> None:
    seen: list[tuple[int, int]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append((body["n"], body["seed"]))
        texts = [(f"{body['seed']}.{i}", "stop", None) for i in range(min(body["n"], 2))]
        return httpx2.Response(200, json=vllm_chat_body(*texts))

    response = await mock_solver(handler, continuation="native").generate(
        GenerationRequest(problem="p", n=5, seed=10)
    )
    assert [g.text for g in response.generations] == ["10.0", "10.1", "12.0", "12.1", "14.0"]
    assert response.requests == 3 and sorted(seen) == [(1, 14), (2, 12), (5, 10)]


@pytest.mark.parametrize(
    ("status", "headers", "transient", "retry_after"),
    [
        (429, {"Retry-After": "3"}, True, 3.0),
        (429, {"retry-after-ms": "250"}, True, 0.25),
        (500, {}, True, None),
        (503, {"Retry-After": "1"}, True, 1.0),
        (408, {}, True, None),
        (400, {}, False, None),
        (401, {}, False, None),
        (404, {}, False, None),
        (422, {}, False, None),
    ],
)
async def test_http_errors_map_to_transient_or_solver_errors(
    status: int, headers: dict[str, str], transient: bool, retry_after: float | None
) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers=headers, json={"error": {"message": "nope"}})

    with pytest.raises(SolverError if not transient else TransientError) as caught:
        await mock_solver(handler, continuation="native").generate(STEP)
    error = caught.value
    assert error.status_code == status and error.transient is transient
    assert error.retry_after == retry_after
    assert "nope" in str(error)


@pytest.mark.parametrize(
    "response",
    [
        httpx2.Response(
            200,
            content=b'{"choices": [{"index": 0, "mess',
            headers={"content-type": "application/json"},
        ),
        httpx2.Response(
            200, content=b"<html>gateway</html>", headers={"content-type": "text/html"}
        ),
        httpx2.Response(200, json={"object": "chat.completion", "choices": []}),
    ],
    ids=["truncated-json", "not-json", "no-choices"],
)
async def test_broken_bodies_are_transient(response: httpx2.Response) -> None:
    with pytest.raises(TransientError):
        await mock_solver(lambda request: response, continuation="native").generate(STEP)


async def test_connection_failures_are_transient() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    with pytest.raises(TransientError, match="connection"):
        await mock_solver(handler, continuation="native").generate(STEP)


def test_config_errors_name_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        OpenAISolver(MODEL)
    with pytest.raises(ConfigError, match="'http://h:1/v1' instead"):
        OpenAISolver(MODEL, "http://h:1/v1/chat/completions")
    with pytest.raises(ConfigError, match="http://"):
        OpenAISolver(MODEL, "localhost:8000/v1")
    with pytest.raises(ConfigError, match="continuation"):
        OpenAISolver(MODEL, "http://h:1/v1", continuation="prefill")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="model"):
        OpenAISolver("", "http://h:1/v1")
    with pytest.raises(ConfigError, match="timeout"):
        OpenAISolver(MODEL, "http://h:1/v1", timeout=0)
    with pytest.raises(ConfigError, match="transport"):
        OpenAISolver(MODEL, "http://h:1/v1", transport="requests")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not both"):
        OpenAISolver(MODEL, client=openai.AsyncOpenAI(api_key="x"), transport="aiohttp")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env-host:9/v1/")
    assert OpenAISolver(MODEL).base_url == "http://env-host:9/v1"


def test_without_aiohttp_the_transport_names_the_package_or_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    missing = {"httpx_aiohttp", "aiohttp"}
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name in missing else real(name, *args),
    )
    with pytest.raises(MissingDependencyError, match=r"httpx_aiohttp.*openai\[aiohttp\]"):
        OpenAISolver(MODEL, "http://h:1/v1", transport="aiohttp")
    with pytest.raises(MissingDependencyError, match=r"install 'aiohttp'"):
        OpenAISolver(MODEL, "http://h:1/v1", transport="direct")
    assert OpenAISolver(MODEL, "http://h:1/v1").transport == "httpx"  # auto falls back


def test_auto_transport_is_direct_when_aiohttp_is_installed_except_for_an_injected_client() -> None:
    assert OpenAISolver(MODEL, "http://h:1/v1").transport == "direct"
    assert OpenAISolver(MODEL, "http://h:1/v1", transport="httpx").transport == "httpx"
    injected = OpenAISolver(MODEL, client=openai.AsyncOpenAI(api_key="x", base_url="http://h:1"))
    assert injected.transport == "httpx"


# --- real HTTP against llama_cpp.server -------------------------------------------------------


@pytest.mark.model
@pytest.mark.parametrize("mode", ["native", "completion", "instructed"])
async def test_continuation_modes_over_real_http(llama_server: str, mode: str) -> None:
    proxy = FaultProxy(llama_server)
    with proxy as url:
        solver = OpenAISolver(MODEL, url, continuation=mode)  # type: ignore[arg-type]
        response = await solver.generate(STEP)
    assert len(response.generations) == STEP.n
    assert response.prompt_tokens > 0 and response.completion_tokens > 0
    assert all("\n\n" not in g.text for g in response.generations)
    body = proxy.seen[0].body
    if mode == "completion":
        assert proxy.seen[0].path == "/completions"
        assert body["prompt"] == completion_prompt(STEP, chatml)
    else:
        assert proxy.seen[0].path == "/chat/completions"
        last = body["messages"][-1]
        if mode == "native":
            assert last == {"role": "assistant", "content": STEP.prefix_text}
            assert body["continue_final_message"] is True
        else:
            assert last["role"] == "user" and STEP.prefix_text in last["content"]
            assert "continue_final_message" not in body


@pytest.mark.model
async def test_one_choice_per_request_is_topped_up_by_fan_out(llama_server: str) -> None:
    proxy = FaultProxy(llama_server)
    with proxy as url:
        solver = OpenAISolver(MODEL, url, continuation="completion")
        request = GenerationRequest(problem="Name a colour.", n=3, max_tokens=16, seed=5)
        first = await solver.generate(request)
        second = await solver.generate(request)
    assert len(first.generations) == 3 and first.requests == 3
    assert len(second.generations) == 3 and second.requests == 3
    assert solver.honours_n is False
    asked = [(s.body["n"], s.body["seed"]) for s in proxy.seen]
    assert asked[:3] == [(3, 5), (1, 6), (1, 7)]  # llama.cpp answered n=3 with one choice
    assert sorted(asked[3:]) == [(1, 5), (1, 6), (1, 7)]  # then fanned out from the start
    # Same seeds, same texts (the very first request met an uncached prompt, see below).
    assert [g.text for g in first.generations][1:] == [g.text for g in second.generations][1:]


@pytest.mark.model
async def test_stop_detection_over_real_http(llama_server: str) -> None:
    solver = OpenAISolver(MODEL, llama_server, continuation="completion")
    short = GenerationRequest(
        problem="What is 2 + 2? Reply with just the number.", temperature=0.0, max_tokens=32
    )
    ended = (await solver.generate(short)).generations[0]
    assert ended.stop_kind == "end" and "4" in ended.text  # no stop string asked: EOS
    cut = (
        await solver.generate(GenerationRequest(problem="Tell me a story.", max_tokens=4))
    ).generations[0]
    assert cut.stop_kind == "length"
    steps = await solver.generate(STEP)
    # llama.cpp drops the stop string and reports no stop_reason: a step end it cannot name.
    for generation in steps.generations:
        assert "\n\n" not in generation.text
        assert generation.stop_kind in ("unknown", "length")


@pytest.mark.model
@pytest.mark.parametrize("mode", ["completion", "instructed"])
async def test_logprobs_over_real_http(llama_server: str, mode: str) -> None:
    solver = OpenAISolver(MODEL, llama_server, continuation=mode)  # type: ignore[arg-type]
    request = GenerationRequest(
        problem="Name a fruit.", n=1, max_tokens=8, seed=1, logprobs=True, top_logprobs=2
    )
    generation = (await solver.generate(request)).generations[0]
    assert generation.token_logprobs and all(v <= 0.0 for v in generation.token_logprobs)
    assert generation.top_logprobs and len(generation.top_logprobs) == len(
        generation.token_logprobs
    )
    assert all(1 <= len(top) <= 3 for top in generation.top_logprobs)


@pytest.mark.model
async def test_seeded_requests_repeat_over_real_http(llama_server: str) -> None:
    """Seeds reach the server, which samples the same text for the same seed.

    llama.cpp's server evaluates a prompt it has never seen in one batch, and a cached one from
    its KV cache; the floating-point results can differ in the last bits. So the first request is
    a warm-up and the comparison is between later ones.
    """
    solver = OpenAISolver(MODEL, llama_server, continuation="completion")
    request = GenerationRequest(problem="Write a short sentence.", n=2, max_tokens=16, seed=42)
    await solver.generate(GenerationRequest(problem=request.problem, max_tokens=4, seed=0))
    first = await solver.generate(request)
    again = await solver.generate(request)
    assert [g.text for g in first.generations] == [g.text for g in again.generations]


@pytest.mark.model
@pytest.mark.parametrize("strategy", ["beam_search", "best_of_n"])
def test_search_end_to_end_over_real_http(llama_server: str, strategy: str) -> None:
    solver = OpenAISolver(MODEL, llama_server, continuation="completion")

    def longer_is_better(problem: str, steps: list[str]) -> float:
        return min(1.0, len(" ".join(steps)) / 200)

    verifier = FunctionVerifier(longer_is_better, score_range=(0.0, 1.0))
    common: dict[str, Any] = {"solver": solver, "verifier": verifier, "seed": 0, "max_tokens": 32}
    search: sal.SearchStrategy
    if strategy == "beam_search":
        search = sal.BeamSearch(n=4, beam_width=2, max_steps=2, **common)
    else:
        search = sal.BestOfN(n=3, **common)
    result = search.run("What is 23 + 48?")
    assert result.completions and result.best is not None and result.best.text
    assert result.usage.generation_calls >= 3 and result.usage.completion_tokens > 0
    assert result.usage.failures == 0
    assert all(c.score is not None for c in result.completions)
    assert len(result.tree.to_json()) > 0


@pytest.mark.model
@pytest.mark.parametrize("transport", ["httpx", "aiohttp", "direct"])
def test_one_solver_serves_successive_sync_runs(llama_server: str, transport: str) -> None:
    # Each sync run() has its own event loop; pooled connections must not leak across them, and
    # the client opened on a run's loop is closed with it.
    solver = OpenAISolver(
        MODEL, llama_server, continuation="completion", transport=cast(Any, transport)
    )
    search = sal.BestOfN(solver=solver, n=1, max_tokens=4, seed=0, max_retries=0)
    gc.collect()  # what earlier tests left behind is theirs, not this solver's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(2):
            result = search.run("Name a colour.")
            assert result.usage.failures == 0 and len(result.completions) == 1
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


@pytest.mark.model
def test_clients_are_closed_when_their_loop_shuts_down(llama_server: str) -> None:
    # An application that awaits arun() and never calls aclose(): the client is closed when
    # asyncio.run() shuts the loop down, not left to the garbage collector.
    solver = OpenAISolver(MODEL, llama_server, continuation="completion")
    search = sal.BestOfN(solver=solver, n=1, max_tokens=4, seed=0, max_retries=0)
    for _ in range(2):
        result = asyncio.run(search.arun("Name a colour."))
        assert result.usage.failures == 0
        assert dict(solver._wires) == {}  # closed at the loop's shutdown, and forgotten


@pytest.mark.model
async def test_concurrent_streamed_requests_to_the_embedded_server_all_finish(
    llama_server: str,
) -> None:
    # llama_cpp.server's default (interrupt_requests) ends a streamed response as soon as another
    # request arrives: a search's concurrent candidates would come back cut. The embedded server
    # turns that off.
    client = openai.AsyncOpenAI(base_url=llama_server, api_key="x", max_retries=0)

    async def streamed(seed: int) -> tuple[str, str | None]:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Count from one to ten in words."}],
            max_tokens=24,
            seed=seed,
            stream=True,
        )
        text, finish = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
        return text, finish

    async with client:
        replies = await asyncio.gather(*(streamed(seed) for seed in (1, 2, 3)))
    assert all(text.strip() for text, _ in replies)
    assert all(finish in ("stop", "length") for _, finish in replies)
