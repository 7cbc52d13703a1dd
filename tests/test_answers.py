"""Final-answer extraction and equivalence (math-verify)."""

from __future__ import annotations

import pytest

from sal_plugins.answers import (
    answers_equivalent,
    extract_answer,
    group_equivalent,
    normalize_answer,
)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Therefore, the final answer is: $\\boxed{42}$. I hope it is correct.", "42"),
        ("$\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}"),
        ("nested: $\\boxed{\\sqrt{\\frac{a}{b}}}$", "\\sqrt{\\frac{a}{b}}"),
        ("first \\boxed{a{b}c}, then the last one counts: \\boxed{7}", "7"),
        ("\\fbox{3}", "3"),
        ("The answer is 12 apples.", "12"),
        ("The answer is indeed 87.", "87"),
        ("The answer is x = 5.", "x = 5"),
        ("The answer is between 3 and 4.", "between 3 and 4"),
        ("So the final answer is 5", "5"),
        ("The answer is: $7$.", "7"),
        ("Natalia sold 48 + 24 = 72 clips.\n#### 72", "72"),
        ("#### 1,234", "1,234"),
        ("no answer stated here", None),
        ("an unclosed \\boxed{12", "12"),
        ("23 + 48 = 91\n\nSo we add them, 71 in all", "71"),
        # placeholders and verdicts are not answers: the rules after them decide
        ("123 * 47 = 509\n\nSo, the final answer is $\\boxed{answer}$.", "509"),
        ("\\boxed{Your answer} The answer is 9.", "9"),
        ("123 * 47 = 5781. The answer is correct.", "5781"),
        ("The answer is 8. Checking: the answer is not wrong.", "8"),
        ("The answer is: [answer].", None),
    ],
)
def test_extract_answer(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


def test_strict_extraction_takes_only_stated_answers() -> None:
    assert extract_answer("23 + 48 = 91", flexible=False) is None
    assert extract_answer("The answer is 91.", flexible=False) == "91"


def test_boxed_wins_over_a_later_sentence() -> None:
    text = "We get $\\boxed{4}$.\n\nThe answer is four."
    assert extract_answer(text) == "4"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1/2", "0.5"),
        ("\\frac{1}{2}", "0.5"),
        ("\\frac{1}{2}", "1/2"),
        ("\\frac12", "0.5"),
        ("1,000", "1000"),
        ("3.0", "3"),
        ("$72$", "72"),
        ("x + 1", "1 + x"),
    ],
)
def test_equivalent_answers(a: str, b: str) -> None:
    assert answers_equivalent(a, b)
    assert answers_equivalent(b, a)


@pytest.mark.parametrize(("a", "b"), [("2", "3"), ("1/2", "0.25"), ("x + 1", "x - 1")])
def test_different_answers(a: str, b: str) -> None:
    assert not answers_equivalent(a, b)


def test_none_equals_nothing() -> None:
    assert not answers_equivalent(None, "1")
    assert not answers_equivalent("1", None)
    assert not answers_equivalent(None, None)


def test_malformed_latex_is_just_different() -> None:
    assert not answers_equivalent("\\frac{", "1")


def test_group_equivalent_keeps_first_seen_order_and_skips_none() -> None:
    groups = group_equivalent(["0.5", None, "1/2", "2", "\\frac{1}{2}", "2.0"])
    assert groups == [[0, 2, 4], [3, 5]]
    assert group_equivalent([None, None]) == []


def test_normalize_answer() -> None:
    assert normalize_answer(" $1,000.50$ ") == "1000.5"
    assert normalize_answer("\\text{cm}") == "cm"
    assert normalize_answer("12.000") == "12"


def test_docstring_examples() -> None:
    import doctest

    from sal_plugins import answers

    outcome = doctest.testmod(answers)
    assert outcome.attempted > 0
    assert outcome.failed == 0
