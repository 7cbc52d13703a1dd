"""Beam search as a LlamaIndex workflow, with the search's progress read off the event stream.

By default the solver is LlamaIndex's ``OpenAILike`` talking to the embedded SmolLM2-135M-Instruct
served on loopback by ``llama_cpp.server`` (needs ``pip install 'sal-plugins[server]'
llama-index-sal llama-index-llms-openai-like``); pass ``--base-url`` and ``--model`` to use any
OpenAI-compatible server instead. The verifier checks the arithmetic of every step, so no second
model is needed; with ``--prm-url`` a process reward model served by vLLM (``/pooling``) scores
the steps instead.

    python examples/llama_index_workflow.py "What is 23 + 48?"
    python examples/llama_index_workflow.py --base-url http://localhost:8000/v1 \\
        --model meta-llama/Llama-3.2-1B-Instruct --prm-url http://localhost:8001 "..."
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from llama_index.llms.openai_like import OpenAILike
from llama_index_sal import BeamSearchWorkflow, SearchProgressEvent

from sal_plugins.embedded import serve_embedded_model
from sal_plugins.results import SearchResult
from sal_plugins.verifiers import ArithmeticVerifier, PoolingPRM


@contextlib.contextmanager
def server(base_url: str | None) -> Iterator[str]:
    if base_url:
        yield base_url
    else:
        with serve_embedded_model() as url:
            yield url


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problem", nargs="?", default="What is 23 + 48?")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible API root (/v1)")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--api-key", default="x")
    parser.add_argument("--prm-url", default=None, help="vLLM server root serving a PRM")
    parser.add_argument("--prm-model", default="Qwen/Qwen2.5-Math-PRM-7B")
    parser.add_argument("--n", type=int, default=4)
    args = parser.parse_args()

    verifier: Any = ArithmeticVerifier()
    if args.prm_url:
        verifier = PoolingPRM(model=args.prm_model, base_url=args.prm_url)

    with server(args.base_url) as base_url:
        llm = OpenAILike(
            model=args.model,
            api_base=base_url,
            api_key=args.api_key,
            is_chat_model=True,
            timeout=600,
        )
        workflow = BeamSearchWorkflow(
            solver=llm,
            verifier=verifier,
            n=args.n,
            beam_width=2,
            max_steps=6,
            max_tokens=96,
            seed=0,
        )

        handler = workflow.run(problem=args.problem)
        async for event in handler.stream_events():
            if isinstance(event, SearchProgressEvent):
                print(f"  [{event.elapsed_s:6.1f}s] {event.message}")
        result: SearchResult = await handler

    print("\nSelected solution:\n" + result.text)
    print(f"\nAnswer: {result.answer}   stop reason: {result.stop_reason}")
    usage = result.usage
    print(
        f"Usage: {usage.generation_calls} generation calls, {usage.verifier_calls} verifier "
        f"calls, {usage.completion_tokens} completion tokens, {usage.wall_time_s:.1f}s"
    )


if __name__ == "__main__":
    asyncio.run(main())
