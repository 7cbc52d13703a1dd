"""A real OpenAI-compatible server for the integration tests: ``llama_cpp.server`` on loopback.

It serves the embedded SmolLM2-135M-Instruct (``sal_plugins.embedded.serve_embedded_model``), once
per session; the tests talk to it through LlamaIndex's ``OpenAILike``. Generations stay tiny
(``MAX_TOKENS``, n <= 2): the model runs on a shared CPU.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llama_index.llms.openai_like import OpenAILike
from sal_plugins.embedded import serve_embedded_model

MAX_TOKENS = 32


@pytest.fixture(scope="session")
def llama_server_url() -> Iterator[str]:
    """Base URL (ending in ``/v1``) of llama_cpp.server serving the embedded model."""
    with serve_embedded_model(startup_timeout=300) as base_url:
        yield base_url


@pytest.fixture
def llm(llama_server_url: str) -> OpenAILike:
    """OpenAILike pointed at the loopback server (generous timeout: the CPU may be shared)."""
    return OpenAILike(
        api_base=llama_server_url,
        api_key="x",
        model="smollm2",
        is_chat_model=True,
        timeout=600,
    )
