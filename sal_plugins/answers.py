"""Final answers: extraction from solution text and equivalence between answers.

Extraction looks, in order, for the last ``\\boxed{...}`` (braces balanced), a "final answer is X" /
"The answer is X" sentence, and GSM8K's ``#### X``. Equivalence is decided by math-verify
(``2/4`` equals ``\\frac{1}{2}`` equals ``0.5``), after a cheap normalised string comparison.
math-verify's signal-based timeouts are disabled because searches run in worker threads, where
signals cannot be used.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

__all__ = ["answers_equivalent", "extract_answer", "group_equivalent", "normalize_answer"]

_ANSWER_IS = re.compile(
    r"(?:final answer|the answer)\s*(?:is|:)\s*[:\s]*(?P<answer>.+?)(?:\.\s|\.$|\n|$)",
    re.IGNORECASE,
)
_GSM8K = re.compile(r"####\s*(?P<answer>[^\n]+)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")

logging.getLogger("math_verify").setLevel(logging.ERROR)


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


def extract_answer(text: str) -> str | None:
    """The final answer stated in a solution, or ``None`` if it states none.

    Examples:
        >>> extract_answer("so 3 + 4 = 7.\\n\\nTherefore, the final answer is: $\\\\boxed{7}$.")
        '7'
        >>> extract_answer("The answer is 12 apples.")
        '12 apples'
    """
    boxed = _last_boxed(text)
    if boxed:
        return boxed
    matches = list(_ANSWER_IS.finditer(text))
    if matches:
        answer = matches[-1].group("answer").strip().strip("$ ").rstrip(".").strip()
        if answer:
            return answer
    gsm = list(_GSM8K.finditer(text))
    if gsm:
        return gsm[-1].group("answer").strip()
    return None


def normalize_answer(answer: str) -> str:
    """A cheap canonical form: no spaces, ``$``, thousands separators or trailing ``.0``."""
    text = answer.strip().strip("$").replace(" ", "").replace("\\!", "")
    text = re.sub(r"\\text\{([^}]*)\}", r"\1", text)
    if _NUMBER.fullmatch(text):
        text = text.replace(",", "")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    return text


@lru_cache(maxsize=4096)
def _parsed(answer: str) -> Any:
    from math_verify import parse

    return parse(f"${answer}$", parsing_timeout=None)  # type: ignore[arg-type]


@lru_cache(maxsize=4096)
def _verify(gold: str, candidate: str) -> bool:
    from math_verify import verify

    parsed_gold, parsed_candidate = _parsed(gold), _parsed(candidate)
    if not parsed_gold or not parsed_candidate:
        return False
    return bool(verify(parsed_gold, parsed_candidate, timeout_seconds=None))  # type: ignore[arg-type]


def answers_equivalent(a: str | None, b: str | None) -> bool:
    """Whether two extracted answers are mathematically the same (``None`` equals nothing)."""
    if a is None or b is None:
        return False
    if normalize_answer(a) == normalize_answer(b):
        return True
    try:
        return _verify(a, b) or _verify(b, a)
    except Exception:  # math-verify raises on some malformed LaTeX; different, then
        return False


def group_equivalent(answers: Sequence[str | None]) -> list[list[int]]:
    """Indices of ``answers`` grouped into classes of equivalent answers, in first-seen order.

    ``None`` answers are left out of every group.
    """
    groups: list[list[int]] = []
    representatives: list[str] = []
    for index, answer in enumerate(answers):
        if answer is None:
            continue
        for group, representative in zip(groups, representatives, strict=True):
            if answers_equivalent(representative, answer):
                group.append(index)
                break
        else:
            groups.append([index])
            representatives.append(answer)
    return groups
