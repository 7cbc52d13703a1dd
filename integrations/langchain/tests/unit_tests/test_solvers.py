"""LangChainSolver on scripted chat models: n, stop, continuation, logprobs, usage, errors."""

from __future__ import annotations

import httpx
import pytest
import sal_plugins as sal
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langchain_openai import ChatOpenAI
from sal_plugins.errors import ConfigError, SolverError, TransientError
from sal_plugins.solvers.base import GenerationRequest
from sal_plugins.solvers.prompts import INSTRUCTED_CONTINUATION

from langchain_sal import LangChainSolver
from langchain_sal.solvers import stop_kind
from tests.unit_tests.fakes import (
    SOLUTIONS,
    HTTPStatusFault,
    PrefillChatModel,
    RecordingChatModel,
    SamplingChatModel,
)

STEP = GenerationRequest(
    problem="What is 2 + 2?",
    prefix_steps=("2 + 2 = 4",),
    n=1,
    stop=("\n\n",),
    temperature=0.5,
    max_tokens=32,
    seed=7,
    system_prompt="Think step by step.",
)


async def test_fans_out_when_the_model_has_no_n_parameter() -> None:
    model = RecordingChatModel(responses=SOLUTIONS)
    response = await LangChainSolver(model).generate(
        GenerationRequest(problem="What is 2 + 2?", n=3)
    )
    assert len(model.calls) == 3
    assert response.requests == 3
    assert [g.text for g in response.generations] == SOLUTIONS
    assert (response.prompt_tokens, response.completion_tokens) == (30, 15)


async def test_uses_n_in_one_call_when_the_model_honours_it() -> None:
    model = SamplingChatModel(responses=SOLUTIONS)
    response = await LangChainSolver(model).generate(
        GenerationRequest(problem="What is 2 + 2?", n=3, seed=11, temperature=0.3)
    )
    assert len(model.calls) == 1
    call = model.calls[0]
    assert (call["n"], call["seed"], call["temperature"], call["stream"]) == (3, 11, 0.3, False)
    assert response.requests == 1
    assert len(response.generations) == 3
    # usage is the request's, read once, although every choice carries a copy of it
    assert (response.prompt_tokens, response.completion_tokens) == (10, 5)


async def test_tops_up_by_fan_out_when_n_is_ignored_and_remembers_it() -> None:
    model = SamplingChatModel(responses=SOLUTIONS, honours_n=False)
    solver = LangChainSolver(model)
    first = await solver.generate(GenerationRequest(problem="p", n=3, seed=5))
    assert len(first.generations) == 3
    assert first.requests == 3
    assert [c.get("seed") for c in model.calls] == [5, 6, 7]
    model.calls.clear()
    await solver.generate(GenerationRequest(problem="p", n=2, seed=1))
    assert [c.get("n") for c in model.calls] == [None, None]  # straight to fan-out now


async def test_fan_out_mode_never_sends_n() -> None:
    model = SamplingChatModel(responses=SOLUTIONS)
    await LangChainSolver(model, n_mode="fan_out").generate(GenerationRequest(problem="p", n=2))
    assert [c.get("n") for c in model.calls] == [None, None]


async def test_sampling_parameters_go_only_to_models_that_declare_them() -> None:
    plain = RecordingChatModel(responses=SOLUTIONS)
    await LangChainSolver(plain).generate(STEP)
    assert set(plain.calls[0]) == {"messages", "stop"}
    sampling = SamplingChatModel(responses=SOLUTIONS)
    await LangChainSolver(sampling).generate(STEP)
    call = sampling.calls[0]
    assert (call["temperature"], call["max_tokens"], call["seed"]) == (0.5, 32, 7)
    assert call["stop"] == ["\n\n"]


async def test_instructed_continuation_uses_the_shared_prompt_layout() -> None:
    model = RecordingChatModel(responses=["The answer is $\\boxed{4}$."])
    await LangChainSolver(model).generate(STEP)
    messages = model.calls[0]["messages"]
    assert [type(m) for m in messages] == [SystemMessage, HumanMessage]
    assert messages[0].content == "Think step by step."
    expected = INSTRUCTED_CONTINUATION.format(problem=STEP.problem, partial="2 + 2 = 4\n\n")
    assert messages[1].content == expected


async def test_prefill_providers_continue_a_final_assistant_message() -> None:
    model = PrefillChatModel(responses=["The answer is $\\boxed{4}$."])
    solver = LangChainSolver(model)
    assert solver.continuation_mode == "native"
    await solver.generate(STEP)
    messages = model.calls[0]["messages"]
    assert [type(m) for m in messages] == [SystemMessage, HumanMessage, AIMessage]
    assert messages[-1].content == "2 + 2 = 4\n\n"


async def test_continuation_mode_can_be_forced() -> None:
    model = RecordingChatModel(responses=["x"])
    await LangChainSolver(model, continuation="native").generate(STEP)
    assert isinstance(model.calls[0]["messages"][-1], AIMessage)


def test_bad_settings_raise_config_errors() -> None:
    model = RecordingChatModel(responses=["x"])
    with pytest.raises(ConfigError, match="completions endpoint"):
        LangChainSolver(model, continuation="completion")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n_mode"):
        LangChainSolver(model, n_mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="BaseChatModel"):
        LangChainSolver("gpt-4o")  # type: ignore[arg-type]


