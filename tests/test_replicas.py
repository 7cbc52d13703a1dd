"""Several replicas of one model: the choice of replica, the cool-down, and failover over real HTTP.

Unit tests drive :class:`~sal_plugins.replicas.ReplicaSet` on a fake clock. Integration tests
serve two instances of ``benchmarks/fake_server.py`` on loopback (its answers are deterministic
functions of the request, so a seeded search gives the same result whichever replica serves
it), spread a solver and a ``/pooling`` PRM over both, and stop one of them mid-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from _fake_upstream import fake_server_module

import sal_plugins as sal
from sal_plugins import cli
from sal_plugins._cli_setup import build_components
from sal_plugins.errors import ConfigError, SolverError, TransientError
from sal_plugins.replicas import ReplicaPolicy, ReplicaSet, affinity_of, replica_urls
from sal_plugins.results import SearchResult
from sal_plugins.solvers import GenerationRequest, OpenAISolver
from sal_plugins.verifiers import ClassifyRM, PoolingPRM, Trajectory
from sal_plugins.verifiers._http import HTTPEndpoint

SECRET = "sk-replica-secret-0123456789"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def replica_set(count: int = 3, **policy: Any) -> tuple[ReplicaSet, FakeClock]:
    clock = FakeClock()
    urls = [f"http://r{i}.test/v1" for i in range(count)]
    return ReplicaSet(urls, policy=ReplicaPolicy(**policy), clock=clock), clock


def names(replicas: list[Any]) -> list[str]:
    return [r.url.split("//")[1].split(".")[0] for r in replicas]


# --- choosing a replica -----------------------------------------------------------------------


def test_each_request_goes_to_the_replica_with_fewest_in_flight() -> None:
    replicas, _ = replica_set(3)
    first, second, third = (replicas.pick() for _ in range(3))
    assert len({first.url, second.url, third.url}) == 3
    replicas.release(second, answered=True)
    assert replicas.pick() is second  # the only one with nothing in flight
    assert [r.in_flight for r in replicas.replicas] == [1, 1, 1]


def test_sequential_requests_alternate_over_idle_replicas() -> None:
    replicas, _ = replica_set(2)
    chosen = []
    for _ in range(4):
        replica = replicas.pick()
        chosen.append(replica.url)
        replicas.release(replica, answered=True)
    assert chosen[0::2] == [chosen[0]] * 2 and chosen[1::2] == [chosen[1]] * 2
    assert chosen[0] != chosen[1]


def test_one_search_stays_on_its_replica_and_another_search_goes_elsewhere() -> None:
    replicas, _ = replica_set(2)
    key_a, key_b = affinity_of("system", "What is 2 + 3?"), affinity_of("system", "What is 7?")
    home = replicas.pick(key_a)
    for _ in range(4):  # released or not, the search comes back to its replica
        replica = replicas.pick(key_a)
        assert replica is home
        replicas.release(replica, answered=True)
    other = replicas.pick(key_b)
    assert other is not home
    assert replicas.pick(key_b) is other


def test_a_much_busier_home_spills_one_request_without_moving_the_search() -> None:
    replicas, _ = replica_set(2, spill_margin=3)
    key = affinity_of("p")
    home = replicas.pick(key)
    held = [replicas.pick(key) for _ in range(2)]
    assert all(r is home for r in held) and home.in_flight == 3  # 3 >= 2 * 0 + 3 from now on
    spilled = replicas.pick(key)
    assert spilled is not home
    replicas.release(spilled, answered=True)
    for replica in held:
        replicas.release(replica, answered=True)
    assert replicas.pick(key) is home


def test_an_unlisted_affinity_key_uses_the_least_loaded_replica() -> None:
    replicas, _ = replica_set(2)
    busy = replicas.pick()
    assert replicas.pick() is not busy


def test_only_the_most_recent_searches_are_remembered() -> None:
    replicas, _ = replica_set(2, remembered=2)
    homes = {}
    for key in ("a", "b", "c"):
        homes[key] = replicas.pick(key)
        replicas.release(homes[key], answered=True)
    assert len(replicas._homes) == 2 and "a" not in replicas._homes


# --- cool-down and recovery -------------------------------------------------------------------


def test_a_failed_replica_rests_exponentially_and_recovers_after_its_cool_down() -> None:
    replicas, clock = replica_set(2, cooldown_s=1.0, max_cooldown_s=4.0)
    bad, good = replicas.replicas
    rests = []
    for _ in range(4):
        rests.append(replicas.mark_failed(bad, TransientError("connection refused")))
        assert replicas.healthy() == [good]
        assert all(replicas.pick() is good for _ in range(3))
        clock.now += rests[-1]
        assert bad in replicas.healthy()  # its rest is over: tried again
    assert rests == [1.0, 2.0, 4.0, 4.0]  # doubling, capped at max_cooldown_s
    picked = replicas.pick()
    assert picked is bad  # fewest in flight: good holds the 12 picks above
    replicas.release(picked, answered=True)
    assert bad.failures == 0
    assert replicas.mark_failed(bad) == 1.0  # an answer cleared its record


def test_a_retry_after_longer_than_the_back_off_sets_the_cool_down_within_the_cap() -> None:
    replicas, _ = replica_set(2, cooldown_s=1.0, max_cooldown_s=30.0)
    first, second = replicas.replicas
    assert replicas.mark_failed(first, TransientError("429", retry_after=7.0)) == 7.0
    assert replicas.mark_failed(second, TransientError("429", retry_after=600.0)) == 30.0


def test_a_search_whose_replica_is_down_moves_for_good() -> None:
    replicas, clock = replica_set(2)
    key = affinity_of("p")
    home = replicas.pick(key)
    replicas.release(home, answered=True)
    replicas.mark_failed(home)
    moved = replicas.pick(key)
    assert moved is not home
    replicas.release(moved, answered=True)
    clock.now += 60
    assert home in replicas.healthy()
    assert replicas.pick(key) is moved  # its cache is warm there now


def test_when_every_replica_rests_the_one_back_soonest_is_tried() -> None:
    replicas, _ = replica_set(3)
    first, second, third = replicas.replicas
    for replica, failures in ((first, 3), (second, 1), (third, 2)):
        for _ in range(failures):
            replicas.mark_failed(replica)
    assert replicas.healthy() == []
    assert replicas.pick("any") is second


# --- failing over -----------------------------------------------------------------------------


@dataclass
class Script:
    """``send`` for :meth:`ReplicaSet.call`: what each replica does, and who was asked."""

    outcomes: dict[str, BaseException | str]
    asked: list[str] = field(default_factory=list)

    async def __call__(self, replica: Any) -> str:
        name = names([replica])[0]
        self.asked.append(name)
        outcome = self.outcomes[name]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


async def test_a_transient_fault_fails_over_at_once_and_rests_the_replica() -> None:
    replicas, _ = replica_set(3)
    script = Script({"r0": TransientError("refused"), "r1": "ok from r1", "r2": "ok from r2"})
    assert await replicas.call(None, script) == "ok from r1"
    assert script.asked == ["r0", "r1"]
    assert names(replicas.healthy()) == ["r1", "r2"]
    assert [r.in_flight for r in replicas.replicas] == [0, 0, 0]


async def test_a_permanent_error_is_raised_without_failing_over() -> None:
    replicas, _ = replica_set(2)
    script = Script({"r0": SolverError("HTTP 400: bad request", status_code=400), "r1": "ok"})
    with pytest.raises(SolverError, match="400"):
        await replicas.call(None, script)
    assert script.asked == ["r0"] and len(replicas.healthy()) == 2


async def test_the_fault_reaches_the_caller_when_no_healthy_replica_is_left() -> None:
    replicas, _ = replica_set(2)
    script = Script({"r0": TransientError("down 0"), "r1": TransientError("down 1")})
    with pytest.raises(TransientError, match="down 1"):
        await replicas.call(None, script)
    assert sorted(script.asked) == ["r0", "r1"] and replicas.healthy() == []


async def test_one_replica_behaves_as_one_server() -> None:
    replicas = ReplicaSet(["http://only.test/v1"], clock=FakeClock())
    failing = Script({"only": TransientError("refused")})
    for _ in range(2):  # resting or not, the one server is asked every time
        with pytest.raises(TransientError):
            await replicas.call("key", failing)
    assert failing.asked == ["only", "only"]


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ([], "empty list"),
        (["http://a:1", "http://a:1/"], "listed twice"),
        (["http://a:1", "ftp://b:1"], "must start with http"),
        (["http://a:1", 3], "must be a string"),
        (b"http://a:1", "URL or a list of URLs"),
    ],
)
def test_bad_url_lists_are_refused_with_the_fix(base_url: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        OpenAISolver("m", base_url=base_url)
    with pytest.raises(ConfigError, match=message):
        PoolingPRM(model="m", base_url=base_url)


def test_errors_about_urls_mask_their_credentials() -> None:
    url = f"http://user:{SECRET}@a.test/v1"
    with pytest.raises(ConfigError) as caught:
        replica_urls([url, url], "OpenAISolver")
    assert SECRET not in str(caught.value) and "***@a.test" in str(caught.value)


def test_a_bad_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_cooldown_s"):
        ReplicaPolicy(cooldown_s=5.0, max_cooldown_s=1.0)
    with pytest.raises(ConfigError, match="spill_margin"):
        ReplicaPolicy(spill_margin=-1)


def test_reprs_list_every_replica_with_credentials_masked() -> None:
    urls = [f"http://u:{SECRET}@gpu0:8000/v1", f"http://gpu1:8000/v1?api_key={SECRET}"]
    solver = OpenAISolver("m", base_url=urls, api_key=SECRET)
    shown = repr(solver)
    assert SECRET not in shown
    assert "'http://***@gpu0:8000/v1'" in shown and "gpu1:8000/v1?api_key=" in shown
    assert solver.base_urls == tuple(urls) and solver.base_url == urls[0]
    assert SECRET not in repr(solver.replicas) and "healthy=2/2" in repr(solver.replicas)
    endpoint = HTTPEndpoint([u.replace("/v1", "") for u in urls], verifier="V", api_key=SECRET)
    assert SECRET not in repr(endpoint) and repr(endpoint).count("gpu") == 2


def test_one_url_reads_as_before() -> None:
    solver = OpenAISolver("m", base_url="http://h:1/v1/")
    assert repr(solver).startswith("OpenAISolver(model='m', base_url='http://h:1/v1', ")
    assert solver.base_url == "http://h:1/v1" and solver.base_urls == ("http://h:1/v1",)
    assert "base_url='http://h:2'," in repr(HTTPEndpoint("http://h:2", verifier="V"))


# --- the CLI ----------------------------------------------------------------------------------


def test_repeated_base_url_and_prm_url_flags_build_replica_sets() -> None:
    args = cli.build_parser().parse_args(
        [
            "run",
            "What is 2 + 3?",
            "--model",
            "m",
            "--base-url",
            "http://gpu0:8000/v1",
            "--base-url",
            f"http://u:{SECRET}@gpu1:8000/v1",
            "--prm-model",
            "prm",
            "--prm-url",
            "http://gpu0:8001",
            "--prm-url",
            "http://gpu1:8001",
        ]
    )
    components = build_components(args)
    solver, prm = components.solver, components.verifier
    assert isinstance(solver, OpenAISolver) and isinstance(prm, PoolingPRM)
    assert solver.base_urls == ("http://gpu0:8000/v1", f"http://u:{SECRET}@gpu1:8000/v1")
    assert prm.endpoint.base_urls == ("http://gpu0:8001", "http://gpu1:8001")
    description = str(components.description)
    assert "gpu0:8000/v1,http://***@gpu1:8000/v1" in description and SECRET not in description


def test_one_base_url_flag_is_one_server_and_duplicates_are_refused() -> None:
    base = ["eval", "data.jsonl", "--model", "m", "--base-url", "http://gpu0:8000/v1"]
    solver = build_components(cli.build_parser().parse_args(base)).solver
    assert isinstance(solver, OpenAISolver) and solver.base_urls == ("http://gpu0:8000/v1",)
    assert "base_url='http://gpu0:8000/v1'" in repr(solver)
    twice = cli.build_parser().parse_args([*base, "--base-url", "http://gpu0:8000/v1"])
    with pytest.raises(ConfigError, match="listed twice"):
        build_components(twice)


# --- over real HTTP ---------------------------------------------------------------------------

PROBLEMS = ["What is 2 + 3?", "What is 14 + 9?", "What is 31 + 12?", "What is 6 + 27?"]
SEED = 11


@dataclass
class Upstream:
    """One fake server on loopback that records the problem of every generation request."""

    root: str
    server: Any
    stop: contextlib.ExitStack

    @property
    def problems(self) -> list[str]:
        return list(self.server.problems)


def _recording_server(gen_latency: float) -> Any:
    module = fake_server_module()

    class Recording(module.FakeServer):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            super().__init__(gen_latency=gen_latency, prm_latency=0.0, jitter=True)
            self.problems: list[str] = []

        async def _generate(self, body: Any, problem: str, partial: str, chat: bool) -> Any:
            self.problems.append(problem)
            return await super()._generate(body, problem, partial, chat)

    return Recording()


@contextlib.contextmanager
def upstreams(*latencies: float) -> Iterator[list[Upstream]]:
    with contextlib.ExitStack() as outer:
        started = []
        for latency in latencies:
            server = _recording_server(latency)
            stop = outer.enter_context(contextlib.ExitStack())
            root = stop.enter_context(fake_server_module().serving(server))
            started.append(Upstream(str(root), server, stop))
        yield started


def problem_of(text: str) -> str:
    """The problem in a generation request's user turn (fresh starts send it as it is)."""
    return next(p for p in PROBLEMS if p in text)


