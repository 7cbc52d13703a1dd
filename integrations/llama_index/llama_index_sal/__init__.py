"""llama-index-sal: test-time compute search for LlamaIndex.

Search strategies from sal-plugins (best-of-N, beam search, DVTS, particle filtering, AB-MCTS,
adaptive, self-revision) as LlamaIndex building blocks:

* :class:`BeamSearchWorkflow`, :class:`BestOfNWorkflow`, :class:`DVTSWorkflow`,
  :class:`ParticleFilterWorkflow`, :class:`ABMCTSWorkflow`, :class:`AdaptiveWorkflow`,
  :class:`SelfRevisionWorkflow`:
  ``await workflow.run(problem=...)`` returns the ``SearchResult``; progress is on the event
  stream as :class:`SearchProgressEvent`;
* :class:`SearchQueryEngine`: a query engine for routers and ``QueryEngineTool``;
* :func:`search_tool`: a ``FunctionTool`` for ``FunctionAgent``, ``ReActAgent``, ``AgentWorkflow``;
* :class:`SearchLLM`: an ``LLM`` whose every call runs a search;
* :class:`LlamaIndexSolver`: any LlamaIndex ``LLM`` as the solver of a sal search;
* :func:`as_query_component`: a ``QueryComponent`` for projects still on llama-index-core 0.12.

Quick use::

    from llama_index_sal import BeamSearchWorkflow

    workflow = BeamSearchWorkflow(solver=llm, verifier=prm, n=8, beam_width=2, seed=0)
    result = await workflow.run(problem="What is 23 + 48?")
    print(result.answer)
"""

from llama_index_sal.events import SearchProgressEvent, SearchStartEvent
from llama_index_sal.llm import SearchLLM
from llama_index_sal.query_component import QueryPipelineUnavailableError, as_query_component
from llama_index_sal.query_engine import SearchQueryEngine, search_response
from llama_index_sal.solver import LlamaIndexSolver
from llama_index_sal.tool import search_tool
from llama_index_sal.workflows import (
    ABMCTSWorkflow,
    AdaptiveWorkflow,
    BeamSearchWorkflow,
    BestOfNWorkflow,
    DVTSWorkflow,
    ParticleFilterWorkflow,
    SearchWorkflow,
    SelfRevisionWorkflow,
)

__version__ = "0.1.0"

__all__ = [
    "ABMCTSWorkflow",
    "AdaptiveWorkflow",
    "BeamSearchWorkflow",
    "BestOfNWorkflow",
    "DVTSWorkflow",
    "LlamaIndexSolver",
    "ParticleFilterWorkflow",
    "QueryPipelineUnavailableError",
    "SearchLLM",
    "SearchProgressEvent",
    "SearchQueryEngine",
    "SearchStartEvent",
    "SearchWorkflow",
    "SelfRevisionWorkflow",
    "__version__",
    "as_query_component",
    "search_response",
    "search_tool",
]
