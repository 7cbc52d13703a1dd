"""The first five minutes: what ``make run``, ``sal run`` and ``sal eval`` say when things go wrong.

Each test runs the command line (or ``make -n``) and checks its messages and exit codes, on
scripted fakes injected with the hidden factory flags; no model is loaded.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sal_plugins as sal
from sal_plugins import cli
from sal_plugins._cli_progress import SearchProgress
from sal_plugins.errors import VerifierError
from sal_plugins.events import SearchEvent
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.solvers.scripted import fail_calls
from sal_plugins.verifiers import ArithmeticVerifier, ScriptedVerifier, Trajectory

ROOT = Path(__file__).resolve().parents[1]
RIGHT = "23 + 48 = 71\n\nThe answer is $\\boxed{71}$."
WRONG = "23 + 48 = 61\n\nThe answer is $\\boxed{61}$."
CALLS: dict[str, int] = {"solver": 0}


def counted_solver() -> ScriptedSolver:
    CALLS["solver"] += 1
    return ScriptedSolver([RIGHT, WRONG])


def always_failing_solver() -> ScriptedSolver:
    return ScriptedSolver([RIGHT], fail=lambda request, call: fail_calls(call)(request, call))


def failing_verifier() -> ScriptedVerifier:
    return ScriptedVerifier(
        lambda problem, step: 1.0,
        fail_when=lambda steps: True,
        error=lambda: VerifierError("the verifier is down"),
    )


def vote_solver() -> ScriptedSolver:
    """One lone answer scored 0.9, another three times at 0.6: the weighted vote picks 0.6."""
    return ScriptedSolver(["lone\n\nThe answer is 5."] + ["pair\n\nThe answer is 7."] * 3)


def vote_verifier() -> ScriptedVerifier:
    return ScriptedVerifier(lambda problem, step: 0.9 if "5" in step or "lone" in step else 0.6)


def arithmetic() -> ArithmeticVerifier:
    return ArithmeticVerifier()


def factory(name: str) -> str:
    return f"{__name__}:{name}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_dataset(path: Path) -> Path:
    rows = [{"id": "a", "question": "What is 23 + 48?", "answer": "71"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# --- make run -------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_says_llama_cpp_is_compiling_before_the_build(tmp_path: Path) -> None:
    venv = tmp_path / "fresh-venv"  # does not exist: make plans the whole set-up
    # Run as a top-level make even when the suite itself runs under make (as `make test` does):
    # an inherited MAKELEVEL makes make print "Entering/Leaving directory" lines into the plan.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}
    plan = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", f"VENV={venv}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    install = next(i for i, line in enumerate(plan) if "pip" in line and "install" in line)
    said = " ".join(line for line in plan[:install] if line.startswith("echo"))
    assert "compiles llama-cpp-python" in said
    assert "5 minutes" in said
    assert " -q" not in plan[install]  # pip's own lines show the build progressing
    assert plan[-1].endswith('sal run "What is 23 + 48?" --compare')


# --- sal eval -------------------------------------------------------------------------------


def test_eval_without_matplotlib_says_so_first_and_still_writes_the_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "matplotlib" else real(name, *args),
    )
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # importing it fails too
    dataset = write_dataset(tmp_path / "tiny.jsonl")
    out_dir = tmp_path / "run"
    code, out, err = run(
        capsys, "eval", str(dataset), "--n", "2", "--out", str(out_dir),
        f"--solver-factory={factory('counted_solver')}",
        f"--verifier-factory={factory('arithmetic')}",
    )  # fmt: skip
    assert code == 0
    first = err.splitlines()[0]
    assert "matplotlib is not installed" in first and "pip install 'sal-plugins[eval]'" in first
    assert "table and the records are written" in first
    assert (out_dir / "table.md").is_file()
    records = (out_dir / "results" / "best_of_n-n2.jsonl").read_text().splitlines()
    assert json.loads(records[0])["correct"] is True
    assert not (out_dir / "accuracy_vs_budget.png").exists()
    assert "plot:       skipped, matplotlib is not installed" in out


def test_eval_writes_the_table_when_the_plot_breaks(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sal_plugins._cli_eval as cli_eval

    def broken(*args: Any, **kwargs: Any) -> Path:
        raise RuntimeError("no display backend")

    monkeypatch.setattr(cli_eval, "plot_accuracy_vs_budget", broken)
    monkeypatch.setattr(cli_eval, "_plot_unavailable", lambda: None)
    out_dir = tmp_path / "run"
    code, out, _ = run(
        capsys, "eval", str(write_dataset(tmp_path / "tiny.jsonl")), "--n", "1",
        "--out", str(out_dir), f"--solver-factory={factory('counted_solver')}",
    )  # fmt: skip
    assert code == 0
    assert (out_dir / "table.md").is_file()
    assert "plot:       not drawn (RuntimeError: no display backend)" in out


def test_eval_prints_the_run_folder_after_the_table_and_runs_are_ignored_by_git(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "run"
    code, out, _ = run(
        capsys, "eval", str(write_dataset(tmp_path / "tiny.jsonl")), "--n", "1", "--no-plot",
        "--out", str(out_dir), f"--solver-factory={factory('counted_solver')}",
    )  # fmt: skip
    assert code == 0
    lines = out.rstrip("\n").splitlines()
    assert lines[0].startswith("| strategy")
    assert lines[-1] == f"run folder: {out_dir}"
    assert "runs/" in (ROOT / ".gitignore").read_text().splitlines()


def test_a_missing_dataset_path_without_a_suffix_says_no_such_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for missing in (str(tmp_path / "data" / "test"), str(tmp_path / "test.jsonl"), "gsm8k"):
        code, out, err = run(
            capsys, "eval", missing, f"--solver-factory={factory('counted_solver')}"
        )
        assert code == 2
        assert f"no such file: {missing!r}" in err
        assert "pip install" not in err and "datasets" not in err
        assert out == ""


# --- sal run --------------------------------------------------------------------------------


def test_an_empty_problem_is_refused_before_the_model_loads(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sal_plugins.embedded as embedded

    def no_model(**kwargs: Any) -> ScriptedSolver:
        raise AssertionError("the model was loaded for an empty problem")

    monkeypatch.setattr(embedded, "embedded_solver", no_model)
    CALLS["solver"] = 0
    for argv in (["run", "  \n"], ["run", "", f"--solver-factory={factory('counted_solver')}"]):
        code, out, err = run(capsys, *argv)
        assert code == 2
        assert "the problem is empty" in err
        assert out == ""
    assert CALLS["solver"] == 0


def test_a_search_whose_every_request_failed_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    solver = f"--solver-factory={factory('always_failing_solver')}"
    code, out, _ = run(capsys, "run", "q?", solver)
    assert code == 1
    assert "stop reason: error: every request failed (1 failed; last: " in out
    assert "scripted failure on call 1" in out
    assert "max_steps" not in out
    code, out, _ = run(capsys, "run", "q?", solver, "--json")
    assert code == 1
    assert json.loads(out)["stop_reason"] == "error"


def test_a_search_whose_verifier_always_failed_says_it_is_unverified(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        capsys, "run", "What is 23 + 48?", f"--solver-factory={factory('counted_solver')}",
        f"--verifier-factory={factory('failing_verifier')}",
    )  # fmt: skip
    assert code == 0
    assert "unverified: every verifier call failed" in out


def test_the_live_panel_ends_on_the_score_the_summary_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(
        capsys, "run", "q?", "--n", "4", f"--solver-factory={factory('vote_solver')}",
        f"--verifier-factory={factory('vote_verifier')}",
    )  # fmt: skip
    assert code == 0
    assert "best 0.900" in err  # the top-scored candidate lost the weighted vote
    assert "done (finished): selected score 0.600" in err
    assert "score:       0.600" in out
    search = sal.BestOfN(solver=vote_solver(), verifier=vote_verifier(), n=4, seed=0)
    events = asyncio.run(_collect(search.astream("q?")))
    with SearchProgress(live=True, stream=_Sink()) as progress:
        for event in events:
            progress.update(event)
            if event.kind == "candidates_scored":
                assert progress.best == pytest.approx(0.9)
    assert progress.best == pytest.approx(0.6)


async def _collect(stream: Any) -> list[SearchEvent]:
    return [event async for event in stream]


class _Sink:
    """A text stream that drops what is written (the live panel's terminal)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_without_aiohttp_the_hint_names_httpx_aiohttp(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    missing = {"aiohttp", "httpx_aiohttp"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a)
    )
    code, _, err = run(
        capsys, "run", "q?", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
        "--transport", "aiohttp",
    )  # fmt: skip
    assert code == 2
    assert "httpx_aiohttp" in err
    assert "pip install 'openai[aiohttp]'" in err