def search(solver: OpenAISolver, verifier: PoolingPRM) -> sal.BeamSearch:
    return sal.BeamSearch(
        solver=solver, verifier=verifier, n=4, beam_width=2, max_steps=4, seed=SEED, max_tokens=64
    )


def outcome(result: SearchResult) -> tuple[Any, ...]:
    return (
        result.answer,
        result.text,
        tuple((c.text, c.score) for c in result.completions),
        result.stop_reason,
    )


async def run_all(solver: OpenAISolver, verifier: PoolingPRM) -> list[SearchResult]:
    try:
        return list(await asyncio.gather(*(search(solver, verifier).arun(p) for p in PROBLEMS)))
    finally:
        await solver.aclose()


async def baseline() -> list[tuple[Any, ...]]:
    with upstreams(0.0) as (only,):
        solver = OpenAISolver("fake", f"{only.root}/v1")
        results = await run_all(solver, PoolingPRM(model="prm", base_url=only.root))
    return [outcome(r) for r in results]


def spread(roots: list[str]) -> tuple[OpenAISolver, PoolingPRM]:
    solver = OpenAISolver(
        "fake",
        [f"{root}/v1" for root in roots],
        replica_policy=ReplicaPolicy(spill_margin=1000),  # no spilling: affinity is exact
    )
    return solver, PoolingPRM(model="prm", base_url=roots)


