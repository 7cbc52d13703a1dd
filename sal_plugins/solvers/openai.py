"""``OpenAISolver``: any OpenAI-compatible server (vLLM, llama.cpp, SGLang, TGI, OpenAI, ...)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import weakref
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from sal_plugins._redact import redact_url
from sal_plugins.errors import ConfigError, MissingDependencyError, SolverError, TransientError
from sal_plugins.openai_wire import VLLM_CONTINUE, generations_of, served_by_vllm, usage_of
from sal_plugins.replicas import ReplicaPolicy, ReplicaSet, affinity_of, replica_urls
from sal_plugins.solvers._http_wire import DirectWire, ReplicatedWire, SDKWire, Wire, translated
from sal_plugins.solvers.base import (
    ContinuationMode,
    GenerationRequest,
    Pricing,
    SolverCapabilities,
    SolverResponse,
)
from sal_plugins.solvers.fanout import fan_out
from sal_plugins.solvers.prompts import (
    INSTRUCTED_CONTINUATION,
    PromptTemplate,
    chat_messages,
    chatml,
    completion_prompt,
)

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["OpenAISolver", "served_by_vllm_client"]

Continuation = ContinuationMode | Literal["auto"]
Transport = Literal["direct", "aiohttp", "httpx"]


@dataclass(frozen=True)
class _LoopWire:
    wire: Wire
    closer: AsyncGenerator[None, None]


class OpenAISolver:
    """A solver over any OpenAI-compatible server, through the ``openai`` SDK.

    Setup: run a server, for example vLLM
    (``vllm serve meta-llama/Llama-3.2-1B-Instruct``) or llama.cpp's
    (``python -m llama_cpp.server --model model.gguf``), then point the solver at its ``/v1`` root.

    Instantiate::

        from sal_plugins.solvers import OpenAISolver

        solver = OpenAISolver(
            model="meta-llama/Llama-3.2-1B-Instruct",
            base_url="http://localhost:8000/v1",
            api_key="...",          # or OPENAI_API_KEY; local servers accept anything
        )

    Several replicas of the model (each its own server) spread the load::

        solver = OpenAISolver(
            model="meta-llama/Llama-3.2-1B-Instruct",
            base_url=["http://gpu0:8000/v1", "http://gpu1:8000/v1"],
        )

    Run a search with it::

        import sal_plugins as sal

        search = sal.BeamSearch(solver=solver, verifier=my_verifier, n=8, beam_width=2, seed=0)
        result = search.run("What is 23 + 48?")          # or: await search.arun(...)

    How a partial solution is continued (``continuation``):

    * ``"native"``: the steps so far are a final assistant message, continued by the server with
      vLLM's ``continue_final_message=True, add_generation_prompt=False``. Best on vLLM.
    * ``"completion"``: ``prompt_template`` renders the chat client-side (ChatML by default, the
      template of SmolLM2 and Qwen) and ``/v1/completions`` continues the raw text. Use it with a
      server that has ``/v1/completions`` when you know the model's template.
    * ``"instructed"``: for chat-only APIs: the steps so far go in the user turn with an
      instruction to write only what comes next. Works everywhere, at some cost in fidelity.
    * ``"auto"`` (default): ``"native"`` when the server's ``/v1/models`` says the models are
      served by vLLM (``owned_by == "vllm"``), else ``"instructed"``, since only vLLM is known to
      honour ``continue_final_message`` and other servers silently ignore it. Asked once, in the
      background while the first (fresh-start) requests run.

    ``n`` is sent as is; when the server returns fewer choices (llama.cpp's server returns one),
    the rest are fetched by concurrent requests with seeds ``seed + i``, and the solver remembers
    to fan out from the start on later calls. Stop reasons come from ``finish_reason`` and vLLM's
    ``stop_reason``; a stop string the server kept in the text is removed. The SDK's own retries
    are disabled: faults surface as :class:`~sal_plugins.errors.TransientError` (429 with its
    ``Retry-After``, 408, 409, 5xx, timeouts, dropped connections, broken JSON), which the search
    driver retries, or :class:`~sal_plugins.errors.SolverError` (other 4xx).

    With several base URLs (:mod:`sal_plugins.replicas`), each request goes to the replica with
    the fewest requests in flight, except that one search's requests (same system prompt and
    problem) stay on one replica, so its prefix cache hits, while that replica is not much
    busier than the others. A replica that fails with a transient fault rests for a cool-down
    (1 s, doubling to 30 s) and the request is sent again at once to another replica, without
    spending the search's retries; only when no healthy replica is left does the fault reach the
    driver. The probe of ``/v1/models`` goes to any replica: they serve the same model.

    Args:
        model: the model name the server knows.
        base_url: the API root, ending in ``/v1``, or a list of them (replicas of the same
            model, each listed once); defaults to ``$OPENAI_BASE_URL``.
        api_key: defaults to ``$OPENAI_API_KEY``, else ``"EMPTY"`` (local servers ignore it).
        continuation: ``"auto"``, ``"native"``, ``"completion"`` or ``"instructed"`` (above).
        prompt_template: renders messages to raw text for ``"completion"`` mode.
        instructed_template: the user turn of ``"instructed"`` mode (``{problem}``, ``{partial}``).
        timeout: seconds before one HTTP request is abandoned (and retried by the driver).
        extra_body: extra JSON fields sent with every request (``top_k``, ``min_p``, ...).
        pricing: token prices, for ``usage.cost`` and cost budgets.
        max_connections: requests this solver has in flight at once, across every search
            running on the same event loop (the rest wait their turn); the one concurrency
            limit a round's wave meets by default.
        max_fanout_concurrency: requests of one fanned-out ``n`` in flight at once (default:
            ``max_connections``).
        honours_n: ``False`` to fan out one request per choice from the first call; by default
            the solver sends ``n`` and falls back to fan-out when fewer choices come back.
        client: an ``openai.AsyncOpenAI`` to use instead of building one (its retries are turned
            off; ``base_url``, ``api_key`` and ``timeout`` are then taken from it).
        transport: how requests are sent: ``"direct"`` (straight over an aiohttp session,
            without the SDK's per-request machinery), ``"aiohttp"`` (the ``openai`` SDK over its
            aiohttp client), ``"httpx"`` (the SDK's own default), or ``"auto"``: direct when
            aiohttp is installed (it comes with sal-plugins), else httpx; an injected client
            always sends through its own stack. With dozens of requests in flight (fan-out
            servers, beam search and DVTS at large N) the SDK costs about a millisecond of CPU
            per request and httpx's pool more (``benchmarks/overhead.py --transport``).
        replica_policy: cool-down and spill settings of several base URLs
            (:class:`~sal_plugins.replicas.ReplicaPolicy`).

    Raises:
        ConfigError: a setting that cannot work, with the fix in the message.
        MissingDependencyError: the ``openai`` package is not installed.
    """

    def __init__(
        self,
        model: str,
        base_url: str | Sequence[str] | None = None,
        api_key: str | None = None,
        *,
        continuation: Continuation = "auto",
        prompt_template: PromptTemplate = chatml,
        instructed_template: str = INSTRUCTED_CONTINUATION,
        timeout: float = 120.0,
        extra_body: Mapping[str, Any] | None = None,
        pricing: Pricing | None = None,
        max_connections: int = 256,
        max_fanout_concurrency: int | None = None,
        honours_n: bool | None = None,
        client: AsyncOpenAI | None = None,
        transport: Transport | Literal["auto"] = "auto",
        replica_policy: ReplicaPolicy | None = None,
    ) -> None:
        try:
            import openai  # noqa: F401
        except ImportError as error:  # pragma: no cover - openai is a core dependency
            raise MissingDependencyError("OpenAISolver", "openai", package="openai") from error
        if not isinstance(model, str) or not model.strip():
            raise ConfigError("OpenAISolver needs model='<name the server knows>'")
        modes = (*get_args(ContinuationMode), "auto")
        if continuation not in modes:
            raise ConfigError(
                f"OpenAISolver: continuation={continuation!r} is not one of {', '.join(modes)}"
            )
        if not callable(prompt_template):
            raise ConfigError("OpenAISolver: prompt_template must be callable(messages, continue)")
        if "{problem}" not in instructed_template or "{partial}" not in instructed_template:
            raise ConfigError("OpenAISolver: instructed_template needs {problem} and {partial}")
        if not timeout > 0:
            raise ConfigError(f"OpenAISolver: timeout must be positive seconds, got {timeout}")
        if max_connections < 1 or (max_fanout_concurrency or 1) < 1:
            raise ConfigError(
                "OpenAISolver: max_connections and max_fanout_concurrency must be at least 1"
            )
        self.transport: Transport = _resolve_transport(transport, injected=client is not None)
        self.model = model
        self.base_urls: tuple[str, ...] = () if client is not None else _base_urls(base_url)
        self.base_url: str | None = self.base_urls[0] if self.base_urls else None
        """The API root (the first replica's, when several are given: see ``base_urls``)."""
        self.replicas = (
            ReplicaSet(self.base_urls, policy=replica_policy) if self.base_urls else None
        )
        self._listed = not isinstance(base_url, str | None)
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._continuation: Continuation = continuation
        self.prompt_template = prompt_template
        self.instructed_template = instructed_template
        self.timeout = float(timeout)
        self.extra_body = dict(extra_body or {})
        self.pricing = pricing
        self.max_connections = max_connections
        self.max_fanout_concurrency = max_fanout_concurrency or max_connections
        self.capabilities = SolverCapabilities(
            honours_n=honours_n,
            max_choices=1 if honours_n is False else None,
            respects_max_requests=True,
            continuation=None if continuation == "auto" else continuation,
            keeps_stop_string=None,
            logprobs=True,
            pricing=pricing,
        )
        self._injected = client.with_options(max_retries=0) if client is not None else None
        self._probe_task: asyncio.Task[None] | None = None
        self._wires: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWire] = (
            weakref.WeakKeyDictionary()
        )
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        where: object = "injected client"
        if self.base_urls:
            shown = [redact_url(url) for url in self.base_urls]
            where = shown if self._listed else shown[0]
        return (
            f"OpenAISolver(model={self.model!r}, base_url={where!r}, "
            f"continuation={self.continuation!r})"
        )

    @property
    def continuation(self) -> Continuation:
        """The continuation mode (``"auto"`` until the server has been asked)."""
        return self._continuation

    @property
    def honours_n(self) -> bool | None:
        """Whether the server returns all ``n`` choices of a request (``None``: not known yet)."""
        return self.capabilities.honours_n

    # --- the protocol -------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        """Return ``request.n`` continuations of ``request.prefix_steps``.

        Raises:
            TransientError: a fault worth retrying (429, 5xx, timeouts, broken responses).
            SolverError: the server rejected the request.
        """
        wire = await self._wire()
        mode = await self._resolve_mode(wire, request)

        async def one_request(part: GenerationRequest) -> SolverResponse:
            return await self._request(wire, mode, part)

        return await fan_out(
            one_request, request, self.capabilities, max_concurrency=self.max_fanout_concurrency
        )

    async def aclose(self) -> None:
        """Close the HTTP client this solver opened for the running event loop.

        Without it, the client is closed when its loop shuts down (``asyncio.run`` ends, or
        ``loop.shutdown_asyncgens()``); an injected client is left to its owner.
        """
        entry = self._wires.get(asyncio.get_running_loop())
        if entry is not None:
            await entry.closer.aclose()

    # --- internals ----------------------------------------------------------------------------

    async def _wire(self) -> Wire:
        # Pooled connections belong to the loop that opened them, and sync ``run()`` makes a new
        # loop per call: keep one wire per loop.
        loop = asyncio.get_running_loop()
        entry = self._wires.get(loop)
        if entry is None:
            wire = self._new_wire()
            entry = _LoopWire(wire, self._closed_at_loop_end(loop, wire))
            self._wires[loop] = entry
            await anext(entry.closer)  # started: the loop now finalises it at shutdown
        return entry.wire

    def _new_wire(self) -> Wire:
        if self._injected is not None:
            return SDKWire(self._injected, owned=False)
        assert self.replicas is not None
        return ReplicatedWire(self.replicas, self._replica_wire)

    def _replica_wire(self, base_url: str) -> Wire:
        if self.transport == "direct":
            return DirectWire(
                base_url,
                self._api_key,
                timeout=self.timeout,
                max_connections=self.max_connections,
            )
        from openai import AsyncOpenAI, DefaultAioHttpClient

        client = AsyncOpenAI(
            base_url=base_url,
            api_key=self._api_key,
            timeout=self.timeout,
            max_retries=0,
            http_client=DefaultAioHttpClient(timeout=self.timeout)
            if self.transport == "aiohttp"
            else None,
        )
        return SDKWire(client, owned=True)

    async def _closed_at_loop_end(
        self, loop: asyncio.AbstractEventLoop, wire: Wire
    ) -> AsyncGenerator[None, None]:
        """Forgets and closes ``wire`` when finalised: by ``aclose()``, or by its loop's end.

        An event loop finalises the async generators still open when it shuts down
        (``shutdown_asyncgens``, which ``asyncio.run`` calls): the connections are closed on
        their own loop instead of being left to the garbage collector, and the solver keeps no
        wire of a loop that has ended (the wire refers to its loop, so the weak mapping alone
        would keep both).
        """
        try:
            yield
        finally:
            self._wires.pop(loop, None)
            await wire.close()

    async def _resolve_mode(self, wire: Wire, request: GenerationRequest) -> ContinuationMode:
        if self._continuation != "auto":
            return self._continuation
        loop = asyncio.get_running_loop()
        probe = self._probe_task
        if probe is None or probe.get_loop() is not loop or probe.done():
            probe = self._probe_task = loop.create_task(self._probe(wire, quiet=True))
        if not request.prefix_steps:
            # A fresh start reads the same in every chat mode: don't wait for the answer.
            return "instructed"
        await asyncio.shield(probe)
        if self._continuation == "auto":  # the quiet probe hit a transient fault: ask again
            await self._probe(wire, quiet=False)
        return cast(ContinuationMode, self._continuation)

    async def _probe(self, wire: Wire, *, quiet: bool) -> None:
        """Ask ``/models`` who serves the model, to settle ``continuation="auto"``."""
        try:
            models: object = await wire.get("/models")
        except SolverError:  # no /models route: not vLLM
            models = None
        except TransientError:
            if quiet:
                return
            raise
        self._continuation = "native" if served_by_vllm(models) else "instructed"
        self.capabilities.continuation = self._continuation

    async def _request(
        self, wire: Wire, mode: ContinuationMode, request: GenerationRequest
    ) -> SolverResponse:
        payload: dict[str, Any] = {
            "model": self.model,
            "n": request.n,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.top_p is not None:
            payload["top_p"] = request.top_p
        if request.stop:
            payload["stop"] = list(request.stop)
        if request.seed is not None:
            payload["seed"] = request.seed
        if mode == "completion":
            path = "/completions"
            payload["prompt"] = completion_prompt(request, self.prompt_template)
            if request.logprobs or request.top_logprobs:
                payload["logprobs"] = request.top_logprobs or 0
        else:
            path = "/chat/completions"
            payload["messages"] = chat_messages(
                request, mode, instructed_template=self.instructed_template
            )
            if request.logprobs or request.top_logprobs:
                payload["logprobs"] = True
                if request.top_logprobs:
                    payload["top_logprobs"] = request.top_logprobs
        payload.update(self.extra_body)
        if mode == "native" and request.prefix_steps:
            payload.update(VLLM_CONTINUE)
        async with self._connections():
            response = await wire.post(
                path, payload, affinity=affinity_of(request.system_prompt, request.problem)
            )
        return _batch(response, request.stop)

    def _connections(self) -> asyncio.Semaphore:
        """The gate of ``max_connections`` on the running loop (asyncio primitives are per loop)."""
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(self.max_connections)
        return gate


async def served_by_vllm_client(client: AsyncOpenAI) -> bool:
    """Whether the server behind an ``openai`` client is vLLM (asks ``/v1/models`` once).

    Any failure (no ``/models`` route, no server) counts as "not vLLM": the caller then uses the
    continuation that works everywhere.
    """
    try:
        return served_by_vllm(await translated(lambda: client.models.list()))
    except (SolverError, TransientError):
        return False


def _batch(body: object, stops: tuple[str, ...]) -> SolverResponse:
    if not isinstance(body, Mapping):  # the SDK hands back raw text when the body is not JSON
        raise TransientError(f"server sent a non-JSON body: {str(body)[:200]!r}")
    try:
        generations = generations_of(body, stops)
    except ValueError as error:
        raise TransientError(f"server sent {error}") from error
    prompt_tokens, completion_tokens = usage_of(body)
    return SolverResponse(generations, prompt_tokens, completion_tokens, requests=1)


def _resolve_transport(transport: object, *, injected: bool) -> Transport:
    choices = (*get_args(Transport), "auto")
    if transport not in choices:
        raise ConfigError(
            f"OpenAISolver: transport={transport!r} is not one of {', '.join(choices)}"
        )
    if transport in ("direct", "aiohttp") and injected:
        raise ConfigError(
            f"OpenAISolver: pass transport={transport!r} or a client, not both (an injected "
            "client sends through its own HTTP stack)"
        )
    if transport == "direct" and importlib.util.find_spec("aiohttp") is None:
        raise MissingDependencyError(
            "OpenAISolver(transport='direct')", "aiohttp", package="aiohttp"
        )
    if transport == "aiohttp" and importlib.util.find_spec("httpx_aiohttp") is None:
        raise MissingDependencyError(
            "OpenAISolver(transport='aiohttp') (the openai SDK's aiohttp client, from the "
            "httpx_aiohttp package)",
            "aiohttp",
            package="openai[aiohttp]",
        )
    if transport == "auto":
        if injected or importlib.util.find_spec("aiohttp") is None:
            return "httpx"
        return "direct"
    return cast(Transport, transport)


def _base_urls(base_url: str | Sequence[str] | None) -> tuple[str, ...]:
    given = base_url if base_url is not None else os.environ.get("OPENAI_BASE_URL")
    if given is None or (isinstance(given, str) and not given.strip()):
        raise ConfigError(
            "OpenAISolver needs base_url='http://HOST:PORT/v1' (the server's OpenAI-compatible "
            "root), a list of such roots (replicas), or the OPENAI_BASE_URL environment variable"
        )
    urls = replica_urls(given, "OpenAISolver")
    for url in urls:
        for endpoint in ("/chat/completions", "/completions", "/models"):
            if url.endswith(endpoint):
                raise ConfigError(
                    f"OpenAISolver: base_url is the API root, not an endpoint: use "
                    f"{redact_url(url[: -len(endpoint)])!r} instead of {redact_url(url)!r}"
                )
    return urls
