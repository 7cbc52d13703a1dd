"""``sal eval`` and sal_plugins.eval: loading, grading, resumable runs, the table and the plot."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest

from sal_plugins import cli
from sal_plugins.errors import InputError, MissingDependencyError
from sal_plugins.eval import (
    Arm,
    Record,
    gold_answer,
    load_problems,
    plot_accuracy_vs_budget,
    summarize,
    wilson_interval,
)
from sal_plugins.solvers.base import Generation, GenerationRequest, SolverResponse
from sal_plugins.verifiers import ScriptedVerifier

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"


class SumSolver:
    """Answers "What is A + B?" in two steps; continuation ``i`` is off by one when A + i is odd.

    So a single sample is wrong on odd A, half of any larger sample is right, and the arithmetic
    in a wrong step is visibly wrong, so a verifier can pick the right one.
    """

    calls = 0

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        SumSolver.calls += 1
        a, b = (int(x) for x in re.findall(r"\d+", request.problem)[:2])
        generations = []
        for i in range(request.n):
            total = a + b + (a + i) % 2
            text = f"{a} + {b} = {total}\n\nThe answer is $\\boxed{{{total}}}$."
            if request.stop and not request.prefix_steps:
                generations.append(Generation(text.split("\n\n")[0], "delimiter"))
            elif request.stop:
                generations.append(Generation(text.split("\n\n")[1], "end"))
            else:
                generations.append(Generation(text, "end"))
        return SolverResponse(generations, prompt_tokens=10, completion_tokens=12 * request.n)


def sum_solver() -> SumSolver:
    return SumSolver()


def exact_verifier() -> ScriptedVerifier:
    def check(problem: str, step: str) -> float:
        match = re.match(r"(\d+) \+ (\d+) = (\d+)", step)
        return float(int(match[1]) + int(match[2]) == int(match[3])) if match else 1.0

    return ScriptedVerifier(check)


FAKES = [f"--solver-factory={__name__}:sum_solver", f"--verifier-factory={__name__}:exact_verifier"]


@pytest.fixture
def sums(tmp_path: Path) -> Path:
    """A 3-problem MATH-style jsonl."""
    path = tmp_path / "sums.jsonl"
    rows = [
        {"problem": f"What is {a} + {b}?", "answer": str(a + b), "unique_id": f"p{a}"}
        for a, b in [(2, 3), (10, 20), (7, 8)]
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- loading and grading --------------------------------------------------------------------


def test_gsm8k_jsonl_slice() -> None:
    problems = load_problems(str(GSM8K), limit=3)
    assert len(problems) == 3
    assert problems[0].answer == "18"
    assert problems[0].question.startswith("Janet")
    assert [p.id for p in problems] == ["0", "1", "2"]


def test_gold_answers() -> None:
    assert gold_answer("so 1,000 in all\n#### 1,000") == "1000"
    assert gold_answer("Thus $\\boxed{\\frac{1}{2}}$.") == "\\frac{1}{2}"
    assert gold_answer("  42 ") == "42"


def test_math_jsonl_with_solution_only(tmp_path: Path) -> None:
    path = tmp_path / "math.jsonl"
    path.write_text(json.dumps({"problem": "p", "solution": "so $\\boxed{3\\pi}$"}) + "\n")
    assert load_problems(str(path))[0].answer == "3\\pi"


def test_bad_files_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_problems(str(tmp_path / "missing.jsonl"))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "q", "answer": "1"}\n{not json\n')
    with pytest.raises(InputError, match=r"broken\.jsonl:2: not valid JSON"):
        load_problems(str(broken))
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"text": "q"}\n')
    with pytest.raises(InputError, match="expected a question/problem field"):
        load_problems(str(odd))
    with pytest.raises(InputError, match="neither a file nor a Hugging Face name"):
        load_problems("gsm8k")


def test_hub_name_without_datasets_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(MissingDependencyError, match="pip install 'datasets'"):
        load_problems("openai/gsm8k")


def test_hub_name_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_dataset(name: str, subset: str | None, split: str) -> object:
        raise ConnectionError("hub unreachable")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(InputError, match=r"could not load .openai/gsm8k.*hub unreachable.*jsonl"):
        load_problems("openai/gsm8k", subset="main")


def test_hub_rows_become_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def load_dataset(name: str, subset: str | None, split: str) -> list[dict[str, str]]:
        seen.update(name=name, subset=subset, split=split)
        return [{"question": "q1", "answer": "x\n#### 5"}, {"question": "q2", "answer": "#### 6"}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    problems = load_problems("openai/gsm8k", subset="main", split="test", limit=1)
    assert [(p.question, p.answer) for p in problems] == [("q1", "5")]
    assert seen == {"name": "openai/gsm8k", "subset": "main", "split": "test"}


def test_unstated_answers_are_graded_on_the_last_number() -> None:
    from sal_plugins.eval import graded_answer

    assert graded_answer(None, "23 + 48 = 71, so Tom has 1,071 apples.") == ("1071", "last_number")
    assert graded_answer("\\frac{1}{2}", "x = 3") == ("\\frac{1}{2}", "stated")
    assert graded_answer(None, "no numbers here") == (None, "none")


def test_wilson_interval() -> None:
    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.49, 0.943)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(0, 5)[1] > 0.4
    assert wilson_interval(5, 5)[1] == 1.0 and wilson_interval(5, 5)[0] < 0.6


def _record(strategy: str, n: int, pid: str, correct: bool, calls: int) -> Record:
    return Record(
        pid,
        strategy,
        n,
        0,
        "1",
        "1" if correct else "2",
        correct,
        None,
        "finished",
        calls,
        1,
        10,
        5 * calls,
        0.1,
        verifier_tokens=7,
    )


def test_summaries_are_compute_matched() -> None:
    records = [
        _record("best_of_n", 4, "a", True, 4),
        _record("best_of_n", 4, "b", False, 2),
        _record("beam_search", 4, "a", True, 9),
    ]
    rows = summarize(records)
    assert [(r.strategy, r.n) for r in rows] == [("best_of_n", 4), ("beam_search", 4)]
    assert rows[0].accuracy == 0.5
    assert rows[0].generation_calls == 3.0  # what was spent, not the nominal N
    assert rows[0].completion_tokens == 15.0
    assert rows[0].total_tokens == 10 + 15.0 + 7  # the verifier's tokens count too
    assert rows[1].generation_calls == 9.0


def test_records_written_before_verifier_tokens_read_back() -> None:
    row = dict(vars(_record("best_of_n", 4, "a", True, 4)))
    del row["verifier_tokens"]
    assert Record.from_dict(row).verifier_tokens == 0


def test_plot_without_matplotlib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r"sal-plugins\[eval\]"):
        plot_accuracy_vs_budget(summarize([_record("x", 1, "a", True, 1)]), tmp_path / "p.png")


# --- the command ------------------------------------------------------------------------------


def evaluate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["eval", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_eval_table_files_and_plot(
    capsys: pytest.CaptureFixture[str], sums: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "run"
    code, out, err = evaluate(
        capsys,
        str(sums),
        "--strategy",
        "greedy,best_of_n",
        "--strategy",
        "self-consistency",
        "--n",
        "1,4",
        "--set",
        "aggregation=min",
        "--out",
        str(out_dir),
        *FAKES,
    )
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| strategy | N | problems | accuracy | 95% CI |")
    arms = [tuple(cell.strip() for cell in line.split("|")[1:3]) for line in lines[1:]]
    assert arms == [
        ("greedy", "1"),
        ("best_of_n", "1"),
        ("best_of_n", "4"),
        ("self_consistency", "1"),
        ("self_consistency", "4"),
    ]
    summary = {
        (r["strategy"], r["n"]): r for r in json.loads((out_dir / "summary.json").read_text())
    }
    # one sample is wrong on 7 + 8; with N=4 the verifier (min over steps) finds the right sum,
    # while the 2-2 vote goes to the first answer seen, the wrong one
    assert summary[("greedy", 1)]["accuracy"] == pytest.approx(2 / 3)
    assert summary[("best_of_n", 4)]["accuracy"] == 1.0
    assert summary[("self_consistency", 4)]["accuracy"] == pytest.approx(2 / 3)
    assert summary[("best_of_n", 4)]["generation_calls"] == 1.0
    assert summary[("best_of_n", 4)]["verifier_calls"] == 1.0
    assert summary[("best_of_n", 4)]["completion_tokens"] == 48.0
    assert (out_dir / "table.md").read_text().startswith("| strategy |")
    assert (out_dir / "accuracy_vs_budget.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (out_dir / "results").iterdir()) == [
        "best_of_n-n1.jsonl",
        "best_of_n-n4.jsonl",
        "greedy-n1.jsonl",
        "self_consistency-n1.jsonl",
        "self_consistency-n4.jsonl",
    ]
    record = json.loads((out_dir / "results" / "greedy-n1.jsonl").read_text().splitlines()[0])
    assert record["problem_id"] == "p2" and record["gold"] == "5" and record["correct"] is True
    assert record["answer_source"] == "stated" and record["text"].startswith("2 + 3 = 5")
    assert "[greedy N=1] p2: answer='5'" in err  # plain progress off a terminal


def test_eval_resumes_and_skips_done_problems(
    capsys: pytest.CaptureFixture[str], sums: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "run"
    argv = [str(sums), "--n", "2", "--out", str(out_dir), "--no-plot", *FAKES]
    assert evaluate(capsys, *argv)[0] == 0
    first = (out_dir / "table.md").read_text()
    SumSolver.calls = 0
    assert evaluate(capsys, *argv)[0] == 0
    assert SumSolver.calls == 0  # everything was already recorded
    assert (out_dir / "table.md").read_text() == first
    # An interrupted run: the last line was cut short. Only that problem runs again.
    results = out_dir / "results" / "best_of_n-n2.jsonl"
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:2]) + "\n" + lines[2][:30])
    assert evaluate(capsys, *argv)[0] == 0
    assert SumSolver.calls == 1
    assert (out_dir / "table.md").read_text() == first
    assert not (out_dir / "accuracy_vs_budget.png").exists()


def test_eval_refuses_a_folder_made_with_other_settings(
    capsys: pytest.CaptureFixture[str], sums: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "run"
    base = [str(sums), "--n", "1", "--out", str(out_dir), "--no-plot", *FAKES]
    assert evaluate(capsys, *base)[0] == 0
    code, _, err = evaluate(capsys, *base, "--seed", "7")
    assert code == 2
    assert "seed: 0 -> 7" in err and "new --out folder" in err


def test_eval_json_and_limit(
    capsys: pytest.CaptureFixture[str], sums: Path, tmp_path: Path
) -> None:
    code, out, _ = evaluate(
        capsys,
        str(sums),
        "--limit",
        "2",
        "--n",
        "1",
        "--json",
        "--no-plot",
        "--out",
        str(tmp_path / "r"),
        *FAKES,
    )
    assert code == 0
    rows = json.loads(out)
    assert rows[0]["problems"] == 2
    assert 0.0 <= rows[0]["ci_low"] <= rows[0]["accuracy"] <= rows[0]["ci_high"] <= 1.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n", "1,x"], "expected a comma list of integers"),
        (["--n", "0"], "every N must be at least 1"),
        (["--strategy", "nope"], "unknown strategy 'nope'"),
        (["--limit", "0"], "--limit 0: must be at least 1"),
        (["--strategy", "beam_search", "--n", "3", "--beam-width", "2"], "multiple of beam_width"),
    ],
)
def test_eval_bad_flags(
    capsys: pytest.CaptureFixture[str], sums: Path, tmp_path: Path, argv: list[str], message: str
) -> None:
    code, _, err = evaluate(capsys, str(sums), "--out", str(tmp_path / "r"), *argv, *FAKES)
    assert code == 2
    assert message in err


def test_eval_applies_beam_flags_only_where_they_fit(
    capsys: pytest.CaptureFixture[str], sums: Path, tmp_path: Path
) -> None:
    code, out, err = evaluate(
        capsys,
        str(sums),
        "--strategy",
        "best_of_n,beam_search",
        "--n",
        "2",
        "--beam-width",
        "2",
        "--max-steps",
        "3",
        "--no-plot",
        "--out",
        str(tmp_path / "r"),
        *FAKES,
    )
    assert code == 0, err
    assert "| beam_search | 2 | 3 |" in out


def test_arm_keys() -> None:
    assert Arm("beam_search", 16).key == "beam_search-n16"
