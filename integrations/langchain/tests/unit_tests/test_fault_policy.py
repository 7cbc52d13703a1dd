"""The integration translates SDK errors by the core's one fault policy, not rules of its own."""

from __future__ import annotations

import httpx
import pytest
from sal_plugins.errors import SolverError, TransientError
from sal_plugins.faults import MAX_RETRY_AFTER_S

from langchain_sal._errors import translate_error


class StatusError(Exception):
    """An SDK error shaped like most: a status code and the HTTP response."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.response = httpx.Response(status, headers=headers or {})


@pytest.mark.parametrize("status", [408, 409, 425, 429, 500, 503, 599])
def test_transient_statuses_are_the_core_policy(status: int) -> None:
    assert isinstance(translate_error(StatusError(status), "m"), TransientError)


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_statuses_are_permanent(status: int) -> None:
    error = translate_error(StatusError(status), "m")
    assert isinstance(error, SolverError) and not error.transient


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After": "86400"}, MAX_RETRY_AFTER_S),
        ({"Retry-After": "Fri, 01 Jan 2099 00:00:00 GMT"}, MAX_RETRY_AFTER_S),
        ({"Retry-After": "inf"}, None),
    ],
)
def test_retry_after_is_read_and_capped_like_everywhere_else(
    headers: dict[str, str], wait: float | None
) -> None:
    error = translate_error(StatusError(429, headers), "m")
    assert isinstance(error, TransientError) and error.retry_after == wait


def test_transport_faults_are_transient() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    assert isinstance(
        translate_error(httpx.ReadTimeout("slow", request=request), "m"), TransientError
    )
    assert isinstance(translate_error(ConnectionResetError("reset"), "m"), TransientError)


def test_the_solver_repr_shows_no_credentials() -> None:
    from langchain_openai import ChatOpenAI

    from langchain_sal import LangChainSolver

    model = ChatOpenAI(
        base_url="http://user:hunter2@h.test/v1", api_key="sk-abcdefghijklmnop", model="m"
    )
    shown = repr(LangChainSolver(model))
    assert "hunter2" not in shown and "sk-abcdefghijklmnop" not in shown
    assert "ChatOpenAI(model='m')" in shown
