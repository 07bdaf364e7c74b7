"""One look for every figure in the book: a seaborn theme, one colour per condition, and
titles that always say the profile and the number of seeds."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import pandas as pd
import seaborn as sns

#: One colour per condition, used by every chapter.
COLORS: dict[str, str] = {
    # chapter 01: architectures
    "fcn": "#4c72b0", "cnn": "#55a868", "deep_fcn": "#c44e52",
    # guidance: no guide grey, trained guide blue, untrained guide orange
    "no_guide": "#8c8c8c", "trained_guide": "#1f77b4", "untrained_guide": "#ff7f0e", "guide": "#2ca02c",
    # mimic: labels green, mimic purple
    "labels": "#2ca02c", "mimic": "#9467bd", "teacher": "#444444",
}


def set_theme() -> None:
    """The book's seaborn theme (call once per notebook)."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "axes.titleweight": "bold",
                         "figure.autolayout": False})


def run_label(records: list[dict[str, Any]]) -> str:
    """'profile full, 3 seeds': what every figure title must state."""
    profiles = sorted({r["profile"] for r in records})
    seeds = sorted({r["seed"] for r in records})
    return f"profile {', '.join(profiles)}, {len(seeds)} seed{'s' if len(seeds) != 1 else ''}"


def learning_curves(
    history: pd.DataFrame,
    metrics: tuple[str, ...],
    labels: dict[str, str],
    title: str,
    hue_order: list[str] | None = None,
    ncols: int = 2,
) -> plt.Figure:
    """One panel per metric: the mean over seeds as a line and the spread (min to max) as a band."""
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows), squeeze=False)
    order = hue_order or list(dict.fromkeys(history["name"]))
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    for ax, metric in zip(axes.flat, metrics):
        for name in order:
            sub = history[history["name"] == name]
            g = sub.groupby("epoch")[metric]
            mean, lo, hi = g.mean(), g.min(), g.max()
            color = COLORS.get(name)
            ax.plot(mean.index, mean.values, color=color, label=labels.get(name, name), lw=2)
            ax.fill_between(mean.index, lo.values, hi.values, color=color, alpha=0.2, lw=0)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric.replace("_", " "))
    axes.flat[0].legend(frameon=True, fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
