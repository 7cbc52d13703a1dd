"""``sal run``: the command line over scripted fakes (injected with the hidden factory flags)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sal_plugins import cli
from sal_plugins._cli_progress import SearchProgress
from sal_plugins._cli_setup import default_beam_width
from sal_plugins.events import SearchEvent
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.strategies import BestOfN, SearchStrategy
from sal_plugins.verifiers import ScriptedVerifier

RIGHT = "23 + 48 = 71\n\nThe answer is $\\boxed{71}$."
WRONG = "23 + 48 = 61\n\nThe answer is $\\boxed{61}$."
SOLVERS: list[ScriptedSolver] = []


def make_solver() -> ScriptedSolver:
    """Two scripted solutions, one right and one wrong; remembers itself for the assertions."""
    solver = ScriptedSolver([RIGHT, WRONG])
    SOLVERS.append(solver)
    return solver


def make_verifier() -> ScriptedVerifier:
    """Scores the wrong step low, everything else high."""
    return ScriptedVerifier(lambda problem, step: 0.1 if "61" in step else 0.9)


FAKES = [f"--solver-factory={__name__}:make_solver", f"--verifier-factory={__name__}:make_verifier"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_run_prints_the_answer_and_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "run", "What is 23 + 48?", *FAKES)
    assert code == 0
    assert "answer:      71" in out
    assert "score:       0.900" in out
    assert "calls:       1 generation + 1 verifier" in out
    assert "stop reason: finished" in out
    assert "tokens:" in out and "time:" in out
    assert RIGHT.splitlines()[0] in out  # the selected solution is shown
    # Not a terminal: progress comes as plain lines on stderr, not on stdout.
    assert "round 0: 4 candidates generated" in err
    assert "round 0" not in out


def test_run_json_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "run", "What is 23 + 48?", "--json", "--n", "2", *FAKES)
    assert code == 0
    data = json.loads(out)
    assert data["answer"] == "71"
    assert data["strategy"] == "best_of_n"
    assert data["usage"]["generation_calls"] == 1
    assert data["usage"]["verifier_calls"] == 1
    assert len(data["completions"]) == 2
    assert "tree" not in data


def test_hyphenated_beam_search_with_flags(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "run",
        "What is 23 + 48?",
        "--strategy",
        "beam-search",
        "--n",
        "4",
        "--beam-width",
        "2",
        "--max-steps",
        "3",
        "--seed",
        "1",
        "--temperature",
        "0.5",
        "--max-tokens",
        "64",
        "--json",
        *FAKES,
    )
    assert code == 0
    data = json.loads(out)
    assert data["strategy"] == "beam_search"
    assert data["answer"] == "71"
    request = SOLVERS[-1].requests[0]
    assert (request.temperature, request.max_tokens, request.n) == (0.5, 64, 4)
    # two beams survive round 0, each expanded into beam_width=2 continuations
    assert [r.n for r in SOLVERS[-1].requests[1:]] == [2, 2]


def test_seeded_runs_repeat(capsys: pytest.CaptureFixture[str]) -> None:
    first = json.loads(run(capsys, "run", "q?", "--json", "--seed", "3", *FAKES)[1])
    second = json.loads(run(capsys, "run", "q?", "--json", "--seed", "3", *FAKES)[1])
    assert [c["text"] for c in first["completions"]] == [c["text"] for c in second["completions"]]


def test_set_passes_other_strategy_settings(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "run", "q?", "--json", "--set", "selection=naive", "--n", "2", *FAKES
    )
    assert code == 0
    assert json.loads(out)["answer"] == "71"


@pytest.mark.parametrize(
    ("name", "suffix", "marker"),
    [
        ("tree.html", ".html", "<!doctype html>"),
        ("tree.json", ".json", '"nodes"'),
        ("tree.mmd", ".mmd", "flowchart TD"),
    ],
)
def test_tree_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, suffix: str, marker: str
) -> None:
    target = tmp_path / "out" / name
    code, out, _ = run(capsys, "run", "What is 23 + 48?", "--tree", str(target), *FAKES)
    assert code == 0
    text = target.read_text(encoding="utf-8")
    assert marker in text
    assert f"tree:        {target}" in out
    if suffix == ".html":
        assert 'class="node selected' in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--strategy", "best"], "unknown strategy 'best': choose one of ab_mcts"),
        (["--beam-width", "2"], "--beam-width does not apply to best_of_n"),
        (["--max-steps", "2"], "drop --max-steps"),
        (["--base-url", "http://127.0.0.1:9/v1"], "--base-url and --model go together"),
        (["--prm-url", "http://127.0.0.1:9"], "--prm-url and --prm-model go together"),
        (["--tree", "out.txt"], "use a .html, .json or .mmd file name"),
        (["--n", "0"], "--n 0: must be at least 1"),
        (["--strategy", "beam_search", "--verifier", "none"], "drop --verifier none"),
        (["--strategy", "beam_search", "--n", "6", "--beam-width", "4"], "multiple of beam_width"),
        (["--set", "selection"], "expected KEY=VALUE"),
        (["--set", "bogus=1"], "unknown argument"),
    ],
)
def test_bad_flags_exit_2_naming_the_fix(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    solver_only = [f"--solver-factory={__name__}:make_solver"]
    code, out, err = run(capsys, "run", "What is 23 + 48?", *argv, *solver_only)
    assert code == 2
    assert message in err
    assert out == ""


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "q?", "--n", "many"])
    assert exit_info.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "run" in capsys.readouterr().err


def test_empty_problem_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "run", "   ", *FAKES)
    assert code == 2
    assert "the problem is empty" in err


def test_a_search_that_finds_nothing_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    from sal_plugins.solvers.scripted import fail_calls

    def failing() -> ScriptedSolver:
        return ScriptedSolver([RIGHT], fail=fail_calls(1))

    globals()["failing_solver"] = failing
    code, _, err = run(capsys, "run", "q?", f"--solver-factory={__name__}:failing_solver")
    assert code == 1
    assert "produced no candidate" in err


def test_default_beam_width_keeps_two_beams_or_more() -> None:
    assert [default_beam_width(n) for n in (1, 2, 3, 4, 8, 16, 64, 6)] == [1, 1, 1, 2, 4, 4, 4, 2]


def test_embedded_default_when_no_solver_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No model flags: the embedded solver and the arithmetic verifier, with quick defaults."""
    import sal_plugins.embedded as embedded

    monkeypatch.setattr(embedded, "embedded_solver", make_solver)
    code, out, _ = run(capsys, "run", "What is 23 + 48?", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["answer"] == "71"
    request = SOLVERS[-1].requests[0]
    assert request.max_tokens == 48  # embedded default, not the 1024 of a served model
    assert request.temperature == 0.7
    assert request.n == 9  # the first early-stop round of best-of-16


def test_openai_and_pooling_flags_build_those_adapters() -> None:
    """Construction only: the HTTP paths are covered by the adapters' own tests."""
    from sal_plugins._cli_setup import build_components

    args = cli.build_parser().parse_args(
        [
            "run",
            "q?",
            "--base-url",
            "http://127.0.0.1:8000/v1",
            "--model",
            "m",
            "--api-key",
            "k",
            "--prm-url",
            "http://127.0.0.1:8001",
            "--prm-model",
            "Qwen/Qwen2.5-Math-PRM-7B",
            "--transport",
            "aiohttp",
        ]
    )
    components = build_components(args)
    assert type(components.solver).__name__ == "OpenAISolver"
    assert components.solver.transport == "aiohttp"  # type: ignore[attr-defined]
    assert type(components.verifier).__name__ == "PoolingPRM"
    assert components.embedded is False
    assert components.description["verifier"].startswith("pooling:Qwen/Qwen2.5-Math-PRM-7B@")


def test_live_progress_draws_on_a_terminal() -> None:
    stream = io.StringIO()
    search = BestOfN(solver=ScriptedSolver([RIGHT, WRONG]), verifier=make_verifier(), n=2)
    with SearchProgress(stream, live=True) as progress:
        assert progress.live
        for event in _events(search):
            progress.update(event)
    assert progress.generated == 2
    assert progress.best == pytest.approx(0.9)
    assert "best_of_n" in stream.getvalue()


def test_progress_lines_say_what_an_adaptive_search_chose() -> None:
    from sal_plugins import Adaptive

    stream = io.StringIO()
    search = Adaptive(solver=ScriptedSolver([RIGHT, WRONG]), verifier=make_verifier(), seed=0)
    with SearchProgress(stream, live=False) as progress:
        for event in _events(search):
            progress.update(event)
    lines = [line for line in stream.getvalue().splitlines() if "chose " in line]
    assert len(lines) == 1 and "(probe of 4: agreement" in lines[0]


def _events(search: SearchStrategy) -> list[SearchEvent]:
    import asyncio

    async def collect() -> list[SearchEvent]:
        return [event async for event in search.astream("What is 23 + 48?")]

    return asyncio.run(collect())


def test_arithmetic_verifier_scores_a_trajectory_by_its_mean_step() -> None:
    from sal_plugins._cli_setup import build_components, build_strategy

    base = ["run", "q?", f"--solver-factory={__name__}:make_solver"]
    args = cli.build_parser().parse_args(base)
    strategy = build_strategy("best_of_n", 4, args, build_components(args))
    assert type(strategy.verifier).__name__ == "ArithmeticVerifier"
    assert strategy.aggregation == "mean"
    args = cli.build_parser().parse_args([*base, "--set", "aggregation=last"])
    assert build_strategy("best_of_n", 4, args, build_components(args)).aggregation == "last"
