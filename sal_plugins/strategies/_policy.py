"""The adaptive search's policy: probe signals, difficulty bins, and the arm each bin runs.

A probe of k whole solutions tells how hard a problem is for this solver and verifier
(:class:`ProbeSignals`): how much its answers agree, how many state an answer at all, and what
the verifier thinks of them. An :class:`AdaptivePolicy` maps those signals to an arm
(:class:`PolicyArm`: stop and answer, or a strategy at some ``n``) through ordered bins, the
first whose conditions hold deciding. Policies are small JSON files, written by ``sal
calibrate`` or by hand, and validated on load with errors that name the file and the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sal_plugins.answers import group_equivalent
from sal_plugins.errors import ConfigError

__all__ = [
    "SIGNALS",
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

Signal = Literal["agreement", "stated", "best_score", "mean_score"]
"""A probe signal's name (see :class:`ProbeSignals`)."""

SIGNALS: tuple[Signal, ...] = ("agreement", "stated", "best_score", "mean_score")

STOP = "stop"
"""The arm that answers from the probe without searching further."""

_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


@dataclass(frozen=True)
class ProbeSignals:
    """What a probe of ``samples`` whole solutions says about a problem's difficulty.

    Attributes:
        samples: solutions the probe asked for (the denominator of the shares below).
        agreement: share of the samples in the largest group of equivalent answers.
        stated: share of the samples with an answer at all.
        best_score: the highest verifier score among them (``None``: none was scored).
        mean_score: their mean verifier score (``None``: none was scored).
    """

    samples: int
    agreement: float
    stated: float
    best_score: float | None
    mean_score: float | None

    def value(self, signal: Signal) -> float | None:
        """One signal by name."""
        found: float | None = getattr(self, signal)
        return found

    def describe(self) -> str:
        """The signals in a few words, e.g. ``agreement 0.75, stated 1.00, best score 0.90``."""
        parts = []
        for signal in SIGNALS:
            value = self.value(signal)
            shown = "n/a" if value is None else f"{value:.2f}"
            parts.append(f"{signal.replace('_', ' ')} {shown}")
        return ", ".join(parts)


def probe_signals(
    answers: Sequence[str | None],
    scores: Sequence[float | None],
    samples: int,
    *,
    time_budget_s: float = 1.0,
) -> tuple[ProbeSignals, tuple[str, ...]]:
    """The signals of a probe's candidates, and why any answers were compared as strings.

    Args:
        answers: each candidate's final answer (``None``: it states none).
        scores: each candidate's aggregated verifier score (``None``: unscored).
        samples: solutions the probe asked for; candidates lost to failures count against the
            shares.
        time_budget_s: the most answer grouping may take (see
            :func:`~sal_plugins.answers.group_equivalent`).
    """
    if samples < 1:
        raise ValueError("a probe has at least one sample")
    groups = group_equivalent(answers, time_budget_s=time_budget_s)
    largest = max((len(group) for group in groups), default=0)
    known = [s for s in scores if s is not None]
    signals = ProbeSignals(
        samples=samples,
        agreement=largest / samples,
        stated=sum(a is not None for a in answers) / samples,
        best_score=max(known) if known else None,
        mean_score=sum(known) / len(known) if known else None,
    )
    return signals, groups.reasons


class Range(BaseModel):
    """A condition on one signal: ``at_least <= value < below`` (either end may be open)."""

    model_config = _CONFIG

    at_least: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _check_order(self) -> Range:
        if self.at_least is not None and self.below is not None and self.at_least >= self.below:
            raise ValueError(
                f"at_least ({self.at_least}) must be smaller than below ({self.below}), or the "
                "range holds no value"
            )
        return self

    def holds(self, value: float | None) -> bool:
        """Whether ``value`` lies in the range (a missing signal lies in none)."""
        if value is None:
            return False
        low_ok = self.at_least is None or value >= self.at_least
        return low_ok and (self.below is None or value < self.below)

    def describe(self, signal: str) -> str:
        """The condition in words, e.g. ``agreement >= 0.5``."""
        parts = []
        if self.at_least is not None:
            parts.append(f"{signal} >= {self.at_least:g}")
        if self.below is not None:
            parts.append(f"{signal} < {self.below:g}")
        return " and ".join(parts) or f"{signal} known"


