"""Fit an adaptive policy to an evaluation run: difficulty bins from probe signals to arms.

The run folder of ``sal eval DATASET --strategy best_of_n,beam_search,... --n 4,16`` holds, for
every problem, the outcome and the cost of every arm, and each record keeps its final
candidates' answers and scores. The best-of-N records at the probe size ``k`` are read as the
probe: an adaptive search's probe is the same request (``k`` whole solutions from the problem's
seed), so their signals are the ones :class:`~sal_plugins.strategies.adaptive.Adaptive` sees.

What each arm of the adaptive search would have cost and scored on a problem:

* ``stop``: the best-of-``k`` record itself;
* ``best_of_n`` at N > k: the best-of-N record (the probe's samples are reused, so the arm
  spends what best-of-N spends);
* any other strategy at N: its record's outcome, at its cost plus the probe's.

The fit sorts the fitting problems into bins by one signal (quantile cuts; each signal is tried,
and no binning at all) and chooses an arm per bin so that overall accuracy is highest with the
mean compute at most the target (``target_compute``), or compute lowest with accuracy at least
the target (``target_accuracy``); the choice over bins is solved exactly. Problems are split
into fitting and held-out ones by a seeded hash of their id; both are reported, beside the best
single arm under the same target.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sal_plugins.errors import ConfigError
from sal_plugins.eval.report import wilson_interval
from sal_plugins.eval.runner import Record
from sal_plugins.strategies.adaptive import (
    SIGNALS,
    AdaptivePolicy,
    PolicyArm,
    PolicyBin,
    ProbeSignals,
    Range,
    Signal,
    probe_signals,
)
from sal_plugins.strategies.build import STRATEGIES

__all__ = [
    "Calibration",
    "CostMetric",
    "Evaluation",
    "Option",
    "ProblemOutcomes",
    "calibrate",
    "evaluate_policy",
    "problem_outcomes",
    "split_problems",
]

CostMetric = Literal["completion_tokens", "total_tokens", "calls"]
"""What compute means: generated tokens, every token (the verifier's too), or requests."""

ArmSettings = Callable[[str, int], dict[str, Any]]
"""``settings(strategy, n)``: the strategy's own settings the evaluation ran that arm with."""


def record_cost(record: Record, metric: CostMetric) -> float:
    """The compute one record spent, by ``metric``."""
    if metric == "completion_tokens":
        return float(record.completion_tokens)
    if metric == "calls":
        return float(record.generation_calls + record.verifier_calls)
    return float(record.prompt_tokens + record.completion_tokens + record.verifier_tokens)


@dataclass(frozen=True, order=True)
class Option:
    """An arm of the adaptive search as calibration sees it: ``stop``, or a strategy at ``n``."""

    strategy: str
    n: int = 0

    @property
    def label(self) -> str:
        """``stop`` or e.g. ``beam_search@16``."""
        return "stop" if self.strategy == "stop" else f"{self.strategy}@{self.n}"


STOP = Option("stop")


@dataclass(frozen=True)
class ProblemOutcomes:
    """One problem: its probe signals, and each option's correctness and cost."""

    problem_id: str
    signals: ProbeSignals
    outcomes: dict[Option, tuple[bool, float]]


def problem_outcomes(
    records: Iterable[Record], *, probe: int, metric: CostMetric = "completion_tokens"
) -> tuple[list[Option], list[ProblemOutcomes], list[str]]:
    """The options found in ``records`` and every problem's outcomes under each.

    Only problems every option has a record of are kept (the notes say how many were left out).

    Raises:
        ConfigError: there are no best-of-N records at the probe size, their records hold no
            candidates (written before they were recorded), or no other arm to choose from.
    """
    by_arm: dict[tuple[str, int], dict[str, Record]] = {}
    for record in records:
        by_arm.setdefault((record.strategy, record.n), {})[record.problem_id] = record
    probes = by_arm.get(("best_of_n", probe))
    if not probes:
        found = ", ".join(f"{s}@{n}" for s, n in sorted(by_arm)) or "none"
        raise ConfigError(
            f"no best_of_n records at n={probe} to read the probe from (arms found: {found}): "
            f"run sal eval with --strategy best_of_n --n {probe},... or pass --probe N"
        )
    if not any(r.candidate_answers for r in probes.values()):
        raise ConfigError(
            "the best_of_n records hold no candidate answers (they were written before records "
            "kept them): run sal eval again into a new --out folder"
        )
    options = [STOP]
    for strategy, n in sorted(by_arm):
        usable = strategy in STRATEGIES and strategy != "adaptive"
        if usable and not (strategy == "best_of_n" and n <= probe):
            options.append(Option(strategy, n))
    if len(options) == 1:
        raise ConfigError(
            "the run folder has no arm to choose beside stopping after the probe: evaluate "
            f"more, e.g. --strategy best_of_n,beam_search --n {probe},16"
        )
    ids = [i for i in probes if all(i in by_arm[(o.strategy, o.n)] for o in options[1:])]
    notes = []
    if len(ids) < len(probes):
        notes.append(f"{len(probes) - len(ids)} problems lack a record of some arm: left out")
    rows = []
    for problem_id in sorted(ids):
        base = probes[problem_id]
        signals, _ = probe_signals(base.candidate_answers, base.candidate_scores, probe)
        probe_cost = record_cost(base, metric)
        outcomes = {STOP: (base.correct, probe_cost)}
        for option in options[1:]:
            record = by_arm[(option.strategy, option.n)][problem_id]
            extra = 0.0 if option.strategy == "best_of_n" else probe_cost
            outcomes[option] = (record.correct, record_cost(record, metric) + extra)
        rows.append(ProblemOutcomes(problem_id, signals, outcomes))
    return options, rows, notes


def split_problems(
    rows: Sequence[ProblemOutcomes], *, holdout: float, seed: int
) -> tuple[list[ProblemOutcomes], list[ProblemOutcomes]]:
    """Fitting and held-out problems, by a seeded hash of each problem's id."""
    if not 0.0 < holdout < 1.0:
        raise ConfigError(f"holdout={holdout}: the held-out share must lie between 0 and 1")
    fit: list[ProblemOutcomes] = []
    held: list[ProblemOutcomes] = []
    for row in rows:
        digest = hashlib.sha256(f"{seed}:{row.problem_id}".encode()).digest()
        (held if int.from_bytes(digest[:8], "big") / 2**64 < holdout else fit).append(row)
    return fit, held


@dataclass(frozen=True)
class Evaluation:
    """Accuracy (with a 95% Wilson interval) and mean compute over some problems."""

    problems: int
    correct: int
    mean_cost: float

    @property
    def accuracy(self) -> float:
        """``correct / problems`` (0 when there are none)."""
        return self.correct / self.problems if self.problems else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% Wilson interval of the accuracy."""
        return wilson_interval(self.correct, self.problems)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        low, high = self.interval
        return {
            "problems": self.problems,
            "accuracy": round(self.accuracy, 4),
            "ci95": [round(low, 4), round(high, 4)],
            "mean_cost": round(self.mean_cost, 2),
        }

    def describe(self) -> str:
        """E.g. ``72.0% (61.2%-80.8%) at 310 per problem, 50 problems``."""
        low, high = self.interval
        return (
            f"{self.accuracy:.1%} ({low:.1%}-{high:.1%}) at {self.mean_cost:.0f} per problem, "
            f"{self.problems} problems"
        )


def _evaluate(choices: Iterable[tuple[bool, float]]) -> Evaluation:
    items = list(choices)
    total = sum(cost for _, cost in items)
    return Evaluation(len(items), sum(ok for ok, _ in items), total / len(items) if items else 0.0)


def option_of(arm: PolicyArm, probe: int) -> Option:
    """The option a policy arm is credited with (best-of-N at most the probe: stop)."""
    if arm.stops or (arm.strategy == "best_of_n" and (arm.n or 0) <= probe):
        return STOP
    return Option(arm.strategy, arm.n or 0)


def evaluate_policy(policy: AdaptivePolicy, rows: Sequence[ProblemOutcomes]) -> Evaluation:
    """What ``policy`` would have scored and spent on ``rows``, deciding as ``Adaptive`` does.

    Raises:
        ConfigError: the policy chooses an arm the run folder has no records of.
    """
    chosen = []
    for row in rows:
        option = option_of(policy.decide(row.signals).arm, policy.probe)
        if option not in row.outcomes:
            raise ConfigError(f"the policy chooses {option.label}, which the run never evaluated")
        chosen.append(row.outcomes[option])
    return _evaluate(chosen)


@dataclass(frozen=True)
class _Target:
    compute: float | None
    accuracy: float | None

    def key(self, correct: int, cost: float, problems: int) -> tuple[float, ...]:
        """Larger is better: feasible first, then the objective, then the other measure."""
        if self.compute is not None:
            feasible = cost <= self.compute * problems + 1e-9
            return (feasible, correct if feasible else -cost, -cost)
        assert self.accuracy is not None
        feasible = correct >= self.accuracy * problems - 1e-9
        return (feasible, -cost if feasible else correct, correct)


_State = tuple[float, int, tuple[Option, ...]]  # summed cost, summed correct, one option per group


def _best_assignment(
    groups: Sequence[Sequence[ProblemOutcomes]], options: Sequence[Option], target: _Target
) -> _State:
    """The options per group that best meet ``target``, exactly (a Pareto merge over groups)."""
    states: list[_State] = [(0.0, 0, ())]
    for group in groups:
        merged: list[_State] = []
        for cost, correct, chosen in states:
            for option in options:
                add_cost = sum(row.outcomes[option][1] for row in group)
                add_correct = sum(row.outcomes[option][0] for row in group)
                merged.append((cost + add_cost, correct + add_correct, (*chosen, option)))
        merged.sort(key=lambda s: (s[0], -s[1]))
        states, best = [], -1
        for state in merged:  # keep only states no cheaper one matches in accuracy
            if state[1] > best:
                states.append(state)
                best = state[1]
    problems = sum(len(g) for g in groups)
    return max(states, key=lambda s: target.key(s[1], s[0], problems))


def _cuts(values: Sequence[float], bins: int) -> list[float]:
    """Quantile cut points of ``values`` into up to ``bins`` bins (distinct, above the minimum)."""
    ordered = sorted(values)
    cuts = {ordered[min(len(ordered) - 1, (len(ordered) * i) // bins)] for i in range(1, bins)}
    return sorted(c for c in cuts if c > ordered[0])


def _binned(
    rows: Sequence[ProblemOutcomes], signal: Signal, cuts: list[float], min_bin: int
) -> tuple[list[float], list[list[ProblemOutcomes]], list[ProblemOutcomes]]:
    """Rows by bin (cuts merged until each bin has ``min_bin`` rows), and rows missing the signal."""
    known = [r for r in rows if r.signals.value(signal) is not None]
    missing = [r for r in rows if r.signals.value(signal) is None]
    while True:
        groups: list[list[ProblemOutcomes]] = [[] for _ in range(len(cuts) + 1)]
        for row in known:
            value = row.signals.value(signal) or 0.0
            groups[sum(value >= c for c in cuts)].append(row)
        small = [i for i, g in enumerate(groups) if len(g) < min_bin]
        if not small or not cuts:
            return cuts, groups, missing
        cuts = cuts[: small[0]] + cuts[small[0] + 1 :] if small[0] < len(cuts) else cuts[:-1]


def _bins(
    signal: Signal,
    cuts: Sequence[float],
    chosen: Sequence[Option],
    arm: Callable[[Option], PolicyArm],
) -> list[PolicyBin]:
    """One policy bin per range of ``signal`` between ``cuts``; neighbours with one arm merge."""
    edges: list[float | None] = [None, *cuts, None]
    ranges: list[tuple[float | None, float | None, Option]] = []
    for index, option in enumerate(chosen):
        low, high = edges[index], edges[index + 1]
        if ranges and ranges[-1][2] == option:
            ranges[-1] = (ranges[-1][0], high, option)
        else:
            ranges.append((low, high, option))
    return [
        PolicyBin(
            name=f"{signal} bin {i + 1}",
            when={signal: Range(at_least=low, below=high)},
            then=arm(option),
        )
        for i, (low, high, option) in enumerate(ranges)
    ]


@dataclass(frozen=True)
class Calibration:
    """A fitted policy and what it measured.

    Attributes:
        policy: the policy (its ``calibration`` field holds these figures too).
        signal: the signal the bins cut (``None``: one arm for every problem fitted best).
        fit: the policy on the fitting problems.
        held_out: the policy on the held-out problems.
        fixed: every single option on the fitting and held-out problems (the probe's cost
            included where the adaptive search would pay it).
        best_fixed: the single option that best meets the target on the fitting problems.
        reached: whether the target was met on the fitting problems.
        notes: what was left out or approximated.
    """

    policy: AdaptivePolicy
    signal: str | None
    fit: Evaluation
    held_out: Evaluation
    fixed: dict[Option, tuple[Evaluation, Evaluation]]
    best_fixed: Option
    reached: bool
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A plain-text report."""
        out = [f"bins by: {self.signal or 'none (one arm fits best)'}"]
        for item in self.policy.bins:
            out.append(f"  {item.name}: {item.describe()} -> {item.then.describe()}")
        out.append(f"  otherwise -> {self.policy.otherwise.describe()}")
        out.append(f"fit:      {self.fit.describe()}")
        out.append(f"held out: {self.held_out.describe()}")
        fit, held = self.fixed[self.best_fixed]
        out.append(f"best single arm {self.best_fixed.label}: fit {fit.describe()}")
        out.append(f"best single arm {self.best_fixed.label}: held out {held.describe()}")
        if not self.reached:
            out.append("target not reached on the fitting problems: the closest policy is kept")
        return out + self.notes


def calibrate(
    records: Iterable[Record],
    *,
    target_compute: float | None = None,
    target_accuracy: float | None = None,
    probe: int = 4,
    metric: CostMetric = "completion_tokens",
    bins: int = 3,
    min_bin: int = 5,
    holdout: float = 0.3,
    seed: int = 0,
    arm_settings: ArmSettings | None = None,
) -> Calibration:
    """Fit a policy to an evaluation's records (see the module docstring).

    Args:
        records: every record of the run folder.
        target_compute: the most mean compute per problem (in ``metric``'s unit).
        target_accuracy: the least accuracy, as a fraction (give exactly one target).
        probe: the probe size; best-of-N records at this N are the probe.
        metric: what compute means (generated tokens by default).
        bins: most bins per signal.
        min_bin: fewest fitting problems per bin (smaller bins merge into a neighbour).
        holdout: share of the problems held out of the fit.
        seed: seeds the split.
        arm_settings: the settings each strategy ran with in the evaluation, written into the
            policy's arms (none: the strategies' defaults).

    Raises:
        ConfigError: no or both targets, or records that cannot be calibrated on.
    """
    if (target_compute is None) == (target_accuracy is None):
        raise ConfigError("give exactly one target: target_compute=... or target_accuracy=...")
    if target_accuracy is not None and not 0.0 < target_accuracy <= 1.0:
        raise ConfigError(f"target_accuracy={target_accuracy}: give a fraction such as 0.8")
    if target_compute is not None and not (math.isfinite(target_compute) and target_compute > 0):
        raise ConfigError(f"target_compute={target_compute}: must be a positive number")
    if bins < 1 or min_bin < 1:
        raise ConfigError("bins and min_bin must be at least 1")
    options, rows, notes = problem_outcomes(records, probe=probe, metric=metric)
    fit_rows, held_rows = split_problems(rows, holdout=holdout, seed=seed)
    if not fit_rows or not held_rows:
        raise ConfigError(
            f"{len(rows)} problems are too few to fit on and hold some out: evaluate more"
        )
    target = _Target(target_compute, target_accuracy)
    problems = len(fit_rows)
    best_signal: Signal | None = None
    best_cuts: list[float] = []
    best_state = _best_assignment([fit_rows], options, target)
    best_missing = False
    for signal in SIGNALS:
        values = [v for r in fit_rows if (v := r.signals.value(signal)) is not None]
        if not values:
            continue
        cuts, groups, missing = _binned(fit_rows, signal, _cuts(values, bins), min_bin)
        state = _best_assignment([*groups, *([missing] if missing else [])], options, target)
        if target.key(state[1], state[0], problems) > target.key(
            best_state[1], best_state[0], problems
        ):
            best_signal, best_cuts, best_state, best_missing = signal, cuts, state, bool(missing)

    def arm(option: Option) -> PolicyArm:
        if option == STOP:
            return PolicyArm(strategy="stop")
        settings = arm_settings(option.strategy, option.n) if arm_settings else {}
        return PolicyArm(strategy=option.strategy, n=option.n, settings=settings)

    fixed = {
        o: (_evaluate(r.outcomes[o] for r in fit_rows), _evaluate(r.outcomes[o] for r in held_rows))
        for o in options
    }
    if target_compute is not None and STOP in fixed:
        probe_cost = fixed[STOP][0].mean_cost
        if target_compute < probe_cost:
            notes.append(
                f"the target compute ({target_compute:g}) is below the probe's own mean cost "
                f"({probe_cost:.1f} {metric}): every adaptive search pays for its probe, so no "
                f"policy can meet it; raise the target or calibrate with a smaller --probe"
            )
    best_fixed = max(
        options,
        key=lambda o: target.key(fixed[o][0].correct, fixed[o][0].mean_cost * problems, problems),
    )
    chosen = list(best_state[2])
    otherwise = chosen.pop() if best_missing else best_fixed
    if best_signal is None:
        draft = AdaptivePolicy(probe=probe, otherwise=arm(chosen[0]))
    else:
        draft = AdaptivePolicy(
            probe=probe,
            bins=_bins(best_signal, best_cuts, chosen, arm),
            otherwise=arm(otherwise),
        )
    fit_eval, held_eval = evaluate_policy(draft, fit_rows), evaluate_policy(draft, held_rows)
    reached = target.key(fit_eval.correct, fit_eval.mean_cost * problems, problems)[0] == 1
    info = {
        "target_compute": target_compute,
        "target_accuracy": target_accuracy,
        "metric": metric,
        "signal": best_signal,
        "seed": seed,
        "holdout": holdout,
        "fit": fit_eval.to_dict(),
        "held_out": held_eval.to_dict(),
        "best_single_arm": {
            "arm": best_fixed.label,
            "fit": fixed[best_fixed][0].to_dict(),
            "held_out": fixed[best_fixed][1].to_dict(),
        },
    }
    policy = draft.model_copy(update={"calibration": info})
    return Calibration(policy, best_signal, fit_eval, held_eval, fixed, best_fixed, reached, notes)
