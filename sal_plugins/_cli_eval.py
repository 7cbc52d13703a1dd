"""``sal eval DATASET``: accuracy vs. compute of strategies over a dataset, resumable.

Optional dependencies are checked before any work: without matplotlib the evaluation still runs
and writes its table and records, and says up front (and again at the end) that the plot is
skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sal_plugins._cli_setup import (
    Components,
    add_model_flags,
    add_strategy_flags,
    apply_embedded_preset,
    build_components,
    build_strategy,
    canonical_strategy,
    strategy_names,
)
from sal_plugins.errors import ConfigError, MissingDependencyError
from sal_plugins.eval.datasets import Problem, load_problems
from sal_plugins.eval.distributed import LOCAL, import_ray, ray_session, run_arms_on_ray
from sal_plugins.eval.plot import plot_accuracy_vs_budget
from sal_plugins.eval.report import HEADERS, ArmSummary, format_table, summarize, table_rows
from sal_plugins.eval.runner import Arm, Record, RunFolder, StrategyFactory, run_arms
from sal_plugins.strategies.base import SearchStrategy
from sal_plugins.sync import run_sync

__all__ = ["add_eval_parser", "eval_command", "parse_arms"]


def add_eval_parser(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``sal eval``."""
    parser = commands.add_parser(
        "eval",
        help="accuracy vs. compute of strategies over a dataset",
        description="Run strategies at several N over a dataset; write one run folder with a "
        "jsonl per strategy and N (rerunning skips finished problems), a table with 95%% Wilson "
        "intervals, and accuracy_vs_budget.png.",
    )
    parser.add_argument(
        "dataset", help="a .jsonl file (GSM8K question/answer or MATH problem/answer) or a hub name"
    )
    parser.add_argument(
        "--strategy",
        action="append",
        help=f"repeatable or comma list of {', '.join(strategy_names())} (default best_of_n)",
    )
    parser.add_argument("--n", default="1,4,16", help="comma list of N (default 1,4,16)")
    parser.add_argument("--limit", type=int, help="only the first LIMIT problems")
    parser.add_argument("--split", default="test", help="hub split (default test)")
    parser.add_argument("--subset", help="hub configuration, e.g. main for openai/gsm8k")
    parser.add_argument("--out", help="run folder (default runs/eval-<dataset name>)")
    parser.add_argument("--jobs", type=int, default=1, help="problems searched at once (default 1)")
    parser.add_argument(
        "--ray",
        nargs="?",
        const=LOCAL,
        metavar="ADDRESS",
        help="spread the searches over Ray actors, each searching --jobs problems at once "
        "(pip install 'sal-plugins[ray]'); no ADDRESS starts Ray on this machine, auto, "
        "HOST:PORT or ray://HOST:10001 joins a cluster (put it after DATASET)",
    )
    parser.add_argument(
        "--ray-actors",
        type=int,
        help="Ray actors to start (default: one per free CPU in the cluster)",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    parser.add_argument("--json", action="store_true", help="print the summary rows as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    add_strategy_flags(parser)
    add_model_flags(parser)
    parser.set_defaults(handler=eval_command)


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def parse_arms(strategies: list[str] | None, ns: str) -> list[Arm]:
    """The arms of an evaluation: every strategy at every N (``greedy`` only at N=1).

    Raises:
        ConfigError: an unknown strategy or an N that is not a positive integer.
    """
    names = [canonical_strategy(s) for s in _split(strategies or ["best_of_n"])]
    try:
        counts = sorted({int(part) for part in _split([ns])})
    except ValueError:
        raise ConfigError(
            f"--n {ns!r}: expected a comma list of integers, e.g. --n 1,4,16"
        ) from None
    if not counts or counts[0] < 1:
        raise ConfigError(f"--n {ns!r}: every N must be at least 1")
    arms: list[Arm] = []
    for name in dict.fromkeys(names):
        for n in [1] if name == "greedy" else counts:
            arms.append(Arm(name, n))
    return arms


class _EvalProgress:
    """Progress bars on a terminal; one line per finished search otherwise."""

    def __init__(self, arms: list[Arm], problems: int, *, quiet: bool) -> None:
        self.console = Console(file=sys.stderr, highlight=False)
        self.quiet = quiet
        self.live = self.console.is_terminal and not quiet
        self.progress = Progress(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[accuracy]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.tasks = {
            arm: self.progress.add_task(f"{arm.strategy} N={arm.n}", total=problems, accuracy="")
            for arm in arms
        }
        self.correct = dict.fromkeys(arms, 0)
        self.done = dict.fromkeys(arms, 0)

    def __call__(self, arm: Arm, record: Record, resumed: bool) -> None:
        self.done[arm] += 1
        self.correct[arm] += record.correct
        accuracy = f"{self.correct[arm] / self.done[arm]:.0%} correct"
        if self.live:
            self.progress.update(self.tasks[arm], advance=1, accuracy=accuracy)
        elif not self.quiet and not resumed:
            mark = "correct" if record.correct else "wrong"
            detail = f" error={record.error}" if record.error else ""
            print(
                f"[{arm.strategy} N={arm.n}] {record.problem_id}: answer={record.answer!r} "
                f"gold={record.gold!r} {mark} ({self.done[arm]} done, {accuracy}){detail}",
                file=sys.stderr,
                flush=True,
            )


def _print_table(rows: list[tuple[str, ...]], markdown: str, out: TextIO) -> None:
    console = Console(file=out, highlight=False)
    if not console.is_terminal:
        print(markdown, file=out, end="")
        return
    table = Table(title="accuracy vs. compute (calls and tokens: mean per problem)")
    for header in HEADERS:
        first = header == "strategy"
        table.add_column(
            header, justify="left" if first else "right", no_wrap=header in ("strategy", "95% CI")
        )
    for row in rows:
        table.add_row(*row)
    console.print(table)


_PLOT_HINT = "pip install 'sal-plugins[eval]'"


def _plot_unavailable() -> str | None:
    """Why the plot cannot be drawn (matplotlib is missing), or ``None`` when it can."""
    if importlib.util.find_spec("matplotlib") is None:
        return f"matplotlib is not installed ({_PLOT_HINT})"
    return None


def _arm_strategy(arm: Arm, args: argparse.Namespace, components: Components) -> SearchStrategy:
    """The strategy of one arm, with the embedded model's tuned settings where flags say none."""
    args, components = apply_embedded_preset(args, arm.strategy, components)
    return build_strategy(arm.strategy, arm.n, args, components, strict=False)


def _strategy_factory(args: argparse.Namespace, components: Components) -> StrategyFactory:
    """The strategy of each arm and seed: the one definition a local run and every Ray actor use."""

    def factory(arm: Arm, seed: int | None) -> SearchStrategy:
        return _arm_strategy(arm, args, components).model_copy(update={"seed": seed})

    return factory


@dataclasses.dataclass(frozen=True)
class _FlagsFactory:
    """Builds :func:`_strategy_factory` from the flags where it is called: in each Ray actor,
    which opens its own clients (a built solver holds open connections and cannot be pickled).

    The flags stay out of the repr: they may hold API keys.
    """

    args: argparse.Namespace = dataclasses.field(repr=False)

    def __call__(self) -> StrategyFactory:
        return _strategy_factory(self.args, build_components(self.args))


def _search_all(
    args: argparse.Namespace,
    problems: list[Problem],
    arms: list[Arm],
    components: Components,
    folder: RunFolder,
    progress: _EvalProgress,
) -> list[Record]:
    """Run the searches here, or on Ray actors with ``--ray`` (connected before the bars show)."""
    live = progress.progress if progress.live else contextlib.nullcontext()
    if args.ray is None:
        factory = _strategy_factory(args, components)
        with live:
            return run_sync(
                lambda: run_arms(
                    problems,
                    arms,
                    factory,
                    folder,
                    seed=args.seed,
                    jobs=args.jobs,
                    on_record=progress,
                )
            )
    if not args.quiet:
        where = "on this machine" if args.ray == LOCAL else f"at {args.ray}"
        print(f"sal eval: connecting to Ray {where}", file=sys.stderr, flush=True)
    with ray_session(args.ray, num_cpus=args.ray_actors or os.cpu_count()), live:
        return run_arms_on_ray(
            problems,
            arms,
            _FlagsFactory(args),
            folder,
            seed=args.seed,
            jobs=args.jobs,
            actors=args.ray_actors,
            on_record=progress,
        )


def _draw_plot(summaries: list[ArmSummary], path: Path, title: str) -> str:
    """Draw the plot; return what to tell the user (the file, or why there is none)."""
    try:
        plot_accuracy_vs_budget(summaries, path, title=title)
    except MissingDependencyError:
        return f"plot:       skipped, matplotlib is not installed ({_PLOT_HINT})"
    except Exception as error:  # a broken matplotlib install or backend: the table still stands
        return f"plot:       not drawn ({type(error).__name__}: {error})"
    return f"plot:       {path}"


def eval_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Evaluate the requested arms; write and print the table (and plot); return the exit code."""
    out = out if out is not None else sys.stdout
    arms = parse_arms(args.strategy, args.n)
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit {args.limit}: must be at least 1")
    if args.ray is None and args.ray_actors is not None:
        raise ConfigError(
            "--ray-actors needs --ray: add --ray (Ray on this machine) or --ray ADDRESS"
        )
    if args.ray is not None:
        import_ray()  # a missing extra is refused before any work
    missing_plot = None if args.no_plot else _plot_unavailable()
    if missing_plot:
        print(
            f"sal eval: {missing_plot}: accuracy_vs_budget.png will be skipped; the table and "
            "the records are written as usual (--no-plot silences this)",
            file=sys.stderr,
        )
    problems = load_problems(args.dataset, split=args.split, subset=args.subset, limit=args.limit)
    components = build_components(args)
    for arm in arms:  # refuse a bad combination before any search runs
        _arm_strategy(arm, args, components)
    settings = {
        "dataset": args.dataset,
        "split": args.split,
        "subset": args.subset,
        **components.description,
        "seed": args.seed,
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
        "beam_width": args.beam_width,
        "max_steps": args.max_steps,
        "options": sorted(args.options),
    }
    default_out = Path("runs") / f"eval-{Path(args.dataset).stem or 'dataset'}"
    folder = RunFolder(args.out or default_out, settings)

    progress = _EvalProgress(arms, len(problems), quiet=args.quiet)
    records = _search_all(args, problems, arms, components, folder, progress)
    summaries = summarize(records)
    markdown = format_table(summaries)
    (folder.path / "table.md").write_text(markdown, encoding="utf-8")
    (folder.path / "summary.json").write_text(
        json.dumps([s.to_dict() for s in summaries], indent=2) + "\n", encoding="utf-8"
    )
    plot_note = None
    if not args.no_plot:
        title = f"{Path(args.dataset).name}: {len(problems)} problems, {components.description['solver']}"
        plot_note = _draw_plot(summaries, folder.path / "accuracy_vs_budget.png", title)
    if args.json:
        print(json.dumps([s.to_dict() for s in summaries], indent=2), file=out)
        print(f"run folder: {folder.path}", file=sys.stderr)
        if plot_note:
            print(plot_note, file=sys.stderr)
    else:
        _print_table(table_rows(summaries), markdown, out)
        print(f"run folder: {folder.path}", file=out)
        if plot_note:
            print(plot_note, file=out)
    return 0
