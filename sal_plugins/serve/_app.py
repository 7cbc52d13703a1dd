"""The ``sal serve`` application: an OpenAI-compatible endpoint whose answers are searched.

Routes: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``, ``GET /metrics``. The
strategy is chosen per request by a model prefix (``beam_search:MODEL``) or by the ``sal`` object
of the body (``extra_body={"sal": {"strategy": ..., "n": ..., "budget": {...}}}`` in the ``openai``
SDK), on top of the server's defaults; a plain ``MODEL`` with no ``sal`` object is passed through
to the upstream untouched. The search is the library's own (the same settings give the same result
as the Python API with the same seed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from sal_plugins._redact import redact
from sal_plugins.budget import Budget
from sal_plugins.conversation import problem_from_conversation
from sal_plugins.errors import (
    ConfigError,
    InputError,
    MissingDependencyError,
    ProviderError,
    SalError,
    SearchError,
    TransientError,
)
from sal_plugins.events import SearchEvent, SearchFinished, event_data
from sal_plugins.faults import is_transient_status, translate_sdk_error
from sal_plugins.replicas import Replica, ReplicaSet
from sal_plugins.results import SearchResult
from sal_plugins.serve._access import AccessRecord, key_fingerprint
from sal_plugins.serve._disconnect import ClientGone, ClientWatch
from sal_plugins.serve._heap import tuned_collector
from sal_plugins.serve._metrics import Metrics
from sal_plugins.serve._protocol import (
    ChatRequest,
    completion_body,
    content_chunks,
    error_body,
    new_id,
    progress_chunk,
    role_chunk,
    turns_of,
)
from sal_plugins.solvers.openai import OpenAISolver
from sal_plugins.strategies import (
    STRATEGIES,
    SearchStrategy,
    build_strategy,
    strategy_class,
    strategy_settings,
)
from sal_plugins.verifiers.base import Verifier

try:  # FastAPI resolves the handlers' annotations in this module's namespace
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
    from starlette.background import BackgroundTask
except ImportError:  # pragma: no cover - without the [serve] extra, create_app says what to install
    FastAPI = None  # type: ignore[assignment,misc]

__all__ = ["ServeSettings", "create_app"]


@dataclass(frozen=True)
class ServeSettings:
    """What a ``sal serve`` instance searches with and how it guards itself.

    Args:
        upstream_url: the OpenAI-compatible API root of the model server (``.../v1``), or a list
            of replicas of it: searches and pass-through requests are spread over them, and a
            replica that fails is rested while the others answer (:mod:`sal_plugins.replicas`).
        upstream_model: the model name it serves.
        model_name: the name clients ask for (default: ``upstream_model``).
        upstream_api_key: its key; never shown in a response, log line or error.
        verifier: the scorer of every search (``None``: self-consistency only).
        default_strategy: the strategy of a request that asks for a search without naming one.
        defaults: strategy settings applied before the request's own (``n``, ``max_tokens``, ...).
        api_keys: bearer keys clients must send; empty: no authentication.
        max_concurrency_per_key: searches one key may have running; more get 429.
        max_body_bytes: the largest request body accepted (413 beyond).
        log_bodies: put request bodies in the access log (off by default).
        tune_collector: while the app runs, freeze the objects alive at start-up and collect
            young objects less often (:mod:`sal_plugins.serve._heap`; the process's settings are
            put back at shutdown). Off: the collector is left as the process has it.
    """

    upstream_url: str | tuple[str, ...]
    upstream_model: str
    model_name: str | None = None
    upstream_api_key: str | None = field(default=None, repr=False)
    verifier: Verifier | None = None
    default_strategy: str = "best_of_n"
    defaults: Mapping[str, Any] = field(default_factory=dict)
    api_keys: frozenset[str] = field(default=frozenset(), repr=False)
    max_concurrency_per_key: int = 8
    max_body_bytes: int = 1_000_000
    log_bodies: bool = False
    tune_collector: bool = True

    @property
    def public_model(self) -> str:
        """The model name clients use."""
        return self.model_name or self.upstream_model


class _TransientAnswer(TransientError):
    """A replica's answer with a transient status: worth sending to another replica."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(
            f"upstream answered {response.status_code}", status_code=response.status_code
        )
        self.response = response


