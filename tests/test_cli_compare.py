"""``sal run --compare``: the greedy answer beside the searched one, with a verdict per candidate.

Scripted fakes (injected with the hidden factory flags, or in place of the embedded solver), plus
one short real-model test of the quick start's demo.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sal_plugins import cli
from sal_plugins._cli_run import verdict
from sal_plugins.results import Completion
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.solvers.base import GenerationRequest, SolverResponse
from sal_plugins.verifiers import ArithmeticVerifier, ScriptedVerifier
from sal_plugins.verifiers.arithmetic import find_equations

PROBLEM = "What is 23 + 48?"
GREEDY_WRONG = "23 + 48 = 61\nThe answer is 61."
RIGHT = "48 + 23 = 71\nThe answer is 71."
OTHER_WRONG = "23 + 48 = 81\nThe answer is 81."


class GreedyOrSampled:
    """Greedy decoding (temperature 0) writes a slip; four samples hold two right solutions."""

    def __init__(self) -> None:
        self.greedy = ScriptedSolver([GREEDY_WRONG])
        self.sampled = ScriptedSolver([RIGHT, OTHER_WRONG, RIGHT, GREEDY_WRONG])
        self.requests: list[GenerationRequest] = []

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        self.requests.append(request)
        return await (self.greedy if request.temperature == 0 else self.sampled).generate(request)


SOLVERS: list[GreedyOrSampled] = []


def make_solver() -> GreedyOrSampled:
    solver = GreedyOrSampled()
    SOLVERS.append(solver)
    return solver


def make_verifier() -> ArithmeticVerifier:
    return ArithmeticVerifier()


FAKES = [f"--solver-factory={__name__}:make_solver", f"--verifier-factory={__name__}:make_verifier"]
# The fakes' steps are lines, as the embedded preset's are.
LINES = ["--set", 'step_delimiter="\\n"']


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_compare_prints_greedy_beside_the_search_with_a_verdict_per_candidate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "run", PROBLEM, "--compare", *LINES, *FAKES)
    assert code == 0
    assert "answer:      71" in out
    rows = {line.split("  ")[0].strip(): line for line in out.splitlines() if "  " in line}
    assert re.search(r"^greedy\s+61\s+0\.00\s+\S+s\s+wrong: 23 \+ 48 = 61$", rows["greedy"])
    assert re.search(r"71\s+1\.00\s+\S+s\s+checked$", rows["search (best_of_n)"])
    candidates = [line for line in out.splitlines() if line.lstrip().startswith("candidate")]
    assert len(candidates) == 4
    answers = [line.split()[2] for line in candidates]
    assert answers[:2] == ["71", "71"] and sorted(answers[2:]) == ["61", "81"]  # best first
    assert candidates[0].endswith("checked")
    assert {line.split("  ")[-1].strip() for line in candidates[2:]} == {
        "wrong: 23 + 48 = 61",
        "wrong: 23 + 48 = 81",
    }


def test_greedy_runs_at_temperature_0_after_the_search(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(capsys, "run", PROBLEM, "--compare", "--temperature", "0.9", *LINES, *FAKES)
    assert code == 0
    search, greedy = SOLVERS[-1].requests
    assert (search.n, search.temperature) == (4, 0.9)
    assert (greedy.n, greedy.temperature) == (1, 0.0)
    assert greedy.system_prompt == search.system_prompt
    assert greedy.max_tokens == search.max_tokens


def test_no_compare_skips_greedy_and_it_is_off_by_default_off_the_embedded_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for flags in (["--no-compare"], []):
        code, out, _ = run(capsys, "run", PROBLEM, *flags, *LINES, *FAKES)
        assert code == 0
        assert "greedy" not in out
        assert len(SOLVERS[-1].requests) == 1


def test_compare_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "run", PROBLEM, "--compare", "--json", *LINES, *FAKES)
    assert code == 0
    data = json.loads(out)
    assert data["answer"] == "71"
    assert data["greedy"]["answer"] == "61"
    assert data["greedy"]["verdict"] == "wrong: 23 + 48 = 61"
    assert data["verdicts"][:2] == ["checked", "checked"]
    assert sorted(data["verdicts"][2:]) == ["wrong: 23 + 48 = 61", "wrong: 23 + 48 = 81"]


def test_the_embedded_default_compares_and_uses_the_tuned_settings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sal_plugins.embedded as embedded

    monkeypatch.setattr(embedded, "embedded_solver", make_solver)
    code, out, _ = run(capsys, "run", PROBLEM)
    assert code == 0
    assert re.search(r"^greedy\s+61", out, re.MULTILINE)
    *search, greedy = SOLVERS[-1].requests
    settings = embedded.embedded_settings("best_of_n")
    # Early stopping draws the 8 samples in rounds: 5 first (no vote is settled with fewer).
    assert search[0].n == settings["n"] // 2 + 1
    assert sum(request.n for request in search) <= settings["n"]
    for request in search:
        assert request.system_prompt == embedded.EMBEDDED_SYSTEM_PROMPT
        assert request.step_delimiter == "\n"
        assert (request.temperature, request.max_tokens) == (settings["temperature"], 48)
    assert (greedy.n, greedy.temperature) == (1, 0.0)
    # A flag still wins over the preset, and --no-compare turns greedy off.
    code, _, _ = run(
        capsys, "run", PROBLEM, "--n", "2", "--max-tokens", "30", "--set", "early_stop=false",
        "--no-compare",
    )  # fmt: skip
    assert code == 0
    (only,) = SOLVERS[-1].requests
    assert (only.n, only.max_tokens) == (2, 30)


def test_verdicts_name_what_the_arithmetic_verifier_found() -> None:
    verifier = ArithmeticVerifier(cumulative=True, neutral=0.0)

    def completion(text: str, score: float | None, steps: tuple[float, ...]) -> Completion:
        return Completion(text, tuple(text.split("\n")), score, steps, True, None, 1)

    assert verdict(completion(RIGHT, 1.0, (1.0, 1.0)), PROBLEM, verifier) == "checked"
    assert verdict(completion(OTHER_WRONG, 0.0, (0.0, 0.0)), PROBLEM, verifier) == (
        "wrong: 23 + 48 = 81"
    )
    unfollowed = "5 + 3 = 8\nThe answer is 9."
    assert verdict(completion(unfollowed, 0.0, (1.0, 0.0)), "Tom has 5 and gets 3.", verifier) == (
        "answer is not what the work computed"
    )
    assert verdict(completion("The answer is 61.", 0.0, (0.0,)), PROBLEM, verifier) == (
        "wrong answer (the problem's value is 71)"
    )
    assert verdict(completion("No idea.", 0.0, (0.0,)), "Tom has 5.", verifier) == (
        "nothing to check"
    )
    assert verdict(completion("x", None, None), PROBLEM, verifier) == "not scored"
    other = ScriptedVerifier(lambda problem, step: 0.25)
    assert verdict(completion("x", 0.25, (0.25,)), PROBLEM, other) == "score 0.250"


@pytest.mark.model
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_quick_start_demo_answers_71_with_every_step_correct(
    capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    """``make run``'s search, on the real embedded model: the answer, and every printed step."""
    code, out, err = run(capsys, "run", PROBLEM, "--seed", str(seed))
    assert code == 0, err
    assert "answer:      71" in out
    solution = out.split("\n\nanswer:")[0]
    equations = find_equations(solution)
    assert equations, solution
    assert all(e.correct for e in equations), solution
    assert re.search(r"^greedy\s", out, re.MULTILINE)  # the comparison is printed too


