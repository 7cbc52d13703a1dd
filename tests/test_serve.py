"""``sal serve`` on loopback, in front of the project's fake OpenAI-compatible server.

Driven by the real ``openai`` client (sync, async, streaming), LangChain's ``ChatOpenAI`` and
LlamaIndex's ``OpenAILike``; each answer is a search whose result and usage equal the Python API's
with the same settings and seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import sal_plugins as sal
from sal_plugins.solvers import OpenAISolver
from sal_plugins.verifiers import PoolingPRM

pytest.importorskip("fastapi")
import uvicorn

from sal_plugins.serve import ACCESS_LOGGER, ServeSettings, create_app
from sal_plugins.serve._access import key_fingerprint
from sal_plugins.serve._heap import YOUNG_THRESHOLD

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from _server import fake_server, reset, stats

PROBLEM = "Tom has 23 apples and buys 48 more. How many apples does he have?"
SECRET = "sk-upstream-secret-0123456789"
MESSAGES = [{"role": "user", "content": PROBLEM}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with fake_server(0.0, 0.0) as root:
        yield root


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[str]:
    with fake_server(1.5, 0.0, extra_args=("--notice-disconnects",)) as root:
        yield root


@contextlib.contextmanager
def serving(
    settings: ServeSettings, *, grace: float = 5.0, asgi_spec: str | None = None
) -> Iterator[tuple[str, Any]]:
    """Run the app with uvicorn on a free loopback port; yield its ``/v1`` URL and the server.

    ``asgi_spec`` makes the app see that ASGI spec version instead of uvicorn's (``"2.4"``: the
    version from which Starlette stops listening for a streaming client's disconnect).
    """
    app = create_app(settings)
    if asgi_spec is not None:
        inner = app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                scope = {**scope, "asgi": {**scope.get("asgi", {}), "spec_version": asgi_spec}}
            await inner(scope, receive, send)

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        timeout_graceful_shutdown=grace,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):  # at most ~10 s
        if server.started:
            break
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1", server
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def settings_for(root: str, **overrides: Any) -> ServeSettings:
    values: dict[str, Any] = {
        "upstream_url": f"{root}/v1",
        "upstream_model": "fake",
        "upstream_api_key": SECRET,
        "verifier": PoolingPRM(model="fake-prm", base_url=root),
        "defaults": {"max_tokens": 64},
    }
    values.update(overrides)
    return ServeSettings(**values)


def in_process(root: str, name: str, **settings: Any) -> sal.SearchResult:
    """The same search through the Python API."""
    from sal_plugins.strategies import build_strategy

    solver = OpenAISolver(model="fake", base_url=f"{root}/v1", api_key=SECRET)
    verifier = PoolingPRM(model="fake-prm", base_url=root)
    strategy = build_strategy(name, solver=solver, verifier=verifier, max_tokens=64, **settings)
    return strategy.run(PROBLEM)


def client(url: str, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=60)


# --- the search, three ways of asking for it -------------------------------------------------


def test_a_model_prefix_searches_and_matches_the_python_api(upstream: str) -> None:
    with serving(settings_for(upstream)) as (url, _):
        answer = client(url).chat.completions.create(
            model="best_of_n:fake", messages=MESSAGES, seed=0, extra_body={"sal": {"n": 4}}
        )
    expected = in_process(upstream, "best_of_n", n=4, seed=0)
    assert answer.choices[0].message.content == expected.text
    assert answer.model == "best_of_n:fake"
    summary = (answer.model_extra or {})["sal"]
    assert summary["strategy"] == "best_of_n" and summary["answer"] == expected.answer
    usage = expected.usage
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == usage.prompt_tokens + usage.verifier_prompt_tokens
    assert (
        answer.usage.completion_tokens == usage.completion_tokens + usage.verifier_completion_tokens
    )
    details = (answer.usage.model_extra or {})["sal"]
    assert details["generation_calls"] == usage.generation_calls
    assert details["verifier_calls"] == usage.verifier_calls


def test_extra_body_chooses_the_strategy_and_matches_the_python_api(upstream: str) -> None:
    sal_settings = {"strategy": "beam_search", "n": 4, "beam_width": 2, "max_steps": 3}
    with serving(settings_for(upstream)) as (url, _):
        answer = client(url).chat.completions.create(
            model="fake", messages=MESSAGES, seed=0, extra_body={"sal": sal_settings}
        )
    expected = in_process(upstream, "beam_search", n=4, beam_width=2, max_steps=3, seed=0)
    assert answer.choices[0].message.content == expected.text
    assert (answer.model_extra or {})["sal"]["strategy"] == "beam_search"


def test_a_plain_model_passes_through_to_the_upstream(upstream: str) -> None:
    with serving(settings_for(upstream)) as (url, _):
        answer = client(url).chat.completions.create(model="fake", messages=MESSAGES, seed=0)
    direct = client(f"{upstream}/v1").chat.completions.create(
        model="fake", messages=MESSAGES, seed=0
    )
    assert answer.choices[0].message.content == direct.choices[0].message.content
    assert "sal" not in (answer.model_extra or {})


async def test_async_streaming_sends_progress_then_content_then_usage(upstream: str) -> None:
    with serving(settings_for(upstream)) as (url, _):
        aclient = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0)
        stream = await aclient.chat.completions.create(
            model="dvts:fake",
            messages=MESSAGES,
            seed=0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"sal": {"n": 4, "beam_width": 2, "max_steps": 3}},
        )
        chunks = [chunk async for chunk in stream]
        whole = await aclient.chat.completions.create(
            model="dvts:fake",
            messages=MESSAGES,
            seed=0,
            extra_body={"sal": {"n": 4, "beam_width": 2, "max_steps": 3}},
        )
        await aclient.close()
    events = [(c.model_extra or {}).get("sal_event") for c in chunks]
    kinds = [e["kind"] for e in events if e]
    assert kinds[0] == "search_started" and "candidates_scored" in kinds
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 1  # deltas, not one burst
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens  # type: ignore[union-attr]


def test_langchain_chat_openai_invokes_and_streams_in_a_chain(upstream: str) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    from langchain_core.output_parsers import StrOutputParser

    with serving(settings_for(upstream)) as (url, _):
        model = langchain_openai.ChatOpenAI(
            base_url=url, api_key="none", model="best_of_n:fake", seed=0, max_retries=0
        )
        chain = model | StrOutputParser()
        answer = chain.invoke(PROBLEM)
        streamed = "".join(chain.stream(PROBLEM))
    assert answer and streamed == answer


def test_llama_index_openai_like_chats_and_streams(upstream: str) -> None:
    openai_like = pytest.importorskip("llama_index.llms.openai_like")
    from llama_index.core.base.llms.types import ChatMessage

    with serving(settings_for(upstream)) as (url, _):
        llm = openai_like.OpenAILike(
            api_base=url, api_key="none", model="best_of_n:fake", is_chat_model=True, max_retries=0
        )
        message = [ChatMessage(role="user", content=PROBLEM)]
        answer = llm.chat(message).message.content
        streamed = "".join(r.delta or "" for r in llm.stream_chat(message))
    assert answer and streamed == answer


def test_llama_index_openai_like_answers_in_a_query_engine(upstream: str) -> None:
    """A query engine over a document: the synthesizer's prompt (context + query) is searched."""
    openai_like = pytest.importorskip("llama_index.llms.openai_like")
    from llama_index.core import Document, SummaryIndex

    with serving(settings_for(upstream)) as (url, _):
        llm = openai_like.OpenAILike(
            api_base=url, api_key="none", model="best_of_n:fake", is_chat_model=True, max_retries=0
        )
        index = SummaryIndex.from_documents([Document(text=PROBLEM)])
        response = index.as_query_engine(llm=llm).query("How many apples does Tom have?")
        streaming = index.as_query_engine(llm=llm, streaming=True).query(
            "How many apples does Tom have?"
        )
        streamed = "".join(streaming.response_gen)
        metrics = httpx.get(f"{url.removesuffix('/v1')}/metrics").text
    # Each synthesised answer is a whole searched solution (the fake upstream's, with its answer).
    assert "The answer is" in str(response) and "The answer is" in streamed
    calls = int(re.search(r"^sal_search_calls_total (\d+)$", metrics, re.MULTILINE)[1])
    assert calls >= 4  # two searches of at least one generation and one verifier call each


