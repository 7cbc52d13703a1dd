"""Solvers: the models that write solutions.

``OpenAISolver`` talks to any OpenAI-compatible server; ``LlamaCppSolver`` runs the embedded default
model in-process (extra ``local``); ``ScriptedSolver`` is a deterministic fake for tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sal_plugins.solvers.base import (
    ContinuationMode,
    Generation,
    GenerationRequest,
    Pricing,
    Solver,
    SolverResponse,
    StopKind,
)
from sal_plugins.solvers.scripted import ScriptedSolver, fail_calls

if TYPE_CHECKING:
    from sal_plugins.solvers.llamacpp import LlamaCppSolver
    from sal_plugins.solvers.openai import OpenAISolver

__all__ = [
    "ContinuationMode",
    "Generation",
    "GenerationRequest",
    "LlamaCppSolver",
    "OpenAISolver",
    "Pricing",
    "ScriptedSolver",
    "Solver",
    "SolverResponse",
    "StopKind",
    "fail_calls",
]

_LAZY = {
    "OpenAISolver": "sal_plugins.solvers.openai",
    "LlamaCppSolver": "sal_plugins.solvers.llamacpp",
}


def __getattr__(name: str) -> Any:
    # Adapters import their SDKs; load them only when asked for.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
