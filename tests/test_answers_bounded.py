"""Answer equivalence under a hard time bound: pathological answers, deadlines, the event loop.

Each comparison that used to run away is run in a fresh interpreter with a timeout of its own,
so a regression fails the test instead of hanging the suite (the child is killed). Times are
measured in the child, around the call alone, and checked against generous bounds: the point is
"returns", not "returns fast".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sal_plugins import BestOfN
from sal_plugins._equivalence import KILL_GRACE_S, MathVerifyService, screen
from sal_plugins.answers import (
    DEFAULT_TIMEOUT_S,
    answers_equivalent,
    compare_answers,
    group_equivalent,
    warm_up_equivalence,
)
from sal_plugins.solvers import ScriptedSolver

SLACK_S = 1.5
"""Allowance on top of a bound, for a loaded two-core machine."""

HOSTILE = {
    "nested-fractions": ("\\frac{" * 60 + "1" + "}{2}" * 60, "1"),
    "power-tower-4": ("10^{10^{10^{10}}}", "1"),
    "power-tower-3": ("9^{9^{9}}", "1"),
    "factorial-of-a-power": ("(10^{10})!", "1"),
    "500-parentheses": ("(" * 500 + "1" + ")" * 500, "(" * 500 + "2" + ")" * 500),
    "100000-characters": ("x" * 100_000, "1"),
}
"""Answers that each kept one math-verify comparison running for many seconds, or forever."""


def run_isolated(code: str, stdin: object = None, timeout: float = 30.0) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter and return the JSON object it prints last.

    A child still running after ``timeout`` is killed and the test fails: that is the hang.
    """
    try:
        completed = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(stdin),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {timeout:g} s (killed)")
    assert completed.returncode == 0, completed.stderr[-3000:]
    reply: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return reply


# --- one comparison -------------------------------------------------------------------------

COMPARE = """
import json, sys, time
from sal_plugins.answers import answers_equivalent
a, b = json.load(sys.stdin)
start = time.perf_counter()
equal = answers_equivalent(a, b)
print(json.dumps({"equal": equal, "elapsed": time.perf_counter() - start}))
"""