def test_replicas_share_searches_and_a_dead_one_loses_no_request(upstream: str) -> None:
    """``--upstream`` twice: searches reach both servers; with one down, nothing fails."""
    with fake_server(0.0, 0.0) as second:
        reset(upstream)
        both = settings_for(upstream, upstream_url=(f"{upstream}/v1", f"{second}/v1"))
        with serving(both) as (url, _):
            for k in range(6):
                question = f"Tom has {k + 2} apples and buys 3 more. How many apples does he have?"
                answer = client(url).chat.completions.create(
                    model="best_of_n:fake", messages=[{"role": "user", "content": question}]
                )
                assert answer.choices[0].message.content
        served = [stats(root)["generation_requests"] for root in (upstream, second)]
    assert all(count > 0 for count in served), served

    dead = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
    with serving(settings_for(upstream, upstream_url=(dead, f"{upstream}/v1"))) as (url, _):
        for _ in range(4):  # searches, and pass-through requests (a plain model name)
            searched = client(url).chat.completions.create(
                model="best_of_n:fake", messages=MESSAGES
            )
            passed = client(url).chat.completions.create(model="fake", messages=MESSAGES)
            assert searched.choices[0].message.content and passed.choices[0].message.content


# --- guards ------------------------------------------------------------------------------------


