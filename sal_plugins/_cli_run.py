"""``sal run PROBLEM``: one search, with live progress, a summary, and optional JSON and tree files.

On the embedded model the search runs with the settings tuned for it
(:func:`sal_plugins.embedded.embedded_settings`) wherever no flag says otherwise, and by default
(``--compare``) the greedy answer is printed beside the searched one, with the verifier's verdict
on every candidate, so that what the search changed is in plain sight.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from sal_plugins._cli_progress import SearchProgress
from sal_plugins._cli_setup import (
    add_model_flags,
    add_strategy_flags,
    apply_embedded_preset,
    build_components,
    build_strategy,
    canonical_strategy,
    check_strategy_flags,
    strategy_names,
)
from sal_plugins.answers import extract_answer
from sal_plugins.embedded import embedded_settings
from sal_plugins.errors import ConfigError, InputError, SearchError
from sal_plugins.events import SearchFinished
from sal_plugins.results import Completion, SearchResult, Usage
from sal_plugins.strategies import build_strategy as build_search
from sal_plugins.strategies.base import SearchStrategy
from sal_plugins.sync import run_sync
from sal_plugins.verifiers.arithmetic import ArithmeticVerifier, find_equations, problem_value

__all__ = [
    "add_run_parser",
    "run_command",
    "stop_reason_text",
    "summary_lines",
    "verdict",
]

DEFAULT_N = 4
"""Samples per search when neither ``--n`` nor the embedded preset says otherwise."""

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")

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
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help=f"samples per search (default {embedded_settings()['n']} on the embedded model, "
        f"else {DEFAULT_N})",
    )
    parser.add_argument(
        "--policy",
        metavar="FILE",
        help="with --strategy adaptive: the policy file sal calibrate wrote (default: built-in)",
    )
    add_strategy_flags(parser)
    add_model_flags(parser)
    output = parser.add_argument_group("output")
    output.add_argument(
        "--compare",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also decode greedily and print that answer beside the searched one, with the "
        "verifier's verdict on every candidate (default: on for the embedded model only)",
    )
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


def verdict(completion: Completion, problem: str, verifier: object) -> str:
    """What the verifier made of one candidate, in a few words.

    For the arithmetic verifier: the first wrong equation, a stated answer that is not the
    problem's value (a bare expression) or not what the work computed, ``checked`` when it
    scored full marks, else ``nothing to check``. For any other verifier: its score.
    """
    if completion.score is None:
        return "not scored"
    if not isinstance(verifier, ArithmeticVerifier):
        return f"score {completion.score:.3f}"
    equations = find_equations(completion.text, rounding=verifier.rounding)
    wrong = next((e for e in equations if not e.correct), None)
    if wrong is not None:
        return f"wrong: {wrong.left} = {wrong.right}"
    stated = _stated_value(completion.text)
    expected = problem_value(problem) if verifier.check_answer else None
    if stated is not None and expected is not None and stated != expected:
        return f"wrong answer (the problem's value is {expected})"
    computed = equations[-1].value if equations else None
    unfollowed = expected is None and None not in (stated, computed) and stated != computed
    if verifier.cumulative and unfollowed and completion.score < 1.0:
        return "answer is not what the work computed"
    return "checked" if completion.score >= 1.0 else "nothing to check"


def _stated_value(text: str) -> Fraction | None:
    """The number a solution states as its final answer, if it states one."""
    answer = extract_answer(text, flexible=False)
    match = _NUMBER.search(answer or "")
    if match is None:
        return None
    try:
        return Fraction(match.group().replace(",", ""))
    except ValueError:
        return None


def stop_reason_text(result: SearchResult) -> str:
    """Why the search ended, saying so when every request failed or nothing was verified."""
    failures = result.failures
    if not result.completions and failures:
        return f"error: every request failed ({len(failures)} failed; last: {failures[-1].error})"
    reason: str = result.stop_reason
    if failures:
        reason += f", {len(failures)} failed requests"
    if result.verification == "unverified":
        reason += "; unverified: every verifier call failed, the pick is the solver's order"
    elif result.verification == "partial":
        reason += "; partly verified: some candidates could not be scored"
    return reason


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
        ("stop reason", stop_reason_text(result)),
    ]


def _compare_rows(
    result: SearchResult, greedy: SearchResult, verifier: object
) -> list[tuple[str, ...]]:
    """Rows of the greedy-vs-search table: one for each run, then one per search candidate."""
    problem = result.problem

    def row(label: str, run: SearchResult, completion: Completion | None) -> tuple[str, ...]:
        if completion is None:
            return (label, "(none)", "-", "-", stop_reason_text(run))
        score = "-" if completion.score is None else f"{completion.score:.2f}"
        answer = completion.answer if completion.answer is not None else "(none)"
        finished = "" if completion.finished else " (unfinished)"
        return (label, answer, score, f"{run.usage.wall_time_s:.1f}s",
                verdict(completion, problem, verifier) + finished)  # fmt: skip

    rows = [
        row("greedy", greedy, greedy.best),
        row(f"search ({result.strategy})", result, result.best),
    ]
    for index, completion in enumerate(result.completions, start=1):
        label, answer, score, _, said = row(f"  candidate {index}", result, completion)
        rows.append((label, answer, score, "", said))
    return rows


_COMPARE_HEADERS = ("", "answer", "score", "time", "verdict")


def _print_compare(rows: list[tuple[str, ...]], out: TextIO) -> None:
    console = Console(file=out, highlight=False)
    if console.is_terminal:
        table = Table(title="greedy vs. search", title_justify="left")
        for header in _COMPARE_HEADERS:
            table.add_column(header, justify="right" if header in ("score", "time") else "left")
        for cells in rows:
            table.add_row(*cells)
        console.print(table)
        return
    print(file=out)
    widths = [max(len(r[i]) for r in [_COMPARE_HEADERS, *rows]) for i in range(4)]
    for cells in [_COMPARE_HEADERS, *rows]:
        line = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=False))
        print(f"{line}  {cells[4]}".rstrip(), file=out)


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


def _run(
    strategy: SearchStrategy, problem: str, progress: SearchProgress
) -> tuple[SearchResult, int]:
    """The search's result and exit code (1 when it failed, with what it had found)."""
    try:
        return run_sync(lambda: _search(strategy, problem, progress)), 0
    except SearchError as error:
        if error.result is None:
            raise
        print(f"sal: {error}", file=sys.stderr)
        return error.result, 1


