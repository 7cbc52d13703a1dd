"""Run candidate programs against tests: the program in a sandbox, the tests in a judge outside it.

**How a candidate is run.** Each candidate gets two fresh processes, started with asyncio (the
event loop never blocks on them):

- the *candidate server*, inside the sandbox, runs the model's code, then answers requests about
  what it defined: call ``add`` with ``(2, 3)``, read an attribute, index, iterate. Answers are
  plain data (``None``, bools, numbers, strings, bytes, and lists, tuples, dicts and sets of
  them) or references to objects that stay in the sandbox.
- the *judge*, a separate interpreter outside the sandbox that never loads the candidate's code,
  runs each test (``assert add(2, 3) == 5``) with the candidate's names bound to proxies. The
  arithmetic, the comparisons and the ``assert`` run in the judge on plain data; the candidate
  sees the calls made into it and their arguments, never a test or an expected value. The judge
  reports to this process on a pipe the candidate holds no end of.

So nothing the candidate does in its own process (append "passed" lines to a results file, print,
patch builtins, return an object whose ``__eq__`` always says yes, exit early) raises its score:
a wrong ``add`` still answers a wrong number. A program that fails to load scores 0, even on
tests that would pass without it (``assert True``).

What tests can do with the candidate's objects: call them, read attributes, index, ``len``,
iterate, ``bool`` and ``str``. Arguments must be plain data or the candidate's own objects. The
candidate's exceptions reach the test as the nearest builtin class (``except ValueError`` works).
Its objects equal only themselves, so functions under test should return plain data. Its global
variables that are plain data arrive as a snapshot taken once it has loaded. Names the
candidate defines that shadow builtins (``abs``, ``len``) are not visible to the tests, which
would otherwise hand those functions the expected values. Each use of a candidate's object is a
round trip between two processes (about 0.1 ms).

**Sandbox modes** (``sandbox=``; the mode in force is :attr:`CodeTestVerifier.sandbox`, its
promises :attr:`CodeTestVerifier.guarantees`):

``"bwrap"`` (bubblewrap; Debian/Ubuntu package ``bubblewrap``, 0.8 or newer). New user, PID,
network, IPC, UTS (and cgroup) namespaces, no further user namespaces inside, a new session. The
root is empty but for read-only system directories (``/usr``, ``/bin``, ``/lib*``), the
loader's files from ``/etc``, the interpreter's installation and virtualenv, ``/dev`` (device
nodes, read-only) and a ``/proc`` of its own PID namespace; ``/tmp`` (working directory and
``HOME``) is a tmpfs of ``disk_mb``, the only writable place. ``RLIMIT_NPROC`` counts the
processes of its own user namespace: ``max_processes`` caps the sandbox. Killing bwrap ends the
PID namespace, every process in it too. As root, a user namespace would map the candidate to
uid 0 outside, which may write ``/proc/sys`` and is exempt from ``RLIMIT_NPROC``; so the
candidate runs as ``nobody`` there (an outer bwrap builds the view, ``setpriv`` drops to
nobody, an inner bwrap makes the namespaces).

``"unshare"`` (util-linux). New user, PID (with its own ``/proc``), network, IPC and UTS
namespaces: the other processes are out of sight, the tree dies with the run, no network, and
``max_processes`` holds (not when running as root: the candidate keeps uid 0, which the kernel
does not count). The filesystem is the host's: the candidate writes what you can write (as
root: every file root owns) and only each file is capped at ``disk_mb``.

``"none"``: resource limits only. The candidate runs as you: it can read your files and, through
``/proc``, this process's environment and memory, and use the network; it is killed with its
process group, which a ``setsid`` child leaves. The judge is made non-dumpable, but a candidate
that reaches this process can still tamper with the report: only forgeries from inside its own
process are ruled out.

In every mode: the judge decides the verdict; the candidate's environment holds only ``PATH``,
``HOME``, ``TMPDIR`` and ``LANG``; address space (``memory_mb``), CPU time, the size of each
file (``disk_mb``), open files and core dumps are limited by rlimits; every call into the
candidate and every test has its own timer (``test_timeout_s``), and the whole run a wall clock
(``timeout_s``). Not limited in any mode: memory held outside address spaces (memfd, pipes,
sockets) and CPU time summed over processes (the wall clock bounds it). Namespaces are not a
virtual machine: a kernel bug can still be an escape.

``sandbox="auto"`` (default) takes the strongest mode that works here (found by running it once
per process) and warns when that is ``"none"``; naming a mode refuses to run without it
(:class:`~sal_plugins.errors.ConfigError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import signal
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from sal_plugins.errors import ConfigError, VerifierError
from sal_plugins.verifiers import _sandbox
from sal_plugins.verifiers._sandbox import GUARANTEE_TEXT, Guarantee, SandboxMode
from sal_plugins.verifiers._scores import gather_all
from sal_plugins.verifiers.base import Granularity, Judgement, Trajectory, check_scores

__all__ = ["GUARANTEE_TEXT", "CodeTestVerifier", "Guarantee", "SandboxMode", "extract_code"]

_FENCE = re.compile(r"```[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)```", re.DOTALL)
_MODES: tuple[SandboxMode, ...] = ("bwrap", "unshare", "none")
_MESSAGE_BYTES = 16 * 2**20  # one answer of the candidate
_VALUE_BYTES = 2**20  # a global of the candidate larger than this arrives as a reference

TestSource = Sequence[str] | Callable[[str], Sequence[str]]
"""Tests for every problem, or ``tests(problem) -> tests`` for a different set per problem."""


def extract_code(text: str) -> str:
    """The last fenced Python block of a reply (or last fenced block, or the whole text)."""
    blocks = list(_FENCE.finditer(text))
    python = [b for b in blocks if b.group("lang").lower() in ("python", "py", "python3")]
    chosen = python or blocks
    return chosen[-1].group("code") if chosen else text


@functools.cache
def _child_source() -> str:
    """The children's program: the source of ``_sandbox``, run with ``python -I -c``."""
    return Path(_sandbox.__file__).read_text(encoding="utf-8")


