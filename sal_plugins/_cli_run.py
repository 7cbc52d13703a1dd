"""``sal run PROBLEM``: one search, with live progress, a summary, and optional JSON and tree files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from sal_plugins._cli_progress import SearchProgress
from sal_plugins._cli_setup import (
    add_model_flags,
    add_strategy_flags,
    build_components,
    build_strategy,
    check_strategy_flags,
    strategy_names,
)
from sal_plugins.errors import ConfigError, SearchError
from sal_plugins.events import SearchFinished
from sal_plugins.results import SearchResult, Usage
from sal_plugins.strategies.base import SearchStrategy
from sal_plugins.sync import run_sync

__all__ = ["add_run_parser", "run_command", "summary_lines"]

_TREE_FORMATS = {
    ".html": "html",
    ".htm": "html",
    ".json": "json",
    ".mmd": "mermaid",
    ".md": "mermaid",
}


def add_run_parser(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``sal run``."""
    parser = commands.add_parser(
        "run",
        help="solve one problem with a test-time search",
        description="Solve one problem with a test-time search. With no model flags it uses the "
        "embedded SmolLM2-135M model and the arithmetic verifier (no API key, no server).",
    )
    parser.add_argument("problem", help='the problem, e.g. "What is 23 + 48?"')
    parser.add_argument(
        "--strategy",
        default="best_of_n",
        help=f"one of {', '.join(strategy_names())} (default best_of_n; hyphens accepted)",
    )
    parser.add_argument("--n", type=int, default=4, help="samples per search (default 4)")
    add_strategy_flags(parser)
    add_model_flags(parser)
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    output.add_argument(
        "--tree", metavar="FILE", help="write the search tree: .html page, .json, or .mmd (Mermaid)"
    )
    output.add_argument("--quiet", action="store_true", help="no progress display")
    parser.set_defaults(handler=run_command)


def _tree_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in _TREE_FORMATS:
        raise ConfigError(f"--tree {path}: use a .html, .json or .mmd file name")
    return _TREE_FORMATS[suffix]


def _write_tree(result: SearchResult, path: str, fmt: str) -> None:
    tree = result.tree
    if fmt == "html":
        text = tree.to_html(title=f"{result.strategy}: {result.problem[:60]}")
    elif fmt == "json":
        text = tree.to_json(indent=2)
    else:
        text = tree.to_mermaid()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


async def _search(strategy: SearchStrategy, problem: str, progress: SearchProgress) -> SearchResult:
    with progress:
        async for event in strategy.astream(problem):
            progress.update(event)
            if isinstance(event, SearchFinished):
                return event.result
    raise AssertionError("a search always ends with SearchFinished")  # pragma: no cover


def summary_lines(result: SearchResult) -> list[tuple[str, str]]:
    """The search summary as (label, value) pairs: answer, score, calls, tokens, time, stop."""
    usage = result.usage
    best = result.best
    score = "-" if best is None or best.score is None else f"{best.score:.3f}"
    return [
        ("answer", result.answer if result.answer is not None else "(none found)"),
        ("score", score + ("" if best is None or best.finished else " (unfinished)")),
        (
            "strategy",
            f"{result.strategy}, {len(result.completions)} candidates, {len(result.tree) - 1} nodes",
        ),
        ("calls", f"{usage.generation_calls} generation + {usage.verifier_calls} verifier"),
        ("tokens", _tokens(usage)),
        ("time", f"{usage.wall_time_s:.1f}s"),
        (
            "stop reason",
            result.stop_reason + (f", {usage.failures} failed requests" if usage.failures else ""),
        ),
    ]


def _print_summary(result: SearchResult, out: TextIO) -> None:
    console = Console(file=out, highlight=False)
    if console.is_terminal:
        if result.best is not None:
            console.print(Panel(result.best.text, title="selected solution", expand=False))
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        for label, value in summary_lines(result):
            table.add_row(label, value)
        console.print(table)
        return
    if result.best is not None:
        print(result.best.text, file=out)
        print(file=out)
    for label, value in summary_lines(result):
        print(f"{label + ':':<13}{value}", file=out)


def run_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run one search as the flags say; print the result; return the exit code."""
    out = out if out is not None else sys.stdout
    tree_format = _tree_format(args.tree) if args.tree else None
    if args.n < 1:
        raise ConfigError(f"--n {args.n}: must be at least 1")
    check_strategy_flags(args.strategy, args)
    components = build_components(args)
    strategy = build_strategy(args.strategy, args.n, args, components)
    progress = SearchProgress(enabled=not args.quiet)
    code = 0
    try:
        result = run_sync(lambda: _search(strategy, args.problem, progress))
    except SearchError as error:
        if error.result is None:
            raise
        print(f"sal: {error}", file=sys.stderr)
        result, code = error.result, 1
    if args.tree and tree_format:
        _write_tree(result, args.tree, tree_format)
    if args.json:
        data = result.to_dict()
        data.pop("tree", None)
        print(json.dumps(data, indent=2, ensure_ascii=False), file=out)
    else:
        _print_summary(result, out)
        if args.tree:
            print(f"{'tree:':<13}{args.tree}", file=out)
    return code


def _tokens(usage: Usage) -> str:
    solver = f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion"
    verifier = usage.verifier_prompt_tokens + usage.verifier_completion_tokens
    if not verifier:
        return solver
    return (
        f"{solver}; verifier {usage.verifier_prompt_tokens} prompt + "
        f"{usage.verifier_completion_tokens} completion"
    )
