"""Ready-made settings for the process reward models people serve: input layout and score readout.

Each preset is the prompt layout a PRM was trained on and the way its score is read, expressed as
settings of an HTTP verifier that already exists here (:class:`~sal_plugins.verifiers.PoolingPRM`
for vLLM's ``/pooling`` route, :class:`~sal_plugins.verifiers.ChatLogprobPRM` for an
OpenAI-compatible chat endpoint with logprobs). Every score is in [0, 1].

========================  ==========================================  ============================
preset                    layout                                      readout
========================  ==========================================  ============================
``qwen2.5-math-prm``      ChatML; system prompt; ``<extra_0>`` after  softmax of 2 classes,
                          every step (``Qwen/Qwen2.5-Math-PRM-7B``,   index 1, at each tag
                          ``-72B``)
``rlhflow-deepseek``      chat: problem + step 1 as the first user    P(+) / (P(+) + P(-)) of the
``rlhflow-mistral``       turn, ``+`` as each assistant answer, each  next token, from top
                          later step a user turn                      logprobs
``math-shepherd``         ``problem step1 ки\\nstep2 ки\\n...``        P(+) / (P(+) + P(-)) of the
                          (``peiyi9979/math-shepherd-mistral-7b-prm``) LM head at each ``ки``
``pure-prm``              problem, then every step followed by a      softmax of 2 classes,
                          ``\\n`` token (``jinachris/PURE-PRM-7B``)     index 1, at each ``\\n``
``skywork-o1-prm``        problem, ``\\n``, steps each ending in       sigmoid of the value head
                          ``\\n`` (``Skywork/Skywork-o1-Open-PRM-      at the last token of each
                          Qwen-2.5-7B``, ``-1.5B``)                   step prefix
========================  ==========================================  ============================

How each is served, and what could not be confirmed, is in its ``notes``
(``PRM_PRESETS[name].notes``). Example:

    >>> prm = prm_preset("qwen2.5-math-prm", base_url="http://localhost:8001")
    >>> prm.step_tag
    '<extra_0>'
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from sal_plugins.errors import ConfigError
from sal_plugins.solvers.prompts import ChatMessage
from sal_plugins.verifiers.base import Verifier

__all__ = ["PRM_PRESETS", "PRMPreset", "prm_preset", "question_then_solution"]

Route = Literal["pooling", "chat"]


def question_then_solution(messages: Sequence[ChatMessage]) -> str:
    """``"{problem} {solution}"``: plain text, no chat template (Math-Shepherd's layout)."""
    by_role = {m["role"]: m["content"] for m in messages}
    return f"{by_role.get('user', '')} {by_role.get('assistant', '')}"


def _question_newline_solution(messages: Sequence[ChatMessage]) -> str:
    by_role = {m["role"]: m["content"] for m in messages}
    return f"{by_role.get('user', '')}\n{by_role.get('assistant', '')}"


@dataclass(frozen=True)
class PRMPreset:
    """One PRM's input layout and score readout, as settings of an existing verifier.

    Attributes:
        name: the preset's name (a key of :data:`PRM_PRESETS`).
        model: the model id the preset was written for, used when no ``model`` is given.
        route: ``"pooling"`` (vLLM ``/pooling``: ``base_url`` is the server root) or ``"chat"``
            (OpenAI-compatible chat with logprobs: ``base_url`` ends in ``/v1``).
        settings: keyword arguments for the verifier's constructor.
        aliases: other model ids (sizes, variants) that select this preset too.
        notes: how to serve the model, and what the model card leaves open.
    """

    name: str
    model: str
    route: Route
    settings: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    notes: str = ""

    def build(
        self,
        *,
        base_url: str | Sequence[str],
        model: str | None = None,
        api_key: str | None = None,
        **overrides: Any,
    ) -> Verifier:
        """The verifier for this preset; ``overrides`` replace or add constructor settings.

        Raises:
            ConfigError: an override the verifier does not take, or a bad setting.
        """
        from sal_plugins.verifiers.chat_logprob import ChatLogprobPRM
        from sal_plugins.verifiers.pooling import PoolingPRM

        cls: type[PoolingPRM] | type[ChatLogprobPRM] = (
            PoolingPRM if self.route == "pooling" else ChatLogprobPRM
        )
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(set(overrides) - accepted)
        if unknown:
            raise ConfigError(
                f"PRM preset {self.name!r}: {cls.__name__} takes no {', '.join(unknown)}; "
                f"settings it takes: {', '.join(sorted(accepted - {'base_url', 'model'}))}"
            )
        options = {"name": f"{cls.__name__}:{self.name}", **self.settings, **overrides}
        return cls(base_url=base_url, model=model or self.model, api_key=api_key, **options)


_QWEN_NOTES = """\
Qwen/Qwen2.5-Math-PRM-7B (and -72B): ``vllm serve Qwen/Qwen2.5-Math-PRM-7B --runner pooling``
(``--task reward`` on vLLM before the runner/convert options). vLLM's Qwen2ForProcessRewardModel
pools at ``<extra_0>`` (token 151651) with softmax, so each step gets one ``[p_neg, p_pos]`` row.
The layout follows the model card: the system prompt "Please reason step by step, and put your
final answer within \\boxed{}.", the problem as the user turn, the steps joined and closed by
``<extra_0>`` as the assistant turn, rendered by the chat template without a generation prompt."""

_RLHFLOW_NOTES = """\
RLHFlow/Llama3.1-8B-PRM-{variant}-Data: a generative PRM served as a chat model, e.g.
``vllm serve RLHFlow/Llama3.1-8B-PRM-{variant}-Data`` (base_url ``http://host:port/v1``). The
conversation follows RLHFlow's evaluation code (as search-and-learn uses it): the first user turn
is the problem, a space and step 1; each assistant turn is ``+``; each later step is its own user
turn. One token is generated with top logprobs and the step's score is P(+) / (P(+) + P(-)). The
chat template (Llama 3.1's, with its default system header) is applied by the server, as
``apply_chat_template`` does in the reference code."""

_SHEPHERD_NOTES = """\
peiyi9979/math-shepherd-mistral-7b-prm is a causal LM: the model card reads the LM head's logits
for ``+`` (token 648) and ``-`` (token 387) at every ``ки`` (token 12902) and takes the softmax
over the two. vLLM lists it among its process reward models and serves it through ``/pooling``
with the step pooler configured explicitly:
``vllm serve peiyi9979/math-shepherd-mistral-7b-prm --runner pooling --pooler-config
'{"pooling_type": "STEP", "step_tag_id": 12902, "returned_token_ids": [648, 387]}'``; each row is
then ``[P(+), P(-)]``, so the positive class is index 0. Whether a given vLLM release applies the
LM head before step pooling (rather than pooling hidden states) could not be confirmed here:
check that a served row has two entries summing to 1. The layout is the card's
``f"{question} {output}"`` with `` ки`` after every step and a newline between steps; the card's
example steps carry "Step k:" prefixes, which come from the solver and are not added here."""

_PURE_NOTES = """\
jinachris/PURE-PRM-7B (Cheng et al., PURE): Qwen2.5-Math-7B fine-tuned as a token classifier
(2 labels) on PRM800K. Per the model card, steps are separated by blank lines in the solution, a
``\\n`` token follows every step, and the reward at that token is p_pos - p_neg in [-1, 1]; this
preset reports p_pos, which orders steps the same way (p_pos - p_neg = 2 p_pos - 1) and keeps
scores in [0, 1] for every aggregation. Serve with ``vllm serve jinachris/PURE-PRM-7B --runner
pooling --pooler-config '{"pooling_type": "STEP", "step_tag_id": 198}'`` (198 is ``\\n`` in the
Qwen2.5 vocabulary); without step pooling the per-token rows are picked out through
``/tokenize``. Not confirmed from the card: what joins the problem to the first step (this preset
uses a space, as a ``\\n`` there would be read as a step end) and whether a chat template wraps the
problem (none here). Limits: the card tokenizes each step on its own and appends the ``\\n`` token,
while a server tokenizes the whole text, where a newline after punctuation can merge into one
token (``.\\n``) and a newline inside a step is a token of its own; either shows up as a
:class:`~sal_plugins.errors.ScoreCountError`, never as a shifted score."""

_SKYWORK_NOTES = """\
Skywork/Skywork-o1-Open-PRM-Qwen-2.5-7B (and -1.5B): Qwen2.5-Math-Instruct with a value head,
one logit per token; the step reward is its sigmoid. Where servable: Skywork's instructions
(SkyworkAI/skywork-o1-prm-inference) serve it with vLLM 0.6.4.post1 plus their model plugin and
read the last token's value from ``/v1/embeddings``; vLLM itself has no class for this
architecture. This preset needs a vLLM that has ``/pooling`` and loads that plugin (or an
equivalent pooler): it sends one input per step prefix and reads the last row of each
(``rows_at="prefix_ends"``), the same readout as Skywork's served example, and accepts either
all-token rows or one pooled value per input. Not confirmed here: Skywork's helper prepends the
tokenizer's BOS token and ends the problem with ``\\n`` and each step with the step token
(``\\n`` in its example); this preset renders ``problem\\nstep1\\nstep2\\n`` and sends no BOS."""

PRM_PRESETS: Mapping[str, PRMPreset] = MappingProxyType(
    {
        preset.name: preset
        for preset in (
            PRMPreset(
                name="qwen2.5-math-prm",
                model="Qwen/Qwen2.5-Math-PRM-7B",
                route="pooling",
                settings={"positive_index": 1},
                aliases=("Qwen/Qwen2.5-Math-PRM-72B",),
                notes=_QWEN_NOTES,
            ),
            PRMPreset(
                name="rlhflow-deepseek",
                model="RLHFlow/Llama3.1-8B-PRM-Deepseek-Data",
                route="chat",
                settings={"positive": "+", "negative": "-", "first_turn": "{problem} {step}"},
                notes=_RLHFLOW_NOTES.replace("{variant}", "Deepseek"),
            ),
            PRMPreset(
                name="rlhflow-mistral",
                model="RLHFlow/Llama3.1-8B-PRM-Mistral-Data",
                route="chat",
                settings={"positive": "+", "negative": "-", "first_turn": "{problem} {step}"},
                notes=_RLHFLOW_NOTES.replace("{variant}", "Mistral"),
            ),
            PRMPreset(
                name="math-shepherd",
                model="peiyi9979/math-shepherd-mistral-7b-prm",
                route="pooling",
                settings={
                    "step_tag": " ки\n",
                    "step_tag_id": 12902,
                    "system_prompt": None,
                    "template": question_then_solution,
                    "positive_index": 0,
                },
                notes=_SHEPHERD_NOTES,
            ),
            PRMPreset(
                name="pure-prm",
                model="jinachris/PURE-PRM-7B",
                route="pooling",
                settings={
                    "step_tag": "\n",
                    "step_tag_id": 198,
                    "system_prompt": None,
                    "template": question_then_solution,
                    "positive_index": 1,
                },
                notes=_PURE_NOTES,
            ),
            PRMPreset(
                name="skywork-o1-prm",
                model="Skywork/Skywork-o1-Open-PRM-Qwen-2.5-7B",
                route="pooling",
                settings={
                    "step_tag": "\n",
                    "step_tag_id": None,
                    "system_prompt": None,
                    "template": _question_newline_solution,
                    "positive_index": 0,
                    "rows_are": "logits",
                    "rows_at": "prefix_ends",
                },
                aliases=("Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B",),
                notes=_SKYWORK_NOTES,
            ),
        )
    }
)
"""Every preset by name; see the module docstring for the table."""


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _find(name: str) -> tuple[PRMPreset, str | None]:
    """The preset a name selects, and the model id when the name was one."""
    wanted = _key(name)
    for preset in PRM_PRESETS.values():
        if wanted == _key(preset.name):
            return preset, None
        for model in (preset.model, *preset.aliases):
            if wanted == _key(model):
                return preset, model
    raise ConfigError(
        f"unknown PRM preset {name!r}: choose one of {', '.join(PRM_PRESETS)} (or one of their "
        "model ids), or build PoolingPRM / ChatLogprobPRM with your own layout"
    )


def prm_preset(
    name: str,
    *,
    base_url: str | Sequence[str],
    model: str | None = None,
    api_key: str | None = None,
    **overrides: Any,
) -> Verifier:
    """The verifier for a known PRM, laid out and read as its model card says.

    Args:
        name: a key of :data:`PRM_PRESETS` (case and ``_``/``-`` do not matter) or one of the model
            ids it covers, e.g. ``"Qwen/Qwen2.5-Math-PRM-72B"``.
        base_url: the server root for ``/pooling`` presets (``http://localhost:8001``); the
            OpenAI-compatible base URL, ending in ``/v1``, for the chat presets (RLHFlow); a list
            is replicas of the same model, as the verifiers take it.
        model: the served model name (default: the model id ``name`` gave, else the preset's).
        api_key: sent as a Bearer token.
        **overrides: more constructor settings of the verifier (``timeout``, ``max_batch_size``,
            ``transport``, ...), replacing the preset's where they overlap.

    Returns:
        A :class:`~sal_plugins.verifiers.PoolingPRM` or
        :class:`~sal_plugins.verifiers.ChatLogprobPRM`.

    Raises:
        ConfigError: an unknown preset, an override the verifier does not take, or a bad setting.

    Example:
        >>> prm = prm_preset("rlhflow-deepseek", base_url="http://localhost:8003/v1")
        >>> prm.model
        'RLHFlow/Llama3.1-8B-PRM-Deepseek-Data'
    """
    preset, named_model = _find(name)
    chosen = model or named_model
    return preset.build(base_url=base_url, model=chosen, api_key=api_key, **overrides)
