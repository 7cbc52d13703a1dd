"""LlamaIndexSolver: prompts, per-call settings, stop handling, logprobs, usage and errors."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest
import sal_plugins as sal
from li_fakes import PROBLEM, RIGHT, ScriptedLLM, prefers_four, solution_llm
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, LogProb, MessageRole
from llama_index.core.llms import MockLLM
from llama_index.llms.openai_like import OpenAILike
from pydantic import Field
from sal_plugins.errors import ConfigError, SolverError, TransientError
from sal_plugins.solvers import GenerationRequest
from sal_plugins.solvers.prompts import chat_messages, chatml, completion_prompt

from llama_index_sal import LlamaIndexSolver

REQUEST = GenerationRequest(
    problem=PROBLEM,
    prefix_steps=("First, add the numbers.",),
    n=1,
    stop=("\n\n",),
    temperature=0.7,
    max_tokens=64,
    seed=7,
    system_prompt="Solve step by step.",
)


def as_dicts(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role.value, "content": m.content or ""} for m in messages]


def echo(text: str = "Then 2 + 2 = 4.") -> ScriptedLLM:
    return ScriptedLLM(reply=lambda messages, kwargs: text)


@pytest.mark.parametrize("mode", ["instructed", "native"])
async def test_chat_messages_come_from_the_shared_prompt_builder(mode: Any) -> None:
    llm = echo()
    solver = LlamaIndexSolver(llm=llm, continuation=mode)

    await solver.generate(REQUEST)

    ((messages, _),) = llm.calls
    assert as_dicts(messages) == chat_messages(REQUEST, mode)
    assert messages[-1].role == (
        MessageRole.USER if mode == "instructed" else MessageRole.ASSISTANT
    )


async def test_completion_mode_sends_the_rendered_template_to_acomplete() -> None:
    llm = echo()
    solver = LlamaIndexSolver(llm=llm, continuation="completion", prompt_template=chatml)

    await solver.generate(REQUEST)

    ((prompt, _),) = llm.completions
    assert prompt == completion_prompt(REQUEST, chatml)
    assert prompt.endswith("First, add the numbers.\n\n")
    assert llm.calls == []


async def test_per_call_settings_are_passed_as_openai_keywords() -> None:
    llm = echo()
    await LlamaIndexSolver(llm=llm).generate(REQUEST)

    ((_, kwargs),) = llm.calls
    assert kwargs == {"temperature": 0.7, "max_tokens": 64, "stop": ["\n\n"], "seed": 7}


async def test_kwarg_names_rename_and_drop_settings() -> None:
    llm = echo()
    solver = LlamaIndexSolver(
        llm=llm,
        kwarg_names={"stop": "stop_sequences", "seed": None},
        extra_kwargs={"top_k": 5},
    )
    await solver.generate(REQUEST)

    ((_, kwargs),) = llm.calls
    assert kwargs == {"temperature": 0.7, "max_tokens": 64, "stop_sequences": ["\n\n"], "top_k": 5}


async def test_n_samples_are_concurrent_calls_with_consecutive_seeds() -> None:
    started: list[int] = []
    all_started = asyncio.Event()

    async def wait_for_all() -> None:
        await asyncio.wait_for(all_started.wait(), timeout=5)

    class Barrier(ScriptedLLM):
        async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
            started.append(kwargs["seed"])
            if len(started) == 3:
                all_started.set()
            await wait_for_all()  # times out (and fails the test) if calls run one by one
            return await super().achat(messages, **kwargs)

    llm = Barrier(reply=lambda messages, kwargs: f"sample {kwargs['seed']}")
    response = await LlamaIndexSolver(llm=llm).generate(
        GenerationRequest(problem=PROBLEM, n=3, seed=10)
    )

    assert sorted(started) == [10, 11, 12]
    assert [g.text for g in response.generations] == ["sample 10", "sample 11", "sample 12"]
    assert response.requests == 3


async def test_stop_strings_cut_text_from_llms_that_ignore_them() -> None:
    solver = LlamaIndexSolver(llm=echo("First step.\n\nSecond step."))

    response = await solver.generate(REQUEST)

    (generation,) = response.generations
    assert generation.text == "First step."
    assert generation.stop_kind == "delimiter"


async def test_without_stop_strings_a_plain_answer_ends_the_solution() -> None:
    solver = LlamaIndexSolver(llm=echo(RIGHT))

    response = await solver.generate(GenerationRequest(problem=PROBLEM))

    assert response.generations[0].text == RIGHT
    assert response.generations[0].stop_kind == "end"


def openai_shaped(
    content: str, finish_reason: str, logprobs: list[tuple[str, float]] | None = None
) -> ChatResponse:
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "finish_reason": finish_reason,
    }
    if logprobs is not None:
        choice["logprobs"] = {
            "content": [
                {"token": t, "logprob": lp, "top_logprobs": [{"token": t, "logprob": lp}]}
                for t, lp in logprobs
            ]
        }
    raw = {"choices": [choice], "usage": {"prompt_tokens": 11, "completion_tokens": 3}}
    return ChatResponse(message=ChatMessage(role="assistant", content=content), raw=raw)


async def test_raw_openai_response_gives_finish_reason_logprobs_and_usage() -> None:
    llm = ScriptedLLM(
        reply=lambda m, k: openai_shaped(
            "2 + 2", "length", [("2", -0.1), (" +", -0.2), (" 2", -0.3)]
        )
    )
    request = GenerationRequest(problem=PROBLEM, n=2, stop=("\n\n",), logprobs=True, top_logprobs=1)

    response = await LlamaIndexSolver(llm=llm).generate(request)

    first = response.generations[0]
    assert first.stop_kind == "length"
    assert first.token_logprobs == (-0.1, -0.2, -0.3)
    assert first.top_logprobs is not None and first.top_logprobs[0] == {"2": -0.1}
    assert (response.prompt_tokens, response.completion_tokens) == (22, 6)
    (_, kwargs), _ = llm.calls
    assert kwargs["logprobs"] is True and kwargs["top_logprobs"] == 1


async def test_generic_logprobs_and_token_counts_are_used_without_a_raw_response() -> None:
    def reply(messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        return ChatResponse(
            message=ChatMessage(role="assistant", content="4"),
            logprobs=[[LogProb(token="4", logprob=-0.05), LogProb(token="5", logprob=-3.0)]],
            additional_kwargs={"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
        )

    request = GenerationRequest(problem=PROBLEM, logprobs=True)
    response = await LlamaIndexSolver(llm=ScriptedLLM(reply=reply)).generate(request)

    generation = response.generations[0]
    assert generation.token_logprobs == (-0.05,)
    assert generation.top_logprobs == ({"4": -0.05, "5": -3.0},)
    assert (response.prompt_tokens, response.completion_tokens) == (9, 1)


def status_error(status: int, headers: dict[str, str] | None = None) -> Exception:
    class HTTPStatusFailure(Exception):
        def __init__(self) -> None:
            super().__init__(f"HTTP {status}")
            self.response = httpx.Response(status, headers=headers or {})

    return HTTPStatusFailure()


def openai_error(status: int, headers: dict[str, str] | None = None) -> Exception:
    request = httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions")
    response = httpx.Response(status, headers=headers or {}, request=request)
    cls = openai.RateLimitError if status == 429 else openai.BadRequestError
    return cls("failed", response=response, body=None)


@pytest.mark.parametrize(
    ("error", "expected", "retry_after"),
    [
        (status_error(429, {"Retry-After": "2"}), TransientError, 2.0),
        (status_error(503), TransientError, None),
        (status_error(400), SolverError, None),
        (TimeoutError("slow"), TransientError, None),
        (ConnectionResetError("dropped"), TransientError, None),
        (openai_error(429, {"retry-after": "3"}), TransientError, 3.0),
        (openai_error(400), SolverError, None),
        (ValueError("bad content"), SolverError, None),
    ],
)
async def test_llm_errors_are_mapped_to_sal_errors(
    error: Exception, expected: type[Exception], retry_after: float | None
) -> None:
    solver = LlamaIndexSolver(llm=ScriptedLLM(reply=lambda m, k: error))

    with pytest.raises(expected) as raised:
        await solver.generate(REQUEST)

    assert raised.value.retry_after == retry_after  # type: ignore[attr-defined]
    assert "ScriptedLLM" in str(raised.value)
    if expected is SolverError:
        assert not isinstance(raised.value, TransientError)


async def test_one_failed_sample_cancels_the_others() -> None:
    cancelled = asyncio.Event()

    class SlowOrFailing(ScriptedLLM):
        async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
            if kwargs["seed"] == 0:
                raise status_error(500)
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            raise AssertionError("not cancelled")

    solver = LlamaIndexSolver(llm=SlowOrFailing(reply=None))
    with pytest.raises(TransientError):
        await solver.generate(GenerationRequest(problem=PROBLEM, n=3, seed=0))
    assert cancelled.is_set()


def test_the_llms_own_retries_are_turned_off_on_a_copy() -> None:
    llm = OpenAILike(model="m", api_base="http://127.0.0.1:1/v1", api_key="x", max_retries=5)

    solver = LlamaIndexSolver(llm=llm)

    assert solver.llm.max_retries == 0  # type: ignore[attr-defined]
    assert llm.max_retries == 5
    assert LlamaIndexSolver(llm=llm, disable_llm_retries=False).llm is llm


@pytest.mark.parametrize(
    "kwargs",
    [
        {"llm": "gpt-4"},
        {"llm": MockLLM(), "continuation": "telepathy"},
        {"llm": MockLLM(), "kwarg_names": {"temperture": "t"}},
        {"llm": MockLLM(), "max_fanout_concurrency": 0},
    ],
)
def test_bad_settings_raise_config_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        LlamaIndexSolver(**kwargs)


async def test_a_search_retries_transient_llm_faults() -> None:
    attempts = {"n": 0}

    def flaky(messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> str | Exception:
        attempts["n"] += 1
        return status_error(503) if attempts["n"] == 1 else RIGHT

    search = sal.BestOfN(
        solver=LlamaIndexSolver(llm=ScriptedLLM(reply=flaky)),
        verifier=prefers_four(),
        n=1,
        seed=0,
    )
    search = search.model_copy(update={"max_retries": 2})

    result = await search.arun(PROBLEM)

    assert result.answer == "4"
    assert result.usage.retries == 1


async def test_any_llamaindex_llm_drives_a_search() -> None:
    search = sal.BestOfN(
        solver=LlamaIndexSolver(llm=solution_llm()), verifier=prefers_four(), n=2, seed=0
    )

    result = await search.arun(PROBLEM)

    assert result.answer == "4"
    assert len(result.completions) == 2


async def test_mock_llm_works_as_a_solver() -> None:
    search = sal.BestOfN(solver=LlamaIndexSolver(llm=MockLLM(max_tokens=3)), n=2)

    result = await search.arun(PROBLEM)

    assert result.text == "text text text"


class _Models:
    """The ``models`` resource of an ``openai`` client, answering ``/v1/models``."""

    def __init__(self, owner: str, asked: list[str]) -> None:
        self.owner, self.asked = owner, asked

    async def list(self) -> SimpleNamespace:
        self.asked.append(self.owner)
        return SimpleNamespace(data=[SimpleNamespace(id="m", owned_by=self.owner)])


class ServedByVLLM(ScriptedLLM):
    """An OpenAI-based LLM: its own client answers ``/v1/models`` (owned by ``owner``)."""

    owner: str = "vllm"
    asked: list[str] = Field(default_factory=list)

    def _get_aclient(self) -> SimpleNamespace:
        return SimpleNamespace(models=_Models(self.owner, self.asked))


async def test_auto_continues_natively_on_vllm() -> None:
    llm = ServedByVLLM(reply=lambda m, k: "Then 2 + 2 = 4.", asked=[])
    solver = LlamaIndexSolver(llm=llm, extra_kwargs={"extra_body": {"top_k": 20}})

    await solver.generate(REQUEST)
    await solver.generate(GenerationRequest(problem=PROBLEM))

    assert llm.asked == ["vllm"]  # asked once, through the LLM's own client
    (continued, continued_kwargs), (fresh, fresh_kwargs) = llm.calls
    assert as_dicts(continued) == chat_messages(REQUEST, "native")
    assert continued_kwargs["extra_body"] == {
        "top_k": 20,
        "continue_final_message": True,
        "add_generation_prompt": False,
    }
    assert fresh[-1].role == MessageRole.USER
    assert fresh_kwargs["extra_body"] == {"top_k": 20}


async def test_auto_instructs_other_servers_and_llms() -> None:
    for llm in (ServedByVLLM(reply=lambda m, k: "ok", owner="llamacpp", asked=[]), echo("ok")):
        await LlamaIndexSolver(llm=llm).generate(REQUEST)
        ((messages, kwargs),) = llm.calls
        assert as_dicts(messages) == chat_messages(REQUEST, "instructed")
        assert "extra_body" not in kwargs
