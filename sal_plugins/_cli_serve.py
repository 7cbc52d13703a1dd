"""``sal serve``: an OpenAI-compatible endpoint whose answers are searched.

With no flags it serves the embedded SmolLM2 model (started behind ``llama_cpp.server`` on
loopback) with the arithmetic verifier, so ``sal serve`` then ``curl`` or ``openai`` works on a
fresh machine with no key and no server. ``--upstream URL --upstream-model M`` puts it in front of
any OpenAI-compatible server instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sal_plugins._cli_setup import (
    EMBEDDED_DEFAULTS,
    add_verifier_flags,
    build_verifier,
    canonical_strategy,
)
from sal_plugins.errors import ConfigError, MissingDependencyError
from sal_plugins.strategies.adaptive import AdaptivePolicy

__all__ = ["add_serve_parser", "serve_command"]

UPSTREAM_KEY_ENV = "SAL_UPSTREAM_API_KEY"


def add_serve_parser(commands: Any) -> None:
    """Register ``sal serve`` on the ``sal`` parser's subcommands."""
    parser = commands.add_parser(
        "serve",
        help="serve an OpenAI-compatible endpoint that searches",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    upstream = parser.add_argument_group("upstream (default: the embedded SmolLM2-135M)")
    upstream.add_argument(
        "--upstream",
        action="append",
        help="OpenAI-compatible API root, e.g. http://h:8000/v1 (repeat it for replicas of the "
        "model: requests are spread over them)",
    )
    upstream.add_argument("--upstream-model", help="model name there (required with --upstream)")
    upstream.add_argument(
        "--upstream-api-key", help=f"its API key (default: ${UPSTREAM_KEY_ENV}, then none)"
    )
    add_verifier_flags(parser.add_argument_group("verifier (as for sal run)"))
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    server.add_argument("--port", type=int, default=8080, help="port (8080; 0 picks a free one)")
    server.add_argument(
        "--strategy",
        default="best_of_n",
        help="strategy of a request that asks for a search without naming one (best_of_n)",
    )
    server.add_argument(
        "--policy",
        metavar="FILE",
        help="the policy of adaptive searches (a file sal calibrate wrote; default: built-in)",
    )
    server.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        default=[],
        help="bearer key clients must send (repeatable; none: no authentication)",
    )
    server.add_argument("--keys-file", help="file with one bearer key per line")
    server.add_argument("--max-concurrency-per-key", type=int, default=8)
    server.add_argument("--max-body-bytes", type=int, default=1_000_000)
    server.add_argument(
        "--grace", type=float, default=30.0, help="seconds in-flight searches get at shutdown"
    )
    server.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="do not write a JSON line per request to stderr",
    )
    server.add_argument(
        "--log-bodies",
        action="store_true",
        help="put request bodies in the access log (credentials masked; off by default)",
    )
    parser.set_defaults(handler=serve_command)


def _keys(args: argparse.Namespace) -> frozenset[str]:
    keys = {key.strip() for key in args.api_keys if key.strip()}
    if args.keys_file:
        path = Path(args.keys_file)
        if not path.is_file():
            raise ConfigError(f"--keys-file {path}: no such file")
        keys |= {line.strip() for line in path.read_text().splitlines() if line.strip()}
    return frozenset(keys)


EMBEDDED_NAME = "smollm2"
"""The model name ``sal serve`` answers to in front of the embedded model."""


@contextlib.contextmanager
def _upstream(
    args: argparse.Namespace,
) -> Iterator[tuple[str | tuple[str, ...], str, dict[str, Any]]]:
    """The upstream's URL (or its replicas' URLs), model and the strategy defaults that suit it."""
    if bool(args.upstream) != bool(args.upstream_model):
        raise ConfigError("--upstream and --upstream-model go together: name the server and model")
    if args.upstream:
        yield tuple(args.upstream), args.upstream_model, {}
        return
    from sal_plugins.embedded import serve_embedded_model

    with serve_embedded_model() as base_url:
        import httpx

        served = httpx.get(f"{base_url}/models", timeout=30).json()["data"][0]["id"]
        yield base_url, served, dict(EMBEDDED_DEFAULTS)


def _free_port(host: str) -> int:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def serve_command(args: argparse.Namespace) -> int:
    """Run ``sal serve`` until interrupted."""
    try:
        import uvicorn

        from sal_plugins.serve import ServeSettings, create_app, log_access_to
    except ImportError as error:
        raise MissingDependencyError("sal serve", "serve") from error
    if args.max_concurrency_per_key < 1 or args.max_body_bytes < 1:
        raise ConfigError("--max-concurrency-per-key and --max-body-bytes must be at least 1")
    strategy = canonical_strategy(args.strategy)
    policy = AdaptivePolicy.load(args.policy) if args.policy else None  # refused before any work
    verifier, verifier_name = build_verifier(args)
    keys = _keys(args)
    upstream_key = args.upstream_api_key or os.environ.get(UPSTREAM_KEY_ENV)
    port = args.port or _free_port(args.host)
    with _upstream(args) as (url, model, defaults):
        settings = ServeSettings(
            upstream_url=url,
            upstream_model=model,
            model_name=None if args.upstream else EMBEDDED_NAME,
            upstream_api_key=upstream_key,
            verifier=verifier,
            default_strategy=strategy,
            defaults={**defaults, **({"policy": policy} if policy is not None else {})},
            api_keys=keys,
            max_concurrency_per_key=args.max_concurrency_per_key,
            max_body_bytes=args.max_body_bytes,
            log_bodies=args.log_bodies,
        )
        app = create_app(settings)
        if args.access_log:
            log_access_to(sys.stderr)
        config = uvicorn.Config(
            app,
            host=args.host,
            port=port,
            timeout_graceful_shutdown=args.grace,
            log_level="info",
            access_log=False,  # the app logs each request itself, without bodies
        )
        server = uvicorn.Server(config)
        print(
            json.dumps(
                {
                    "serving": f"http://{args.host}:{port}/v1",
                    "model": settings.public_model,
                    "verifier": verifier_name,
                    "auth": bool(keys),
                }
            ),
            file=sys.stderr,
            flush=True,
        )
        server.run()
    return 0
