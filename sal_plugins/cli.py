"""The ``sal`` command: ``sal run PROBLEM``, ``sal eval DATASET``, ``sal serve`` and ``sal calibrate``.

Exit codes: 0 success; 1 the search or evaluation failed at run time; 2 a usage mistake (bad flag,
bad value, missing optional dependency), with a message that names the fix; 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from sal_plugins import __version__
from sal_plugins._cli_calibrate import add_calibrate_parser
from sal_plugins._cli_eval import add_eval_parser
from sal_plugins._cli_run import add_run_parser
from sal_plugins._cli_serve import add_serve_parser
from sal_plugins.errors import ConfigError, InputError, MissingDependencyError, SalError

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with the program name on errors and exit code 2 (argparse's own convention)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"sal: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``sal`` argument parser."""
    parser = _Parser(
        prog="sal",
        description="Test-time compute search for any LLM: more accuracy from a small model by "
        "sampling candidate solutions and letting a verifier choose.",
    )
    parser.add_argument("--version", action="version", version=f"sal-plugins {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    add_run_parser(commands)
    add_eval_parser(commands)
    add_serve_parser(commands)
    add_calibrate_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sal`` command line; return the exit code.

    Args:
        argv: the arguments (``sys.argv[1:]`` when ``None``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.handler(args)
    except (ConfigError, InputError, MissingDependencyError) as error:
        print(f"sal {args.command}: error: {error}", file=sys.stderr)
        return 2
    except SalError as error:
        print(f"sal {args.command}: failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"sal {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
