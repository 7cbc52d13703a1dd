"""Final answers: extraction from solution text and equivalence between answers.

Extraction looks, in order, for the last ``\\boxed{...}`` (braces balanced), a "final answer is X" /
"The answer is X" sentence, GSM8K's ``#### X``, and last the final number in the text (the
"flexible" extraction of GSM8K evaluations, which small models that never box their answers need).
Template placeholders (``\\boxed{answer}``) and verdicts ("the answer is correct") are not answers.
Equivalence is decided by math-verify (``2/4`` equals ``\\frac{1}{2}`` equals ``0.5``), after a
cheap normalised string comparison. math-verify's signal-based timeouts are disabled because
searches run in worker threads, where signals cannot be used.
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
_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")
_NOT_AN_ANSWER = re.compile(
    r"[\[<({]?(?:(?:the|your|my|final|correct)\s+)*answer(?:\s+here)?[\]>)}]?|\.\.\.|"
    r"(?:not\s+)?(?:correct|incorrect|right|wrong|as follows|below|above|clear|obvious|simple)",
    re.IGNORECASE,
)
"""Template placeholders (``\\boxed{answer}``) and verdicts ("the answer is correct")."""

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
