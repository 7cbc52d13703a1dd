"""Final answers: extraction from solution text and equivalence between answers.

Extraction looks, in order, for the last ``\\boxed{...}`` (braces balanced), a "final answer is X" /
"The answer is X" sentence, GSM8K's ``#### X``, and last the final number in the text (the
"flexible" extraction of GSM8K evaluations, which small models that never box their answers need).
Template placeholders (``\\boxed{answer}``) and verdicts ("the answer is correct") are not answers.

Equivalence (``2/4`` equals ``\\frac{1}{2}`` equals ``0.5``) is decided by the first of:

1. the normalised strings match (:func:`normalize_answer`);
2. both answers are plain numbers (``-3``, ``1,000``, ``0.5``, ``2/4``, ``\\frac{1}{2}``): equal
   values are equal, and different decimals of up to 6 places are different, without
   math-verify (whose verdict that is too: it rounds to 6 places);
3. math-verify, in a worker process with a hard time bound (``sal_plugins._equivalence``):
   answers whose shape is known to make it run for minutes (power towers, factorials of huge
   numbers, deep nesting, hundreds of terms, very long answers) are screened out first;
4. otherwise (screened out, over the time bound, math-verify still starting or unavailable) the
   answers are compared as normalised strings: they differ. The result says so:
   :class:`Equivalence` has ``decided_by == "fallback"`` and a ``reason``, :class:`AnswerGroups`
   counts such comparisons.

Time: every call returns within its bound (``timeout_s`` for one comparison, ``time_budget_s``
for a grouping) whatever the answers; math-verify gets at most 2 s of worker time per comparison.
The worker starts on the first comparison that needs it and takes about a second to import
math-verify. A synchronous call on a thread that runs an event loop (a strategy's plan, say)
never waits for that: it compares as strings while the worker starts, so no search on the loop
stalls. A call on any other thread (the async functions :func:`acompare_answers`,
:func:`aanswers_equivalent` and :func:`agroup_equivalent` make theirs in one) waits for the
process's first worker on top of its bound, up to 15 s, since that cost is paid once, not per
answer. :func:`warm_up_equivalence` starts the worker ahead of need. Verdicts are cached per
process, overruns too: a pathological pair costs its bound once.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from sal_plugins import _equivalence

__all__ = [
    "DEFAULT_GROUPING_BUDGET_S",
    "DEFAULT_TIMEOUT_S",
    "AnswerGroups",
    "Equivalence",
    "aanswers_equivalent",
    "acompare_answers",
    "agroup_equivalent",
    "answers_equivalent",
    "compare_answers",
    "extract_answer",
    "group_equivalent",
    "normalize_answer",
    "warm_up_equivalence",
]

DEFAULT_TIMEOUT_S = 3.0
"""The most one comparison takes by default, waiting for math-verify's worker included."""

DEFAULT_GROUPING_BUDGET_S = 5.0
"""The most one grouping takes by default; comparisons left when it is spent use strings."""

_ANSWER_IS = re.compile(
    r"(?:final answer|the answer)\s*(?:is|:)\s*[:\s]*(?P<answer>.+?)(?:\.\s|\.$|\n|$)",
    re.IGNORECASE,
)
_GSM8K = re.compile(r"####\s*(?P<answer>[^\n]+)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")
_NOT_AN_ANSWER = re.compile(
    r"[\[<({]?(?:(?:the|your|my|final|correct)\s+)*answer(?:\s+here)?[\]>)}]?|\.\.\.|"
    r"(?:not\s+)?(?:correct|incorrect|right|wrong|as follows|below|above|clear|obvious|simple)",
    re.IGNORECASE,
)
"""Template placeholders (``\\boxed{answer}``) and verdicts ("the answer is correct")."""


def _last_boxed(text: str) -> str | None:
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    index = text.index("{", start) + 1
    depth = 1
    for position in range(index, len(text)):
        char = text[position]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[index:position].strip()
    return None


