"""Translation of chat-model errors into sal-plugins errors (the only place that does it).

LangChain chat models raise their provider SDK's exceptions unchanged. What is transient and how
long to wait is the core's fault policy (:func:`sal_plugins.faults.translate_sdk_error`): the same
rules as every other adapter.
"""

from __future__ import annotations

from sal_plugins.errors import SalError
from sal_plugins.faults import translate_sdk_error

__all__ = ["translate_error"]


def translate_error(error: BaseException, model: str) -> SalError:
    """The sal-plugins error for an exception raised by a call of the chat model ``model``."""
    return translate_sdk_error(error, model)