async def test_searches_spread_over_two_replicas_each_on_one_and_results_do_not_change() -> None:
    expected = await baseline()
    with upstreams(0.02, 0.02) as (first, second):
        solver, prm = spread([first.root, second.root])
        results = await run_all(solver, prm)
    assert [outcome(r) for r in results] == expected
    assert first.problems and second.problems  # both replicas served generation requests
    served_by: dict[str, set[str]] = {
        problem_of(p): set() for p in first.problems + second.problems
    }
    for upstream in (first, second):
        for text in upstream.problems:
            served_by[problem_of(text)].add(upstream.root)
    assert set(served_by) == set(PROBLEMS)
    assert all(len(roots) == 1 for roots in served_by.values()), served_by
    assert all(r.usage.retries == 0 and not r.failures for r in results)


async def test_a_replica_stopped_mid_run_loses_no_problem_and_no_retry() -> None:
    expected = await baseline()
    with upstreams(0.0, 0.15) as (steady, doomed):
        solver, prm = spread([steady.root, doomed.root])

        async def stop_after_first_request() -> None:
            while not doomed.problems:
                await asyncio.sleep(0.005)
            await asyncio.to_thread(doomed.stop.close)  # the server stops; its port closes

        killer = asyncio.ensure_future(stop_after_first_request())
        results = await run_all(solver, prm)
        await killer
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{doomed.root}/v1/models", timeout=1.0)
    assert [outcome(r) for r in results] == expected
    assert all(r.usage.retries == 0 and not r.failures for r in results)
    moved = {problem_of(t) for t in doomed.problems} & {problem_of(t) for t in steady.problems}
    assert moved, "a search that began on the stopped replica finished on the other"
    assert solver.replicas is not None
    lost = next(r for r in solver.replicas.replicas if r.url.startswith(doomed.root))
    assert lost.failures >= 1 and "connection" in str(lost.last_error).lower()


