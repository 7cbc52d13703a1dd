"""Check the arithmetic a solution writes down, exactly, with no model at all."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from sal_plugins.answers import extract_answer
from sal_plugins.errors import ConfigError
from sal_plugins.verifiers.base import Granularity, Judgement, Trajectory, check_scores

__all__ = ["ArithmeticVerifier", "Equation", "find_equations"]

# A number: optional "$", thousands separators, decimals, optional "%".
_NUM = r"(?:\$\s*)?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?:\s*%)?"
# An optional unit word after a number ("5 apples + 3 apples"), never the times sign "x".
_UNIT = r"(?:\s+(?![xX]\b)[A-Za-z]{1,15}\b)?"
_OP = r"(?:\\times|\\cdot|\\div|[-+*/×x·÷−–])"
_TERM = _NUM + _UNIT
_CHAIN = rf"-?{_TERM}(?:\s*{_OP}\s*{_TERM})+"
# A chain must not continue something we cannot read: a longer number, a word, a bracket, a power.
_START = r"(?<![\w.,)\]}^$/*+\-×÷·−])"
_LEFT = re.compile(rf"{_START}(?P<chain>{_CHAIN})\s*\$?\s*$")
_ANY_CHAIN = re.compile(rf"{_START}(?P<chain>{_CHAIN})(?!\w|\.\d|\s*[=(^])")
_RIGHT = re.compile(rf"\s*\$?\s*(?P<value>-?{_NUM})")
_RIGHT_CHAIN = re.compile(rf"\s*\$?\s*(?P<chain>{_CHAIN})(?!\w|\.\d|\s*[(^])")
_RIGHT_IS_EXPRESSION = re.compile(rf"\s*{_UNIT}\s*{_OP}\s*\$?\s*[\d.(]")
_ANSWER = re.compile(rf"\$?\s*(?P<value>-?{_NUM}){_UNIT}\s*\.?\s*\$?")
_TOKEN = re.compile(rf"(?P<num>{_NUM})|(?P<op>{_OP})")
_DIGITS = re.compile(r"\d")
_LOOKBACK = 240

_CANONICAL_OP = {
    "\\times": "*",
    "\\cdot": "*",
    "×": "*",
    "x": "*",
    "·": "*",
    "\\div": "/",
    "÷": "/",
    "−": "-",
    "–": "-",
}


@dataclass(frozen=True)
class Equation:
    """One ``left = right`` found in a text, and whether it holds."""

    left: str
    right: str
    value: Fraction | None
    correct: bool


def _number(text: str) -> Fraction:
    cleaned = text.replace("$", "").replace(",", "").replace(" ", "")
    percent = cleaned.endswith("%")
    value = Fraction(cleaned.rstrip("%"))
    return value / 100 if percent else value


def evaluate(chain: str) -> Fraction | None:
    """The exact value of ``a op b op c ...`` with the usual precedence (``None``: divides by 0)."""
    text = chain.strip()
    negative = text.startswith("-")
    if negative:
        text = text[1:]
    numbers: list[Fraction] = []
    ops: list[str] = []
    for match in _TOKEN.finditer(text):
        if match.group("num") is not None:
            numbers.append(_number(match.group("num")))
        else:
            ops.append(_CANONICAL_OP.get(match.group("op"), match.group("op")))
    if negative:
        numbers[0] = -numbers[0]
    # Multiplication and division first, then addition and subtraction, left to right.
    terms = [numbers[0]]
    signs: list[str] = []
    for op, number in zip(ops, numbers[1:], strict=True):
        if op == "*":
            terms[-1] *= number
        elif op == "/":
            if number == 0:
                return None
            terms[-1] /= number
        else:
            signs.append(op)
            terms.append(number)
    total = terms[0]
    for sign, term in zip(signs, terms[1:], strict=True):
        total = total + term if sign == "+" else total - term
    return total


def _decimals(text: str) -> int:
    digits = text.replace("%", "").strip()
    return len(digits.split(".", 1)[1]) if "." in digits else 0


def _matches(value: Fraction, written: str, rounding: bool) -> bool:
    claimed = _number(written)
    if value == claimed:
        return True
    places = _decimals(written) + (2 if written.strip().endswith("%") else 0)
    if not rounding or places == 0:
        return False
    # "10 / 3 = 3.33" is right to the precision written; "7 / 2 = 3" is not.
    return abs(value - claimed) < Fraction(1, 2 * 10**places)


def find_equations(text: str, *, rounding: bool = True) -> list[Equation]:
    """Every ``a op b (op c ...) = c`` in ``text``, checked exactly.

    Numbers may carry ``$``, thousands separators, decimals, ``%`` and a unit word; operators are
    ``+ - * / x × ÷ ·`` and LaTeX ``\\times \\div \\cdot``. When the right side is itself an
    expression both sides are evaluated, except for running totals (``2 + 3 = 5 + 4 = 9``, whose
    right side starts with the left side's value), which are skipped. Parenthesised expressions,
    powers and algebra are skipped, not judged.

    Args:
        text: the text to scan.
        rounding: accept a decimal result that is right to the number of places written.
    """
    equations: list[Equation] = []
    for position, char in enumerate(text):
        if char != "=" or text[position - 1 : position] in ("<", ">", "!", "=", ":"):
            continue
        if text[position + 1 : position + 2] == "=":
            continue
        left = _LEFT.search(text[max(0, position - _LOOKBACK) : position])
        right = _RIGHT.match(text, position + 1)  # match(text, pos): no copy of the rest
        if left is None or right is None:
            continue
        chain, written = left.group("chain").strip(), right.group("value").strip()
        value = evaluate(chain)
        end = right.end()
        if _RIGHT_IS_EXPRESSION.match(text, end) or text[end : end + 1].isdigit():
            judged = _expression_equation(chain, value, text, position + 1, rounding)
            if judged is not None:
                equations.append(judged)
            continue
        correct = value is not None and _matches(value, written, rounding)
        equations.append(Equation(chain, written, value, correct))
    return equations


def _expression_equation(
    chain: str, value: Fraction | None, text: str, start: int, rounding: bool
) -> Equation | None:
    """Judge ``a op b = c op d``; ``None`` when it cannot be read or is a running total.

    ``2 + 3 = 5 + 4 = 9`` is sloppy but not wrong: the right side starts with the left side's
    value (a running total), so it is skipped. ``23 + 48 = 100 + 128`` is wrong.
    """
    right = _RIGHT_CHAIN.match(text, start)
    if right is None or value is None:
        return None
    expression = right.group("chain").strip()
    first = _RIGHT.match(expression)
    if first is not None and _matches(value, first.group("value"), rounding):
        return None  # a running total
    total = evaluate(expression)
    return Equation(chain, expression, value, total is not None and total == value)


_Key = tuple[tuple[str, ...], Fraction]
"""An equation that held, as its canonical terms and value: the same work written twice."""

_GIVEN = re.compile(r"(?:(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.,])\d+(?:\.\d+)?)(?:\s*%)?")
"""A number a problem gives, read as an operand is ("20%" is 1/5; "twice" or "a dozen", written
in words, are not counted)."""


@dataclass
class _Work:
    """What a solution has computed so far: the equations that held, their values and operands."""

    seen: set[_Key]
    values: list[Fraction] = field(default_factory=list)
    operands: Counter[Fraction] = field(default_factory=Counter)


def _operands(equation: Equation) -> list[Fraction]:
    return [_number(m.group("num")) for m in _TOKEN.finditer(equation.left) if m.group("num")]


def _key(equation: Equation) -> _Key | None:
    """What makes ``equation`` the same work as another; ``None`` when it is trivially true.

    Trivially true: one operation with its identity (``x * 1``, ``1 * x``, ``x / 1``, ``x + 0``,
    ``0 + x``, ``x - 0``) or cancelling itself (``x - x``, ``x / x``): "60 cents / 1 pen = 60
    cents" holds whatever the problem, so it earns no credit.
    """
    if equation.value is None:
        return None
    terms: list[str] = []
    numbers: list[Fraction] = []
    for match in _TOKEN.finditer(equation.left.lstrip("-")):
        if match.group("num") is not None:
            numbers.append(_number(match.group("num")))
            terms.append(str(numbers[-1]))
        else:
            terms.append(_CANONICAL_OP.get(match.group("op"), match.group("op")))
    if len(numbers) == 2 and not equation.left.lstrip().startswith("-"):
        a, op, b = numbers[0], terms[1], numbers[1]
        identity = {"*": 1 in (a, b), "/": b == 1, "+": 0 in (a, b), "-": b == 0}
        if identity.get(op, False) or (op in ("-", "/") and a == b):
            return None
    return tuple(terms), equation.value


def problem_value(problem: str) -> Fraction | None:
    """The value of a problem that is one bare arithmetic expression ("What is 23 + 48?")."""
    if "=" in problem:
        return None
    chains = list(_ANY_CHAIN.finditer(problem))
    if len(chains) != 1:
        return None
    outside = problem[: chains[0].start()] + problem[chains[0].end() :]
    if _DIGITS.search(outside):
        return None  # other numbers in the problem: it is not just this expression
    return evaluate(chains[0].group("chain"))


class ArithmeticVerifier:
    """Scores each step by checking every ``a op b = c`` in it exactly (no floats, no model).

    A step scores ``1.0`` when all its equations hold, ``0.0`` when any is wrong, and ``neutral``
    when it has none. Chains such as ``2 + 3 + 4 = 9`` are evaluated with the usual precedence;
    numbers may carry ``$``, thousands separators, decimals, ``%`` and a unit word. A decimal
    result is accepted when it is right to the places written (``10 / 3 = 3.33``) unless
    ``rounding=False``.

    When ``check_answer`` is on and the problem is a bare arithmetic expression ("What is
    23 + 48?"), a step stating a final answer (``\\boxed{}``, "The answer is") is also checked
    against the exact value of the problem. This is the verifier of the embedded default: it
    needs no second model, and it catches the slips small models make.

    Only work earns credit: an equation that holds whatever the problem says (``x * 1``,
    ``x / 1``, ``x + 0``, ``x - 0``, ``x - x``, ``x / x``: "60 cents / 1 pen = 60 cents") or one
    already written in an earlier step of the same solution counts as nothing to check. A wrong
    one always counts.

    With ``cumulative=True`` each step is scored by the solution up to it, as a process reward
    model scores a prefix: ``0.0`` from the first wrong equation on, ``1.0`` once some equation
    has been checked and none failed, ``neutral`` before anything was checked. A stated final
    answer is then also checked against the work: it must be the value of the last equation
    written (or, for a bare expression, the problem's value), and with ``require_all_numbers``
    the work must also have used every number the problem gives, as often as it gives it. On
    one- and two-step word problems an answer that leaves a given quantity out is nearly always
    wrong (on generated ones, 1 in 174 such "checked" answers was right, against 37 in 46 of
    those that used every number); leave it off for problems with numbers to ignore.
    Aggregated with ``"last"`` (its :attr:`preferred_aggregation` then), a solution scores
    ``1.0`` exactly when everything it wrote checks out, and a search can drop a candidate at its
    first slip.

    Args:
        neutral: score of a step with nothing to check.
        rounding: accept decimals rounded to the places written.
        check_answer: check stated answers against a problem that is one expression.
        cumulative: score each step by the whole solution so far (see above).
        require_all_numbers: with ``cumulative``, a stated answer counts only when the work used
            every number of the problem.
        name: name used in errors and the tree.

    Example:
        >>> verifier = ArithmeticVerifier()
        >>> search = sal.BeamSearch(solver=solver, verifier=verifier, n=4)  # doctest: +SKIP
        >>> [e.correct for e in find_equations("23 + 48 = 71, and 71 x 2 = 140")]
        [True, False]
    """

    granularity: Granularity = "step"
    score_range: tuple[float, float] | None = (0.0, 1.0)
    preferred_aggregation: str = "mean"
    """What ``sal_plugins.strategies.build_strategy`` sets ``aggregation`` to when the user sets
    none: a step scores 1, 0 or ``neutral``, so the mean ranks a trajectory by how much of it
    checks out, where ``"last"`` would judge by a final "The answer is ..." step alone."""

    def __init__(
        self,
        *,
        neutral: float = 0.5,
        rounding: bool = True,
        check_answer: bool = True,
        cumulative: bool = False,
        require_all_numbers: bool = False,
        name: str = "ArithmeticVerifier",
    ) -> None:
        if not 0.0 <= neutral <= 1.0:
            raise ConfigError(f"{name}: neutral must lie in [0, 1], got {neutral}")
        self.neutral = neutral
        self.rounding = rounding
        self.check_answer = check_answer
        self.cumulative = cumulative
        self.require_all_numbers = require_all_numbers
        self.name = name
        if cumulative:
            self.preferred_aggregation = "last"  # the last step's score covers the whole solution

    def __repr__(self) -> str:
        return (
            f"ArithmeticVerifier(neutral={self.neutral}, rounding={self.rounding}, "
            f"check_answer={self.check_answer}, cumulative={self.cumulative}, "
            f"require_all_numbers={self.require_all_numbers})"
        )

    def step_score(
        self, step: str, expected: Fraction | None = None, seen: set[_Key] | None = None
    ) -> float:
        """The score of one step on its own (``cumulative`` does not apply here).

        Args:
            step: the step's text.
            expected: the exact value the final answer must have, when the problem is one
                expression.
            seen: equations that held in earlier steps of the same solution (updated in place);
                writing one of them again earns nothing.
        """
        work = _Work(seen=set() if seen is None else seen)
        verdicts = self._verdicts(step, expected, work, None)
        if not verdicts:
            return self.neutral
        return 1.0 if all(verdicts) else 0.0

    def _verdicts(
        self,
        step: str,
        expected: Fraction | None,
        work: _Work,
        given: Counter[Fraction] | None,
    ) -> list[bool]:
        """One verdict per check in ``step``, updating ``work``.

        ``given`` (cumulative scoring only) holds the problem's numbers: then a stated answer is
        checked against the work too (the last value computed, and every given number used when
        ``require_all_numbers`` is on).
        """
        verdicts = []
        for equation in find_equations(step, rounding=self.rounding):
            if not equation.correct:
                verdicts.append(False)
                continue
            key = _key(equation)
            if key is None:
                continue  # true whatever the problem says ("60 cents / 1 pen = 60 cents")
            work.values.append(key[1])
            work.operands.update(_operands(equation))
            if key not in work.seen:  # the same work written again earns nothing
                work.seen.add(key)
                verdicts.append(True)
        stated = _ANSWER.fullmatch((extract_answer(step, flexible=False) or "").strip())
        if stated is None:
            return verdicts
        if expected is not None:
            verdicts.append(_matches(expected, stated.group("value"), self.rounding))
        elif given is not None and work.values:
            follows = _matches(work.values[-1], stated.group("value"), self.rounding)
            uses_all = not self.require_all_numbers or not given - work.operands
            verdicts.append(follows and uses_all)
        return verdicts

    def _cumulative_scores(self, problem: str, steps: Sequence[str]) -> list[float]:
        expected = problem_value(problem) if self.check_answer else None
        given = Counter(_number(m.group()) for m in _GIVEN.finditer(problem))
        work = _Work(seen=set())
        scores: list[float] = []
        checked = failed = False
        for step in steps:
            verdicts = self._verdicts(step, expected, work, given)
            failed = failed or not all(verdicts)
            checked = checked or bool(verdicts)
            scores.append(0.0 if failed else 1.0 if checked else self.neutral)
        return scores

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        """Score every step of every trajectory (pure computation, no I/O)."""
        expected = problem_value(problem) if self.check_answer else None
        rows = []
        for trajectory in trajectories:
            if self.cumulative:
                scores = self._cumulative_scores(problem, trajectory.steps)
            else:
                seen: set[_Key] = set()
                scores = [self.step_score(step, expected, seen) for step in trajectory.steps]
            rows.append(Judgement(tuple(scores)))
        return check_scores(self, trajectories, rows)