def test_bearer_keys_are_required_when_configured(upstream: str) -> None:
    with serving(settings_for(upstream, api_keys=frozenset({"k1"}))) as (url, _):
        with pytest.raises(openai.AuthenticationError) as missing:
            client(url, key="wrong").chat.completions.create(
                model="best_of_n:fake", messages=MESSAGES
            )
        assert missing.value.status_code == 401
        assert missing.value.body["code"] == "invalid_api_key"
        answer = client(url, key="k1").chat.completions.create(
            model="best_of_n:fake", messages=MESSAGES, extra_body={"sal": {"n": 2}}
        )
        assert answer.choices[0].message.content
        assert httpx.get(f"{url}/models").status_code == 401


@pytest.mark.parametrize(
    ("sal_settings", "named"),
    [
        ({"n": 0}, "n"),
        ({"strategy": "nope"}, "nope"),
        ({"beam_widht": 2}, "beam_widht"),
        ({"budget": {"max_calls": 2.5}}, "max_calls"),
    ],
)
def test_invalid_search_settings_are_a_400_naming_the_field(
    upstream: str, sal_settings: dict[str, Any], named: str
) -> None:
    with (
        serving(settings_for(upstream)) as (url, _),
        pytest.raises(openai.BadRequestError) as caught,
    ):
        client(url).chat.completions.create(
            model="fake", messages=MESSAGES, extra_body={"sal": sal_settings}
        )
    assert named in str(caught.value)


def test_a_malformed_request_is_a_400_and_an_unknown_model_a_404(upstream: str) -> None:
    with serving(settings_for(upstream)) as (url, _):
        bad = httpx.post(f"{url}/chat/completions", json={"model": "fake", "messages": []})
        assert bad.status_code == 400 and "messages" in bad.json()["error"]["message"]
        unknown = httpx.post(
            f"{url}/chat/completions", json={"model": "beam_search:other", "messages": MESSAGES}
        )
        assert unknown.status_code == 404


