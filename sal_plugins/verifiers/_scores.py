"""Small helpers shared by the verifiers: chat rendering, probability rows, label log-probs."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Literal, TypeVar

from sal_plugins.errors import ScoreCountError, VerifierError
from sal_plugins.solvers.prompts import ChatMessage

__all__ = [
    "RowKind",
    "chatml_closed",
    "gather_all",
    "label_probability",
    "label_ratio",
    "ordered_data",
    "positive_probability",
    "solution_messages",
]

T = TypeVar("T")

RowKind = Literal["auto", "probabilities", "logits"]
"""What a server's classification rows hold: probabilities, raw logits, or ``auto`` (detect)."""


def chatml_closed(messages: Sequence[ChatMessage]) -> str:
    """ChatML with every turn closed and no generation prompt.

    This is what ``tokenizer.apply_chat_template(messages, add_generation_prompt=False)`` renders
    for Qwen2.5 models (Qwen2.5-Math-PRM, Qwen2.5-Math-RM) and other ChatML models.
    """
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def solution_messages(
    problem: str, solution: str, system_prompt: str | None = None
) -> list[ChatMessage]:
    """``[system?, user=problem, assistant=solution]``: how reward models read a solution."""
    messages: list[ChatMessage] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": problem})
    messages.append({"role": "assistant", "content": solution})
    return messages


def _softmax(row: Sequence[float]) -> list[float]:
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    total = sum(exps)
    return [e / total for e in exps]


def positive_probability(
    row: Sequence[float], index: int, kind: RowKind, *, verifier: str
) -> float:
    """The probability of class ``index`` in a classification row.

    ``probabilities`` rows are read as they are; ``logits`` rows are softmaxed (a single logit goes
    through a sigmoid); ``auto`` reads a row as probabilities when every value lies in [0, 1] and
    they sum to 1 (a single value: lies in [0, 1]), and as logits otherwise.

    Raises:
        VerifierError: the row is empty, not numeric, or too short for ``index``.
    """
    try:
        values = [float(v) for v in row]
    except (TypeError, ValueError) as error:
        raise VerifierError(f"non-numeric score row {row!r}", verifier=verifier) from error
    if not values or not -len(values) <= index < len(values):
        raise VerifierError(
            f"score row {values} has no entry at label index {index}", verifier=verifier
        )
    if any(not math.isfinite(v) for v in values):
        return math.nan  # let the range check report it, by name
    if kind == "auto":
        in_unit = all(0.0 <= v <= 1.0 for v in values)
        kind = (
            "probabilities"
            if in_unit and (len(values) == 1 or abs(sum(values) - 1.0) < 1e-3)
            else "logits"
        )
    if kind == "probabilities":
        return values[index]
    if len(values) == 1:
        return 1.0 / (1.0 + math.exp(-values[0]))
    return _softmax(values)[index]


def label_probability(
    top_logprobs: Mapping[str, float], labels: Iterable[str]
) -> tuple[float, bool]:
    """Total probability of the tokens that spell one of ``labels``, and whether any was seen.

    Tokens are compared after stripping whitespace, so ``"+"`` also matches ``" +"``.
    """
    wanted = {label.strip() for label in labels}
    total = 0.0
    seen = False
    for token, logprob in top_logprobs.items():
        if token.strip() in wanted:
            total += math.exp(logprob)
            seen = True
    return total, seen


def label_ratio(
    top_logprobs: Mapping[str, float],
    positive: Iterable[str],
    negative: Iterable[str],
    *,
    verifier: str,
) -> float:
    """``P(positive) / (P(positive) + P(negative))`` from one position's top log-probs.

    A label absent from the top ``k`` had at most the probability of the least likely token
    returned, so that bound stands in for it. If neither label is among the top ``k`` the answer
    says nothing about the step, which is an error.

    Raises:
        VerifierError: no top log-probs, or neither label among them.
    """
    if not top_logprobs:
        raise VerifierError("the server returned no top_logprobs", verifier=verifier)
    p_pos, pos_seen = label_probability(top_logprobs, positive)
    p_neg, neg_seen = label_probability(top_logprobs, negative)
    if not pos_seen and not neg_seen:
        shown = ", ".join(repr(t) for t in list(top_logprobs)[:10])
        raise VerifierError(
            f"neither label is among the top log-probs ({shown}); raise top_logprobs or check "
            "the label tokens",
            verifier=verifier,
        )
    floor = math.exp(min(top_logprobs.values()))
    if not pos_seen:
        p_pos = floor
    if not neg_seen:
        p_neg = floor
    return p_pos / (p_pos + p_neg)


def ordered_data(body: object, expected: int, *, verifier: str) -> list[dict[str, object]]:
    """The ``data`` items of an OpenAI-style list response, ordered by their ``index``.

    Raises:
        ScoreCountError: the server answered for a different number of inputs than were sent.
        VerifierError: the body is not a list response.
    """
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise VerifierError(
            f"expected a JSON object with a 'data' list, got {str(body)[:200]}", verifier=verifier
        )
    if len(data) != expected:
        raise ScoreCountError(
            f"the server returned {len(data)} results for {expected} inputs", verifier=verifier
        )
    indices = [item.get("index", position) for position, item in enumerate(data)]
    if sorted(indices) != list(range(expected)):
        raise ScoreCountError(
            f"the server returned result indices {indices} for {expected} inputs",
            verifier=verifier,
        )
    by_index = dict(zip(indices, data, strict=True))
    return [by_index[i] for i in range(expected)]


async def gather_all(*awaitables: Awaitable[T]) -> list[T]:
    """Run all awaitables to completion, then raise the first error if any failed.

    Unlike a bare ``asyncio.gather``, no sibling is left running after a failure: requests finish
    (and are cached where the verifier caches) before their client closes, and child processes
    are not orphaned.
    """
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]
