"""LangChain's standard unit suite (``langchain-tests``) against ``SearchChatModel``.

The solver is a scripted chat model that calls tools, so the tool-binding tests exercise the real
path (the solver decides, the search answers). Tests that cannot apply to a search are switched
off through the suite's own properties, each with its reason (listed in the README).
"""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_sal import SearchChatModel
from tests.unit_tests.fakes import SOLUTIONS, ToolCallingChatModel


class TestSearchChatModelStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[SearchChatModel]:
        return SearchChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "strategy": "best_of_n",
            "solver": ToolCallingChatModel(responses=SOLUTIONS, decisions=[[]]),
            "n": 2,
            "selection": "majority",
        }

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # A search has no API key of its own: the solver model holds it. The other standard
        # parameters (temperature, max_tokens, timeout, stop, max_retries) all apply.
        params = dict(super().standard_chat_model_params)
        params.pop("api_key", None)
        return params
