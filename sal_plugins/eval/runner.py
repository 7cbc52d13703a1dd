"""Run strategies over a dataset, one record per problem, resumable from a run folder.

A run folder holds ``config.json`` (the settings every record was produced with) and
``results/<strategy>-n<N>.jsonl``, one line per problem, appended and flushed as each search ends.
Running again with the same folder skips the problems already recorded, so an interrupted
evaluation picks up where it stopped; a changed setting is refused rather than mixed in.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sal_plugins.answers import extract_answer
from sal_plugins.errors import ConfigError, SalError, SearchError
from sal_plugins.eval.datasets import Problem
from sal_plugins.eval.grading import graded_answer, is_correct
from sal_plugins.results import SearchResult
from sal_plugins.strategies.base import SearchStrategy

__all__ = [
    "Arm",
    "Record",
    "RecordCallback",
    "RunFolder",
    "StrategyFactory",
    "Work",
    "pending",
    "run_arms",
    "search_record",
]


@dataclass(frozen=True, order=True)
class Arm:
    """One configuration under evaluation: a strategy name at a sample count ``n``."""

    strategy: str
    n: int

    @property
    def key(self) -> str:
        """The arm's file stem, e.g. ``beam_search-n16``."""
        return f"{self.strategy}-n{self.n}"


@dataclass(frozen=True)
class Record:
    """The outcome of one search on one problem.

    Attributes:
        problem_id: the problem's id.
        strategy: the strategy name.
        n: the arm's sample count.
        seed: the seed the search ran with.
        gold: the gold answer.
        answer: the graded answer: the one the selected solution states, else the last number it
            wrote (see :func:`~sal_plugins.eval.grading.graded_answer`); ``None`` if neither.
        correct: whether ``answer`` matches ``gold`` (math-verify).
        score: the selected completion's verifier score.
        stop_reason: why the search ended (``"error"`` when it raised).
        generation_calls: requests that reached the solver.
        verifier_calls: requests that reached the verifier.
        prompt_tokens: prompt tokens spent.
        completion_tokens: tokens generated.
        verifier_tokens: tokens the verifier reported (prompt and completion; 0 in records
            written before it was recorded).
        wall_time_s: seconds the search took.
        error: the error that ended the search, if any.
        answer_source: ``"stated"``, ``"last_number"`` or ``"none"``.
        candidate_answers: every final candidate's extracted answer, best first (``None``: it
            states none); with ``candidate_scores``, what ``sal calibrate`` reads a best-of-N
            record as a probe from (empty in records written before they were recorded).
        candidate_scores: every final candidate's aggregated verifier score, best first.
        text: the selected solution's text.
    """

    problem_id: str
    strategy: str
    n: int
    seed: int | None
    gold: str
    answer: str | None
    correct: bool
    score: float | None
    stop_reason: str
    generation_calls: int
    verifier_calls: int
    prompt_tokens: int
    completion_tokens: int
    wall_time_s: float
    error: str | None = None
    answer_source: str = "none"
    text: str = ""
    verifier_tokens: int = 0
    candidate_answers: list[str | None] = field(default_factory=list)
    candidate_scores: list[float | None] = field(default_factory=list)

    @property
    def arm(self) -> Arm:
        """The arm this record belongs to."""
        return Arm(self.strategy, self.n)

    @classmethod
    def from_result(
        cls,
        arm: Arm,
        problem: Problem,
        seed: int | None,
        result: SearchResult | None,
        error: str | None,
    ) -> Record:
        """Grade a search result (or a failed search) into a record."""
        best = result.best if result is not None else None
        text = best.text if best is not None else ""
        # Grade the answer the text states; graded_answer falls back to its last number itself.
        answer, source = graded_answer(extract_answer(text, flexible=False), text)
        usage = result.usage if result is not None else None
        return cls(
            problem_id=problem.id,
            strategy=arm.strategy,
            n=arm.n,
            seed=seed,
            gold=problem.answer,
            answer=answer,
            correct=is_correct(answer, problem.answer),
            score=best.score if best is not None else None,
            stop_reason="error" if error else (result.stop_reason if result else "error"),
            generation_calls=usage.generation_calls if usage else 0,
            verifier_calls=usage.verifier_calls if usage else 0,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            wall_time_s=usage.wall_time_s if usage else 0.0,
            error=error,
            answer_source=source,
            text=text,
            candidate_answers=[c.answer for c in result.completions] if result else [],
            candidate_scores=[c.score for c in result.completions] if result else [],
            verifier_tokens=(
                usage.verifier_prompt_tokens + usage.verifier_completion_tokens if usage else 0
            ),
        )

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Record:
        """Read a record back from its JSON line (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in known})


StrategyFactory = Callable[[Arm, int | None], SearchStrategy]
"""``factory(arm, seed) -> strategy``: the configured search for one arm and one problem's seed."""

RecordCallback = Callable[[Arm, Record, bool], None]
"""``callback(arm, record, resumed)``: called for every record, ``resumed`` if read back from disk."""


