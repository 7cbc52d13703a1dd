"""Typical uses of the public API; ``tests/test_typing.py`` type-checks this file with mypy."""

from __future__ import annotations

import sal_plugins as sal
from sal_plugins.solvers.scripted import ScriptedSolver
from sal_plugins.verifiers import ArithmeticVerifier, Verifier


def score(problem: str, steps: list[str]) -> float:
    return 1.0 if steps else 0.0


async def score_steps(problem: str, steps: list[str]) -> list[float]:
    return [0.5] * len(steps)


solver = ScriptedSolver(["1 + 1 = 2\n\nThe answer is 2."])
by_function = sal.BestOfN(solver=solver, verifier=score, n=2)
by_async_function = sal.BeamSearch(solver=solver, verifier=score_steps, n=4, beam_width=2)
by_verifier = sal.DVTS(solver=solver, verifier=ArithmeticVerifier(), n=4, beam_width=2)
voting = sal.BestOfN(solver=solver, n=2, selection="majority")
scorer: Verifier | None = by_function.scorer
result: sal.SearchResult = by_function.run("What is 1 + 1?")
answer: str | None = result.answer