# --- the arithmetic verifier ----------------------------------------------------------------


def scores(verifier: ArithmeticVerifier, problem: str, *steps: str) -> tuple[float, ...]:
    return asyncio.run(verifier.score(problem, [Trajectory(steps)]))[0].step_scores


def test_trivially_true_and_repeated_steps_earn_nothing() -> None:
    problem = "A pen costs 30 cents. How much do 2 pens cost?"
    padded = ("30 cents / 1 pen = 30 cents",) * 3 + ("The answer is 30.",)
    worked = ("2 * 30 = 60", "2 * 30 = 60", "The answer is 60.")
    assert scores(ArithmeticVerifier(), problem, *padded) == (0.5, 0.5, 0.5, 0.5)
    assert scores(ArithmeticVerifier(), problem, *worked) == (1.0, 0.5, 0.5)
    assert scores(ArithmeticVerifier(), problem, "5 * 1 = 6") == (0.0,)  # wrong still counts
    for trivial in ("7 + 0 = 7", "0 + 7 = 7", "7 - 0 = 7", "1 * 7 = 7", "7 - 7 = 0", "7 / 7 = 1"):
        assert scores(ArithmeticVerifier(), problem, trivial) == (0.5,), trivial
    # Padding with true-but-empty steps no longer outranks a solution that did the work.
    solver = ScriptedSolver(["\n\n".join(padded), "\n\n".join(worked)])
    search = sal.BestOfN(
        solver=solver, verifier=ArithmeticVerifier(), n=2, seed=0, aggregation="mean"
    )
    assert search.run(problem).answer == "60"