class PolicyArm(BaseModel):
    """What to do: stop and answer from the probe, or run a strategy at ``n``.

    Attributes:
        strategy: ``"stop"``, or a registered strategy name (``"best_of_n"``, ``"beam_search"``,
            ``"dvts"``, ``"particle_filter"``, ...). A ``best_of_n`` arm reuses the probe's
            samples: they count toward its ``n`` and vote in its selection.
        n: the strategy's ``n`` (not taken by ``"stop"``).
        settings: the strategy's own other settings (``beam_width``, ``max_steps``,
            ``lookahead``, ``selection``, ...). The settings every strategy shares (temperature,
            max_tokens, aggregation, ...) are the adaptive search's and cannot be set per arm.
    """

    model_config = _CONFIG

    strategy: str = Field(min_length=1)
    n: int | None = Field(default=None, gt=0)
    settings: dict[str, bool | int | float | str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_strategy(self) -> PolicyArm:
        if self.strategy == STOP:
            if self.n is not None or self.settings:
                raise ValueError("a 'stop' arm takes no n and no settings")
            return self
        from sal_plugins.strategies.base import SearchStrategy
        from sal_plugins.strategies.build import strategy_class, strategy_settings

        try:
            cls = strategy_class(self.strategy)
        except ConfigError as error:
            raise ValueError(f"{error}, or 'stop'") from None
        if cls.name == "adaptive":
            raise ValueError("an arm cannot be the adaptive search itself")
        if self.n is None:
            raise ValueError(f"a {cls.name} arm needs n (how many samples it draws)")
        own = [s for s in strategy_settings(cls) if s not in SearchStrategy.model_fields]
        for name in self.settings:
            if name == "n":
                raise ValueError("give n beside settings, not inside them")
            if name not in own:
                raise ValueError(
                    f"settings.{name}: not a setting of {cls.name} an arm may choose (it takes "
                    f"{', '.join(s for s in own if s != 'n') or 'none'}; shared settings such as "
                    "temperature belong to the adaptive search)"
                )
        return self

    @property
    def stops(self) -> bool:
        """Whether this arm answers from the probe."""
        return self.strategy == STOP

    def describe(self) -> str:
        """The arm in a few words, e.g. ``beam_search n=16 (beam_width=4)``."""
        if self.stops:
            return "stop and answer from the probe"
        extra = ", ".join(f"{k}={v}" for k, v in sorted(self.settings.items()))
        return f"{self.strategy} n={self.n}" + (f" ({extra})" if extra else "")


class PolicyBin(BaseModel):
    """A difficulty bin: conditions on the probe's signals (all must hold) and its arm."""

    model_config = _CONFIG

    name: str = Field(min_length=1)
    when: dict[Signal, Range] = Field(default_factory=dict)
    then: PolicyArm

    def holds(self, signals: ProbeSignals) -> bool:
        """Whether every condition holds for ``signals``."""
        return all(condition.holds(signals.value(s)) for s, condition in self.when.items())

    def describe(self) -> str:
        """The conditions in words (``always`` when there are none)."""
        return " and ".join(c.describe(s) for s, c in self.when.items()) or "always"


@dataclass(frozen=True)
class Decision:
    """What a policy decided for one probe, and why.

    Attributes:
        bin: the bin whose conditions held (``"otherwise"`` when none did).
        arm: the arm it runs.
        because: the conditions that held, in words.
    """

    bin: str
    arm: PolicyArm
    because: str


class AdaptivePolicy(BaseModel):
    """Difficulty bins over probe signals, each with the arm to run; the first match decides.

    Attributes:
        version: the file format (1).
        probe: samples of the probe the bins were set for (their shares depend on it).
        bins: the bins, in the order they are tried.
        otherwise: the arm when no bin matches (a missing score matches no score condition).
        calibration: what ``sal calibrate`` measured when it wrote the policy (informational).
    """

    model_config = _CONFIG

    version: Literal[1] = 1
    probe: int = Field(default=4, gt=0)
    bins: list[PolicyBin] = Field(default_factory=list)
    otherwise: PolicyArm
    calibration: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check_names(self) -> AdaptivePolicy:
        names = [b.name for b in self.bins]
        repeated = sorted({n for n in names if names.count(n) > 1} | ({"otherwise"} & set(names)))
        if repeated:
            raise ValueError(f"bin names must be distinct and not 'otherwise': {repeated}")
        return self

    def decide(self, signals: ProbeSignals) -> Decision:
        """The first bin whose conditions hold for ``signals``, or ``otherwise``."""
        for candidate in self.bins:
            if candidate.holds(signals):
                return Decision(candidate.name, candidate.then, candidate.describe())
        return Decision("otherwise", self.otherwise, "no bin matched")

    def arms(self) -> list[tuple[str, PolicyArm]]:
        """Every arm the policy can choose, with its bin's name."""
        return [(b.name, b.then) for b in self.bins] + [("otherwise", self.otherwise)]

    def to_json(self) -> str:
        """The policy as the JSON a policy file holds."""
        return self.model_dump_json(indent=2, exclude_none=True) + "\n"

    @classmethod
    def from_value(cls, value: Any, *, source: str = "policy") -> AdaptivePolicy:
        """A policy from a mapping (parsed JSON), with errors that name ``source`` and the field.

        Raises:
            ConfigError: the value is not a valid policy.
        """
        if isinstance(value, AdaptivePolicy):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"{source}: expected a JSON object with 'bins' and 'otherwise', got "
                f"{type(value).__name__}"
            )
        try:
            return cls.model_validate(dict(value))
        except ValidationError as error:
            raise ConfigError(_describe(source, error)) from None

    @classmethod
    def load(cls, path: str | Path) -> AdaptivePolicy:
        """Read and validate a policy file.

        Raises:
            ConfigError: the file is missing, is not JSON, or is not a valid policy; the message
                names the file and the field.
        """
        file = Path(path)
        source = f"policy file {file}"
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"{source} not found: pass the path of a policy written by `sal calibrate`, or "
                "leave the policy unset for the default one"
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{source} cannot be read ({type(error).__name__})") from None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"{source} is not valid JSON (line {error.lineno}, column {error.colno}: "
                f"{error.msg}): write it again with `sal calibrate ... -o {file}` or fix it"
            ) from None
        return cls.from_value(value, source=source)


def _describe(source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        elif item["type"] == "missing":
            message = "required field is missing"
        lines.append(f"{where}: {message}")
    return f"{source} is not a valid policy: " + "; ".join(lines)


def default_policy() -> AdaptivePolicy:
    """The policy used without calibration (the table in :mod:`sal_plugins.strategies.adaptive`)."""
    return AdaptivePolicy(
        probe=4,
        bins=[
            PolicyBin(
                name="easy",
                when={"agreement": Range(at_least=1.0), "mean_score": Range(at_least=0.5)},
                then=PolicyArm(strategy=STOP),
            ),
            PolicyBin(
                name="medium",
                when={"agreement": Range(at_least=0.5), "stated": Range(at_least=0.5)},
                then=PolicyArm(strategy="best_of_n", n=16),
            ),
        ],
        otherwise=PolicyArm(strategy="beam_search", n=16, settings={"beam_width": 4}),
    )
