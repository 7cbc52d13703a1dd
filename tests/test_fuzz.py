"""Property tests (hypothesis) of the boundaries users feed: configuration, problems, answers.

The properties:

* configuration: ``sal.Budget(...)`` and the strategies' keyword arguments either build a sane
  object or raise :class:`~sal_plugins.errors.ConfigError`; nothing else escapes;
* problems: a search either runs or raises :class:`~sal_plugins.errors.InputError` (for a problem
  that is not a string, is blank, or holds a lone surrogate);
* searches on the scripted fakes, with failing solvers and verifiers that return garbage, either
  return a :class:`~sal_plugins.results.SearchResult` or raise
  :class:`~sal_plugins.errors.SearchError`;
* answers: ``sal.extract_answer`` never raises, and every ``sal.answers_equivalent`` call returns
  a bool within its wall-clock bound.

Every test is bounded (``max_examples``) so the file runs in seconds; the example database is off
so a run does not depend on the runs before it.
"""

from __future__ import annotations

import json
import math
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, reject, settings
from hypothesis import strategies as st

import sal_plugins as sal
from sal_plugins.answers import DEFAULT_TIMEOUT_S
from sal_plugins.errors import SolverError, TransientError, VerifierError
from sal_plugins.solvers import GenerationRequest, ScriptedSolver
from sal_plugins.strategies import (
    ABMCTS,
    DVTS,
    STRATEGIES,
    Adaptive,
    BeamSearch,
    BestOfN,
    ParticleFilter,
    SearchStrategy,
    SelfRevision,
)
from sal_plugins.verifiers import FunctionVerifier, ScriptedVerifier

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

COMPARISON_BOUND_S = DEFAULT_TIMEOUT_S
"""The most one ``answers_equivalent`` call may take (answers.py exposes no bound of its own)."""

SCHEDULING_SLACK_S = 1.5
"""Allowance on top of the bound for a loaded two-core machine."""

# --- values ---------------------------------------------------------------------------------

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
# Any code point, lone surrogates included, and those often enough to matter: hypothesis draws
# them from the whole range only rarely.
ANY_CHAR = st.one_of(st.characters(codec=None, exclude_categories=()), SURROGATES)
ANY_TEXT = st.text(ANY_CHAR, max_size=40)

NUMBERS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=-3, max_value=20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.0, 2.5, -1.0, math.nan, math.inf, -math.inf]),
)
"""Numbers as users mistype them: bools, huge and negative ints, fractions, NaN, infinities."""

CONFIG_VALUES = st.one_of(
    st.none(),
    NUMBERS,
    ANY_TEXT,
    st.sampled_from(["naive", "weighted", "majority", "last", "min", "prod", "mean", "3"]),
    st.lists(st.integers(), max_size=2),
)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- budgets --------------------------------------------------------------------------------


def _valid_cap(name: str, value: object) -> bool:
    """The documented contract of each ``Budget`` field (``None``: no cap)."""
    if value is None:
        return True
    if name in ("max_calls", "max_tokens"):
        return _whole(value) and value > 0  # type: ignore[operator]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and math.isfinite(value) and value > 0  # type: ignore[arg-type,operator]


CAP_NAMES = ("max_calls", "max_tokens", "max_cost", "deadline_s")


@FUZZ
@given(caps=st.fixed_dictionaries({}, optional={name: CONFIG_VALUES for name in CAP_NAMES}))
@example(caps={"max_calls": True})
@example(caps={"max_calls": 2.5})
@example(caps={"max_tokens": 2.0})
@example(caps={"deadline_s": math.nan})
@example(caps={"max_cost": math.inf})
def test_budget_builds_or_raises_config_error(caps: dict[str, Any]) -> None:
    valid = all(_valid_cap(name, value) for name, value in caps.items())
    if not valid:
        with pytest.raises(sal.ConfigError, match=r"Budget\("):
            sal.Budget(**caps)
        return
    budget = sal.Budget(**caps)
    assert all(getattr(budget, name) == value for name, value in caps.items())
    # A valid budget composes with any other valid one.
    assert (budget & sal.Budget(max_calls=5)).max_calls == min(5, caps.get("max_calls") or 5)


