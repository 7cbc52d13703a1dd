"""``sal eval --ray``: an evaluation spread over Ray actors, into the same resumable run folder.

One local Ray instance (2 CPUs, no dashboard) serves the module; ``benchmarks/fake_server.py``
runs in-process on loopback as the OpenAI-compatible solver server and the vLLM ``/pooling`` PRM.
Its answers are deterministic functions of each (seeded) request, so a local run and a Ray run of
the same settings must write the same records, timings aside. Each test checks what a user would
notice: the records, the run folder after an interruption or a lost worker, the error without
the extra.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from _fake_upstream import fake_server_module, fake_upstream

from sal_plugins import _cli_eval, cli
from sal_plugins.errors import ConfigError, MissingDependencyError
from sal_plugins.eval import distributed
from sal_plugins.solvers import OpenAISolver, ScriptedSolver

HERE = Path(__file__).resolve().parent
ARMS = ["--strategy", "best_of_n,beam_search", "--n", "1,4"]
PROBLEMS = 6
ARM_COUNT = 4
IN_WORKER = "SAL_TEST_RAY_WORKER"
"""Set in the Ray workers' environment only."""


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """A local Ray for the module; its workers can import this file (``--solver-factory``)."""
    ray = pytest.importorskip("ray")
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": path, IN_WORKER: "1"}},
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """Root URL of the latency-free fake server."""
    with fake_upstream() as root:
        yield root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six MATH-style problems."""
    path = tmp_path_factory.mktemp("data") / "sums.jsonl"
    rows = [
        {"problem": f"What is {a} + {b}?", "answer": str(a + b), "unique_id": f"p{a}"}
        for a, b in [(2, 3), (10, 20), (7, 8), (41, 1), (5, 9), (13, 30)]
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def model_flags(root: str) -> list[str]:
    return [
        "--base-url",
        f"{root}/v1",
        "--model",
        "fake",
        "--prm-url",
        root,
        "--prm-model",
        "fake-prm",
    ]


def stats(root: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{root}/stats", timeout=5.0).json()
    httpx.post(f"{root}/stats/reset", timeout=5.0)
    return data


def records_of(folder: Path) -> list[dict[str, Any]]:
    """Every line of every results file (duplicates kept: a redone search would show)."""
    rows = []
    for path in sorted((folder / "results").glob("*.jsonl")):
        rows.extend(json.loads(line) for line in path.read_text().splitlines())
    return rows


def by_search(rows: list[dict[str, Any]]) -> dict[tuple[str, int, str], dict[str, Any]]:
    """Records keyed by arm and problem, without the timing (the one field allowed to differ)."""
    keyed = {}
    for row in rows:
        keyed[(row["strategy"], row["n"], row["problem_id"])] = {
            k: v for k, v in row.items() if k != "wall_time_s"
        }
    return keyed


@pytest.fixture(scope="module")
def local_run(
    upstream: str, dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The records of a local run of the module's evaluation, and the requests it made."""
    stats(upstream)
    out = tmp_path_factory.mktemp("local") / "run"
    argv = ["eval", str(dataset), *ARMS, "--jobs", "2", "--no-plot", "--quiet", "--out", str(out)]
    assert cli.main([*argv, *model_flags(upstream)]) == 0
    rows = records_of(out)
    assert len(rows) == PROBLEMS * ARM_COUNT
    assert all(r["stop_reason"] == "finished" for r in rows)
    return rows, stats(upstream)


