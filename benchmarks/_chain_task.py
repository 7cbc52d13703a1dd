"""The step-slip chain task: problems, a slipping writer of steps, and a noisy step scorer.

One simulation for every place that plays the task: ``accuracy_scripted.py`` in-process, and
``fake_server.py --task chain`` over HTTP. Everything here is a pure, deterministic function of
its arguments (string-seeded ``random.Random``, the same in every process), so a search seeded the
same way meets the same steps and the same scores on either path.

The task. A problem is a chain of additions ("Start at 7. Add 3, then 4, ... What is the
result?"). A solution writes one addition per step, ending with its running total, then a step
that boxes the answer. Each addition slips with probability ``slip`` (its total comes out 1 to 9
too high) and a slip carries through: later steps add to the wrong value.

The scorer. A step whose running total is one of the chain's right running values scores about
``ON_PATH``, any other step about ``OFF_PATH``, each plus Gaussian noise of sd ``noise`` that is
a fixed function of the problem and the trajectory up to that step.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Sequence

__all__ = [
    "OFF_PATH",
    "ON_PATH",
    "PHRASINGS",
    "chain_of",
    "find_problem",
    "last_number",
    "make_problems",
    "sample_key",
    "step_scores",
    "tokens",
    "write",
]

ON_PATH, OFF_PATH = 0.65, 0.4
"""Mean scores of a step on the right path and of one off it."""

PHRASINGS = (
    "{value} + {addend} = {total}",
    "Adding {addend} to {value} gives {total}",
    "{value} plus {addend} makes {total}",
    "Then {value} + {addend}, which is {total}",
)
"""How a step may be worded (each ends with its running total): right solutions differ in text,
as a model's do, so the scorer's noise is drawn afresh for each of them."""

_NUMBERS = re.compile(r"-?\d+")
_PROBLEM = re.compile(r"Start at \d+\. Add \d+(?:, then \d+)*\. What is the result\?")


def make_problems(count: int, steps: int, seed: int) -> list[tuple[str, int]]:
    """``count`` chains of ``steps`` additions and their answers, reproducible from ``seed``."""
    rng = random.Random(seed)
    problems = []
    for _ in range(count):
        start = rng.randint(2, 30)
        addends = [rng.randint(2, 19) for _ in range(steps)]
        text = f"Start at {start}. Add {', then '.join(map(str, addends))}. What is the result?"
        problems.append((text, start + sum(addends)))
    return problems


def find_problem(text: str) -> str | None:
    """The first chain problem written in ``text`` (a prompt, a rendered chat), if any."""
    match = _PROBLEM.search(text)
    return match[0] if match else None


def chain_of(problem: str) -> tuple[int, list[int]]:
    """The start value and the addends of a problem."""
    start, *addends = (int(x) for x in _NUMBERS.findall(problem))
    return start, addends


def last_number(step: str) -> int | None:
    """The last integer written in ``step`` (a step's running total), if any."""
    numbers = _NUMBERS.findall(step)
    return int(numbers[-1]) if numbers else None


def sample_key(seed: int | None, temperature: float) -> object:
    """What a continuation's randomness is drawn from besides its prefix.

    Its seed when sampling; at temperature 0 nothing but the prefix (greedy decoding writes the
    same text for the same prefix whatever the seed), at the same slip rate.
    """
    return seed if temperature > 0 else "greedy"


def _next_step(
    problem: str, prefix: Sequence[str], rng: random.Random, slip: float
) -> tuple[str, bool]:
    start, addends = chain_of(problem)
    done = len(prefix)
    value = (last_number(prefix[-1]) or 0) if prefix else start
    if done >= len(addends):
        return f"The answer is $\\boxed{{{value}}}$.", True
    addend = addends[done]
    slipped = rng.random() < slip
    total = value + addend + (rng.randint(1, 9) if slipped else 0)
    wording = rng.choice(PHRASINGS)
    return wording.format(value=value, addend=addend, total=total), False


def write(
    problem: str, prefix: Sequence[str], key: object, slip: float, *, to_end: bool
) -> tuple[list[str], bool]:
    """The steps written after ``prefix``, and whether the last of them ends the solution.

    One step, or with ``to_end`` every step to the boxed answer. Each step's randomness comes
    from ``key`` (see :func:`sample_key`), the problem and the steps before it, so a retried
    request, or one step asked for twice, gets the same text.
    """
    written: list[str] = []
    steps = list(prefix)
    while True:
        rng = random.Random(f"{key}|{problem}|{'/'.join(steps)}")
        text, ends = _next_step(problem, steps, rng, slip)
        written.append(text)
        steps.append(text)
        if ends or not to_end:
            return written, ends


def step_scores(problem: str, steps: Sequence[str], noise: float) -> list[float]:
    """One score in [0, 1] per step: on or off the right path, plus noise fixed per prefix."""
    start, addends = chain_of(problem)
    truth = set(itertools.accumulate(addends, initial=start))
    scores = []
    for depth, step in enumerate(steps, start=1):
        base = ON_PATH if last_number(step) in truth else OFF_PATH
        jitter = random.Random("|".join((problem, *steps[:depth]))).gauss(0.0, noise)
        scores.append(min(1.0, max(0.0, base + jitter)))
    return scores


def tokens(text: str) -> int:
    """The task's token count of a text: its words."""
    return len(text.split())
