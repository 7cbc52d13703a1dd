"""``sal_compat=True`` reproduces search-and-learn's beam search, round by round.

The reference below is a port of ``_beam_search`` and ``beam_search`` in
``src/sal/search/beam_search.py`` (huggingface/search-and-learn), and of the selections in
``src/sal/utils/math.py`` and ``src/sal/utils/score.py``, as pure functions over scripted
generations and scores, with the model and the PRM taken out. Both it and ``BeamSearch`` run on
the same script: which text each continuation gets, and how the verifier scores every step. The
scripts have ties at the pruning cut, beams that finish early, beams cut by ``max_tokens``, and
(with ``dedup``) repeated beams; the test compares the survivors of every round, the returned
set and the answer under each selection.
"""

from __future__ import annotations

import asyncio
import copy
import math
import random
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from _scripted_openai_server import MODEL, ScriptedOpenAIServer

from sal_plugins import BeamSearch, BestOfN, ConfigError
from sal_plugins.answers import extract_answer
from sal_plugins.solvers import LlamaCppSolver, OpenAISolver
from sal_plugins.solvers._llama_loop import Sampling
from sal_plugins.solvers.base import (
    Generation,
    GenerationRequest,
    Solver,
    SolverCapabilities,
    SolverResponse,
    StopKind,
)
from sal_plugins.verifiers import ScriptedVerifier

PROBLEM = "What is 2 + 2?"
DELIMITER = "\n\n"
SCORES = (0.25, 0.5, 0.75)  # few values, so scores often tie


# --- the script both sides run on ------------------------------------------------------------


@dataclass(frozen=True)
class Script:
    """What each continuation of a partial solution is, and how each step scores.

    ``continuation(prefix, k, to_end)`` is the ``k``-th continuation served for ``prefix``; each
    side asks for continuations of a prefix in the order its beams need them. ``vocabulary``
    small makes sibling steps repeat (for ``dedup``); otherwise every step text is unique.
    """

    seed: int
    finish_rate: float = 0.25
    length_rate: float = 0.08
    vocabulary: int | None = None

    def continuation(self, prefix: tuple[str, ...], k: int, to_end: bool) -> tuple[str, StopKind]:
        rng = random.Random(f"{self.seed}|{'/'.join(prefix)}|{k}")
        answer = f"The answer is $\\boxed{{{rng.choice((3, 4, 5))}}}$."
        draw = rng.random()
        if to_end or draw < self.finish_rate:
            return f"so {len(prefix)}.{k}: {answer}", "end"
        if draw < self.finish_rate + self.length_rate:
            return f"cut {len(prefix)}.{k} {zlib.crc32('/'.join(prefix).encode())}", "length"
        if self.vocabulary is not None:
            return f"step {len(prefix)} kind {rng.randrange(self.vocabulary)}", "delimiter"
        # Some open steps state an answer and go on: beam search does not stop at boxed{.
        tail = f" ({answer})" if rng.random() < 0.2 else ""
        tag = zlib.crc32("/".join(prefix).encode())
        return f"step {len(prefix)}.{k} of {tag}{tail}", "delimiter"

    @staticmethod
    def step_score(problem: str, step: str) -> float:
        return SCORES[zlib.crc32(step.encode()) % len(SCORES)]


@dataclass
class ScriptSolver:
    """Serves a :class:`Script`: the ``k``-th request for a prefix gets its ``k``-th continuation."""

    script: Script
    requests: list[GenerationRequest] = field(default_factory=list)
    _served: Counter[tuple[str, ...]] = field(default_factory=Counter)
    capabilities: SolverCapabilities = field(
        default_factory=lambda: SolverCapabilities(honours_n=True)
    )

    async def generate(self, request: GenerationRequest) -> SolverResponse:
        self.requests.append(request)
        generations = []
        for _ in range(request.n):
            k = self._served[request.prefix_steps]
            self._served[request.prefix_steps] += 1
            text, kind = self.script.continuation(request.prefix_steps, k, not request.stop)
            generations.append(Generation(text=text, stop_kind=kind))
        return SolverResponse(generations)


