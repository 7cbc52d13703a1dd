"""Compute-optimal search: probe the problem, then spend what its difficulty calls for.

Snell et al. (2024) found that choosing the strategy and the budget per problem, from its
estimated difficulty, is several times as compute-efficient as best-of-N at one fixed N: easy
problems are settled by a few samples and a vote, hard ones gain from a verifier-guided search.
:class:`Adaptive` does that in one plan for the driver:

1. **probe**: ``k`` whole solutions (``probe``, 4 by default), scored by the verifier;
2. **signals** (:class:`~sal_plugins.strategies._policy.ProbeSignals`): the share of the samples
   in the largest group of equivalent answers (``agreement``), the share stating an answer at
   all (``stated``), and the best and mean verifier score (``best_score``, ``mean_score``);
3. **decision**: the policy's first bin whose conditions hold picks the arm: stop and answer from
   the probe, continue best-of-N (the probe's samples count toward its N and vote in its
   selection), or run another strategy (beam search, DVTS, particle filtering, ...) through its
   own plan. The probe's candidates stay in every arm's final selection.

The policy without calibration (``probe=4``):

=========  ==============================================  ======================================
bin        signals                                         arm
=========  ==============================================  ======================================
easy       agreement >= 1.0 and mean score >= 0.5           stop: the probe's weighted vote answers
medium     agreement >= 0.5 and stated >= 0.5               best_of_n n=16 (12 more samples)
hard       otherwise                                       beam_search n=16, beam_width=4
=========  ==============================================  ======================================

A calibrated policy (``sal calibrate RUN_FOLDER``, see :mod:`sal_plugins.eval.calibrate`) fits
the bins to a solver and verifier; the best choice depends on both (Liu et al., 2025). The
decision, the signals it rests on and the arm run are recorded once, as a
:class:`~sal_plugins.tree.Choice` of the result (``result.tree.choices``,
``result.summary()["choices"]``) announced by a :class:`~sal_plugins.events.ChoiceMade` event
as soon as it is made.

The probe's work is reused: its samples vote when best-of-N continues (they count toward its N),
and stay candidates of every other arm. Beam search, DVTS and particle filtering also let them
ride along when they were scored step by step: a sample's first step is one of the first
round's candidates, and a prefix that survives continues with the sample's next step for free
(see :mod:`~sal_plugins.strategies._reuse`).

Cost: the probe is one generation request for ``k`` samples (``k`` calls on a solver that fans
``n`` out) and one verifier call. Then the arm's own cost: nothing for ``stop``; for
``best_of_n`` at N, one request for the ``N - k`` samples still missing and one verifier call;
for another strategy, what that strategy costs at its N (see its docstring). The budget covers
the probe and the arm together: when a cap is reached the search ends with the best candidate so
far, the probe's included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from sal_plugins.answers import warm_up_equivalence
from sal_plugins.errors import ConfigError
from sal_plugins.plan import Expand, Outcome, Plan, Score
from sal_plugins.strategies._policy import (
    SIGNALS,
    AdaptivePolicy,
    Decision,
    PolicyArm,
    PolicyBin,
    ProbeSignals,
    Range,
    Signal,
    default_policy,
    probe_signals,
)
from sal_plugins.strategies._selection import select
from sal_plugins.strategies.base import SearchStrategy
from sal_plugins.tree import Choice, SearchTree

__all__ = [
    "SIGNALS",
    "Adaptive",
    "AdaptivePolicy",
    "Decision",
    "PolicyArm",
    "PolicyBin",
    "ProbeSignals",
    "Range",
    "Signal",
    "default_policy",
    "probe_signals",
]


def _shifted(plan: Plan, by: int) -> Plan:
    """``plan`` with every request's round moved ``by`` later (the probe was round 0)."""
    try:
        batch = next(plan)
        while True:
            results = yield [replace(request, round=request.round + by) for request in batch]
            batch = plan.send(results)
    except StopIteration as stop:
        outcome: Outcome = stop.value
        return outcome
    finally:
        plan.close()


