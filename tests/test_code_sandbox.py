"""Hostile candidates against CodeTestVerifier: every guarantee a sandbox mode claims, attacked.

Each attack runs in every mode that claims the guarantee it breaks (``_sandbox.guarantees``) and
works on this machine; the other modes are skipped, saying why. Processes a candidate starts are
found from outside by a name it gives them (``/proc/<pid>/comm``); any left behind by a failing
run are ended, by pid, when the test finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sal_plugins.errors import ConfigError
from sal_plugins.verifiers import CodeTestVerifier, Trajectory, _sandbox
from sal_plugins.verifiers._sandbox import Guarantee, SandboxMode

MODES: tuple[SandboxMode, ...] = ("bwrap", "unshare", "none")
ADD_TESTS = ["assert add(2, 3) == 5", "assert add(-1, 1) == 0", "assert add(10, 5) == 15"]
_names = itertools.count()


def modes_with(guarantee: Guarantee) -> list[object]:
    """The sandbox modes to attack ``guarantee`` in; the others skipped with the reason."""
    params = []
    for mode in MODES:
        reason = _sandbox.unavailable(mode)
        if reason is not None:
            marks = [pytest.mark.skip(reason=f"sandbox {mode!r} cannot run here: {reason}")]
        elif guarantee not in _sandbox.guarantees(mode):
            marks = [pytest.mark.skip(reason=f"sandbox {mode!r} does not promise {guarantee!r}")]
        else:
            marks = []
        params.append(pytest.param(mode, marks=marks, id=mode))
    return params


def reply(code: str) -> Trajectory:
    return Trajectory((f"```python\n{code}\n```",))


async def score(verifier: CodeTestVerifier, code: str) -> tuple[float, str]:
    [row] = await verifier.score("p", [reply(code)])
    return row.step_scores[0], row.critique or ""


def processes_named(name: str) -> list[int]:
    """Live (not zombie) processes whose ``comm`` is ``name``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if comm == name and state != "Z":
                found.append(int(entry))
    return found


