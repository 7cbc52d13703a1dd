"""math-verify under a hard time bound: screens for pathological answers and a killable worker.

math-verify (sympy underneath) can spend minutes, or all the memory there is, on a short answer
(``9^{9^{9}}``, ``(10^{10})!``). Its own timeouts are signal-based, so they work on a main thread
only, and strategies compare answers on event loops that often run in worker threads; a thread
cannot be stopped, and big-integer arithmetic in C does not even return to the interpreter to
notice a signal. So comparisons run in a worker process, one at a time, and the process is killed
when one runs past :data:`CAP_S` (plus :data:`KILL_GRACE_S`); the next comparison that needs
math-verify starts a fresh one.

Before an answer reaches the worker, :func:`screen` rejects the shapes known to blow up (too
long, deeply nested, power towers, factorials of huge numbers, many terms): a kill and restart
costs about a second without math-verify, a screen costs microseconds. Answers that fail a
screen are compared as normalised strings by the caller.

Inside the worker an interval timer stops a runaway that is still running Python at
:data:`CAP_S` (the worker answers "overrun" and lives on: no restart), a CPU-time rlimit lets the
kernel end one that never returns to the interpreter even when the parent has died, and an
address-space rlimit turns memory blow-ups into ``MemoryError``. The parent's watchdog is what
the time bound rests on; the rest spare restarts and orphans. Two answers whose values clearly
differ (real expressions evaluated at two points) skip ``verify``, which would spend tens of
milliseconds simplifying their difference: that keeps a grouping of many distinct answers within
a search's budget; it never turns a math-verify "equal" into "different" (see
:func:`_clearly_different`).

The worker is started lazily (:meth:`MathVerifyService.warm_up` or the first comparison that needs
it), never at import: starting costs the caller a few milliseconds, and the worker about a second
to import math-verify, which callers may wait for or not. It is killed at interpreter exit; it
exits by itself when its input ends (the parent died); after ``os.fork`` the child forgets it.

This file is also the worker's program: run by path, it imports the standard library and
math-verify only (``sal_plugins`` itself would add a quarter second of imports to every start).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

CAP_S = 2.0
"""The most math-verify may spend on one comparison (parsing both answers and verifying)."""

KILL_GRACE_S = 0.5
"""How long past ``CAP_S`` the watchdog waits for the worker's own timer before killing it."""

STARTUP_TIMEOUT_S = 60.0
"""A worker not ready by then is killed (a swapping machine, a wedged import)."""

FIRST_START_WAIT_S = 15.0
"""How long a caller that may wait (not on an event loop) waits for the process's first worker
to load math-verify, on top of its own bound; about a second on an idle machine."""

RETRY_START_AFTER_S = 30.0
"""After a worker failed to start (math-verify not importable), how long until the next try."""

MEMORY_LIMIT_BYTES = 1 << 30
"""Address space the worker may use; math-verify needs well under a tenth of it."""

MAX_LENGTH = 400
"""Longer answers are compared as strings: parsing grows steeply with length."""

MAX_NESTING = 10
"""Deepest nesting of ``{}``, ``()`` and ``[]`` together."""

MAX_PAREN_NESTING = 6
"""Deepest nesting of ``()`` and ``[]``: the LaTeX grammar backtracks on each level."""

MAX_TERMS = 60
"""Most ``+ - * / \\cdot \\times \\div`` operators; past a few hundred the parser gives up and
math-verify falls back to the last number it sees (``1+1+...+1`` "equals" ``1``)."""

MAX_LITERAL_EXPONENT = 10**5
"""Largest numeric exponent: ``10^{10^6}`` has a million digits to compute and compare."""

MAX_FACTORIAL_DIGITS = 5
"""Largest factorial operand, in digits: ``99999!`` is quick, ``1000000!`` takes ten seconds."""

_COMMAND = re.compile(r"\\[a-zA-Z]+")
_INTEGER = re.compile(r"(?<![\d.])\d+")  # digit runs, not the decimals of a number
_OPERATOR = re.compile(r"[-+*/]|\\(?:cdot|times|div)(?![a-zA-Z])")


