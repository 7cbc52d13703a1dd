"""What the runnables and the chat-model facade share: inputs, building, running, outputs.

Everything here translates between LangChain values and sal-plugins values: strategies are built
by the core's :func:`sal_plugins.strategies.build_strategy` (with chat models coerced into
solvers and judges), messages are read by the core's one conversation rule
(:func:`sal_plugins.conversation.problem_from_conversation`), and the search itself is the
strategy's ``astream``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
from langchain_core.runnables import RunnableConfig
from sal_plugins import strategies
from sal_plugins.conversation import Problem, ToolCall, Turn, problem_from_conversation
from sal_plugins.errors import ConfigError, InputError
from sal_plugins.events import SearchEvent, SearchFinished
from sal_plugins.results import SearchResult
from sal_plugins.solvers.base import Solver
from sal_plugins.strategies import SearchStrategy

from langchain_sal._run import bound_to_run
from langchain_sal.solvers import LangChainSolver

__all__ = [
    "EVENT_PREFIX",
    "JUDGE_TAGS",
    "Output",
    "Problem",
    "build_strategy",
    "coerce_solver",
    "coerce_verifier",
    "parse_input",
    "run_search",
    "search_message",
    "shape_output",
    "turns_of",
]

Output = Literal["result", "answer", "message"]
"""What a runnable returns: the ``SearchResult``, the answer string, or an ``AIMessage``."""

EVENT_PREFIX = "sal."
"""Custom events are named ``"sal." + event.kind`` (``"sal.candidates_scored"``, ...)."""

JUDGE_TAGS = ("sal_judge", "nostream")
"""Tags on the calls of a chat model used as judge."""


def turns_of(messages: Sequence[BaseMessage]) -> list[Turn]:
    """LangChain messages as the core's neutral turns (other message types are left out).

    ``HumanMessage`` is a user turn, ``SystemMessage`` a system turn, ``AIMessage`` an assistant
    turn with its tool calls, ``ToolMessage`` a tool turn (``status="error"`` marks it failed).
    """
    turns = []
    for message in messages:
        if isinstance(message, HumanMessage):
            turns.append(Turn("user", message.text))
        elif isinstance(message, SystemMessage):
            turns.append(Turn("system", message.text))
        elif isinstance(message, AIMessage):
            calls = tuple(
                ToolCall(call["name"], call["args"], call.get("id")) for call in message.tool_calls
            )
            turns.append(Turn("assistant", message.text, tool_calls=calls))
        elif isinstance(message, ToolMessage):
            turns.append(
                Turn(
                    "tool",
                    message.text,
                    tool_call_id=message.tool_call_id,
                    tool_name=message.name,
                    failed=message.status == "error",
                )
            )
    return turns


def parse_input(value: Any) -> Problem:
    """Read a problem from a string, a dict, a prompt value or a list of messages.

    A dict gives the problem under ``"problem"`` (or ``"question"``), optionally a
    ``"system_prompt"``, or holds ``"messages"`` (LangGraph's ``MessagesState``). Messages are
    read by the core's one rule (:func:`sal_plugins.conversation.problem_from_conversation`):
    system messages become the system prompt and the last human message is the problem, followed
    by the results of the tool calls made after it (an agent's tool calls and tool messages);
    turns before it are not sent to the solver.
    """
    if isinstance(value, str):
        return Problem(value)
    if isinstance(value, PromptValue):
        return problem_from_conversation(turns_of(value.to_messages()))
    if isinstance(value, BaseMessage):
        return problem_from_conversation(turns_of([value]))
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
        return problem_from_conversation(turns_of(messages))
    raise InputError(
        f"cannot read a problem from {type(value).__name__}: pass a string, a dict with "
        "'problem', or a list of messages"
    )


# --- building -----------------------------------------------------------------------------------


def coerce_solver(solver: Any) -> Solver:
    """A sal solver for ``solver``: chat models are wrapped in :class:`LangChainSolver`."""
    if isinstance(solver, BaseChatModel):
        return LangChainSolver(solver)
    if isinstance(solver, Solver):
        return solver
    raise ConfigError(
        "solver must be a LangChain chat model or a sal-plugins Solver, got "
        f"{type(solver).__name__}"
    )


def coerce_verifier(verifier: Any) -> Any:
    """A sal verifier for ``verifier``: a chat model becomes an LLM judge (``JudgeVerifier``).

    Sal verifiers and callables pass through (the strategy wraps callables itself).
    """
    if not isinstance(verifier, BaseChatModel):
        return verifier
    from sal_plugins.verifiers import JudgeVerifier

    return JudgeVerifier(solver=LangChainSolver(verifier, tags=JUDGE_TAGS))


def build_strategy(strategy: str | SearchStrategy, **kwargs: Any) -> SearchStrategy:
    """The core's :func:`~sal_plugins.strategies.build_strategy`, LangChain models accepted.

    A chat model passed as ``solver`` is wrapped in a :class:`LangChainSolver`; one passed as
    ``verifier`` becomes a ``JudgeVerifier`` (an LLM judge) over it.

    Raises:
        ConfigError: naming the fix (unknown name, no solver, a setting the strategy lacks, ...).
    """
    return strategies.build_strategy(
        strategy, coerce_solver=coerce_solver, coerce_verifier=coerce_verifier, **kwargs
    )


# --- running ------------------------------------------------------------------------------------


async def run_search(
    strategy: SearchStrategy, problem: Problem, config: RunnableConfig, *, blocking: bool = False
) -> SearchResult:
    """Run ``strategy`` as part of the run ``config`` belongs to.

    For the duration of the search ``config`` is the current run (a context variable, see
    :mod:`langchain_sal._run`), so every chat-model call the search makes, the judge's included,
    is a child of that run; ``blocking`` (the sync entry points) has them use the models' sync
    API on worker threads. A system prompt that came with the problem replaces the strategy's.
    Every progress event is dispatched as a LangChain custom event named
    ``"sal." + event.kind`` with the sal event as its data (seen by ``astream_events`` and by
    callback handlers' ``on_custom_event``). Inside a LangGraph node it is also written to
    LangGraph's stream writer as ``{"name": "sal." + event.kind, "data": event}``, which
    ``graph.stream(..., stream_mode="custom")`` yields.
    """
    if problem.system_prompt is not None:
        strategy = strategy.model_copy(update={"system_prompt": problem.system_prompt})
    result: SearchResult | None = None
    write = _graph_stream_writer()
    with bound_to_run(config, blocking=blocking):
        async for event in strategy.astream(problem.text):
            await _dispatch(event, config)
            if write is not None:
                write({"name": EVENT_PREFIX + event.kind, "data": event})
            if isinstance(event, SearchFinished):
                result = event.result
    if result is None:  # pragma: no cover - the driver always ends with SearchFinished
        raise AssertionError("the search ended without a result")
    return result


async def _dispatch(event: SearchEvent, config: RunnableConfig) -> None:
    if config.get("callbacks") is None:
        return  # no run to report to
    await adispatch_custom_event(EVENT_PREFIX + event.kind, event, config=config)


def _graph_stream_writer() -> Callable[[Any], None] | None:
    """LangGraph's stream writer when this runs inside a LangGraph node or task, else ``None``.

    LangGraph is optional: without it installed, or outside a graph run (no current runnable
    config, or one without LangGraph's runtime), there is nothing to write to.
    """
    try:
        from langgraph.config import get_stream_writer
    except ImportError:
        return None
    try:
        return get_stream_writer()
    except (RuntimeError, KeyError):
        return None


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
