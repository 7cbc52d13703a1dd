"""What adapter and integration packages build on: one public, stable surface.

The LangChain and LlamaIndex integrations (and third-party adapters) need a few pieces of the
core that are not part of the search API itself:

* :func:`run_sync`: run a coroutine to completion from sync code, also when the caller is already
  inside a running event loop (a notebook, an async web handler calling sync code);
* the OpenAI wire format: :func:`generation_from_choice` turns a chat or completions ``choice``
  into a :class:`~sal_plugins.solvers.base.Generation`, :func:`stop_kind_of` maps finish and stop
  reasons, :func:`parse_retry_after` reads ``Retry-After`` (seconds, milliseconds or an HTTP
  date), and :func:`translate_openai_error` maps ``openai`` SDK errors to sal-plugins errors.
"""

from __future__ import annotations

from sal_plugins._sync import run_sync
from sal_plugins.solvers._openai_wire import generation_from_choice, parse_retry_after, stop_kind_of
from sal_plugins.solvers._openai_wire import translate_error as translate_openai_error

__all__ = [
    "generation_from_choice",
    "parse_retry_after",
    "run_sync",
    "stop_kind_of",
    "translate_openai_error",
]
