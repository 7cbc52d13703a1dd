"""A search step inside a QueryPipeline, for projects still on llama-index-core 0.12.

QueryPipeline was removed in llama-index-core 0.13; on 0.13+ use the workflows
(``examples/llama_index_workflow.py``) instead. Needs ``pip install 'llama-index-core>=0.12,<0.13'
'sal-plugins[server]' llama-index-sal``. The solver is sal's own OpenAISolver, by default over the
embedded SmolLM2-135M-Instruct served on loopback by ``llama_cpp.server``.

    python examples/llama_index_query_pipeline_0_12.py 23 48
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from llama_index.core import PromptTemplate
from llama_index.core.query_pipeline import QueryPipeline
from llama_index_sal import as_query_component

from sal_plugins.embedded import serve_embedded_model
from sal_plugins.solvers import OpenAISolver
from sal_plugins.verifiers import ArithmeticVerifier


@contextlib.contextmanager
def server(base_url: str | None) -> Iterator[str]:
    if base_url:
        yield base_url
    else:
        with serve_embedded_model() as url:
            yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", nargs="?", default="23")
    parser.add_argument("b", nargs="?", default="48")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible API root (/v1)")
    parser.add_argument("--model", default="smollm2")
    args = parser.parse_args()

    with server(args.base_url) as base_url:
        solver = OpenAISolver(model=args.model, base_url=base_url, api_key="x", timeout=600)
        search = as_query_component(
            "beam_search",
            solver=solver,
            verifier=ArithmeticVerifier(),
            n=4,
            beam_width=2,
            max_steps=6,
            max_tokens=96,
            seed=0,
            output="result",
        )
        pipeline = QueryPipeline(chain=[PromptTemplate("What is {a} + {b}?"), search])
        result = pipeline.run(a=args.a, b=args.b)

    print(result.text)
    print(f"\nAnswer: {result.answer}   ({result.usage.generation_calls} generation calls)")


if __name__ == "__main__":
    main()
