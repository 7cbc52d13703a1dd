"""Evaluation: run strategies over a dataset and measure accuracy against the compute spent.

The building blocks behind ``sal eval``::

    from sal_plugins.eval import Arm, RunFolder, load_problems, run_arms, summarize, format_table

    problems = load_problems("gsm8k/test.jsonl", limit=50)
    folder = RunFolder("runs/gsm8k", settings={"model": "..."})
    records = await run_arms(problems, [Arm("best_of_n", 4)], factory, folder)
    print(format_table(summarize(records)))
"""

from sal_plugins.eval.datasets import Problem, gold_answer, load_problems, problems_from_rows
from sal_plugins.eval.grading import graded_answer, is_correct
from sal_plugins.eval.plot import plot_accuracy_vs_budget
from sal_plugins.eval.report import ArmSummary, format_table, summarize, wilson_interval
from sal_plugins.eval.runner import Arm, Record, RunFolder, StrategyFactory, run_arms

__all__ = [
    "Arm",
    "ArmSummary",
    "Problem",
    "Record",
    "RunFolder",
    "StrategyFactory",
    "format_table",
    "gold_answer",
    "graded_answer",
    "is_correct",
    "load_problems",
    "plot_accuracy_vs_budget",
    "problems_from_rows",
    "run_arms",
    "summarize",
    "wilson_interval",
]