@pytest.mark.parametrize(("a", "b"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_pathological_answer_is_compared_within_the_bound(a: str, b: str) -> None:
    reply = run_isolated(COMPARE, [a, b], timeout=20.0)
    assert reply["equal"] is False
    assert reply["elapsed"] <= DEFAULT_TIMEOUT_S + SLACK_S


def test_a_long_sum_of_ones_is_not_one() -> None:
    # math-verify's parser gives up on 5000 terms and reads the last number, 1.
    assert not answers_equivalent("+".join(["1"] * 5000), "1")


def test_pathological_answers_fall_back_to_strings_and_say_so() -> None:
    outcome = compare_answers("9^{9^{9}}", "387420489")
    assert (outcome.equal, outcome.decided_by) == (False, "fallback")
    assert outcome.reason is not None and "power tower" in outcome.reason
    # Compared as strings, an answer still equals itself.
    assert compare_answers("9^{9^{9}}", "9^{9^{9}}").equal


UNSCREENED = """
import json, sys, time
from sal_plugins import _equivalence
from sal_plugins.answers import compare_answers, group_equivalent, warm_up_equivalence
_equivalence.screen = lambda answer: None  # every answer reaches math-verify: only the bound is left
assert warm_up_equivalence(wait_s=30)
replies = []
for a, b in json.load(sys.stdin):
    start = time.perf_counter()
    outcome = compare_answers(a, b)
    replies.append([outcome.decided_by, time.perf_counter() - start])
start = time.perf_counter()
groups = group_equivalent(["10!!!!", "10^{10^{10}}", "(10^{10})!", "x"], time_budget_s=1.0)
grouping_elapsed = time.perf_counter() - start
after = compare_answers("x + 2", "2 + x", timeout_s=30)
print(json.dumps({
    "replies": replies,
    "groups": groups,
    "fell_back": groups.fell_back,
    "grouping_elapsed": grouping_elapsed,
    "after": [after.decided_by, after.equal],
}))
"""


def test_the_bound_holds_for_answers_no_screen_catches() -> None:
    pairs = [HOSTILE["power-tower-3"], HOSTILE["factorial-of-a-power"], ("10!!!!", "3")]
    reply = run_isolated(UNSCREENED, pairs, timeout=60.0)
    for (decided_by, elapsed), pair in zip(reply["replies"], pairs, strict=True):
        assert decided_by == "fallback", pair
        assert elapsed <= DEFAULT_TIMEOUT_S + SLACK_S, pair
    # A grouping of such answers keeps to its own budget, and says it fell back.
    assert reply["groups"] == [[0], [1], [2], [3]]
    assert reply["fell_back"] is True
    assert reply["grouping_elapsed"] <= 1.0 + SLACK_S
    # math-verify still answers afterwards (the worker survived the overruns, or was replaced).
    assert reply["after"] == ["math-verify", True]


# --- a search -------------------------------------------------------------------------------

SEARCH = """
import json, sys, time
from sal_plugins import BestOfN, Budget
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.verifiers import ScriptedVerifier
config = json.load(sys.stdin)
if not config["screens"]:
    from sal_plugins import _equivalence
    from sal_plugins.answers import warm_up_equivalence
    _equivalence.screen = lambda answer: None
    assert warm_up_equivalence(wait_s=30)
solutions = [f"Work it out.\\n\\nThe answer is $\\\\boxed{{{a}}}$." for a in config["answers"]]
search = BestOfN(
    solver=ScriptedSolver(solutions),
    verifier=ScriptedVerifier(lambda problem, step: 0.5, score_range=(0.0, 1.0)),
    n=len(solutions),
    selection="weighted",
    budget=Budget(deadline_s=3),
    seed=0,
)
start = time.perf_counter()
result = search.run("What is it?")
print(json.dumps({"elapsed": time.perf_counter() - start, "answer": result.answer}))
"""


@pytest.mark.parametrize("screens", [True, False], ids=["screened", "unscreened"])
def test_a_search_over_pathological_answers_returns_by_its_deadline(screens: bool) -> None:
    answers = [a for a, _ in HOSTILE.values()] + ["10!!!!", "7"]
    reply = run_isolated(SEARCH, {"answers": answers, "screens": screens}, timeout=30.0)
    assert reply["elapsed"] <= 3 + SLACK_S
    assert reply["answer"] in answers


# --- the event loop -------------------------------------------------------------------------

FIRST_USE = """
import asyncio, json, sys, time
from sal_plugins import BestOfN
from sal_plugins.answers import agroup_equivalent
from sal_plugins.solvers import ScriptedSolver

ANSWERS = ["x + 1", "1 + x", "\\\\frac{2x+2}{2}", "2x"]

async def main():
    gaps, done = [], False
    async def ticker():
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    solutions = [f"Simplify.\\n\\nThe answer is $\\\\boxed{{{a}}}$." for a in ANSWERS]
    search = BestOfN(solver=ScriptedSolver(solutions), n=4, early_stop=False, seed=0)
    await search.arun("Simplify (2x + 2) / 2.")  # its plan groups the answers on this loop
    await asyncio.sleep(0.05)
    done = True
    await task
    groups = await agroup_equivalent(ANSWERS, time_budget_s=30)
    return {"stall": max(gaps), "groups": groups, "fell_back": groups.fell_back}

print(json.dumps(asyncio.run(main())))
"""


def test_the_first_grouping_on_an_event_loop_does_not_stall_it() -> None:
    reply = run_isolated(FIRST_USE, timeout=60.0)
    # Loading math-verify takes the better part of a second; none of it may happen on the loop.
    assert reply["stall"] < 0.25
    # Off the loop, the async grouping waits for math-verify and groups exactly.
    assert reply["groups"] == [[0, 1, 2], [3]]
    assert reply["fell_back"] is False


async def test_a_sync_run_inside_a_running_loop_groups_symbolic_answers() -> None:
    # Blocks this test's loop on purpose: the search below must find math-verify ready.
    assert warm_up_equivalence(wait_s=30)
    answers = ["2x", "2x", "x + 1", "1 + x", "\\frac{2x+2}{2}"]
    solutions = [f"Simplify.\n\nThe answer is $\\boxed{{{a}}}$." for a in answers]
    search = BestOfN(solver=ScriptedSolver(solutions), n=5, early_stop=False, seed=0)
    result = search.run("Simplify (2x + 2) / 2.")  # inside a running loop: runs in a thread
    # Three spellings of x + 1 outvote two of 2x only if math-verify grouped them.
    assert result.answer in ("x + 1", "1 + x", "\\frac{2x+2}{2}")


def test_comparisons_from_many_threads_at_once() -> None:
    pairs = [("x + 1", "1 + x"), ("2x", "x + x"), ("x^2", "x \\cdot x"), ("\\sqrt{4}", "2")]
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda p: compare_answers(*p, timeout_s=30), pairs * 6))
    assert all(o.equal for o in outcomes)
    assert {o.decided_by for o in outcomes} <= {"math-verify", "number"}


