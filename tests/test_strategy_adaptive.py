"""Adaptive: the probe, the policy's decision, reuse of the probe's work, budgets, policy files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sal_plugins import Adaptive, AdaptivePolicy, Budget, ConfigError, SearchResult
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.strategies import build_strategy
from sal_plugins.strategies.adaptive import (
    PolicyArm,
    PolicyBin,
    ProbeSignals,
    Range,
    default_policy,
)
from sal_plugins.verifiers import ScriptedVerifier

PROBLEM = "What is (2 + 3) * 2?"


def solution(first: str, answer: int) -> str:
    return f"{first}\n\n{answer} is the result\n\nThe answer is $\\boxed{{{answer}}}$."


RIGHT = solution("2 + 3 = 5", 10)
RIGHT_TOO = solution("5 + 5 = 10", 10)
WRONG = [solution("2 + 3 = 6", 12), solution("2 + 3 = 4", 8), solution("2 * 3 = 6", 6)]


def step_score(problem: str, step: str) -> float:
    """Right work and the right answer score high; every other step low."""
    return 0.9 if any(mark in step for mark in ("= 5", "= 10", "{10}", "10 is")) else 0.1


def verifier() -> ScriptedVerifier:
    return ScriptedVerifier(step_score, score_range=(0.0, 1.0))


def note_of(result: SearchResult) -> str:
    """The search's one choice, in words: why, then what."""
    choices = result.summary()["choices"]
    assert len(choices) == 1, choices
    return f"{choices[0]['because']} -> {choices[0]['choice']}"


def probe_ids(result: SearchResult) -> set[int]:
    return {n.id for n in result.tree.nodes[1:] if n.round == 0}


async def test_easy_problem_stops_with_the_probe_answer() -> None:
    solver = ScriptedSolver([RIGHT, RIGHT_TOO], honours_n=False)
    scorer = verifier()
    result = await Adaptive(solver=solver, verifier=scorer, seed=1).arun(PROBLEM)
    assert result.answer == "10"
    assert solver.calls == 4 and scorer.calls == 1  # the probe and nothing more
    assert {c.node_id for c in result.completions} == probe_ids(result)
    note = note_of(result)
    assert "agreement 1.00" in note and "bin 'easy'" in note and "stop" in note
    assert result.stop_reason == "finished"


async def test_medium_problem_continues_best_of_n_with_the_probe_samples_voting() -> None:
    solver = ScriptedSolver([RIGHT, WRONG[0]], honours_n=False)
    scorer = verifier()
    search = Adaptive(solver=solver, verifier=scorer, seed=3, n=8)
    result = await search.arun(PROBLEM)
    assert result.answer == "10"
    # The probe's 4 samples count toward best-of-8: only 4 more are generated.
    assert solver.calls == 8
    assert scorer.calls == 2
    final = {c.node_id for c in result.completions}
    assert probe_ids(result) <= final and len(final) == 8
    note = note_of(result)
    assert "bin 'medium'" in note and "best_of_n n=8 (capped from n=16)" in note
    assert "the probe's 4 samples vote with 4 more" in note


async def test_hard_problem_switches_to_beam_search_and_keeps_the_probe_candidates() -> None:
    solver = ScriptedSolver([RIGHT, *WRONG])
    search = Adaptive(solver=solver, verifier=verifier(), seed=0, n=4, max_steps=5)
    result = await search.arun(PROBLEM)
    note = note_of(result)
    assert "agreement 0.25" in note and "bin 'otherwise'" in note
    assert "beam_search n=4 (beam_width=4) (capped from n=16)" in note
    generated = [n for n in result.tree.nodes[1:] if n.kind == "step" and n.round >= 1]
    assert generated  # the beam's rounds follow the probe's
    # The probe's 4 samples are split into steps and their first steps are the beam's first
    # round: nothing more is generated from the root.
    assert all(n.parent != 0 for n in generated)
    first_steps = [n for n in result.tree.children(0) if n.kind == "step"]
    assert len(first_steps) == 4 and all(n.round == 0 and n.score is not None for n in first_steps)
    assert "4 of them riding along step by step" in note
    assert result.answer == "10"
    assert probe_ids(result) & {c.node_id for c in result.completions}
    assert result.tree[result.completions[0].node_id].finished


@pytest.mark.parametrize("honours_n", [True, False])
async def test_call_budget_covers_the_probe_and_the_arm(honours_n: bool) -> None:
    solver = ScriptedSolver([RIGHT, WRONG[0]], honours_n=honours_n)
    cap = 3 if honours_n else 6
    search = Adaptive(solver=solver, verifier=verifier(), seed=3, budget=Budget(max_calls=cap))
    result = await search.arun(PROBLEM)
    assert result.usage.calls <= cap
    assert result.stop_reason == "budget"
    assert probe_ids(result) & {c.node_id for c in result.completions}