def extract_answer(text: str, *, flexible: bool = True) -> str | None:
    """The final answer of a solution, or ``None`` if none can be found.

    Args:
        text: the solution.
        flexible: fall back to the last number in the text when no answer is stated; ``False``
            returns only answers the text states (boxed, "the answer is", ``####``).

    Examples:
        >>> extract_answer("so 3 + 4 = 7.\\n\\nTherefore, the final answer is: $\\\\boxed{7}$.")
        '7'
        >>> extract_answer("The answer is indeed 12 apples.")
        '12'
        >>> extract_answer("23 + 48 = 71")
        '71'
        >>> extract_answer("123 * 47 = 5781. The answer is correct.")
        '5781'
    """
    boxed = _last_boxed(text)
    if boxed and not _NOT_AN_ANSWER.fullmatch(boxed):
        return boxed
    for match in reversed(list(_ANSWER_IS.finditer(text))):
        answer = match.group("answer").strip().strip("$ ").rstrip(".").strip()
        answer = _last_boxed(answer) or answer
        if answer and not _NOT_AN_ANSWER.fullmatch(answer):
            return _number_in_prose(answer)
    gsm = list(_GSM8K.finditer(text))
    if gsm:
        return gsm[-1].group("answer").strip()
    numbers = _NUMBER.findall(text) if flexible else []
    return numbers[-1].rstrip(",") if numbers else None


def _number_in_prose(answer: str) -> str:
    """``"indeed 87"`` -> ``"87"``; math (``x = 5``, ``\\frac{1}{2}``) is left as it is."""
    if not _WORD.search(answer):
        return answer
    numbers = _NUMBER.findall(answer)
    return numbers[0].rstrip(",") if len(numbers) == 1 else answer


def normalize_answer(answer: str) -> str:
    """A cheap canonical form: no spaces, ``$``, thousands separators or trailing ``.0``."""
    text = answer.strip().strip("$").replace(" ", "").replace("\\!", "")
    text = re.sub(r"\\text\{([^}]*)\}", r"\1", text)
    if _NUMBER.fullmatch(text):
        text = text.replace(",", "")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    return text


# Plain numbers as models write them; ASCII digits only (math-verify reads no others).
_DECIMAL = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?", re.ASCII)
_FRACTION = re.compile(r"([-+]?)\\[dt]?frac(?:\{(\d+)\}\{(\d+)\}|(\d)(\d))", re.ASCII)
_RATIO = re.compile(r"([-+]?)(\d+)/(\d+)", re.ASCII)
_MAX_NUMBER_LENGTH = 40  # longer digit strings are math-verify's (and Fraction's) problem
_EXACT_DECIMALS = 6  # math-verify's float rounding

Decision = Literal["missing", "string", "number", "math-verify", "fallback"]
"""How an :class:`Equivalence` was decided (see the module docstring for the order)."""


@dataclass(frozen=True)
class Equivalence:
    """Whether two answers are the same, and how that was decided.

    Attributes:
        equal: the verdict.
        decided_by: ``"missing"`` (an answer is ``None``: it equals nothing), ``"string"`` (the
            normalised strings match), ``"number"`` (both plain numbers, compared exactly),
            ``"math-verify"``, or ``"fallback"``: math-verify could not decide within the bound
            (or an answer failed a screen), so the differing normalised strings did.
        reason: why it fell back (``None`` unless ``decided_by == "fallback"``).
    """

    equal: bool
    decided_by: Decision
    reason: str | None = None

    @property
    def fell_back(self) -> bool:
        """Whether strings decided because math-verify could not."""
        return self.decided_by == "fallback"


class AnswerGroups(list[list[int]]):
    """Indices of equivalent answers, grouped (first seen first), and how exactly.

    A plain list of groups to any caller that wants one; it also tells whether the grouping is
    exact or partly rests on string comparisons.

    Attributes:
        fallbacks: comparisons math-verify could not decide in time (or at all), compared as
            normalised strings instead; ``0`` means the grouping is exactly what math-verify says.
        reasons: why, each distinct reason once.
    """

    def __init__(
        self, groups: Iterable[list[int]] = (), *, fallbacks: int = 0, reasons: Sequence[str] = ()
    ) -> None:
        super().__init__(groups)
        self.fallbacks = fallbacks
        self.reasons = tuple(reasons)

    @property
    def fell_back(self) -> bool:
        """Whether any comparison fell back to strings."""
        return self.fallbacks > 0