class RunFolder:
    """A run folder: its settings and the records written so far.

    Args:
        path: the folder (created if missing).
        settings: what must not change between resumed runs (dataset, model, seed, ...).

    Raises:
        ConfigError: the folder was made with other settings.
    """

    def __init__(self, path: str | Path, settings: dict[str, Any]) -> None:
        self.path = Path(path)
        self.results = self.path / "results"
        self.results.mkdir(parents=True, exist_ok=True)
        config = self.path / "config.json"
        settings = json.loads(json.dumps(settings))  # normalise tuples and the like
        if config.exists():
            previous = json.loads(config.read_text(encoding="utf-8"))
            changed = sorted(
                k for k in settings.keys() | previous.keys() if settings.get(k) != previous.get(k)
            )
            if changed:
                details = ", ".join(
                    f"{k}: {previous.get(k)!r} -> {settings.get(k)!r}" for k in changed
                )
                raise ConfigError(
                    f"run folder {self.path} was made with other settings ({details}); "
                    "pass a new --out folder to start a fresh run"
                )
        else:
            config.write_text(
                json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8"
            )
        self.settings = settings

    def _file(self, arm: Arm) -> Path:
        return self.results / f"{arm.key}.jsonl"

    def done(self, arm: Arm) -> dict[str, Record]:
        """The records already written for ``arm``, by problem id (a torn last line is ignored)."""
        path = self._file(arm)
        if not path.exists():
            return {}
        records: dict[str, Record] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = Record.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue  # a line cut short by an interrupted run: that problem runs again
            records[record.problem_id] = record
        return records

    def append(self, record: Record) -> None:
        """Write one record and flush it to disk."""
        with self._file(record.arm).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
            handle.flush()

    def records(self) -> list[Record]:
        """Every record in the folder."""
        found: list[Record] = []
        for path in sorted(self.results.glob("*.jsonl")):
            strategy, _, n = path.stem.rpartition("-n")
            if strategy and n.isdigit():
                found.extend(self.done(Arm(strategy, int(n))).values())
        return found


@dataclass(frozen=True)
class Work:
    """One search still to run: an arm on a problem, with the seed that problem gets.

    Attributes:
        arm: the arm.
        problem: the problem.
        seed: ``seed + i`` for the problem at position ``i`` of the dataset (``None``: unseeded).
    """

    arm: Arm
    problem: Problem
    seed: int | None


def pending(
    problems: Sequence[Problem], arm: Arm, folder: RunFolder, *, seed: int | None
) -> tuple[list[Record], list[Work]]:
    """What ``folder`` holds for ``arm`` and what is left to search, in dataset order.

    The one place a problem's seed is decided: problem ``i`` (its position in ``problems``) is
    searched with seed ``seed + i``, so every arm sees the same seeds, a resumed run repeats
    exactly what an uninterrupted one would do, and a run spread over workers
    (:mod:`sal_plugins.eval.distributed`) does the same searches as a local one.

    Returns:
        the records already written for these problems, and the work not yet recorded.
    """
    done = folder.done(arm)
    recorded: list[Record] = []
    todo: list[Work] = []
    for index, problem in enumerate(problems):
        if problem.id in done:
            recorded.append(done[problem.id])
        else:
            todo.append(Work(arm, problem, None if seed is None else seed + index))
    return recorded, todo


async def _search(
    strategy: SearchStrategy, problem: Problem
) -> tuple[SearchResult | None, str | None]:
    try:
        return await strategy.arun(problem.question), None
    except SearchError as error:
        return error.result, f"{type(error).__name__}: {error}"
    except SalError as error:
        if isinstance(error, ConfigError):
            raise
        return None, f"{type(error).__name__}: {error}"


async def search_record(work: Work, factory: StrategyFactory) -> Record:
    """Run one search and grade it into a record (a failed search is a record too).

    Raises:
        ConfigError: the strategy cannot be built or run as configured.
    """
    result, error = await _search(factory(work.arm, work.seed), work.problem)
    return Record.from_result(work.arm, work.problem, work.seed, result, error)


async def run_arms(
    problems: Sequence[Problem],
    arms: Sequence[Arm],
    factory: StrategyFactory,
    folder: RunFolder,
    *,
    seed: int | None = 0,
    jobs: int = 1,
    on_record: RecordCallback | None = None,
) -> list[Record]:
    """Run every arm on every problem not yet recorded in ``folder``; return all their records.

    Problem ``i`` (its position in ``problems``) is searched with seed ``seed + i`` (see
    :func:`pending`).

    Args:
        problems: the problems.
        arms: the strategy/N combinations.
        factory: builds the strategy for an arm and a seed.
        folder: where records are read from and appended to.
        seed: base seed (``None``: unseeded).
        jobs: problems searched at once.
        on_record: progress callback.
    """
    if jobs < 1:
        raise ConfigError(f"jobs={jobs}: must be at least 1")
    gate = asyncio.Semaphore(jobs)
    records: list[Record] = []

    async def one(work: Work) -> None:
        async with gate:
            record = await search_record(work, factory)
        folder.append(record)
        records.append(record)
        if on_record is not None:
            on_record(work.arm, record, False)

    for arm in arms:
        recorded, todo = pending(problems, arm, folder, seed=seed)
        for record in recorded:
            records.append(record)
            if on_record is not None:
                on_record(arm, record, True)
        await asyncio.gather(*(one(work) for work in todo))
    wanted = {p.id for p in problems}
    return [r for r in records if r.problem_id in wanted]