# --- search-and-learn's beam search, ported --------------------------------------------------


def steps_of(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(DELIMITER) if part.strip())


def aggregate_scores(scores: list[float], agg_strategy: str) -> float:
    # sal.utils.score.aggregate_scores
    if agg_strategy == "min":
        return min(scores)
    elif agg_strategy == "prod":
        return math.prod(scores)
    elif agg_strategy == "last":
        return scores[-1]
    raise ValueError(agg_strategy)


def argsort(values: list[float]) -> list[int]:
    # np.argsort on numpy's portable sort, which keeps tied values in order (numpy's AVX-512
    # sort orders ties in no defined way; sal_compat follows the portable one).
    return sorted(range(len(values)), key=values.__getitem__)


@dataclass
class Beam:
    # sal.search.utils.Beam: the fields _beam_search reads and writes.
    current_text: str = ""
    pruned: bool = False
    completed: bool = False
    all_scores: list[float] = field(default_factory=list)


@dataclass
class Trace:
    """What the reference did: survivors per round, the returned beams and their scores.

    ``ties_at_cut`` and ``early_finishers`` count what the scripts should exercise.
    """

    survivors: list[list[tuple[str, ...]]] = field(default_factory=list)
    completed: list[tuple[str, ...]] = field(default_factory=list)
    scores: list[list[float]] = field(default_factory=list)
    ties_at_cut: int = 0
    early_finishers: int = 0


