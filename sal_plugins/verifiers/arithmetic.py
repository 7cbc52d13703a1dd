"""Check the arithmetic a solution writes down, exactly, with no model at all."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
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

    Args:
        neutral: score of a step with nothing to check.
        rounding: accept decimals rounded to the places written.
        check_answer: check stated answers against a problem that is one expression.
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
        name: str = "ArithmeticVerifier",
    ) -> None:
        if not 0.0 <= neutral <= 1.0:
            raise ConfigError(f"{name}: neutral must lie in [0, 1], got {neutral}")
        self.neutral = neutral
        self.rounding = rounding
        self.check_answer = check_answer
        self.name = name

    def step_score(self, step: str, expected: Fraction | None = None) -> float:
        """The score of one step (``expected``: the exact value the final answer must have)."""
        verdicts = [e.correct for e in find_equations(step, rounding=self.rounding)]
        if expected is not None:
            stated = _ANSWER.fullmatch((extract_answer(step, flexible=False) or "").strip())
            if stated is not None:
                verdicts.append(_matches(expected, stated.group("value"), self.rounding))
        if not verdicts:
            return self.neutral
        return 1.0 if all(verdicts) else 0.0

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        """Score every step of every trajectory (pure computation, no I/O)."""
        expected = problem_value(problem) if self.check_answer else None
        rows = [
            Judgement(tuple(self.step_score(step, expected) for step in t.steps))
            for t in trajectories
        ]
        return check_scores(self, trajectories, rows)