async def test_text_past_a_stop_string_is_cut_when_the_model_ignores_stop() -> None:
    model = RecordingChatModel(responses=["2 + 2 = 4\n\nThe answer is 4."])
    response = await LangChainSolver(model).generate(STEP)
    generation = response.generations[0]
    assert (generation.text, generation.stop_kind) == ("2 + 2 = 4", "delimiter")


@pytest.mark.parametrize(
    ("metadata", "stop", "expected"),
    [
        ({"finish_reason": "length"}, ("\n\n",), "length"),
        ({"finish_reason": "stop"}, ("\n\n",), "unknown"),  # OpenAI: stop string or EOS?
        ({"finish_reason": "stop"}, (), "end"),  # nothing to match, so EOS
        ({"stop_reason": "end_turn"}, ("\n\n",), "end"),  # Anthropic
        ({"stop_reason": "stop_sequence"}, ("\n\n",), "delimiter"),
        ({"stop_reason": "max_tokens"}, ("\n\n",), "length"),
        ({"finish_reason": "stop", "stop_reason": "\n\n"}, ("\n\n",), "delimiter"),
        ({"stop_reason": "\n\n"}, ("\n\n",), "delimiter"),  # vLLM names the matched string
        ({"finish_reason": "MAX_TOKENS"}, ("\n\n",), "length"),  # Gemini
        ({"done_reason": "stop"}, (), "end"),  # Ollama
        ({}, ("\n\n",), "unknown"),
    ],
)
def test_stop_kinds_follow_the_core_mapping(
    metadata: dict[str, str], stop: tuple[str, ...], expected: str
) -> None:
    assert stop_kind(metadata, stop, cut=False) == expected


async def test_finish_reasons_reach_the_generations() -> None:
    model = RecordingChatModel(responses=["partial"], finish_reason="length")
    response = await LangChainSolver(model).generate(STEP)
    assert response.generations[0].stop_kind == "length"


async def test_logprobs_are_read_from_response_metadata() -> None:
    content = [
        {"token": "4", "logprob": -0.25, "top_logprobs": [{"token": "4", "logprob": -0.25}]},
        {"token": ".", "logprob": -0.5, "top_logprobs": [{"token": ".", "logprob": -0.5}]},
    ]
    model = SamplingChatModel(responses=["4."], logprob_content=content)
    request = GenerationRequest(problem="p", logprobs=True, top_logprobs=1)
    generation = (await LangChainSolver(model).generate(request)).generations[0]
    assert model.calls[0]["logprobs"] is True
    assert model.calls[0]["top_logprobs"] == 1
    assert generation.token_logprobs == (-0.25, -0.5)
    assert generation.top_logprobs == ({"4": -0.25}, {".": -0.5})


@pytest.mark.parametrize(
    ("error", "transient", "retry_after"),
    [
        (HTTPStatusFault(429, retry_after="3"), True, 3.0),
        (HTTPStatusFault(503), True, None),
        (HTTPStatusFault(400), False, None),
        (httpx.ConnectError("refused"), True, None),
        (TimeoutError("slow"), True, None),
        (ValueError("bad request body"), False, None),
    ],
)
async def test_errors_become_sal_errors(
    error: Exception, transient: bool, retry_after: float | None
) -> None:
    model = RecordingChatModel(responses=["x"], errors=[error])
    with pytest.raises((TransientError, SolverError)) as caught:
        await LangChainSolver(model).generate(STEP)
    assert isinstance(caught.value, TransientError) is transient
    assert caught.value.retry_after == retry_after


async def test_the_driver_retries_transient_faults() -> None:
    model = RecordingChatModel(responses=SOLUTIONS[:1], errors=[HTTPStatusFault(503)])
    search = sal.BestOfN(solver=LangChainSolver(model), n=1, selection="majority")
    result = await search.arun("What is 2 + 2?")
    assert result.answer == "4"
    assert result.usage.retries == 1


def test_sdk_retries_are_switched_off() -> None:
    model = ChatOpenAI(model="m", api_key="x", base_url="http://127.0.0.1:9/v1", max_retries=4)
    solver = LangChainSolver(model)
    quiet = solver.chat_model
    assert getattr(quiet, "max_retries", None) == 0
    assert quiet.root_async_client.max_retries == 0  # type: ignore[attr-defined]
    assert model.root_async_client.max_retries == 4  # the user's model is left alone


async def test_calls_are_tagged_and_children_of_the_bound_run() -> None:
    collector = RunCollectorCallbackHandler()
    model = RecordingChatModel(responses=SOLUTIONS)
    solver = LangChainSolver(model).with_config({"callbacks": [collector]})
    await solver.generate(GenerationRequest(problem="p", n=2))
    runs = collector.traced_runs
    assert len(runs) == 2
    assert all({"sal_candidate", "nostream"} <= set(run.tags or []) for run in runs)


async def test_pricing_feeds_cost_accounting() -> None:
    from sal_plugins.solvers.base import Pricing

    model = RecordingChatModel(responses=SOLUTIONS[:1])
    solver = LangChainSolver(model, pricing=Pricing(1_000_000.0, 2_000_000.0))
    search = sal.BestOfN(solver=solver, n=2, selection="majority", early_stop=False)
    result = await search.arun("What is 2 + 2?")
    # two calls of 10 prompt and 5 completion tokens at 1 and 2 units per token
    assert result.usage.cost == pytest.approx(2 * (10 * 1.0 + 5 * 2.0))
