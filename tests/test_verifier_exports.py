"""The public verifier names are a contract: pinned here, and each one imports."""

from __future__ import annotations

import sal_plugins.verifiers as verifiers

CONTRACT = {
    "PoolingPRM",
    "ClassifyRM",
    "TEIReward",
    "ChatLogprobPRM",
    "JudgeVerifier",
    "SelfCertaintyVerifier",
    "FunctionVerifier",
    "ArithmeticVerifier",
    "CodeTestVerifier",
    "EnsembleVerifier",
    "CascadeVerifier",
}


def test_contract_names_are_exported_and_import() -> None:
    assert set(verifiers.__all__) >= CONTRACT
    for name in verifiers.__all__:
        value = getattr(verifiers, name)
        assert value is not None
        if name in CONTRACT:
            assert value.__doc__ and "Example:" in value.__doc__, name
