"""Confinement for :class:`~sal_plugins.verifiers.CodeTestVerifier`, and the programs it confines.

Two kinds of code live here:

- parent side: which sandbox modes work on this machine (:func:`unavailable`), what each one
  guarantees (:func:`guarantees`), and the command line that confines a candidate
  (:func:`confine`);
- child side: the two programs the verifier starts for every candidate. The *judge* runs the
  user's tests, in a process of its own that never loads the candidate's code; the *candidate
  server* runs the model's code in the sandbox and answers the judge's calls into it (call this
  function, read that attribute) with plain data. Comparisons, ``assert`` and all other test
  logic run in the judge, so the candidate never sees a test or an expected value and cannot
  decide a verdict.

The parent starts both children as ``python -I -c <source of this module> judge|candidate ...``,
so this module imports only the standard library and keeps its top level cheap.
"""

from __future__ import annotations

import builtins
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, Literal, TypeGuard, TypeVar

SandboxMode = Literal["bwrap", "unshare", "none"]
"""``bwrap``: bubblewrap; ``unshare``: util-linux ``unshare`` namespaces; ``none``: rlimits only."""

Guarantee = Literal[
    "verdict",
    "environment",
    "limits",
    "processes_hidden",
    "tree_kill",
    "process_limit",
    "network",
    "read_only",
    "disk_limit",
]
"""What a sandbox mode promises; :data:`GUARANTEE_TEXT` says what each one means."""

GUARANTEE_TEXT: dict[Guarantee, str] = {
    "verdict": "the tests run in a separate judge process: nothing the candidate does in its own "
    "process (writing files, printing, patching builtins, returning objects with a custom "
    "__eq__, exiting early) can raise its score, and it is never sent a test or an expected "
    "value; a program that fails to load scores 0",
    "environment": "the candidate's environment holds only PATH, HOME, TMPDIR and LANG",
    "limits": "address space, CPU time, size of each file and wall-clock time are limited",
    "processes_hidden": "the candidate cannot see other processes: not the parent's environment, "
    "memory or file descriptors under /proc, not the judge (which holds the tests)",
    "tree_kill": "every process the candidate starts (setsid and double-forked ones too) dies "
    "with the run",
    "process_limit": "the candidate cannot run more than max_processes processes and threads",
    "network": "no network (a network namespace with loopback only)",
    "read_only": "the candidate can write nowhere but its scratch directory (/tmp)",
    "disk_limit": "all the files it writes together are capped at disk_mb",
}

_EVERYWHERE: frozenset[Guarantee] = frozenset({"verdict", "environment", "limits"})
_NAMESPACES: frozenset[Guarantee] = _EVERYWHERE | {
    "processes_hidden",
    "tree_kill",
    "process_limit",
    "network",
}


def guarantees(mode: SandboxMode, *, root: bool | None = None) -> frozenset[Guarantee]:
    """What ``mode`` guarantees; ``root``: whether the parent runs as root (default: this process).

    Only bubblewrap confines the filesystem. ``unshare`` as root keeps the candidate's user id 0
    (without capabilities): the kernel does not count root's processes against RLIMIT_NPROC, and
    the candidate can write every file root owns, so no process limit is promised then.
    """
    if mode == "bwrap":
        return _NAMESPACES | {"read_only", "disk_limit"}
    if mode == "unshare":
        as_root = os.geteuid() == 0 if root is None else root
        return _NAMESPACES - {"process_limit"} if as_root else _NAMESPACES
    return _EVERYWHERE


# -- parent side: confinement ----------------------------------------------------------------

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Just what the dynamic loader and the interpreter read; not passwd, not the rest of /etc.
_SYSTEM_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/alternatives",
)
_NOBODY = "65534"
CANDIDATE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
"""The candidate's environment, besides ``HOME`` and ``TMPDIR`` (its scratch directory)."""


