"""A token-classification process reward model served by vLLM's ``/pooling`` route."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import httpx

from sal_plugins.errors import ConfigError, ScoreCountError, VerifierError
from sal_plugins.replicas import affinity_of
from sal_plugins.solvers.prompts import ChatMessage
from sal_plugins.verifiers._http import HTTPClient, HTTPEndpoint, HTTPStatusError, server_root
from sal_plugins.verifiers._scores import (
    RowKind,
    chatml_closed,
    gather_all,
    ordered_data,
    positive_probability,
    solution_messages,
)
from sal_plugins.verifiers.base import Granularity, Judgement, Trajectory, check_scores

__all__ = [
    "DEFAULT_POOLING_TASK",
    "QWEN_PRM_STEP_TAG",
    "QWEN_PRM_STEP_TAG_ID",
    "QWEN_PRM_SYSTEM_PROMPT",
    "PoolingPRM",
    "RowPlacement",
]

QWEN_PRM_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
"""The system prompt Qwen2.5-Math-PRM was trained with."""

QWEN_PRM_STEP_TAG = "<extra_0>"
"""The token Qwen2.5-Math-PRM scores: one after every step."""

QWEN_PRM_STEP_TAG_ID = 151651
"""Token id of ``<extra_0>`` in the Qwen2.5 vocabulary."""

DEFAULT_POOLING_TASK = "token_classify"
"""The pooling task a PRM wants from vLLM: class probabilities per token (or per step tag)."""

ChatTemplate = Callable[[Sequence[ChatMessage]], str]
"""Renders ``[system?, user, assistant]`` messages to the text the reward model reads."""

RowPlacement = Literal["step_tags", "prefix_ends"]
"""Where a step's score row is: at its step tag, or at the last token of its own prefix."""