def screen(answer: str) -> str | None:
    """Why ``answer`` must not reach math-verify, or ``None`` when it may.

    Cheap and conservative: the shapes rejected here are the ones seen to run for seconds or
    forever; a rejected answer is only compared as a string, so a rare false alarm costs a
    missed equivalence, never a wrong one.

    Examples:
        >>> screen("\\\\frac{\\\\sqrt{3}}{2}") is None
        True
        >>> screen("9^{9^{9}}")
        'a power tower of numbers'
    """
    if len(answer) > MAX_LENGTH:  # checked first, and outside the cache: it holds its keys
        return f"longer than {MAX_LENGTH} characters"
    return _screen(answer)


@lru_cache(maxsize=4096)
def _screen(answer: str) -> str | None:
    depth = paren_depth = deepest = deepest_paren = 0
    for char in answer:
        if char in "({[":
            depth += 1
            deepest = max(deepest, depth)
            if char != "{":
                paren_depth += 1
                deepest_paren = max(deepest_paren, paren_depth)
        elif char in ")}]":
            depth = max(0, depth - 1)
            if char != "}":
                paren_depth = max(0, paren_depth - 1)
    if deepest > MAX_NESTING:
        return f"brackets nested more than {MAX_NESTING} deep"
    if deepest_paren > MAX_PAREN_NESTING:
        return f"parentheses nested more than {MAX_PAREN_NESTING} deep"
    if len(_OPERATOR.findall(answer)) > MAX_TERMS:
        return f"more than {MAX_TERMS} operators"
    for index, char in enumerate(answer):
        if char == "^":
            reason = _exponent_problem(_argument_after(answer, index + 1))
        elif char == "!":
            reason = _factorial_problem(answer[:index].rstrip())
        else:
            continue
        if reason:
            return reason
    return None


def _argument_after(text: str, start: int) -> str:
    """The superscript that starts at ``start``: a bracketed group, a digit run or one character."""
    while start < len(text) and text[start] == " ":
        start += 1
    if start >= len(text):
        return ""
    if text[start] in "({[":
        return text[start + 1 : _closing_of(text, start)]
    digits = _INTEGER.match(text, start)
    return digits.group() if digits else text[start]


def _closing_of(text: str, start: int) -> int:
    """Index of the bracket closing the one at ``start`` (or the end of ``text``)."""
    depth = 0
    for index in range(start, len(text)):
        if text[index] in "({[":
            depth += 1
        elif text[index] in ")}]":
            depth -= 1
            if depth == 0:
                return index
    return len(text)


def _opening_of(text: str, end: int) -> int:
    """Index of the bracket opening the one that closes at ``end`` (or 0)."""
    depth = 0
    for index in range(end, -1, -1):
        if text[index] in ")}]":
            depth += 1
        elif text[index] in "({[":
            depth -= 1
            if depth == 0:
                return index
    return 0


def _exponent_problem(exponent: str) -> str | None:
    # A tower is harmless while a variable stays in it (sympy keeps e^{x^2} symbolic); LaTeX
    # commands (\sqrt, \frac) are operators here, not variables.
    numeric = not re.search(r"[a-zA-Z]", _COMMAND.sub("", exponent))
    if numeric and ("^" in exponent or "!" in exponent):
        return "a power tower of numbers"
    if any(len(d) > 6 or int(d) > MAX_LITERAL_EXPONENT for d in _INTEGER.findall(exponent)):
        return f"an exponent above {MAX_LITERAL_EXPONENT}"
    return None


def _factorial_problem(before: str) -> str | None:
    """What is wrong with the factorial of the end of ``before``, if anything."""
    if before.endswith("!"):
        return "a factorial of a factorial"
    if before and before[-1] in ")]}":
        group_start = _opening_of(before, len(before) - 1)
        group = before[group_start:]
        # ``10^{10}!`` parses as (10^10)!: the factorial of an exponent's whole power.
        if before[:group_start].rstrip().endswith("^") or "^" in group or "!" in group:
            return "a factorial of a power"
        operands = _INTEGER.findall(group)
    else:
        start = len(before)
        while start > 0 and before[start - 1] in "0123456789":
            start -= 1
        operands = [before[start:]]
    if any(len(d) > MAX_FACTORIAL_DIGITS for d in operands):
        return f"a factorial of a number of more than {MAX_FACTORIAL_DIGITS} digits"
    return None


# --- the parent's side ----------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What the service found: ``equal`` from math-verify, or ``None`` and why there is none."""

    equal: bool | None
    reason: str | None = None


