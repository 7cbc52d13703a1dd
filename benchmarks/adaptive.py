"""Adaptive search vs. every fixed arm: accuracy against average generated tokens.

A mixed-difficulty set is simulated in-process: each problem is a chain of additions, and the
simulated model slips on each step with a per-problem probability (easy 3%, medium 15%, hard
35%); a slip puts the running value off and every later step builds on it, so only a slip-free
solution is right. The process reward model is noisy: a step on a correct path scores about 0.75,
one past a slip about 0.35, each with Gaussian noise (sd 0.2) fixed by the judged text. Every
answer is a deterministic function of the request seed, so runs repeat.

The problems are split by a seeded hash: on the calibration half every fixed arm is evaluated
(``run_arms``, the records ``sal eval`` writes) and ``calibrate`` fits two policies, one within
half the best fixed arm's mean generated tokens and one within all of them; on the test half
every fixed arm, ``Adaptive`` with the default policy and ``Adaptive`` with each calibrated one
are run, and the table shows accuracy with 95% Wilson intervals and mean generated tokens.

``--embedded`` runs the same comparison on GSM8K problems with the embedded SmolLM2-135M model
and the arithmetic verifier instead (slow: a few problems take minutes on two cores).

Run: ``python benchmarks/adaptive.py`` (about a minute); prints the figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sal_plugins import Adaptive, AdaptivePolicy
from sal_plugins.eval import Arm, Problem, Record, RunFolder, run_arms, summarize
from sal_plugins.eval.calibrate import calibrate
from sal_plugins.solvers.base import (
    Generation,
    GenerationRequest,
    SolverCapabilities,
    SolverResponse,
    seeds_for,
)
from sal_plugins.strategies import SearchStrategy, build_strategy
from sal_plugins.strategies.adaptive import default_policy
from sal_plugins.verifiers import FunctionVerifier

SLIP = {"easy": 0.03, "medium": 0.15, "hard": 0.35}
MIX = {"easy": 0.4, "medium": 0.3, "hard": 0.3}
STEPS = 4
FIXED_ARMS: list[tuple[str, int, dict[str, Any]]] = [
    ("best_of_n", 4, {}),
    ("best_of_n", 16, {}),
    ("beam_search", 16, {"beam_width": 4, "max_steps": STEPS + 2}),
    ("dvts", 16, {"beam_width": 4, "max_steps": STEPS + 2, "lookahead": 0}),
    ("beam_search", 8, {"beam_width": 4, "max_steps": STEPS + 2}),
    ("particle_filter", 8, {"max_steps": STEPS + 2}),
    ("particle_filter", 16, {"max_steps": STEPS + 2}),
]
_ADDEND = re.compile(r"add (\d+)")
_START = re.compile(r"Start at (\d+)")
_CLAIM = re.compile(r"= (-?\d+)")


def make_problems(count: int, seed: int) -> tuple[list[Problem], dict[str, float]]:
    """``count`` addition chains with their slip rates, reproducible from ``seed``."""
    rng = random.Random(seed)
    problems, slips = [], {}
    kinds = [k for k, share in MIX.items() for _ in range(round(share * 100))]
    for index in range(count):
        kind = rng.choice(kinds)
        start, adds = rng.randint(2, 40), [rng.randint(2, 40) for _ in range(STEPS)]
        text = f"Start at {start}; " + ", ".join(f"add {a}" for a in adds) + ". What is the result?"
        problem = Problem(f"{kind}-{index}", text, str(start + sum(adds)))
        problems.append(problem)
        slips[text] = SLIP[kind]
    return problems, slips


def _numbers(problem: str) -> tuple[int, list[int]]:
    start = _START.search(problem)
    return (int(start.group(1)) if start else 0), [int(a) for a in _ADDEND.findall(problem)]


@dataclass
class SlippingSolver:
    """A simulated model: step k adds the k-th number, off by 1-3 with the problem's slip rate."""

    slips: dict[str, float]
    capabilities: SolverCapabilities = field(default_factory=lambda: SolverCapabilities(True))

    def _steps(self, problem: str, prefix: tuple[str, ...], seed: int | None) -> list[str]:
        start, adds = _numbers(problem)
        value = start
        for step in prefix:  # continue from the prefix's last claimed value
            claim = _CLAIM.search(step)
            value = int(claim.group(1)) if claim else value
        key = f"{seed}|{problem}|{len(prefix)}|{value}".encode()
        rng = random.Random(hashlib.sha256(key).digest())
        steps = []
        for k in range(len(prefix), len(adds)):
            total = value + adds[k]
            if rng.random() < self.slips.get(problem, 0.2):
                total += rng.choice([-3, -2, -1, 1, 2, 3])
            steps.append(f"Step {k + 1}: {value} + {adds[k]} = {total}")
            value = total
        return [*steps, f"The answer is $\\boxed{{{value}}}$."]

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        """``request.n`` continuations: one step with a stop string, else the whole rest."""
        generations = []
        for seed in seeds_for(request):
            rest = self._steps(request.problem, request.prefix_steps, seed)
            if request.stop and len(rest) > 1:
                generations.append(Generation(rest[0], "delimiter"))
            else:
                generations.append(Generation(request.step_delimiter.join(rest), "end"))
        words = sum(len(g.text.split()) for g in generations)
        prompt = len((request.problem + " " + " ".join(request.prefix_steps)).split())
        return SolverResponse(generations, prompt_tokens=prompt, completion_tokens=words)