def _choose(requested: str, name: str) -> SandboxMode:
    if requested == "auto":
        for option in _MODES:
            if _sandbox.unavailable(option) is None:
                if option == "none":
                    warnings.warn(
                        f"{name}: no sandbox works here ({_sandbox.unavailable('bwrap')}); "
                        "candidates run with resource limits only. Install bubblewrap "
                        "(apt-get install bubblewrap) or pass sandbox='none' to accept this.",
                        stacklevel=3,
                    )
                return option
    if requested not in _MODES:
        raise ConfigError(f"{name}: sandbox must be 'auto', 'bwrap', 'unshare' or 'none'")
    mode: SandboxMode = requested  # type: ignore[assignment]
    reason = _sandbox.unavailable(mode)
    if reason is not None:
        fix = " (install it: apt-get install bubblewrap)" if mode == "bwrap" else ""
        raise ConfigError(f"{name}: sandbox={mode!r} cannot run here: {reason}{fix}")
    return mode


def _check_syntax(tests: Sequence[str], name: str) -> None:
    for index, test in enumerate(tests):
        if not isinstance(test, str):
            raise ConfigError(f"{name}: test {index} is a {type(test).__name__}, not a string")
        try:
            compile(test, f"<test {index}>", "exec")
        except SyntaxError as error:
            raise ConfigError(f"{name}: test {index} is not valid Python: {error}") from None


