"""A scripted OpenAI-compatible server on loopback that calls tools and fills schemas in.

The server is the core repository's ``tests/_scripted_openai_server.py`` (plain JSON and SSE, no
``stop_reason``, like OpenAI and llama.cpp), loaded from its file: the core keeps its tests as
scripts, not a package. :func:`tool_calling_reply` is a deterministic stand-in for a chat model
that uses tools and structured output, enough for LangChain's standard integration tests:

* tools bound and the last message the user's (or a tool forced by ``tool_choice``): it calls
  the forced tool, else the tool named in the user's text, else the first, with arguments made
  from the tool's JSON schema and the user's text;
* ``response_format`` of ``json_schema`` or ``json_object``: a JSON object (for ``json_object``,
  with the keys the prompt quotes);
* otherwise a short worked answer that states its final answer.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["MODEL", "last_user_text", "scripted_server_module", "tool_calling_reply"]

_PATH = Path(__file__).resolve().parents[4] / "tests" / "_scripted_openai_server.py"
_NAME = "sal_tests_scripted_openai_server"

MODEL = "scripted"

ANSWER = (
    "Hello! Thank you for the question.\n\n"
    "I read it twice before writing this.\n\n"
    "Therefore, the final answer is: $\\boxed{42}$."
)
"""Every plain answer: three steps, the last stating the answer, and a ``you`` to stop at."""


def scripted_server_module() -> ModuleType:
    """``tests/_scripted_openai_server.py`` of the core repository, imported once."""
    module = sys.modules.get(_NAME)
    if module is None:
        spec = importlib.util.spec_from_file_location(_NAME, _PATH)
        if spec is None or spec.loader is None:  # pragma: no cover - a broken checkout
            raise ImportError(f"cannot load the scripted server from {_PATH}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module  # before running it: dataclasses look their module up
        spec.loader.exec_module(module)
    return module


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message of a chat-completions body."""
    text: str = scripted_server_module().last_user_text(body)
    return text


def _kind(schema: dict[str, Any]) -> str | None:
    """The JSON type of a property; for ``Optional[...]``, the type that is not null."""
    kind = schema.get("type")
    if kind is None and "anyOf" in schema:
        kind = next((s.get("type") for s in schema["anyOf"] if s.get("type") != "null"), None)
    return kind if isinstance(kind, str) else None


def _fill(schema: dict[str, Any], text: str) -> dict[str, Any]:
    """An object of ``schema`` (a JSON object schema) with every property set from ``text``.

    Integers take the numbers of ``text`` in order (``0`` when there are none left); strings
    the first text in single quotes, else a phrase naming the property.
    """
    numbers = iter(int(n) for n in re.findall(r"-?\d+", text))
    quoted = re.findall(r"'([^']+)'", text)
    filled: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if _kind(prop) in ("integer", "number"):
            filled[name] = next(numbers, 0)
        else:
            filled[name] = quoted[0] if quoted else f"{name} for: {text.strip()[:60]}"
    return filled


def _tool_call(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice", "auto")
    last = (body.get("messages") or [{}])[-1]
    if not tools or choice == "none":
        return None
    forced = choice == "required" or isinstance(choice, dict)
    if not forced and last.get("role") != "user":
        return None  # the tool results are in: answer
    text = last_user_text(body)
    named = [t for t in tools if t["name"] in text]
    if isinstance(choice, dict):
        named = [t for t in tools if t["name"] == choice["function"]["name"]]
    tool = (named or tools)[0]
    arguments = _fill(tool.get("parameters") or {}, text)
    return {
        "id": f"call_{zlib.crc32((tool['name'] + text).encode()):08x}",
        "type": "function",
        "function": {"name": tool["name"], "arguments": json.dumps(arguments, ensure_ascii=False)},
    }


def _structured(body: dict[str, Any]) -> str | None:
    response_format = body.get("response_format") or {}
    text = last_user_text(body)
    if response_format.get("type") == "json_schema":
        return json.dumps(_fill(response_format["json_schema"]["schema"], text))
    if response_format.get("type") == "json_object":
        keys = re.findall(r"'(\w+)'", text) or ["answer"]
        return json.dumps({key: f"{key} for: {text.strip()[:60]}" for key in keys})
    return None


def tool_calling_reply(body: dict[str, Any]) -> str | dict[str, Any]:
    """The scripted model's reply to a chat-completions body (see the module docstring)."""
    call = _tool_call(body)
    if call is not None:
        return {"content": None, "tool_calls": [call]}
    structured = _structured(body)
    return structured if structured is not None else ANSWER