def test_cumulative_scores_follow_the_whole_solution() -> None:
    verifier = ArithmeticVerifier(cumulative=True, neutral=0.0, require_all_numbers=True)
    problem = "There are 3 rows of 5 chairs. 3 chairs are taken away. How many chairs are left?"
    assert verifier.preferred_aggregation == "last"
    assert scores(verifier, problem, "Rows times chairs.", "3 * 5 = 15", "15 - 3 = 12",
                  "The answer is 12.") == (0.0, 1.0, 1.0, 1.0)  # fmt: skip
    assert scores(verifier, problem, "3 * 5 = 16", "16 - 3 = 13", "The answer is 13.") == (
        0.0,
        0.0,
        0.0,
    )
    assert scores(verifier, problem, "3 * 5 = 15", "15 - 3 = 12", "The answer is 15.")[-1] == 0.0
    # Leaving out a given number (the second 3) is not a checked answer.
    assert scores(verifier, problem, "3 * 5 = 15", "The answer is 15.") == (1.0, 0.0)
    assert scores(ArithmeticVerifier(cumulative=True), problem, "3 * 5 = 15",
                  "The answer is 15.") == (1.0, 1.0)  # fmt: skip
    assert scores(verifier, "What is 23 + 48?", "The answer is 71.") == (1.0,)


def test_the_embedded_verifier_picks_checked_answers_then_their_majority() -> None:
    from sal_plugins.embedded import embedded_settings, embedded_verifier

    problem = "Tom has 23 apples. He buys 48 more. How many apples does he have?"
    unchecked = "Tom has many apples.\nThe answer is 70."
    checked = "48 + 23 = 71\nThe answer is 71."
    left_out = "23 + 23 = 46\nThe answer is 46."
    solver = ScriptedSolver([unchecked, checked, unchecked, left_out] * 2)
    settings = {**embedded_settings("best_of_n"), "n": 8}
    search = sal.BestOfN(solver=solver, verifier=embedded_verifier(), seed=0, **settings)
    result = search.run(problem)
    assert result.answer == "71"  # two checked votes beat four unchecked ones
    assert result.best is not None and result.best.score == 1.0
    none_checked = ScriptedSolver([unchecked, unchecked, left_out, "The answer is 12."])
    search = sal.BestOfN(solver=none_checked, verifier=embedded_verifier(), seed=0, **settings)
    assert search.run(problem).answer == "70"  # nothing checked: the plain vote decides


# --- README ---------------------------------------------------------------------------------

# What each import of the examples needs installed, as the README's set-up line spells it.
PROVIDED_BY: dict[str, Callable[[str], bool]] = {
    "sal_plugins": lambda line: '".[server]"' in line,
    "langchain_sal": lambda line: (
        "-e integrations/langchain" in line or '-e "integrations/langchain' in line
    ),
    "langchain_core": lambda line: "integrations/langchain" in line,
    "langchain_openai": lambda line: bool(re.search(r"integrations/langchain\[[^]]*openai", line)),
    "langgraph": lambda line: bool(re.search(r"integrations/langchain\[[^]]*langgraph", line)),
    "langchain": lambda line: bool(re.search(r"(^|\s)langchain(\s|$)", line)),
    "llama_index_sal": lambda line: "integrations/llama_index" in line,
    "llama_index.core": lambda line: "integrations/llama_index" in line,
    "llama_index.llms.openai_like": lambda line: bool(
        re.search(r"integrations/llama_index\[[^]]*openai-like", line)
    ),
}


def _third_party_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    stdlib = sys.stdlib_module_names | {"__future__"}
    return {name for name in names if name.split(".")[0] not in stdlib}


def test_the_readme_set_up_line_installs_what_the_examples_import() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = [line for line in readme.splitlines() if line.startswith("pip install -e")]
    assert setup, "the README has no set-up line for the examples"
    line = setup[0]
    for example in sorted((ROOT / "examples").glob("*.py")):
        if example.stem.endswith("0_12"):
            continue  # runs in its own llama-index-core 0.12 environment, as the README says
        for name in _third_party_imports(example):
            key = next((k for k in PROVIDED_BY if name == k or name.startswith(k + ".")), None)
            assert key is not None, (
                f"{example.name} imports {name}: say in the README what installs it"
            )
            assert PROVIDED_BY[key](line), f"{example.name} needs {name}, not installed by: {line}"
