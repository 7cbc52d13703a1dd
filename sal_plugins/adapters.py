"""Former home of the pieces adapter packages build on; kept for code written against it.

New code imports from where each piece lives: :func:`sal_plugins.sync.run_sync`,
:mod:`sal_plugins.openai_wire` (the OpenAI-compatible wire format) and :mod:`sal_plugins.faults`
(the fault policy: transient errors, ``Retry-After``, SDK error translation).
"""

from __future__ import annotations

from sal_plugins.faults import parse_retry_after, translate_openai_error
from sal_plugins.openai_wire import generation_from_choice, stop_kind_of
from sal_plugins.sync import run_sync

__all__ = [
    "generation_from_choice",
    "parse_retry_after",
    "run_sync",
    "stop_kind_of",
    "translate_openai_error",
]