def candidate_env(home: str) -> dict[str, str]:
    """The whole environment of a candidate whose scratch directory is ``home``."""
    return {**CANDIDATE_ENV, "HOME": home, "TMPDIR": home}


def _interpreter_dirs() -> list[str]:
    """Directories the interpreter needs (its installation and virtualenv), outside system dirs."""
    found = {
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
    }
    dirs: list[str] = []
    for path in sorted(os.path.normpath(p) for p in found):
        covered = [*_SYSTEM_DIRS, *dirs]
        if path != "/" and not any(path == c or path.startswith(c + "/") for c in covered):
            dirs.append(path)
    return dirs


def _bwrap_view() -> list[str]:
    """bwrap options for the read-only part of the view: system dirs and the interpreter."""
    view: list[str] = []
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            view += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            view += ["--ro-bind", path, path]
    for path in _SYSTEM_FILES:
        view += ["--ro-bind-try", path, path]
    made: set[str] = set()
    for path in _interpreter_dirs():
        # bwrap creates missing parents with mode 0700; the sandbox's user must get through them.
        parent = os.path.dirname(path)
        parents = []
        while parent != "/" and parent not in made:
            parents.append(parent)
            parent = os.path.dirname(parent)
        for directory in reversed(parents):
            view += ["--perms", "0755", "--dir", directory]
            made.add(directory)
        view += ["--ro-bind", path, path]
    return view


# The stage the candidate runs in: new namespaces, no further user namespaces inside.
_SANDBOX = ["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"]
# As root, the stage before: every namespace but the user's, and the right to drop to nobody.
_OUTER = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
_OUTER += ["--unshare-cgroup-try", "--die-with-parent", "--new-session"]
_OUTER += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]


def _bwrap(command: list[str], disk_bytes: int) -> list[str]:
    bwrap = _which("bwrap")
    # /dev is a tmpfs with no size limit: read-only, so the device nodes stay but no files.
    inside = ["--new-session", "--dev", "/dev", "--remount-ro", "/dev", "--proc", "/proc"]
    inside += ["--size", str(disk_bytes), "--tmpfs", "/tmp"]
    # An interpreter installed under /tmp (a virtualenv made there) is hidden by the scratch
    # tmpfs: bind it again, read-only, on top of it.
    for path in _interpreter_dirs():
        if path.startswith("/tmp/"):
            inside += ["--ro-bind", path, path]
    inside += ["--chdir", "/tmp", "--clearenv"]
    for key, value in candidate_env("/tmp").items():
        inside += ["--setenv", key, value]
    if os.geteuid() != 0:
        return [bwrap, *_SANDBOX, *_bwrap_view(), *inside, "--remount-ro", "/", "--", *command]
    # As root, a user namespace maps the sandbox to uid 0 outside. That uid can write most of
    # /proc/sys (its file modes, not capabilities, guard it) and is exempt from RLIMIT_NPROC.
    # So an outer bwrap, still root, builds the view (it can reach an interpreter under /root),
    # setpriv drops to nobody, and an inner, unprivileged bwrap makes the user namespace with
    # its own PID namespace and /proc, in which nobody can see the processes outside. The
    # outer one's PID namespace takes every stage down when bwrap is killed.
    outer = [bwrap, *_OUTER, *_bwrap_view()]
    # The inner bwrap binds its device nodes from here, and may mount a fresh /proc only where
    # an uncovered one is visible.
    outer += ["--dev", "/dev", "--bind", "/proc", "/proc", "--dir", "/tmp", "--remount-ro", "/"]
    drop = [_which("setpriv"), f"--reuid={_NOBODY}", f"--regid={_NOBODY}", "--clear-groups"]
    drop += ["--inh-caps=-all", "--bounding-set=-all", "--"]
    inner = [bwrap, *_SANDBOX, "--bind", "/", "/", *inside]
    return [*outer, *drop, *inner, "--", *command]


