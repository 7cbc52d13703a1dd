"""The integrations build on the core's public names only, and those names stay put."""

from __future__ import annotations

import re
from pathlib import Path

import sal_plugins.adapters

ROOT = Path(__file__).resolve().parent.parent
PRIVATE_IMPORT = re.compile(r"^\s*(?:from|import)\s+sal_plugins(?:\.\w+)*\._\w+", re.MULTILINE)


def test_adapters_surface_is_pinned() -> None:
    assert sorted(sal_plugins.adapters.__all__) == [
        "generation_from_choice",
        "parse_retry_after",
        "run_sync",
        "stop_kind_of",
        "translate_openai_error",
    ]
    for name in sal_plugins.adapters.__all__:
        assert callable(getattr(sal_plugins.adapters, name))


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
