"""The public API type-checks the way users write it (mypy --strict on tests/typing)."""

from __future__ import annotations

from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")

USAGE = Path(__file__).parent / "typing" / "public_api_usage.py"


def test_typical_usage_type_checks() -> None:
    stdout, stderr, status = api.run(["--strict", str(USAGE)])
    assert status == 0, stdout + stderr