def _which(program: str) -> str:
    """The full path of ``program`` (on PATH or in the system dirs), or its bare name."""
    import shutil

    system = "/usr/bin:/bin:/usr/sbin:/sbin"
    return shutil.which(program) or shutil.which(program, path=system) or program


def confine(mode: SandboxMode, command: list[str], *, disk_bytes: int) -> list[str]:
    """The command line that runs ``command`` confined by ``mode``.

    Args:
        mode: the sandbox.
        command: the program and its arguments, as run inside.
        disk_bytes: size of the scratch tmpfs (bwrap only).
    """
    if mode == "bwrap":
        return _bwrap(command, disk_bytes)
    if mode == "unshare":
        namespaces = ["--user", "--pid", "--fork", "--kill-child", "--mount-proc", "--net"]
        return [_which("unshare"), *namespaces, "--ipc", "--uts", "--", *command]
    return command


_PROBED: dict[SandboxMode, str | None] = {}


def unavailable(mode: SandboxMode) -> str | None:
    """Why ``mode`` cannot run here (``None``: it can), found by running it once; cached."""
    if mode == "none":
        return None
    if mode not in _PROBED:
        _PROBED[mode] = _probe(mode)
    return _PROBED[mode]


def _probe(mode: SandboxMode) -> str | None:
    import subprocess
    import tempfile

    if not sys.platform.startswith("linux"):
        return "namespaces need Linux"
    program = "bwrap" if mode == "bwrap" else "unshare"
    if _which(program) == program:
        return f"{program} is not installed"
    # The interpreter the candidates run on, with their options, doing what the candidate
    # server needs: a probe that passes means the real runs start too.
    check = (
        "import os; open(os.devnull, 'w').write('x'); os.stat('/proc/self/fd'); "
        "p = os.path.join(os.environ['TMPDIR'], 'probe'); open(p, 'w').write('x'); os.remove(p)"
    )
    command = confine(mode, [sys.executable, "-I", "-S", "-c", check], disk_bytes=2**20)
    with tempfile.TemporaryDirectory(prefix="sal-probe-") as home:
        try:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=candidate_env(home),
                cwd=home,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as error:
            return f"{program} did not start: {error}"
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        return f"{program} failed: {reason[-1] if reason else f'exit status {done.returncode}'}"
    return None


# -- wire format (both children) --------------------------------------------------------------
#
# One JSON object per line. Values are JSON, with tagged objects for what JSON lacks:
# {"$": "tuple" | "set" | "frozenset" | "dict" | "bytes" | "complex" | "slice" | "ref", "v": ...}.
# A "ref" names an object that stays in the candidate's process. Decoding accepts nothing
# else, so every value the judge receives is built from plain builtin types and its own proxies.

_T = TypeVar("_T")
Ref = Callable[[object], object]
"""Turns a value the format has no tag for into a ``ref`` payload (or raises TypeError)."""


def _tag(kind: str, value: object) -> dict[str, object]:
    return {"$": kind, "v": value}


def encode(value: object, ref: Ref) -> object:
    """A JSON-ready form of ``value``; subclasses of builtin types travel as their base type."""
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is float or kind is str:
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list):
        return [encode(item, ref) for item in value]
    if isinstance(value, tuple):
        return _tag("tuple", [encode(item, ref) for item in value])
    if isinstance(value, frozenset):
        return _tag("frozenset", [encode(item, ref) for item in value])
    if isinstance(value, set):
        return _tag("set", [encode(item, ref) for item in value])
    if isinstance(value, dict):
        return _tag("dict", [[encode(k, ref), encode(v, ref)] for k, v in value.items()])
    if isinstance(value, bytes | bytearray):
        return _tag("bytes", bytes(value).hex())
    if isinstance(value, complex):
        return _tag("complex", [value.real, value.imag])
    if isinstance(value, slice):
        return _tag("slice", [encode(part, ref) for part in (value.start, value.stop, value.step)])
    return _tag("ref", ref(value))


