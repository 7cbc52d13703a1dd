"""On llama-index-core 0.13+ as_query_component() explains why it cannot work and what to do.

The working component is tested under llama-index-core 0.12 in tests/legacy_0_12.
"""

import pytest
from li_fakes import SOLUTIONS
from llama_index.core import __version__ as core_version
from sal_plugins.errors import MissingDependencyError
from sal_plugins.solvers import ScriptedSolver

from llama_index_sal import QueryPipelineUnavailableError, as_query_component

pytestmark = pytest.mark.skipif(
    core_version.startswith("0.12."), reason="QueryPipeline exists on 0.12 (see tests/legacy_0_12)"
)


def test_a_clear_import_error_names_the_fix() -> None:
    with pytest.raises(QueryPipelineUnavailableError) as raised:
        as_query_component("best_of_n", solver=ScriptedSolver(SOLUTIONS), n=1)

    message = str(raised.value)
    assert "pip install 'llama-index-core>=0.12,<0.13'" in message
    assert core_version in message
    assert "BeamSearchWorkflow" in message and "SearchQueryEngine" in message
    assert isinstance(raised.value, ImportError)
    assert isinstance(raised.value, MissingDependencyError)