# --- strategy configuration -----------------------------------------------------------------

# Count fields and their smallest accepted value (those that default to None may also be None).
COMMON_COUNTS = {"max_tokens": 1, "max_concurrency": 1, "max_retries": 0}
COUNTS: dict[type[SearchStrategy], dict[str, int]] = {
    BestOfN: {"n": 1, "chunk_size": 1, **COMMON_COUNTS},
    BeamSearch: {"n": 1, "beam_width": 1, "max_steps": 1, "lookahead": 0, **COMMON_COUNTS},
    DVTS: {"n": 1, "beam_width": 1, "max_steps": 1, "lookahead": 0, **COMMON_COUNTS},
    SelfRevision: {"n": 1, "max_revisions": 0, **COMMON_COUNTS},
    ParticleFilter: {"n": 1, "max_steps": 1, "iterations": 1, **COMMON_COUNTS},
    ABMCTS: {"n": 1, "batch_size": 1, "max_steps": 1, **COMMON_COUNTS},
    Adaptive: {"probe": 1, "n": 1, "max_steps": 1, **COMMON_COUNTS},
}
OTHER_FIELDS = {
    BestOfN: ["selection", "early_stop", "sal_compat"],
    BeamSearch: ["dedup", "selection", "sort_completed", "sal_compat"],
    DVTS: ["selection", "stop_at_boxed", "sal_compat"],
    SelfRevision: ["threshold", "revision_prompt"],
    ParticleFilter: ["weight_temperature", "weighting", "resampling", "selection"],
    ABMCTS: ["selection", "distribution", "prior_reward", "finish_action"],
    Adaptive: ["policy"],
}
COMMON_FIELDS = [
    "seed",
    "top_p",
    "system_prompt",
    "step_delimiter",
    "temperature",
    "aggregation",
    "budget",
    "not_a_setting",
]
STRATEGY_CLASSES = list(COUNTS)


def test_every_registered_strategy_is_fuzzed() -> None:
    assert set(STRATEGY_CLASSES) == set(STRATEGIES.values())


def _scripted_pair() -> tuple[ScriptedSolver, ScriptedVerifier]:
    solver = ScriptedSolver(["2 + 2 = 4\n\nThe answer is $\\boxed{4}$."])
    return solver, ScriptedVerifier(lambda problem, step: 0.5, score_range=(0.0, 1.0))


def _accepted_config_is_sane(strategy: SearchStrategy) -> None:
    """What a strategy that was built must hold, whatever it was given."""
    for name, least in COUNTS[type(strategy)].items():
        value = getattr(strategy, name)
        if value is None and type(strategy).model_fields[name].default is None:
            continue  # an optional count, left unset
        assert _whole(value) and value >= least, f"{name}={value!r} was accepted"
    assert math.isfinite(strategy.temperature) and 0.0 <= strategy.temperature <= 2.0
    assert strategy.top_p is None or 0.0 < strategy.top_p <= 1.0, f"top_p={strategy.top_p!r}"
    assert strategy.step_delimiter
    if isinstance(strategy, SelfRevision):
        # A NaN threshold can never be met or missed: no score compares with it.
        assert not math.isnan(strategy.threshold), "threshold=nan was accepted"


@st.composite
def strategy_settings(draw: st.DrawFn) -> tuple[type[SearchStrategy], dict[str, Any]]:
    """A strategy class and keyword arguments for it: its own names, and one it does not know."""
    cls = draw(st.sampled_from(STRATEGY_CLASSES))
    names = [*COUNTS[cls], *OTHER_FIELDS[cls], *COMMON_FIELDS]
    return cls, draw(st.dictionaries(st.sampled_from(names), CONFIG_VALUES, max_size=4))


