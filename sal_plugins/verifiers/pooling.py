"""A token-classification process reward model served by vLLM's ``/pooling`` route."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from sal_plugins.errors import ConfigError, ScoreCountError, VerifierError
from sal_plugins.solvers.prompts import ChatMessage
from sal_plugins.verifiers._http import HTTPEndpoint, HTTPStatusError, server_root
from sal_plugins.verifiers._scores import (
    RowKind,
    chatml_closed,
    gather_all,
    ordered_data,
    positive_probability,
    solution_messages,
)
from sal_plugins.verifiers.base import Granularity, Judgement, Trajectory, check_scores

__all__ = ["QWEN_PRM_STEP_TAG", "QWEN_PRM_STEP_TAG_ID", "QWEN_PRM_SYSTEM_PROMPT", "PoolingPRM"]

QWEN_PRM_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
"""The system prompt Qwen2.5-Math-PRM was trained with."""

QWEN_PRM_STEP_TAG = "<extra_0>"
"""The token Qwen2.5-Math-PRM scores: one after every step."""

QWEN_PRM_STEP_TAG_ID = 151651
"""Token id of ``<extra_0>`` in the Qwen2.5 vocabulary."""

ChatTemplate = Callable[[Sequence[ChatMessage]], str]
"""Renders ``[system?, user, assistant]`` messages to the text the reward model reads."""


class PoolingPRM:
    """A process reward model behind vLLM's ``/pooling`` route (``vllm serve --runner pooling``).

    The default layout is Qwen2.5-Math-PRM's: system prompt, the problem as the user turn, and the
    steps as the assistant turn with ``<extra_0>`` after every step, rendered with the ChatML
    template as one string. A whole search round goes to the server as one request (``input`` is
    the list of rendered strings) unless ``max_batch_size`` splits it.

    vLLM answers ``{"data": [{"index": i, "data": [[p_neg, p_pos], ...]}, ...]}``: for a PRM
    served with step pooling (Qwen2.5-Math-PRM's default: ``step_tag_id`` 151651, softmax on) one
    row per step tag. The score of a step is the row's entry at ``positive_index``. If the server
    returns one row per *token* instead (a token-classification model without step pooling), the
    rows at the step-tag tokens are picked out using ``/tokenize``, which needs ``step_tag_id``.
    Any other row count is a :class:`~sal_plugins.errors.ScoreCountError`, never a shift.

    Args:
        model: the served model name (``vllm serve``'s model or ``--served-model-name``).
        base_url: the server root, e.g. ``http://localhost:8001`` (not ``.../v1``).
        api_key: sent as a Bearer token (vLLM's ``--api-key``).
        step_tag: text placed after every step (and removed from inside steps).
        step_tag_id: token id of ``step_tag``, used only when the server returns all-token rows.
        system_prompt: system turn (``None`` for none).
        template: renders the messages to text (ChatML with closed turns by default).
        positive_index: which entry of a row is the "step is correct" class.
        rows_are: ``"probabilities"`` (vLLM's default for PRMs), ``"logits"`` (softmaxed here), or
            ``"auto"``: probabilities when a row lies in [0, 1] and sums to 1, else logits.
        max_batch_size: most inputs per request (``None``: the whole round in one request).
        batch_input: send a list of inputs per request (``True``), one string per request
            (``False``, all concurrent), or ``None``: lists, falling back to one string per request
            for good if the server rejects a list with 400 or 422.
        extra_body: more fields for the request body (e.g. ``{"truncate_prompt_tokens": 4096}``).
        timeout: seconds per request.
        transport: an ``httpx`` transport to use instead of the network.
        name: name used in errors and the tree.

    Example:
        >>> prm = PoolingPRM(model="Qwen/Qwen2.5-Math-PRM-7B", base_url="http://localhost:8001")
        >>> search = sal.BeamSearch(solver=solver, verifier=prm, n=16)  # doctest: +SKIP
    """

    granularity: Granularity = "step"
    score_range: tuple[float, float] | None = (0.0, 1.0)

    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        api_key: str | None = None,
        step_tag: str = QWEN_PRM_STEP_TAG,
        step_tag_id: int | None = QWEN_PRM_STEP_TAG_ID,
        system_prompt: str | None = QWEN_PRM_SYSTEM_PROMPT,
        template: ChatTemplate = chatml_closed,
        positive_index: int = 1,
        rows_are: RowKind = "auto",
        max_batch_size: int | None = None,
        batch_input: bool | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "PoolingPRM",
    ) -> None:
        if not step_tag:
            raise ConfigError(f"{name}: step_tag must be a non-empty string")
        if max_batch_size is not None and max_batch_size < 1:
            raise ConfigError(f"{name}: max_batch_size must be at least 1, got {max_batch_size}")
        if rows_are not in ("auto", "probabilities", "logits"):
            raise ConfigError(f"{name}: rows_are must be 'auto', 'probabilities' or 'logits'")
        self.model = model
        self.step_tag = step_tag
        self.step_tag_id = step_tag_id
        self.system_prompt = system_prompt
        self.template = template
        self.positive_index = positive_index
        self.rows_are: RowKind = rows_are
        self.max_batch_size = max_batch_size
        self.batch_input = batch_input
        self._send_lists = batch_input is not False
        self.extra_body = dict(extra_body or {})
        self.name = name
        self.endpoint = HTTPEndpoint(
            server_root(base_url, name),
            verifier=name,
            api_key=api_key,
            timeout=timeout,
            transport=transport,
        )

    def render(self, problem: str, steps: Sequence[str]) -> str:
        """The text sent for one trajectory: every step followed by the step tag."""
        tag = self.step_tag
        answer = "".join(step.replace(tag, "") + tag for step in steps)
        return self.template(solution_messages(problem, answer, self.system_prompt))

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        """Score every step of every trajectory in as few requests as ``max_batch_size`` allows."""
        if not trajectories:
            return []
        texts = [self.render(problem, t.steps) for t in trajectories]
        size = self.max_batch_size or len(texts)
        chunks = [list(range(i, min(i + size, len(texts)))) for i in range(0, len(texts), size)]
        async with self.endpoint.client() as client:
            answers = await gather_all(
                *(self._pool(client, [texts[i] for i in chunk]) for chunk in chunks)
            )
            rows_per_input = [rows for answer in answers for rows in answer]
            pairs = enumerate(zip(trajectories, rows_per_input, strict=True))
            scores = await gather_all(
                *(
                    self._step_scores(client, index, texts[index], rows, len(t.steps))
                    for index, (t, rows) in pairs
                )
            )
        judgements = [Judgement(row) for row in scores]
        return check_scores(self, trajectories, judgements)

    async def _pool(self, client: httpx.AsyncClient, texts: list[str]) -> list[list[Any]]:
        if self._send_lists:
            body = {**self.extra_body, "model": self.model, "input": texts}
            try:
                answer = await self.endpoint.post(client, "/pooling", body)
            except HTTPStatusError as error:
                if self.batch_input is not None or error.status_code not in (400, 422):
                    raise
                self._send_lists = False  # the server takes one string per request
            else:
                return self._rows(answer, len(texts))
        singles = await gather_all(
            *(
                self.endpoint.post(
                    client, "/pooling", {**self.extra_body, "model": self.model, "input": text}
                )
                for text in texts
            )
        )
        return [rows for answer in singles for rows in self._rows(answer, 1)]

    def _rows(self, answer: object, count: int) -> list[list[Any]]:
        items = ordered_data(answer, count, verifier=self.name)
        rows: list[list[Any]] = []
        for index, item in enumerate(items):
            data = item.get("data")
            if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
                raise VerifierError(
                    f"result {index} is not a list of score rows (got {str(data)[:120]}); "
                    "is the served model a token-classification reward model?",
                    verifier=self.name,
                )
            rows.append(data)
        return rows

    async def _step_scores(
        self, client: httpx.AsyncClient, index: int, text: str, rows: list[Any], steps: int
    ) -> tuple[float, ...]:
        if len(rows) != steps:
            rows = await self._tag_rows(client, index, text, rows, steps)
        return tuple(
            positive_probability(row, self.positive_index, self.rows_are, verifier=self.name)
            for row in rows
        )

    async def _tag_rows(
        self, client: httpx.AsyncClient, index: int, text: str, rows: list[Any], steps: int
    ) -> list[Any]:
        """Pick the step-tag rows out of one-row-per-token output, or fail loudly."""
        mismatch = (
            f"the server returned {len(rows)} score rows for trajectory {index}, which has "
            f"{steps} steps"
        )
        if self.step_tag_id is None or len(rows) <= steps:
            raise ScoreCountError(mismatch, verifier=self.name)
        answer = await self.endpoint.post(
            client, "/tokenize", {"model": self.model, "prompt": text}
        )
        tokens = answer.get("tokens") if isinstance(answer, dict) else None
        if not isinstance(tokens, list) or len(tokens) != len(rows):
            raise ScoreCountError(
                f"{mismatch}, and they are not one row per token either; serve the model with "
                f"step pooling (step_tag_id={self.step_tag_id})",
                verifier=self.name,
            )
        picked = [row for row, token in zip(rows, tokens, strict=True) if token == self.step_tag_id]
        if len(picked) != steps:
            raise ScoreCountError(
                f"{mismatch}; {len(picked)} of its tokens are the step tag", verifier=self.name
            )
        return picked
