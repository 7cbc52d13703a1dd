"""Shared fixtures for the core tests.

``llama_server`` serves the embedded SmolLM2 model with ``llama_cpp.server`` on a free loopback
port for the whole session and yields its OpenAI-compatible base URL (ending in ``/v1``). Tests
that use it (or the in-process model) are marked ``@pytest.mark.model``, so
``pytest -m "not model"`` runs the fast suite alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from sal_plugins.embedded import serve_embedded_model

if TYPE_CHECKING:
    from sal_plugins.solvers.llamacpp import LlamaCppSolver


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/v1``) of llama_cpp.server serving SmolLM2-135M."""
    with serve_embedded_model(n_ctx=2048) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def embedded_llama() -> LlamaCppSolver:
    """One in-process ``LlamaCppSolver`` over the bundled model, shared by the session."""
    from sal_plugins.embedded import embedded_solver

    solver = embedded_solver(n_ctx=2048)
    solver.load()
    return solver
