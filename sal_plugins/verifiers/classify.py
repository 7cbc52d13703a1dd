"""A sequence-classification reward model served by vLLM's ``/classify`` route."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx

from sal_plugins.errors import ConfigError, VerifierError
from sal_plugins.replicas import affinity_of
from sal_plugins.verifiers._http import HTTPClient
from sal_plugins.verifiers._scores import chatml_closed, ordered_data, solution_messages
from sal_plugins.verifiers._sequence import SequenceRewardModel
from sal_plugins.verifiers.pooling import ChatTemplate

__all__ = ["ClassifyRM"]


class ClassifyRM(SequenceRewardModel):
    """A reward model with one score per sequence, behind vLLM's ``/classify`` route.

    Each (problem, solution) is rendered as ``[system?, user=problem, assistant=solution]`` with
    ``template`` and the whole round is sent as one request (``input`` is a list of strings). vLLM
    answers ``{"data": [{"index": i, "label": ..., "probs": [...], "num_classes": k}, ...]}``;
    the score is ``probs[label_index]`` (the last class by default: the only one of a one-label
    reward model, the positive one of a two-class model).

    Say what the server returns with ``scores_are``: ``"probabilities"`` (vLLM applies sigmoid or
    softmax by default; scores are checked to lie in [0, 1]) or ``"logits"`` (raw rewards, used
    as they are, unbounded; ask vLLM for them with ``extra_body={"use_activation": False}`` on
    versions that accept it, or serve a model without activation).

    Args:
        model: the served model name.
        base_url: the server root, e.g. ``http://localhost:8002`` (not ``.../v1``), or a list
            of them (replicas of the same model; requests go to the least busy, one problem's
            to one replica, and a failing replica rests while its requests go to another).
        api_key: sent as a Bearer token.
        scores_are: ``"probabilities"`` or ``"logits"`` (see above).
        label_index: which class's entry is the score.
        per_step: score every prefix of each trajectory (one score per step) instead of the
            whole trajectory only.
        system_prompt: optional system turn.
        template: renders the messages to text (ChatML with closed turns by default).
        step_delimiter: joins the steps into the solution text.
        extra_body: more request fields (e.g. ``{"truncate_prompt_tokens": -1}``).
        timeout: seconds per request.
        transport: an ``httpx`` transport to use instead of the network.
        name: name used in errors and the tree.

    Example:
        >>> rm = ClassifyRM(model="Skywork/Skywork-Reward-V2-Qwen3-0.6B",
        ...                 base_url="http://localhost:8002", scores_are="logits")
        >>> search = sal.BestOfN(solver=solver, verifier=rm, n=8)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | Sequence[str],
        api_key: str | None = None,
        scores_are: Literal["probabilities", "logits"] = "probabilities",
        label_index: int = -1,
        per_step: bool = False,
        system_prompt: str | None = None,
        template: ChatTemplate = chatml_closed,
        step_delimiter: str = "\n\n",
        extra_body: Mapping[str, Any] | None = None,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "ClassifyRM",
    ) -> None:
        if scores_are not in ("probabilities", "logits"):
            raise ConfigError(f"{name}: scores_are must be 'probabilities' or 'logits'")
        super().__init__(
            base_url=base_url,
            api_key=api_key,
            per_step=per_step,
            step_delimiter=step_delimiter,
            timeout=timeout,
            transport=transport,
            name=name,
            bounded=scores_are == "probabilities",
        )
        self.model = model
        self.scores_are = scores_are
        self.label_index = label_index
        self.system_prompt = system_prompt
        self.template = template
        self.extra_body = dict(extra_body or {})

    def render(self, problem: str, solution: str) -> str:
        """The text classified for one solution."""
        return self.template(solution_messages(problem, solution, self.system_prompt))

    async def _score_texts(
        self, client: HTTPClient, problem: str, solutions: list[str]
    ) -> list[float]:
        texts = [self.render(problem, s) for s in solutions]
        body = {**self.extra_body, "model": self.model, "input": texts}
        answer = await self.endpoint.post(client, "/classify", body, affinity=affinity_of(problem))
        scores = []
        for index, item in enumerate(ordered_data(answer, len(texts), verifier=self.name)):
            probs = item.get("probs")
            if not isinstance(probs, list) or not probs:
                raise VerifierError(
                    f"result {index} has no 'probs' list (got {str(item)[:120]})",
                    verifier=self.name,
                )
            try:
                scores.append(float(probs[self.label_index]))
            except IndexError as error:
                raise VerifierError(
                    f"result {index} has {len(probs)} classes; label_index {self.label_index} "
                    "is out of range",
                    verifier=self.name,
                ) from error
            except (TypeError, ValueError) as error:
                raise VerifierError(
                    f"result {index} has a non-numeric score {probs!r}", verifier=self.name
                ) from error
        return scores