def decode(data: object, resolve: Callable[[object], object]) -> object:
    """The value ``data`` encodes; raises ValueError or TypeError on anything else."""
    kind = type(data)
    if data is None or kind is bool or kind is int or kind is float or kind is str:
        return data
    if isinstance(data, list):
        return [decode(item, resolve) for item in data]
    if not isinstance(data, dict) or set(data) != {"$", "v"}:
        raise ValueError("not a value of the wire format")
    tag, payload = data["$"], data["v"]
    if tag == "ref":
        return resolve(payload)
    if tag == "bytes" and isinstance(payload, str):
        return bytes.fromhex(payload)
    if not isinstance(payload, list):
        raise ValueError(f"bad payload for {tag!r}")
    items = [decode(item, resolve) for item in payload]
    if tag == "tuple":
        return tuple(items)
    if tag == "set":
        return set(items)
    if tag == "frozenset":
        return frozenset(items)
    if tag == "dict":
        pairs = [item for item in items if isinstance(item, list) and len(item) == 2]
        if len(pairs) == len(items):
            return {key: value for key, value in pairs}
    if tag == "complex" and len(items) == 2:
        real, imag = items
        if _is_real(real) and _is_real(imag):
            return complex(real, imag)
    if tag == "slice" and len(items) == 3:
        return slice(*items)
    raise ValueError(f"bad value for {tag!r}")


def _is_real(value: object) -> TypeGuard[float]:
    return type(value) is int or type(value) is float


class Broken(Exception):
    """The other side of a pipe went away or broke the protocol."""


class Lines:
    """Reads newline-terminated messages from a file descriptor, none longer than ``limit``.

    Built on ``os.read`` so that a timer signal interrupting a read loses no data.
    """

    def __init__(self, fd: int, limit: int) -> None:
        self.fd = fd
        self.limit = limit
        self.buffer = bytearray()
        self.scanned = 0

    def read(self) -> bytes | None:
        """The next message, or ``None`` at end of file."""
        while True:
            end = self.buffer.find(b"\n", self.scanned)
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                self.scanned = 0
                return line
            self.scanned = len(self.buffer)
            if self.scanned > self.limit:
                raise Broken(f"sent a message over {self.limit} bytes")
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk


def write_line(fd: int, message: object) -> None:
    """Write ``message`` as one JSON line."""
    write_text(fd, json.dumps(message))


def write_text(fd: int, text: str) -> None:
    """Write ``text`` (one JSON document) and a newline, all of it."""
    data = memoryview(text.encode() + b"\n")
    while data:
        data = data[os.write(fd, data) :]


def _timed_out(signum: int, frame: object) -> None:
    raise TimeoutError("time limit exceeded")