class _Refused(Exception):
    """A request answered with an error status instead of a search."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(body["error"]["message"])
        self.status, self.body, self.headers = status, body, headers or {}


def _strategy_names() -> dict[str, str]:
    names = {name: name for name in STRATEGIES}
    names.update({name.replace("_", "-"): name for name in STRATEGIES})
    return names


class SearchService:
    """The request handling behind the routes, independent of the web framework."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.solver = OpenAISolver(
            model=settings.upstream_model,
            base_url=settings.upstream_url,
            api_key=settings.upstream_api_key,
        )
        assert self.solver.replicas is not None  # it was given base URLs
        self.replicas: ReplicaSet = self.solver.replicas
        """The upstream's replicas: searches and pass-through requests share their health."""
        self.metrics = Metrics()
        self._in_flight: dict[str, int] = {}
        self._names = _strategy_names()
        self._upstream: httpx.AsyncClient | None = None

    # --- admission ----------------------------------------------------------------------------

    def caller(self, authorization: str | None) -> str:
        """The key a request comes with (``"anonymous"`` without auth); raises 401 otherwise."""
        if not self.settings.api_keys:
            return "anonymous"
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or key.strip() not in self.settings.api_keys:
            raise _Refused(
                401,
                error_body(
                    "Incorrect or missing API key: send 'Authorization: Bearer <key>'",
                    kind="invalid_request_error",
                    code="invalid_api_key",
                ),
            )
        return key.strip()

    @contextlib.contextmanager
    def admitted(self, key: str) -> Any:
        """Hold one of the key's search slots for the duration of the block (429 when full)."""
        if self._in_flight.get(key, 0) >= self.settings.max_concurrency_per_key:
            raise _Refused(
                429,
                error_body(
                    f"too many searches in flight for this key (limit "
                    f"{self.settings.max_concurrency_per_key}); retry shortly",
                    kind="rate_limit_error",
                    code="rate_limit_exceeded",
                ),
                {"Retry-After": "1"},
            )
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        self.metrics.in_flight += 1
        try:
            yield
        finally:
            self._in_flight[key] -= 1
            self.metrics.in_flight -= 1

    def parse(self, body: bytes) -> ChatRequest:
        """The validated request (400 naming the field, 413 when too large)."""
        if len(body) > self.settings.max_body_bytes:
            raise _Refused(
                413,
                error_body(
                    f"request body of {len(body)} bytes is over the limit of "
                    f"{self.settings.max_body_bytes}",
                    kind="invalid_request_error",
                    code="request_too_large",
                ),
            )
        try:
            return ChatRequest.model_validate_json(body)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise _Refused(
                400,
                error_body(f"{where}: {first['msg']}", kind="invalid_request_error", param=where),
            ) from None

    # --- what a request asks for --------------------------------------------------------------

    def strategy_for(self, request: ChatRequest) -> tuple[SearchStrategy | None, str]:
        """The configured search (``None``: pass through) and the model name to answer with."""
        prefix, colon, rest = request.model.partition(":")
        named = self._names.get(prefix) if colon else None
        model = rest if named else request.model
        sal = dict(request.sal or {})
        public = self.settings.public_model
        if model != public:
            raise _Refused(
                404,
                error_body(
                    f"model {model!r} is not served here; ask for {public!r} or "
                    f"STRATEGY:{public} (STRATEGY: {', '.join(STRATEGIES)})",
                    kind="invalid_request_error",
                    code="model_not_found",
                    param="model",
                ),
            )
        if named is None and not sal:
            return None, request.model
        name = sal.pop("strategy", None) or named or self.settings.default_strategy
        try:
            accepted = set(strategy_settings(strategy_class(str(name))))
        except ConfigError as error:
            raise _Refused(
                400, error_body(f"sal: {error}", kind="invalid_request_error", param="sal")
            ) from None
        # The server's defaults apply where the strategy has the setting (max_steps is beam
        # search's, not best-of-N's); the request's own settings are checked as they are.
        settings: dict[str, Any] = {
            k: v for k, v in self.settings.defaults.items() if k in accepted
        }
        for key, value in (
            ("temperature", request.temperature),
            ("max_tokens", request.max_completion_tokens or request.max_tokens),
            ("seed", request.seed),
        ):
            if value is not None:
                settings[key] = value
        budget = sal.pop("budget", None)
        if isinstance(sal.get("policy"), str):  # a path would read the server's own files
            raise _Refused(
                400,
                error_body(
                    "sal.policy: send the policy itself as a JSON object, not a file path (or "
                    "start the server with --policy FILE)",
                    kind="invalid_request_error",
                    param="sal",
                ),
            )
        settings.update(sal)
        try:
            if budget is not None:
                if not isinstance(budget, Mapping):
                    raise ConfigError('sal.budget: expected an object such as {"max_calls": 20}')
                settings["budget"] = Budget(**budget)
            strategy = build_strategy(
                str(name), solver=self.solver, verifier=self.settings.verifier, **settings
            )
        except (ConfigError, TypeError) as error:
            raise _Refused(
                400, error_body(f"sal: {error}", kind="invalid_request_error", param="sal")
            ) from None
        return strategy, request.model

    def problem(self, request: ChatRequest, strategy: SearchStrategy) -> tuple[SearchStrategy, str]:
        """The problem the conversation asks, and the strategy with its system prompt."""
        try:
            problem = problem_from_conversation(turns_of(request.messages))
        except InputError as error:
            raise _Refused(
                400, error_body(str(error), kind="invalid_request_error", param="messages")
            ) from None
        if problem.system_prompt:
            strategy = strategy.model_copy(update={"system_prompt": problem.system_prompt})
        return strategy, problem.text

    # --- the upstream -------------------------------------------------------------------------

    def upstream(self) -> httpx.AsyncClient:
        """The client of pass-through requests and tool decisions (made on the serving loop)."""
        if self._upstream is None:
            headers = {"Content-Type": "application/json"}
            if self.settings.upstream_api_key:
                headers["Authorization"] = f"Bearer {self.settings.upstream_api_key}"
            self._upstream = httpx.AsyncClient(headers=headers, timeout=600.0)
        return self._upstream

    def upstream_body(self, request: ChatRequest, body: bytes) -> bytes:
        """The pass-through body: as the client sent it, unless the upstream's model name differs."""
        if self.settings.public_model == self.settings.upstream_model:
            return body
        fields = json.loads(body)
        fields["model"] = self.settings.upstream_model
        return json.dumps(fields).encode()

    async def forward(self, body: bytes) -> httpx.Response:
        """Send a request body to the upstream's chat completions as it is.

        With replicas, one that does not answer or answers with a transient status is rested
        and the body goes to another; the last replica's answer is returned whatever it is.
        """

        async def send(replica: Replica) -> httpx.Response:
            url = f"{replica.url.rstrip('/')}/chat/completions"
            try:
                response = await self.upstream().post(url, content=body)
            except httpx.HTTPError as error:
                raise translate_sdk_error(error, "the upstream did not answer") from None
            if len(self.replicas) > 1 and is_transient_status(response.status_code):
                raise _TransientAnswer(response)
            return response

        try:
            return await self.replicas.call(None, send)
        except _TransientAnswer as answer:
            return answer.response
        except ProviderError as error:
            raise _Refused(502, error_body(redact(str(error)), kind="upstream_error")) from None

    async def tool_decision(self, request: ChatRequest) -> bytes | None:
        """With tools, the upstream decides first: its tool call as it sent it, or ``None``."""
        body = request.model_dump(exclude_none=True, exclude={"sal", "stream", "stream_options"})
        body["model"] = self.settings.upstream_model
        response = await self.forward(json.dumps(body).encode())
        if response.status_code >= 400:
            raise _Refused(response.status_code, _upstream_error(response))
        try:
            message = response.json()["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            return None
        return response.content if message.get("tool_calls") else None

    async def aclose(self) -> None:
        """Close the upstream connections."""
        if self._upstream is not None:
            await self._upstream.aclose()
        await self.solver.aclose()

    # --- running ------------------------------------------------------------------------------

    def record(self, result: SearchResult) -> None:
        """Count a finished search in the metrics."""
        usage = result.usage
        self.metrics.search_calls += usage.calls
        self.metrics.tokens["solver"] += usage.prompt_tokens + usage.completion_tokens
        self.metrics.tokens["verifier"] += (
            usage.verifier_prompt_tokens + usage.verifier_completion_tokens
        )


def _upstream_error(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body
    return error_body(
        f"the upstream answered HTTP {response.status_code}: {redact(response.text[:300])}",
        kind="upstream_error",
    )


def event_fields(event: SearchEvent) -> dict[str, Any]:
    """A search event as plain JSON (the final result is sent as content, not here)."""
    return event_data(event, exclude=("result", "problem"))


def _sse(data: object) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


def create_app(settings: ServeSettings) -> Any:
    """The FastAPI application of ``sal serve`` (``pip install 'sal-plugins[serve]'``)."""
    if FastAPI is None:  # pragma: no cover - the [serve] extra brings FastAPI
        raise MissingDependencyError("sal serve", "serve")

    service = SearchService(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with tuned_collector() if settings.tune_collector else contextlib.nullcontext():
            yield
        await service.aclose()

    app = FastAPI(title="sal serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.service = service

    def refused(error: _Refused) -> JSONResponse:
        return JSONResponse(error.body, status_code=error.status, headers=error.headers)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models(request: Request) -> JSONResponse:
        try:
            service.caller(request.headers.get("authorization"))
        except _Refused as error:
            return refused(error)
        model = settings.public_model
        ids = [model, *(f"{name}:{model}" for name in STRATEGIES)]
        data = [{"id": i, "object": "model", "created": 0, "owned_by": "sal"} for i in ids]
        return JSONResponse({"object": "list", "data": data})

    async def chat(request: Request) -> Response:
        """``POST /v1/chat/completions``: pass through, or search and answer (or stream)."""
        record = AccessRecord("/v1/chat/completions")
        streaming = False
        try:
            key = service.caller(request.headers.get("authorization"))
            record.key = key_fingerprint(key) if settings.api_keys else None
            body = await request.body()
            if settings.log_bodies:
                record.keep_body(body)
            parsed = service.parse(body)
            record.model, record.stream = parsed.model, parsed.stream
            strategy, model = service.strategy_for(parsed)
            if strategy is None:
                record.strategy = "pass-through"
                upstream = await service.forward(service.upstream_body(parsed, body))
                record.status = upstream.status_code
                return Response(
                    upstream.content,
                    status_code=upstream.status_code,
                    media_type=upstream.headers.get("content-type"),
                )
            record.strategy = strategy.name
            strategy, problem = service.problem(parsed, strategy)
            if parsed.stream:
                response = await _stream(parsed, strategy, problem, model, key, record, request)
                streaming = True
                return response
            with service.admitted(key):
                watch = ClientWatch(request.receive)
                try:
                    with watch.armed():
                        if parsed.tools:
                            decided = await service.tool_decision(parsed)
                            if decided is not None:
                                record.strategy = "tool-call"
                                return Response(decided, media_type="application/json")
                        result = await strategy.arun(problem)
                finally:
                    watch.close()
            service.record(result)
            record.result = result
            return JSONResponse(completion_body(result, model))
        except _Refused as error:
            record.status = error.status
            return refused(error)
        except ClientGone:
            service.metrics.cancelled += 1
            record.status = 499  # nginx's "client closed request": nobody reads this answer
            return Response(status_code=499)
        except SearchError as error:
            record.status = 502
            return JSONResponse(
                error_body(f"the search found no answer: {error}", kind="upstream_error"),
                status_code=502,
            )
        finally:
            if not streaming:  # a stream's line is written when its last byte is
                record.finish(service.metrics)

    # A plain Starlette route: the body is parsed and validated here (400 naming the field), so
    # FastAPI's per-request dependency and response-model layers would only add CPU (about
    # 0.1 ms of the server's 1.2-1.4 ms per search, benchmarks/serve.py).
    app.add_route("/v1/chat/completions", chat, methods=["POST"])

    async def _stream(
        parsed: ChatRequest,
        strategy: SearchStrategy,
        problem: str,
        model: str,
        key: str,
        record: AccessRecord,
        request: Request,
    ) -> Response:
        include_usage = bool(parsed.stream_options and parsed.stream_options.include_usage)
        admission = service.admitted(key)
        admission.__enter__()  # held until the stream ends (429 raised here, before any byte)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                admission.__exit__(None, None, None)
                record.finish(service.metrics)

        async def events() -> AsyncIterator[bytes]:
            chunk_id = new_id()
            # Under ASGI spec 2.3 (uvicorn's) Starlette cancels a stream whose client left; from
            # 2.4 it notices only when a write fails, which can be a whole search round later.
            # The watch cancels the search the moment the client leaves, under either.
            watch = ClientWatch(request.receive)
            search = strategy.astream(problem)
            try:
                yield _sse(role_chunk(chunk_id, model))
                if parsed.tools:
                    with watch.armed():
                        decided = await service.tool_decision(parsed)
                    if decided is not None:
                        record.strategy = "tool-call"
                        for chunk in _tool_call_chunks(decided, chunk_id, model):
                            yield _sse(chunk)
                        yield _sse("[DONE]")
                        return
                while True:
                    with watch.armed():
                        event = await anext(search, None)
                    if event is None:
                        break
                    if isinstance(event, SearchFinished):
                        service.record(event.result)
                        record.result = event.result
                        for chunk in content_chunks(
                            chunk_id, model, event.result, include_usage=include_usage
                        ):
                            yield _sse(chunk)
                    else:
                        yield _sse(progress_chunk(chunk_id, model, event_fields(event)))
                yield _sse("[DONE]")
            except SalError as error:
                record.status = 502  # sent as an error event: the 200 header is already out
                yield _sse(error_body(str(error), kind="upstream_error"))
                yield _sse("[DONE]")
            except _Refused as error:
                record.status = error.status
                yield _sse(error.body)
                yield _sse("[DONE]")
            except ClientGone:
                service.metrics.cancelled += 1
                record.status = 499  # the client closed the connection: nobody reads the rest
            except asyncio.CancelledError:
                service.metrics.cancelled += 1
                record.status = 499
                raise
            finally:
                watch.close()
                release()  # before any await: a cancelled close cannot keep the slot or the line
                await search.aclose()

        # The background task releases the slot also when the stream never started.
        return StreamingResponse(
            events(), media_type="text/event-stream", background=BackgroundTask(release)
        )

    return app


def _tool_call_chunks(body: bytes, chunk_id: str, model: str) -> list[dict[str, Any]]:
    """The upstream's tool-call answer as stream chunks (its calls as they were sent)."""
    message = json.loads(body)["choices"][0]["message"]
    calls = [{**call, "index": index} for index, call in enumerate(message.get("tool_calls") or [])]
    base = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    return [
        base | {"choices": [{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None}]},
        base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
