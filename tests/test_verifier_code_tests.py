"""CodeTestVerifier against candidates that pass, fail, loop forever, allocate without bound
and try to read the parent's secrets (hostile ones, mode by mode: test_code_sandbox.py)."""

from __future__ import annotations

import pytest

import sal_plugins as sal
from sal_plugins.errors import ConfigError
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.verifiers import CodeTestVerifier, Trajectory
from sal_plugins.verifiers.code_tests import extract_code

TESTS = ["assert add(2, 3) == 5", "assert add(-1, 1) == 0", "assert add(10, 5) == 15"]


def reply(code: str) -> Trajectory:
    return Trajectory((f"Here is my solution:\n\n```python\n{code}\n```",))


def test_extract_code_prefers_the_last_python_block() -> None:
    text = "```text\nnot code\n```\n```python\nx = 1\n```\nthen\n```py\nx = 2\n```"
    assert extract_code(text) == "x = 2\n"
    assert extract_code("```\ny = 3\n```") == "y = 3\n"
    assert extract_code("z = 4") == "z = 4"


async def test_fraction_of_tests_passed_and_critique() -> None:
    verifier = CodeTestVerifier(tests=TESTS)
    right = reply("def add(a, b):\n    return a + b")
    half = reply("def add(a, b):\n    return abs(a) + b")
    rows = await verifier.score("Write add(a, b).", [right, half])
    assert rows[0].step_scores == (1.0,) and rows[0].critique is None
    assert rows[1].step_scores == pytest.approx((2 / 3,))
    assert "test 1 failed: AssertionError" in (rows[1].critique or "")


async def test_endless_loop_is_stopped_by_the_time_limit() -> None:
    verifier = CodeTestVerifier(tests=TESTS, timeout_s=20, test_timeout_s=1)
    looping = reply("def add(a, b):\n    while True:\n        pass")
    rows = await verifier.score("p", [looping])
    assert rows[0].step_scores == (0.0,)
    assert "TimeoutError" in (rows[0].critique or "")


async def test_loop_at_import_time_is_killed_by_the_wall_clock() -> None:
    verifier = CodeTestVerifier(tests=TESTS, timeout_s=2, test_timeout_s=30)
    rows = await verifier.score("p", [reply("while True:\n    pass")])
    assert rows[0].step_scores == (0.0,)
    assert "timed out" in (rows[0].critique or "")


async def test_unbounded_allocation_hits_the_memory_limit() -> None:
    verifier = CodeTestVerifier(
        tests=["assert grow() == 'done'", "assert 1 + 1 == 2"], memory_mb=128, timeout_s=20
    )
    greedy = reply(
        "def grow():\n    blob = []\n    while True:\n        blob.append(bytearray(10**7))"
    )
    rows = await verifier.score("p", [greedy])
    # The runaway test fails with MemoryError; the child survives to run the next test.
    assert rows[0].step_scores == (0.5,)
    assert "test 0 failed: MemoryError" in (rows[0].critique or "")


async def test_parent_secrets_are_not_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SAL_TEST_SECRET_API_KEY", "sk-do-not-leak")
    verifier = CodeTestVerifier(
        tests=[
            "assert 'SAL_TEST_SECRET_API_KEY' not in environment()",
            "assert 'sk-do-not-leak' not in str(environment())",
            "assert where() == environment()['HOME']",
        ]
    )
    code = (
        "import os\n"
        "def environment():\n    return dict(os.environ)\n"
        "def where():\n    return os.getcwd()"
    )
    rows = await verifier.score("p", [reply(code)])
    assert rows[0].step_scores == (1.0,), rows[0].critique


async def test_a_failing_program_fails_every_test() -> None:
    verifier = CodeTestVerifier(tests=TESTS)
    rows = await verifier.score("p", [reply("raise SystemExit(3)")])
    assert rows[0].step_scores == (0.0,)
    assert "failed to run: SystemExit" in (rows[0].critique or "")


async def test_tests_per_problem() -> None:
    verifier = CodeTestVerifier(
        tests=lambda problem: ["assert f() == 1"] if "one" in problem else []
    )
    rows = await verifier.score("return one", [reply("def f():\n    return 1")])
    assert rows[0].step_scores == (1.0,)
    with pytest.raises(ConfigError, match="no tests"):
        await verifier.score("something else", [reply("pass")])


def test_needs_tests() -> None:
    with pytest.raises(ConfigError, match="non-empty list"):
        CodeTestVerifier(tests=[])


def test_code_verifier_picks_the_working_program_in_best_of_n() -> None:
    solver = ScriptedSolver(
        [
            "```python\ndef add(a, b):\n    return a - b\n```",
            "```python\ndef add(a, b):\n    return a + b\n```",
        ]
    )
    search = sal.BestOfN(solver=solver, verifier=CodeTestVerifier(tests=TESTS), n=2, seed=0)
    result = search.run("Write add(a, b).")
    assert "a + b" in result.best.text and result.best.score == 1.0
