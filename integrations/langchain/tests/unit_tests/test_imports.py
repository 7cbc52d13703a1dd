"""The public names of langchain_sal (a contract: add to them, don't rename them)."""

import langchain_sal

EXPECTED_ALL = [
    "CANDIDATE_TAGS",
    "EVENT_PREFIX",
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
    "TOOL_DECISION_TAGS",
    "__version__",
]


def test_all_is_pinned() -> None:
    assert sorted(langchain_sal.__all__) == sorted(EXPECTED_ALL)


def test_every_name_in_all_exists() -> None:
    for name in langchain_sal.__all__:
        assert getattr(langchain_sal, name) is not None