# --- ordinary answers -----------------------------------------------------------------------


def test_ordinary_answers_keep_their_verdicts() -> None:
    assert compare_answers("2/4", "\\frac{1}{2}").equal
    assert compare_answers("\\frac{1}{2}", "0.5").equal
    assert compare_answers("-\\frac12", "-0.5").equal
    assert not compare_answers("1/2", "0.25", timeout_s=30).equal
    # math-verify rounds decimals: 0.333333 is 1/3 to it, and stays so.
    assert compare_answers("0.333333", "\\frac{1}{3}", timeout_s=30).equal
    symbolic = compare_answers("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}", timeout_s=30)
    assert (symbolic.equal, symbolic.decided_by) == (True, "math-verify")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("\\sqrt{x^2}", "|x|"),
        ("\\frac{x^2-1}{x-1}", "x+1"),
        ("x^{1/2}", "\\sqrt{x}"),
        ("N+1", "n+1"),
        ("50\\%", "50"),
        ("X^2", "x^2"),
        ("2^{x}\\cdot 2^{y}", "2^{x+y}"),
        ("y=2x+1", "2x+1"),
    ],
)
def test_math_verify_equivalences_survive_the_shortcut_for_different_values(a: str, b: str) -> None:
    # The worker skips math-verify for expressions whose values clearly differ; these look
    # different, or are equal only by math-verify's own rules, and must still come out equal.
    outcome = compare_answers(a, b, timeout_s=30)
    assert (outcome.equal, outcome.decided_by) == (True, "math-verify")


def test_plain_numbers_need_no_math_verify() -> None:
    # Decided exactly in the caller: these hold even while math-verify is still starting.
    assert compare_answers("0.5", "\\frac{2}{4}").decided_by == "number"
    assert compare_answers("1,000", "1000.0").equal
    assert compare_answers("12", "13").decided_by == "number"


def test_a_grouping_says_when_strings_decided() -> None:
    groups = group_equivalent(["9^{9^{9}}", "1", "9^{9^{9}}", "x + 1", "1 + x"], time_budget_s=30)
    assert groups == [[0, 2], [1], [3, 4]]
    assert groups.fell_back and groups.fallbacks >= 1
    assert any("power tower" in reason for reason in groups.reasons)
    exact = group_equivalent(["x + 1", "1 + x", "2"], time_budget_s=30)
    assert exact == [[0, 1], [2]] and not exact.fell_back and exact.reasons == ()


@pytest.mark.parametrize(
    "answer",
    [
        "\\frac{\\sqrt{3}}{2}",
        "\\begin{pmatrix} \\frac{1}{3} & -\\frac{2}{3} \\\\ \\frac{2}{3} & \\frac{1}{3} \\end{pmatrix}",
        "(1,2)\\cup(3,4)",
        "\\left( -\\frac{1}{2}, \\frac{\\sqrt{3}}{2} \\right)",
        "e^{x^2}",
        "2^{2^{x}}",
        "2^{10}",
        "10^{100}",
        "100!",
        "(n+1)!",
        "x^2 + 2x + 1",
        "\\{1, 2, 3\\}",
        "[-2, 7)",
        "5\\sqrt{2} - 3",
    ],
)
def test_screens_let_ordinary_answers_through(answer: str) -> None:
    assert screen(answer) is None


@pytest.mark.parametrize(
    "answer",
    [
        *(a for a, _ in HOSTILE.values()),
        "+".join(["1"] * 5000),
        "9^{9^{\\sqrt{81}}}",
        "10^{10}!",
        "10!!!!",
        "1000000!",
        "2^{10000000}",
        "((((((((1))))))))",
    ],
)
def test_screens_stop_pathological_answers(answer: str) -> None:
    assert screen(answer) is not None