def noisy_prm(problem: str, steps: list[str]) -> list[float]:
    """Per step: about 0.75 while every value so far is right, about 0.35 after a slip."""
    start, adds = _numbers(problem)
    value, right, scores = start, True, []
    for k, step in enumerate(steps):
        claim = _CLAIM.search(step)
        if k < len(adds):
            value += adds[k]
            right = right and claim is not None and int(claim.group(1)) == value
        elif "boxed" in step:
            right = right and f"{{{value}}}" in step
        rng = random.Random(hashlib.sha256(f"{problem}|{step}".encode()).digest())
        scores.append(min(1.0, max(0.0, (0.75 if right else 0.35) + rng.gauss(0.0, 0.2))))
    return scores


def in_half(problem: Problem, seed: int) -> bool:
    """Whether a problem belongs to the calibration half."""
    return hashlib.sha256(f"split{seed}:{problem.id}".encode()).digest()[0] < 128


Factory = Callable[[Arm, int | None], SearchStrategy]


def fixed_factory(solver: Any, verifier: Any, shared: dict[str, Any]) -> Factory:
    """The strategy of each fixed arm (and of ``adaptive-*`` arms, from their policies)."""
    settings = {(s, n): extra for s, n, extra in FIXED_ARMS}

    def factory(arm: Arm, seed: int | None) -> SearchStrategy:
        return build_strategy(
            arm.strategy,
            solver=solver,
            verifier=verifier,
            n=arm.n,
            seed=seed,
            **settings[(arm.strategy, arm.n)],
            **shared,
        )

    return factory


def adaptive_factory(
    policies: dict[str, AdaptivePolicy], solver: Any, verifier: Any, shared: dict[str, Any]
) -> Factory:
    def factory(arm: Arm, seed: int | None) -> SearchStrategy:
        return Adaptive(
            solver=solver,
            verifier=verifier,
            policy=policies[arm.strategy],
            seed=seed,
            max_steps=STEPS + 2,
            **shared,
        )

    return factory


def evaluate(
    problems: Sequence[Problem], arms: list[Arm], factory: Factory, folder: Path, seed: int
) -> list[Record]:
    run = RunFolder(folder, {"benchmark": "adaptive"})
    return asyncio.run(run_arms(problems, arms, factory, run, seed=seed, jobs=4))


