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
    from sal_plugins.verifiers.pooling import PoolingPRM

__all__ = [
    "ArithmeticVerifier",
    "FunctionVerifier",
    "Granularity",
    "Judgement",
    "PoolingPRM",
    "ScriptedVerifier",
    "Trajectory",
    "Verifier",
    "check_scores",
]

_LAZY = {
    "ArithmeticVerifier": "sal_plugins.verifiers.arithmetic",
    "PoolingPRM": "sal_plugins.verifiers.pooling",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
