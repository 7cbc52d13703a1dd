"""The solver protocol: what a search asks of a chat model, and what it gets back.

A solver continues a partial step-by-step solution ``n`` times. The search engine never talks to a
model any other way, so an adapter for a new provider implements :meth:`Solver.generate` and
nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "ContinuationMode",
    "Generation",
    "GenerationRequest",
    "Pricing",
    "Solver",
    "SolverCapabilities",
    "SolverResponse",
    "StopKind",
    "capabilities_of",
]

StopKind = Literal["delimiter", "end", "length", "unknown"]
"""Why a generation stopped.

* ``"delimiter"``: it reached the step delimiter (the server said which stop string matched);
* ``"end"``: the model ended its answer (EOS), so the solution is finished;
* ``"length"``: it ran out of ``max_tokens``;
* ``"unknown"``: the server said "stop" without saying whether a stop string or EOS caused it
  (OpenAI, llama.cpp). The search treats it as the end of a step; if the solution was in fact
  complete, the next continuation comes back empty and the candidate is marked finished then.
"""

ContinuationMode = Literal["native", "completion", "instructed"]
"""How a solver continues a partial assistant turn.

* ``"native"``: the partial solution is sent as a final assistant message that the server continues
  (vLLM ``continue_final_message``; assistant prefill on Anthropic, Mistral, DeepSeek);
* ``"completion"``: the chat template is rendered client-side and ``/v1/completions`` continues the raw
  text, so the model sees exactly what it would have generated itself;
* ``"instructed"``: for chat-only APIs, the partial solution goes in the user turn with an instruction
  to write only the next step.
"""


@dataclass(frozen=True)
class GenerationRequest:
    """One request for ``n`` continuations of the same partial solution.

    Attributes:
        problem: the user's problem text.
        prefix_steps: the steps written so far (each without the delimiter); empty for a fresh start.
        n: how many independent continuations to return.
        stop: stop strings; empty means generate to the end of the solution.
        temperature: sampling temperature.
        top_p: nucleus-sampling mass; ``None`` leaves the solver's (or server's) default.
        max_tokens: cap on generated tokens per continuation.
        seed: seed of the first continuation; continuation ``i`` uses ``seed + i`` when fanned out.
        system_prompt: system message, if any.
        step_delimiter: text placed between steps when the prefix is rendered.
        logprobs: ask for the log-probability of every generated token.
        top_logprobs: also ask for the ``k`` most likely alternatives at each position.
        max_requests: the most model requests this request may take (the search's call
            budget); ``None`` for no limit. A solver that declares
            ``SolverCapabilities.respects_max_requests`` and has to fan ``n`` out returns fewer
            than ``n`` generations rather than exceed it.
    """

    problem: str
    prefix_steps: tuple[str, ...] = ()
    n: int = 1
    stop: tuple[str, ...] = ()
    temperature: float = 0.8
    top_p: float | None = None
    max_tokens: int = 512
    seed: int | None = None
    system_prompt: str | None = None
    step_delimiter: str = "\n\n"
    logprobs: bool = False
    top_logprobs: int | None = None
    max_requests: int | None = None

    @property
    def prefix_text(self) -> str:
        """The partial solution as the model should see it, ending with a delimiter if non-empty."""
        if not self.prefix_steps:
            return ""
        return self.step_delimiter.join(self.prefix_steps) + self.step_delimiter


@dataclass(frozen=True)
class Generation:
    """One continuation.

    Attributes:
        text: the generated text, with any matched stop string removed.
        stop_kind: why generation stopped (see :data:`StopKind`).
        token_logprobs: log-probability of each generated token, when asked for and available.
        top_logprobs: per position, the most likely tokens and their log-probabilities.
    """

    text: str
    stop_kind: StopKind
    token_logprobs: tuple[float, ...] | None = None
    top_logprobs: tuple[dict[str, float], ...] | None = None


@dataclass(frozen=True)
class SolverResponse:
    """What a solver returns for one :class:`GenerationRequest`.

    Attributes:
        generations: exactly ``request.n`` continuations, in order.
        prompt_tokens: prompt tokens the server billed, summed over every request made.
        completion_tokens: generated tokens, summed likewise.
        requests: how many requests reached the model (more than one when ``n`` was fanned out).
    """

    generations: list[Generation]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 1


@dataclass(frozen=True)
class Pricing:
    """Price of tokens, in any currency unit per million tokens, for cost accounting and budgets."""

    prompt_per_million: float
    completion_per_million: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The cost of the given token counts."""
        return (
            prompt_tokens * self.prompt_per_million
            + completion_tokens * self.completion_per_million
        ) / 1_000_000


