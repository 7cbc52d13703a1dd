"""Verifiers: the models and functions that score solutions, step by step or as a whole."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sal_plugins.verifiers.base import (
    Granularity,
    Judgement,
    Trajectory,
    Verifier,
    check_scores,
)
from sal_plugins.verifiers.function import FunctionVerifier
from sal_plugins.verifiers.scripted import ScriptedVerifier

if TYPE_CHECKING:
    from sal_plugins.verifiers.arithmetic import ArithmeticVerifier
    from sal_plugins.verifiers.chat_logprob import ChatLogprobPRM
    from sal_plugins.verifiers.classify import ClassifyRM
    from sal_plugins.verifiers.code_tests import CodeTestVerifier
    from sal_plugins.verifiers.compose import CascadeVerifier, EnsembleVerifier
    from sal_plugins.verifiers.judge import JudgeVerifier
    from sal_plugins.verifiers.pooling import PoolingPRM
    from sal_plugins.verifiers.presets import PRM_PRESETS, prm_preset
    from sal_plugins.verifiers.self_certainty import SelfCertaintyVerifier
    from sal_plugins.verifiers.tei import TEIReward

__all__ = [
    "PRM_PRESETS",
    "ArithmeticVerifier",
    "CascadeVerifier",
    "ChatLogprobPRM",
    "ClassifyRM",
    "CodeTestVerifier",
    "EnsembleVerifier",
    "FunctionVerifier",
    "Granularity",
    "JudgeVerifier",
    "Judgement",
    "PoolingPRM",
    "ScriptedVerifier",
    "SelfCertaintyVerifier",
    "TEIReward",
    "Trajectory",
    "Verifier",
    "check_scores",
    "prm_preset",
]

_LAZY = {
    "ArithmeticVerifier": "sal_plugins.verifiers.arithmetic",
    "CascadeVerifier": "sal_plugins.verifiers.compose",
    "ChatLogprobPRM": "sal_plugins.verifiers.chat_logprob",
    "ClassifyRM": "sal_plugins.verifiers.classify",
    "CodeTestVerifier": "sal_plugins.verifiers.code_tests",
    "EnsembleVerifier": "sal_plugins.verifiers.compose",
    "JudgeVerifier": "sal_plugins.verifiers.judge",
    "PRM_PRESETS": "sal_plugins.verifiers.presets",
    "PoolingPRM": "sal_plugins.verifiers.pooling",
    "SelfCertaintyVerifier": "sal_plugins.verifiers.self_certainty",
    "TEIReward": "sal_plugins.verifiers.tei",
    "prm_preset": "sal_plugins.verifiers.presets",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
