"""A real OpenAI-compatible server for the integration tests: ``llama_cpp.server`` on loopback.

It serves the embedded SmolLM2-135M-Instruct (``sal_plugins.embedded.serve_embedded_model``), once
per session; the tests talk to it with ``ChatOpenAI``. Keep generations tiny: the model runs on CPU.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_openai import ChatOpenAI
from sal_plugins.embedded import serve_embedded_model

MAX_TOKENS = 32


@pytest.fixture(scope="session")
def llama_server_url() -> Iterator[str]:
    """Base URL (ending in ``/v1``) of llama_cpp.server serving the embedded model."""
    with serve_embedded_model(startup_timeout=300) as base_url:
        yield base_url


@pytest.fixture
def chat_model(llama_server_url: str) -> ChatOpenAI:
    """ChatOpenAI pointed at the loopback server (generous timeout: the CPU may be shared).

    ChatOpenAI sends the token cap as ``max_completion_tokens``, which llama-cpp-python's server
    ignores, so the cap also goes in ``extra_body`` as ``max_tokens``.
    """
    return ChatOpenAI(
        base_url=llama_server_url,
        api_key="x",
        model="smollm2",
        max_tokens=MAX_TOKENS,
        extra_body={"max_tokens": MAX_TOKENS},
        timeout=600,
    )