@FUZZ
@given(case=strategy_settings())
@example(case=(SelfRevision, {"threshold": math.nan}))
@example(case=(BeamSearch, {"n": -1, "temperature": math.inf}))
@example(case=(BestOfN, {"n": 2.5, "selection": "best"}))
@example(case=(DVTS, {"step_delimiter": "", "not_a_setting": 1}))
def test_strategy_config_builds_or_raises_config_error(
    case: tuple[type[SearchStrategy], dict[str, Any]],
) -> None:
    cls, settings_ = case
    solver, verifier = _scripted_pair()
    try:
        strategy = cls(solver=solver, verifier=verifier, **settings_)
    except sal.ConfigError:
        return
    _accepted_config_is_sane(strategy)


@FUZZ
@given(
    cls=st.sampled_from(STRATEGY_CLASSES),
    data=st.data(),
    value=st.booleans(),
)
def test_strategy_counts_reject_bools(
    cls: type[SearchStrategy], data: st.DataObject, value: bool
) -> None:
    """``n=True`` is a mistake, as ``Budget(max_calls=True)`` is; it must not run as ``n=1``."""
    name = data.draw(st.sampled_from(sorted(COUNTS[cls])), label="field")
    solver, verifier = _scripted_pair()
    with pytest.raises(sal.ConfigError, match=name):
        cls(solver=solver, verifier=verifier, **{name: value})


# --- problems -------------------------------------------------------------------------------


def _huge(text: str, times: int) -> str:
    return (text or "x") * times


PROBLEMS = st.one_of(
    ANY_TEXT,
    st.text(st.sampled_from(" \t\n\r\x0b\x0c\u00a0\u2003\u3000\u200b\ufeff"), max_size=8),
    st.builds(_huge, st.text(min_size=1, max_size=8), st.integers(10_000, 120_000)),
    st.builds(lambda s, c: s + c, ANY_TEXT, SURROGATES),
    st.none(),
    st.integers(),
    st.binary(max_size=8),
)


def _valid_problem(problem: object) -> bool:
    if not isinstance(problem, str) or not problem.strip():
        return False
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in problem)


@FUZZ
@given(problem=PROBLEMS, cls=st.sampled_from(STRATEGY_CLASSES))
@example(problem="", cls=BestOfN)
@example(problem="\u3000\n", cls=BeamSearch)
@example(problem="What is 2 + 2?\ud800", cls=DVTS)
@example(problem="x" * 1_000_000, cls=SelfRevision)
def test_a_problem_runs_or_raises_input_error(problem: Any, cls: type[SearchStrategy]) -> None:
    solver, verifier = _scripted_pair()
    settings_: dict[str, Any] = {"n": 2} if cls is not SelfRevision else {"max_revisions": 1}
    if cls in (BeamSearch, DVTS):
        settings_ |= {"beam_width": 1, "max_steps": 3}
    if cls in (ParticleFilter, ABMCTS, Adaptive):
        settings_ |= {"max_steps": 3} | ({"batch_size": 2} if cls is ABMCTS else {})
    search = cls(solver=solver, verifier=verifier, seed=0, **settings_)
    if not _valid_problem(problem):
        with pytest.raises(sal.InputError, match="problem"):
            search.run(problem)
        return
    result = search.run(problem)
    assert result.problem == problem and result.answer == "4"


# --- searches on scripted fakes -------------------------------------------------------------

STEP = st.lists(
    # Printable text and some LaTeX, but no "^" or "!": exponent towers and factorials are the
    # answer comparisons that can run unbounded, and they are fuzzed on their own below, in a
    # sandbox process, rather than inside a search in this process.
    st.one_of(
        st.characters(codec="utf-8", exclude_characters="^!"),
        st.sampled_from(["\\boxed{", "}", "{", "$", "\\frac{1}{2}", "The answer is "]),
    ),
    max_size=12,
).map("".join)
SOLUTIONS = st.lists(st.lists(STEP, min_size=1, max_size=4), min_size=1, max_size=4)
SCORES = st.lists(
    st.one_of(st.floats(0.0, 1.0), st.sampled_from([math.nan, math.inf, -1.0, 2.0])),
    min_size=1,
    max_size=5,
)
ERRORS: list[Callable[[], Exception]] = [
    lambda: RuntimeError("boom"),
    lambda: ValueError("bad"),
    lambda: OverflowError("too big"),
    lambda: KeyError("missing"),
    lambda: SolverError("scripted failure", status_code=500),
    lambda: TransientError("scripted transient fault", status_code=503),
    lambda: VerifierError("scripted verifier failure", verifier="scripted"),
]
FUNCTION_RETURNS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.floats(0.0, 1.0), max_size=5),
    st.sampled_from([10**400, "high", None, [0.5, "x"], b"1", {"score": 1.0}]),
)


