"""Spread an evaluation over a Ray cluster, into the same resumable run folder.

:func:`run_arms_on_ray` does what :func:`~sal_plugins.eval.runner.run_arms` does, with the
searches running in Ray actors instead of this process: the work items (every arm on every
problem the run folder has no record of, each with the seed :func:`~sal_plugins.eval.runner.pending`
gives it) go to ``actors`` workers, each searching up to ``jobs`` problems at once; each record
comes back as soon as its search ends and is appended to the run folder by this process, the
only writer, so an interrupted run resumes like a local one and a Ray run and a local run of the
same settings write the same records (timings aside).

Why Ray actors rather than Ray Data's ``map_batches``: records must stream into the run folder as
each search ends, not per batch; a search is I/O-bound (it waits on the model servers), so each
worker should run many of them at once on one event loop, which is what an async actor is
(``async def`` methods, ``max_concurrency`` of them in flight); and a solver holds open HTTP
sessions bound to that loop, built once per worker. Ray Data would also pull in pandas and
pyarrow for what is a queue of a few thousand small items.

The strategy cannot be shipped built (solvers hold open clients): the driver ships a
:data:`FactoryBuilder`, a picklable callable holding the configuration, which each actor calls
once to build its own :data:`~sal_plugins.eval.runner.StrategyFactory`, the same one a local run
uses. Work is handed out as actors free up, so a slow worker takes fewer problems; a worker that
dies hands its unfinished problems back to the queue for the others.

Ray is optional (``pip install 'sal-plugins[ray]'``): it is imported only when a function here is
called.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sal_plugins.errors import ConfigError, MissingDependencyError, SalError
from sal_plugins.eval.datasets import Problem
from sal_plugins.eval.runner import (
    Arm,
    Record,
    RecordCallback,
    RunFolder,
    StrategyFactory,
    Work,
    pending,
    search_record,
)

__all__ = [
    "LOCAL",
    "FactoryBuilder",
    "WorkersLost",
    "available_cpus",
    "import_ray",
    "ray_session",
    "run_arms_on_ray",
]

LOCAL = "local"
"""The address that starts a Ray instance on this machine for the run (``sal eval --ray``)."""

FactoryBuilder = Callable[[], StrategyFactory]
"""``builder() -> factory``: builds the strategy factory where it runs (in each Ray actor).

It is pickled and sent to every actor, so it must hold configuration only (flags, settings),
never a built solver or verifier.
"""


class WorkersLost(SalError):
    """Every Ray worker died before the evaluation finished.

    The records that came back are in the run folder; running the same command again resumes.
    """


def import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        MissingDependencyError: Ray is not installed (names ``pip install 'sal-plugins[ray]'``).
    """
    try:
        return importlib.import_module("ray")
    except ImportError as error:
        raise MissingDependencyError("sal eval --ray", "ray") from error


