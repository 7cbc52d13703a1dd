"""Shared translation helpers: strategy construction, solver coercion, result rendering."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from sal_plugins.errors import ConfigError
from sal_plugins.results import SearchResult
from sal_plugins.strategies import SearchStrategy, strategy_class

__all__ = [
    "Output",
    "RawSearchResult",
    "build_strategy",
    "check_output",
    "output_text",
    "problem_from_messages",
    "raw_response",
    "result_metadata",
]

Output = Literal["text", "answer"]
"""What a facade returns as text: the selected solution (``"text"``) or its final answer."""


def coerce_solver(solver: Any) -> Any:
    """Wrap a LlamaIndex LLM as a sal solver; leave anything else for the strategy to validate."""
    if isinstance(solver, BaseLLM):
        from llama_index_sal.solver import LlamaIndexSolver

        return LlamaIndexSolver(llm=solver)
    return solver


def coerce_verifier(verifier: Any) -> Any:
    """A LlamaIndex LLM as verifier becomes an LLM judge; anything else is left to the strategy."""
    if isinstance(verifier, BaseLLM):
        from sal_plugins.verifiers.judge import JudgeVerifier

        from llama_index_sal.solver import LlamaIndexSolver

        return JudgeVerifier(solver=LlamaIndexSolver(llm=verifier))
    return verifier


def build_strategy(strategy: str | SearchStrategy, **kwargs: Any) -> SearchStrategy:
    """A configured strategy from a public name and its keyword arguments.

    ``strategy`` may also be an already configured :class:`SearchStrategy` (then no keyword
    arguments may be given). A LlamaIndex ``LLM`` passed as ``solver`` is wrapped in a
    :class:`~llama_index_sal.solver.LlamaIndexSolver`; one passed as ``verifier`` becomes a
    :class:`~sal_plugins.verifiers.judge.JudgeVerifier` (an LLM judge, scale 0-10) over it.
    """
    if isinstance(strategy, SearchStrategy):
        if kwargs:
            names = ", ".join(sorted(kwargs))
            raise ConfigError(
                f"got a configured {type(strategy).__name__} and keyword arguments ({names}): "
                "pass either the strategy object or a strategy name with its arguments"
            )
        return strategy
    if not isinstance(strategy, str):
        raise ConfigError(
            f"strategy must be a name such as 'beam_search' or a SearchStrategy, "
            f"got {type(strategy).__name__}"
        )
    if "solver" not in kwargs:
        raise ConfigError(
            f"{strategy} needs a solver: pass solver=<a LlamaIndex LLM or a sal Solver>"
        )
    kwargs["solver"] = coerce_solver(kwargs["solver"])
    if "verifier" in kwargs:
        kwargs["verifier"] = coerce_verifier(kwargs["verifier"])
    return strategy_class(strategy)(**kwargs)


def check_output(output: str) -> Output:
    """Validate an ``output=`` argument."""
    if output == "text":
        return "text"
    if output == "answer":
        return "answer"
    raise ConfigError(f"output must be 'text' or 'answer', got {output!r}")


def output_text(result: SearchResult, output: Output) -> str:
    """The text a facade hands back: the selected solution, or its extracted answer."""
    if output == "answer":
        return result.answer if result.answer is not None else result.text
    return result.text


@dataclass
class RawSearchResult(SearchResult):
    """A :class:`~sal_plugins.results.SearchResult` that also reads as a raw response mapping.

    LlamaIndex's token counting (``TokenCountingHandler``) turns a response's ``raw`` into a dict
    and reads its ``"usage"``; this result answers with every token the search spent (the
    solver's and the verifier's), so token and cost callbacks count the search. In every other
    respect it is the search's result.
    """

    def keys(self) -> list[str]:
        """The one key of the mapping view."""
        return ["usage"]

    def __getitem__(self, key: str) -> dict[str, int]:
        if key != "usage":
            raise KeyError(key)
        usage = self.usage
        return {
            "prompt_tokens": usage.prompt_tokens + usage.verifier_prompt_tokens,
            "completion_tokens": usage.completion_tokens + usage.verifier_completion_tokens,
            "total_tokens": usage.total_tokens,
        }


def raw_response(result: SearchResult) -> RawSearchResult:
    """``result`` as a response's ``raw`` (see :class:`RawSearchResult`)."""
    return RawSearchResult(**{f.name: getattr(result, f.name) for f in fields(result)})


def result_metadata(result: SearchResult) -> dict[str, Any]:
    """JSON-ready metadata for a response: the search summary plus the problem."""
    return {"problem": result.problem, **result.summary()}


def problem_from_messages(messages: Sequence[ChatMessage]) -> str:
    """The problem a chat conversation poses.

    A single user turn is the problem itself. Longer conversations are rendered as a transcript
    (``Role: content`` per turn) so earlier turns stay in view. System messages from the caller
    come first, as context; the search keeps its own system prompt for the solver.
    """
    system = [m.content or "" for m in messages if m.role == MessageRole.SYSTEM]
    turns = [m for m in messages if m.role != MessageRole.SYSTEM]
    if len(turns) == 1 and turns[0].role == MessageRole.USER:
        body = turns[0].content or ""
    else:
        body = "\n\n".join(f"{_role_label(m.role)}: {m.content or ''}" for m in turns)
    return "\n\n".join(part for part in [*system, body] if part.strip())


def _role_label(role: MessageRole | str) -> str:
    value = role.value if isinstance(role, MessageRole) else str(role)
    return value.capitalize()