_NAMES_TASK = re.compile(r"\btask\b", re.IGNORECASE)


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

    The request states the pooling task it wants (``"task": "token_classify"``), as vLLM's
    pooling docs ask since the ``encode`` task was split into ``token_embed`` and
    ``token_classify``: without it a server picks its own default task, which for some models
    is not the per-token classification a PRM needs. Servers from before the split either ignore
    the field or reject it; a 400 or 422 whose message names ``task`` is retried once without it,
    and this verifier leaves the field out from then on. The body vLLM answers with has the same
    shape on both sides of the split (a list of rows per input); what the rows are depends on the
    pooler: one per step tag with step pooling, one per token without it (both handled above).
    A sequence-pooled answer (one flat vector per input, as the ``classify`` and ``embed`` tasks
    give) is a :class:`~sal_plugins.errors.VerifierError` that says to ask for ``token_classify``.

    Args:
        model: the served model name (``vllm serve``'s model or ``--served-model-name``).
        base_url: the server root, e.g. ``http://localhost:8001`` (not ``.../v1``), or a list
            of them (replicas of the same model: each request goes to the least busy, and a
            failing replica rests while its requests go to another).
        api_key: sent as a Bearer token (vLLM's ``--api-key``).
        step_tag: text placed after every step (and removed from inside steps).
        step_tag_id: token id of ``step_tag``, used only when the server returns all-token rows.
        system_prompt: system turn (``None`` for none).
        template: renders the messages to text (ChatML with closed turns by default).
        positive_index: which entry of a row is the "step is correct" class.
        rows_are: ``"probabilities"`` (vLLM's default for PRMs), ``"logits"`` (softmaxed here; a
            one-value row goes through a sigmoid), or ``"auto"``: probabilities when a row lies in
            [0, 1] and sums to 1, else logits.
        rows_at: ``"step_tags"``: one request input per trajectory, rows at its step tags (as
            above); ``"prefix_ends"``: one input per step prefix, the step's score read from the
            last row of its prefix (for value-head PRMs scored at the last token, where the step
            tag need not be its own token; costs more tokens, which vLLM's prefix cache absorbs).
        max_batch_size: most inputs per request (``None``: the whole round in one request).
        batch_input: send a list of inputs per request (``True``), one string per request
            (``False``, all concurrent), or ``None``: lists, falling back to one string per request
            for good if the server rejects a list with 400 or 422.
        task: the pooling task sent as ``"task"`` (``None`` sends none and lets the server use
            its default).
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
        base_url: str | Sequence[str],
        api_key: str | None = None,
        step_tag: str = QWEN_PRM_STEP_TAG,
        step_tag_id: int | None = QWEN_PRM_STEP_TAG_ID,
        system_prompt: str | None = QWEN_PRM_SYSTEM_PROMPT,
        template: ChatTemplate = chatml_closed,
        positive_index: int = 1,
        rows_are: RowKind = "auto",
        rows_at: RowPlacement = "step_tags",
        max_batch_size: int | None = None,
        batch_input: bool | None = None,
        task: str | None = DEFAULT_POOLING_TASK,
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
        if rows_at not in ("step_tags", "prefix_ends"):
            raise ConfigError(f"{name}: rows_at must be 'step_tags' or 'prefix_ends'")
        if task is not None and (not isinstance(task, str) or not task.strip()):
            raise ConfigError(
                f"{name}: task must be a pooling task name such as {DEFAULT_POOLING_TASK!r}, "
                "or None to send none"
            )
        self.model = model
        self.step_tag = step_tag
        self.step_tag_id = step_tag_id
        self.system_prompt = system_prompt
        self.template = template
        self.positive_index = positive_index
        self.rows_are: RowKind = rows_are
        self.rows_at: RowPlacement = rows_at
        self.max_batch_size = max_batch_size
        self.batch_input = batch_input
        self._send_lists = batch_input is not False
        self.task = task
        self._send_task = task is not None
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
        core = tag.strip()  # a whitespace tag (a newline) is left alone inside steps
        answer = "".join((step.replace(core, "") if core else step) + tag for step in steps)
        return self.template(solution_messages(problem, answer, self.system_prompt))

    async def score(self, problem: str, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        """Score every step of every trajectory in as few requests as ``max_batch_size`` allows."""
        if not trajectories:
            return []
        if self.rows_at == "prefix_ends":
            return await self._score_prefix_ends(problem, trajectories)
        texts = [self.render(problem, t.steps) for t in trajectories]
        async with self.endpoint.client() as client:
            rows_per_input = await self._pool_all(client, texts, affinity_of(problem))
            pairs = enumerate(zip(trajectories, rows_per_input, strict=True))
            scores = await gather_all(
                *(
                    self._step_scores(client, index, texts[index], rows, len(t.steps))
                    for index, (t, rows) in pairs
                )
            )
        judgements = [Judgement(row) for row in scores]
        return check_scores(self, trajectories, judgements)

    async def _score_prefix_ends(
        self, problem: str, trajectories: Sequence[Trajectory]
    ) -> list[Judgement]:
        """One input per step prefix; a step's score is read from the last row of its prefix."""
        texts: list[str] = []
        spans: list[tuple[int, int]] = []
        for trajectory in trajectories:
            start = len(texts)
            steps = trajectory.steps
            texts.extend(self.render(problem, steps[:end]) for end in range(1, len(steps) + 1))
            spans.append((start, len(texts)))
        rows_per_input: list[list[Any]] = []
        if texts:
            async with self.endpoint.client() as client:
                rows_per_input = await self._pool_all(
                    client, texts, affinity_of(problem), flat_ok=True
                )
        for index, rows in enumerate(rows_per_input):
            if not rows:
                raise VerifierError(f"result {index} has no score rows", verifier=self.name)
        last = [
            positive_probability(rows[-1], self.positive_index, self.rows_are, verifier=self.name)
            for rows in rows_per_input
        ]
        judgements = [Judgement(tuple(last[start:end])) for start, end in spans]
        return check_scores(self, trajectories, judgements)

    async def _pool_all(
        self, client: HTTPClient, texts: list[str], affinity: str, *, flat_ok: bool = False
    ) -> list[list[Any]]:
        """Rows for every text, in ``max_batch_size`` chunks sent concurrently.

        ``affinity`` (:func:`~sal_plugins.replicas.affinity_of` the problem) keeps one search's
        requests on one replica, where its shared prompt prefix is cached.
        """
        size = self.max_batch_size or len(texts)
        chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
        answers = await gather_all(
            *(self._pool(client, chunk, flat_ok, affinity) for chunk in chunks)
        )
        return [rows for answer in answers for rows in answer]

    async def _pool(
        self, client: HTTPClient, texts: list[str], flat_ok: bool, affinity: str
    ) -> list[list[Any]]:
        if self._send_lists:
            try:
                answer = await self._post_pooling(client, texts, affinity)
            except HTTPStatusError as error:
                if self.batch_input is not None or error.status_code not in (400, 422):
                    raise
                self._send_lists = False  # the server takes one string per request
            else:
                return self._rows(answer, len(texts), flat_ok)
        singles = await gather_all(*(self._post_pooling(client, text, affinity) for text in texts))
        return [rows for answer in singles for rows in self._rows(answer, 1, flat_ok)]

    def _body(self, pooling_input: str | list[str]) -> dict[str, Any]:
        body = {**self.extra_body, "model": self.model, "input": pooling_input}
        if self._send_task:
            body["task"] = self.task
        return body

    async def _post_pooling(
        self, client: HTTPClient, pooling_input: str | list[str], affinity: str
    ) -> Any:
        """POST to ``/pooling``; a server that rejects the ``task`` field is asked again without."""
        try:
            return await self.endpoint.post(
                client, "/pooling", self._body(pooling_input), affinity=affinity
            )
        except HTTPStatusError as error:
            if not self._send_task or not _rejects_task(error):
                raise
        self._send_task = False  # a server from before the task split: remembered
        return await self.endpoint.post(
            client, "/pooling", self._body(pooling_input), affinity=affinity
        )

    def _rows(self, answer: object, count: int, flat_ok: bool = False) -> list[list[Any]]:
        items = ordered_data(answer, count, verifier=self.name)
        rows: list[list[Any]] = []
        for index, item in enumerate(items):
            data = item.get("data")
            flat = isinstance(data, list) and data and not any(isinstance(r, list) for r in data)
            if flat and flat_ok:
                rows.append([data])  # a sequence-pooled answer is the last token's row
                continue
            if flat:
                raise VerifierError(
                    f"result {index} is one vector for the whole input (got {str(data)[:120]}), "
                    "not rows per step: the server pooled the sequence; serve the PRM with "
                    f"--runner pooling and ask for task={DEFAULT_POOLING_TASK!r}",
                    verifier=self.name,
                )
            if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
                raise VerifierError(
                    f"result {index} is not a list of score rows (got {str(data)[:120]}); "
                    "is the served model a token-classification reward model?",
                    verifier=self.name,
                )
            rows.append(data)
        return rows

    async def _step_scores(
        self, client: HTTPClient, index: int, text: str, rows: list[Any], steps: int
    ) -> tuple[float, ...]:
        if len(rows) != steps:
            rows = await self._tag_rows(client, index, text, rows, steps)
        return tuple(
            positive_probability(row, self.positive_index, self.rows_are, verifier=self.name)
            for row in rows
        )

    async def _tag_rows(
        self, client: HTTPClient, index: int, text: str, rows: list[Any], steps: int
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


def _rejects_task(error: HTTPStatusError) -> bool:
    """Whether a 400/422 answer is about the ``task`` field (a server that predates it)."""
    if error.status_code not in (400, 422):
        return False
    _, _, body = str(error).partition("/pooling")  # skip the URL: only the server's message
    return bool(_NAMES_TASK.search(body))