class _Timer:
    """``with _Timer(seconds):`` raises TimeoutError in the block once ``seconds`` pass."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _private_stdio() -> tuple[int, int]:
    """Move stdin/stdout to private descriptors; the originals then read/write /dev/null.

    Code that prints (the candidate's or a test's) cannot interleave with the protocol.
    """
    reading, writing = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    return reading, writing


def _limit(name: str, value: int) -> None:
    import resource

    limit = getattr(resource, name)
    resource.setrlimit(limit, (value, value))


# -- the candidate server ---------------------------------------------------------------------


def _error_reply(error: BaseException) -> list[object]:
    """``[type name, message, builtin base classes]``: the judge raises the nearest builtin."""
    kind = type(error)
    bases = [c.__name__ for c in kind.__mro__ if getattr(c, "__module__", "") == "builtins"]
    try:
        message = str(error)[:500]
    except Exception:
        message = "<unprintable>"
    return [kind.__name__, message, bases]


class _Server:
    """Runs the candidate's code and answers requests about the objects it made."""

    def __init__(self, value_bytes: int) -> None:
        self.namespace: dict[str, Any] = {"__name__": "__main__"}
        self.objects: list[object] = []
        self.value_bytes = value_bytes

    def ref(self, value: object) -> object:
        self.objects.append(value)
        return [len(self.objects) - 1, type(value).__name__[:100]]

    def resolve(self, payload: object) -> object:
        if type(payload) is not int or not 0 <= payload < len(self.objects):
            raise ValueError("no such object")
        return self.objects[payload]

    def answer(self, request: dict[str, Any]) -> dict[str, object]:
        op = request.get("op")
        if op == "load":
            exec(compile(request["code"], "<candidate>", "exec"), self.namespace)
            return {"ok": self.names()}
        target = self.resolve(request.get("ref"))
        if op == "call":
            args = decode(request.get("args", []), self.resolve)
            kwargs = {str(k): decode(v, self.resolve) for k, v in request.get("kwargs", {}).items()}
            if not isinstance(args, list):
                raise TypeError("arguments must be a list")
            result = target(*args, **kwargs)  # type: ignore[operator]
        elif op == "getattr":
            result = getattr(target, str(request.get("name")))
        elif op == "getitem":
            result = target[decode(request.get("key"), self.resolve)]  # type: ignore[index]
        elif op in _UNARY:
            result = _UNARY[op](target)
        else:
            raise ValueError(f"unknown request {op!r}")
        return {"ok": encode(result, self.ref)}

    def names(self) -> list[list[object]]:
        """The program's globals: plain values as values (up to a size), the rest as refs."""
        names: list[list[object]] = []
        for name, value in self.namespace.items():
            if name.startswith("__") and name.endswith("__"):
                continue
            try:
                encoded = encode(value, _no_ref)
                if len(json.dumps(encoded)) > self.value_bytes:
                    raise TypeError("too large to send as a value")
            except (TypeError, ValueError, RecursionError):
                encoded = _tag("ref", self.ref(value))
            names.append([name, encoded])
        return names


def _no_ref(value: object) -> object:
    raise TypeError("not plain data")


_UNARY: dict[str, Callable[[Any], object]] = {
    "len": len,
    "iter": iter,
    "next": next,
    "bool": bool,
    "str": str,
}


def _candidate(settings: dict[str, Any]) -> None:
    reading, writing = _private_stdio()
    os.environ.pop("PWD", None)  # bwrap's --chdir sets it; the environment is exactly ours
    # Limits first, before any code of the candidate runs; set here, in the child, because
    # preexec_fn is unsafe when the parent has threads.
    _limit("RLIMIT_AS", settings["memory_bytes"])
    _limit("RLIMIT_CPU", settings["cpu_seconds"])
    _limit("RLIMIT_FSIZE", settings["file_bytes"])
    _limit("RLIMIT_CORE", 0)
    _limit("RLIMIT_NOFILE", 256)
    if settings["max_processes"] is not None:
        # Counted per user namespace, so this caps the sandbox, not the user.
        _limit("RLIMIT_NPROC", settings["max_processes"])
    signal.signal(signal.SIGALRM, _timed_out)
    server = _Server(settings["value_bytes"])
    lines = Lines(reading, settings["message_bytes"])
    while True:
        try:
            line = lines.read()
        except Broken:
            return
        if line is None:
            return
        try:
            request = json.loads(line)
            ident = request["id"]
        except (ValueError, TypeError, KeyError):
            continue
        text: str | None = None
        failure: list[object] = []
        try:
            with _Timer(settings["call_seconds"]):
                text = json.dumps({"id": ident, **server.answer(request)})
            if len(text) > settings["message_bytes"]:
                raise ValueError(f"the answer is over {settings['message_bytes']} bytes")
        except BaseException as error:  # the candidate's code: anything may come out of it
            text, failure = None, _error_reply(error)
        # Outside the except block: the traceback (and what a runaway allocation holds) is gone.
        try:
            write_text(
                writing, text if text is not None else json.dumps({"id": ident, "error": failure})
            )
        except OSError:
            return


