"""The one HTTP client every HTTP verifier uses, and the one place HTTP errors are translated.

What is transient and how long to wait is the fault policy's (:mod:`sal_plugins.faults`): the
statuses it names (408, 409, 425, 429, 5xx), timeouts, connection errors and bodies that are not
valid JSON become :class:`~sal_plugins.errors.TransientError` carrying ``retry_after`` (from
``retry-after-ms`` or ``Retry-After``, capped); any other 4xx becomes
:class:`~sal_plugins.errors.VerifierError` naming the verifier. Verifiers never retry: the search
driver does. The API key never appears in a repr or an error message.

Requests go over ``aiohttp`` when it is installed (one session per event loop) and over
``httpx`` otherwise, or when a test or proxy passes an ``httpx`` transport: at a few hundred
requests in flight, httpx's connection pool spent more CPU handing out connections than the
scoring itself (most of ``sal serve``'s CPU with a PRM), aiohttp's does not.

An endpoint may have several base URLs, replicas of the same model: every request goes where
the endpoint's :class:`~sal_plugins.replicas.ReplicaSet` says (fewest requests in flight, one
search's requests on one replica when the caller names its ``affinity``), and a replica that
fails with a transient fault rests while the request is sent again at once to another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Hashable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpx

from sal_plugins._redact import mask_key, redact, redact_url
from sal_plugins.errors import ConfigError, TransientError, VerifierError
from sal_plugins.faults import is_transient_status, parse_retry_after
from sal_plugins.openai_wire import usage_of
from sal_plugins.replicas import Replica, ReplicaPolicy, ReplicaSet, replica_urls
from sal_plugins.verifiers.base import report_usage

__all__ = [
    "AiohttpClient",
    "HTTPClient",
    "HTTPEndpoint",
    "HTTPStatusError",
    "HttpxClient",
    "server_root",
]

_BODY_PREVIEW = 300


class HTTPStatusError(VerifierError):
    """A non-transient 4xx answer; ``status_code`` says which."""

    def __init__(self, message: str, *, verifier: str, status_code: int) -> None:
        super().__init__(message, verifier=verifier)
        self.status_code = status_code


class AiohttpClient:
    """An ``aiohttp`` session for one endpoint on one event loop (what :meth:`HTTPEndpoint.client`
    yields when aiohttp is installed and no httpx transport was given)."""

    def __init__(self, headers: dict[str, str], timeout: float) -> None:
        import aiohttp

        self.errors: type[Exception] = aiohttp.ClientError
        self.session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            connector=aiohttp.TCPConnector(limit=0, ssl=_ssl_context()),
        )

    @property
    def is_closed(self) -> bool:
        return bool(self.session.closed)

    async def post(self, url: str, payload: object) -> tuple[int, dict[str, str], bytes]:
        """POST ``payload`` as JSON; the status, headers and body (aiohttp errors as they come)."""
        data = json.dumps(payload).encode()
        async with self.session.post(url, data=data) as response:
            return response.status, dict(response.headers.items()), await response.read()

    async def aclose(self) -> None:
        await self.session.close()


class HttpxClient:
    """An ``httpx`` client for one endpoint on one event loop (without aiohttp, or when a test or
    proxy passes an httpx transport); the same interface as :class:`AiohttpClient`."""

    errors: type[Exception] = httpx.TransportError

    def __init__(
        self,
        headers: dict[str, str],
        timeout: float,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.client = httpx.AsyncClient(  # no base URL: each request names its replica's
            headers=headers, timeout=timeout, transport=transport, verify=_ssl_context()
        )

    @property
    def is_closed(self) -> bool:
        return self.client.is_closed

    async def post(self, url: str, payload: object) -> tuple[int, dict[str, str], bytes]:
        """POST ``payload`` as JSON; the status, headers and body (httpx errors as they come)."""
        response = await self.client.post(url, json=payload)
        return response.status_code, dict(response.headers.items()), response.content

    async def aclose(self) -> None:
        await self.client.aclose()


HTTPClient = HttpxClient | AiohttpClient
"""What :meth:`HTTPEndpoint.client` yields and :meth:`HTTPEndpoint.post` takes."""


def server_root(base_url: str | Sequence[str], verifier: str) -> str | Sequence[str]:
    """Check that a server-native route's ``base_url`` (each, if a list) is the server root.

    Returns ``base_url`` as given; the checks of :func:`~sal_plugins.replicas.replica_urls`
    follow in :class:`HTTPEndpoint`.
    """
    for url in [base_url] if isinstance(base_url, str) else base_url:
        if isinstance(url, str) and url.strip().rstrip("/").endswith("/v1"):
            root = url.strip().rstrip("/")[: -len("/v1")]
            raise ConfigError(
                f"{verifier}: base_url is the server root for this route, e.g. "
                f"{redact_url(root)!r}, not the OpenAI-compatible {redact_url(url)!r}"
            )
    return base_url


@dataclass(frozen=True)
class HTTPEndpoint:
    """Where and how a verifier talks to its server.

    Attributes:
        base_url: server root (or ``.../v1`` for OpenAI-compatible routes); paths are appended.
            A list is several replicas of the same model, each listed once.
        verifier: the verifier's name, used in every error message.
        api_key: sent as ``Authorization: Bearer <api_key>`` when set.
        timeout: seconds for the whole request (connect, write, read).
        transport: an ``httpx`` transport to use instead of the network (tests, proxies).
        replica_policy: cool-down and spill settings of several base URLs.
        base_urls: every base URL, checked and without trailing slashes.
        replicas: the replica set requests are spread over.
    """

    base_url: str | Sequence[str]
    verifier: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0
    transport: httpx.AsyncBaseTransport | None = None
    replica_policy: ReplicaPolicy | None = None
    base_urls: tuple[str, ...] = field(init=False, compare=False)
    replicas: ReplicaSet = field(init=False, compare=False)

    def __repr__(self) -> str:
        shown = [redact_url(url) for url in self.base_urls]
        where = shown[0] if isinstance(self.base_url, str) else shown
        return (
            f"HTTPEndpoint(base_url={where!r}, verifier={self.verifier!r}, "
            f"api_key={mask_key(self.api_key)!r}, timeout={self.timeout!r})"
        )

    def __post_init__(self) -> None:
        urls = replica_urls(self.base_url, self.verifier)
        if self.timeout <= 0:
            raise ConfigError(f"{self.verifier}: timeout must be positive, got {self.timeout}")
        if not isinstance(self.base_url, str):
            object.__setattr__(self, "base_url", urls)  # a caller's list, frozen like the rest
        object.__setattr__(self, "base_urls", urls)
        object.__setattr__(self, "replicas", ReplicaSet(urls, policy=self.replica_policy))

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[HTTPClient]:
        """The client of this endpoint on the running event loop, kept for the loop's lifetime.

        Connections are reused from one scoring call to the next (a fresh client per call paid
        a TCP handshake and a pool each time); each event loop has its own clients, since
        connections cannot cross loops, and they are closed when the loop shuts down
        (``asyncio.run`` ends). The TLS context is built once per process.
        """
        loop = asyncio.get_running_loop()
        clients = _LOOP_CLIENTS.get(loop)
        if clients is None:
            clients = _LOOP_CLIENTS[loop] = {}
            closer = _closed_at_loop_end(clients)
            _CLOSERS[loop] = closer
            await anext(closer)  # started: the loop finalises it at shutdown
        key = (self.base_urls, self.api_key, self.timeout, id(self.transport))
        client = clients.get(key)
        if client is None or client.is_closed:
            client = clients[key] = self._new_client()
        yield client

    def _new_client(self) -> HTTPClient:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.transport is None and _has_aiohttp():
            return AiohttpClient(headers, self.timeout)
        return HttpxClient(headers, self.timeout, self.transport)

    async def post(
        self,
        client: HTTPClient,
        path: str,
        payload: object,
        *,
        affinity: Hashable | None = None,
    ) -> Any:
        """POST ``payload`` as JSON to ``path`` and return the decoded JSON body.

        An OpenAI-style ``usage`` in the body (vLLM's chat, ``/pooling`` and ``/classify``
        responses carry one) is reported to the search (:func:`report_usage`).

        Args:
            client: from :meth:`client`.
            path: the route, appended to the chosen replica's base URL.
            payload: the JSON body.
            affinity: the search the request belongs to
                (:func:`~sal_plugins.replicas.affinity_of` its problem), kept on one replica
                when there are several; ``None``: the least-loaded replica.

        Raises:
            TransientError: 408, 429, 5xx, timeouts, connection failures, invalid JSON (from
                the last replica tried, when there are several).
            VerifierError: any other 4xx.
        """

        async def send(replica: Replica) -> Any:
            return await self._post_to(client, f"{replica.url}/{path.lstrip('/')}", payload)

        body = await self.replicas.call(affinity, send)
        _report_usage_in(body)
        return body

    async def _post_to(self, client: HTTPClient, url: str, payload: object) -> Any:
        shown = redact_url(url)
        status, headers, raw = await self._send(client, url, shown, payload)
        if is_transient_status(status):
            raise TransientError(
                f"{self.verifier}: HTTP {status} from POST {shown}: {_preview(raw)}",
                status_code=status,
                retry_after=parse_retry_after(headers),
            )
        if status >= 400:
            raise HTTPStatusError(
                f"HTTP {status} from POST {shown}: {_preview(raw)}",
                verifier=self.verifier,
                status_code=status,
            )
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise TransientError(
                f"{self.verifier}: invalid JSON from POST {shown}: {_preview(raw)}",
                status_code=status,
            ) from error

    async def _send(
        self, client: HTTPClient, url: str, shown: str, payload: object
    ) -> tuple[int, dict[str, str], bytes]:
        """One POST; timeouts and transport failures become :class:`TransientError`."""
        try:
            return await client.post(url, payload)
        except (TimeoutError, httpx.TimeoutException) as error:
            raise TransientError(
                f"{self.verifier}: timed out after {self.timeout}s on POST {shown}"
            ) from error
        except client.errors as error:
            raise TransientError(
                f"{self.verifier}: connection failed on POST {shown} ({type(error).__name__}: "
                f"{redact(str(error))})"
            ) from error


def _report_usage_in(body: object) -> None:
    prompt, completion = usage_of(body)
    if prompt or completion:
        report_usage(prompt, completion)


def _preview(raw: bytes) -> str:
    text = redact(raw.decode("utf-8", "replace").strip().replace("\n", " "))
    return text[:_BODY_PREVIEW] + ("..." if len(text) > _BODY_PREVIEW else "")


_LOOP_CLIENTS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[Any, ...], HTTPClient]
] = weakref.WeakKeyDictionary()
_CLOSERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = (
    weakref.WeakKeyDictionary()
)


async def _closed_at_loop_end(
    clients: dict[tuple[Any, ...], HTTPClient],
) -> AsyncGenerator[None, None]:
    """Closes a loop's clients when the loop finalises this generator at shutdown."""
    try:
        yield
    finally:
        for client in list(clients.values()):
            await client.aclose()
        clients.clear()


@lru_cache(maxsize=1)
def _has_aiohttp() -> bool:
    import importlib.util

    return importlib.util.find_spec("aiohttp") is not None


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