def _as_number(answer: str) -> tuple[Fraction, bool] | None:
    """The exact value of a plain number, and whether it is a decimal math-verify takes as is.

    math-verify rounds decimals to 6 places before comparing them (``0.1234567`` equals
    ``0.1234568``), so only those with at most 6 decimal places compare exactly.
    """
    text = answer.strip().strip("$").replace(" ", "").replace("\\!", "")
    if not text or len(text) > _MAX_NUMBER_LENGTH:
        return None
    if _DECIMAL.fullmatch(text) and any(c in "0123456789" for c in text):
        decimals = text.partition(".")[2]
        return Fraction(text.replace(",", "")), len(decimals) <= _EXACT_DECIMALS
    match = _FRACTION.fullmatch(text) or _RATIO.fullmatch(text)
    if match is None:
        return None
    sign, *parts = match.groups()
    numerator, denominator = (int(part) for part in parts if part is not None)
    if denominator == 0:
        return None
    value = Fraction(numerator, denominator)
    return (-value if sign == "-" else value), False


def _decided_cheaply(a: str, b: str) -> Equivalence | None:
    """The verdict of steps 1 and 2 (strings, plain numbers), when they settle it."""
    if normalize_answer(a) == normalize_answer(b):
        return Equivalence(True, "string")
    number_a, number_b = _as_number(a), _as_number(b)
    if number_a is not None and number_b is not None:
        if number_a[0] == number_b[0]:
            return Equivalence(True, "number")
        if number_a[1] and number_b[1]:
            return Equivalence(False, "number")
        # A fraction, or a decimal with more places, may still be equal to math-verify, which
        # rounds (0.333333 = 1/3): it decides.
    return None


