"""How :class:`~sal_plugins.solvers.openai.OpenAISolver` sends its JSON: one small interface, three ways.

* :class:`SDKWire`: through an ``openai.AsyncOpenAI`` client (its generic ``post``/``get``, over
  httpx or the SDK's aiohttp client); errors translated by the fault policy.
* :class:`DirectWire`: straight over an ``aiohttp`` session, without the SDK's per-request
  machinery (option copies, header models, response wrappers), which costs about a millisecond of
  CPU per request: with dozens of requests in flight (fan-out servers, beam search and DVTS at
  large N) that millisecond is what stands between a search and its critical path.
* :class:`ReplicatedWire`: one of the above per replica of the model, each request sent where
  the solver's :class:`~sal_plugins.replicas.ReplicaSet` says (failing over to another replica).

Both raise only sal-plugins errors, classified by :mod:`sal_plugins.faults`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

from sal_plugins._redact import redact, redact_url
from sal_plugins.errors import ProviderError, SolverError, TransientError
from sal_plugins.faults import is_transient_status, parse_retry_after, translate_openai_error
from sal_plugins.replicas import Replica, ReplicaSet

if TYPE_CHECKING:
    import aiohttp
    from openai import AsyncOpenAI

__all__ = ["DirectWire", "ReplicatedWire", "SDKWire", "Wire", "translated"]


class Wire(Protocol):
    """JSON in, JSON out, sal-plugins errors on failure."""

    async def post(
        self, path: str, payload: Mapping[str, Any], *, affinity: Hashable | None = None
    ) -> object:
        """POST ``payload`` to ``path`` (relative to the API root); the decoded body.

        ``affinity`` names the search the request belongs to: a wire over several replicas keeps
        one search on one replica (its prefix cache); a wire to one server has no choice to make.
        """
        ...

    async def get(self, path: str) -> object:
        """GET ``path``; the decoded body."""
        ...

    async def close(self) -> None:
        """Release the connections."""
        ...


class SDKWire:
    """Requests through an ``openai`` client (its auth, its transport, its settings)."""

    def __init__(self, client: AsyncOpenAI, *, owned: bool) -> None:
        self.client = client
        self._owned = owned

    async def post(
        self, path: str, payload: Mapping[str, Any], *, affinity: Hashable | None = None
    ) -> object:
        # The SDK's generic post: no per-request transformation of typed params and no pydantic
        # model of the response, which the search reads as plain JSON anyway.
        return await translated(
            lambda: self.client.post(path, body=payload, cast_to=cast(Any, object))
        )

    async def get(self, path: str) -> object:
        return await translated(lambda: self.client.get(path, cast_to=cast(Any, object)))

    async def close(self) -> None:
        if self._owned:
            await self.client.close()


async def translated(make: Callable[[], Awaitable[Any]]) -> Any:
    """Await one ``openai`` SDK call; its errors become sal-plugins errors."""
    try:
        return await make()
    except asyncio.CancelledError:
        raise
    except Exception as error:
        translated = translate_openai_error(error)
        if translated is None:
            raise
        raise translated from error


class DirectWire:
    """Requests straight over one ``aiohttp`` session (made on, and bound to, the running loop).

    Args:
        base_url: the API root (``.../v1``).
        api_key: sent as ``Authorization: Bearer``.
        timeout: seconds for a whole request.
        max_connections: connections the session keeps open at most.
    """

    def __init__(
        self, base_url: str, api_key: str, *, timeout: float, max_connections: int
    ) -> None:
        import aiohttp

        self._root = base_url.rstrip("/")
        self._shown = redact_url(self._root)
        self._aiohttp = aiohttp
        self._session: aiohttp.ClientSession = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=timeout),
            connector=aiohttp.TCPConnector(limit=max_connections),
            json_serialize=json.dumps,
        )
        self._timeout = timeout

    async def post(
        self, path: str, payload: Mapping[str, Any], *, affinity: Hashable | None = None
    ) -> object:
        return await self._send("POST", path, json.dumps(payload).encode())

    async def get(self, path: str) -> object:
        return await self._send("GET", path, None)

    async def close(self) -> None:
        await self._session.close()

    async def _send(self, method: str, path: str, data: bytes | None) -> object:
        url = f"{self._root}/{path.lstrip('/')}"
        shown = f"{self._shown}/{path.lstrip('/')}"
        try:
            async with self._session.request(method, url, data=data) as response:
                body = await response.read()
                status, headers = response.status, response.headers
        except asyncio.CancelledError:
            raise
        except TimeoutError as error:
            raise TransientError(f"request timed out after {self._timeout}s ({shown})") from error
        except self._aiohttp.ClientError as error:
            raise TransientError(
                f"connection to {shown} failed: {type(error).__name__}: {redact(str(error))}"
            ) from error
        if status >= 400:
            raise _status_error(status, body, dict(headers.items()))
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise TransientError(f"server sent broken JSON: {body[:200]!r}") from error


class ReplicatedWire:
    """One wire per replica; each request goes to the replica ``replicas`` picks.

    A transient fault rests that replica and the request is sent again at once to another
    healthy one (:meth:`ReplicaSet.call <sal_plugins.replicas.ReplicaSet.call>`).

    Args:
        replicas: the solver's replica set (shared by every event loop's wire).
        wire_for: builds the wire of one replica's base URL.
    """

    def __init__(self, replicas: ReplicaSet, wire_for: Callable[[str], Wire]) -> None:
        self._replicas = replicas
        self._wires = {replica.url: wire_for(replica.url) for replica in replicas.replicas}

    async def post(
        self, path: str, payload: Mapping[str, Any], *, affinity: Hashable | None = None
    ) -> object:
        async def send(replica: Replica) -> object:
            return await self._wires[replica.url].post(path, payload)

        return await self._replicas.call(affinity, send)

    async def get(self, path: str) -> object:
        async def send(replica: Replica) -> object:
            return await self._wires[replica.url].get(path)

        return await self._replicas.call(None, send)

    async def close(self) -> None:
        for wire in self._wires.values():
            await wire.close()


def _status_error(status: int, body: bytes, headers: dict[str, str]) -> ProviderError:
    detail = _detail(body)
    message = f"server answered HTTP {status}: {detail}"
    if is_transient_status(status):
        return TransientError(message, status_code=status, retry_after=parse_retry_after(headers))
    return SolverError(message, status_code=status)


def _detail(body: bytes) -> str:
    try:
        decoded = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return redact(body.decode("utf-8", "replace"))[:500]
    inner = decoded.get("error", decoded) if isinstance(decoded, Mapping) else decoded
    if isinstance(inner, Mapping) and inner.get("message"):
        return redact(str(inner["message"]))[:500]
    return redact(str(decoded))[:500]
