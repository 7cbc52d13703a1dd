"""Beam search through ``ChatOpenAI`` matches ``OpenAISolver`` on the same server.

First on a scripted server, where the answers are known, then briefly on the real model.

The server is scripted and deterministic: each step's text is a function of the request alone
(the problem, the partial solution in the instructed-continuation prompt, the seed). It answers
one choice per request, whatever ``n`` says (as llama.cpp does), so every candidate has a seed of
its own, and it never reports ``stop_reason`` (as OpenAI and llama.cpp): a client cannot tell a
matched step delimiter from the end of the answer. An odd seed miscounts the step it writes by
one, so every request for two candidates has a right and a wrong one, and
``ArithmeticVerifier`` tells them apart. Asked to continue a solution that already states its
answer, the server starts a new solution with sound arithmetic and a wrong answer, as a chat
model told to go on does: a search that kept going past the answer would select that one.

On ``llama_cpp.server`` (the embedded SmolLM2-135M, which also reports no ``stop_reason``) a
seeded request has one answer, so both clients must select the same answers there too, right or
wrong.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sal_plugins as sal
from langchain_openai import ChatOpenAI
from pydantic import SecretStr
from sal_plugins.solvers import OpenAISolver
from sal_plugins.solvers.base import Solver
from sal_plugins.solvers.prompts import EMBEDDED_SYSTEM_PROMPT
from sal_plugins.verifiers import ArithmeticVerifier

from langchain_sal import LangChainSolver
from tests.integration_tests._scripted_server import MODEL, last_user_text, scripted_server_module

PROBLEMS = [(2, 3, 4), (5, 7, 3), (12, 8, 2), (9, 6, 5)]
"""``(a, b, c)`` of "What is (a + b) * c?"."""

_QUESTION = re.compile(r"What is \((\d+) \+ (\d+)\) \* (\d+)\?")
_PARTIAL = re.compile(r"<partial_solution>\n(.*)</partial_solution>", re.DOTALL)
_RESULT = re.compile(r"= (-?\d+)\.?$")
RESTART = "Let me solve the problem again. "
KEY = SecretStr("x")  # the servers take any key


def question(a: int, b: int, c: int) -> str:
    return f"What is ({a} + {b}) * {c}?"


def truth(a: int, b: int, c: int) -> str:
    return str((a + b) * c)


def _chain(start: int, ops: list[tuple[str, int]], done: int, *, slip: bool) -> list[str]:
    """The steps of ``start op1 x1 op2 x2 ...`` from step ``done`` on, and the answer step.

    ``start`` is the value the last written step reached; with ``slip`` the first step written
    here is off by one (and the steps after it carry the error on, with sound arithmetic).
    """
    steps, value = [], start
    for i, (op, operand) in enumerate(ops[done:]):
        result = value + operand if op == "+" else value * operand
        if slip and i == 0:
            result += 1
        steps.append(f"{value} {op} {operand} = {result}.")
        value = result
    return [*steps, f"Therefore, the final answer is: $\\boxed{{{value}}}$."]


def _reached(steps: list[str], start: int) -> int:
    """The value the last of ``steps`` reached (``start`` when there are none)."""
    if not steps:
        return start
    match = _RESULT.search(steps[-1])
    assert match is not None, steps
    return int(match.group(1))


def reply(body: dict[str, Any]) -> str:
    """The rest of the solution the request's partial solution has started (module docstring)."""
    text = last_user_text(body)
    match = _QUESTION.search(text)
    assert match is not None, text
    a, b, c = map(int, match.groups())
    partial = _PARTIAL.search(text)
    done = [s for s in partial.group(1).split("\n\n") if s.strip()] if partial else []
    answered = [i for i, step in enumerate(done) if "boxed{" in step]
    if answered:  # told to go on after the answer: a new solution, (a * c) + b
        restart = done[answered[-1] + 1 :]
        steps = _chain(_reached(restart, a), [("*", c), ("+", b)], len(restart), slip=False)
        if not restart:
            steps[0] = RESTART + steps[0]
        return "\n\n".join(steps)
    slip = int(body.get("seed") or 0) % 2 == 1
    return "\n\n".join(_chain(_reached(done, a), [("+", b), ("*", c)], len(done), slip=slip))


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    scripted = scripted_server_module().ScriptedOpenAIServer(reply, max_choices=1)
    scripted.start()
    yield scripted
    scripted.stop()


