"""Translate whatever a LlamaIndex LLM raised into sal-plugins errors.

LlamaIndex LLMs raise their SDK's exceptions unchanged (``openai.RateLimitError``,
``httpx.ReadTimeout``, ``anthropic.APIStatusError``, ...). What is transient and how long to wait
is the core's fault policy (:func:`sal_plugins.faults.translate_sdk_error`): the same rules as
every other adapter.
"""

from __future__ import annotations

from sal_plugins.errors import SalError
from sal_plugins.faults import translate_sdk_error

__all__ = ["map_llm_error"]


def map_llm_error(error: BaseException, source: str) -> SalError:
    """The sal error for ``error`` raised by the LLM named ``source``."""
    return translate_sdk_error(error, source)