_STARTING = Verdict(None, "math-verify is still starting")


class _Job:
    """One comparison in flight; finished by the worker's reply or by the worker's death."""

    def __init__(self, job_id: int, on_done: Callable[[Verdict], None]) -> None:
        self.id = job_id
        self.done = threading.Event()
        self.verdict = Verdict(None, "math-verify did not answer")
        self._on_done = on_done

    def finish(self, verdict: Verdict) -> None:
        if self.done.is_set():
            return
        self.verdict = verdict
        self.done.set()
        self._on_done(verdict)


class _Worker:
    """One math-verify process, its reader thread and its watchdog thread."""

    def __init__(self, command: Sequence[str], cap_s: float, on_ready: Callable[[], None]) -> None:
        self.cap_s = cap_s
        self._on_ready = on_ready
        self.process = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # Unbuffered: a buffered pipe has a lock that the reader thread holds while it
            # waits, which a fork or the interpreter's shutdown could then find taken.
            bufsize=0,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._stdin = self.process.stdin.fileno()
        self._stdout = self.process.stdout.fileno()
        self.slot = threading.Semaphore(1)  # one comparison at a time: released when it ends
        self.settled = threading.Event()  # ready, or dead
        self.ready = False
        self.dead = False
        self.failure: str | None = None
        self._lock = threading.Condition()
        self._jobs: dict[int, _Job] = {}
        self._ids = itertools.count()
        self._due: float | None = time.monotonic() + STARTUP_TIMEOUT_S
        self._killed_overdue = False
        path = [str(entry) for entry in sys.path]
        config = {"path": path, "cap_s": cap_s, "memory_bytes": MEMORY_LIMIT_BYTES}
        self._send(config)
        for target, name in ((self._read, "reader"), (self._watch, "watchdog")):
            threading.Thread(target=target, name=f"sal-math-verify-{name}", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def submit(self, a: str, b: str, on_done: Callable[[Verdict], None]) -> _Job | None:
        """Send one comparison; ``None`` if the worker is gone. The caller holds ``slot``."""
        with self._lock:
            if self.dead:
                return None
            job = _Job(next(self._ids), on_done)
            self._jobs[job.id] = job
            self._due = time.monotonic() + self.cap_s + KILL_GRACE_S
            self._lock.notify_all()
            self._send({"id": job.id, "a": a, "b": b})
        return job

    def _send(self, message: dict[str, Any]) -> None:
        data = memoryview(json.dumps(message).encode() + b"\n")
        try:
            while data:
                data = data[os.write(self._stdin, data) :]
        except OSError:
            pass  # the worker died: the reader sees its output end and fails what was asked

    def _read(self) -> None:
        pending = b""
        try:
            while chunk := os.read(self._stdout, 1 << 16):
                pending += chunk
                while b"\n" in pending:
                    line, _, pending = pending.partition(b"\n")
                    self._handle(json.loads(line))
        except Exception:  # a torn or foreign line: treated as the worker's death
            self.kill()
        finally:
            with self._lock:
                self.dead = True
                jobs, self._jobs = list(self._jobs.values()), {}
                self._due = None
                self._lock.notify_all()
            self.settled.set()
            if self._killed_overdue:
                reason = f"math-verify ran past its {self.cap_s:g} s bound"
            else:  # the kernel's CPU or memory limit, most likely
                reason = "math-verify's worker stopped while comparing"
            for job in jobs:
                job.finish(Verdict(None, reason))
            self.process.wait()

    def _handle(self, message: dict[str, Any]) -> None:
        if "ready" in message:
            with self._lock:
                self.ready = True
                self._due = None
            self._on_ready()
            self.settled.set()
            return
        if "failed" in message:
            self.failure = str(message["failed"])
            return
        with self._lock:
            job = self._jobs.pop(int(message["id"]), None)
            self._due = None
        if job is not None:
            if message.get("overrun"):
                job.finish(Verdict(None, f"math-verify ran past its {self.cap_s:g} s bound"))
            else:
                job.finish(Verdict(bool(message["equal"])))

    def _watch(self) -> None:
        with self._lock:
            while not self.dead:
                if self._due is None:
                    self._lock.wait()
                    continue
                left = self._due - time.monotonic()
                if left > 0:
                    self._lock.wait(left)
                    continue
                self._killed_overdue = self.ready
                if not self.ready:
                    self.failure = f"not ready after {STARTUP_TIMEOUT_S:g} s"
                break
            else:
                return
        self.kill()

    def kill(self) -> None:
        with contextlib.suppress(OSError):  # reaped already
            self.process.kill()

    def close(self) -> None:
        """Kill the worker and reap it (it holds nothing worth a graceful exit)."""
        self.kill()
        self.process.wait()


class MathVerifyService:
    """Comparisons by math-verify in a worker process, each bounded, results cached.

    Thread-safe: any thread (an event loop's, a ``run()`` worker thread, ``asyncio.to_thread``)
    may call :meth:`verdict`; comparisons queue for the one worker within their own deadline.

    Args:
        cap_s: the most math-verify may spend on one comparison.
        cache_size: how many pair verdicts to remember (overruns included, so a pathological
            pair costs its bound once per process, not once per search).
        command: the worker's command line (this file, run by the current interpreter); tests
            substitute workers that misbehave on purpose.
    """

    def __init__(
        self,
        cap_s: float = CAP_S,
        cache_size: int = 4096,
        command: Sequence[str] | None = None,
    ) -> None:
        self.cap_s = cap_s
        self.cache_size = cache_size
        self.command = list(command or [sys.executable, "-I", str(Path(__file__).resolve())])
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._cache: OrderedDict[tuple[str, str], Verdict] = OrderedDict()
        self._retry_at = 0.0
        self._unavailable = "math-verify is unavailable"
        self._ever_ready = False
        self._shut_down = False

    def _became_ready(self) -> None:
        self._ever_ready = True

    def warm_up(self) -> bool:
        """Start the worker if none is running (without waiting); whether it is ready now."""
        worker = self._current_worker()
        return isinstance(worker, _Worker) and worker.ready

    def wait_ready(self, timeout_s: float) -> bool:
        """Start the worker if needed and wait up to ``timeout_s`` for it; whether it is ready."""
        worker = self._current_worker()
        if not isinstance(worker, _Worker):
            return False
        worker.settled.wait(max(0.0, timeout_s))
        return worker.ready and not worker.dead

    def wait_first_start(self, limit_s: float = FIRST_START_WAIT_S) -> float:
        """Before the first comparison in a process: wait for its first worker to load.

        Returns the seconds waited (0 once a worker has been ready), for the caller to add to
        its deadline: loading math-verify is a one-time cost, not the comparison's.
        """
        if self._ever_ready:
            return 0.0
        start = time.monotonic()
        worker = self._current_worker()
        if isinstance(worker, _Worker):
            worker.settled.wait(limit_s)
        return time.monotonic() - start

    def worker_pid(self) -> int | None:
        """The worker's process id, if one is running (for tests and diagnostics)."""
        worker = self._worker
        return worker.pid if worker is not None and not worker.dead else None

    def cached(self, a: str, b: str) -> Verdict | None:
        """The remembered verdict for this pair, if any."""
        key = (a, b) if a <= b else (b, a)
        with self._lock:
            verdict = self._cache.get(key)
            if verdict is not None:
                self._cache.move_to_end(key)
            return verdict

    def verdict(self, a: str, b: str, *, deadline: float, wait_for_start: bool) -> Verdict:
        """math-verify's verdict on ``a`` and ``b``, or why there is none by ``deadline``.

        Args:
            a: one answer (already screened).
            b: the other.
            deadline: ``time.monotonic()`` by which to return, whatever happens.
            wait_for_start: whether to wait (within the deadline) for a worker that is still
                starting; ``False`` on an event loop's thread, where waiting stalls the loop.
        """
        cached = self.cached(a, b)
        if cached is not None:
            return cached
        worker = self._current_worker()
        if isinstance(worker, str):
            return Verdict(None, worker)
        if not worker.ready:
            if not wait_for_start:
                return _STARTING
            worker.settled.wait(_left(deadline))
            if not worker.ready:
                return Verdict(None, worker.failure or _STARTING.reason)
        if not worker.slot.acquire(timeout=_left(deadline)):
            return Verdict(None, "math-verify was busy past the time budget")
        key = (a, b) if a <= b else (b, a)

        def on_done(verdict: Verdict) -> None:
            worker.slot.release()
            self._remember(key, verdict)

        job = worker.submit(a, b, on_done)
        if job is None:
            worker.slot.release()
            return Verdict(None, "math-verify stopped")
        # A comparison cut short here goes on in the worker (within its cap); its verdict is
        # remembered when it arrives, for the next search that meets the same pair.
        if not job.done.wait(_left(deadline)):
            return Verdict(None, "the time budget ran out before math-verify answered")
        return job.verdict

    def _remember(self, key: tuple[str, str], verdict: Verdict) -> None:
        with self._lock:
            self._cache[key] = verdict
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _current_worker(self) -> _Worker | str:
        """The running worker, a new one if there is none, or why there can be none."""
        with self._lock:
            worker = self._worker
            if worker is not None and not worker.dead:
                return worker
            now = time.monotonic()
            if worker is not None and not worker.ready:
                # It died starting: math-verify is probably not importable. Do not start one
                # per comparison; try again later.
                self._unavailable = f"math-verify could not start ({worker.failure or 'exited'})"
                self._retry_at = now + RETRY_START_AFTER_S
                self._worker = None
            if now < self._retry_at:
                return self._unavailable
            if self._shut_down:  # a daemon thread comparing during interpreter exit
                return "the interpreter is exiting"
            if getattr(sys, "frozen", False) or not sys.executable:
                # A frozen application's executable is the application, not a Python.
                return "math-verify cannot run in a worker here (no Python executable)"
            try:
                self._worker = _Worker(self.command, self.cap_s, self._became_ready)
            except OSError as error:
                self._unavailable = f"math-verify could not start ({error})"
                self._retry_at = now + RETRY_START_AFTER_S
                self._worker = None
                return self._unavailable
            return self._worker

    def close(self) -> None:
        """Stop the worker (it is started again on the next use)."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()

    def shut_down(self) -> None:
        """Stop the worker for good: the interpreter is exiting."""
        with self._lock:
            self._shut_down = True
        self.close()

    def after_fork(self) -> None:
        """In a forked child: forget the parent's worker and locks (they belong to the parent).

        The child's copies of the worker's pipes close with the objects dropped here (they are
        unbuffered: no lock a vanished thread could hold). The child starts its own worker
        when it needs one.
        """
        self._reset()


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


SERVICE = MathVerifyService()
"""The process's one service: its worker is shared by every search in the process."""

atexit.register(SERVICE.shut_down)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=SERVICE.after_fork)


