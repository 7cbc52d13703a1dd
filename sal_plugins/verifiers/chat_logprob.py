"""A generative process reward model read through any chat endpoint's log-probabilities."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from sal_plugins.errors import ConfigError, VerifierError
from sal_plugins.openai_wire import logprobs_of
from sal_plugins.replicas import affinity_of
from sal_plugins.solvers.prompts import ChatMessage
from sal_plugins.verifiers._http import HTTPClient, HTTPEndpoint
from sal_plugins.verifiers._scores import gather_all, label_ratio
from sal_plugins.verifiers.base import (
    Granularity,
    Judgement,
    Trajectory,
    check_scores,
)

__all__ = ["ChatLogprobPRM"]

Labels = str | Sequence[str]


def _labels(value: Labels, what: str, name: str) -> tuple[str, ...]:
    labels = (value,) if isinstance(value, str) else tuple(value)
    if not labels or not all(isinstance(v, str) and v.strip() for v in labels):
        raise ConfigError(f"{name}: {what} must be a non-empty label or list of labels")
    return labels


class ChatLogprobPRM:
    """A generative PRM (RLHFlow style) over any OpenAI-compatible chat endpoint with logprobs.

    For step ``k`` of a trajectory the conversation is: the problem and step 1 as the first user
    turn, the assistant answering ``+`` to each earlier step, each later step a user turn, ending
    with step ``k``. One token is generated (``max_tokens=1``, ``temperature=0``) with
    ``top_logprobs``, and the step's score is ``P(+) / (P(+) + P(-))``. A label missing from the
    top ``k`` is bounded by the least likely token returned (its probability can be no larger).
    If neither label is among them the step cannot be scored: a
    :class:`~sal_plugins.errors.VerifierError`, never a guess.

    Every step prefix is its own request; all requests of a round run concurrently (up to
    ``max_concurrency``), and scores of prefixes already seen in this search are reused, so a
    beam-search round only pays for the new steps.

    Args:
        model: the served model name (e.g. ``RLHFlow/Llama3.1-8B-PRM-Deepseek-Data``).
        base_url: the OpenAI-compatible base URL, ending in ``/v1``, or a list of them
            (replicas of the same model; requests go to the least busy, one problem's to one
            replica so its prefix cache hits, and a failing replica rests while its requests
            go to another).
        api_key: sent as a Bearer token.
        positive: the label (or labels) meaning "this step is right".
        negative: the label (or labels) meaning "this step is wrong".
        system_prompt: optional system turn (RLHFlow uses none).
        first_turn: template of the first user turn, with ``{problem}`` and ``{step}``.
        next_turn: template of each later user turn, with ``{step}``.
        top_logprobs: how many alternatives to ask for (OpenAI allows up to 20).
        max_concurrency: most requests in flight at once.
        cache_size: how many prefix scores to remember (0 disables the cache).
        extra_body: more request fields.
        timeout: seconds per request.
        transport: an ``httpx`` transport to use instead of the network.
        name: name used in errors and the tree.

    Example:
        >>> prm = ChatLogprobPRM(model="RLHFlow/Llama3.1-8B-PRM-Deepseek-Data",
        ...                      base_url="http://localhost:8003/v1")
        >>> search = sal.BeamSearch(solver=solver, verifier=prm, n=8)  # doctest: +SKIP
    """

    granularity: Granularity = "step"
    score_range: tuple[float, float] | None = (0.0, 1.0)

    def __init__(
        self,
        *,
        model: str,
        base_url: str | Sequence[str],
        api_key: str | None = None,
        positive: Labels = "+",
        negative: Labels = "-",
        system_prompt: str | None = None,
        first_turn: str = "{problem} {step}",
        next_turn: str = "{step}",
        top_logprobs: int = 20,
        max_concurrency: int = 16,
        cache_size: int = 4096,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "ChatLogprobPRM",
    ) -> None:
        if "{step}" not in first_turn or "{step}" not in next_turn:
            raise ConfigError(f"{name}: first_turn and next_turn need a {{step}} placeholder")
        if top_logprobs < 1 or max_concurrency < 1 or cache_size < 0:
            raise ConfigError(
                f"{name}: top_logprobs and max_concurrency must be at least 1, cache_size >= 0"
            )
        self.model = model
        self.positive = _labels(positive, "positive", name)
        self.negative = _labels(negative, "negative", name)
        self.system_prompt = system_prompt
        self.first_turn = first_turn
        self.next_turn = next_turn
        self.top_logprobs = top_logprobs
        self.max_concurrency = max_concurrency
        self.cache_size = cache_size
        self.extra_body = dict(extra_body or {})
        self.name = name
        self.endpoint = HTTPEndpoint(
            base_url, verifier=name, api_key=api_key, timeout=timeout, transport=transport
        )
        self._cache: OrderedDict[tuple[str, tuple[str, ...]], float] = OrderedDict()

    def messages(self, problem: str, steps: Sequence[str]) -> list[ChatMessage]:
        """The conversation that asks for a verdict on the last of ``steps``."""
        messages: list[ChatMessage] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        for index, step in enumerate(steps):
            if index:
                messages.append({"role": "assistant", "content": self.positive[0]})
                content = self.next_turn.format(step=step)
            else:
                content = self.first_turn.format(problem=problem, step=step)
            messages.append({"role": "user", "content": content})
        return messages

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        """Score every step; all prefixes not seen before are requested concurrently."""
        known: dict[tuple[str, ...], float] = {}
        missing: set[tuple[str, ...]] = set()
        for trajectory in trajectories:
            for end in range(1, len(trajectory.steps) + 1):
                prefix = trajectory.steps[:end]
                cached = self._cache.get((problem, prefix))
                if cached is None:
                    missing.add(prefix)
                else:
                    known[prefix] = cached
        if missing:
            limit = asyncio.Semaphore(self.max_concurrency)
            ordered = sorted(missing, key=len)
            async with self.endpoint.client() as client:

                async def one(prefix: tuple[str, ...]) -> float:
                    async with limit:
                        value = await self._request(client, problem, prefix)
                    # Remembered at once: if another prefix fails, this one is not asked again.
                    self._remember((problem, prefix), value)
                    return value

                scores = await gather_all(*(one(p) for p in ordered))
            known.update(zip(ordered, scores, strict=True))
        rows = [
            Judgement(tuple(known[t.steps[:end]] for end in range(1, len(t.steps) + 1)))
            for t in trajectories
        ]
        return check_scores(self, trajectories, rows)

    def _remember(self, key: tuple[str, tuple[str, ...]], value: float) -> None:
        if not self.cache_size:
            return
        self._cache[key] = value
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def _request(self, client: HTTPClient, problem: str, prefix: tuple[str, ...]) -> float:
        body = {
            **self.extra_body,
            "model": self.model,
            "messages": self.messages(problem, prefix),
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
        }
        answer = await self.endpoint.post(
            client, "/chat/completions", body, affinity=affinity_of(problem)
        )
        return label_ratio(
            first_token_alternatives(answer, verifier=self.name),
            self.positive,
            self.negative,
            verifier=self.name,
        )


def first_token_alternatives(answer: object, *, verifier: str) -> dict[str, float]:
    """``{token: logprob}`` of the first generated position of a chat completion.

    Raises:
        VerifierError: the response carries no logprobs (the server may not support them).
    """
    try:
        block = answer["choices"][0]["logprobs"]  # type: ignore[index]
        values, tops = logprobs_of(block)
        if tops and tops[0]:
            return tops[0]
        first = block["content"][0]  # no alternatives: the chosen token alone
        return {str(first["token"]): float(values[0])}  # type: ignore[index]
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as error:
        raise VerifierError(
            "the chat completion has no logprobs for its first token; does the server support "
            "logprobs/top_logprobs?",
            verifier=verifier,
        ) from error
