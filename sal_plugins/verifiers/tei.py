"""A sequence-classification reward model served by Hugging Face Text Embeddings Inference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import httpx

from sal_plugins.errors import ConfigError, ScoreCountError, VerifierError
from sal_plugins.replicas import affinity_of
from sal_plugins.verifiers._http import HTTPClient
from sal_plugins.verifiers._scores import chatml_closed, solution_messages
from sal_plugins.verifiers._sequence import SequenceRewardModel
from sal_plugins.verifiers.pooling import ChatTemplate

__all__ = ["TEIReward"]


class TEIReward(SequenceRewardModel):
    """A reward model behind TEI's ``/predict`` route (Text Embeddings Inference).

    The round goes out as one request in TEI's batch form, a list of lists: each input is the pair
    ``[problem, solution]`` (``input_format="pair"``, for reward models trained on
    question/answer pairs such as ``OpenAssistant/reward-model-deberta-v3-large-v2``) or a single
    rendered chat text (``input_format="text"``). Long inputs are truncated from the left
    (``truncate=True``, ``truncation_direction="Left"``), so the end of the solution, the part
    being judged, is what the model sees.

    TEI answers one list of ``{"score", "label"}`` per input, sorted by score; the score of an
    input is the entry whose label is ``label`` (or the only entry of a one-label model). With
    ``raw_scores=False`` (TEI's default) scores are probabilities and checked to lie in [0, 1];
    with ``raw_scores=True`` they are raw logits, unbounded.

    Args:
        base_url: the TEI server root, e.g. ``http://localhost:8080``, or a list of them
            (replicas of the same model; requests go to the least busy, one problem's to one
            replica, and a failing replica rests while its requests go to another).
        model: the served model's name, for your records (a TEI server serves one model, and
            ``/predict`` takes no model field).
        api_key: sent as a Bearer token (TEI's ``--api-key``).
        label: the label whose score is used; ``None`` accepts only one-label models.
        input_format: ``"pair"`` or ``"text"`` (see above).
        raw_scores: ask TEI for raw logits instead of probabilities.
        truncate: let TEI truncate inputs longer than the model's limit instead of failing.
        truncation_direction: ``"Left"`` keeps the end of the input, ``"Right"`` the start.
        per_step: score every prefix of each trajectory (one score per step).
        system_prompt: optional system turn for ``input_format="text"``.
        template: renders messages to text for ``input_format="text"``.
        step_delimiter: joins the steps into the solution text.
        timeout: seconds per request.
        transport: an ``httpx`` transport to use instead of the network.
        name: name used in errors and the tree.

    Example:
        >>> rm = TEIReward(base_url="http://localhost:8080", label="LABEL_0")
        >>> search = sal.BestOfN(solver=solver, verifier=rm, n=8)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        base_url: str | Sequence[str],
        model: str | None = None,
        api_key: str | None = None,
        label: str | None = None,
        input_format: Literal["pair", "text"] = "pair",
        raw_scores: bool = False,
        truncate: bool = True,
        truncation_direction: Literal["Left", "Right"] = "Left",
        per_step: bool = False,
        system_prompt: str | None = None,
        template: ChatTemplate = chatml_closed,
        step_delimiter: str = "\n\n",
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "TEIReward",
    ) -> None:
        if input_format not in ("pair", "text"):
            raise ConfigError(f"{name}: input_format must be 'pair' or 'text'")
        if truncation_direction not in ("Left", "Right"):
            raise ConfigError(f"{name}: truncation_direction must be 'Left' or 'Right'")
        super().__init__(
            base_url=base_url,
            api_key=api_key,
            per_step=per_step,
            step_delimiter=step_delimiter,
            timeout=timeout,
            transport=transport,
            name=name,
            bounded=not raw_scores,
        )
        self.model = model
        self.label = label
        self.input_format = input_format
        self.raw_scores = raw_scores
        self.truncate = truncate
        self.truncation_direction = truncation_direction
        self.system_prompt = system_prompt
        self.template = template

    def inputs(self, problem: str, solution: str) -> list[str]:
        """One entry of TEI's batch: a pair, or a one-element list holding the rendered text."""
        if self.input_format == "pair":
            return [problem, solution]
        return [self.template(solution_messages(problem, solution, self.system_prompt))]

    async def _score_texts(
        self, client: HTTPClient, problem: str, solutions: list[str]
    ) -> list[float]:
        body = {
            "inputs": [self.inputs(problem, s) for s in solutions],
            "raw_scores": self.raw_scores,
            "truncate": self.truncate,
            "truncation_direction": self.truncation_direction,
        }
        answer = await self.endpoint.post(client, "/predict", body, affinity=affinity_of(problem))
        if (
            isinstance(answer, list)
            and len(solutions) == 1
            and answer
            and all(isinstance(p, dict) for p in answer)
        ):
            answer = [answer]  # a batch of one may come back unnested
        if not isinstance(answer, list) or not all(isinstance(p, list) for p in answer):
            raise VerifierError(
                f"expected a list of prediction lists, got {str(answer)[:200]}", verifier=self.name
            )
        if len(answer) != len(solutions):
            raise ScoreCountError(
                f"the server returned {len(answer)} predictions for {len(solutions)} inputs",
                verifier=self.name,
            )
        return [self._pick(index, predictions) for index, predictions in enumerate(answer)]

    def _pick(self, index: int, predictions: list[object]) -> float:
        entries = [p for p in predictions if isinstance(p, dict) and "score" in p]
        if self.label is None:
            if len(entries) != 1:
                labels = [e.get("label") for e in entries]
                raise VerifierError(
                    f"input {index} got {len(entries)} labelled scores {labels}; pass label=... "
                    "to say which one is the reward",
                    verifier=self.name,
                )
            chosen = entries[0]
        else:
            matching = [e for e in entries if e.get("label") == self.label]
            if not matching:
                labels = [e.get("label") for e in entries]
                raise VerifierError(
                    f"input {index} has no score for label {self.label!r} (labels: {labels})",
                    verifier=self.name,
                )
            chosen = matching[0]
        try:
            return float(chosen["score"])
        except (TypeError, ValueError) as error:
            raise VerifierError(
                f"input {index} has a non-numeric score {chosen!r}", verifier=self.name
            ) from error