def _greedy(strategy: SearchStrategy) -> SearchStrategy:
    """One sample at temperature 0 with the same prompt, limits and verifier as ``strategy``."""
    shared = ("system_prompt", "step_delimiter", "max_tokens", "aggregation", "seed", "budget")
    settings = {name: getattr(strategy, name) for name in shared}
    return build_search(
        "best_of_n",
        solver=strategy.solver,
        verifier=strategy.verifier,
        n=1,
        temperature=0.0,
        **settings,
    )


def run_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run one search as the flags say; print the result; return the exit code."""
    out = out if out is not None else sys.stdout
    if not args.problem.strip():
        raise InputError('the problem is empty: pass the question to solve, e.g. "What is 2 + 3?"')
    tree_format = _tree_format(args.tree) if args.tree else None
    if args.n is not None and args.n < 1:
        raise ConfigError(f"--n {args.n}: must be at least 1")
    check_strategy_flags(args.strategy, args)
    if args.policy is not None:
        if canonical_strategy(args.strategy) != "adaptive":
            raise ConfigError("--policy applies to --strategy adaptive: add it or drop --policy")
        policy = f"policy={json.dumps(args.policy)}"
        args = argparse.Namespace(**{**vars(args), "options": [*args.options, policy]})
    components = build_components(args)
    args, components = apply_embedded_preset(args, args.strategy, components)
    n = args.n if args.n is not None else DEFAULT_N
    strategy = build_strategy(args.strategy, n, args, components)
    compare = components.embedded if args.compare is None else args.compare
    result, code = _run(strategy, args.problem, SearchProgress(enabled=not args.quiet))
    greedy = None
    if compare and result.completions:
        greedy, _ = _run(_greedy(strategy), args.problem, SearchProgress(enabled=False))
    if args.tree and tree_format:
        _write_tree(result, args.tree, tree_format)
    if args.json:
        data = result.to_dict()
        data.pop("tree", None)
        if greedy is not None:
            data["greedy"] = {
                "answer": greedy.answer,
                "text": greedy.text,
                "score": greedy.best.score if greedy.best else None,
                "verdict": (
                    verdict(greedy.best, args.problem, strategy.verifier) if greedy.best else None
                ),
                "usage": greedy.usage.to_dict(),
            }
            data["verdicts"] = [
                verdict(c, args.problem, strategy.verifier) for c in result.completions
            ]
        print(json.dumps(data, indent=2, ensure_ascii=False), file=out)
    else:
        _print_summary(result, out)
        if args.tree:
            print(f"{'tree:':<13}{args.tree}", file=out)
        if greedy is not None:
            _print_compare(_compare_rows(result, greedy, strategy.verifier), out)
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
