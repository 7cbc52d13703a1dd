"""What search buys on the embedded model: greedy vs. the embedded default search and two others.

Generates one- and two-operation arithmetic word problems with a seeded generator (the problems
are written to ``problems.jsonl`` in the output folder; the embedded defaults were tuned on the
same generator with another seed, ``TUNING_SEED``, and any problem that the tuning set also holds
is left out), then runs, problem by problem, on SmolLM2-135M-Instruct in-process:

* ``greedy``: one solution at temperature 0, with the embedded prompt;
* ``best_of_n`` N=8: the embedded search with half the default's samples;
* ``default``: the embedded default search (``sal run``'s: best-of-16 with the tuned settings of
  :func:`sal_plugins.embedded.embedded_settings`, scored by
  :func:`sal_plugins.embedded.embedded_verifier`);
* ``beam_search`` N=8: step-level beam search over the same prompt and verifier.

Accuracy comes with 95% Wilson intervals, beside pass@N (some final candidate is right: the
ceiling a perfect selection would reach), generated tokens and seconds per problem. Records are
appended as they finish, so an interrupted run resumes; ``--max-minutes`` stops starting new
problems after that long and the table says how many were run. Prints Markdown; asserts nothing.

Run: ``python benchmarks/embedded_lift.py`` (100 problems: about an hour on 2 idle cores) or
``python benchmarks/embedded_lift.py --max-minutes 25``.

``python benchmarks/embedded_lift.py --demo 10`` instead runs the quick start's demo, ``sal run
"What is 23 + 48?"`` (the command line itself, JSON output), with seeds 0-9 and counts the runs
that answer 71 with every equation of the printed solution correct, and their times.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sal_plugins as sal
from sal_plugins.embedded import embedded_settings, embedded_solver, embedded_verifier
from sal_plugins.eval.datasets import Problem
from sal_plugins.eval.grading import is_correct
from sal_plugins.eval.report import summarize, wilson_interval
from sal_plugins.eval.runner import Arm, Record
from sal_plugins.results import SearchResult
from sal_plugins.solvers.llamacpp import LlamaCppSolver
from sal_plugins.strategies.base import SearchStrategy

TUNING_SEED = 777
"""The generator seed the embedded defaults were tuned on (never reported)."""

NAMES = ("Tom", "Sara", "Ben", "Mia", "Leo", "Ana", "Sam", "Eva")
HE = {"Tom", "Ben", "Leo", "Sam"}
ONE_STEP: list[tuple[str, str]] = [
    ("{n} has {a} apples. {p} buys {b} more apples. How many apples does {n} have now?", "+"),
    ("A box holds {a} pens. {b} pens are taken out. How many pens are left in the box?", "-"),
    ("Each bag has {a} candies. How many candies are there in {b} bags?", "*"),
    (
        "{n} shares {a} cookies equally among {b} friends. How many cookies does each friend get?",
        "/",
    ),
    ("A class has {a} girls and {b} boys. How many children are in the class?", "+"),
    ("{n} had {a} dollars and spent {b} dollars. How many dollars does {n} have left?", "-"),
]
TWO_STEP: list[tuple[str, Callable[[int, int, int], int]]] = [
    (
        "{n} has {a} marbles. {p} buys {b} more and then gives away {c}. How many marbles does "
        "{n} have now?",
        lambda a, b, c: a + b - c,
    ),
    (
        "A pen costs {a} dollars. How much do {b} pens and a notebook that costs {c} dollars cost "
        "together?",
        lambda a, b, c: a * b + c,
    ),
    (
        "There are {a} rows of {b} chairs. {c} chairs are taken away. How many chairs are left?",
        lambda a, b, c: a * b - c,
    ),
    (
        "{n} reads {a} pages on Monday, {b} pages on Tuesday and {c} pages on Wednesday. How many "
        "pages does {n} read in total?",
        lambda a, b, c: a + b + c,
    ),
]


def make_problems(count: int, seed: int) -> list[dict[str, str]]:
    """``count`` word problems, alternating one and two operations, reproducible from ``seed``."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        name = rng.choice(NAMES)
        pronoun = "He" if name in HE else "She"
        if index % 2 == 0:
            template, op = ONE_STEP[rng.randrange(len(ONE_STEP))]
            if op == "/":
                b, answer = rng.randint(2, 9), rng.randint(2, 12)
                a = b * answer
            elif op == "*":
                a, b = rng.randint(2, 12), rng.randint(2, 9)
                answer = a * b
            elif op == "-":
                a = rng.randint(20, 99)
                b = rng.randint(2, a - 1)
                answer = a - b
            else:
                a, b = rng.randint(10, 90), rng.randint(2, 60)
                answer = a + b
            question = template.format(n=name, p=pronoun, a=a, b=b)
        else:
            template, solve = TWO_STEP[rng.randrange(len(TWO_STEP))]
            a, b, c = rng.randint(2, 12), rng.randint(2, 30), rng.randint(1, 20)
            if solve(a, b, c) < 0:
                a += c
            answer = solve(a, b, c)
            question = template.format(n=name, p=pronoun, a=a, b=b, c=c)
        rows.append({"id": f"w{index}", "question": question, "answer": str(answer)})
    return rows


