"""Run candidate programs against tests, each in a resource-limited child process.

This is NOT a security sandbox. The child runs with the user's privileges and can read what they
can read, open network connections and write to disk within its limits. The limits stop runaway
code (endless loops, unbounded allocation, huge output files) and keep secrets in the parent's
environment out of reach; they do not contain hostile code. Run untrusted candidates inside a
container or VM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from sal_plugins.errors import ConfigError
from sal_plugins.verifiers._scores import gather_all
from sal_plugins.verifiers.base import Granularity, Judgement, Trajectory, check_scores

__all__ = ["CodeTestVerifier", "extract_code"]

_FENCE = re.compile(r"```[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)```", re.DOTALL)

# The harness runs in the child: limits first, then the candidate, then each test under a timer.
_HARNESS = r"""
import json, resource, signal, sys
job = json.load(open("job.json"))
memory = job["memory_bytes"]
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_CPU, (job["cpu_seconds"], job["cpu_seconds"] + 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (job["file_bytes"], job["file_bytes"]))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
results = open("results.jsonl", "w", buffering=1)
def timed_out(signum, frame):
    raise TimeoutError("time limit exceeded")
signal.signal(signal.SIGALRM, timed_out)
def run(label, source, namespace):
    signal.setitimer(signal.ITIMER_REAL, job["test_seconds"])
    try:
        exec(compile(source, label, "exec"), namespace)
        return None
    except BaseException as error:
        return f"{type(error).__name__}: {error}"[:300]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
namespace = {"__name__": "__main__"}
error = run("<candidate>", job["code"], namespace)
results.write(json.dumps({"test": -1, "error": error}) + "\n")
for index, test in enumerate(job["tests"]):
    error = run(f"<test {index}>", test, namespace)
    results.write(json.dumps({"test": index, "error": error}) + "\n")
