"""Each engine concern is written once: a second copy anywhere in the tree fails here.

The checks read the source as text (like a reviewer grepping for it), over the core and both
integration packages.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(
    [
        *ROOT.glob("sal_plugins/**/*.py"),
        *ROOT.glob("integrations/langchain/langchain_sal/**/*.py"),
        *ROOT.glob("integrations/llama_index/llama_index_sal/**/*.py"),
    ]
)
CAPABILITIES = ("honours_n", "pricing", "needs_logprobs", "granularity", "score_range")


def where(pattern: str) -> list[str]:
    """``path:line`` of every line of the sources matching ``pattern``."""
    regex = re.compile(pattern)
    return [
        f"{path.relative_to(ROOT)}:{number}"
        for path in SOURCES
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if regex.search(line)
    ]


def test_sources_are_found() -> None:
    assert len(SOURCES) > 40


def only_in(found: list[str], home: str) -> bool:
    """Whether every place found is in the file ``home``."""
    return bool(found) and all(place.startswith(home + ":") for place in found)


def test_capabilities_are_read_as_declared_not_sniffed() -> None:
    sniffing = where(r"getattr\([^)]*[\"'](?:" + "|".join(CAPABILITIES) + r")[\"']")
    # The one reader of an optional declaration (wants_logprobs); capabilities_of is the other.
    assert len(sniffing) == 1 and only_in(sniffing, "sal_plugins/verifiers/base.py"), sniffing
    readers = where(r"getattr\(solver, \"capabilities\"")
    assert len(readers) == 1 and only_in(readers, "sal_plugins/solvers/base.py"), readers


@pytest.mark.parametrize(
    ("definition", "home"),
    [
        (r"^(?:async )?def fan_out\b", "sal_plugins/solvers/fanout.py"),
        (r"^def stop_kind_of\b", "sal_plugins/openai_wire.py"),
        (r"^def cut_at_stop\b", "sal_plugins/openai_wire.py"),
        (r"^def logprobs_of\b", "sal_plugins/openai_wire.py"),
        (r"^def served_by_vllm\b", "sal_plugins/openai_wire.py"),
        (r"^def parse_retry_after\b", "sal_plugins/faults.py"),
        (r"^def is_transient_status\b", "sal_plugins/faults.py"),
        (r"^def ends_solution\b", "sal_plugins/tree.py"),
        (r"^def split_steps\b", "sal_plugins/tree.py"),
        (r"^def problem_from_conversation\b", "sal_plugins/conversation.py"),
    ],
)
def test_one_definition(definition: str, home: str) -> None:
    found = where(definition)
    assert len(found) == 1 and only_in(found, home), found


def test_no_second_copy_of_the_wire_or_the_fault_policy() -> None:
    assert where(r"_TRANSIENT_(?:STATUS|NAMES|4XX)\b") == []
    assert only_in(where(r"continue_final_message\"?\s*:\s*True"), "sal_plugins/openai_wire.py")
    # No integration opens an HTTP client of its own: the one OpenAI client is the solver's.
    assert only_in(where(r"\bAsyncOpenAI\("), "sal_plugins/solvers/openai.py")
