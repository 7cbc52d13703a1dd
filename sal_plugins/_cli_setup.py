"""Build the solver, verifier and strategy a ``sal`` command asked for.

Shared by ``sal run`` and ``sal eval``. Everything here turns flags into objects and turns a bad
combination of flags into a :class:`~sal_plugins.errors.ConfigError` naming the fix.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
from dataclasses import dataclass
from typing import Any

from sal_plugins._redact import redact_url
from sal_plugins.budget import Budget
from sal_plugins.embedded import EMBEDDED_SEARCH, embedded_settings, embedded_verifier
from sal_plugins.errors import ConfigError
from sal_plugins.solvers.base import Solver
from sal_plugins.strategies import STRATEGIES, SearchStrategy, strategy_class
from sal_plugins.strategies import build_strategy as build_search
from sal_plugins.verifiers.base import Verifier

__all__ = [
    "EMBEDDED_DEFAULTS",
    "RECIPES",
    "Components",
    "add_model_flags",
    "add_strategy_flags",
    "add_verifier_flags",
    "apply_embedded_preset",
    "build_components",
    "build_strategy",
    "canonical_strategy",
    "check_strategy_flags",
    "default_beam_width",
    "load_object",
]

RECIPES = ("greedy", "self_consistency")
"""Names accepted beside the strategies: ``greedy`` (one sample at temperature 0, no verifier) and
``self_consistency`` (best-of-N with a majority vote and no verifier)."""

EMBEDDED_DEFAULTS: dict[str, Any] = {
    "max_tokens": EMBEDDED_SEARCH["shared"]["max_tokens"],
    "max_steps": EMBEDDED_SEARCH["beam_search"]["max_steps"],
    "temperature": EMBEDDED_SEARCH["shared"]["temperature"],
}
"""The embedded model's tuned limits that have a flag of their own (from
:data:`~sal_plugins.embedded.EMBEDDED_SEARCH`), used when no flag says otherwise."""

_FLAG_KEYS = ("n", "beam_width", "max_steps", "temperature", "max_tokens")
"""Preset settings that have a flag of their own (a flag given on the command line wins)."""


def canonical_strategy(name: str) -> str:
    """The public name of a strategy or recipe (``beam-search`` -> ``beam_search``).

    Raises:
        ConfigError: the name is not a known strategy or recipe.
    """
    key = name.strip().lower().replace("-", "_")
    if key in RECIPES:
        return key
    if key not in STRATEGIES:
        raise ConfigError(
            f"unknown strategy {name!r}: choose one of {', '.join(strategy_names())} "
            "(hyphens accepted, e.g. beam-search)"
        )
    return strategy_class(key).name


def load_object(spec: str) -> Any:
    """Import ``module:attribute`` (used by the hidden ``--solver-factory`` test hooks)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{spec!r}: expected module:attribute")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"cannot load {spec!r}: {error}") from error
    return target


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """Flags choosing the solver and the verifier."""
    group = parser.add_argument_group("model (default: the embedded SmolLM2-135M, no API key)")
    group.add_argument(
        "--base-url",
        action="append",
        help="OpenAI-compatible server, e.g. http://localhost:8000/v1 (repeat it for replicas of "
        "the model: requests are spread over them)",
    )
    group.add_argument("--model", help="model name on that server (required with --base-url)")
    group.add_argument("--api-key", help="API key for --base-url (default: $OPENAI_API_KEY)")
    group.add_argument(
        "--transport",
        choices=("auto", "direct", "aiohttp", "httpx"),
        default="auto",
        help="how requests to --base-url are sent (auto: direct over aiohttp when installed, "
        "the least CPU per request at large N)",
    )
    add_verifier_flags(group)
    group.add_argument("--solver-factory", help=argparse.SUPPRESS)