@dataclass
class FaultyFunction:
    """A user's scoring function that returns odd things or raises, by trajectory length."""

    returns: list[object]
    raises_every: int | None
    error: Callable[[], Exception]

    def __call__(self, problem: str, steps: list[str]) -> Any:
        if self.raises_every and len(steps) % self.raises_every == 0:
            raise self.error()
        return self.returns[len(steps) % len(self.returns)]


@st.composite
def searches(draw: st.DrawFn) -> tuple[SearchStrategy, sal.Budget | None]:
    """A small search of any strategy, over a solver and a verifier that may misbehave."""
    delimiter = draw(st.sampled_from(["\n\n", "\n", ". "]))
    texts = [delimiter.join(steps) for steps in draw(SOLUTIONS)]
    fail_calls = draw(st.sets(st.integers(1, 12), max_size=3))
    solver_error = draw(st.sampled_from(ERRORS))

    def fail(request: GenerationRequest, call: int) -> Exception | None:
        return solver_error() if call in fail_calls else None

    solver = ScriptedSolver(
        texts, revisions=draw(st.none() | st.just(texts[::-1])), honours_n=draw(st.booleans())
    )
    solver.fail = fail
    verifier: Any
    if draw(st.booleans()):
        scores = draw(SCORES)
        every = draw(st.none() | st.integers(1, 3))
        verifier = ScriptedVerifier(
            lambda problem, step: scores[len(step) % len(scores)],
            granularity=draw(st.sampled_from(["step", "outcome"])),
            score_range=draw(st.none() | st.just((0.0, 1.0))),
            fail_when=None if every is None else (lambda steps: len(steps) % every == 0),
            error=draw(st.sampled_from(ERRORS)),
        )
    else:
        verifier = FunctionVerifier(
            FaultyFunction(
                draw(st.lists(FUNCTION_RETURNS, min_size=1, max_size=3)),
                draw(st.none() | st.integers(1, 3)),
                draw(st.sampled_from(ERRORS)),
            ),
            score_range=draw(st.none() | st.just((0.0, 1.0))),
        )
    budget = draw(
        st.none()
        | st.builds(
            sal.Budget,
            max_calls=st.none() | st.integers(1, 20),
            max_tokens=st.none() | st.integers(1, 400),
            deadline_s=st.none() | st.floats(0.001, 5.0),
        )
    )
    common: dict[str, Any] = {
        "seed": draw(st.none() | st.integers(0, 2**32)),
        "step_delimiter": delimiter,
        "temperature": draw(st.floats(0.0, 2.0)),
        "aggregation": draw(st.sampled_from(["last", "min", "prod", "mean"])),
        # Retries would sleep through real back-off waits; one attempt keeps the fuzzing fast.
        "max_retries": 0,
        "max_concurrency": draw(st.integers(1, 4)),
    }
    cls = draw(st.sampled_from(STRATEGY_CLASSES))
    specific: dict[str, Any]
    if cls is BestOfN:
        specific = {
            "n": draw(st.integers(1, 6)),
            "selection": draw(st.sampled_from([None, "naive", "weighted", "majority"])),
            "early_stop": draw(st.sampled_from([None, True, False])),
            "chunk_size": draw(st.none() | st.integers(1, 3)),
        }
    elif cls is SelfRevision:
        specific = {
            "n": draw(st.integers(1, 3)),
            "max_revisions": draw(st.integers(0, 3)),
            "threshold": draw(st.floats(0.0, 1.0)),
        }
    else:
        width = draw(st.integers(1, 3))
        specific = {
            "beam_width": width,
            "n": width * draw(st.integers(1, 3)),
            "max_steps": draw(st.integers(1, 5)),
            "lookahead": draw(st.integers(0, 2)),
        }
        if cls is BeamSearch:
            specific["dedup"] = draw(st.booleans())
        else:
            specific["selection"] = draw(st.sampled_from(["naive", "weighted", "majority"]))
    try:
        strategy = cls(solver=solver, verifier=verifier, budget=budget, **common, **specific)
    except sal.ConfigError:
        # Some combinations are refused by design (early stopping needs a bounded score range);
        # building is fuzzed above, this test is about running.
        reject()
    return strategy, budget