# -- the judge --------------------------------------------------------------------------------


class Unanswered(Exception):
    """The program under test did not answer (it exited, hung, or sent something unreadable)."""


class CandidateError(Exception):
    """An exception of the program under test that has no builtin counterpart in the judge."""


class Remote:
    """An object that stays in the program under test; every use of it is a request there.

    Calls, attributes, indexing, ``len``, iteration, ``bool`` and ``str`` are forwarded; the
    answers come back as plain data (or more remotes). Nothing else is: a remote equals only
    itself, so the candidate's own ``__eq__`` is never asked whether it matches the expected
    value (which it would then see).
    """

    __slots__ = ("_connection", "_id", "_type")

    def __init__(self, connection: Connection, ident: int, type_name: str) -> None:
        self._connection = connection
        self._id = ident
        self._type = type_name

    def __call__(self, *args: object, **kwargs: object) -> object:
        encoded = {key: self._connection.encode(value) for key, value in kwargs.items()}
        return self._connection.request(
            "call", ref=self._id, args=self._connection.encode(list(args)), kwargs=encoded
        )

    def __getattr__(self, name: str) -> object:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._connection.request("getattr", ref=self._id, name=name)

    def __getitem__(self, key: object) -> object:
        return self._connection.request("getitem", ref=self._id, key=self._connection.encode(key))

    def __len__(self) -> int:
        return _expect(self._connection.request("len", ref=self._id), int, "len()")

    def __iter__(self) -> Any:
        iterator = self._connection.request("iter", ref=self._id)
        return iterator if isinstance(iterator, Remote) else iter(iterator)  # type: ignore[call-overload]

    def __next__(self) -> object:
        return self._connection.request("next", ref=self._id)

    def __bool__(self) -> bool:
        return _expect(self._connection.request("bool", ref=self._id), bool, "bool()")

    def __str__(self) -> str:
        return _expect(self._connection.request("str", ref=self._id), str, "str()")

    def __repr__(self) -> str:
        return f"<{self._type} of the program under test>"


def _expect(value: object, kind: type[_T], what: str) -> _T:
    if not isinstance(value, kind) or type(value) is not kind:
        raise TypeError(f"{what} of the program's object returned a {type(value).__name__}")
    return value


class Connection:
    """The judge's end of the pipes to the candidate server."""

    def __init__(self, to_candidate: int, from_candidate: int, message_bytes: int) -> None:
        self.to_candidate = to_candidate
        self.lines = Lines(from_candidate, message_bytes)
        self.last_id = 0
        self.broken: str | None = None
        self.remotes: dict[int, Remote] = {}

    def encode(self, value: object) -> object:
        return encode(value, self._ref)

    def _ref(self, value: object) -> object:
        if isinstance(value, Remote) and value._connection is self:
            return [value._id]
        raise TypeError(
            f"cannot pass a {type(value).__name__} to the program under test "
            "(only plain data and its own objects)"
        )

    def _resolve(self, payload: object) -> Remote:
        if not (isinstance(payload, list) and payload and type(payload[0]) is int):
            raise ValueError("bad reference")
        ident = payload[0]
        if ident not in self.remotes:
            type_name = payload[1] if len(payload) > 1 and type(payload[1]) is str else "object"
            self.remotes[ident] = Remote(self, ident, type_name[:100])
        return self.remotes[ident]

    def _fail(self, reason: str) -> Unanswered:
        self.broken = reason
        return Unanswered(reason)

    def request(self, op: str, **fields: object) -> object:
        """Send one request and wait for its answer; raise what the candidate raised."""
        if self.broken:
            raise Unanswered(self.broken)
        self.last_id += 1
        ident = self.last_id
        try:
            write_line(self.to_candidate, {"id": ident, "op": op, **fields})
        except BrokenPipeError:
            raise self._fail("the program under test exited") from None
        while True:
            try:
                line = self.lines.read()
            except Broken as error:
                raise self._fail(f"the program under test {error}") from None
            if line is None:
                raise self._fail("the program under test exited")
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            # Anything but the answer to this request (late answers to requests that timed
            # out, noise) is skipped; the test's timer bounds the wait.
            if isinstance(reply, dict) and type(reply.get("id")) is int and reply["id"] == ident:
                break
        if reply.get("error") is not None:
            raise _remote_error(reply["error"])
        try:
            return decode(reply.get("ok"), self._resolve)
        except (ValueError, TypeError, RecursionError):
            raise Unanswered(
                "the program under test sent an answer that is not plain data"
            ) from None


