"""sal calibrate: fitting a policy to a run folder, held-out validation, and the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sal_plugins import Adaptive, AdaptivePolicy, ConfigError, cli
from sal_plugins.eval import Problem, RunFolder, run_arms
from sal_plugins.eval.calibrate import Option, calibrate, problem_outcomes, split_problems
from sal_plugins.eval.runner import Arm, Record
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.strategies import BestOfN
from sal_plugins.verifiers import ScriptedVerifier

# Three kinds of problem, 20 of each. The probe's agreement tells them apart; its scores do not.
#   easy:   the probe agrees, best-of-4 is right already;
#   medium: the probe splits, best-of-16 gets it right;
#   hard:   the probe scatters, only beam search gets it right.
KINDS = {"easy": 1, "medium": 2, "hard": 4}  # distinct answers among the probe's 4
COST = {("best_of_n", 4): 100, ("best_of_n", 16): 400, ("beam_search", 16): 600}
RIGHT_ARMS = {
    "easy": {("best_of_n", 4), ("best_of_n", 16), ("beam_search", 16)},
    "medium": {("best_of_n", 16), ("beam_search", 16)},
    "hard": {("beam_search", 16)},
}


def record(problem_id: str, kind: str, strategy: str, n: int) -> Record:
    answers: list[str | None] = [str(i % KINDS[kind]) for i in range(n)]
    scores: list[float | None] = [0.5] * n
    return Record(
        problem_id=problem_id,
        strategy=strategy,
        n=n,
        seed=0,
        gold="0",
        answer="0",
        correct=(strategy, n) in RIGHT_ARMS[kind],
        score=0.5,
        stop_reason="finished",
        generation_calls=n,
        verifier_calls=1,
        prompt_tokens=10,
        completion_tokens=COST[(strategy, n)],
        wall_time_s=0.1,
        candidate_answers=answers,
        candidate_scores=scores,
    )


def synthetic_records(per_kind: int = 20) -> list[Record]:
    records = []
    for kind in KINDS:
        for index in range(per_kind):
            for strategy, n in COST:
                records.append(record(f"{kind}-{index}", kind, strategy, n))
    return records


def kind_of(problem_id: str) -> str:
    return problem_id.split("-")[0]


def test_calibration_picks_the_right_arm_per_bin_and_reports_held_out() -> None:
    result = calibrate(synthetic_records(), target_compute=500, seed=0)
    policy = result.policy
    assert result.signal == "agreement" and result.reached
    _, rows, _ = problem_outcomes(synthetic_records(1), probe=4)
    for kind, expected in [("easy", "stop"), ("medium", "best_of_n"), ("hard", "beam_search")]:
        row = next(r for r in rows if kind_of(r.problem_id) == kind)
        assert policy.decide(row.signals).arm.strategy == expected, kind
    assert result.fit.accuracy == 1.0 and result.held_out.accuracy == 1.0
    assert result.held_out.problems > 0 and result.fit.problems > result.held_out.problems
    # easy: the probe (100); medium: best-of-16 reusing it (400); hard: probe + beam (700).
    assert result.fit.mean_cost < 500
    # The best single arm within 500 is best-of-16: it misses every hard problem.
    assert result.best_fixed == Option("best_of_n", 16)
    assert result.fixed[result.best_fixed][1].accuracy < result.held_out.accuracy
    info = policy.calibration or {}
    assert info["held_out"]["accuracy"] == 1.0 and info["target_compute"] == 500
    assert "held out:" in "\n".join(result.lines())


def test_a_tight_compute_target_keeps_the_probe_answer() -> None:
    result = calibrate(synthetic_records(), target_compute=150)
    assert result.reached and result.fit.mean_cost <= 150
    assert all(arm.stops for _, arm in result.policy.arms())
    assert abs(result.fit.accuracy - 1 / 3) < 0.2


def test_an_accuracy_target_is_met_at_the_least_compute() -> None:
    result = calibrate(synthetic_records(), target_accuracy=0.95)
    assert result.reached and result.fit.accuracy >= 0.95
    everything_beam = 700
    assert result.fit.mean_cost < everything_beam * 0.7


def test_an_unreachable_target_is_reported() -> None:
    result = calibrate(synthetic_records(), target_compute=50)
    assert not result.reached
    lines = "\n".join(result.lines())
    assert "target not reached" in lines
    # The probe alone costs 100 per problem: the report says why 50 cannot be met.
    assert "below the probe's own mean cost (100.0 completion_tokens)" in lines


def test_a_target_above_the_probe_cost_gets_no_probe_warning() -> None:
    result = calibrate(synthetic_records(), target_compute=150)
    assert not any("probe's own mean cost" in note for note in result.notes)


def test_split_is_seeded_and_stable() -> None:
    _, rows, _ = problem_outcomes(synthetic_records(), probe=4)
    first = split_problems(rows, holdout=0.3, seed=0)
    again = split_problems(rows, holdout=0.3, seed=0)
    other = split_problems(rows, holdout=0.3, seed=1)
    ids = [[r.problem_id for r in part] for part in first]
    assert ids == [[r.problem_id for r in part] for part in again]
    assert ids != [[r.problem_id for r in part] for part in other]
    assert 0.15 < len(first[1]) / len(rows) < 0.45


def test_records_without_a_probe_or_candidates_are_refused() -> None:
    records = synthetic_records()
    with pytest.raises(ConfigError, match=r"no best_of_n records at n=8.*--probe"):
        calibrate(records, target_compute=500, probe=8)
    old = [
        Record(**{**r.__dict__, "candidate_answers": [], "candidate_scores": []}) for r in records
    ]
    with pytest.raises(ConfigError, match="run sal eval again"):
        calibrate(old, target_compute=500)
    only_probe = [r for r in records if r.n == 4]
    with pytest.raises(ConfigError, match="no arm to choose"):
        calibrate(only_probe, target_compute=500)
    with pytest.raises(ConfigError, match="exactly one target"):
        calibrate(records)


RIGHT = "2 + 3 = 5\n\nThe answer is $\\boxed{5}$."
WRONG = "2 + 3 = 6\n\nThe answer is $\\boxed{6}$."


def make_solver() -> ScriptedSolver:
    return ScriptedSolver([RIGHT, WRONG, RIGHT])


def make_verifier() -> ScriptedVerifier:
    return ScriptedVerifier(lambda problem, step: 0.1 if "6" in step else 0.9, score_range=(0, 1))


async def test_eval_records_carry_the_probe_adaptive_sees(tmp_path: Path) -> None:
    problems = [Problem(f"p{i}", f"What is 2 + 3? ({i})", "5") for i in range(3)]
    folder = RunFolder(tmp_path, {"dataset": "t"})

    def factory(arm: Arm, seed: int | None) -> BestOfN:
        return BestOfN(solver=make_solver(), verifier=make_verifier(), n=arm.n, seed=seed)

    records = await run_arms(problems, [Arm("best_of_n", 4)], factory, folder, seed=10)
    _, rows, _ = problem_outcomes(
        [*records, *(Record(**{**r.__dict__, "n": 16}) for r in records)], probe=4
    )
    for index, (problem, row) in enumerate(zip(problems, rows, strict=True)):
        adaptive = Adaptive(solver=make_solver(), verifier=make_verifier(), seed=10 + index)
        choice = (await adaptive.arun(problem.question)).summary()["choices"][0]
        assert choice["because"].startswith(f"probe of 4: {row.signals.describe()};")
    assert len(folder.records()[0].candidate_answers) == 4  # read back from disk


def write_run_folder(path: Path) -> None:
    folder = RunFolder(
        path,
        {
            "dataset": "synthetic",
            "solver": "scripted",
            "verifier": "scripted",
            "seed": 0,
            "temperature": None,
            "max_tokens": None,
            "beam_width": None,
            "max_steps": 5,
            "options": [],
        },
    )
    for item in synthetic_records():
        folder.append(item)


def test_sal_calibrate_writes_a_policy_sal_run_uses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run_folder(tmp_path / "run")
    target = tmp_path / "policy.json"
    code = cli.main(
        ["calibrate", str(tmp_path / "run"), "--target-compute", "500", "-o", str(target)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "held out: 100.0%" in out and f"policy: {target}" in out
    policy = AdaptivePolicy.load(target)
    beam = [arm for _, arm in policy.arms() if arm.strategy == "beam_search"]
    assert beam and beam[0].settings == {"max_steps": 5}  # the settings the evaluation used
    fakes = [
        f"--solver-factory={__name__}:make_solver",
        f"--verifier-factory={__name__}:make_verifier",
    ]
    code = cli.main(
        [
            "run",
            "What is 2 + 3?",
            "--strategy",
            "adaptive",
            "--policy",
            str(target),
            "--json",
            *fakes,
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["strategy"] == "adaptive" and data["answer"] == "5"
    assert any("bin 'agreement bin" in choice["because"] for choice in data["choices"])


def test_sal_calibrate_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["calibrate", str(tmp_path), "--target-compute", "5"]) == 2
    assert "not a sal eval run folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["calibrate", str(tmp_path)])  # a target is required
    code = cli.main(["run", "q?", "--policy", str(tmp_path / "p.json")])
    assert code == 2 and "--policy applies to --strategy adaptive" in capsys.readouterr().err