async def test_token_budget_stops_after_the_probe() -> None:
    unlimited = await Adaptive(
        solver=ScriptedSolver([RIGHT, WRONG[0]]), verifier=verifier(), seed=3
    ).arun(PROBLEM)
    probe_tokens = sum(
        len(n.text.split()) for n in unlimited.tree.nodes[1:] if n.round == 0
    )  # the scripted solver counts words as tokens
    search = Adaptive(
        solver=ScriptedSolver([RIGHT, WRONG[0]]),
        verifier=verifier(),
        seed=3,
        budget=Budget(max_tokens=probe_tokens),
    )
    result = await search.arun(PROBLEM)
    assert result.stop_reason == "budget"
    assert result.usage.generation_calls < unlimited.usage.generation_calls
    assert {c.node_id for c in result.completions} <= probe_ids(result)


async def test_probe_matches_best_of_n_at_the_probe_size() -> None:
    """Same seed, same first request: calibration may read best-of-k records as the probe."""
    from sal_plugins import BestOfN

    solutions = [RIGHT, *WRONG]
    probe = await Adaptive(solver=ScriptedSolver(solutions), verifier=verifier(), seed=5).arun(
        PROBLEM
    )
    plain = await BestOfN(solver=ScriptedSolver(solutions), verifier=verifier(), n=4, seed=5).arun(
        PROBLEM
    )
    probe_texts = sorted(
        probe.tree.text_of(n.id) for n in probe.tree.nodes[1:] if n.kind == "solution"
    )
    assert probe_texts == sorted(plain.tree.text_of(n.id) for n in plain.tree.nodes[1:])


def test_default_policy_decisions() -> None:
    policy = AdaptivePolicy.model_validate(json.loads(default_policy().to_json()))

    def decide(agreement: float, stated: float, mean: float | None) -> str:
        signals = ProbeSignals(4, agreement, stated, mean, mean)
        return policy.decide(signals).arm.describe()

    assert decide(1.0, 1.0, 0.9) == "stop and answer from the probe"
    assert decide(1.0, 1.0, 0.2) == "best_of_n n=16"  # unanimous but the verifier doubts it
    assert decide(1.0, 1.0, None) == "best_of_n n=16"  # no score: no easy verdict
    assert decide(0.5, 1.0, 0.9) == "best_of_n n=16"
    assert decide(0.5, 0.25, 0.9).startswith("beam_search n=16")
    assert decide(0.25, 1.0, 0.9).startswith("beam_search n=16")


def test_default_policy_needs_a_verifier() -> None:
    with pytest.raises(ConfigError, match=r"bin 'otherwise'.*needs a verifier"):
        Adaptive(solver=ScriptedSolver([RIGHT]))


def test_a_policy_of_votes_alone_runs_without_a_verifier() -> None:
    policy = AdaptivePolicy(
        bins=[
            PolicyBin(
                name="sure",
                when={"agreement": Range(at_least=1.0)},
                then=PolicyArm(strategy="stop"),
            )
        ],
        otherwise=PolicyArm(strategy="best_of_n", n=8, settings={"selection": "majority"}),
    )
    solver = ScriptedSolver([RIGHT, RIGHT_TOO, RIGHT, WRONG[0]])
    result = Adaptive(solver=solver, policy=policy, seed=3).run(PROBLEM)
    assert result.answer == "10" and result.verification == "none"
    assert "agreement 0.75" in note_of(result)
    assert "best_of_n n=8 (selection=majority)" in note_of(result)


def write(tmp_path: Path, value: Any) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(value if isinstance(value, str) else json.dumps(value), encoding="utf-8")
    return path