def _remote_error(payload: object) -> BaseException:
    """The judge's counterpart of an exception the candidate raised.

    The nearest builtin class (so a test's ``except ValueError`` works); the candidate may
    claim any class, which only chooses the exception its own call raises.
    """
    if not (isinstance(payload, list) and len(payload) == 3):
        return CandidateError("the program under test raised an exception")
    name, message, bases = payload
    name = name[:100] if isinstance(name, str) else "Exception"
    message = message[:500] if isinstance(message, str) else ""
    for base in bases if isinstance(bases, list) else []:
        cls = vars(builtins).get(base) if isinstance(base, str) else None
        if isinstance(cls, type) and issubclass(cls, Exception):
            try:
                return cls(message if base == name else f"{name}: {message}")
            except Exception:
                break
    return CandidateError(f"{name}: {message}")


def describe(error: BaseException) -> str:
    """How a failure reads in the critique."""
    if isinstance(error, Unanswered | CandidateError):
        return str(error)[:300]
    return f"{type(error).__name__}: {error}"[:300]


def _judge(to_candidate: int, from_candidate: int) -> None:
    job = json.loads(sys.stdin.buffer.read())
    _, results = _private_stdio()
    _limit("RLIMIT_AS", job["memory_bytes"])
    _limit("RLIMIT_CORE", 0)
    try:
        # Not dumpable: where the candidate runs as the same user without a PID namespace, it
        # cannot open this process's memory or file descriptors through /proc.
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
    except (OSError, AttributeError):
        pass
    signal.signal(signal.SIGALRM, _timed_out)
    connection = Connection(to_candidate, from_candidate, job["message_bytes"])
    seconds = job["test_seconds"]
    try:
        with _Timer(seconds):
            loaded = connection.request("load", code=job["code"])
        namespace = _namespace(loaded)
    except BaseException as error:
        write_line(results, {"load": describe(error)})
        return
    write_line(results, {"load": None})
    for index, test in enumerate(job["tests"]):
        outcome: str | None = None
        try:
            with _Timer(seconds):
                exec(compile(test, f"<test {index}>", "exec"), namespace)
        except BaseException as error:
            outcome = describe(error)
        write_line(results, {"test": index, "error": outcome})


def _namespace(loaded: object) -> dict[str, Any]:
    """The tests' globals: the candidate's names, except dunders and names of builtins.

    A candidate's ``abs`` or ``len`` would otherwise answer for the test's own arithmetic,
    seeing the expected values in its arguments.
    """
    if not isinstance(loaded, list):
        raise Unanswered("the program under test sent no names")
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    for entry in loaded:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise Unanswered("the program under test sent a bad name")
        name, value = entry
        if name.isidentifier() and not name.startswith("__") and name not in vars(builtins):
            namespace[name] = value
    return namespace


def main(argv: list[str]) -> None:
    """Entry point of the children: ``judge TO_FD FROM_FD`` or ``candidate SETTINGS_JSON``."""
    if argv[0] == "judge":
        _judge(int(argv[1]), int(argv[2]))
    elif argv[0] == "candidate":
        _candidate(json.loads(argv[1]))
    else:
        raise SystemExit(f"unknown role {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