class _Budget:
    """The time one call may take, and whether it may wait for math-verify's worker."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        # Waiting on a thread that runs an event loop would stall every task on that loop.
        self.may_wait = not _on_event_loop()
        self._first_start_seen = False

    def before_math_verify(self) -> None:
        """Wait for the process's first worker, if this call may wait at all.

        Loading math-verify (about a second) is paid once per process, not per answer, so the
        wait extends the deadline instead of eating into it.
        """
        if self.may_wait and not self._first_start_seen:
            self._first_start_seen = True
            self.deadline += _equivalence.SERVICE.wait_first_start()


def _compare(a: str, b: str, budget: _Budget) -> Equivalence:
    cheap = _decided_cheaply(a, b)
    if cheap is not None:
        return cheap
    for answer in (a, b):
        problem = _equivalence.screen(answer)
        if problem is not None:
            return _fallback(f"{_quoted(answer)}: {problem}")
    budget.before_math_verify()
    verdict = _equivalence.SERVICE.verdict(
        a, b, deadline=budget.deadline, wait_for_start=budget.may_wait
    )
    if verdict.equal is None:
        return _fallback(verdict.reason or "math-verify gave no verdict")
    return Equivalence(verdict.equal, "math-verify")


def _fallback(reason: str) -> Equivalence:
    # Step 1 found the normalised strings different, so the string verdict is "different".
    return Equivalence(False, "fallback", reason)


def _quoted(answer: str, limit: int = 40) -> str:
    return repr(answer if len(answer) <= limit else answer[: limit - 3] + "...")


def _on_event_loop() -> bool:
    """Whether this thread runs an event loop: waiting here would stall every task on it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def compare_answers(
    a: str | None, b: str | None, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Equivalence:
    """Whether two extracted answers are mathematically the same, and how that was decided.

    Args:
        a: one answer (``None`` equals nothing).
        b: the other.
        timeout_s: the most this call takes, whatever the answers: past it, or for answers
            math-verify cannot handle, the normalised strings decide (``decided_by ==
            "fallback"``). On a thread that runs an event loop it never waits for math-verify's
            worker to start; elsewhere it does, within the bound.

    Examples:
        >>> compare_answers("2/4", "\\\\frac{1}{2}")
        Equivalence(equal=True, decided_by='number', reason=None)
        >>> compare_answers("10^{10^{10^{10}}}", "1").decided_by
        'fallback'
    """
    if a is None or b is None:
        return Equivalence(False, "missing")
    return _compare(a, b, _Budget(timeout_s))


async def acompare_answers(
    a: str | None, b: str | None, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Equivalence:
    """:func:`compare_answers` without blocking the event loop (math-verify waits in a thread)."""
    if a is None or b is None:
        return Equivalence(False, "missing")
    cheap = _decided_cheaply(a, b)
    if cheap is not None:
        return cheap
    return await asyncio.to_thread(compare_answers, a, b, timeout_s=timeout_s)


def answers_equivalent(
    a: str | None, b: str | None, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> bool:
    """Whether two extracted answers are mathematically the same (``None`` equals nothing).

    Returns within ``timeout_s`` whatever the answers; see :func:`compare_answers`, which also
    says how the verdict was reached.
    """
    return compare_answers(a, b, timeout_s=timeout_s).equal


async def aanswers_equivalent(
    a: str | None, b: str | None, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> bool:
    """:func:`answers_equivalent` without blocking the event loop."""
    return (await acompare_answers(a, b, timeout_s=timeout_s)).equal


def group_equivalent(
    answers: Sequence[str | None], *, time_budget_s: float = DEFAULT_GROUPING_BUDGET_S
) -> AnswerGroups:
    """Indices of ``answers`` grouped into classes of equivalent answers, in first-seen order.

    ``None`` answers are left out of every group. Each answer joins the group of the first
    earlier representative it equals.

    Args:
        answers: the answers, ``None`` for a candidate without one.
        time_budget_s: the most the whole grouping takes, whatever the answers; comparisons
            left when it is spent are made as strings (counted in ``fallbacks``). On an event
            loop's thread it never waits for math-verify's worker to start.

    Returns:
        The groups, a list of lists of indices, which also carry ``fallbacks`` and ``reasons``.

    Examples:
        >>> group_equivalent(["0.5", None, "1/2", "2", "\\\\frac{1}{2}", "2.0"])
        [[0, 2, 4], [3, 5]]
    """
    budget = _Budget(time_budget_s)
    groups: list[list[int]] = []
    representatives: list[str] = []
    fallbacks = 0
    reasons: dict[str, None] = {}  # ordered and distinct
    for index, answer in enumerate(answers):
        if answer is None:
            continue
        for group, representative in zip(groups, representatives, strict=True):
            outcome = _compare(representative, answer, budget)
            if outcome.reason is not None:
                fallbacks += 1
                reasons.setdefault(outcome.reason)
            if outcome.equal:
                group.append(index)
                break
        else:
            groups.append([index])
            representatives.append(answer)
    return AnswerGroups(groups, fallbacks=fallbacks, reasons=list(reasons))


async def agroup_equivalent(
    answers: Sequence[str | None], *, time_budget_s: float = DEFAULT_GROUPING_BUDGET_S
) -> AnswerGroups:
    """:func:`group_equivalent` without blocking the event loop (it runs in a thread)."""
    return await asyncio.to_thread(group_equivalent, list(answers), time_budget_s=time_budget_s)


def warm_up_equivalence(*, wait_s: float = 0.0) -> bool:
    """Start math-verify's worker now, so the first comparison that needs it finds it ready.

    Idempotent and cheap when the worker runs already. A search that will group answers can
    call it as it starts: the worker then imports math-verify while the model generates.

    Args:
        wait_s: how long to wait for the worker to be ready (keep ``0`` on an event loop).

    Returns:
        Whether the worker is ready.
    """
    if wait_s > 0:
        return _equivalence.SERVICE.wait_ready(wait_s)
    return _equivalence.SERVICE.warm_up()
