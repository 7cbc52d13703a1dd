"""Evaluation problems: GSM8K and MATH-style jsonl files, or a Hugging Face dataset by name.

Every source becomes a list of :class:`Problem` (an id, the question, the gold final answer). Field
names are recognised, not configured: the question is ``question`` or ``problem`` (or ``prompt``),
the gold answer is ``answer`` (GSM8K's ``#### X`` tail is taken when present) or the
``\\boxed{}`` answer of a ``solution`` field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sal_plugins.answers import extract_answer
from sal_plugins.errors import InputError, MissingDependencyError

__all__ = ["Problem", "gold_answer", "load_problems", "problems_from_rows"]

_QUESTION_KEYS = ("question", "problem", "prompt", "input")
_ANSWER_KEYS = ("answer", "final_answer", "target", "solution")


@dataclass(frozen=True)
class Problem:
    """One evaluation problem.

    Attributes:
        id: stable identifier (the row's ``id``/``unique_id`` field, else its position).
        question: the text given to the solver.
        answer: the gold final answer.
    """

    id: str
    question: str
    answer: str


def gold_answer(raw: str) -> str:
    """The final answer inside a gold field: GSM8K's ``#### X``, a ``\\boxed{}``, or the text itself.

    Examples:
        >>> gold_answer("She makes 9 * 2 = 18.\\n#### 18")
        '18'
        >>> gold_answer("\\\\frac{1}{2}")
        '\\\\frac{1}{2}'
    """
    text = str(raw).strip()
    if "####" in text:
        return text.rsplit("####", 1)[1].strip().replace(",", "")
    if "\\boxed" in text or "\\fbox" in text:
        return extract_answer(text) or text
    return text


def _pick(row: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        value = row.get(key)
        if value is not None and str(value).strip():
            return str(value)
    return None


def problems_from_rows(rows: Iterable[Mapping[str, Any]], *, source: str) -> list[Problem]:
    """Turn dataset rows into problems (see the module docstring for the fields read).

    Raises:
        InputError: a row has no question or no answer field.
    """
    problems = []
    for index, row in enumerate(rows):
        question = _pick(row, _QUESTION_KEYS)
        raw_answer = _pick(row, _ANSWER_KEYS)
        if question is None or raw_answer is None:
            raise InputError(
                f"{source} row {index + 1}: expected a question/problem field and an "
                f"answer/solution field, found {sorted(row)}"
            )
        identifier = row.get("id", row.get("unique_id", index))
        problems.append(
            Problem(id=str(identifier), question=question, answer=gold_answer(raw_answer))
        )
    return problems


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{path}:{number}: not valid JSON ({error.msg})") from error
            if not isinstance(row, dict):
                raise InputError(f"{path}:{number}: expected a JSON object per line")
            rows.append(row)
    return rows


def _load_hub(name: str, *, split: str, subset: str | None) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError as error:
        raise MissingDependencyError(
            f"loading the Hugging Face dataset {name!r}", "eval", package="datasets"
        ) from error
    try:
        data = datasets.load_dataset(name, subset, split=split)
    except Exception as error:  # the hub, the network and the dataset's own code all raise here
        raise InputError(
            f"could not load {name!r} (split {split!r}) from the Hugging Face hub: {error}. "
            "Check the name, --subset and --split, or pass a local .jsonl file instead"
        ) from error
    return [dict(row) for row in data]


_FILE_SUFFIXES = frozenset(
    {".jsonl", ".json", ".ndjson", ".txt", ".csv", ".tsv", ".parquet", ".gz"}
)


def _looks_like_a_path(source: str) -> bool:
    """Whether ``source`` names a local file rather than a hub dataset (``owner/name``).

    A hub name has exactly one slash and starts with neither ``.``, ``/`` nor ``~``; anything
    with a data file suffix, another shape, or whose first part is an existing directory is a
    path, so a missing file says so instead of asking for the ``datasets`` package.
    """
    path = Path(source)
    if path.suffix.lower() in _FILE_SUFFIXES or source.startswith((".", "/", "~", "\\")):
        return True
    parts = source.replace("\\", "/").split("/")
    return len(parts) != 2 or not all(parts) or Path(parts[0]).is_dir()


def load_problems(
    source: str, *, split: str = "test", subset: str | None = None, limit: int | None = None
) -> list[Problem]:
    """Load evaluation problems from a jsonl path or a Hugging Face dataset name.

    Args:
        source: a ``.jsonl`` file (GSM8K or MATH layout), or a hub name such as ``openai/gsm8k``.
        split: the hub split to load.
        subset: the hub configuration (``main`` for ``openai/gsm8k``).
        limit: keep only the first ``limit`` problems.

    Raises:
        InputError: the file is missing ("no such file", also for a path without a ``.jsonl``
            suffix) or malformed, or the hub could not serve the dataset.
        MissingDependencyError: a hub name was given but ``datasets`` is not installed.
    """
    path = Path(source)
    if path.is_file():
        rows = _read_jsonl(path)
    elif path.exists() or _looks_like_a_path(source):
        if path.is_dir():
            why = " (it is a directory)"
        elif "/" not in source and "\\" not in source and not path.suffix:
            why = ", and it is neither a file nor a Hugging Face name (owner/name)"
        else:
            why = " (the dataset file does not exist)"
        raise InputError(
            f"no such file: {source!r}{why}; pass a .jsonl path such as "
            "data/gsm8k/test.jsonl, or a hub name such as openai/gsm8k"
        )
    else:
        rows = _load_hub(source, split=split, subset=subset)
    if limit is not None:
        rows = rows[:limit]
    problems = problems_from_rows(rows, source=source)
    if not problems:
        raise InputError(f"dataset {source!r} has no problems")
    return problems