def test_a_request_over_the_size_limit_is_a_413(upstream: str) -> None:
    with serving(settings_for(upstream, max_body_bytes=300)) as (url, _):
        big = [{"role": "user", "content": "x" * 1000}]
        response = httpx.post(f"{url}/chat/completions", json={"model": "fake", "messages": big})
    assert response.status_code == 413


def test_a_key_over_its_concurrency_limit_gets_429_with_retry_after(slow_upstream: str) -> None:
    settings = settings_for(slow_upstream, max_concurrency_per_key=1)
    with serving(settings) as (url, _):
        body = {"model": "best_of_n:fake", "messages": MESSAGES, "sal": {"n": 1}}

        async def both() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as http:
                first = asyncio.ensure_future(http.post(f"{url}/chat/completions", json=body))
                await asyncio.sleep(0.5)
                second = await http.post(f"{url}/chat/completions", json=body)
                return [await first, second]

        first, second = asyncio.run(both())
    assert first.status_code == 200
    assert second.status_code == 429 and second.headers["retry-after"] == "1"


def test_a_client_that_disconnects_cancels_its_search(
    slow_upstream: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    reset(slow_upstream)
    with serving(settings_for(slow_upstream)) as (url, _):
        body = {"model": "best_of_n:fake", "messages": MESSAGES, "sal": {"n": 2}}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/chat/completions", json=body, timeout=0.5)
        for _ in range(40):  # the server notices within a poll or two
            metrics = httpx.get(f"{url.removesuffix('/v1')}/metrics").text
            if "sal_searches_cancelled_total 1" in metrics:
                break
            time.sleep(0.1)
    assert "sal_searches_cancelled_total 1" in metrics
    assert "sal_requests_in_flight 0" in metrics
    assert [line["status"] for line in access_lines(caplog)] == [499]
    for _ in range(40):  # the upstream hears its request hang up too, long before its 1.5 s
        if stats(slow_upstream)["abandoned"]:
            break
        time.sleep(0.05)
    assert stats(slow_upstream)["abandoned"] >= 1
    assert stats(slow_upstream)["generation_requests"] == 0


@pytest.mark.parametrize("asgi_spec", ["2.3", "2.4"])
def test_a_stream_whose_client_leaves_is_cancelled_with_its_upstream_requests(
    slow_upstream: str, caplog: pytest.LogCaptureFixture, asgi_spec: str
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    reset(slow_upstream)
    body = {"model": "best_of_n:fake", "messages": MESSAGES, "stream": True, "sal": {"n": 2}}
    with serving(settings_for(slow_upstream), asgi_spec=asgi_spec) as (url, _):
        with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=10) as response:
            lines = response.iter_lines()  # kept: dropping the iterator closes the connection
            first = next(lines)  # the role chunk
            time.sleep(0.5)  # the search is waiting on the upstream now; the client hangs up
        for _ in range(40):
            if stats(slow_upstream)["abandoned"]:
                break
            time.sleep(0.05)
        metrics = httpx.get(f"{url.removesuffix('/v1')}/metrics").text
    assert first.startswith("data: ")
    upstream = stats(slow_upstream)
    assert upstream["abandoned"] >= 1 and upstream["generation_requests"] == 0
    assert "sal_searches_cancelled_total 1" in metrics and "sal_requests_in_flight 0" in metrics
    assert [(line["status"], line["stream"]) for line in access_lines(caplog)] == [(499, True)]


def test_shutdown_lets_an_in_flight_search_finish(slow_upstream: str) -> None:
    body = {"model": "best_of_n:fake", "messages": MESSAGES, "sal": {"n": 1}}
    results: list[httpx.Response] = []
    with serving(settings_for(slow_upstream), grace=10.0) as (url, server):
        request = threading.Thread(
            target=lambda: results.append(
                httpx.post(f"{url}/chat/completions", json=body, timeout=30)
            )
        )
        request.start()
        time.sleep(0.5)
        server.should_exit = True  # what SIGTERM does
        request.join(timeout=30)
    assert results and results[0].status_code == 200
    assert results[0].json()["choices"][0]["message"]["content"]


def test_health_metrics_and_models(upstream: str) -> None:
    with serving(settings_for(upstream)) as (url, _):
        root = url.removesuffix("/v1")
        assert httpx.get(f"{root}/health").json() == {"status": "ok"}
        client(url).chat.completions.create(
            model="best_of_n:fake", messages=MESSAGES, extra_body={"sal": {"n": 2}}
        )
        metrics = httpx.get(f"{root}/metrics").text
        ids = [m.id for m in client(url).models.list()]
    assert 'sal_requests_total{status="200"} 1' in metrics
    assert "sal_request_seconds_count 1" in metrics
    assert "fake" in ids and "beam_search:fake" in ids and "dvts:fake" in ids


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The access log's lines, parsed."""
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCESS_LOGGER]


