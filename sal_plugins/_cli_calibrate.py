"""``sal calibrate RUN_FOLDER``: fit an adaptive policy to what ``sal eval`` recorded.

The fit itself lives in :mod:`sal_plugins.eval.calibrate`; this module reads the run folder,
works out the settings each arm ran with (the same flags-to-settings rule ``sal eval`` used),
writes the policy file and prints what was measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from sal_plugins._cli_setup import Components, apply_embedded_preset, build_strategy
from sal_plugins.errors import ConfigError
from sal_plugins.eval.calibrate import ArmSettings, calibrate
from sal_plugins.eval.runner import RunFolder
from sal_plugins.solvers import ScriptedSolver
from sal_plugins.strategies.base import SearchStrategy
from sal_plugins.verifiers import ScriptedVerifier

__all__ = ["add_calibrate_parser", "calibrate_command", "eval_arm_settings"]


def add_calibrate_parser(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``sal calibrate``."""
    parser = commands.add_parser(
        "calibrate",
        help="fit an adaptive policy to a sal eval run folder",
        description="Fit the policy of --strategy adaptive to a run folder of sal eval (with "
        "best_of_n at the probe size among its arms): difficulty bins from the probe's signals "
        "to the arm that best meets the target, checked on held-out problems.",
    )
    parser.add_argument("run_folder", help="a folder written by sal eval")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--target-compute", type=float, help="most mean compute per problem (see --metric)"
    )
    target.add_argument(
        "--target-accuracy", type=float, help="least accuracy, a fraction such as 0.8"
    )
    parser.add_argument("-o", "--out", help="policy file (default RUN_FOLDER/policy.json)")
    parser.add_argument("--probe", type=int, default=4, help="probe samples (default 4)")
    parser.add_argument(
        "--metric",
        choices=("completion_tokens", "total_tokens", "calls"),
        default="completion_tokens",
        help="what compute means (default completion_tokens: generated tokens)",
    )
    parser.add_argument("--bins", type=int, default=3, help="most difficulty bins (default 3)")
    parser.add_argument("--min-bin", type=int, default=5, help="fewest problems per bin (5)")
    parser.add_argument("--holdout", type=float, default=0.3, help="held-out share (0.3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(handler=calibrate_command)


def eval_arm_settings(config: dict[str, Any]) -> ArmSettings:
    """The strategy settings ``sal eval`` gave each arm, from its run folder's ``config.json``.

    The arm is rebuilt through the CLI's own flags-to-settings rule (with stand-in models), and
    the settings of the strategy's own that differ from its defaults are kept.
    """
    flags = argparse.Namespace(
        n=None,
        beam_width=config.get("beam_width"),
        max_steps=config.get("max_steps"),
        max_tokens=config.get("max_tokens"),
        temperature=config.get("temperature"),
        seed=config.get("seed"),
        max_calls=None,
        deadline=None,
        options=list(config.get("options") or []),
    )
    components = Components(
        solver=ScriptedSolver(["stand-in"]),
        verifier=ScriptedVerifier(lambda problem, step: 0.5, score_range=(0.0, 1.0)),
        embedded=str(config.get("solver", "")).startswith("embedded:"),
        description={"solver": config.get("solver"), "verifier": config.get("verifier")},
    )

    def settings(strategy: str, n: int) -> dict[str, Any]:
        args, parts = apply_embedded_preset(flags, strategy, components)
        built = build_strategy(strategy, n, args, parts, strict=False)
        fields = type(built).model_fields
        own = {}
        for name, info in fields.items():
            value = getattr(built, name)
            if name in SearchStrategy.model_fields or name == "n" or value == info.default:
                continue
            if isinstance(value, bool | int | float | str):
                own[name] = value
        return own

    return settings


def calibrate_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Fit, write and report the policy; return the exit code."""
    out = out if out is not None else sys.stdout
    folder_path = Path(args.run_folder)
    config_file = folder_path / "config.json"
    if not config_file.is_file():
        raise ConfigError(
            f"{folder_path} is not a sal eval run folder (no config.json): pass the --out folder "
            "of a sal eval run"
        )
    config = json.loads(config_file.read_text(encoding="utf-8"))
    records = RunFolder(folder_path, config).records()
    result = calibrate(
        records,
        target_compute=args.target_compute,
        target_accuracy=args.target_accuracy,
        probe=args.probe,
        metric=args.metric,
        bins=args.bins,
        min_bin=args.min_bin,
        holdout=args.holdout,
        seed=args.seed,
        arm_settings=eval_arm_settings(config),
    )
    target = Path(args.out) if args.out else folder_path / "policy.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(result.policy.to_json(), encoding="utf-8")
    if args.json:
        print(json.dumps(result.policy.calibration, indent=2), file=out)
    else:
        for line in result.lines():
            print(line, file=out)
    print(f"policy: {target} (use: sal run --strategy adaptive --policy {target} ...)", file=out)
    return 0