async def left_alive(name: str, within_s: float = 10.0) -> list[int]:
    """Processes named ``name`` still alive once ``within_s`` has passed (or none are left)."""
    deadline = time.monotonic() + within_s
    while (alive := processes_named(name)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return alive


@pytest.fixture
def marker() -> Iterator[str]:
    """A process name unique to this test; processes left with it are killed afterwards."""
    name = f"sal{os.getpid() % 10**6}x{next(_names)}"
    yield name
    for pid in processes_named(name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


NAME_ME = """
import ctypes, os
def name_me(name):
    ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME
"""


# -- verdict: decided by the judge, never by the candidate's process -------------------------------

FORGE_AND_EXIT = """
import json, os
with open("results.jsonl", "a") as results:
    for index in range(-1, 10):
        results.write(json.dumps({"test": index, "error": None}) + "\\n")
os._exit(0)
def add(a, b):
    return a - b
"""

FORGE_EVERYWHERE = """
import builtins, json, os, sys
lines = [json.dumps({"load": None})] + [json.dumps({"test": i, "error": None}) for i in range(-1, 10)]
text = "\\n".join(lines) + "\\n"
for folder in {os.getcwd(), os.environ.get("HOME", "."), os.environ.get("TMPDIR", ".")}:
    try:
        with open(os.path.join(folder, "results.jsonl"), "a") as results:
            results.write(text)
    except OSError:
        pass
for fd in range(0, 64):
    try:
        os.write(fd, text.encode())
    except OSError:
        pass
print(text)
print(text, file=sys.stderr)

class Anything:
    def __eq__(self, other):
        return True
    __hash__ = object.__hash__
    def __bool__(self):
        return True

builtins.AssertionError = type("AssertionError", (Exception,), {})
def add(a, b):
    os.write(1, (text + json.dumps({"id": 1, "ok": 5}) + "\\n").encode())
    return Anything()
"""


@pytest.mark.parametrize("mode", modes_with("verdict"))
@pytest.mark.parametrize(
    "code", [FORGE_AND_EXIT, FORGE_EVERYWHERE], ids=["forge-and-exit", "forge-everywhere"]
)
async def test_a_wrong_program_cannot_forge_passing_results(mode: SandboxMode, code: str) -> None:
    verifier = CodeTestVerifier(tests=ADD_TESTS, sandbox=mode)
    value, critique = await score(verifier, code)
    assert value == 0.0, critique


FLOOD = """
import os
def add(a, b):
    for fd in range(3, 10):
        try:
            os.write(fd, b"x" * 2**25)
        except OSError:
            pass
    return a + b
"""


@pytest.mark.parametrize("mode", modes_with("verdict"))
async def test_a_program_that_floods_its_answers_fails_without_hanging(mode: SandboxMode) -> None:
    verifier = CodeTestVerifier(tests=ADD_TESTS, sandbox=mode, timeout_s=30)
    value, critique = await score(verifier, FLOOD)
    assert value == 0.0
    assert "sent a message over" in critique


@pytest.mark.parametrize("mode", modes_with("verdict"))
@pytest.mark.parametrize(
    "code",
    [
        "raise RuntimeError('broken on load')",
        "import os\nos._exit(0)",
        "import sys\nsys.exit(0)",
        "def add(a, b):\n    return a +",
        "import ctypes\nctypes.string_at(0)",
    ],
    ids=["raises", "os-exit", "sys-exit", "syntax-error", "segfault"],
)
async def test_a_program_that_fails_to_load_scores_zero(mode: SandboxMode, code: str) -> None:
    # None of these tests needs the program: they would all pass without it.
    verifier = CodeTestVerifier(tests=["assert True", "assert 1 + 1 == 2", "x = 1"], sandbox=mode)
    value, critique = await score(verifier, code)
    assert value == 0.0
    assert "the program failed to run" in critique or "did not finish loading" in critique


LOOK_FOR_THE_TESTS = """
import gc, os
def seen():
    needle = bytes.fromhex("{hex}")
    for thing in gc.get_objects():
        for text in (thing if isinstance(thing, (list, tuple, dict)) else [thing]):
            if isinstance(text, str) and needle.decode() in text:
                return "memory"
    for folder in {{os.getcwd(), os.environ.get("HOME", ".")}}:
        for root, _, files in os.walk(folder):
            for name in files:
                try:
                    with open(os.path.join(root, name), "rb") as file:
                        if needle in file.read():
                            return os.path.join(root, name)
                except OSError:
                    pass
    with open("/proc/self/cmdline", "rb") as cmdline:
        if needle in cmdline.read():
            return "cmdline"
    return None
"""


@pytest.mark.parametrize("mode", modes_with("verdict"))
async def test_the_program_is_never_sent_the_tests(mode: SandboxMode) -> None:
    needle = "expected-7c1b9e"
    code = LOOK_FOR_THE_TESTS.format(hex=needle.encode().hex())
    verifier = CodeTestVerifier(tests=[f"assert seen() is None, {needle!r}"], sandbox=mode)
    value, critique = await score(verifier, code)
    assert value == 1.0, critique


# -- the environment and other processes -----------------------------------------------------------

PARENT = """
import asyncio, json, sys
from sal_plugins.verifiers import CodeTestVerifier
verifier = CodeTestVerifier(tests=[sys.argv[2]], sandbox=sys.argv[1])
row = asyncio.run(verifier.run(sys.argv[3], verifier.tests))
print(json.dumps([row.step_scores[0], row.critique]))
"""

FIND_THE_SECRET = """
import os, re
def leaks():
    needle = bytes.fromhex("{hex}")
    me = str(os.getpid())
    found = []
    for pid in [p for p in os.listdir("/proc") if p.isdigit() and p != me]:
        for part in ("environ", "cmdline"):
            try:
                with open(f"/proc/{{pid}}/{{part}}", "rb") as file:
                    if needle in file.read():
                        found.append(f"/proc/{{pid}}/{{part}}")
            except OSError:
                pass
        try:
            with open(f"/proc/{{pid}}/maps") as maps, open(f"/proc/{{pid}}/mem", "rb") as mem:
                for line in maps:
                    start, end = (int(x, 16) for x in line.split()[0].split("-"))
                    if line.split()[1].startswith("rw") and end - start < 2**26:
                        try:
                            mem.seek(start)
                            if needle in mem.read(end - start):
                                found.append(f"/proc/{{pid}}/mem")
                                break
                        except OSError:
                            pass
        except OSError:
            pass
    return found
"""


@pytest.mark.parametrize("mode", modes_with("processes_hidden"))
def test_the_parents_environment_and_memory_are_out_of_reach(mode: SandboxMode) -> None:
    # In the parent's environment from its start, as an API key is: /proc/<ppid>/environ shows it.
    secret = "sk-parent-secret-0d5e"
    code = FIND_THE_SECRET.format(hex=secret.encode().hex())
    env = {**os.environ, "SAL_TEST_PARENT_API_KEY": secret}
    done = subprocess.run(
        [sys.executable, "-c", PARENT, mode, "assert leaks() == []", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    value, critique = json.loads(done.stdout)
    assert value == 1.0, critique


@pytest.mark.parametrize("mode", modes_with("environment"))
async def test_the_candidates_environment_is_minimal(
    mode: SandboxMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAL_TEST_SECRET_API_KEY", "sk-do-not-leak")
    verifier = CodeTestVerifier(
        tests=["assert sorted(environment()) == ['HOME', 'LANG', 'PATH', 'TMPDIR']"], sandbox=mode
    )
    value, critique = await score(
        verifier, "import os\ndef environment():\n    return dict(os.environ)"
    )
    assert value == 1.0, critique


# -- process trees -------------------------------------------------------------------------------

ESCAPE = (
    NAME_ME
    + """
import time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        name_me({name!r})
        time.sleep(120)
        os._exit(0)
    os._exit(0)
os.wait()
{after}
def add(a, b):
    return a + b
"""
)


@pytest.mark.parametrize("mode", modes_with("tree_kill"))
@pytest.mark.parametrize(
    "after", ["", "while True:\n    pass"], ids=["after-a-normal-run", "after-a-timeout"]
)
async def test_a_setsid_grandchild_dies_with_the_run(
    mode: SandboxMode, after: str, marker: str
) -> None:
    # The wall clock, not a test's timer, ends the endless variant: the parent kills the sandbox.
    verifier = CodeTestVerifier(tests=ADD_TESTS, sandbox=mode, timeout_s=1.5, test_timeout_s=30)
    await score(verifier, ESCAPE.format(name=marker, after=after))
    assert not await left_alive(marker)


FORK_BOMB = (
    NAME_ME
    + """
import time
started = 0
for _ in range(300):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        name_me({name!r})
        time.sleep(5)
        os._exit(0)
    started += 1
def forks():
    return started
"""
)


@pytest.mark.parametrize("mode", modes_with("process_limit"))
async def test_a_fork_bomb_is_contained(mode: SandboxMode, marker: str) -> None:
    verifier = CodeTestVerifier(tests=["assert forks() < 16"], sandbox=mode, max_processes=16)
    value, critique = await score(verifier, FORK_BOMB.format(name=marker))
    assert value == 1.0, critique
    assert not await left_alive(marker)


# -- the filesystem ------------------------------------------------------------------------------

WRITE_EVERYWHERE = """
import ctypes, os
def write_all(places):
    written, made = {}, []
    block = b"x" * 2**20
    for number, place in enumerate(places):
        written[place] = 0
        for index in range(5):
            path = os.path.join(place, f"sal-blob{number}-{index}")
            try:
                with open(path, "wb") as file:
                    made.append(path)
                    for _ in range(15):
                        file.write(block)
                        file.flush()
                        written[place] += len(block)
            except OSError:
                pass
    # Counted with every file still there; then gone, so that a sandbox that let them out
    # leaves no litter.
    for path in made:
        os.remove(path)
    return written
def nested_user_namespace():
    # A user namespace of its own could mount a tmpfs without a size limit.
    pid = os.fork()
    if pid == 0:
        os._exit(0 if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) == 0 else 1)
    return os.waitpid(pid, 0)[1] == 0
"""


@pytest.mark.parametrize("mode", modes_with("disk_limit"))
async def test_writes_are_capped_in_total_and_confined_to_scratch(
    mode: SandboxMode, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    places = [str(outside), ".", "/tmp", "/dev/shm", "/var/tmp", "/"]
    verifier = CodeTestVerifier(
        tests=[
            f"written = write_all({places!r})\nassert sum(written.values()) <= 16 * 2**20, written",
            f"assert written[{str(outside)!r}] == 0, written",
            "assert not nested_user_namespace()",
        ],
        sandbox=mode,
        disk_mb=16,
        timeout_s=30,
        test_timeout_s=20,
    )
    value, critique = await score(verifier, WRITE_EVERYWHERE)
    assert value == 1.0, critique
    assert not list(outside.iterdir())


@pytest.mark.parametrize("mode", modes_with("limits"))
async def test_each_file_is_capped(mode: SandboxMode) -> None:
    verifier = CodeTestVerifier(tests=["assert 0 < write() <= 4 * 2**20"], sandbox=mode, disk_mb=4)
    code = (
        "def write():\n"
        "    size = 0\n"
        "    try:\n"
        "        with open('big', 'wb') as file:\n"
        "            for _ in range(10):\n"
        "                file.write(b'x' * 2**20)\n"
        "                file.flush()\n"
        "                size += 2**20\n"
        "    except OSError:\n"
        "        pass\n"
        "    return size"
    )
    value, critique = await score(verifier, code)
    assert value == 1.0, critique


@pytest.mark.parametrize("mode", modes_with("limits"))
async def test_memory_and_time_are_limited(mode: SandboxMode) -> None:
    verifier = CodeTestVerifier(
        tests=["assert grow() == 'done'", "assert spin() == 1", "assert add(1, 2) == 3"],
        sandbox=mode,
        memory_mb=128,
        timeout_s=20,
        test_timeout_s=1,
    )
    code = (
        "def grow():\n    blob = []\n    while True:\n        blob.append(bytearray(10**7))\n"
        "def spin():\n    while True:\n        pass\n"
        "def add(a, b):\n    return a + b"
    )
    value, critique = await score(verifier, code)
    # The two runaways fail; the program survives both and answers the third test.
    assert value == pytest.approx(1 / 3), critique
    assert "test 0 failed: MemoryError" in critique and "test 1 failed: TimeoutError" in critique


# -- the network ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", modes_with("network"))
async def test_no_network(mode: SandboxMode) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        port = server.getsockname()[1]
        code = (
            "import socket\n"
            "def reach(port):\n"
            "    try:\n"
            "        socket.create_connection(('127.0.0.1', port), timeout=2).close()\n"
            "        return True\n"
            "    except OSError:\n"
            "        return False"
        )
        verifier = CodeTestVerifier(tests=[f"assert not reach({port})"], sandbox=mode)
        value, critique = await score(verifier, code)
        assert value == 1.0, critique
        with pytest.raises(BlockingIOError):
            server.accept()


# -- what tests can do with the candidate's objects ----------------------------------------------

PROGRAM = """
import math
LIMIT = 10
TABLE = {"a": (1, 2.5), "b": [None, b"x", {3, 4}]}
def add(a, b):
    return a + b
def fib(n):
    a, b = 0, 1
    for _ in range(n):
        yield a
        a, b = b, a + b
def parse(text):
    if not text:
        raise ValueError("empty")
    return int(text)
class Stack:
    def __init__(self):
        self.items = []
    def push(self, item):
        self.items.append(item)
    def pop(self):
        return self.items.pop()
    def __len__(self):
        return len(self.items)
    def __eq__(self, other):
        return True
def abs(x):
    return 0
print("output of the program goes nowhere")
"""


@pytest.mark.parametrize("mode", modes_with("verdict"))
async def test_tests_use_the_programs_functions_objects_and_exceptions(mode: SandboxMode) -> None:
    tests = [
        "assert add(2, 3) == 5 and add('a', 'b') == 'ab'",
        "assert list(fib(6)) == [0, 1, 1, 2, 3, 5] and 3 in fib(6)",
        "assert all(add(i, 1) == i + 1 for i in range(20))",
        "try:\n    parse('')\nexcept ValueError as error:\n    assert 'empty' in str(error)\n"
        "else:\n    raise AssertionError('no ValueError')",
        "s = Stack()\ns.push(1)\ns.push((2, 3))\nassert len(s) == 2 and s.pop() == (2, 3)",
        "assert LIMIT == 10 and TABLE == {'a': (1, 2.5), 'b': [None, b'x', {3, 4}]}",
        "assert math.sqrt(16) == 4.0",
        # The program's own __eq__ is not consulted, nor its abs.
        "assert Stack() != Stack() and abs(-2) == 2",
    ]
    verifier = CodeTestVerifier(tests=tests, sandbox=mode)
    value, critique = await score(verifier, PROGRAM)
    assert value == 1.0, critique


async def test_many_candidates_run_at_once_without_blocking_the_event_loop() -> None:
    verifier = CodeTestVerifier(tests=ADD_TESTS, max_concurrency=8)
    right = reply("def add(a, b):\n    return a + b")
    wrong = reply("def add(a, b):\n    return a - b")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        rows = await verifier.score("p", [right, wrong] * 8)
    finally:
        ticker.cancel()
    assert [row.step_scores[0] for row in rows] == [1.0, 0.0] * 8
    assert ticks > 0


# -- modes and configuration ---------------------------------------------------------------------


def test_the_mode_in_force_and_its_guarantees_are_exposed() -> None:
    verifier = CodeTestVerifier(tests=ADD_TESTS)
    best = next(mode for mode in MODES if _sandbox.unavailable(mode) is None)
    assert verifier.sandbox == best
    assert verifier.guarantees == _sandbox.guarantees(best)
    assert set(verifier.guarantees) <= set(_sandbox.GUARANTEE_TEXT)


def test_a_named_mode_that_cannot_run_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_sandbox._PROBED, "bwrap", "bwrap is not installed")
    with pytest.raises(ConfigError, match="apt-get install bubblewrap"):
        CodeTestVerifier(tests=ADD_TESTS, sandbox="bwrap")
    with pytest.raises(ConfigError, match="sandbox must be"):
        CodeTestVerifier(tests=ADD_TESTS, sandbox="docker")  # type: ignore[arg-type]


def test_auto_falls_back_and_warns_when_nothing_isolates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_sandbox._PROBED, "bwrap", "bwrap is not installed")
    monkeypatch.setitem(_sandbox._PROBED, "unshare", "unshare failed")
    with pytest.warns(UserWarning, match="no sandbox"):
        verifier = CodeTestVerifier(tests=ADD_TESTS)
    assert verifier.sandbox == "none"
    assert "processes_hidden" not in verifier.guarantees


def test_a_test_that_is_not_python_is_refused_at_once() -> None:
    with pytest.raises(ConfigError, match="test 1 is not valid Python"):
        CodeTestVerifier(tests=["assert True", "assert ="])


# -- the wire format -----------------------------------------------------------------------------


def no_ref(value: object) -> object:
    raise TypeError("no refs here")


def test_plain_values_travel_intact() -> None:
    value = [None, True, 3, -0.5, "s", b"\x00", (1, (2,)), {1, 2}, frozenset({3}), {"k": [1j]}]
    encoded = json.loads(json.dumps(_sandbox.encode(value, no_ref)))
    assert _sandbox.decode(encoded, no_ref) == value


@pytest.mark.parametrize(
    "data",
    [
        {"k": 1},
        {"$": "object", "v": []},
        {"$": "set", "v": [[1]]},
        {"$": "dict", "v": [[1]]},
        {"$": "complex", "v": ["1", 2]},
        {"$": "tuple", "v": "abc"},
    ],
)
def test_anything_but_plain_data_is_refused(data: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        _sandbox.decode(data, no_ref)


@pytest.mark.skipif(_sandbox.unavailable("bwrap") is not None, reason="bwrap cannot run here")
def test_bwrap_runs_an_interpreter_installed_under_tmp(tmp_path: Path) -> None:
    """A virtualenv made under /tmp is not hidden by the sandbox's scratch tmpfs on /tmp."""
    import tempfile
    import venv

    with tempfile.TemporaryDirectory(prefix="sal-venv-", dir="/tmp") as where:
        os.chmod(where, 0o755)  # as a venv made by hand would be (the sandbox may run as nobody)
        venv.create(where, symlinks=True, with_pip=False)
        python = Path(where) / "bin" / "python"
        packages = os.pathsep.join(p for p in sys.path if p)  # sal_plugins and its dependencies
        probe = "from sal_plugins.verifiers import _sandbox; print(_sandbox.unavailable('bwrap'))"
        done = subprocess.run(
            [str(python), "-c", probe],
            env={**os.environ, "PYTHONPATH": packages},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    assert done.stdout.strip() == "None", done.stdout + done.stderr