def add_verifier_flags(group: argparse._ArgumentGroup) -> None:
    """Flags choosing the verifier (``sal run``, ``sal eval`` and ``sal serve`` share them)."""
    group.add_argument(
        "--prm-url",
        action="append",
        help="vLLM /pooling process reward model server root (repeat it for replicas)",
    )
    group.add_argument("--prm-model", help="model name of the PRM (required with --prm-url)")
    group.add_argument("--prm-api-key", help="API key for --prm-url")
    group.add_argument(
        "--prm-preset",
        metavar="NAME",
        help="input layout and score readout of a known PRM (qwen2.5-math-prm, rlhflow-deepseek, "
        "rlhflow-mistral, math-shepherd, pure-prm, skywork-o1-prm); --prm-model defaults to its "
        "model id",
    )
    group.add_argument(
        "--verifier",
        choices=("arithmetic", "none"),
        default=None,
        help="scorer when no --prm-url is given (default: arithmetic, which checks every "
        "a op b = c; a trajectory scores the mean of its steps)",
    )
    group.add_argument("--verifier-factory", help=argparse.SUPPRESS)


def add_strategy_flags(parser: argparse.ArgumentParser) -> None:
    """Search settings shared by ``run`` and ``eval`` (``--n`` is added by each command)."""
    group = parser.add_argument_group("search")
    group.add_argument(
        "--beam-width", type=int, help="continuations per kept beam (beam_search, dvts)"
    )
    group.add_argument(
        "--max-steps",
        type=int,
        help="most steps per solution (beam_search, dvts; default "
        f"{EMBEDDED_DEFAULTS['max_steps']} on the embedded model)",
    )
    group.add_argument(
        "--seed", type=int, default=0, help="seed for a reproducible search (default 0)"
    )
    group.add_argument(
        "--temperature",
        type=float,
        help=f"sampling temperature (default {EMBEDDED_DEFAULTS['temperature']} on the embedded model)",
    )
    group.add_argument(
        "--max-tokens",
        type=int,
        help=f"tokens per generation request (default {EMBEDDED_DEFAULTS['max_tokens']} on the "
        "embedded model, else 1024)",
    )
    group.add_argument("--max-calls", type=int, help="budget: most generation + verifier requests")
    group.add_argument("--deadline", type=float, help="budget: wall-clock seconds per search")
    group.add_argument(
        "--set",
        dest="options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other strategy setting, e.g. --set selection=majority --set lookahead=1",
    )


@dataclass
class Components:
    """What a command searches with: the solver, the verifier, and how to describe them."""

    solver: Solver
    verifier: Verifier | None
    embedded: bool
    description: dict[str, Any]


def _call_factory(spec: str) -> Any:
    factory = load_object(spec)
    return factory() if callable(factory) else factory


def _build_solver(args: argparse.Namespace) -> tuple[Solver, bool, str]:
    if bool(args.base_url) != bool(args.model):
        raise ConfigError("--base-url and --model go together: name the server and its model")
    if args.solver_factory:
        return _call_factory(args.solver_factory), False, args.solver_factory
    if args.base_url:
        from sal_plugins.solvers import OpenAISolver

        solver = OpenAISolver(
            model=args.model,
            base_url=_urls(args.base_url),
            api_key=args.api_key,
            transport=args.transport,
        )
        return solver, False, f"openai:{args.model}@{_shown(args.base_url)}"
    from sal_plugins.embedded import embedded_solver

    return embedded_solver(), True, "embedded:SmolLM2-135M-Instruct"


