"""The integrations build on the core's public names only, and those names stay put."""

from __future__ import annotations

import re
from pathlib import Path

import sal_plugins.faults
import sal_plugins.openai_wire
import sal_plugins.sync

ROOT = Path(__file__).resolve().parent.parent
PRIVATE_IMPORT = re.compile(r"^\s*(?:from|import)\s+sal_plugins(?:\.\w+)*\._\w+", re.MULTILINE)


def test_the_surfaces_adapters_build_on_are_pinned() -> None:
    assert sorted(sal_plugins.faults.__all__) == [
        "MAX_RETRY_AFTER_S",
        "RetryPolicy",
        "TRANSIENT_STATUSES",
        "is_transient",
        "is_transient_status",
        "looks_transient",
        "parse_retry_after",
        "retry_after_of",
        "status_code_of",
        "translate_openai_error",
        "translate_sdk_error",
    ]
    assert sorted(sal_plugins.openai_wire.__all__) == [
        "VLLM_CONTINUE",
        "cut_at_stop",
        "generation_from_choice",
        "generations_of",
        "logprobs_of",
        "served_by_vllm",
        "stop_kind_in",
        "stop_kind_of",
        "usage_of",
    ]
    assert sal_plugins.sync.__all__ == ["run_sync"]
    for module in (sal_plugins.faults, sal_plugins.openai_wire, sal_plugins.sync):
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)


def test_integration_packages_import_no_private_core_module() -> None:
    sources = [
        *ROOT.glob("integrations/langchain/langchain_sal/**/*.py"),
        *ROOT.glob("integrations/llama_index/llama_index_sal/**/*.py"),
    ]
    assert sources
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0).strip()}"
        for path in sources
        for match in PRIVATE_IMPORT.finditer(path.read_text())
    ]
    assert offenders == []