@dataclass
class SolverCapabilities:
    """What a solver declares about itself, and what is learned about its server while it runs.

    An adapter creates one and exposes it as ``capabilities``; the search reads it through
    :func:`capabilities_of` and nothing else. A value left ``None`` is not known yet and is
    learned from responses with :meth:`observe`, the one place where that happens.

    Attributes:
        honours_n: whether one request returns all ``n`` choices (vLLM, OpenAI) or the server
            returns fewer and the rest must be fanned out (llama.cpp's server returns one).
        max_choices: the most choices one request returned when it returned fewer than asked.
        respects_max_requests: the solver keeps to ``GenerationRequest.max_requests`` (the core
            fan-out helper does), so the search can ask for all ``n`` under a tight call budget.
        continuation: how it continues a partial solution (``None``: decided per request, as
            ``OpenAISolver(continuation="auto")`` does after asking the server).
        keeps_stop_string: whether the server leaves a matched stop string in the text (it is
            cut either way); ``None``: not known.
        logprobs: whether it can return token log-probabilities.
        pricing: token prices, for ``usage.cost`` and cost budgets.
    """

    honours_n: bool | None = None
    max_choices: int | None = None
    respects_max_requests: bool = False
    continuation: ContinuationMode | None = None
    keeps_stop_string: bool | None = None
    logprobs: bool = False
    pricing: Pricing | None = None

    def observe(self, *, asked: int, returned: int, requests: int) -> None:
        """Learn how the server treats ``n`` from one response.

        Args:
            asked: the ``n`` of the request.
            returned: how many choices came back.
            requests: how many requests the solver made for them.
        """
        if asked <= 1:
            return
        if requests == 1 and returned >= asked:
            if self.honours_n is None:
                self.honours_n = True
        elif requests == 1 and returned < asked:
            self.honours_n = False
            self.max_choices = max(1, returned)
        elif requests > 1 and self.honours_n is None:
            self.honours_n = False

    @property
    def choices_per_request(self) -> int | None:
        """How many choices to ask of one request when fanning out (``None``: all at once)."""
        if self.honours_n is False:
            return self.max_choices or 1
        return None


def capabilities_of(solver: Any) -> SolverCapabilities:
    """The capabilities a solver declares; a fresh, all-unknown set if it declares none.

    A solver without ``capabilities`` still works: what the search needs to know about it is
    learned from its responses, for that search.
    """
    declared = getattr(solver, "capabilities", None)
    return declared if isinstance(declared, SolverCapabilities) else SolverCapabilities()


@runtime_checkable
class Solver(Protocol):
    """Anything that can continue a partial solution.

    Adapters raise :class:`~sal_plugins.errors.TransientError` for faults worth retrying (the search
    driver retries them) and :class:`~sal_plugins.errors.SolverError` for the rest. They must return
    exactly ``request.n`` generations.
    """

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        """Return ``request.n`` continuations of ``request.prefix_steps``."""
        ...


def seeds_for(request: GenerationRequest) -> Sequence[int | None]:
    """The per-continuation seeds of a request: ``seed, seed + 1, ...`` (all ``None`` if unseeded)."""
    if request.seed is None:
        return [None] * request.n
    return [request.seed + i for i in range(request.n)]