def build_verifier(args: argparse.Namespace) -> tuple[Verifier | None, str]:
    """The verifier the flags ask for (``--prm-url``/``--verifier``), and its description."""
    if args.verifier_factory:
        return _call_factory(args.verifier_factory), args.verifier_factory
    if args.prm_preset:
        if not args.prm_url:
            raise ConfigError("--prm-preset needs --prm-url: name the PRM server")
        if args.verifier is not None:
            raise ConfigError("--verifier and --prm-preset both choose the verifier: pass only one")
        from sal_plugins.verifiers.presets import prm_preset

        prm = prm_preset(
            args.prm_preset,
            base_url=_urls(args.prm_url),
            model=args.prm_model,
            api_key=args.prm_api_key,
        )
        model = getattr(prm, "model", args.prm_model)
        return prm, f"preset:{args.prm_preset}:{model}@{_shown(args.prm_url)}"
    if args.prm_url or args.prm_model:
        if not (args.prm_url and args.prm_model):
            raise ConfigError(
                "--prm-url and --prm-model go together: name the PRM server and model"
            )
        if args.verifier is not None:
            raise ConfigError("--verifier and --prm-url both choose the verifier: pass only one")
        from sal_plugins.verifiers import PoolingPRM

        prm = PoolingPRM(
            model=args.prm_model, base_url=_urls(args.prm_url), api_key=args.prm_api_key
        )
        return prm, f"pooling:{args.prm_model}@{_shown(args.prm_url)}"
    if args.verifier == "none":
        return None, "none"
    from sal_plugins.verifiers import ArithmeticVerifier

    return ArithmeticVerifier(), "arithmetic"


def _urls(flag: str | list[str]) -> str | list[str]:
    """A URL flag's value: one URL as itself, a repeated flag as the list of replicas."""
    return flag[0] if isinstance(flag, list) and len(flag) == 1 else flag


def _shown(flag: str | list[str]) -> str:
    """A URL flag as the run's description shows it (credentials masked)."""
    return ",".join(redact_url(url) for url in ([flag] if isinstance(flag, str) else flag))


def build_components(args: argparse.Namespace) -> Components:
    """The solver and verifier the flags ask for (the embedded model when none is named)."""
    verifier, verifier_name = build_verifier(args)
    solver, embedded, solver_name = _build_solver(args)
    return Components(
        solver, verifier, embedded, {"solver": solver_name, "verifier": verifier_name}
    )


def default_beam_width(n: int) -> int:
    """A beam width that divides ``n`` and keeps at least two beams: 4, else 2, else 1."""
    for width in (4, 2):
        if n % width == 0 and n // width >= 2:
            return width
    return 1


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set selection=majority")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options[key.strip().replace("-", "_")] = value
    return options


_FLAG_OF = {"beam_width": "--beam-width", "max_steps": "--max-steps"}


def check_strategy_flags(name: str, args: argparse.Namespace) -> None:
    """Refuse ``--beam-width``/``--max-steps`` for a strategy that does not take them.

    Raises:
        ConfigError: naming the flag to drop.
    """
    key = canonical_strategy(name)
    if key in RECIPES:
        return
    fields = strategy_class(key).model_fields
    for attribute, flag in _FLAG_OF.items():
        if getattr(args, attribute) is not None and attribute not in fields:
            takes = ", ".join(sorted(f for a, f in _FLAG_OF.items() if a in fields)) or "neither"
            raise ConfigError(f"{flag} does not apply to {key} (it takes {takes}): drop {flag}")


def build_strategy(
    name: str, n: int, args: argparse.Namespace, components: Components, *, strict: bool = True
) -> SearchStrategy:
    """The strategy ``name`` at ``n`` samples, configured from the shared flags.

    The flags become settings here; the strategy itself is built by
    :func:`sal_plugins.strategies.build_strategy`, as in every other surface (so the verifier's
    own defaults apply: the arithmetic verifier's mean aggregation, unless ``--set
    aggregation=...`` says otherwise).

    Args:
        name: a strategy or recipe name (hyphens allowed).
        n: samples (``n`` of the strategy).
        args: the parsed flags.
        components: solver and verifier.
        strict: refuse flags the strategy does not take (``sal run``); ``sal eval`` runs several
            strategies with one set of flags and applies each flag where it fits.

    Raises:
        ConfigError: a flag does not apply to this strategy, or a value cannot work; the message
            names the flag to change.
    """
    key = canonical_strategy(name)
    if strict:
        check_strategy_flags(key, args)
    target = "best_of_n" if key in RECIPES else key
    verifier = None if key in RECIPES else components.verifier
    settings = {
        **_recipe_settings(key, n),
        **_flag_settings(key, n, args, components),
        **_parse_options(args.options),
    }
    try:
        return build_search(target, solver=components.solver, verifier=verifier, **settings)
    except ConfigError as error:
        if verifier is None and "verifier" in str(error):
            raise ConfigError(
                f"{error} (on the command line: drop --verifier none, or pass --prm-url)"
            ) from error
        raise


