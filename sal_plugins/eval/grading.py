"""Grading: is a search's answer the gold answer? Decided by math-verify (see sal_plugins.answers)."""

from __future__ import annotations

from sal_plugins.answers import answers_equivalent, normalize_answer

__all__ = ["is_correct"]


def is_correct(predicted: str | None, gold: str) -> bool:
    """Whether ``predicted`` equals ``gold`` mathematically (``None`` is never correct).

    Examples:
        >>> is_correct("0.5", "\\\\frac{1}{2}")
        True
        >>> is_correct("$1,000", "1000")
        True
        >>> is_correct(None, "3")
        False
    """
    if predicted is None:
        return False
    if answers_equivalent(predicted, gold):
        return True
    # "$18" or "18 dollars" against GSM8K's bare "18": compare the leading number.
    head = normalize_answer(predicted.split()[0]) if predicted.split() else ""
    return bool(head) and head.lstrip("$") == normalize_answer(gold)
