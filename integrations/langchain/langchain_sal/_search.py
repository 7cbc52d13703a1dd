"""What the runnables and the chat-model facade share: inputs, adapters, running, outputs.

Everything here translates between LangChain values and sal-plugins values; the search itself is
the strategy's ``astream``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langchain_core.callbacks import adispatch_custom_event
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_messages,
)
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import BaseModel
from sal_plugins.errors import ConfigError, InputError
from sal_plugins.events import SearchEvent, SearchFinished
from sal_plugins.results import SearchResult
from sal_plugins.solvers.base import Solver
from sal_plugins.strategies.base import SearchStrategy

from langchain_sal.solvers import LangChainSolver

__all__ = [
    "EVENT_PREFIX",
    "Output",
    "Problem",
    "adapt_solver",
    "adapt_verifier",
    "bind_to_run",
    "parse_input",
    "run_search",
    "search_message",
    "shape_output",
    "strategy_settings",
    "tool_results",
]

Output = Literal["result", "answer", "message"]

EVENT_PREFIX = "sal."
"""Custom events are named ``"sal." + event.kind`` (``"sal.candidates_scored"``, ...)."""

_STRATEGY_PARTS = frozenset({"solver", "verifier"})
_OPAQUE = (str, bytes, int, float, bool, dict, set, frozenset, type, Runnable)

JUDGE_TAGS = ("sal_judge", "nostream")
"""Tags on the calls of a chat model used as judge."""


@dataclasses.dataclass(frozen=True)
class Problem:
    """A problem taken from a LangChain input.

    Attributes:
        text: the problem to solve.
        system_prompt: a system prompt given with the input (``None``: the strategy's own).
    """

    text: str
    system_prompt: str | None = None


def _from_messages(messages: Sequence[BaseMessage]) -> Problem:
    system = [m.text for m in messages if isinstance(m, SystemMessage) and m.text.strip()]
    asked = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    if not asked:
        raise InputError("the messages hold no human message: the last one is the problem to solve")
    question = messages[asked[-1]].text
    results = tool_results(messages[asked[-1] + 1 :])
    text = f"{question}\n\n{results}" if results else question
    return Problem(text, "\n\n".join(system) if system else None)


def _call_text(name: str, args: Mapping[str, Any]) -> str:
    arguments = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())
    return f"{name}({arguments})"


def tool_results(turns: Sequence[BaseMessage]) -> str:
    """The tool calls among ``turns`` and what they returned, as text for the problem.

    An agent's conversation after the question holds the model's tool calls and the
    ``ToolMessage`` answering each; a search started from that point must see them. Returns
    ``""`` when ``turns`` hold no tool result.
    """
    calls = {
        call["id"]: call
        for message in turns
        if isinstance(message, AIMessage)
        for call in message.tool_calls
        if call.get("id")
    }
    lines = []
    for message in turns:
        if not isinstance(message, ToolMessage):
            continue
        call = calls.get(message.tool_call_id)
        if call is not None:
            made = _call_text(call["name"], call["args"])
        else:
            made = message.name or "tool"
        failed = " failed" if message.status == "error" else ""
        lines.append(f"- {made}{failed}: {message.text}")
    if not lines:
        return ""
    return "Tool calls made for this question and their results:\n" + "\n".join(lines)


def parse_input(value: Any) -> Problem:
    """Read a problem from a string, a dict, a prompt value or a list of messages.

    A dict gives the problem under ``"problem"`` (or ``"question"``), optionally a
    ``"system_prompt"``, or holds ``"messages"`` (LangGraph's ``MessagesState``). With messages,
    system messages become the system prompt and the last human message is the problem, followed
    by the results of the tool calls made after it (an agent's tool calls and tool messages,
    see :func:`tool_results`); turns before it are not sent to the solver.
    """
    if isinstance(value, str):
        return Problem(value)
    if isinstance(value, PromptValue):
        return _from_messages(value.to_messages())
    if isinstance(value, BaseMessage):
        return _from_messages([value])
    if isinstance(value, Mapping):
        for key in ("problem", "question"):
            if isinstance(value.get(key), str):
                system = value.get("system_prompt")
                return Problem(value[key], system if isinstance(system, str) else None)
        if "messages" in value:
            return parse_input(value["messages"])
        raise InputError(
            f"the input dict has no 'problem' or 'question' text (keys: {sorted(value)})"
        )
    if isinstance(value, Sequence):
        try:
            messages = convert_to_messages(value)
        except (ValueError, TypeError, NotImplementedError) as error:
            raise InputError(f"cannot read the input messages: {error}") from error
        return _from_messages(messages)
    raise InputError(
        f"cannot read a problem from {type(value).__name__}: pass a string, a dict with "
        "'problem', or a list of messages"
    )


# --- adapters -----------------------------------------------------------------------------------


def adapt_solver(solver: Any) -> Solver:
    """A sal solver for ``solver``: chat models are wrapped in :class:`LangChainSolver`."""
    if isinstance(solver, BaseChatModel):
        return LangChainSolver(solver)
    if isinstance(solver, Solver):
        return solver
    raise ConfigError(
        "solver must be a LangChain chat model or a sal-plugins Solver, got "
        f"{type(solver).__name__}"
    )


def adapt_verifier(verifier: Any) -> Any:
    """A sal verifier for ``verifier``: a chat model becomes an LLM judge (``JudgeVerifier``).

    Sal verifiers and callables pass through (the strategy wraps callables itself).
    """
    if not isinstance(verifier, BaseChatModel):
        return verifier
    try:
        from sal_plugins.verifiers.judge import JudgeVerifier
    except ImportError:
        raise ConfigError(
            "a chat model as verifier needs sal_plugins.verifiers.JudgeVerifier, which this "
            "sal-plugins version lacks: pass a sal verifier or a scoring function instead"
        ) from None
    return JudgeVerifier(solver=LangChainSolver(verifier, tags=JUDGE_TAGS))


def _rebind(value: Any, config: RunnableConfig, blocking: bool, depth: int = 0) -> Any:
    """``value`` with every :class:`LangChainSolver` inside it bound to ``config``.

    Looks through the attributes of verifiers (a judge's ``solver``, the members of an ensemble
    or a cascade) a few levels deep and copies only what changes; the original is left alone.
    """
    if isinstance(value, LangChainSolver):
        return value.with_config(config, blocking=blocking)
    if depth > 3 or value is None or isinstance(value, _OPAQUE):
        return value
    if isinstance(value, list | tuple):
        items = [_rebind(item, config, blocking, depth + 1) for item in value]
        changed = any(a is not b for a, b in zip(items, value, strict=True))
        return type(value)(items) if changed else value
    if isinstance(value, BaseModel):
        attributes = {name: getattr(value, name) for name in type(value).model_fields}
    else:
        attributes = dict(getattr(value, "__dict__", {}))
    update = {}
    for name, item in attributes.items():
        rebound = _rebind(item, config, blocking, depth + 1)
        if rebound is not item:
            update[name] = rebound
    if not update:
        return value
    if isinstance(value, BaseModel):
        return value.model_copy(update=update)
    clone = copy.copy(value)
    vars(clone).update(update)  # also fine for frozen dataclasses; no __init__ side effects
    return clone


def bind_to_run(
    strategy: SearchStrategy, config: RunnableConfig, problem: Problem, *, blocking: bool
) -> SearchStrategy:
    """A copy of ``strategy`` whose model calls are children of the run ``config`` belongs to.

    ``blocking`` is set on the sync paths: chat models are then called through their sync API
    on worker threads (see :attr:`LangChainSolver.blocking`).
    """
    update: dict[str, Any] = {
        "solver": _rebind(strategy.solver, config, blocking),
        "verifier": _rebind(strategy.verifier, config, blocking),
    }
    if problem.system_prompt is not None:
        update["system_prompt"] = problem.system_prompt
    return strategy.model_copy(update=update)


def strategy_settings(strategy_class: type[SearchStrategy]) -> list[str]:
    """The keyword arguments of a strategy other than its solver and verifier."""
    return [name for name in strategy_class.model_fields if name not in _STRATEGY_PARTS]


# --- running ------------------------------------------------------------------------------------


async def run_search(
    strategy: SearchStrategy, problem: Problem, config: RunnableConfig, *, blocking: bool = False
) -> SearchResult:
    """Run ``strategy`` as part of the run ``config`` belongs to.

    Model calls become children of that run, and every progress event is dispatched as a
    LangChain custom event named ``"sal." + event.kind`` with the sal event as its data (seen by
    ``astream_events`` and by callback handlers' ``on_custom_event``).
    """
    bound = bind_to_run(strategy, config, problem, blocking=blocking)
    result: SearchResult | None = None
    async for event in bound.astream(problem.text):
        await _dispatch(event, config)
        if isinstance(event, SearchFinished):
            result = event.result
    if result is None:  # pragma: no cover - the driver always ends with SearchFinished
        raise AssertionError("the search ended without a result")
    return result


async def _dispatch(event: SearchEvent, config: RunnableConfig) -> None:
    if config.get("callbacks") is None:
        return  # no run to report to
    await adispatch_custom_event(EVENT_PREFIX + event.kind, event, config=config)


# --- outputs ------------------------------------------------------------------------------------


def search_message(result: SearchResult) -> AIMessage:
    """The selected completion as an ``AIMessage``; the search summary is in its metadata.

    ``response_metadata["sal"]`` holds :meth:`SearchResult.summary` (answer, score, stop reason,
    usage); ``usage_metadata`` counts every token the search spent, the verifier's included.
    """
    usage = result.usage
    return AIMessage(
        content=result.text,
        response_metadata={"sal": result.summary(), "model_provider": "sal"},
        usage_metadata={
            "input_tokens": usage.prompt_tokens + usage.verifier_prompt_tokens,
            "output_tokens": usage.completion_tokens + usage.verifier_completion_tokens,
            "total_tokens": usage.total_tokens,
        },
    )


def shape_output(result: SearchResult, output: Output) -> SearchResult | str | AIMessage:
    """The runnable's output for ``output="result" | "answer" | "message"``.

    ``"answer"`` is the extracted final answer, or the whole selected completion when no answer
    could be extracted from it.
    """
    if output == "result":
        return result
    if output == "answer":
        return result.answer if result.answer is not None else result.text
    return search_message(result)