def _recipe_settings(key: str, n: int) -> dict[str, Any]:
    if key == "greedy":
        return {"n": 1, "temperature": 0.0}
    if key == "self_consistency":
        return {"n": n, "selection": "majority"}
    return {"n": n} if "n" in strategy_class(key).model_fields else {}


def _flag_settings(
    key: str, n: int, args: argparse.Namespace, components: Components
) -> dict[str, Any]:
    """The settings the shared flags (and the embedded model's defaults) ask for."""
    fields = strategy_class("best_of_n" if key in RECIPES else key).model_fields
    embedded = EMBEDDED_DEFAULTS if components.embedded else {}
    settings: dict[str, Any] = {}
    for attribute in _FLAG_OF:
        if attribute not in fields:
            continue
        value = getattr(args, attribute)
        if value is None and attribute == "beam_width":
            value = default_beam_width(n)
        if value is None:
            value = embedded.get(attribute)
        if value is not None:
            settings[attribute] = value
    max_tokens = args.max_tokens if args.max_tokens is not None else embedded.get("max_tokens")
    if max_tokens is not None:
        settings["max_tokens"] = max_tokens
    temperature = args.temperature if args.temperature is not None else embedded.get("temperature")
    if temperature is not None and key != "greedy":
        settings["temperature"] = temperature
    if args.seed is not None:
        settings["seed"] = args.seed
    if args.max_calls is not None or args.deadline is not None:
        settings["budget"] = Budget(max_calls=args.max_calls, deadline_s=args.deadline)
    return settings


def strategy_names() -> list[str]:
    """Every name ``--strategy`` accepts."""
    return sorted(STRATEGIES) + list(RECIPES)


def apply_embedded_preset(
    args: argparse.Namespace, strategy: str, components: Components
) -> tuple[argparse.Namespace, Components]:
    """The flags and components with the embedded model's tuned settings filled in.

    On the embedded model (and only there) every setting of
    :func:`~sal_plugins.embedded.embedded_settings` that no flag and no ``--set`` gave is added
    as a ``--set`` entry (the system prompt, the step delimiter, the temperature, ...), and the
    arithmetic verifier becomes :func:`~sal_plugins.embedded.embedded_verifier` (whole-solution
    checks). ``--n`` is set only where it was not given (``sal eval`` always gives its arms' N).
    ``sal run`` and ``sal eval`` both build their strategies through this one rule.

    Args:
        args: the parsed flags (not modified).
        strategy: the strategy or recipe about to be built.
        components: the solver and verifier the flags chose.

    Returns:
        A copy of ``args`` and the components to build the strategy with.
    """
    if not components.embedded:
        return args, components
    given = {name for name in _FLAG_KEYS if getattr(args, name, None) is not None}
    given |= {pair.partition("=")[0].strip().replace("-", "_") for pair in args.options}
    preset = embedded_settings(canonical_strategy(strategy), given=given)
    n = preset.pop("n", None)
    args = argparse.Namespace(**vars(args))
    args.n = args.n if args.n is not None else n
    args.options = [*args.options, *(f"{k}={json.dumps(v)}" for k, v in preset.items())]
    if components.description.get("verifier") == "arithmetic":
        components = dataclasses.replace(components, verifier=embedded_verifier())
    return args, components