"""

TestSource = Sequence[str] | Callable[[str], Sequence[str]]
"""Tests for every problem, or ``tests(problem) -> tests`` for a different set per problem."""


def extract_code(text: str) -> str:
    """The last fenced Python block of a reply (or last fenced block, or the whole text)."""
    blocks = list(_FENCE.finditer(text))
    python = [b for b in blocks if b.group("lang").lower() in ("python", "py", "python3")]
    chosen = python or blocks
    return chosen[-1].group("code") if chosen else text


def _minimal_env(home: str) -> dict[str, str]:
    return {
        "PATH": os.defpath,
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }


class CodeTestVerifier:
    """Scores a candidate program by the fraction of user-given tests it passes.

    **Not a security sandbox** (see the module docstring): use it for your own model's code on
    your own machine, or inside a container.

    Each candidate runs in a fresh ``python -I`` child process (isolated mode: no user site, no
    ``PYTHON*`` variables), started with asyncio off the event loop, in a temporary scratch
    directory as working directory and ``HOME``, with a minimal environment (``PATH``, ``LANG``,
    ``HOME``: no API keys or other secrets of the parent). Inside, before the candidate runs,
    the child limits its address space (``RLIMIT_AS``), CPU time, file size and core dumps
    (set there rather than in ``preexec_fn``, which is unsafe when the parent has threads); each
    test also gets its own timer, and the whole child is killed, process group and all, when it
    runs past ``timeout_s``. Tests are Python statements run after the candidate, in its
    namespace (``"assert add(2, 3) == 5"``); the failures become the critique.

    Args:
        tests: test statements, or ``tests(problem)`` returning them.
        timeout_s: wall-clock limit for one candidate and all its tests.
        test_timeout_s: limit for the candidate's own code and for each test.
        memory_mb: address-space limit of the child.
        max_concurrency: candidates run at once (default: CPU count).
        step_delimiter: joins the steps into the reply the code is extracted from.
        name: name used in errors and the tree.

    Example:
        >>> verifier = CodeTestVerifier(tests=["assert add(2, 3) == 5", "assert add(-1, 1) == 0"])
        >>> search = sal.BestOfN(solver=solver, verifier=verifier, n=8)  # doctest: +SKIP
    """

    granularity: Granularity = "outcome"
    score_range: tuple[float, float] | None = (0.0, 1.0)

    def __init__(
        self,
        *,
        tests: TestSource,
        timeout_s: float = 10.0,
        test_timeout_s: float = 5.0,
        memory_mb: int = 512,
        max_concurrency: int | None = None,
        step_delimiter: str = "\n\n",
        name: str = "CodeTestVerifier",
    ) -> None:
        if os.name != "posix":
            raise ConfigError(f"{name} needs a POSIX system (resource limits, signals)")
        if not callable(tests) and (isinstance(tests, str) or not tests):
            raise ConfigError(f"{name}: tests must be a non-empty list of test statements")
        if timeout_s <= 0 or test_timeout_s <= 0 or memory_mb < 32:
            raise ConfigError(f"{name}: timeouts must be positive and memory_mb at least 32")
        self.tests = tests
        self.timeout_s = timeout_s
        self.test_timeout_s = test_timeout_s
        self.memory_mb = memory_mb
        self.max_concurrency = max_concurrency or os.cpu_count() or 1
        self.step_delimiter = step_delimiter
        self.name = name

    def tests_for(self, problem: str) -> list[str]:
        """The tests of one problem."""
        tests = list(self.tests(problem) if callable(self.tests) else self.tests)
        if not tests:
            raise ConfigError(f"{self.name}: no tests for problem {problem[:60]!r}")
        return tests

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        """Run every candidate against the problem's tests; score = fraction passed."""
        tests = self.tests_for(problem)
        limit = asyncio.Semaphore(self.max_concurrency)

        async def one(trajectory: Trajectory) -> Judgement:
            code = extract_code(self.step_delimiter.join(trajectory.steps))
            async with limit:
                return await self.run(code, tests)

        rows = await gather_all(*(one(t) for t in trajectories))
        return check_scores(self, trajectories, rows)

    async def run(self, code: str, tests: Sequence[str]) -> Judgement:
        """Run ``code`` then ``tests`` in a limited child process; the fraction passed."""
        with tempfile.TemporaryDirectory(prefix="sal-code-") as scratch:
            folder = Path(scratch)
            job = {
                "code": code,
                "tests": list(tests),
                "memory_bytes": self.memory_mb * 2**20,
                "cpu_seconds": int(self.timeout_s) + 1,
                "file_bytes": 16 * 2**20,
                "test_seconds": self.test_timeout_s,
            }
            (folder / "job.json").write_text(json.dumps(job))
            (folder / "harness.py").write_text(_HARNESS)
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "harness.py",
                cwd=scratch,
                env=_minimal_env(scratch),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
            timed_out = False
            try:
                await asyncio.wait_for(process.wait(), timeout=self.timeout_s)
            except asyncio.TimeoutError:
                timed_out = True
            finally:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    await process.wait()
            return self._judgement(folder / "results.jsonl", len(tests), timed_out)

    def _judgement(self, results: Path, count: int, timed_out: bool) -> Judgement:
        outcomes: dict[int, str | None] = {}
        if results.exists():
            for line in results.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    entry = json.loads(line)
                    outcomes[int(entry["test"])] = entry["error"]
        problems = []
        if -1 not in outcomes:
            problems.append("the program did not finish loading" + (" (timed out)" * timed_out))
        elif outcomes[-1] is not None:
            problems.append(f"the program failed to run: {outcomes[-1]}")
        passed = 0
        for index in range(count):
            if index in outcomes and outcomes[index] is None:
                passed += 1
            elif index in outcomes:
                problems.append(f"test {index} failed: {outcomes[index]}")
            elif -1 in outcomes and outcomes[-1] is None:
                problems.append(f"test {index} did not finish" + (" (timed out)" * timed_out))
        critique = "\n".join(problems[:5]) or None
        return Judgement((passed / count,), critique=critique)
