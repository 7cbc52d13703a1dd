"""Start and query benchmarks/fake_server.py in a child process (loopback only)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent


@contextlib.contextmanager
def fake_server(
    gen_latency: float, prm_latency: float, steps: int = 4, extra_args: Sequence[str] = ()
) -> Iterator[str]:
    """Run the fake server; yield its root URL (``http://127.0.0.1:PORT``).

    ``extra_args`` are more of its flags (``--task chain --slip 0.25``, ``--tcp-nodelay``, ...).
    """
    process = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "fake_server.py"),
            "--gen-latency",
            str(gen_latency),
            "--prm-latency",
            str(prm_latency),
            "--steps",
            str(steps),
            *extra_args,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"fake server did not start: {line!r}")
        root = line.removeprefix("listening on ")
        for _ in range(200):  # at most ~10 s
            try:
                httpx.get(f"{root}/v1/models", timeout=1.0)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield root
    finally:
        process.terminate()
        process.wait(timeout=10)


def reset(root: str) -> None:
    """Zero the server's counters."""
    httpx.post(f"{root}/stats/reset", timeout=5.0)


def stats(root: str) -> dict[str, Any]:
    """The server's counters since the last reset."""
    data: dict[str, Any] = httpx.get(f"{root}/stats", timeout=5.0).json()
    return data