# --- the worker's side ----------------------------------------------------------------------


class _Overrun(BaseException):
    """Raised by the interval timer (a BaseException: math-verify's handlers catch Exception)."""


def _serve() -> None:  # pragma: no cover - runs in the worker process
    """The worker: read comparisons (JSON lines) from stdin, answer them on stdout."""
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints (sympy, math-verify) must not corrupt the protocol
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent; EOF ends us

    def send(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message).encode() + b"\n")
        protocol.flush()

    config = json.loads(sys.stdin.buffer.readline() or b"{}")
    # Find math-verify where the parent found it (-I dropped PYTHONPATH and the user site).
    sys.path[:0] = [p for p in config.get("path", []) if p not in sys.path]
    _limit(config.get("memory_bytes"))
    cap_s = float(config.get("cap_s", CAP_S))
    try:
        compare = _math_verify()
        compare("x+1", "1+x")  # loads the LaTeX grammar and sympy's caches before the first ask
    except BaseException as error:
        send({"failed": f"{type(error).__name__}: {error}"[:300]})
        return
    if hasattr(signal, "setitimer"):
        signal.signal(signal.SIGALRM, _raise_overrun)
    send({"ready": True})
    for line in sys.stdin.buffer:
        request = json.loads(line)
        send({"id": request["id"], **_bounded(compare, request["a"], request["b"], cap_s)})