def held_out_problems(count: int, seed: int) -> list[dict[str, str]]:
    """``count`` problems from ``seed`` that the tuning set (``TUNING_SEED``) does not hold."""
    tuning = {row["question"] for row in make_problems(500, TUNING_SEED)}
    rows: list[dict[str, str]] = []
    for row in make_problems(count * 3, seed):
        if row["question"] not in tuning and row["question"] not in {r["question"] for r in rows}:
            rows.append(row)
        if len(rows) == count:
            break
    return rows


@dataclass(frozen=True)
class Outcome:
    """One arm on one problem: the graded record plus pass@N (some final candidate is right)."""

    record: dict[str, Any]
    passed: bool
    candidates: int


ARMS: dict[str, Arm] = {
    "greedy": Arm("greedy", 1),
    "best_of_8": Arm("best_of_n", 8),
    "default": Arm("best_of_n", embedded_settings()["n"]),
    "beam": Arm("beam_search", 8),
}


def build(label: str, solver: LlamaCppSolver, seed: int) -> SearchStrategy:
    """The strategy of one arm, on the embedded model with its tuned settings."""
    if label == "greedy":
        settings = {**embedded_settings("greedy"), "n": 1, "temperature": 0.0}
        return sal.BestOfN(solver=solver, verifier=None, seed=seed, **settings)
    arm = ARMS[label]
    settings = {**embedded_settings(arm.strategy), "n": arm.n}
    verifier = embedded_verifier()
    cls = sal.BestOfN if arm.strategy == "best_of_n" else sal.BeamSearch
    return cls(solver=solver, verifier=verifier, seed=seed, aggregation="last", **settings)


def run_one(strategy: SearchStrategy, arm: Arm, problem: Problem, seed: int) -> Outcome:
    """Search one problem; grade the selected answer and every final candidate."""
    result: SearchResult | None = None
    error = None
    try:
        result = strategy.run(problem.question)
    except sal.SearchError as failure:
        result, error = failure.result, str(failure)
    record = Record.from_result(arm, problem, seed, result, error)
    completions = result.completions if result is not None else []
    passed = any(is_correct(c.answer, problem.answer) for c in completions)
    return Outcome(asdict(record), passed or record.correct, len(completions))