def report(records: list[Record], calibration_lines: list[str]) -> None:
    rows = summarize(records)
    fixed = [r for r in rows if not r.strategy.startswith("adaptive")]
    best = max(fixed, key=lambda r: (r.accuracy, -r.completion_tokens))
    print("| arm | problems | accuracy | 95% CI | gen tokens | vs best fixed |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = r.completion_tokens / best.completion_tokens
        name = f"{r.strategy}@{r.n}" if not r.strategy.startswith("adaptive") else r.strategy
        print(
            f"| {name} | {r.problems} | {r.accuracy:.1%} | {r.ci_low:.1%}-{r.ci_high:.1%} "
            f"| {r.completion_tokens:.0f} | {ratio:.2f}x tokens |"
        )
    print(f"\nbaseline: best fixed arm {best.strategy}@{best.n}: {best.accuracy:.1%}")
    for line in calibration_lines:
        print(line)


def simulated(args: argparse.Namespace) -> None:
    problems, slips = make_problems(args.problems, args.seed)
    solver = SlippingSolver(slips)
    verifier = FunctionVerifier(noisy_prm, score_range=(0.0, 1.0))
    shared: dict[str, Any] = {"temperature": 0.8, "max_tokens": 64}
    calibration_set = [p for p in problems if in_half(p, args.seed)]
    test_set = [p for p in problems if not in_half(p, args.seed)]
    arms = [Arm(s, n) for s, n, _ in FIXED_ARMS]
    run(args, calibration_set, test_set, arms, solver, verifier, shared)


def run(
    args: argparse.Namespace,
    calibration_set: list[Problem],
    test_set: list[Problem],
    arms: list[Arm],
    solver: Any,
    verifier: Any,
    shared: dict[str, Any],
) -> None:
    started = time.perf_counter()
    fixed = fixed_factory(solver, verifier, shared)
    with tempfile.TemporaryDirectory() as tmp:
        fit_records = evaluate(calibration_set, arms, fixed, Path(tmp) / "fit", args.seed)
        best = max(summarize(fit_records), key=lambda r: (r.accuracy, -r.completion_tokens))
        settings = {(s, n): extra for s, n, extra in FIXED_ARMS}
        policies = {"adaptive-default": default_policy()}
        lines = [f"calibration set: {len(calibration_set)} problems; test set: {len(test_set)}"]
        for label, share in (("half", 0.5), ("equal", 1.0)):
            fitted = calibrate(
                fit_records,
                target_compute=share * best.completion_tokens,
                seed=args.seed,
                arm_settings=lambda s, n: dict(settings[(s, n)]),
            )
            policies[f"adaptive-calibrated-{label}"] = fitted.policy
            lines.append(
                f"calibrated within {share:.0%} of {best.strategy}@{best.n}'s "
                f"{best.completion_tokens:.0f} tokens: {fitted.signal} bins; "
                f"fit {fitted.fit.describe()}; held out {fitted.held_out.describe()}"
            )
            lines += [
                f"    {b.name}: {b.describe()} -> {b.then.describe()}" for b in fitted.policy.bins
            ]
            lines.append(f"    otherwise -> {fitted.policy.otherwise.describe()}")
        test_records = evaluate(test_set, arms, fixed, Path(tmp) / "test-fixed", args.seed)
        adaptive = adaptive_factory(policies, solver, verifier, shared)
        test_records += evaluate(
            test_set,
            [Arm(name, 16) for name in policies],
            adaptive,
            Path(tmp) / "test-adaptive",
            args.seed,
        )
    print(f"test set ({len(test_set)} problems), mean generated tokens per problem:\n")
    report(test_records, lines)
    print(f"\n{time.perf_counter() - started:.0f}s")


def embedded(args: argparse.Namespace) -> None:
    from sal_plugins.embedded import embedded_settings, embedded_solver, embedded_verifier
    from sal_plugins.eval import load_problems

    problems = load_problems(args.gsm8k, limit=args.problems)
    shared = {k: v for k, v in embedded_settings("adaptive").items() if k not in ("n", "max_steps")}
    calibration_set = [p for p in problems if in_half(p, args.seed)]
    test_set = [p for p in problems if not in_half(p, args.seed)]
    arms = [Arm(s, n) for s, n, _ in FIXED_ARMS if s in ("best_of_n", "beam_search")]
    run(args, calibration_set, test_set, arms, embedded_solver(), embedded_verifier(), shared)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--problems", type=int, default=None, help="problems (400; 12 embedded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedded", action="store_true", help="SmolLM2 over GSM8K (slow)")
    parser.add_argument("--gsm8k", default="/work/shared/data/gsm8k/test.jsonl")
    args = parser.parse_args(argv)
    if args.embedded:
        args.problems = args.problems or 12
        embedded(args)
    else:
        args.problems = args.problems or 400
        simulated(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