def test_sal_eval_on_the_embedded_model_uses_the_tuned_settings_at_each_arms_n(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sal_plugins.embedded as embedded

    monkeypatch.setattr(embedded, "embedded_solver", make_solver)
    dataset = tmp_path / "one.jsonl"
    dataset.write_text(json.dumps({"question": PROBLEM, "answer": "71"}) + "\n")
    code, out, _ = run(
        capsys, "eval", str(dataset), "--strategy", "greedy,best_of_n", "--n", "4",
        "--no-plot", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert code == 0
    greedy, *search = SOLVERS[-1].requests
    assert (greedy.n, greedy.temperature) == (1, 0.0)
    assert sum(request.n for request in search) <= 4  # the arm's N, not the preset's 8
    assert search[0].temperature == embedded.embedded_settings()["temperature"]
    for request in (greedy, *search):
        assert request.system_prompt == embedded.EMBEDDED_SYSTEM_PROMPT
        assert request.step_delimiter == "\n"
    assert re.search(r"\| best_of_n \| 4 \| 1 \| 100\.0%", out)
    assert re.search(r"\| greedy \| 1 \| 1 \| 0\.0%", out)


def test_the_worked_examples_come_as_earlier_turns_with_the_embedded_prompt_only() -> None:
    from sal_plugins.solvers.prompts import (
        EMBEDDED_EXAMPLES,
        EMBEDDED_SYSTEM_PROMPT,
        chatml,
        with_examples,
    )

    template = with_examples(chatml, EMBEDDED_EXAMPLES, system_prompt=EMBEDDED_SYSTEM_PROMPT)
    shown = template(
        [{"role": "system", "content": EMBEDDED_SYSTEM_PROMPT}, {"role": "user", "content": "Q?"}],
        False,
    )
    turns = re.findall(r"<\|im_start\|>(\w+)\n", shown)
    assert turns == ["system"] + ["user", "assistant"] * len(EMBEDDED_EXAMPLES) + [
        "user",
        "assistant",
    ]
    assert shown.index(EMBEDDED_EXAMPLES[-1][1]) < shown.index("Q?")
    other = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}]
    assert template(other, False) == chatml(other, False)


@pytest.mark.model
def test_the_embedded_solver_renders_the_examples_for_its_prompt_only() -> None:
    from sal_plugins.embedded import default_model_path, embedded_solver
    from sal_plugins.solvers.llamacpp import LlamaCppSolver
    from sal_plugins.solvers.prompts import EMBEDDED_EXAMPLES, EMBEDDED_SYSTEM_PROMPT

    solver = embedded_solver(n_ctx=512)
    gguf = LlamaCppSolver(default_model_path(), n_ctx=512)  # SmolLM2's own template
    embedded = GenerationRequest(problem="Q?", system_prompt=EMBEDDED_SYSTEM_PROMPT)
    assert EMBEDDED_EXAMPLES[0][1] in solver.render(embedded)
    assert EMBEDDED_EXAMPLES[0][1] not in gguf.render(embedded)
    for system_prompt in ("Be brief.", None):
        request = GenerationRequest(problem="Q?", system_prompt=system_prompt, prefix_steps=("a",))
        assert solver.render(request) == gguf.render(request)