def test_each_request_gets_one_access_line_with_no_key_or_body(
    upstream: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    key = "client-key-0123456789"
    with serving(settings_for(upstream, api_keys=frozenset({key}))) as (url, _):
        searched = client(url, key=key).chat.completions.create(
            model="best_of_n:fake", messages=MESSAGES, seed=0, extra_body={"sal": {"n": 2}}
        )
        chunks = list(
            client(url, key=key).chat.completions.create(
                model="beam_search:fake",
                messages=MESSAGES,
                stream=True,
                extra_body={"sal": {"n": 2, "beam_width": 1, "max_steps": 2}},
            )
        )
        client(url, key=key).chat.completions.create(model="fake", messages=MESSAGES)
        with pytest.raises(openai.AuthenticationError):
            client(url, key="wrong").chat.completions.create(model="fake", messages=MESSAGES)
        time.sleep(0.2)  # a stream's line is written after its last byte
    lines = {line.get("strategy", "refused"): line for line in access_lines(caplog)}
    assert sorted(lines) == ["beam_search", "best_of_n", "pass-through", "refused"]
    usage = searched.usage
    assert usage is not None
    assert lines["best_of_n"]["tokens"] == usage.total_tokens
    details = (usage.model_extra or {})["sal"]
    assert lines["best_of_n"]["calls"] == details["generation_calls"] + details["verifier_calls"]
    assert lines["beam_search"]["stream"] is True and lines["beam_search"]["status"] == 200
    assert chunks and lines["beam_search"]["calls"] >= 2
    assert lines["pass-through"]["model"] == "fake" and lines["refused"]["status"] == 401
    assert {line.get("key") for line in lines.values()} == {key_fingerprint(key), None}
    text = caplog.text
    assert key not in text and SECRET not in text and PROBLEM not in text


def test_bodies_are_logged_only_when_asked_for_with_credentials_masked(
    upstream: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    pasted = "sk-proj-abcdefghijklmnop0123"
    messages = [{"role": "user", "content": f"{PROBLEM} (my key is {pasted})"}]
    with serving(settings_for(upstream, log_bodies=True)) as (url, _):
        client(url).chat.completions.create(
            model="best_of_n:fake", messages=messages, extra_body={"sal": {"n": 2}}
        )
    (line,) = access_lines(caplog)
    assert PROBLEM in line["body"] and pasted not in line["body"]


def test_the_collector_is_tuned_while_serving_and_put_back_after(upstream: str) -> None:
    before = gc.get_threshold()
    with serving(settings_for(upstream)):
        during = gc.get_threshold(), gc.get_freeze_count()
    assert during[0][0] >= YOUNG_THRESHOLD and during[1] > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    with serving(settings_for(upstream, tune_collector=False)):
        assert (gc.get_threshold(), gc.get_freeze_count()) == (before, 0)


def test_a_process_that_froze_objects_itself_keeps_them_frozen() -> None:
    from sal_plugins.serve._heap import tuned_collector

    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with tuned_collector():
            assert gc.get_threshold()[0] >= YOUNG_THRESHOLD
        assert gc.get_freeze_count() == frozen  # not unfrozen by the server's shutdown
    finally:
        gc.unfreeze()


def test_the_upstream_key_never_reaches_a_client_or_the_metrics(upstream: str) -> None:
    with serving(settings_for(upstream)) as (url, _):
        seen = [
            httpx.post(
                f"{url}/chat/completions",
                json={"model": "best_of_n:fake", "messages": MESSAGES, "sal": {"n": 2}},
            ).text,
            httpx.post(
                f"{url}/chat/completions", json={"model": "nope", "messages": MESSAGES}
            ).text,
            httpx.get(f"{url.removesuffix('/v1')}/metrics").text,
        ]
    assert all(SECRET not in text for text in seen)


# --- the command ----------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def sal_serve(
    *flags: str, ready_s: float = 120.0, stderr: list[str] | None = None
) -> Iterator[str]:
    """``sal serve FLAGS`` as a child process; yield its ``/v1`` URL once ``/health`` answers.

    ``stderr`` gets what the process wrote there, once it has stopped.
    """
    import subprocess

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sal_plugins.cli", "serve", "--port", str(port), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(process.stderr.read().decode() if process.stderr else "")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        yield f"{url}/v1"
    finally:
        process.terminate()
        process.wait(timeout=60)
        if stderr is not None and process.stderr is not None:
            stderr.append(process.stderr.read().decode())


def test_sal_serve_in_front_of_an_upstream(upstream: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("client-key-one\nclient-key-two\n")
    flags = ("--upstream", f"{upstream}/v1", "--upstream-model", "fake")
    prm = ("--prm-url", upstream, "--prm-model", "fake-prm", "--keys-file", str(keys))
    written: list[str] = []
    with sal_serve(*flags, *prm, "--upstream-api-key", SECRET, stderr=written) as url:
        answer = client(url, key="client-key-two").chat.completions.create(
            model="best_of_n:fake", messages=MESSAGES, seed=0, extra_body={"sal": {"n": 4}}
        )
        with pytest.raises(openai.AuthenticationError):
            client(url).chat.completions.create(model="best_of_n:fake", messages=MESSAGES)
    expected = in_process(upstream, "best_of_n", n=4, seed=0)
    # the CLI's defaults for a named upstream are the library's (max_tokens aside)
    assert answer.choices[0].message.content
    assert (answer.model_extra or {})["sal"]["answer"] == expected.answer
    # the access log: a JSON line per request on stderr, with no key and no body in it
    log = written[0]
    lines = [json.loads(line) for line in log.splitlines() if line.startswith('{"time"')]
    assert [(line["status"], line.get("key")) for line in lines] == [
        (200, key_fingerprint("client-key-two")),
        (401, None),
    ]
    spent = (answer.model_extra or {})["sal"]["usage"]
    assert lines[0]["calls"] == spent["generation_calls"] + spent["verifier_calls"]
    assert all(secret not in log for secret in ("client-key-two", SECRET, PROBLEM))


def test_sal_serve_logs_bodies_only_with_the_flag(upstream: str) -> None:
    flags = ("--upstream", f"{upstream}/v1", "--upstream-model", "fake", "--log-bodies")
    pasted = "sk-live-abcdefghijklmnop0123"
    messages = [{"role": "user", "content": f"{PROBLEM} {pasted}"}]
    written: list[str] = []
    with sal_serve(*flags, stderr=written) as url:
        client(url).chat.completions.create(
            model="best_of_n:fake", messages=messages, extra_body={"sal": {"n": 2}}
        )
    (line,) = [json.loads(t) for t in written[0].splitlines() if t.startswith('{"time"')]
    assert PROBLEM in line["body"] and pasted not in written[0]
    quiet: list[str] = []
    with sal_serve(*flags[:4], "--no-access-log", stderr=quiet) as url:
        client(url).chat.completions.create(model="fake", messages=MESSAGES)
    assert '{"time"' not in quiet[0] and "serving" in quiet[0]


def test_sal_serve_flags_are_checked_before_anything_starts() -> None:
    import subprocess

    run = subprocess.run(
        [sys.executable, "-m", "sal_plugins.cli", "serve", "--upstream", "http://127.0.0.1:9/v1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "--upstream-model" in run.stderr


@pytest.mark.model
def test_sal_serve_with_no_flags_serves_the_embedded_model() -> None:
    with sal_serve() as url:
        models = [m.id for m in client(url).models.list()]
        answer = client(url).chat.completions.create(
            model="best_of_n:smollm2",
            messages=[{"role": "user", "content": "What is 2 + 3?"}],
            max_tokens=24,
            seed=0,
            extra_body={"sal": {"n": 2}},
        )
    assert "smollm2" in models and "beam_search:smollm2" in models
    assert answer.choices[0].message.content
    assert (answer.model_extra or {})["sal"]["usage"]["generation_calls"] >= 2


# --- tools: the upstream decides, its tool calls come back as it sent them -------------------

TOOL_CALL_BODY = (
    b'{"id":"chatcmpl-up","object":"chat.completion","created":1,"model":"fake",'
    b'"choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant",'
    b'"content":null,"tool_calls":[{"id":"call_1","type":"function","function":'
    b'{"name":"add","arguments":"{\\"a\\": 23, \\"b\\": 48}"}}]}}],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":5,"total_tokens":10}}'
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            },
        },
    }
]


@contextlib.contextmanager
def tool_calling_upstream(root: str) -> Iterator[str]:
    """Answers a request with tools and no tool result yet by calling ``add``; else forwards."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def chat(request: Request) -> Response:
        body = await request.json()
        answered = any(m.get("role") == "tool" for m in body["messages"])
        if body.get("tools") and not answered:
            return Response(TOOL_CALL_BODY, media_type="application/json")
        body.pop("tools", None)
        body.pop("tool_choice", None)
        async with httpx.AsyncClient() as http:
            upstream = await http.post(f"{root}/v1/chat/completions", json=body)
        return Response(upstream.content, media_type="application/json")

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_tool_calls_come_back_as_the_upstream_sent_them(upstream: str) -> None:
    with tool_calling_upstream(upstream) as tools_url:
        settings = settings_for(upstream, upstream_url=tools_url)
        with serving(settings) as (url, _):
            raw = httpx.post(
                f"{url}/chat/completions",
                json={"model": "best_of_n:fake", "messages": MESSAGES, "tools": TOOLS},
            )
            streamed = list(
                client(url).chat.completions.create(
                    model="best_of_n:fake",
                    messages=MESSAGES,
                    tools=TOOLS,
                    stream=True,  # type: ignore[arg-type]
                )
            )
            answered = client(url).chat.completions.create(
                model="best_of_n:fake",
                tools=TOOLS,  # type: ignore[arg-type]
                messages=[
                    *MESSAGES,
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "add", "arguments": '{"a": 23, "b": 48}'},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "71"},
                ],  # type: ignore[list-item]
                extra_body={"sal": {"n": 2}},
            )
    assert raw.content == TOOL_CALL_BODY  # byte-faithful
    calls = [
        c.choices[0].delta.tool_calls
        for c in streamed
        if c.choices and c.choices[0].delta.tool_calls
    ]
    assert calls and calls[0][0].function.name == "add"  # type: ignore[union-attr,index]
    assert answered.choices[0].message.content  # after the tool result, an answer is searched
    assert (answered.model_extra or {})["sal"]["strategy"] == "best_of_n"