class Adaptive(SearchStrategy):
    """Probe a problem with a few samples, then stop, continue best-of-N, or search harder.

    See the module docstring for the plan, the default policy and the cost.

    Args:
        policy: an :class:`~sal_plugins.strategies._policy.AdaptivePolicy`, the path of a policy
            file (JSON, as ``sal calibrate`` writes), or the policy as a mapping; the default
            policy when unset.
        probe: samples of the probe (default: the policy's, 4). A calibrated policy was fitted
            to its own probe size, so another one is refused.
        n: the most samples the chosen arm may use; an arm asking for more runs at ``n`` (its
            ``beam_width`` lowered to divide it where needed). ``None``: the policy's N.
        max_steps: ``max_steps`` of step-wise arms whose policy settings give none.
        **kwargs: the shared settings of :class:`~sal_plugins.strategies.base.SearchStrategy`;
            every arm runs with them. The default policy's arms need a verifier.

    Example:
        >>> search = Adaptive(solver=solver, verifier=prm, seed=0)
        >>> result = search.run("What is 23 + 48?")
        >>> result.tree.choices[0].because  # doctest: +SKIP
        "probe of 4: agreement 1.00, ...; bin 'easy' (agreement >= 1 and mean_score >= 0.5)"
    """

    name: ClassVar[str] = "adaptive"

    policy: AdaptivePolicy | str | Path = Field(default_factory=default_policy)
    probe: int | None = Field(default=None, gt=0)
    n: int | None = Field(default=None, gt=0)
    max_steps: int | None = Field(default=None, gt=0)

    @field_validator("policy", mode="before")
    @classmethod
    def _read_policy(cls, value: Any) -> Any:
        if isinstance(value, str | Path):
            return AdaptivePolicy.load(value)
        if isinstance(value, dict):
            return AdaptivePolicy.from_value(value, source="Adaptive(policy=...)")
        return value

    @property
    def active_policy(self) -> AdaptivePolicy:
        """The policy in force: ``policy``, read from its file when it was given as a path.

        Validation already reads files; this also covers a path set by ``model_copy(update=...)``,
        which skips validation.
        """
        if isinstance(self.policy, AdaptivePolicy):
            return self.policy
        return AdaptivePolicy.load(self.policy)

    @model_validator(mode="after")
    def _check_arms(self) -> Adaptive:
        if (
            self.probe is not None
            and self.probe != self.active_policy.probe
            and self.active_policy.calibration is not None
        ):
            raise ConfigError(
                f"Adaptive(probe={self.probe}): the policy was calibrated with a probe of "
                f"{self.active_policy.probe} samples; drop probe=... or calibrate again with --probe "
                f"{self.probe}"
            )
        for bin_name, arm in self.active_policy.arms():
            if arm.stops:
                continue
            try:
                self.arm_strategy(self.fitted(arm)[0])
            except ConfigError as error:
                raise ConfigError(
                    f"Adaptive policy, bin {bin_name!r} ({arm.describe()}): {error}"
                ) from None
        return self

    @property
    def probe_size(self) -> int:
        """Samples of the probe in force."""
        return self.probe if self.probe is not None else self.active_policy.probe

    def fitted(self, arm: PolicyArm) -> tuple[PolicyArm, str]:
        """``arm`` within this search's ``n`` cap, and a note saying if it was lowered."""
        if arm.stops or arm.n is None or self.n is None or arm.n <= self.n:
            return arm, ""
        from sal_plugins.strategies.build import strategy_class

        field = strategy_class(arm.strategy).model_fields.get("beam_width")
        settings = dict(arm.settings)
        n = self.n
        if field is not None:
            width = min(int(settings.get("beam_width", field.default)), n)
            n -= n % width
            settings["beam_width"] = width
        return arm.model_copy(update={"n": n, "settings": settings}), f" (capped from n={arm.n})"

    def arm_strategy(self, arm: PolicyArm, *, n: int | None = None) -> SearchStrategy:
        """The strategy an arm runs, with this search's shared settings.

        Raises:
            ConfigError: the arm cannot run as configured (e.g. beam search without a verifier).
        """
        from sal_plugins.strategies.build import strategy_class

        cls = strategy_class(arm.strategy)
        settings: dict[str, Any] = dict(arm.settings)
        if self.max_steps is not None and "max_steps" in cls.model_fields:
            settings.setdefault("max_steps", self.max_steps)
        shared = {name: getattr(self, name) for name in SearchStrategy.model_fields}
        return cls(**shared, **settings, n=n if n is not None else arm.n)

    def signals_of(self, tree: SearchTree, candidates: Sequence[int]) -> ProbeSignals:
        """The probe signals of ``candidates`` (node ids), out of ``probe_size`` samples."""
        signals, reasons = probe_signals(
            [tree.answer_of(i) for i in candidates],
            [tree[i].score for i in candidates],
            self.probe_size,
        )
        for reason in reasons:
            tree.note(f"some answers were compared as normalised strings: {reason}")
        return signals

    def plan(self, problem: str, tree: SearchTree) -> Plan:
        """Probe, decide, and stop or run the chosen arm's plan (see the module docstring)."""
        warm_up_equivalence()  # math-verify loads while the model generates
        k = self.probe_size
        results = yield [Expand(parent=0, n=k, round=0, to_end=True, kind="solution")]
        probe = [i for ids in results for i in ids if tree[i].steps]
        if probe and self.scorer is not None:
            yield [Score(nodes=tuple(probe), round=0)]
        finished = [i for i in probe if tree[i].finished]
        pool = finished or probe
        signals = self.signals_of(tree, pool)
        decision = self.active_policy.decide(signals)
        arm, capped = self.fitted(decision.arm)
        continues_probe = arm.strategy == "best_of_n"
        if arm.stops or (continues_probe and (arm.n or 0) <= k):
            tree.choose(self._choice(signals, decision, arm, capped, ""))
            return Outcome(self.rank(tree, pool), "finished" if finished else "max_steps")
        if continues_probe:
            strategy = self.arm_strategy(arm, n=(arm.n or k) - k)
            reuse = f"; the probe's {len(pool)} samples vote with {(arm.n or k) - k} more"
        else:
            strategy = self.arm_strategy(arm)
            riding = strategy.reusable_samples(tree, pool)
            reuse = f"; the probe's {len(pool)} samples stay candidates" + (
                f", {len(riding)} of them riding along step by step" if riding else ""
            )
        tree.choose(self._choice(signals, decision, arm, capped, reuse))
        outcome = yield from _shifted(strategy.plan_reusing(problem, tree, pool), by=1)
        candidates = list(dict.fromkeys([*outcome.ranked, *pool]))
        done = [i for i in candidates if tree[i].finished]
        return replace(outcome, ranked=strategy.rank(tree, done or candidates))

    def _choice(
        self, signals: ProbeSignals, decision: Decision, arm: PolicyArm, capped: str, reuse: str
    ) -> Choice:
        return Choice(
            round=0,
            choice=f"{arm.describe()}{capped}{reuse}",
            because=(
                f"probe of {signals.samples}: {signals.describe()}; bin {decision.bin!r} "
                f"({decision.because})"
            ),
            signals={name: signals.value(name) for name in SIGNALS},
        )

    def rank(self, tree: SearchTree, node_ids: Sequence[int]) -> list[int]:
        """Order the probe's candidates: weighted vote with a verifier, majority without."""
        by_score = super().rank(tree, node_ids)
        return select(tree, by_score, "weighted" if self.verifier is not None else "majority")