async def test_a_pooling_prm_keeps_a_problem_on_one_endpoint_and_survives_losing_one() -> None:
    trajectories = [Trajectory(("Add the numbers: 2 + 3 = 5.", "So 5 - 3 = 2."))] * 2
    problems = [f"What is {a} + 3?" for a in range(2, 9)]  # odd: round robin would move them
    with upstreams(0.0) as (reference,):
        single = PoolingPRM(model="prm", base_url=reference.root)
        expected = {
            p: [j.step_scores for j in await single.score(p, trajectories)] for p in problems
        }
    with upstreams(0.0, 0.0) as (first, second):
        prm = PoolingPRM(model="prm", base_url=[first.root, second.root])
        servers = (first.server.stats, second.server.stats)
        homes: dict[str, set[int]] = {}
        for problem in problems * 3:  # each problem scored three times
            before = [stats.pooling_requests for stats in servers]
            judged = await prm.score(problem, trajectories)
            assert [j.step_scores for j in judged] == expected[problem]
            after = [stats.pooling_requests for stats in servers]
            homes.setdefault(problem, set()).update(i for i in range(2) if after[i] > before[i])
        assert all(len(home) == 1 for home in homes.values()), homes  # its prefix stays cached
        assert {i for home in homes.values() for i in home} == {0, 1}  # both serve some
        second.stop.close()
        served = first.server.stats.pooling_requests
        for problem in problems:
            judged = await prm.score(problem, trajectories)
            assert [j.step_scores for j in judged] == expected[problem]
        assert first.server.stats.pooling_requests == served + len(problems)
        assert [r.url for r in prm.endpoint.replicas.healthy()] == [first.root]


