"""Accuracy vs. generation budget, as a PNG (matplotlib, Agg backend; extra ``eval``).

Compute-matched: every point sits at the mean calls or tokens its arm actually spent per problem,
not at its nominal N, so strategies that spend differently per sample are compared fairly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sal_plugins.errors import MissingDependencyError
from sal_plugins.eval.report import ArmSummary

__all__ = ["plot_accuracy_vs_budget"]


def plot_accuracy_vs_budget(
    summaries: Sequence[ArmSummary], path: str | Path, *, title: str = "Accuracy vs. budget"
) -> Path:
    """Draw accuracy (with 95% Wilson intervals) against generation calls and generated tokens.

    Args:
        summaries: the arms to draw (one line per strategy, one point per N).
        path: the PNG to write.
        title: the figure's title.

    Returns:
        The path written.

    Raises:
        MissingDependencyError: matplotlib is not installed (``pip install 'sal-plugins[eval]'``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
    except ImportError as error:
        raise MissingDependencyError("the accuracy plot", "eval") from error

    strategies = list(dict.fromkeys(s.strategy for s in summaries))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    panels = (
        ("generation_calls", "generation calls per problem"),
        ("completion_tokens", "generated tokens per problem"),
    )
    for axis, (attribute, label) in zip(axes, panels, strict=True):
        for strategy in strategies:
            rows = sorted((s for s in summaries if s.strategy == strategy), key=lambda s: s.n)
            xs = [max(getattr(s, attribute), 1e-9) for s in rows]
            ys = [s.accuracy for s in rows]
            errors = [[s.accuracy - s.ci_low for s in rows], [s.ci_high - s.accuracy for s in rows]]
            axis.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=strategy)
            for x, y, s in zip(xs, ys, rows, strict=True):
                axis.annotate(
                    f"N={s.n}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7
                )
        if any(getattr(s, attribute) > 0 for s in summaries):
            axis.set_xscale("log")
            axis.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.xaxis.set_major_formatter(ScalarFormatter())
            axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel(label)
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=120)
    plt.close(figure)
    return target