def _math_verify() -> Callable[[str, str], bool]:  # pragma: no cover - runs in the worker
    import logging

    from math_verify import parse, verify

    # Its warnings say the timeouts are off: this process is the timeout.
    logging.getLogger("math_verify").setLevel(logging.ERROR)

    @lru_cache(maxsize=4096)
    def parsed(answer: str) -> Any:
        return parse(f"${answer}$", parsing_timeout=None)  # type: ignore[arg-type]

    def compare(a: str, b: str) -> bool:
        parsed_a, parsed_b = parsed(a), parsed(b)
        if not parsed_a or not parsed_b:
            return False
        if _clearly_different(parsed_a, parsed_b):
            return False
        return bool(
            verify(parsed_a, parsed_b, timeout_seconds=None)  # type: ignore[arg-type]
            or verify(parsed_b, parsed_a, timeout_seconds=None)  # type: ignore[arg-type]
        )

    return compare


_SAMPLE_POINTS = (
    (0.6180339887, 1.3247179572, 0.7548776662, 1.1892071150, 0.8660254038, 1.4142135624),
    (1.4655712319, 0.5772156649, 1.2599210499, 0.6931471806, 1.0471975512, 0.9189385332),
)
"""Where variables are evaluated: positive, irrational, unlike any answer's special points."""