async def test_a_sequence_reward_model_keeps_one_problem_on_one_replica() -> None:
    hosts: dict[str, list[str]] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        problem = next(p for p in PROBLEMS if p in texts[0])
        hosts.setdefault(problem, []).append(request.url.host)
        data = [{"index": i, "probs": [0.3, 0.7]} for i in range(len(texts))]
        return httpx.Response(200, json={"data": data})

    rm = ClassifyRM(
        model="rm",
        base_url=["http://rm0.test", "http://rm1.test"],
        transport=httpx.MockTransport(handler),
    )
    for problem in PROBLEMS * 3:
        await rm.score(problem, [Trajectory(("a step",))])
    assert set(hosts) == set(PROBLEMS)
    assert all(len(set(seen)) == 1 and len(seen) == 3 for seen in hosts.values()), hosts
    assert {seen[0] for seen in hosts.values()} == {"rm0.test", "rm1.test"}


def _closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("transport", ["direct", "httpx"])
async def test_every_transport_fails_over_from_a_refused_replica(transport: str) -> None:
    dead = _closed_port_url()
    with upstreams(0.0) as (live,):
        solver = OpenAISolver("fake", [f"{dead}/v1", f"{live.root}/v1"], transport=transport)  # type: ignore[arg-type]
        try:
            for _ in range(3):
                response = await solver.generate(
                    GenerationRequest(problem=PROBLEMS[0], n=2, seed=1, stop=("\n\n",))
                )
                assert len(response.generations) == 2
        finally:
            await solver.aclose()
    assert solver.replicas is not None
    refused, served = solver.replicas.replicas
    assert refused.failures == 1 and served.failures == 0  # resting: asked once, not again
    assert len(live.problems) == 3