@settings(FUZZ, max_examples=150)
@given(search=searches(), problem=st.text(min_size=1, max_size=30).filter(_valid_problem))
def test_a_search_on_fakes_returns_a_result_or_raises_search_error(
    search: tuple[SearchStrategy, sal.Budget | None], problem: str
) -> None:
    strategy, budget = search
    try:
        result = strategy.run(problem)
    except sal.SearchError as error:
        event("raised SearchError")
        assert error.result is None or isinstance(error.result, sal.SearchResult)
        if error.result is not None and budget is not None and budget.max_calls is not None:
            assert error.result.usage.calls <= budget.max_calls
        return
    assert isinstance(result, sal.SearchResult)
    event(f"{type(strategy).__name__} returned: {result.stop_reason}, {len(result.failures) > 0}")
    assert result.answer is None or isinstance(result.answer, str)
    assert result.completions and result.best is result.completions[0]
    # Scores that reach the result went through the verifier checks: none is NaN or infinite.
    assert all(c.score is None or math.isfinite(c.score) for c in result.completions)
    if budget is not None and budget.max_calls is not None:
        assert result.usage.calls <= budget.max_calls
    json.loads(result.tree.to_json())


# --- answers --------------------------------------------------------------------------------


@st.composite
def latex(draw: st.DrawFn, depth: int = 3) -> str:
    """Math answers as models write them, including the pathological ones (towers, factorials)."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(
            st.one_of(
                st.integers(-(10**12), 10**12).map(str),
                st.sampled_from(["x", "y", "\\pi", "e", "\\infty", "0.5", "1,000", "10"]),
            )
        )
    a = draw(latex(depth - 1))
    b = draw(latex(depth - 1))
    form = draw(
        st.sampled_from(
            [
                "{a}+{b}",
                "{a}-{b}",
                "{a}\\cdot {b}",
                "\\frac{{{a}}}{{{b}}}",
                "{a}^{{{b}}}",
                "\\sqrt{{{a}}}",
                "({a})",
                "{a}!",
                "{a}={b}",
                "\\{{{a}, {b}\\}}",
                "[{a}, {b})",
                "\\text{{{a}}}",
                "\\boxed{{{a}}}",
            ]
        )
    )
    return form.format(a=a, b=b)


def _tower(numbers: list[int], factorials: int) -> str:
    """``a^{b^{c}}`` with ``factorials`` marks after it: small to write, huge to evaluate."""
    text = "^{".join(str(n) for n in numbers) + "}" * (len(numbers) - 1)
    return text + "!" * factorials


# Answers that are expensive to evaluate, a minority of the draws: every one that still costs a
# bounded comparison its whole bound slows the test by that much.
EXPENSIVE = st.builds(
    _tower,
    st.lists(st.sampled_from([2, 3, 7, 9, 10, 99]), min_size=2, max_size=4),
    st.integers(0, 4),
)
ANSWERS = st.one_of(
    latex(),
    latex(),
    ANY_TEXT,
    st.text(st.sampled_from("0123456789^{}!\\frac()."), max_size=20),
    EXPENSIVE,
)


_WORKER = r"""
import json, resource, sys, time
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from sal_plugins.answers import answers_equivalent, warm_up_equivalence
warm_up_equivalence(wait_s=60)  # math-verify loads before the first timed call
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    a, b = json.loads(line)
    start = time.perf_counter()
    try:
        value = answers_equivalent(a, b)
        reply = {"bool": isinstance(value, bool), "value": repr(value)[:100]}
    except BaseException as error:
        try:
            reply = {"raised": f"{type(error).__name__}: {str(error)[:200]}"}
        except Exception:
            reply = {"raised": type(error).__name__}
    reply["elapsed"] = time.perf_counter() - start
    print(json.dumps(reply), flush=True)
