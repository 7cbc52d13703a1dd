"""LangChain integration for sal-plugins: test-time compute search inside chains and graphs.

* :class:`BeamSearchRunnable`, :class:`BestOfNRunnable`, :class:`DVTSRunnable`,
  :class:`ParticleFilterRunnable`, :class:`ABMCTSRunnable`, :class:`AdaptiveRunnable`,
  :class:`SelfRevisionRunnable`: the strategies as runnables (any chat model as solver);
* :class:`SearchChatModel`: a chat model that answers with the winner of a search;
* :class:`LangChainSolver`: any chat model as a sal-plugins solver.
"""

from langchain_sal._search import EVENT_PREFIX
from langchain_sal.chat_models import TOOL_DECISION_TAGS, SearchChatModel
from langchain_sal.runnables import (
    ABMCTSRunnable,
    AdaptiveRunnable,
    BeamSearchRunnable,
    BestOfNRunnable,
    DVTSRunnable,
    ParticleFilterRunnable,
    ProblemInput,
    SearchRunnable,
    SelfRevisionRunnable,
)
from langchain_sal.solvers import CANDIDATE_TAGS, LangChainSolver

__version__ = "0.1.0"

__all__ = [
    "CANDIDATE_TAGS",
    "EVENT_PREFIX",
    "TOOL_DECISION_TAGS",
    "ABMCTSRunnable",
    "AdaptiveRunnable",
    "BeamSearchRunnable",
    "BestOfNRunnable",
    "DVTSRunnable",
    "LangChainSolver",
    "ParticleFilterRunnable",
    "ProblemInput",
    "SearchChatModel",
    "SearchRunnable",
    "SelfRevisionRunnable",
    "__version__",
]
