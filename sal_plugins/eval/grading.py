"""Grading: is a search's answer the gold answer? Decided by math-verify (see sal_plugins.answers)."""

from __future__ import annotations

import re

from sal_plugins.answers import answers_equivalent, extract_answer, normalize_answer

__all__ = ["graded_answer", "is_correct"]

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def graded_answer(answer: str | None, text: str) -> tuple[str | None, str]:
    """The answer to grade and how it was found: ``"stated"`` or ``"last_number"`` (or ``"none"``).

    A solution that states its answer (``\\boxed{}``, "The answer is") is graded on that. One
    that does not is graded on the last number it wrote, as lm-evaluation-harness's
    "flexible-extract" does for GSM8K: small models often end with "so Tom has 71 apples".

    Examples:
        >>> graded_answer(None, "23 + 48 = 71, so Tom has 71 apples.")
        ('71', 'last_number')
        >>> graded_answer("71", "...")
        ('71', 'stated')
    """
    if answer is not None:
        return answer, "stated"
    last_number = extract_answer(text, flexible=True)
    if last_number is not None:
        return last_number.replace(",", ""), "last_number"
    return None, "none"


def is_correct(predicted: str | None, gold: str) -> bool:
    """Whether ``predicted`` equals ``gold`` mathematically (``None`` is never correct).

    Examples:
        >>> is_correct("0.5", "\\\\frac{1}{2}")
        True
        >>> is_correct("$1,000", "1000")
        True
        >>> is_correct("that there are 48 candies in 6 bags", "48")
        True
        >>> is_correct(None, "3")
        False
    """
    if predicted is None:
        return False
    if answers_equivalent(predicted, gold):
        return True
    # "$18", "18 dollars" or "that there are 18 apples" against GSM8K's bare "18": compare the
    # first number of the stated answer.
    first = _NUMBER.search(predicted)
    return first is not None and normalize_answer(first.group()) == normalize_answer(gold)