def table(outcomes: dict[str, list[Outcome]], problems: int) -> str:
    """The Markdown table of every arm, over the problems every arm has finished."""
    lines = [
        "| arm | strategy | N | problems | accuracy | 95% CI | pass@N | gen tokens/problem | "
        "s/problem |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, rows in outcomes.items():
        rows = rows[:problems]
        arm = ARMS[label]
        correct = sum(o.record["correct"] for o in rows)
        passed = sum(o.passed for o in rows)
        low, high = wilson_interval(correct, len(rows))
        tokens = sum(o.record["completion_tokens"] for o in rows) / max(1, len(rows))
        seconds = sum(o.record["wall_time_s"] for o in rows) / max(1, len(rows))
        lines.append(
            f"| {label} | {arm.strategy} | {arm.n} | {len(rows)} | {correct / len(rows):.1%} | "
            f"{low:.1%}-{high:.1%} | {passed / len(rows):.1%} | {tokens:.0f} | {seconds:.1f} |"
        )
    return "\n".join(lines) + "\n"


def load(path: Path) -> dict[tuple[str, str], Outcome]:
    """Outcomes already recorded, by (arm label, problem id)."""
    done: dict[tuple[str, str], Outcome] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                done[(row["label"], row["record"]["problem_id"])] = Outcome(
                    row["record"], row["passed"], row["candidates"]
                )
    return done


def demo(seeds: int) -> None:
    """Run ``sal run "What is 23 + 48?" --seed S --json`` for ``seeds`` seeds; count the good ones."""
    import contextlib
    import io

    from sal_plugins import cli
    from sal_plugins.verifiers.arithmetic import find_equations

    good = 0
    lines = [
        "| seed | answer | greedy | every step correct | search s | total s |",
        "|---|---|---|---|---|---|",
    ]
    for seed in range(seeds):
        started = time.monotonic()
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
            code = cli.main(["run", "What is 23 + 48?", "--seed", str(seed), "--json"])
        total = time.monotonic() - started
        data = json.loads(buffer.getvalue()) if code == 0 else {}
        equations = find_equations(str(data.get("completions", [{}])[0].get("text", "")))
        steps_ok = bool(equations) and all(e.correct for e in equations)
        ok = data.get("answer") == "71" and steps_ok
        good += ok
        search_s = data.get("usage", {}).get("wall_time_s", 0.0)
        greedy = data.get("greedy", {}).get("answer")
        lines.append(
            f"| {seed} | {data.get('answer')} | {greedy} | {steps_ok} | {search_s:.1f} | {total:.1f} |"
        )
        print(lines[-1], flush=True)
    print("\n".join(lines))
    print(f"\n{good}/{seeds} seeds answer 71 with every printed step correct")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--seed", type=int, default=2027, help="generator seed of the problems")
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--out", default="benchmarks/results/embedded_lift")
    parser.add_argument("--demo", type=int, metavar="SEEDS", help="run the quick start's demo")
    args = parser.parse_args()
    if args.demo:
        demo(args.demo)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = held_out_problems(args.problems, args.seed)
    (out / "problems.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    problems = [Problem(r["id"], r["question"], r["answer"]) for r in rows]
    records_path = out / "records.jsonl"
    done = load(records_path)
    solver = embedded_solver(n_ctx=2048)
    solver.load()
    started = time.monotonic()
    finished = 0
    with records_path.open("a", encoding="utf-8") as handle:
        for index, problem in enumerate(problems):
            if args.max_minutes is not None and time.monotonic() - started > 60 * args.max_minutes:
                break
            ran = False
            for label, arm in ARMS.items():
                if (label, problem.id) in done:
                    continue
                outcome = run_one(build(label, solver, index), arm, problem, index)
                done[(label, problem.id)] = outcome
                handle.write(json.dumps({"label": label, **asdict(outcome)}) + "\n")
                handle.flush()
                ran = True
            finished = index + 1
            if ran:
                print(
                    f"[{time.monotonic() - started:7.0f}s] {finished}/{len(problems)}", flush=True
                )
    complete = [
        p for p in problems[: max(finished, 1)] if all((label, p.id) in done for label in ARMS)
    ]
    outcomes = {label: [done[(label, p.id)] for p in complete] for label in ARMS}
    markdown = table(outcomes, len(complete))
    stamp = datetime.date.today().isoformat()
    header = (
        f"{stamp}: {len(complete)} of {len(problems)} generated word problems (seed {args.seed}), "
        "SmolLM2-135M-Instruct in-process\n\n"
    )
    (out / "table.md").write_text(header + markdown, encoding="utf-8")
    print(header + markdown)
    _plot(outcomes, out / "accuracy_vs_budget.png", len(complete))


def _plot(outcomes: dict[str, list[Outcome]], path: Path, count: int) -> None:
    """The accuracy-vs-budget plot (sal_plugins.eval.plot), when matplotlib is installed."""
    try:
        from sal_plugins.eval.plot import plot_accuracy_vs_budget

        records = [Record.from_dict(o.record) for rows in outcomes.values() for o in rows]
        summaries = summarize(records)
        title = f"embedded SmolLM2-135M: {count} generated word problems"
        plot_accuracy_vs_budget(summaries, path, title=title)
        print(f"plot: {path}")
    except ImportError as error:  # MissingDependencyError is an ImportError
        print(f"plot skipped: {error}")


if __name__ == "__main__":
    main()