STOP = {"strategy": "stop"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not valid JSON (line 1"),
        ([1, 2], "expected a JSON object"),
        ({"bins": []}, "otherwise: required field is missing"),
        (
            {"otherwise": STOP, "bins": [{"name": "a", "then": STOP, "if": {}}]},
            "bins.0.if: unknown field",
        ),
        ({"otherwise": {"strategy": "beam", "n": 4}}, "otherwise: unknown strategy 'beam'"),
        ({"otherwise": {"strategy": "beam_search"}}, "needs n"),
        ({"otherwise": {"strategy": "stop", "n": 4}}, "takes no n"),
        (
            {"otherwise": {"strategy": "best_of_n", "n": 4, "settings": {"beam_width": 2}}},
            "settings.beam_width: not a setting of best_of_n",
        ),
        (
            {"otherwise": {"strategy": "beam_search", "n": 4, "settings": {"temperature": 0.1}}},
            "shared settings",
        ),
        (
            {
                "otherwise": STOP,
                "bins": [
                    {
                        "name": "a",
                        "when": {"agreement": {"at_least": 0.8, "below": 0.5}},
                        "then": STOP,
                    }
                ],
            },
            "must be smaller than below",
        ),
        (
            {"otherwise": STOP, "bins": [{"name": "a", "when": {"luck": {}}, "then": STOP}]},
            "bins.0.when.luck",
        ),
        ({"otherwise": STOP, "version": 2}, "version"),
    ],
)
def test_bad_policy_files_name_the_file_and_the_field(
    tmp_path: Path, content: Any, expected: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        AdaptivePolicy.load(path)
    message = str(caught.value)
    assert str(path) in message and expected in message, message
    with pytest.raises(ConfigError, match="policy"):
        Adaptive(solver=ScriptedSolver([RIGHT]), verifier=verifier(), policy=str(path))


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.json not found: pass the path"):
        Adaptive(solver=ScriptedSolver([RIGHT]), verifier=verifier(), policy=tmp_path / "nope.json")


def test_a_policy_arm_that_cannot_run_is_refused_at_construction(tmp_path: Path) -> None:
    path = write(
        tmp_path, {"otherwise": {"strategy": "beam_search", "n": 6, "settings": {"beam_width": 4}}}
    )
    with pytest.raises(ConfigError, match=r"bin 'otherwise' .*multiple of beam_width"):
        Adaptive(solver=ScriptedSolver([RIGHT]), verifier=verifier(), policy=path)


def test_policy_file_round_trip_through_build_strategy(tmp_path: Path) -> None:
    policy = AdaptivePolicy(
        probe=2,
        bins=[
            PolicyBin(
                name="easy",
                when={"agreement": Range(at_least=1.0)},
                then=PolicyArm(strategy="stop"),
            )
        ],
        otherwise=PolicyArm(strategy="dvts", n=4, settings={"beam_width": 2, "lookahead": 0}),
        calibration={"fit": {"accuracy": 0.5}},
    )
    path = write(tmp_path, policy.to_json())
    search = build_strategy(
        "adaptive", solver=ScriptedSolver([RIGHT]), verifier=verifier(), policy=str(path)
    )
    assert isinstance(search, Adaptive) and search.policy == policy and search.probe_size == 2
    json.dumps(search.config())
    with pytest.raises(ConfigError, match="calibrated with a probe of 2 samples"):
        Adaptive(solver=ScriptedSolver([RIGHT]), verifier=verifier(), policy=policy, probe=4)


def test_dvts_arm_from_a_policy_runs_its_own_plan() -> None:
    settings: dict[str, bool | int | float | str] = {"beam_width": 2, "lookahead": 1}
    policy = AdaptivePolicy(otherwise=PolicyArm(strategy="dvts", n=4, settings=settings))
    solver = ScriptedSolver([RIGHT, *WRONG])
    result = Adaptive(solver=solver, verifier=verifier(), policy=policy, seed=0, max_steps=4).run(
        PROBLEM
    )
    assert result.answer == "10"
    assert "dvts n=4 (beam_width=2, lookahead=1)" in note_of(result)
    assert any(n.kind == "lookahead" for n in result.tree.nodes)  # DVTS's own look-ahead ran


def test_serve_takes_a_policy_object_but_never_a_path_from_a_request(tmp_path: Path) -> None:
    from sal_plugins.serve._app import SearchService, ServeSettings, _Refused
    from sal_plugins.serve._protocol import ChatRequest

    served = AdaptivePolicy(otherwise=PolicyArm(strategy="best_of_n", n=6))
    service = SearchService(
        ServeSettings(
            upstream_url="http://127.0.0.1:9/v1",
            upstream_model="m",
            verifier=verifier(),
            defaults={"policy": served},
        )
    )

    def ask(sal: dict[str, Any]) -> Any:
        messages = [{"role": "user", "content": PROBLEM}]
        return service.strategy_for(
            ChatRequest.model_validate({"model": "m", "messages": messages, "sal": sal})
        )

    strategy, _ = ask({"strategy": "adaptive"})
    assert isinstance(strategy, Adaptive) and strategy.active_policy == served
    own = {"otherwise": {"strategy": "best_of_n", "n": 8}}
    strategy, _ = ask({"strategy": "adaptive", "policy": own})
    assert isinstance(strategy, Adaptive) and strategy.active_policy.otherwise.n == 8
    secret = write(tmp_path, {"otherwise": STOP})
    with pytest.raises(_Refused) as refused:
        ask({"strategy": "adaptive", "policy": str(secret)})
    assert refused.value.status == 400 and "not a file path" in str(refused.value)
    with pytest.raises(_Refused, match="unknown strategy 'nope'"):
        ask({"strategy": "adaptive", "policy": {"otherwise": {"strategy": "nope", "n": 2}}})
