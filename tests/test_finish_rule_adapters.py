"""The finish rule through real adapters, against a server that never reports ``stop_reason``.

OpenAI and llama.cpp answer ``finish_reason="stop"`` both when a stop string matched and when the
model ended, and a chat model asked (by the instructed continuation prompt) to continue a solution
that already states its answer starts a new solution. The scripted server here does exactly
that: continuing a finished solution yields a second solution with a different answer. For every
strategy and every adapter (``OpenAISolver``, ``LangChainSolver(ChatOpenAI)``,
``LlamaIndexSolver(OpenAILike)``) the selected trajectory must end at the step that states the
answer (``sal_plugins.tree.ends_solution``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _scripted_openai_server import MODEL, ScriptedOpenAIServer, last_user_text

import sal_plugins as sal
from sal_plugins.solvers import OpenAISolver
from sal_plugins.solvers.base import Solver
from sal_plugins.verifiers import FunctionVerifier

PROBLEM = "What is 2 + 2?"
SOLUTION = ["2 + 2 = 4.", "Therefore, the final answer is: $\\boxed{4}$."]
RESTART = [
    "Let me solve the problem again. 2 + 2 = 5.",
    "Therefore, the final answer is: $\\boxed{5}$.",
]
_PARTIAL = re.compile(r"<partial_solution>\n(.*)</partial_solution>", re.DOTALL)


def reply(body: dict[str, Any]) -> str:
    """The rest of SOLUTION after the partial solution; a NEW solution once it states the answer."""
    match = _PARTIAL.search(last_user_text(body))
    if match is None:
        return "\n\n".join(SOLUTION)
    done = [step for step in match.group(1).split("\n\n") if step.strip()]
    if any("boxed{" in step for step in done):
        return "\n\n".join(RESTART)  # what a chat model does when told to go on
    return "\n\n".join(SOLUTION[len(done) :])


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedOpenAIServer]:
    scripted = ScriptedOpenAIServer(reply)
    scripted.start()
    yield scripted
    scripted.stop()


def openai_solver(base_url: str) -> Solver:
    return OpenAISolver(model=MODEL, base_url=base_url, api_key="x", continuation="instructed")


def langchain_solver(base_url: str) -> Solver:
    langchain_openai = pytest.importorskip("langchain_openai", reason="langchain-openai missing")
    langchain_sal = pytest.importorskip("langchain_sal", reason="langchain-sal not installed")
    chat = langchain_openai.ChatOpenAI(model=MODEL, base_url=base_url, api_key="x")
    solver: Solver = langchain_sal.LangChainSolver(chat)
    return solver


def llama_index_solver(base_url: str) -> Solver:
    openai_like = pytest.importorskip(
        "llama_index.llms.openai_like", reason="llama-index-llms-openai-like missing"
    )
    llama_index_sal = pytest.importorskip("llama_index_sal", reason="llama-index-sal missing")
    llm = openai_like.OpenAILike(
        model=MODEL, api_base=base_url, api_key="x", is_chat_model=True, max_retries=0
    )
    solver: Solver = llama_index_sal.LlamaIndexSolver(llm)
    return solver


ADAPTERS: dict[str, Callable[[str], Solver]] = {
    "OpenAISolver": openai_solver,
    "LangChainSolver(ChatOpenAI)": langchain_solver,
    "LlamaIndexSolver(OpenAILike)": llama_index_solver,
}


def longer_is_better(problem: str, steps: list[str]) -> float:
    """Prefers longer trajectories, so a solution that ran on would win if it existed."""
    return min(1.0, len(steps) / 10)


def strategies(solver: Solver) -> dict[str, sal.SearchStrategy]:
    verifier = FunctionVerifier(longer_is_better)
    common: dict[str, Any] = {"solver": solver, "verifier": verifier, "seed": 0}
    return {
        "best_of_n": sal.BestOfN(n=2, selection="weighted", **common),
        "beam_search": sal.BeamSearch(n=2, beam_width=1, max_steps=6, **common),
        "dvts": sal.DVTS(n=2, beam_width=1, max_steps=6, **common),
        "self_revision": sal.SelfRevision(max_revisions=1, threshold=0.9, **common),
    }


@pytest.mark.parametrize("strategy", ["best_of_n", "beam_search", "dvts", "self_revision"])
@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_selected_trajectory_ends_at_the_answer(
    server: ScriptedOpenAIServer, adapter: str, strategy: str
) -> None:
    solver = ADAPTERS[adapter](server.base_url)
    result = strategies(solver)[strategy].run(PROBLEM)
    assert result.answer == "4", result.text
    assert list(result.best.steps) == SOLUTION
    assert result.best.finished
    assert "Let me solve the problem again" not in result.text
