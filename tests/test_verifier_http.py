"""The shared HTTP layer of the verifiers: status codes, timeouts and broken bodies map to the
right errors, in one place, and a real loopback server is reached the same way."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from _fault_proxy import (
    Fault,
    FaultProxy,
    dropped,
    hang,
    rate_limited,
    server_error,
    truncated_json,
)

from sal_plugins.errors import ConfigError, TransientError, VerifierError
from sal_plugins.faults import parse_retry_after
from sal_plugins.verifiers import PoolingPRM, Trajectory


def prm_answering(handler: object, **kwargs: object) -> PoolingPRM:
    return PoolingPRM(
        model="m",
        base_url="http://vllm.test",
        transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


async def score(verifier: PoolingPRM) -> object:
    return await verifier.score("p", [Trajectory(("a",))])


async def test_429_is_transient_with_retry_after_seconds() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, text="slow down", headers={"Retry-After": "7"})

    with pytest.raises(TransientError, match="PoolingPRM: HTTP 429") as caught:
        await score(prm_answering(handler))
    assert caught.value.retry_after == 7.0 and caught.value.status_code == 429


def test_retry_after_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()
    date = "Thu, 01 Jan 2026 12:00:30 GMT"
    assert parse_retry_after({"Retry-After": date}, now=now) == 30.0
    assert parse_retry_after({"Retry-After": "Thu, 01 Jan 2026 11:00:00 GMT"}, now=now) == 0.0
    assert parse_retry_after({"Retry-After": "soon"}, now=now) is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("status", [500, 502, 503, 408])
async def test_server_errors_are_transient(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="boom")

    with pytest.raises(TransientError, match=f"HTTP {status}"):
        await score(prm_answering(handler))


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_client_errors_name_the_verifier(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"object": "error", "message": "bad input"})

    with pytest.raises(VerifierError, match=f"PoolingPRM: HTTP {status} .*bad input") as caught:
        await score(prm_answering(handler))
    assert caught.value.verifier == "PoolingPRM"
    assert not isinstance(caught.value, TransientError)


async def test_timeouts_and_broken_json_are_transient() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    with pytest.raises(TransientError, match="timed out"):
        await score(prm_answering(hang))

    def truncated(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"data": [{"index": 0, "da')

    with pytest.raises(TransientError, match="invalid JSON"):
        await score(prm_answering(truncated))


async def test_connection_refused_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    verifier = PoolingPRM(model="m", base_url=f"http://127.0.0.1:{port}", timeout=5)
    with pytest.raises(TransientError, match="connection failed"):
        await score(verifier)


def test_base_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="base_url must start with http"):
        PoolingPRM(model="m", base_url="localhost:8000")


def test_server_native_routes_take_the_server_root() -> None:
    from sal_plugins.verifiers import ClassifyRM, TEIReward

    for make in (
        lambda: PoolingPRM(model="m", base_url="http://h:8000/v1"),
        lambda: ClassifyRM(model="m", base_url="http://h:8000/v1/"),
        lambda: TEIReward(base_url="http://h:8000/v1"),
    ):
        with pytest.raises(
            ConfigError, match=r"server root for this route, e\.g\. 'http://h:8000'"
        ):
            make()


@pytest.fixture
def loopback_pooling_server() -> Iterator[tuple[str, list[dict[str, object]]]]:
    """A real HTTP server on 127.0.0.1 answering ``/pooling`` with the documented body."""
    seen: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            body = json.loads(self.rfile.read(length))
            seen.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
            data = [
                {"index": i, "object": "pooling", "data": [[0.25, 0.75]]}
                for i, _ in enumerate(body["input"])
            ]
            payload = json.dumps({"object": "list", "data": data, "model": "m"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


async def test_real_loopback_request(
    loopback_pooling_server: tuple[str, list[dict[str, object]]],
) -> None:
    base_url, seen = loopback_pooling_server
    verifier = PoolingPRM(model="m", base_url=base_url + "/", api_key="k")
    rows = await verifier.score("p", [Trajectory(("a",)), Trajectory(("b",))])
    assert [r.step_scores for r in rows] == [(0.75,), (0.75,)]
    assert seen[0]["path"] == "/pooling" and seen[0]["auth"] == "Bearer k"


def test_driver_retries_a_rate_limited_verifier() -> None:
    """The verifier raises TransientError on 429; the search driver retries, the search goes on."""
    import sal_plugins as sal
    from sal_plugins.solvers import ScriptedSolver

    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(429, headers={"Retry-After": "0"}, text="rate limited")
        count = len(json.loads(request.content)["input"])
        data = [{"index": i, "object": "pooling", "data": [[0.3, 0.7]]} for i in range(count)]
        return httpx.Response(200, json={"object": "list", "data": data})

    solver = ScriptedSolver(["The answer is $\\boxed{4}$."])
    search = sal.BestOfN(solver=solver, verifier=prm_answering(handler), n=2, seed=0)
    result = search.run("What is 2 + 2?")
    assert calls["n"] == 2 and not result.failures
    assert result.usage.retries == 1 and result.best.score == 0.7


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (rate_limited("3"), "HTTP 429"),
        (server_error(503), "HTTP 503"),
        (truncated_json(), "invalid JSON"),
        (dropped(), "connection failed"),
        (hang(5.0), "timed out"),
    ],
)
async def test_faults_over_real_loopback_are_transient(
    loopback_pooling_server: tuple[str, list[dict[str, object]]], fault: Fault, message: str
) -> None:
    """The fault-injecting proxy in front of a real loopback server: every fault is retryable."""
    base_url, _ = loopback_pooling_server
    with FaultProxy(base_url, [fault]) as proxy_url:
        verifier = PoolingPRM(model="m", base_url=proxy_url, timeout=1.0)
        with pytest.raises(TransientError, match=message) as caught:
            await verifier.score("p", [Trajectory(("a",))])
        if fault.status == 429 and fault.kind == "status":
            assert caught.value.retry_after == 3.0
        rows = await verifier.score("p", [Trajectory(("a",))])  # the next request goes through
        assert rows[0].step_scores == (0.75,)


def test_search_survives_verifier_faults_over_real_loopback(
    loopback_pooling_server: tuple[str, list[dict[str, object]]],
) -> None:
    import sal_plugins as sal
    from sal_plugins.solvers import ScriptedSolver

    base_url, _ = loopback_pooling_server
    with FaultProxy(base_url, [server_error(500), rate_limited("0")]) as proxy_url:
        verifier = PoolingPRM(model="m", base_url=proxy_url, timeout=5.0)
        solver = ScriptedSolver(["The answer is $\\boxed{4}$."])
        result = sal.BestOfN(solver=solver, verifier=verifier, n=2, seed=0).run("What is 2 + 2?")
    assert not result.failures and result.usage.retries == 2
    assert result.best.score == 0.75


async def test_requests_go_over_aiohttp_unless_an_httpx_transport_is_given() -> None:
    """httpx's pool cost more CPU than the scoring at hundreds in flight; aiohttp's does not."""
    from sal_plugins.verifiers._http import AiohttpClient, HTTPEndpoint, HttpxClient

    async with HTTPEndpoint("http://127.0.0.1:9", verifier="V").client() as client:
        assert isinstance(client, AiohttpClient)
    mock = httpx.MockTransport(lambda request: httpx.Response(200, json={}))
    async with HTTPEndpoint("http://127.0.0.1:9", verifier="V", transport=mock).client() as client:
        assert isinstance(client, HttpxClient)


async def test_a_refused_connection_over_aiohttp_is_transient_and_names_the_verifier() -> None:
    from sal_plugins.verifiers._http import HTTPEndpoint

    endpoint = HTTPEndpoint("http://127.0.0.1:9", verifier="MyPRM", api_key="sk-secret-123456")
    async with endpoint.client() as client:
        with pytest.raises(TransientError, match="MyPRM: connection failed") as caught:
            await endpoint.post(client, "/pooling", {"input": "x"})
    assert "sk-secret" not in str(caught.value)