# --- the worker process ---------------------------------------------------------------------

SILENT_WORKER = r"""
import json, signal, sys, time
signal.signal(signal.SIGALRM, signal.SIG_IGN)  # like a big-integer power: no timer stops it
sys.stdin.readline()
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    if request["a"] == "hang":
        while True:
            time.sleep(1)
    print(json.dumps({"id": request["id"], "equal": request["a"] == request["b"]}), flush=True)
"""


def test_a_worker_that_never_answers_is_killed_and_replaced() -> None:
    service = MathVerifyService(cap_s=0.5, command=[sys.executable, "-c", SILENT_WORKER])
    try:
        assert service.wait_ready(30)
        first = service.worker_pid()
        start = time.monotonic()
        hung = service.verdict("hang", "x", deadline=start + 30, wait_for_start=True)
        assert hung.equal is None and hung.reason is not None and "ran past" in hung.reason
        assert time.monotonic() - start <= 0.5 + KILL_GRACE_S + SLACK_S
        # The pair is remembered: the next search that meets it does not pay again.
        again = time.monotonic()
        assert service.verdict("hang", "x", deadline=again + 30, wait_for_start=True) == hung
        assert time.monotonic() - again < 0.5
        # The next comparison gets a fresh worker.
        fresh = service.verdict("y", "y", deadline=time.monotonic() + 30, wait_for_start=True)
        assert fresh.equal is True
        assert service.worker_pid() not in (None, first)
    finally:
        service.close()


def test_a_caller_leaves_at_its_deadline_while_the_worker_runs_on() -> None:
    service = MathVerifyService(cap_s=5.0, command=[sys.executable, "-c", SILENT_WORKER])
    try:
        assert service.wait_ready(30)
        start = time.monotonic()
        verdict = service.verdict("hang", "x", deadline=start + 0.3, wait_for_start=True)
        assert verdict.equal is None and verdict.reason is not None
        assert "time budget" in verdict.reason
        assert time.monotonic() - start <= 0.3 + SLACK_S
        # The worker is still busy with it: another caller waits at most its own budget.
        busy = time.monotonic()
        assert service.verdict("a", "a", deadline=busy + 0.2, wait_for_start=True).equal is None
        assert time.monotonic() - busy <= 0.2 + SLACK_S
    finally:
        service.close()


def test_math_verify_that_cannot_start_is_reported_not_retried_per_comparison() -> None:
    broken = "import json; print(json.dumps({'failed': 'ImportError: no math_verify'}))"
    service = MathVerifyService(command=[sys.executable, "-c", broken])
    try:
        assert not service.wait_ready(30)
        verdict = service.verdict("x", "y", deadline=time.monotonic() + 5, wait_for_start=True)
        assert verdict.equal is None and verdict.reason is not None
        assert "ImportError" in verdict.reason
        assert service.worker_pid() is None  # and no new worker per comparison
        service.verdict("x", "z", deadline=time.monotonic() + 5, wait_for_start=True)
        assert service.worker_pid() is None
    finally:
        service.close()


WORKER_PID = """
import json, sys, time
from sal_plugins import _equivalence
from sal_plugins.answers import warm_up_equivalence
assert warm_up_equivalence(wait_s=30)
print(json.dumps({"pid": _equivalence.SERVICE.worker_pid()}), flush=True)
if json.load(sys.stdin) == "linger":
    time.sleep(600)
"""


def _gone(pid: int, within_s: float = 10.0) -> bool:
    """Whether process ``pid`` has exited (a zombie awaiting its reaper counts as exited)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        status = Path(f"/proc/{pid}/status")
        if status.exists() and "\nState:\tZ" in status.read_text():
            return True
        time.sleep(0.05)
    return False


def test_the_worker_exits_with_its_interpreter() -> None:
    reply = run_isolated(WORKER_PID, "exit", timeout=60.0)
    assert _gone(reply["pid"])


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_worker_exits_when_its_parent_is_killed() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", WORKER_PID],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps("linger"))
        child.stdin.close()
        pid = json.loads(child.stdout.readline())["pid"]
        child.send_signal(signal.SIGKILL)  # no atexit: the worker sees its input end
        child.wait(timeout=10)
        assert _gone(pid)
    finally:
        child.kill()
        child.wait()
