"""The public names of llama_index_sal are a contract: adding is fine, renaming is not."""

import llama_index_sal

EXPECTED = [
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


def test_all_is_pinned() -> None:
    assert sorted(llama_index_sal.__all__) == sorted(EXPECTED)


def test_every_name_resolves() -> None:
    for name in llama_index_sal.__all__:
        assert getattr(llama_index_sal, name) is not None


def test_design_contract_names_are_present() -> None:
    contract = {
        "BeamSearchWorkflow",
        "SelfRevisionWorkflow",
        "SearchQueryEngine",
        "search_tool",
        "SearchLLM",
        "LlamaIndexSolver",
    }
    assert contract <= set(llama_index_sal.__all__)