def sal_beam_search(
    script: Script,
    *,
    n: int,
    beam_width: int,
    num_iterations: int,
    agg_strategy: str,
    filter_duplicates: bool,
    sort_completed: bool,
) -> Trace:
    """``_beam_search`` of ``src/sal/search/beam_search.py``, line by line, minus the model."""
    served: Counter[tuple[str, ...]] = Counter()

    def generate(beam: Beam, last: bool) -> tuple[str, str]:
        # One vLLM sample with stop=["\n\n"] (none in the last iteration) and
        # include_stop_str_in_output=True; vLLM's stop_reason is None at EOS and at the length
        # limit, which sal's generate_k_steps turns into "EOS".
        prefix = steps_of(beam.current_text)
        k = served[prefix]
        served[prefix] += 1
        text, kind = script.continuation(prefix, k, last)
        if kind == "delimiter":
            return text + DELIMITER, DELIMITER
        return text, "EOS"

    def prm_score(text: str) -> list[float]:
        return [Script.step_score(PROBLEM, step) for step in steps_of(text)]

    trace = Trace()
    beams = [Beam() for _ in range(n)]
    completed_beams: list[Beam] = []
    active_beams: list[Beam] = []
    for i in range(num_iterations):
        if i == 0:
            active_beams = [b for b in beams if not b.pruned]
        else:
            active_beams = [b for b in active_beams if not b.pruned]
        if len(active_beams) != n:
            repeats = (n // len(active_beams)) + 1
            active_beams = [copy.deepcopy(b) for b in (active_beams * repeats)[:n]]
        last = i == num_iterations - 1
        for beam in active_beams:
            next_text, stop_reason = generate(beam, last)
            beam.current_text += next_text
            if stop_reason == "EOS" or stop_reason == "length" or next_text == "":
                beam.completed = True
                completed_beams.append(beam)
                trace.early_finishers += not last
        scores = [prm_score(b.current_text) for b in active_beams]
        agg_scores = [aggregate_scores(s, agg_strategy) for s in scores]
        for beam, score in zip(active_beams, scores, strict=True):
            beam.all_scores = score
        agg_scores = [agg_scores[j] for j, b in enumerate(active_beams) if not b.completed]
        active_beams = [b for b in active_beams if not b.completed]
        if len(active_beams) == 0:
            break
        if filter_duplicates:
            unique_beam_dict: dict[str, int] = {}
            for j, b in enumerate(active_beams):
                if b.current_text not in unique_beam_dict:
                    unique_beam_dict[b.current_text] = j
            active_beams = [active_beams[j] for j in unique_beam_dict.values()]
            agg_scores = [agg_scores[j] for j in unique_beam_dict.values()]
        top_indices = argsort(agg_scores)[-(n // beam_width) :]
        for idx, beam in enumerate(active_beams):
            if idx not in top_indices:
                beam.pruned = True
        kept = [agg_scores[j] for j in top_indices]
        dropped = [s for j, s in enumerate(agg_scores) if j not in top_indices]
        trace.ties_at_cut += bool(dropped) and min(kept) == max(dropped)
        trace.survivors.append([steps_of(b.current_text) for b in active_beams if not b.pruned])
    if sort_completed:
        completed_beams = sorted(
            completed_beams,
            key=lambda b: aggregate_scores(b.all_scores, agg_strategy),
            reverse=True,
        )[:n]
    else:
        completed_beams = completed_beams[:n]
    if len(completed_beams) != n:
        repeats = (n // len(completed_beams)) + 1
        completed_beams = [copy.deepcopy(b) for b in (completed_beams * repeats)[:n]]
    trace.completed = [steps_of(b.current_text) for b in completed_beams]
    trace.scores = [b.all_scores for b in completed_beams]
    return trace


def sal_prediction(trace: Trace, selection: str) -> str | None:
    """``compute_{naive,weighted,maj}_pred`` of ``src/sal/utils/math.py`` on ``score``'s inputs.

    ``score`` in ``src/sal/utils/score.py`` aggregates with ``"last"``. Answers are extracted
    with this project's extractor; the scripted answers are plain integers, so the answer text
    is its own canonical form.
    """
    preds = [extract_answer(DELIMITER.join(steps)) for steps in trace.completed]
    scores = [aggregate_scores(s, "last") for s in trace.scores]
    if selection == "naive":
        return sorted(zip(preds, scores, strict=True), key=lambda x: x[1], reverse=True)[0][0]
    groups: defaultdict[str | None, float] = defaultdict(float)
    for pred, score in zip(preds, scores, strict=True):
        groups[pred] += score if selection == "weighted" else 1
    if selection == "weighted":
        return max(groups, key=groups.__getitem__)
    top = max(groups.values())
    return next(pred for pred, count in groups.items() if count == top)


# --- the comparison --------------------------------------------------------------------------


def run_ours(script: Script, **settings: Any) -> tuple[Any, list[list[tuple[str, ...]]]]:
    solver = ScriptSolver(script)
    search = BeamSearch(
        solver=solver,
        verifier=ScriptedVerifier(Script.step_score),
        sal_compat=True,
        seed=0,
        **settings,
    )
    result = search.run(PROBLEM)
    # The survivors of round r are the prefixes round r + 1 continues, in request order.
    rounds: defaultdict[int, list[tuple[str, ...]]] = defaultdict(list)
    for request in solver.requests:
        if request.prefix_steps:
            rounds[len(request.prefix_steps)].append(request.prefix_steps)
    return result, [rounds[r] for r in sorted(rounds)]


SHAPES = [
    {"n": 4, "beam_width": 2, "max_steps": 4},
    {"n": 6, "beam_width": 2, "max_steps": 5},
    {"n": 8, "beam_width": 4, "max_steps": 4},
    {"n": 4, "beam_width": 1, "max_steps": 3},
]


def compare(script: Script, shape: dict[str, int], agg: str, dedup: bool, sort: bool) -> Trace:
    trace = sal_beam_search(
        script,
        n=shape["n"],
        beam_width=shape["beam_width"],
        num_iterations=shape["max_steps"],
        agg_strategy=agg,
        filter_duplicates=dedup,
        sort_completed=sort,
    )
    for selection in ("naive", "weighted", "majority"):
        result, survivors = run_ours(
            script,
            **shape,
            aggregation=agg,
            dedup=dedup,
            sort_completed=sort,
            selection=selection,
        )
        assert survivors == trace.survivors, f"survivors differ ({selection})"
        returned = Counter(c.steps for c in result.completions)
        assert returned == Counter(trace.completed), f"returned sets differ ({selection})"
        assert result.answer == sal_prediction(trace, selection), selection
    return trace


@pytest.mark.parametrize(
    "shape", SHAPES, ids=lambda s: "n{n}-m{beam_width}-s{max_steps}".format(**s)
)
@pytest.mark.parametrize("agg", ["last", "min", "prod"])
def test_sal_compat_reproduces_search_and_learn_round_by_round(
    shape: dict[str, int], agg: str
) -> None:
    ties_at_cut = early = cut_by_length = 0
    for seed in range(12):
        trace = compare(Script(seed), shape, agg, dedup=False, sort=False)
        ties_at_cut += trace.ties_at_cut
        early += trace.early_finishers
        cut_by_length += any(s[-1].startswith("cut") for s in trace.completed)
    # The scripts exercise where search-and-learn and this project's defaults part ways (with
    # beam_width=1 all n beams survive: there is no cut to tie at).
    assert (ties_at_cut or shape["beam_width"] == 1) and early and cut_by_length


@pytest.mark.parametrize("shape", SHAPES[:2], ids=["n4-m2", "n6-m2"])
def test_sal_compat_reproduces_dedup_and_sorted_completions(shape: dict[str, int]) -> None:
    for seed in range(10):
        compare(Script(seed, vocabulary=2), shape, "last", dedup=True, sort=False)
        compare(Script(seed), shape, "min", dedup=False, sort=True)


def test_ties_at_the_cut_go_to_the_later_beam_only_under_sal_compat() -> None:
    # Four first steps with equal scores; two survive. search-and-learn keeps the last two.
    script = Script(0, finish_rate=0.0, length_rate=0.0)
    first = [script.continuation((), k, False)[0] for k in range(4)]
    level = {step: 0.5 for step in first}

    def score(problem: str, step: str) -> float:
        return level.get(step, Script.step_score(problem, step))

    def survivors(**settings: Any) -> list[tuple[str, ...]]:
        solver = ScriptSolver(script)
        BeamSearch(
            solver=solver,
            verifier=ScriptedVerifier(score),
            n=4,
            beam_width=2,
            max_steps=2,
            **settings,
        ).run(PROBLEM)
        return [r.prefix_steps for r in solver.requests if len(r.prefix_steps) == 1]

    assert survivors(sal_compat=True) == [(first[2],), (first[3],)]
    assert survivors() == [(first[0],), (first[1],)]


# --- sal_compat's settings -------------------------------------------------------------------


def test_sal_compat_fills_in_search_and_learns_settings_unless_given() -> None:
    solver = ScriptSolver(Script(0))
    verifier = ScriptedVerifier(Script.step_score)
    compat = BeamSearch(solver=solver, verifier=verifier, sal_compat=True)
    assert (compat.max_tokens, compat.top_p, compat.sort_completed) == (2048, 1.0, False)
    ours = BeamSearch(solver=solver, verifier=verifier)
    assert (ours.max_tokens, ours.top_p, ours.sort_completed) == (1024, None, True)
    given = BeamSearch(
        solver=solver, verifier=verifier, sal_compat=True, max_tokens=64, sort_completed=True
    )
    assert (given.max_tokens, given.top_p, given.sort_completed) == (64, 1.0, True)
    assert BestOfN(solver=solver, verifier=verifier, sal_compat=True).early_stop is False


def test_sal_compat_requests_carry_search_and_learns_sampling() -> None:
    solver = ScriptSolver(Script(1))
    BeamSearch(
        solver=solver,
        verifier=ScriptedVerifier(Script.step_score),
        n=4,
        beam_width=2,
        max_steps=3,
        sal_compat=True,
    ).run(PROBLEM)
    assert {(r.top_p, r.max_tokens, r.temperature) for r in solver.requests} == {(1.0, 2048, 0.8)}


def test_sal_compat_with_lookahead_scores_candidates_alone_and_rolls_nothing_out() -> None:
    script = Script(3)
    shape = {"n": 4, "beam_width": 2, "max_steps": 4}
    trace = sal_beam_search(
        script,
        n=4,
        beam_width=2,
        num_iterations=4,
        agg_strategy="last",
        filter_duplicates=False,
        sort_completed=False,
    )
    result, survivors = run_ours(script, **shape, lookahead=2)
    assert survivors == trace.survivors
    assert all(node.kind != "lookahead" for node in result.tree)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"sal_compat": 1}, "sal_compat"),
        ({"sort_completed": "no"}, "sort_completed"),
        ({"selection": "best"}, "selection"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
    ],
)
def test_bad_settings_raise_config_errors_that_name_them(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        BeamSearch(
            solver=ScriptSolver(Script(0)),
            verifier=ScriptedVerifier(Script.step_score),
            **settings,
        )


# --- top_p reaches every solver --------------------------------------------------------------


@pytest.mark.parametrize("top_p", [0.9, None])
def test_top_p_reaches_the_scripted_solvers_requests(top_p: float | None) -> None:
    solver = ScriptSolver(Script(2))
    verifier = ScriptedVerifier(Script.step_score)
    BeamSearch(solver=solver, verifier=verifier, n=4, beam_width=2, max_steps=3, top_p=top_p).run(
        PROBLEM
    )
    assert {r.top_p for r in solver.requests} == {top_p}


def _reply(body: dict[str, Any]) -> str:
    return "2 + 2 = 4\n\nThe answer is $\\boxed{4}$."


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedOpenAIServer]:
    scripted = ScriptedOpenAIServer(_reply)
    scripted.start()
    yield scripted
    scripted.stop()


def _adapter(kind: str, base_url: str) -> Solver:
    if kind == "openai":
        return OpenAISolver(model=MODEL, base_url=base_url, api_key="x", continuation="instructed")
    if kind == "langchain":
        langchain_openai = pytest.importorskip("langchain_openai")
        langchain_sal = pytest.importorskip("langchain_sal")
        chat = langchain_openai.ChatOpenAI(model=MODEL, base_url=base_url, api_key="x")
        solver: Solver = langchain_sal.LangChainSolver(chat)
        return solver
    openai_like = pytest.importorskip("llama_index.llms.openai_like")
    llama_index_sal = pytest.importorskip("llama_index_sal")
    llm = openai_like.OpenAILike(
        model=MODEL, api_base=base_url, api_key="x", is_chat_model=True, max_retries=0
    )
    solver = llama_index_sal.LlamaIndexSolver(llm, continuation="instructed")
    return solver


@pytest.mark.parametrize("kind", ["openai", "langchain", "llama_index"])
def test_top_p_reaches_the_wire_of_every_http_adapter(
    server: ScriptedOpenAIServer, kind: str
) -> None:
    for top_p in (0.35, None):
        server.requests.clear()
        search = BestOfN(
            solver=_adapter(kind, server.base_url),
            verifier=ScriptedVerifier(Script.step_score),
            n=2,
            selection="naive",
            top_p=top_p,
        )
        assert search.run(PROBLEM).answer == "4"
        assert server.requests
        assert [body.get("top_p") for body in server.requests] == [top_p] * len(server.requests)


@pytest.mark.model
def test_top_p_replaces_the_llama_cpp_samplers(
    embedded_llama: LlamaCppSolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sal_plugins.solvers import llamacpp
    from sal_plugins.solvers._llama_loop import continue_tokens as original

    seen: list[float] = []

    def recording(*args: Any, sampling: Sampling, **kwargs: Any) -> Any:
        seen.append(sampling.top_p)
        return original(*args, sampling=sampling, **kwargs)

    monkeypatch.setattr(llamacpp, "continue_tokens", recording)
    for top_p in (0.3, None):
        request = GenerationRequest(problem=PROBLEM, n=1, max_tokens=4, seed=1, top_p=top_p)
        asyncio.run(embedded_llama.generate(request))
    assert seen == [0.3, embedded_llama.sampling.top_p]
    assert embedded_llama.sampling.top_p == 0.95  # the solver's own setting is left alone
