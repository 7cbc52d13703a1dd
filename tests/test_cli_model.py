"""``sal run`` on the real embedded model (SmolLM2-135M in-process), with tiny settings."""

from __future__ import annotations

import json

import pytest

from sal_plugins import cli


@pytest.mark.model
def test_sal_run_on_the_embedded_model(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        ["run", "What is 23 + 48?", "--n", "2", "--max-tokens", "48", "--seed", "0", "--json"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert data["strategy"] == "best_of_n"
    assert data["usage"]["completion_tokens"] > 0
    assert data["usage"]["verifier_calls"] == 1
    # a sample cut at max_tokens is not a finished candidate, so one or two come back
    assert 1 <= len(data["completions"]) <= 2
    assert all(c["text"].strip() for c in data["completions"])
    assert data["stop_reason"] in ("finished", "max_steps")
    assert "best_of_n: searching" in captured.err
