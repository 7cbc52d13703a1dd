"""A fault-injecting HTTP proxy on loopback, for testing retries against a real server.

It sits in front of an upstream server (``llama_cpp.server``, or ``benchmarks/fake_server.py`` in
the fault-matrix tests) and, request by request,
either forwards the request or injects a scripted fault: an HTTP error status (429 with
``Retry-After``, 500, 503, 4xx), a hang longer than the client's timeout, a truncated JSON body, or
a dropped connection. It runs its own event loop in a daemon thread, so sync and async tests can
use it alike, and stops itself (cancelling hung requests) when its ``with`` block ends::

    with FaultProxy(upstream_base_url, [rate_limited(retry_after="2"), server_error(503)]) as url:
        solver = OpenAISolver(model="m", base_url=url)   # url ends in /v1, like the upstream's
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

FaultKind = Literal["status", "hang", "truncate", "drop"]


@dataclass(frozen=True)
class Fault:
    """One injected fault.

    Attributes:
        kind: ``"status"`` (answer ``status`` with a JSON error body), ``"hang"`` (say nothing for
            ``hang_s`` seconds, then close), ``"truncate"`` (forward, then send only the first half
            of the upstream's JSON body, with a matching Content-Length), ``"drop"`` (close the
            connection without answering).
        status: HTTP status for ``"status"``.
        headers: extra response headers (``Retry-After``...).
    """

    kind: FaultKind
    status: int = 503
    headers: tuple[tuple[str, str], ...] = ()
    hang_s: float = 30.0


def rate_limited(retry_after: str = "0", *, header: str = "Retry-After") -> Fault:
    """429 Too Many Requests with the given ``Retry-After`` (or ``retry-after-ms``) value."""
    return Fault("status", status=429, headers=((header, retry_after),))


def server_error(status: int = 503, *, retry_after: str | None = None) -> Fault:
    """A 5xx answer (``Retry-After`` optional)."""
    headers = (("Retry-After", retry_after),) if retry_after is not None else ()
    return Fault("status", status=status, headers=headers)


def client_error(status: int = 400) -> Fault:
    """A non-transient 4xx answer."""
    return Fault("status", status=status)


def hang(seconds: float = 30.0) -> Fault:
    """No answer for ``seconds`` (longer than the client's timeout), then the connection closes."""
    return Fault("hang", hang_s=seconds)


def truncated_json() -> Fault:
    """The upstream's answer cut in half: valid HTTP, broken JSON."""
    return Fault("truncate")


def dropped() -> Fault:
    """The connection is closed without any answer."""
    return Fault("drop")


Script = Callable[[int, str, dict[str, Any]], "Fault | None"]
"""``script(index, path, json_body) -> fault or None`` (``index`` counts requests from 0)."""


@dataclass(frozen=True)
class Seen:
    """A request the proxy received, and the fault it injected (``None``: forwarded)."""

    index: int
    method: str
    path: str
    body: dict[str, Any]
    fault: Fault | None


def in_order(*faults: Fault | None) -> Script:
    """A script that injects ``faults[i]`` into request ``i`` and forwards everything after."""

    def script(index: int, path: str, body: dict[str, Any]) -> Fault | None:
        return faults[index] if index < len(faults) else None

    return script


def seeded_faults(
    rate: float,
    kinds: Sequence[Fault],
    *,
    seed: int = 0,
    first: Fault | None = None,
    max_in_a_row: int = 2,
) -> Script:
    """A script that injects a random fault into a fraction ``rate`` of the requests, reproducibly.

    Whether attempt ``k`` of a request faults, and with which of ``kinds``, is a function of
    ``seed``, the request (path and JSON body) and ``k`` alone, not of the order in which
    concurrent requests happen to arrive: the same search meets the same faults on every run. A
    request faults at most ``max_in_a_row`` times in a row (attempts after that are forwarded),
    so a client that retries at least that often always gets through.

    Args:
        rate: probability that an attempt faults (before the ``max_in_a_row`` limit).
        kinds: the faults to choose from, uniformly.
        seed: the seed of every choice.
        first: a fault injected into the first request the script sees (index 0) whatever the
            draw, so that a run is never fault-free by chance; it counts as that request's
            first attempt.
        max_in_a_row: most consecutive faults on one request.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must lie in [0, 1], got {rate}")
    if not kinds:
        raise ValueError("kinds must name at least one fault")
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def script(index: int, path: str, body: dict[str, Any]) -> Fault | None:
        canonical = json.dumps([path, body], sort_keys=True, default=str)
        key = hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()
        with lock:
            attempt = attempts.get(key, 0)
            attempts[key] = attempt + 1
        if attempt >= max_in_a_row:
            return None
        if index == 0 and first is not None:
            return first
        draw = random.Random(f"{seed}:{key}:{attempt}")
        if draw.random() >= rate:
            return None
        return kinds[draw.randrange(len(kinds))]

    return script


@dataclass
class FaultProxy:
    """The proxy. Use as a context manager; it yields its base URL (upstream's path kept).

    Args:
        upstream: the real server's base URL, e.g. ``"http://127.0.0.1:8000/v1"``.
        script: a :data:`Script`, or a sequence of faults applied in request order.
        only: request paths the script applies to (others are always forwarded); default all.
    """

    upstream: str
    script: Script | Sequence[Fault | None] = ()
    only: tuple[str, ...] = ()
    seen: list[Seen] = field(default_factory=list, init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        if not callable(self.script):
            self.script = in_order(*self.script)
        parts = urlsplit(self.upstream)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path.rstrip("/")
        self._counter = 0

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> str:
        ready = threading.Event()
        address: list[tuple[str, int]] = []
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self._server = server
            self._client = httpx.AsyncClient(timeout=120.0, verify=_ssl_context())
            address.append(server.sockets[0].getsockname()[:2])
            ready.set()

        def run() -> None:
            assert self._loop is not None
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=10):
            raise RuntimeError("the fault proxy did not start")
        host, port = address[0]
        return f"http://{host}:{port}{self._prefix}"

    def __exit__(self, *exc: object) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._client.aclose()
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = None

    @property
    def faults(self) -> list[Fault | None]:
        """The fault injected into each request so far, in order (``None``: forwarded)."""
        with self._lock:
            return [s.fault for s in self.seen]

    @property
    def injected(self) -> list[Fault]:
        """The faults injected so far, in order (forwarded requests left out)."""
        with self._lock:
            return [s.fault for s in self.seen if s.fault is not None]

    # --- one connection -----------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            for _ in range(10_000):  # keep-alive: one request after another, bounded
                request = await _read_request(reader)
                if request is None:
                    return
                if not await self._answer(writer, *request):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:  # the proxy is stopping: end quietly (asyncio would log)
            return
        finally:
            self._tasks.discard(task)
            # A client's idle keep-alive connection can outlive the test's loop: then this
            # handler is closed with the loop, which can no longer schedule the close.
            with contextlib.suppress(RuntimeError):
                writer.close()

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
    ) -> bool:
        """Answer one request; ``False`` when the connection must close."""
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = {}
        relative = path[len(self._prefix) :] if path.startswith(self._prefix) else path
        applies = not self.only or relative in self.only
        with self._lock:
            index = self._counter
            if applies:
                self._counter += 1
        assert callable(self.script)
        fault = self.script(index, relative, payload) if applies else None
        with self._lock:
            self.seen.append(Seen(index, method, relative, payload, fault))
        if fault is not None and fault.kind == "drop":
            return False
        if fault is not None and fault.kind == "hang":
            await asyncio.sleep(fault.hang_s)
            return False
        if fault is not None and fault.kind == "status":
            error = {"error": {"message": f"injected HTTP {fault.status}", "type": "injected"}}
            await _write(writer, fault.status, json.dumps(error).encode(), fault.headers)
            return True
        upstream = await self._client.request(
            method,
            self._origin + path,
            content=body,
            headers={"content-type": headers.get("content-type", "application/json")},
        )
        content = upstream.content
        if fault is not None and fault.kind == "truncate":
            content = content[: max(1, len(content) // 2)]
        kept = (("content-type", upstream.headers.get("content-type", "application/json")),)
        await _write(writer, upstream.status_code, content, kept)
        return True


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs tens of milliseconds: once per process, not once per proxy.
    return httpx.create_ssl_context()


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return method, path, headers, body


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}


async def _write(
    writer: asyncio.StreamWriter, status: int, body: bytes, headers: Sequence[tuple[str, str]]
) -> None:
    reason = _REASONS.get(status, "Server Error" if status >= 500 else "Status")
    lines = [f"HTTP/1.1 {status} {reason}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if not any(name.lower() == "content-type" for name, _ in headers):
        lines.append("content-type: application/json")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