"""


class ComparisonSandbox:
    """Runs ``answers_equivalent`` in a child process, so an unbounded comparison is killed.

    A comparison that runs away (a big-integer power holds the GIL, so no thread can time it
    out, and it may eat memory until the machine swaps) must fail the test, not hang it: the
    child has a memory cap and is killed once a comparison overruns. The time is measured in
    the child, around the call alone.
    """

    def __init__(self, worker: str = _WORKER, memory_cap: int = 3 * 1024**3) -> None:
        self.worker = worker
        self.memory_cap = memory_cap
        self.process: subprocess.Popen[bytes] | None = None
        self.buffer = b""

    def _start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.worker, str(self.memory_cap)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.buffer = b""
        ready = self._read_line(timeout=120.0)  # imports sympy and math-verify: slow when loaded
        assert ready is not None, "the comparison sandbox did not start"

    def _read_line(self, timeout: float) -> bytes | None:
        assert self.process is not None and self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None  # the child died (its memory cap, or a crash)
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def compare(self, a: str, b: str, limit: float) -> dict[str, Any]:
        """The child's reply, or ``{"hung": seconds}`` after killing a child that overran."""
        if self.process is None or self.process.poll() is not None:
            self._start()
        assert self.process is not None and self.process.stdin is not None
        # json escapes lone surrogates (\ud800) and reads them back as they were.
        self.process.stdin.write(json.dumps([a, b]).encode() + b"\n")
        self.process.stdin.flush()
        line = self._read_line(timeout=limit + 1.0)
        if line is None:
            self.close()
            return {"hung": limit + 1.0}
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ComparisonSandbox]:
    box = ComparisonSandbox()
    yield box
    box.close()


@settings(FUZZ, max_examples=30)
@given(a=ANSWERS, b=ANSWERS)
@example(a="10^{10^{10}}", b="1")
@example(a="10!!!!", b="3")
@example(a="\\frac{1}{2}", b="0.5")
@example(a="\ud800", b="\udfff")
def test_an_answer_comparison_returns_a_bool_within_its_bound(
    sandbox: ComparisonSandbox, a: str, b: str
) -> None:
    limit = COMPARISON_BOUND_S + SCHEDULING_SLACK_S
    reply = sandbox.compare(a, b, limit)
    assert "hung" not in reply, f"answers_equivalent({a!r}, {b!r}) ran past {limit} s"
    assert "raised" not in reply, f"answers_equivalent({a!r}, {b!r}) raised {reply['raised']}"
    assert reply["bool"], f"answers_equivalent({a!r}, {b!r}) returned {reply['value']}"
    assert reply["elapsed"] <= limit, f"answers_equivalent({a!r}, {b!r}) took {reply['elapsed']} s"


@FUZZ
@given(text=st.one_of(ANY_TEXT, st.builds(lambda a, t: f"{t} \\boxed{{{a}}}", ANSWERS, ANY_TEXT)))
@example(text="\\boxed{")
@example(text="\\boxed{" * 5000 + "1")
@example(text="The answer is " * 20_000)
def test_extract_answer_returns_text_or_none(text: str) -> None:
    for flexible in (True, False):
        answer = sal.extract_answer(text, flexible=flexible)
        assert answer is None or (isinstance(answer, str) and answer)


def test_the_sandbox_reports_a_comparison_that_overruns() -> None:
    """The bound check can fail: a child that sleeps past the limit is reported and killed."""
    slow = ComparisonSandbox(
        _WORKER.replace("value = answers_equivalent(a, b)", "time.sleep(60); value = True")
    )
    try:
        assert slow.compare("1", "1", limit=0.5) == {"hung": 1.5}
        assert slow.process is None  # killed, not left running
    finally:
        slow.close()