def beam_search(solver: Solver) -> sal.BeamSearch:
    return sal.BeamSearch(
        solver=solver, verifier=ArithmeticVerifier(), n=4, beam_width=2, max_steps=6, seed=0
    )


def sent(requests: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What decides a reply, per request, in a stable order (the searches run concurrently)."""
    keys = [
        (
            tuple((m["role"], m["content"]) for m in body["messages"]),
            body.get("seed"),
            tuple(body.get("stop") or ()),
            body.get("n") or 1,
        )
        for body in requests
    ]
    return sorted(keys, key=repr)


async def test_beam_search_through_chat_openai_matches_openai_solver(server: Any) -> None:
    paths: dict[str, Solver] = {
        "OpenAISolver": OpenAISolver(
            model=MODEL, base_url=server.base_url, api_key="x", continuation="instructed"
        ),
        "LangChainSolver(ChatOpenAI)": LangChainSolver(
            ChatOpenAI(model=MODEL, base_url=server.base_url, api_key=KEY, timeout=30)
        ),
    }
    answers: dict[str, list[str | None]] = {}
    requests: dict[str, list[tuple[Any, ...]]] = {}
    for name, solver in paths.items():
        server.requests.clear()
        # one event loop for the handful, as an evaluation runs them: a ChatOpenAI's async
        # HTTP client keeps its pooled connections on the loop that opened them
        results = await asyncio.gather(*(beam_search(solver).arun(question(*p)) for p in PROBLEMS))
        for result in results:
            # every selected solution ends at the step that states its answer
            assert result.best is not None and result.best.finished, result.text
            assert "boxed{" in result.best.steps[-1], result.text
            assert RESTART not in result.text, result.text
        answers[name] = [result.answer for result in results]
        requests[name] = sent(server.requests)
    truths = [truth(*p) for p in PROBLEMS]
    accuracy = {
        name: sum(a == t for a, t in zip(got, truths, strict=True)) / len(truths)
        for name, got in answers.items()
    }
    assert answers["LangChainSolver(ChatOpenAI)"] == answers["OpenAISolver"]
    assert accuracy["LangChainSolver(ChatOpenAI)"] == accuracy["OpenAISolver"]
    # every beam had a right continuation at every step, and the verifier sees the wrong ones
    assert accuracy["OpenAISolver"] == 1.0, answers
    # the same requests, so the same candidates: the two paths differ only in the client
    assert requests["LangChainSolver(ChatOpenAI)"] == requests["OpenAISolver"]


REAL_PROBLEMS = [("What is 23 + 48?", "71"), ("What is 35 + 27?", "62")]
REAL_MAX_TOKENS = 24


@pytest.mark.model
async def test_on_the_real_model_both_clients_select_the_same_answers(
    llama_server_url: str,
) -> None:
    paths: dict[str, Solver] = {
        "OpenAISolver": OpenAISolver(
            model="smollm2", base_url=llama_server_url, api_key="x", continuation="instructed"
        ),
        "LangChainSolver(ChatOpenAI)": LangChainSolver(
            ChatOpenAI(
                model="smollm2",
                base_url=llama_server_url,
                api_key=KEY,
                max_completion_tokens=REAL_MAX_TOKENS,
                extra_body={"max_tokens": REAL_MAX_TOKENS},  # the server reads this one
                timeout=600,
            )
        ),
    }
    answers: dict[str, list[str | None]] = {}
    for name, solver in paths.items():
        search = sal.BeamSearch(
            solver=solver,
            verifier=ArithmeticVerifier(),
            n=4,
            beam_width=2,
            max_steps=3,
            max_tokens=REAL_MAX_TOKENS,
            step_delimiter="\n",  # the embedded prompt's layout: one equation per line
            system_prompt=EMBEDDED_SYSTEM_PROMPT,
            seed=0,
        )
        results = await asyncio.gather(*(search.arun(problem) for problem, _ in REAL_PROBLEMS))
        assert all(result.usage.generation_calls >= 4 for result in results)
        answers[name] = [result.answer for result in results]
    accuracy = {
        name: sum(a == t for a, (_, t) in zip(got, REAL_PROBLEMS, strict=True))
        for name, got in answers.items()
    }
    assert answers["LangChainSolver(ChatOpenAI)"] == answers["OpenAISolver"]
    assert accuracy["LangChainSolver(ChatOpenAI)"] == accuracy["OpenAISolver"]
