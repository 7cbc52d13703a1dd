"""Accuracy vs. budget on the embedded model (SmolLM2-135M-Instruct, in-process).

Generates easy arithmetic word problems with a fixed seed, then runs ``sal eval`` on them:
greedy decoding, self-consistency (majority vote), best-of-N and beam search, the last two
scored by ``ArithmeticVerifier``, at N in {1, 4, 8, 16}. The table, the per-problem records and
``accuracy_vs_budget.png`` land in the run folder; rerunning resumes it.

Run: ``python benchmarks/accuracy.py`` (about half an hour on two CPU cores: the 135M model writes
~40 tokens/s there and the 13 arms sample ~90 solutions per problem; ``--problems`` trades time
for tighter intervals). Prints the table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from sal_plugins import cli

TEMPLATES = [
    ("Tom has {a} apples. He buys {b} more apples. How many apples does Tom have now?", "+"),
    (
        "Sara reads {a} pages on Monday and {b} pages on Tuesday. How many pages does she read in "
        "total?",
        "+",
    ),
    ("A box holds {a} pens. {b} pens are taken out. How many pens are left in the box?", "-"),
    ("There are {a} birds on a tree. {b} of them fly away. How many birds are left?", "-"),
    ("Each bag has {a} candies. How many candies are there in {b} bags?", "*"),
]


def make_problems(count: int, seed: int) -> list[dict[str, str]]:
    """``count`` word problems with small numbers, reproducible from ``seed``."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        template, op = TEMPLATES[index % len(TEMPLATES)]
        if op == "*":
            a, b = rng.randint(2, 9), rng.randint(2, 6)
            answer = a * b
        else:
            a, b = rng.randint(12, 60), rng.randint(2, 11)
            answer = a + b if op == "+" else a - b
        rows.append(
            {"id": f"arith-{index}", "question": template.format(a=a, b=b), "answer": str(answer)}
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=6)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--n", default="1,4,8,16")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", default="benchmarks/results/accuracy")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = out / "problems.jsonl"
    rows = make_problems(args.problems, args.seed)
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    code = cli.main(
        [
            "eval",
            str(dataset),
            "--out",
            str(out / "run"),
            "--strategy",
            "greedy,self_consistency,best_of_n,beam_search",
            "--n",
            args.n,
            "--max-tokens",
            str(args.max_tokens),
            "--seed",
            "0",
            "--temperature",
            "0.7",
            "--set",
            "aggregation=min",
        ]
    )
    raise SystemExit(code)


if __name__ == "__main__":
    main()
