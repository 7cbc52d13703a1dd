"""Scripted solvers for tests: deterministic, instant, and they count what they serve.

Use them in your own tests to check code built on sal-plugins without a model::

    solver = ScriptedSolver(["2 + 2 = 4\\n\\nThe answer is $\\\\boxed{4}$."])
    result = sal.BestOfN(solver=solver, n=4, selection="majority").run("What is 2 + 2?")
    assert result.answer == "4"
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sal_plugins.errors import ConfigError, SolverError, TransientError
from sal_plugins.solvers.base import (
    Generation,
    GenerationRequest,
    Pricing,
    SolverCapabilities,
    SolverResponse,
    StopKind,
    seeds_for,
)

__all__ = ["FailureScript", "ScriptedSolver", "fail_calls"]

FailureScript = Callable[[GenerationRequest, int], Exception | None]
"""``fail(request, call_number) -> exception to raise, or None``; ``call_number`` counts from 1."""


def _words(text: str) -> int:
    return max(1, len(text.split()))


@dataclass
class ScriptedSolver:
    """Serves the steps of scripted solutions, one step per request (or the rest, with no stop).

    A request continues the partial solution it is given: the solver picks, among the scripted
    solutions that begin with those steps, the one at ``(seed + i) % count`` (or round-robin when
    unseeded), and returns its next step. A step that ends its solution comes back with
    ``stop_kind="end"``; others with ``"delimiter"``. A prefix no script matches gets an empty
    ``"end"`` continuation. Requests with a ``problem`` other than the search's (revisions) are
    served from ``revisions`` the same way.

    Args:
        solutions: full solution texts, steps separated by the request's delimiter.
        revisions: solutions served for revision prompts (default: ``solutions``).
        honours_n: return all ``n`` choices in one request (like vLLM) or fan out one request per
            choice (like llama.cpp's server); ``requests`` in the response reflects it.
        delay_s: seconds each request takes (simulated latency).
        pricing: token prices, for cost accounting (declared in ``capabilities``).
        fail: a :data:`FailureScript` deciding which calls raise.

    Attributes:
        requests: every request served, in order, with every setting it carried (``top_p``,
            ``temperature``, ``stop``, ``seed``, ...), so tests can check what reached the solver.
        calls: model requests counted as a server would (fan-out counts each choice).
        prompt_tokens, completion_tokens: tokens served (words, for the fake).
    """

    solutions: Sequence[str]
    revisions: Sequence[str] | None = None
    honours_n: bool = True
    delay_s: float = 0.0
    fail: FailureScript | None = None
    pricing: Pricing | None = None
    requests: list[GenerationRequest] = field(default_factory=list, init=False)
    calls: int = field(default=0, init=False)
    prompt_tokens: int = field(default=0, init=False)
    completion_tokens: int = field(default=0, init=False)
    _round_robin: int = field(default=0, init=False)
    capabilities: SolverCapabilities = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.solutions:
            raise ConfigError("ScriptedSolver needs at least one solution")
        self.capabilities = SolverCapabilities(
            honours_n=self.honours_n, logprobs=True, pricing=self.pricing
        )

    def _pick(
        self, pool: Sequence[str], request: GenerationRequest, seed: int | None
    ) -> str | None:
        delimiter = request.step_delimiter
        matching = [
            s
            for s in pool
            if tuple(s.split(delimiter)[: len(request.prefix_steps)]) == request.prefix_steps
        ]
        if not matching:
            return None
        if seed is None:
            self._round_robin += 1
            return matching[(self._round_robin - 1) % len(matching)]
        return matching[seed % len(matching)]

    def _continue(self, request: GenerationRequest, seed: int | None) -> Generation:
        revising = (
            bool(self.revisions) and not request.prefix_steps and "<solution>" in request.problem
        )
        pool = self.revisions if revising and self.revisions else self.solutions
        solution = self._pick(pool, request, seed)
        if solution is None:
            return Generation(text="", stop_kind="end")
        steps = solution.split(request.step_delimiter)
        rest = steps[len(request.prefix_steps) :]
        if not rest:
            return Generation(text="", stop_kind="end")
        if not request.stop:
            text = request.step_delimiter.join(rest)
            return Generation(
                text=text, stop_kind="end", token_logprobs=self._logprobs(request, text)
            )
        kind: StopKind = "end" if len(rest) == 1 else "delimiter"
        return Generation(
            text=rest[0], stop_kind=kind, token_logprobs=self._logprobs(request, rest[0])
        )

    @staticmethod
    def _logprobs(request: GenerationRequest, text: str) -> tuple[float, ...] | None:
        if not request.logprobs:
            return None
        return tuple(-0.1 * (1 + len(word) % 5) for word in text.split()) or (-0.1,)

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        """Serve ``request.n`` scripted continuations."""
        self.requests.append(request)
        requests_made = request.n if not self.honours_n else 1
        self.calls += requests_made
        if self.fail is not None:
            error = self.fail(request, self.calls)
            if error is not None:
                raise error
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        generations = [self._continue(request, seed) for seed in seeds_for(request)]
        prompt = _words(request.problem + " " + request.prefix_text) * requests_made
        completion = sum(_words(g.text) for g in generations)
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        return SolverResponse(
            generations=generations,
            prompt_tokens=prompt,
            completion_tokens=completion,
            requests=requests_made,
        )


def fail_calls(*numbers: int, transient: bool = False) -> FailureScript:
    """A :data:`FailureScript` that fails the given call numbers (1-based)."""

    def script(request: GenerationRequest, call: int) -> Exception | None:
        if call not in numbers:
            return None
        if transient:
            return TransientError(f"scripted transient fault on call {call}", status_code=503)
        return SolverError(f"scripted failure on call {call}", status_code=500)

    return script