class CodeTestVerifier:
    """Scores a candidate program by the fraction of user-given tests it passes.

    The program runs in a sandbox and the tests in a separate judge process, which alone decides
    the verdict (see the module docstring for what each sandbox mode guarantees). Tests are
    Python statements run after the program, with its names in scope
    (``"assert add(2, 3) == 5"``); the failures become the critique.

    Args:
        tests: test statements, or ``tests(problem)`` returning them.
        timeout_s: wall-clock limit for one candidate and all its tests.
        test_timeout_s: limit for loading the program, for each test and for each call into it.
        memory_mb: address-space limit of each process of the candidate (and of the judge,
            which gets at least 256).
        max_concurrency: candidates run at once (default: CPU count).
        step_delimiter: joins the steps into the reply the code is extracted from.
        name: name used in errors and the tree.
        sandbox: ``"auto"`` (the strongest mode that works here), ``"bwrap"``, ``"unshare"``
            or ``"none"``; a named mode that cannot run here is a ConfigError.
        max_processes: processes and threads the candidate may run at once (where the mode
            guarantees ``"process_limit"``).
        disk_mb: what the candidate may write: all files together with bwrap, each file
            elsewhere.

    Attributes:
        sandbox: the mode in force.
        guarantees: what that mode promises; :data:`GUARANTEE_TEXT` says what each means.

    Example:
        >>> verifier = CodeTestVerifier(tests=["assert add(2, 3) == 5", "assert add(-1, 1) == 0"])
        >>> verifier.sandbox  # doctest: +SKIP
        'bwrap'
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
        sandbox: Literal["auto", "bwrap", "unshare", "none"] = "auto",
        max_processes: int = 32,
        disk_mb: int = 16,
    ) -> None:
        if os.name != "posix":
            raise ConfigError(f"{name} needs a POSIX system (resource limits, signals)")
        if not callable(tests) and (isinstance(tests, str) or not tests):
            raise ConfigError(f"{name}: tests must be a non-empty list of test statements")
        if timeout_s <= 0 or test_timeout_s <= 0 or memory_mb < 32:
            raise ConfigError(f"{name}: timeouts must be positive and memory_mb at least 32")
        if max_processes < 4 or disk_mb < 1:
            raise ConfigError(f"{name}: max_processes must be at least 4 and disk_mb at least 1")
        if not callable(tests):
            _check_syntax(tests, name)
        self.tests = tests
        self.timeout_s = timeout_s
        self.test_timeout_s = test_timeout_s
        self.memory_mb = memory_mb
        self.max_concurrency = max_concurrency or os.cpu_count() or 1
        self.step_delimiter = step_delimiter
        self.name = name
        self.max_processes = max_processes
        self.disk_mb = disk_mb
        self.sandbox: SandboxMode = _choose(sandbox, name)
        self.guarantees: frozenset[Guarantee] = _sandbox.guarantees(self.sandbox)

    def tests_for(self, problem: str) -> list[str]:
        """The tests of one problem."""
        tests = list(self.tests(problem) if callable(self.tests) else self.tests)
        if not tests:
            raise ConfigError(f"{self.name}: no tests for problem {problem[:60]!r}")
        if callable(self.tests):
            _check_syntax(tests, self.name)
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
        """Run ``code`` in the sandbox and ``tests`` against it in the judge; the fraction passed."""
        with tempfile.TemporaryDirectory(prefix="sal-code-") as scratch:
            lines, timed_out = await self._run_children(code, list(tests), Path(scratch))
        return self._judgement(lines, len(tests), timed_out)

    def _candidate_command(self) -> list[str]:
        settings = {
            "memory_bytes": self.memory_mb * 2**20,
            "cpu_seconds": int(self.timeout_s) + 1,
            "file_bytes": self.disk_mb * 2**20,
            "max_processes": self.max_processes if "process_limit" in self.guarantees else None,
            "call_seconds": self.test_timeout_s,
            "message_bytes": _MESSAGE_BYTES,
            "value_bytes": _VALUE_BYTES,
        }
        server = [sys.executable, "-I", "-B", "-c", _child_source(), "candidate"]
        command = [*server, json.dumps(settings)]
        return _sandbox.confine(self.sandbox, command, disk_bytes=self.disk_mb * 2**20)

    async def _run_children(
        self, code: str, tests: list[str], scratch: Path
    ) -> tuple[list[bytes], bool]:
        """Start the candidate server and the judge, wired to each other; the judge's report."""
        homes = scratch / "candidate", scratch / "judge"
        for home in homes:
            home.mkdir()
        to_candidate, from_candidate = os.pipe(), os.pipe()
        loose = [*to_candidate, *from_candidate]
        children: list[asyncio.subprocess.Process] = []
        lines: list[bytes] = []
        timed_out = False
        try:
            command = self._candidate_command()
            children.append(
                await self._spawn(
                    command, homes[0], stdin=to_candidate[0], stdout=from_candidate[1]
                )
            )
            ends = (to_candidate[1], from_candidate[0])
            judge = [sys.executable, "-I", "-B", "-c", _child_source(), "judge", *map(str, ends)]
            pipe = asyncio.subprocess.PIPE
            children.append(
                await self._spawn(judge, homes[1], stdin=pipe, stdout=pipe, pass_fds=ends)
            )
            # Only the children hold the pipes now: either one exiting shows the other an EOF.
            while loose:
                os.close(loose.pop())
            job = {
                "code": code,
                "tests": tests,
                "test_seconds": self.test_timeout_s,
                # The judge runs your tests and decodes the candidate's answers: it may need more.
                "memory_bytes": max(self.memory_mb, 256) * 2**20,
                "message_bytes": _MESSAGE_BYTES,
            }
            try:
                await asyncio.wait_for(_talk(children[1], job, lines), timeout=self.timeout_s)
            except asyncio.TimeoutError:
                timed_out = True
        finally:
            for fd in loose:
                os.close(fd)
            for child in children:
                # The group, not just the child: in "none" mode the candidate's own children are
                # in it. In the namespaced modes, killing bwrap/unshare ends the PID namespace.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
            for child in children:
                await child.wait()
        return lines, timed_out

    async def _spawn(
        self, command: list[str], home: Path, **pipes: Any
    ) -> asyncio.subprocess.Process:
        """Start one child in its own session, ``home`` its working directory and ``HOME``."""
        try:
            return await asyncio.create_subprocess_exec(
                *command,
                stderr=asyncio.subprocess.DEVNULL,
                cwd=home,
                env=_sandbox.candidate_env(str(home)),
                start_new_session=True,
                **pipes,
            )
        except OSError as error:
            raise VerifierError(
                f"could not start {Path(command[0]).name}: {error}", verifier=self.name
            ) from error

    def _judgement(self, lines: list[bytes], count: int, timed_out: bool) -> Judgement:
        outcomes: dict[int, str | None] = {}
        for line in lines:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                entry = json.loads(line)
                if "load" in entry:
                    outcomes[-1] = entry["load"]
                else:
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


async def _talk(
    judge: asyncio.subprocess.Process, job: dict[str, object], lines: list[bytes]
) -> None:
    """Hand the judge its job and collect its report, line by line, until it exits."""
    assert judge.stdin is not None and judge.stdout is not None
    with contextlib.suppress(ConnectionError):
        judge.stdin.write(json.dumps(job).encode())
        await judge.stdin.drain()
        judge.stdin.close()
    async for line in judge.stdout:
        lines.append(line)
