"""sal-plugins: test-time compute search (best-of-N, beam search, DVTS, self-revision) for any LLM.

Quick use::

    import sal_plugins as sal
    from sal_plugins.solvers import OpenAISolver
    from sal_plugins.verifiers import PoolingPRM

    search = sal.BeamSearch(solver=OpenAISolver(...), verifier=PoolingPRM(...), n=16, beam_width=4)
    result = search.run("What is 23 + 48?")
    print(result.answer, result.usage)
"""

from sal_plugins.answers import answers_equivalent, extract_answer
from sal_plugins.budget import Budget
from sal_plugins.errors import (
    ConfigError,
    InputError,
    SalError,
    SearchError,
    SolverError,
    VerifierError,
)
from sal_plugins.events import (
    CandidatesGenerated,
    CandidatesScored,
    ChoiceMade,
    RequestFailed,
    RequestRetried,
    SearchEvent,
    SearchFinished,
    SearchStarted,
)
from sal_plugins.results import Completion, Failure, SearchResult, StopReason, Usage, Verification
from sal_plugins.strategies import (
    ABMCTS,
    DVTS,
    Adaptive,
    BeamSearch,
    BestOfN,
    ParticleFilter,
    SearchStrategy,
    SelfRevision,
)
from sal_plugins.strategies.adaptive import AdaptivePolicy
from sal_plugins.tree import Node, SearchTree

__version__ = "0.1.0"

__all__ = [
    "ABMCTS",
    "DVTS",
    "Adaptive",
    "AdaptivePolicy",
    "BeamSearch",
    "BestOfN",
    "Budget",
    "CandidatesGenerated",
    "CandidatesScored",
    "ChoiceMade",
    "Completion",
    "ConfigError",
    "Failure",
    "InputError",
    "Node",
    "ParticleFilter",
    "RequestFailed",
    "RequestRetried",
    "SalError",
    "SearchError",
    "SearchEvent",
    "SearchFinished",
    "SearchResult",
    "SearchStarted",
    "SearchStrategy",
    "SearchTree",
    "SelfRevision",
    "SolverError",
    "StopReason",
    "Usage",
    "Verification",
    "VerifierError",
    "__version__",
    "answers_equivalent",
    "extract_answer",
]