@contextlib.contextmanager
def ray_session(address: str = LOCAL, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Connect this process to Ray for the block; yield the ``ray`` module.

    A session already connected (``ray.init`` called earlier, e.g. in a notebook) is used as it
    is and left connected; otherwise the block connects and disconnects at its end. Workers'
    output stays in Ray's log files (``/tmp/ray/session_latest/logs`` on each node) rather than
    mixing with the progress display; their errors come back with their results.

    Args:
        address: :data:`LOCAL` starts a Ray instance on this machine with ``num_cpus`` CPUs;
            ``"auto"`` joins the cluster this machine is part of (``ray start``); ``host:port``
            or ``ray://host:10001`` joins that cluster's head.
        num_cpus: CPUs of a local instance (ignored when joining a cluster).

    Raises:
        MissingDependencyError: Ray is not installed.
        ConfigError: the cluster could not be reached; the message says how to start one.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address == LOCAL:  # Ray's "local": a new instance, even beside a running cluster
            ray.init(address=LOCAL, num_cpus=num_cpus, include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ConfigError(
            f"could not connect to Ray at {address!r} ({type(error).__name__}: {error}); start "
            "a cluster with `ray start --head` and pass --ray auto on that machine, or pass "
            "--ray with no address to start a local one"
        ) from error
    try:
        yield ray
    finally:
        ray.shutdown()


def available_cpus(ray: Any) -> int:
    """CPUs free in the connected cluster right now (at least 1)."""
    return max(1, int(ray.available_resources().get("CPU", 0)))


@dataclass(frozen=True)
class _Refused:
    """A worker could not build or run the strategy (sent back instead of the exception, whose
    class may not survive the trip: ``MissingDependencyError`` takes three arguments)."""

    message: str


class _SearchWorker:
    """The body of one Ray actor: builds the factory once, then runs searches on its loop."""

    def __init__(self, builder: FactoryBuilder) -> None:
        self._builder = builder
        self._factory: StrategyFactory | None = None

    async def search(self, work: Work) -> Record | _Refused:
        """Run one search (``max_concurrency`` of these share the actor's event loop)."""
        try:
            if self._factory is None:  # no await before the assignment: built once
                self._factory = self._builder()
            return await search_record(work, self._factory)
        except SalError as error:
            return _Refused(f"{type(error).__name__}: {error}")


def _check(jobs: int, actors: int | None) -> None:
    if jobs < 1:
        raise ConfigError(f"jobs={jobs}: must be at least 1 (--jobs)")
    if actors is not None and actors < 1:
        raise ConfigError(f"actors={actors}: must be at least 1 (--ray-actors)")


def run_arms_on_ray(
    problems: Sequence[Problem],
    arms: Sequence[Arm],
    builder: FactoryBuilder,
    folder: RunFolder,
    *,
    seed: int | None = 0,
    jobs: int = 1,
    actors: int | None = None,
    on_record: RecordCallback | None = None,
) -> list[Record]:
    """Run every arm on every problem not yet recorded in ``folder``, on Ray actors.

    Call it inside :func:`ray_session` (or after ``ray.init``). Records are appended to
    ``folder`` here, as each search ends, and reported to ``on_record`` exactly as
    :func:`~sal_plugins.eval.runner.run_arms` reports them; an exception raised by
    ``on_record`` (or Ctrl-C) stops the run, kills the actors and leaves every record written so
    far in place.

    Args:
        problems: the problems.
        arms: the strategy/N combinations.
        builder: builds the strategy factory in each actor (see :data:`FactoryBuilder`).
        folder: where records are read from and appended to.
        seed: base seed (``None``: unseeded); problem ``i`` gets ``seed + i``, as in a local run.
        jobs: searches each actor runs at once.
        actors: how many actors (default: one per free CPU in the cluster, at most one per
            work item).
        on_record: progress callback.

    Returns:
        every record of these problems and arms, those read back first.

    Raises:
        ConfigError: a bad ``jobs``/``actors``, or a worker could not build the strategy (for
            example an extra missing on a node).
        WorkersLost: every actor died; re-running resumes.
    """
    _check(jobs, actors)
    records: list[Record] = []
    queue: deque[Work] = deque()
    for arm in arms:
        recorded, todo = pending(problems, arm, folder, seed=seed)
        for record in recorded:
            records.append(record)
            if on_record is not None:
                on_record(arm, record, True)
        queue.extend(todo)
    if queue:
        _run_queue(queue, builder, folder, records, jobs=jobs, actors=actors, on_record=on_record)
    wanted = {p.id for p in problems}
    return [r for r in records if r.problem_id in wanted]


def _run_queue(
    queue: deque[Work],
    builder: FactoryBuilder,
    folder: RunFolder,
    records: list[Record],
    *,
    jobs: int,
    actors: int | None,
    on_record: RecordCallback | None,
) -> None:
    ray = import_ray()
    cpus = available_cpus(ray)
    count = min(actors or cpus, len(queue))
    # More actors than free CPUs share them rather than wait for CPUs the cluster lacks.
    worker = ray.remote(_SearchWorker)
    options = {
        "max_concurrency": jobs,
        "num_cpus": min(1.0, cpus / count),
        "scheduling_strategy": "SPREAD",
    }
    run_id = uuid.uuid4().hex[:8]
    live = {
        worker.options(name=f"sal-eval-{run_id}-{i}", **options).remote(builder)
        for i in range(count)
    }
    handles = list(live)
    load = dict.fromkeys(handles, 0)
    in_flight: dict[Any, tuple[Any, Work]] = {}

    def hand_out() -> None:
        for handle in handles:
            while handle in live and load[handle] < jobs and queue:
                work = queue.popleft()
                in_flight[handle.search.remote(work)] = (handle, work)
                load[handle] += 1

    try:
        hand_out()
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                handle, work = in_flight.pop(ref)
                load[handle] -= 1
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayActorError:
                    live.discard(handle)  # its other searches come back the same way
                    queue.appendleft(work)
                    continue
                if isinstance(outcome, _Refused):
                    raise ConfigError(f"a Ray worker could not run the search: {outcome.message}")
                folder.append(outcome)
                records.append(outcome)
                if on_record is not None:
                    on_record(outcome.arm, outcome, False)
            if not live:
                raise WorkersLost(
                    f"every Ray worker died with {len(queue)} searches left; the records so far "
                    f"are in {folder.path}: run the same command again to resume"
                )
            hand_out()
    finally:
        for handle in handles:
            with contextlib.suppress(Exception):
                ray.kill(handle)
