"""Adaptive search vs. every fixed arm: accuracy against average generated tokens.

Two sets, the same comparison. On each, the problems are split into two halves of equal size by
a seeded hash. On the calibration half every fixed arm is evaluated (``run_arms``, the records
``sal eval`` writes) and ``calibrate`` fits two policies, one within half the mean generated
tokens of the best fixed arm there and one within all of them. On the test half every fixed
arm, ``Adaptive`` with the default policy and ``Adaptive`` with each calibrated policy run; the
table gives accuracy with 95% Wilson intervals and mean generated tokens per problem, and says
whether a calibrated policy reached the goal: the best fixed arm's accuracy at no more than half
its mean tokens, or a higher accuracy at no more than its tokens. ``Adaptive`` runs with the
same shared settings and the same per-arm settings (``beam_width``, ``max_steps``, ...) as the
fixed arms, so a bin that picks an arm runs exactly that arm.

**Simulated** (the default, about a minute): a mixed-difficulty set simulated in-process. Each
problem is a chain of additions, and the simulated model slips on each step with a per-problem
probability (easy 3%, medium 15%, hard 35%); a slip puts the running value off and every later
step builds on it, so only a slip-free solution is right. The process reward model is noisy: a
step on a correct path scores about 0.75, one past a slip about 0.35, each with Gaussian noise
(sd 0.2) fixed by the judged text. Every answer is a deterministic function of the request seed,
so runs repeat. Arms: best-of-N at 4 and 16, beam search at 8 and 16 (beam width 4), DVTS at 16,
particle filtering at 8 and 16; ``Adaptive`` runs its policies' own N.

**Embedded** (``--embedded``, about 40 minutes on two busy cores): SmolLM2-135M-Instruct
in-process (:func:`~sal_plugins.embedded.embedded_solver`), scored by
:func:`~sal_plugins.embedded.embedded_verifier`, with the shared settings of
:func:`~sal_plugins.embedded.embedded_settings` (its prompt and worked examples, one equation
per line as the step, temperature 0.7) except ``max_tokens``: the embedded 48 tokens per request
cut many whole GSM8K solutions short, so requests may take 96 (a step still ends at its
line; more would let the model's long rambling lines take most of beam search's time). The
problems are the first ``--problems`` (16) of GSM8K's test set whose reference solution takes
one or two calculations (its ``<<...>>`` annotations): the easier end of GSM8K, since the 135M
model solves very few longer ones. Arms: best-of-N at 4 and 8, and beam search at 8 (beam width
4, at most 6 steps, the embedded default); ``Adaptive(n=8)`` caps every policy arm at those N,
so the default policy's best-of-16 runs as best-of-8 and its beam search at 16 as beam search
at 8.
Generation is deterministic per request and seed (see
:class:`~sal_plugins.solvers.llamacpp.LlamaCppSolver`), so each continuation is generated once
and served again when another arm asks for the same one (:class:`MemoizedSolver`: the probe of
``Adaptive`` and the first samples of best-of-8 are best-of-4's). Every arm is still charged the
tokens and requests its continuations took, so the figures are what separate runs would report;
only the wall time shrinks. Records go to ``runs/`` in the output folder as they finish, so an
interrupted run resumes, and progress is printed.

Each part writes ``table.md`` (the printed table, dated) and ``accuracy_vs_tokens.png`` into its
output folder (``benchmarks/results/adaptive/``, ``benchmarks/results/adaptive_embedded/``).

Run: ``python benchmarks/adaptive.py`` or ``python benchmarks/adaptive.py --embedded``; prints
the figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import json
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sal_plugins import Adaptive, AdaptivePolicy
from sal_plugins.eval import (
    Arm,
    ArmSummary,
    Problem,
    Record,
    RunFolder,
    problems_from_rows,
    run_arms,
    summarize,
)
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

ArmTable = list[tuple[str, int, dict[str, Any]]]
"""Fixed arms: (strategy, n, the strategy's own settings)."""

SLIP = {"easy": 0.03, "medium": 0.15, "hard": 0.35}
MIX = {"easy": 0.4, "medium": 0.3, "hard": 0.3}
STEPS = 4
FIXED_ARMS: ArmTable = [
    ("best_of_n", 4, {}),
    ("best_of_n", 16, {}),
    ("beam_search", 8, {"beam_width": 4, "max_steps": STEPS + 2}),
    ("beam_search", 16, {"beam_width": 4, "max_steps": STEPS + 2}),
    ("dvts", 16, {"beam_width": 4, "max_steps": STEPS + 2, "lookahead": 0}),
    ("particle_filter", 8, {"max_steps": STEPS + 2}),
    ("particle_filter", 16, {"max_steps": STEPS + 2}),
]
PROBE = 4
"""The probe size of every policy here (the default's; ``calibrate``'s default)."""
EMBEDDED_MAX_TOKENS = 96
EMBEDDED_MAX_STEPS = 6
EMBEDDED_CAP = 8
EMBEDDED_ARMS: ArmTable = [
    ("best_of_n", 4, {}),
    ("best_of_n", 8, {}),
    ("beam_search", 8, {"beam_width": 4, "max_steps": EMBEDDED_MAX_STEPS}),
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


def gsm8k_problems(path: str, count: int, max_calculations: int) -> list[Problem]:
    """The first ``count`` GSM8K problems whose reference takes 1 to ``max_calculations`` steps.

    A step is one ``<<...>>`` calculation annotation of the reference solution; ids are
    ``gsm8k-LINE`` (the row's position in the file, from 0).
    """
    file = Path(path)
    if not file.is_file():
        sys.exit(f"no GSM8K file at {path}: pass --gsm8k PATH of a GSM8K test.jsonl")
    rows = []
    for index, line in enumerate(file.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        row = json.loads(line)
        if 1 <= str(row.get("answer", "")).count("<<") <= max_calculations:
            rows.append({**row, "id": f"gsm8k-{index}"})
        if len(rows) == count:
            break
    return problems_from_rows(rows, source=path)


def split_halves(problems: Sequence[Problem], seed: int) -> tuple[list[Problem], list[Problem]]:
    """The calibration half and the test half (equal sizes, by a seeded hash of each id)."""
    ranked = sorted(problems, key=lambda p: hashlib.sha256(f"split{seed}:{p.id}".encode()).digest())
    chosen = {p.id for p in ranked[: len(ranked) // 2]}
    return [p for p in problems if p.id in chosen], [p for p in problems if p.id not in chosen]


class MemoizedSolver:
    """A deterministic solver whose continuations are each generated once, then served again.

    A continuation is kept by its request and its own seed (continuation ``i`` of a request
    with seed ``s`` is the one-sample request with seed ``s + i``), so a best-of-8 whose seed
    matches a best-of-4's reuses its four samples. The response reports the requests, prompt
    tokens and generated tokens the continuations took when they were generated: an arm is
    charged what it would cost alone. Requests without a seed are passed through.

    Args:
        inner: a solver whose output depends only on the request (such as ``LlamaCppSolver``).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.capabilities: SolverCapabilities = inner.capabilities
        self._kept: dict[GenerationRequest, tuple[Generation, int, int]] = {}
        self.served_again = 0

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        """``request.n`` continuations, each generated by ``inner`` at most once."""
        if request.seed is None:
            response: SolverResponse = await self.inner.generate(request)
            return response
        generations, prompt, completion = [], 0, 0
        for seed in seeds_for(request):
            single = replace(request, n=1, seed=seed, max_requests=None)
            kept = self._kept.get(single)
            if kept is None:
                response = await self.inner.generate(single)
                kept = (response.generations[0], response.prompt_tokens, response.completion_tokens)
                self._kept[single] = kept
            else:
                self.served_again += 1
            generations.append(kept[0])
            prompt += kept[1]
            completion += kept[2]
        return SolverResponse(
            generations, prompt_tokens=prompt, completion_tokens=completion, requests=request.n
        )


Factory = Callable[[Arm, int | None], SearchStrategy]


@dataclass
class Setup:
    """One part of the benchmark: its problems, models, arms and where results go.

    Attributes:
        name: the set, as the table and the plot name it.
        problems: every problem (split into calibration and test halves).
        arms: the fixed arms.
        solver: the solver of every arm.
        verifier: the verifier of every arm.
        shared: settings every strategy shares (temperature, max_tokens, prompt, ...).
        max_steps: ``Adaptive(max_steps=...)``, the fixed step-wise arms' own.
        out: the output folder (``table.md``, the plot, and ``runs/`` when resumable).
        cap: ``Adaptive(n=...)``; ``None``: each policy arm's own N.
        resumable: keep the run folders in ``out / "runs"`` (else in a temporary folder).
        jobs: problems searched at once.
        progress: print a line per record.
    """

    name: str
    problems: list[Problem]
    arms: ArmTable
    solver: Any
    verifier: Any
    shared: dict[str, Any]
    max_steps: int
    out: Path
    cap: int | None = None
    resumable: bool = False
    jobs: int = 4
    progress: bool = False
    settings: dict[tuple[str, int], dict[str, Any]] = field(init=False)
    searched: int = field(default=0, init=False)
    read_back: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.settings = {(s, n): extra for s, n, extra in self.arms}

    def fixed(self) -> Factory:
        """The strategy of each fixed arm."""

        def factory(arm: Arm, seed: int | None) -> SearchStrategy:
            return build_strategy(
                arm.strategy,
                solver=self.solver,
                verifier=self.verifier,
                n=arm.n,
                seed=seed,
                **self.settings[(arm.strategy, arm.n)],
                **self.shared,
            )

        return factory

    def adaptive(self, policies: dict[str, AdaptivePolicy]) -> Factory:
        """``Adaptive`` with the policy an arm names (its strategy field), the same settings."""

        def factory(arm: Arm, seed: int | None) -> SearchStrategy:
            return Adaptive(
                solver=self.solver,
                verifier=self.verifier,
                policy=policies[arm.strategy],
                seed=seed,
                n=self.cap,
                max_steps=self.max_steps,
                **self.shared,
            )

        return factory


def evaluate(
    setup: Setup,
    stage: str,
    problems: Sequence[Problem],
    arms: list[Arm],
    factory: Factory,
    *,
    folder: Path,
    seed: int,
    started: float,
) -> list[Record]:
    """Every arm on every problem, into a run folder (records already there are read back)."""
    config = {
        "benchmark": "adaptive",
        "set": setup.name,
        "stage": stage,
        "problems": [p.id for p in problems],
        "seed": seed,
        "shared": setup.shared,
        "arms": [[s, n, extra] for s, n, extra in setup.arms],
        "adaptive": {"n": setup.cap, "max_steps": setup.max_steps},
    }
    run = RunFolder(folder / stage, config)
    done: dict[Arm, int] = {}

    def progress(arm: Arm, record: Record, resumed: bool) -> None:
        done[arm] = done.get(arm, 0) + 1
        if resumed:
            setup.read_back += 1
        else:
            setup.searched += 1
        if setup.progress:
            how = "read back" if resumed else ("right" if record.correct else "wrong")
            print(
                f"[{time.perf_counter() - started:6.0f}s] {stage} {arm.strategy}@{arm.n} "
                f"{done[arm]}/{len(problems)}: {record.problem_id} {how}, "
                f"{record.completion_tokens} tokens",
                flush=True,
            )

    return asyncio.run(
        run_arms(problems, arms, factory, run, seed=seed, jobs=setup.jobs, on_record=progress)
    )


def label(row: ArmSummary) -> str:
    """A row's name: ``strategy@n`` for a fixed arm, the policy's name for ``Adaptive``."""
    return row.strategy if row.strategy.startswith("adaptive") else f"{row.strategy}@{row.n}"


def best_fixed(rows: Sequence[ArmSummary]) -> ArmSummary:
    """The most accurate fixed arm; of equally accurate ones, the one spending fewest tokens."""
    fixed = [r for r in rows if not r.strategy.startswith("adaptive")]
    return max(fixed, key=lambda r: (r.accuracy, -r.completion_tokens))


def goal_lines(rows: Sequence[ArmSummary]) -> list[str]:
    """Whether each calibrated policy met the goal against the best fixed arm (point estimates)."""
    best = best_fixed(rows)
    lines = []
    for row in rows:
        if not row.strategy.startswith("adaptive-calibrated"):
            continue
        share = row.completion_tokens / best.completion_tokens if best.completion_tokens else 0.0
        matches = row.accuracy >= best.accuracy and share <= 0.5
        beats = row.accuracy > best.accuracy and share <= 1.0
        lines.append(
            f"goal, {row.strategy}: {row.accuracy:.1%} at {share:.2f}x the tokens of "
            f"{label(best)} ({best.accuracy:.1%}): matches it at <= half its tokens: "
            f"{'yes' if matches else 'no'}; beats it at <= its tokens: {'yes' if beats else 'no'}"
        )
    probe = next((r for r in rows if (r.strategy, r.n) == ("best_of_n", PROBE)), None)
    if probe is not None and best.completion_tokens:
        share = probe.completion_tokens / best.completion_tokens
        lines.append(
            f"every Adaptive search first pays its probe, best_of_n@{PROBE}'s "
            f"{probe.completion_tokens:.0f} tokens ({share:.2f}x the best fixed arm's)"
        )
    return lines


def table(rows: Sequence[ArmSummary]) -> list[str]:
    """The Markdown table of the test half."""
    best = best_fixed(rows)
    lines = [
        "| arm | problems | accuracy | 95% CI | gen tokens/problem | vs best fixed |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r.completion_tokens / best.completion_tokens if best.completion_tokens else 0.0
        lines.append(
            f"| {label(r)} | {r.problems} | {r.accuracy:.1%} | {r.ci_low:.1%}-{r.ci_high:.1%} "
            f"| {r.completion_tokens:.0f} | {ratio:.2f}x tokens |"
        )
    return lines


def plot(rows: Sequence[ArmSummary], path: Path, title: str) -> Path | None:
    """Accuracy (95% Wilson bars) against mean generated tokens: fixed arms as lines, one per
    strategy through its N, and each ``Adaptive`` policy as its own marker. ``None``: matplotlib
    is missing (``pip install 'sal-plugins[eval]'``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
    except ImportError:
        return None
    figure, axis = plt.subplots(figsize=(8, 5))
    fixed = [r for r in rows if not r.strategy.startswith("adaptive")]
    named: set[tuple[int, int]] = set()
    for strategy in dict.fromkeys(r.strategy for r in fixed):
        line = sorted((r for r in fixed if r.strategy == strategy), key=lambda r: r.n)
        xs = [max(r.completion_tokens, 1e-9) for r in line]
        errors = [[r.accuracy - r.ci_low for r in line], [r.ci_high - r.accuracy for r in line]]
        axis.errorbar(
            xs,
            [r.accuracy for r in line],
            yerr=errors,
            marker="o",
            capsize=3,
            alpha=0.8,
            label=strategy,
        )
        for x, r in zip(xs, line, strict=True):
            if (r.n, round(x)) in named:  # arms of one N at one cost: one label says it
                continue
            named.add((r.n, round(x)))
            axis.annotate(
                f"N={r.n}", (x, r.accuracy), textcoords="offset points", xytext=(4, 4), fontsize=7
            )
    markers = iter(["*", "P", "X", "D", "^"])
    colours = iter(["black", "dimgray", "darkred", "navy", "darkgreen"])
    for r in (r for r in rows if r.strategy.startswith("adaptive")):
        axis.errorbar(
            [max(r.completion_tokens, 1e-9)],
            [r.accuracy],
            yerr=[[r.accuracy - r.ci_low], [r.ci_high - r.accuracy]],
            marker=next(markers, "s"),
            markersize=12,
            linestyle="none",
            capsize=4,
            color=next(colours, "black"),
            label=r.strategy,
        )
    if all(r.completion_tokens > 0 for r in rows):
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
        axis.xaxis.set_major_formatter(ScalarFormatter())
        axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_xlabel("mean generated tokens per problem")
    axis.set_ylabel("accuracy (95% Wilson interval)")
    low, high = min(r.ci_low for r in rows), max(r.ci_high for r in rows)
    axis.set_ylim(max(-0.02, low - 0.05), min(1.02, high + 0.05))
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8, loc="best")
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def calibrated_policies(
    setup: Setup, fit_records: list[Record], seed: int
) -> tuple[dict[str, AdaptivePolicy], list[str]]:
    """The default policy and two fitted ones (within half and all of the best arm's tokens)."""
    best = best_fixed(summarize(fit_records))
    policies = {"adaptive-default": default_policy()}
    lines = []
    for name, share in (("half", 0.5), ("equal", 1.0)):
        fitted = calibrate(
            fit_records,
            target_compute=share * best.completion_tokens,
            seed=seed,
            arm_settings=lambda s, n: dict(setup.settings[(s, n)]),
        )
        policies[f"adaptive-calibrated-{name}"] = fitted.policy
        lines.append(
            f"adaptive-calibrated-{name}: within {share:.0%} of {label(best)}'s "
            f"{best.completion_tokens:.0f} tokens on the calibration half; bins by "
            f"{fitted.signal or 'none'}; fit {fitted.fit.describe()}; held out "
            f"{fitted.held_out.describe()}"
            + ("" if fitted.reached else "; target not reached on the fit: the closest policy")
        )
        lines += [
            f"  - {b.name}: {b.describe()} -> {b.then.describe()}" for b in fitted.policy.bins
        ]
        lines.append(f"  - otherwise -> {fitted.policy.otherwise.describe()}")
    return policies, lines


def run(setup: Setup, seed: int) -> None:
    """Calibrate on one half, test on the other; print and write the table and the plot."""
    started = time.perf_counter()
    calibration_set, test_set = split_halves(setup.problems, seed)
    fixed_arms = [Arm(s, n) for s, n, _ in setup.arms]
    with tempfile.TemporaryDirectory() as tmp:
        folder = setup.out / "runs" if setup.resumable else Path(tmp)

        def stage(
            name: str, problems: list[Problem], arms: list[Arm], factory: Factory
        ) -> list[Record]:
            return evaluate(
                setup, name, problems, arms, factory, folder=folder, seed=seed, started=started
            )

        fit = stage("calibration", calibration_set, fixed_arms, setup.fixed())
        policies, calibration_lines = calibrated_policies(setup, fit, seed)
        test = stage("test-fixed", test_set, fixed_arms, setup.fixed())
        adaptive_n = setup.cap or max(n for _, n, _ in setup.arms)
        adaptive_arms = [Arm(name, adaptive_n) for name in policies]
        test += stage("test-adaptive", test_set, adaptive_arms, setup.adaptive(policies))
    rows = summarize(test)
    best = best_fixed(rows)
    seconds, searches = time.perf_counter() - started, setup.searched
    if setup.resumable:  # the time of every run that added to runs/, resumed ones included
        timing = setup.out / "runs" / "timing.json"
        spent = json.loads(timing.read_text(encoding="utf-8")) if timing.exists() else {}
        seconds += float(spent.get("seconds", 0.0))
        searches += int(spent.get("searches", 0))
        timing.write_text(json.dumps({"seconds": round(seconds, 1), "searches": searches}) + "\n")
    lines = [
        f"{datetime.date.today().isoformat()}: {setup.name}; calibration half "
        f"{len(calibration_set)} problems, test half {len(test_set)} (seed {seed}); mean "
        "generated tokens per problem on the test half",
        "",
        *table(rows),
        "",
        f"baseline: best fixed arm {label(best)}, {best.accuracy:.1%} at "
        f"{best.completion_tokens:.0f} tokens",
        *goal_lines(rows),
        "",
        "policies (calibrated on the calibration half):",
        *calibration_lines,
        "",
        f"{seconds:.0f}s"
        + (f" ({seconds / 60:.1f} min)" if seconds > 120 else "")
        + f" for {searches} searches"
        + (" (over every run into runs/)" if setup.resumable else ""),
    ]
    if isinstance(setup.solver, MemoizedSolver):
        lines[-1] += f"; {setup.solver.served_again} continuations served again from memory"
    text = "\n".join(lines) + "\n"
    setup.out.mkdir(parents=True, exist_ok=True)
    (setup.out / "table.md").write_text(text, encoding="utf-8")
    print(text)
    title = f"{setup.name}: {len(test_set)} test problems"
    drawn = plot(rows, setup.out / "accuracy_vs_tokens.png", title)
    print(f"plot: {drawn}" if drawn else "plot skipped: pip install 'sal-plugins[eval]'")


def simulated(args: argparse.Namespace) -> None:
    """The simulated mixed-difficulty set (see the module docstring)."""
    problems, slips = make_problems(args.problems or 400, args.seed)
    setup = Setup(
        name="simulated mixed-difficulty set (slipping model, noisy PRM)",
        problems=problems,
        arms=FIXED_ARMS,
        solver=SlippingSolver(slips),
        verifier=FunctionVerifier(noisy_prm, score_range=(0.0, 1.0)),
        shared={"temperature": 0.8, "max_tokens": 64},
        max_steps=STEPS + 2,
        out=Path(args.out or "benchmarks/results/adaptive"),
    )
    run(setup, args.seed)


def embedded(args: argparse.Namespace) -> None:
    """GSM8K on the embedded SmolLM2-135M (see the module docstring)."""
    from sal_plugins.embedded import embedded_settings, embedded_solver, embedded_verifier

    problems = gsm8k_problems(args.gsm8k, args.problems or 16, args.max_calculations)
    shared = {
        **{k: v for k, v in embedded_settings("adaptive").items() if k not in ("n", "max_steps")},
        "max_tokens": EMBEDDED_MAX_TOKENS,
    }
    solver = embedded_solver(n_ctx=2048)
    solver.load()
    setup = Setup(
        name=f"GSM8K ({args.max_calculations} or fewer calculations), SmolLM2-135M in-process",
        problems=problems,
        arms=EMBEDDED_ARMS,
        solver=MemoizedSolver(solver),
        verifier=embedded_verifier(),
        shared=shared,
        max_steps=EMBEDDED_MAX_STEPS,
        out=Path(args.out or "benchmarks/results/adaptive_embedded"),
        cap=EMBEDDED_CAP,
        resumable=True,
        jobs=2,
        progress=True,
    )
    run(setup, args.seed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--problems", type=int, default=None, help="problems (400; 16 embedded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedded", action="store_true", help="SmolLM2 over GSM8K (slow)")
    parser.add_argument("--gsm8k", default="/work/shared/data/gsm8k/test.jsonl")
    parser.add_argument(
        "--max-calculations", type=int, default=2, help="GSM8K problems of at most this many steps"
    )
    parser.add_argument("--out", default=None, help="output folder (see the module docstring)")
    args = parser.parse_args(argv)
    if args.embedded:
        embedded(args)
    else:
        simulated(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