def evaluate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["eval", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- a Ray run is a local run, spread out -----------------------------------------------------


def test_ray_run_writes_the_records_of_a_local_run(
    ray_local: Any,
    upstream: str,
    dataset: Path,
    local_run: tuple[list[dict[str, Any]], dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    local_rows, local_stats = local_run
    out = tmp_path / "run"
    code, table, err = evaluate(
        capsys,
        str(dataset),
        *ARMS,
        "--jobs",
        "2",
        "--ray",
        "--ray-actors",
        "2",
        "--no-plot",
        "--out",
        str(out),
        *model_flags(upstream),
    )
    assert code == 0, err
    rows = records_of(out)
    assert len(rows) == PROBLEMS * ARM_COUNT  # each search once
    assert by_search(rows) == by_search(local_rows)
    # not a degenerate dataset: the searches differ, and one sample is sometimes wrong
    assert len({r["text"] for r in rows}) > PROBLEMS
    assert {r["correct"] for r in rows} == {True, False}
    assert all(r["error"] is None for r in rows)
    # the same requests reached the server, and the same table came out
    assert stats(upstream)["generation_requests"] == local_stats["generation_requests"]
    assert "| best_of_n | 4 | 6 |" in table and "| beam_search | 1 | 6 |" in table
    assert "[beam_search N=4] p13:" in err  # the local run's progress lines


def pid_solver() -> ScriptedSolver:
    """A solver that writes the id of the process it runs in into every solution."""
    return ScriptedSolver([f"2 + 3 = 5 in {os.getpid()}\n\nThe answer is $\\boxed{{5}}$."])


def test_searches_run_in_the_actors(
    ray_local: Any, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code, _, err = evaluate(
        capsys,
        str(dataset),
        "--strategy",
        "greedy",
        "--ray",
        "--ray-actors",
        "2",
        "--no-plot",
        "--out",
        str(out),
        "--solver-factory",
        f"{__name__}:pid_solver",
    )
    assert code == 0, err
    workers = {r["text"].split(" in ")[1].split()[0] for r in records_of(out)}
    assert len(workers) == 2  # both actors searched ...
    assert str(os.getpid()) not in workers  # ... and nothing ran in the driver


def solver_missing_on_the_nodes() -> ScriptedSolver:
    """A solver this machine has and the Ray workers lack (an extra not installed there)."""
    if os.environ.get(IN_WORKER):
        raise MissingDependencyError("LlamaCppSolver", "local")
    return pid_solver()


def test_a_worker_that_cannot_build_the_search_names_the_fix(
    ray_local: Any, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code, _, err = evaluate(
        capsys,
        str(dataset),
        "--strategy",
        "greedy",
        "--ray",
        "--no-plot",
        "--out",
        str(out),
        "--solver-factory",
        f"{__name__}:solver_missing_on_the_nodes",
    )
    assert code == 2
    assert "a Ray worker could not run the search" in err
    assert "pip install 'sal-plugins[local]'" in err
    assert records_of(out) == []


def test_the_shipped_flags_keep_keys_out_of_the_repr() -> None:
    args = cli.build_parser().parse_args(
        [
            "eval",
            "d.jsonl",
            "--base-url",
            "http://h:8000/v1",
            "--model",
            "m",
            "--api-key",
            "sk-12345",
        ]
    )
    assert "sk-12345" not in repr(_cli_eval._FlagsFactory(args))


# --- interruptions and lost workers -----------------------------------------------------------


def stop_after(monkeypatch: pytest.MonkeyPatch, count: int, then: Any) -> None:
    """Call ``then()`` once ``count`` new records have been reported to the progress display."""
    original = _cli_eval._EvalProgress.__call__
    seen = []

    def call(self: Any, arm: Any, record: Any, resumed: bool) -> None:
        original(self, arm, record, resumed)
        if not resumed:
            seen.append(record)
            if len(seen) == count:
                then()

    monkeypatch.setattr(_cli_eval._EvalProgress, "__call__", call)


def test_an_interrupted_ray_run_resumes(
    ray_local: Any,
    upstream: str,
    dataset: Path,
    local_run: tuple[list[dict[str, Any]], dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_rows, local_stats = local_run
    out = tmp_path / "run"
    argv = [str(dataset), *ARMS, "--jobs", "2", "--ray", "--no-plot", "--out", str(out)]
    argv += model_flags(upstream)

    def interrupt() -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        stop_after(patch, 5, interrupt)
        code, _, err = evaluate(capsys, *argv)
    assert code == 130 and "interrupted" in err
    first = records_of(out)
    assert 5 <= len(first) < PROBLEMS * ARM_COUNT
    first_stats = stats(upstream)

    code, _, err = evaluate(capsys, *argv)
    assert code == 0, err
    rows = records_of(out)
    assert all(row in rows for row in first)  # kept as written
    assert len(rows) == PROBLEMS * ARM_COUNT  # nothing recorded twice
    assert by_search(rows) == by_search(local_rows)
    resumed = stats(upstream)["generation_requests"]
    # the second run did only what was missing (plus what the interruption cut short)
    assert resumed < local_stats["generation_requests"]
    assert resumed + first_stats["generation_requests"] >= local_stats["generation_requests"]


DYING = Path(tempfile.gettempdir()) / f"sal-test-eval-ray-{os.getuid()}"
"""Shared with the Ray workers: the solver's URL, and once armed, which worker dies."""


@dataclass
class DieMidSearch:
    """An ``OpenAISolver`` whose process exits once the run is armed, right after a request.

    The first worker to generate after ``DYING / "armed"`` appears dies with the request sent
    and counted by the server, so its search is lost mid-way, whenever the kill comes.
    """

    inner: OpenAISolver

    @property
    def capabilities(self) -> Any:
        return self.inner.capabilities

    async def generate(self, request: Any) -> Any:
        response = await self.inner.generate(request)
        if (DYING / "armed").exists():
            with contextlib.suppress(FileExistsError):
                os.close(os.open(DYING / "victim", os.O_CREAT | os.O_EXCL))
                os._exit(1)  # the actor's process is lost, as a crashed node's would be
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def dying_solver() -> DieMidSearch:
    url = (DYING / "url").read_text(encoding="utf-8")
    return DieMidSearch(OpenAISolver(model="fake", base_url=url))


def test_a_lost_actor_loses_no_problem(
    ray_local: Any,
    dataset: Path,
    local_run: tuple[list[dict[str, Any]], dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_rows, local_stats = local_run
    module = fake_server_module()
    slow = module.FakeServer(gen_latency=0.1, prm_latency=0.0, jitter=True)
    shutil.rmtree(DYING, ignore_errors=True)
    DYING.mkdir()

    out = tmp_path / "run"
    with module.serving(slow) as root:
        (DYING / "url").write_text(f"{root}/v1", encoding="utf-8")
        # the queue runs arm by arm: after 13 records both actors are mid beam search
        stop_after(monkeypatch, 13, (DYING / "armed").touch)
        code, _, err = evaluate(
            capsys,
            str(dataset),
            *ARMS,
            "--jobs",
            "2",
            "--ray",
            "--ray-actors",
            "2",
            "--no-plot",
            "--quiet",
            "--out",
            str(out),
            *model_flags(root),
            "--solver-factory",
            f"{__name__}:dying_solver",
        )
        requests = stats(root)["generation_requests"]
    assert code == 0, err
    assert (DYING / "victim").exists()  # one actor died mid-search
    rows = records_of(out)
    assert len(rows) == PROBLEMS * ARM_COUNT
    assert by_search(rows) == by_search(local_rows)
    # the lost actor's unfinished searches ran again elsewhere
    assert requests > local_stats["generation_requests"]


def test_replicas_share_the_load_and_one_lost_loses_no_problem(
    ray_local: Any,
    dataset: Path,
    local_run: tuple[list[dict[str, Any]], dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_rows, _ = local_run
    module = fake_server_module()
    replicas = [module.FakeServer(gen_latency=0.05, prm_latency=0.0, jitter=True) for _ in "ab"]
    seen: dict[str, int] = {}
    with contextlib.ExitStack() as first, contextlib.ExitStack() as second:
        root_a = first.enter_context(module.serving(replicas[0]))
        root_b = second.enter_context(module.serving(replicas[1]))

        def stop_replica_b() -> None:
            seen["b"] = stats(root_b)["generation_requests"]
            second.close()  # replica b (solver and PRM) goes away mid-run

        stop_after(monkeypatch, 3, stop_replica_b)
        flags = ["--model", "fake", "--prm-model", "fake-prm"]
        for root in (root_a, root_b):
            flags += ["--base-url", f"{root}/v1", "--prm-url", root]
        code, _, err = evaluate(
            capsys,
            str(dataset),
            *ARMS,
            "--jobs",
            "2",
            "--ray",
            "--ray-actors",
            "2",
            "--no-plot",
            "--quiet",
            "--out",
            str(tmp_path / "run"),
            *flags,
        )
        seen["a"] = stats(root_a)["generation_requests"]
    assert code == 0, err
    assert seen["a"] > 0 and seen["b"] > 0  # both replicas served searches
    rows = records_of(tmp_path / "run")
    assert len(rows) == PROBLEMS * ARM_COUNT
    assert all(r["error"] is None and r["stop_reason"] == "finished" for r in rows)
    assert by_search(rows) == by_search(local_rows)


# --- Ray is optional --------------------------------------------------------------------------


def test_without_the_extra_the_error_names_the_install(
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" fails
    out = tmp_path / "run"
    code, _, err = evaluate(capsys, str(dataset), "--ray", "--no-plot", "--out", str(out))
    assert code == 2
    assert "sal eval --ray needs an optional dependency: pip install 'sal-plugins[ray]'" in err
    assert not out.exists()  # refused before any work


def test_sal_imports_and_runs_without_ray(dataset: Path, tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['ray'] = None\n"
        "import sal_plugins, sal_plugins.cli, sal_plugins.eval, sal_plugins.eval.distributed\n"
        "code = sal_plugins.cli.main(['eval', sys.argv[1], '--strategy', 'greedy', '--no-plot',\n"
        "    '--quiet', '--out', sys.argv[2], '--solver-factory', 'test_eval_ray:pid_solver'])\n"
        "assert code == 0, code\n"
    )
    check = "import sal_plugins, sal_plugins.cli\nimport sys\nassert 'ray' not in sys.modules\n"
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    for source, args in [(script, [str(dataset), str(tmp_path / "r")]), (check, [])]:
        done = subprocess.run(
            [sys.executable, "-c", source, *args], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    assert len(records_of(tmp_path / "r")) == PROBLEMS


def test_ray_actors_needs_ray(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = evaluate(capsys, str(dataset), "--ray-actors", "2", "--out", str(tmp_path))
    assert code == 2 and "--ray-actors needs --ray" in err


# --- connecting -------------------------------------------------------------------------------


class FakeRay(types.SimpleNamespace):
    """What ``ray_session`` calls, recorded."""

    def __init__(self, *, initialized: bool = False, fail: Exception | None = None) -> None:
        super().__init__(calls=[], initialized=initialized, fail=fail)

    def is_initialized(self) -> bool:
        return bool(self.initialized)

    def init(self, **kwargs: Any) -> None:
        self.calls.append(("init", kwargs))
        if self.fail is not None:
            raise self.fail

    def shutdown(self) -> None:
        self.calls.append(("shutdown", {}))


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (distributed.LOCAL, {"address": "local", "num_cpus": 3, "include_dashboard": False}),
        ("auto", {"address": "auto"}),
        ("ray://head:10001", {"address": "ray://head:10001"}),
        ("10.0.0.1:6379", {"address": "10.0.0.1:6379"}),
    ],
)
def test_ray_session_starts_or_joins(
    monkeypatch: pytest.MonkeyPatch, address: str, expected: dict[str, Any]
) -> None:
    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    with distributed.ray_session(address, num_cpus=3) as ray:
        assert ray is fake
    (name, kwargs), last = fake.calls
    assert name == "init" and last == ("shutdown", {})
    assert {k: kwargs[k] for k in expected} == expected
    assert ("num_cpus" in kwargs) == (address == distributed.LOCAL)  # a cluster has its own


def test_ray_session_keeps_a_connection_it_did_not_make(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRay(initialized=True)
    monkeypatch.setitem(sys.modules, "ray", fake)
    with distributed.ray_session("auto"):
        pass
    assert fake.calls == []


def test_unreachable_cluster_says_how_to_start_one(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRay(fail=ConnectionError("no cluster at 10.0.0.9:6379"))
    monkeypatch.setitem(sys.modules, "ray", fake)
    with (
        pytest.raises(ConfigError, match=r"10\.0\.0\.9:6379.*ray start --head"),
        distributed.ray_session("10.0.0.9:6379"),
    ):
        pass


def test_bad_counts_are_refused_before_ray_starts() -> None:
    with pytest.raises(ConfigError, match="--ray-actors"):
        distributed.run_arms_on_ray([], [], pid_solver, None, actors=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--jobs"):
        distributed.run_arms_on_ray([], [], pid_solver, None, jobs=0)  # type: ignore[arg-type]