def _clearly_different(parsed_a: list[Any], parsed_b: list[Any]) -> bool:  # pragma: no cover
    """Whether two parsed answers are expressions whose values differ far beyond rounding.

    A shortcut past ``verify``, which spends tens of milliseconds simplifying ``a - b`` before it
    finds, say, ``(x+1)^{3}`` and ``x+3`` different; a grouping makes many such comparisons. It
    only ever says "different", and only where every rule of math-verify comes down to values:
    plain expressions in real variables (equal ones agree at every point; it rounds to 6 places,
    the margin here is 1e-3). Lone symbols (its symbol-name rules), percentages (``9\\%``
    equals ``9`` to it), sets, relations, matrices and complex variables are left to ``verify``.
    """
    import cmath

    from sympy import Expr, Symbol, UnevaluatedExpr

    expressions = []
    for parsed in (parsed_a, parsed_b):
        found = [item for item in parsed if not isinstance(item, str)]
        if len(found) != 1:
            return False
        expression = found[0]
        if (
            not isinstance(expression, Expr)
            or isinstance(expression, Symbol)
            or expression.has(UnevaluatedExpr)
            or any(symbol.is_real is not True for symbol in expression.free_symbols)
        ):
            return False
        expressions.append(expression)
    symbols = sorted(expressions[0].free_symbols | expressions[1].free_symbols, key=str)
    if len(symbols) > len(_SAMPLE_POINTS[0]):
        return False
    for point in _SAMPLE_POINTS:
        substitution = dict(zip(symbols, point, strict=False))
        try:
            a, b = (complex(e.evalf(15, subs=substitution)) for e in expressions)
        except (TypeError, ValueError, ArithmeticError):
            return False  # not a number there (an undefined function, a pole)
        if not (cmath.isfinite(a) and cmath.isfinite(b)):
            return False
        if abs(a - b) <= 1e-3 * max(1.0, abs(a), abs(b)):
            return False
    return True


def _bounded(
    compare: Callable[[str, str], bool], a: str, b: str, cap_s: float
) -> dict[str, Any]:  # pragma: no cover - runs in the worker
    _cpu_limit(cap_s)
    try:
        _alarm(cap_s)
        try:
            equal = compare(a, b)
        finally:
            _alarm(0.0)
    except _Overrun:
        return {"overrun": True}
    except Exception:  # math-verify raises on some malformed LaTeX: different, then
        return {"equal": False}
    return {"equal": equal}


def _raise_overrun(signum: int, frame: object) -> None:  # pragma: no cover - in the worker
    raise _Overrun


def _alarm(seconds: float) -> None:  # pragma: no cover - runs in the worker
    if hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, seconds)


def _limit(memory_bytes: int | None) -> None:  # pragma: no cover - runs in the worker
    try:
        import resource
    except ImportError:  # Windows: the parent's watchdog is the only bound
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    if memory_bytes:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_bytes if soft == resource.RLIM_INFINITY else min(soft, memory_bytes)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _cpu_limit(cap_s: float) -> None:  # pragma: no cover - runs in the worker
    """Let the kernel end this process if the coming comparison burns far more CPU than its cap.

    A runaway big-integer operation never returns to the interpreter, so the interval timer
    cannot stop it; the parent's watchdog normally kills it, and this covers a parent that died.
    """
    try:
        import resource
    except ImportError:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    spent = usage.ru_utime + usage.ru_stime
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    limit = int(spent + cap_s) + 3
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (limit, hard))


if __name__ == "__main__":  # pragma: no cover - the worker process
    _serve()
