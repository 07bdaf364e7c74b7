"""One look for every figure in the book: a seaborn theme, one colour per condition, and
titles that always say the profile and the number of seeds. Notebooks draw every figure here, or, for the
guidance chapters' figures drawn from whole records, in :mod:`untrainable.figures_guidance`."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
from matplotlib.ticker import MaxNLocator
import numpy as np
import pandas as pd
import seaborn as sns
from scipy import stats

if TYPE_CHECKING:
    from untrainable.analysis.layer_comparison import LayerMatrix

__all__ = ["COLORS", "LINESTYLES", "set_theme", "run_label", "learning_curves", "alignment_curves", "mapping_figure",
           "accuracy_vs_size", "student_vs_teacher", "bottleneck_curves", "point_clouds", "measure_table",
           "error_vs_offset", "panel_grid", "legend_below", "layer_matrices", "time_per_call"]

#: One colour per condition, used by every chapter.
COLORS: dict[str, str] = {
    # chapter 01: architectures
    "fcn": "#4c72b0", "cnn": "#55a868", "deep_fcn": "#c44e52",
    # guidance: no guide grey, trained guide blue, untrained guide orange
    "no_guide": "#8c8c8c", "trained_guide": "#1f77b4", "untrained_guide": "#ff7f0e", "guide": "#2ca02c",
    "guide_alone": "#2ca02c",
    "trained_guide_init": "#9ecae1", "small_cnn_guide": "#17becf",
    # mimic: labels green, mimic purple, no convolution pink, deeper MLPs grey and olive
    "labels": "#2ca02c", "mimic": "#9467bd", "teacher": "#444444", "mimic_noconv": "#e377c2",
    "deep_mlp_labels": "#7f7f7f", "deep_mlp_mimic": "#bcbd22", "bottleneck": "#9467bd", "no_bottleneck": "#8c564b",
    "mimic_one": "#c5b0d5",
}
#: Dashed lines for the conditions that are controls of another family (the deeper MLPs of chapter 07).
LINESTYLES: dict[str, str] = {"deep_mlp_labels": "--", "deep_mlp_mimic": "--"}


def set_theme() -> None:
    """The book's look, once per notebook: the seaborn theme, tables through :func:`untrainable.pages.book_tables`
    and figures with alt text (:func:`untrainable.pages.book_figures`)."""
    from untrainable.pages import book_figures, book_tables

    book_tables()
    book_figures()
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "axes.titleweight": "bold",
                         "figure.autolayout": False})


def run_label(records: list[dict[str, Any]]) -> str:
    """'profile full, 3 seeds': what every figure title must state. Seeds are counted per run name
    (a condition), so a figure whose conditions have 5 and 3 seeds says '3 to 5 seeds per condition',
    never the 5 of the union."""
    profiles = sorted({r["profile"] for r in records})
    per_name: dict[str, set[int]] = {}
    for r in records:
        per_name.setdefault(r.get("name", ""), set()).add(r["seed"])
    counts = sorted({len(seeds) for seeds in per_name.values()}) or [0]
    if len(counts) > 1:
        return f"profile {', '.join(profiles)}, {counts[0]} to {counts[-1]} seeds per condition"
    return f"profile {', '.join(profiles)}, {counts[0]} seed{'s' if counts[0] != 1 else ''}"


def learning_curves(
    history: pd.DataFrame,
    metrics: tuple[str, ...],
    labels: dict[str, str],
    title: str,
    hue_order: list[str] | None = None,
    ncols: int = 2,
    marks: tuple[float, ...] = (),
    ylabels: dict[str, str] | None = None,
) -> plt.Figure:
    """One panel per metric: the mean over seeds as a line and the spread (min to max) as a band;
    ``marks`` draws a dotted vertical line at each of these epochs (e.g. where guidance stops);
    ``ylabels``: a metric's axis label with its unit (default: the metric's name)."""
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
        for x in marks:
            ax.axvline(x, color="k", ls=":", lw=1)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel((ylabels or {}).get(metric, metric.replace("_", " ")))
    axes.flat[0].legend(frameon=True, fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def alignment_curves(frame: pd.DataFrame, labels: dict[str, str], title: str, hue_order: list[str] | None = None,
                     references: tuple[str, ...] = ("trained", "untrained")) -> plt.Figure:
    """Linear CKA with a reference guide over training (left panels, mean over layer pairs) and per
    layer at the last epoch (right panels); mean over seeds as a line, min-to-max over seeds as a band.

    ``frame`` is long-form with columns name, seed, epoch, reference, depth, cka.
    """
    fig, axes = plt.subplots(len(references), 2, figsize=(10, 3.4 * len(references)), squeeze=False)
    order = hue_order or list(dict.fromkeys(frame["name"]))
    last = frame["epoch"].max()
    for row, ref in zip(axes, references):
        sub = frame[frame["reference"] == ref]
        for name in order:
            s = sub[sub["name"] == name]
            if s.empty:
                continue
            color = COLORS.get(name)
            per_seed = s.groupby(["seed", "epoch"])["cka"].mean().groupby("epoch")
            mean, lo, hi = per_seed.mean(), per_seed.min(), per_seed.max()
            row[0].plot(mean.index, mean.values, color=color, lw=2, label=labels.get(name, name))
            row[0].fill_between(mean.index, lo.values, hi.values, color=color, alpha=0.2, lw=0)
            end = s[s["epoch"] == last].groupby("depth")["cka"]
            mean, lo, hi = end.mean(), end.min(), end.max()
            row[1].plot(mean.index, mean.values, color=color, lw=2, marker="o", ms=3)
            row[1].fill_between(mean.index, lo.values, hi.values, color=color, alpha=0.2, lw=0)
        row[0].set(xlabel="epoch (0 = initialisation)", ylabel="CKA, mean over pairs", ylim=(0, 1),
                   title=f"with the {ref} guide, over training")
        row[1].set(xlabel="target layer (relative depth)", ylabel="CKA at the last epoch", ylim=(0, 1),
                   title=f"with the {ref} guide, per layer")
    axes[0][0].legend(frameon=True, fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def mapping_figure(guide_layers: list[str], target_layers: list[str], pairs: list[tuple[int, int]],
                   title: str, guide_name: str = "guide", target_name: str = "target") -> plt.Figure:
    """Two columns of layers (guide left, target right, first layer at the top) joined by the pairs."""
    n = max(len(guide_layers), len(target_layers))
    fig, ax = plt.subplots(figsize=(7.5, 0.22 * n + 1.6))
    gy = {i: 1 - i / max(len(guide_layers) - 1, 1) for i in range(len(guide_layers))}
    ty = {j: 1 - j / max(len(target_layers) - 1, 1) for j in range(len(target_layers))}
    for i, j in pairs:
        ax.plot([0, 1], [gy[i], ty[j]], color=COLORS["trained_guide"], alpha=0.6, lw=1)
    ax.scatter([0] * len(gy), list(gy.values()), color=COLORS["guide"], zorder=3, s=14)
    ax.scatter([1] * len(ty), list(ty.values()), color=COLORS["no_guide"], zorder=3, s=14)
    for i, name in enumerate(guide_layers):
        ax.text(-0.03, gy[i], name, ha="right", va="center", fontsize=7)
    for j, name in enumerate(target_layers):
        ax.text(1.03, ty[j], name, ha="left", va="center", fontsize=7)
    ax.text(0, 1.06, f"{guide_name} ({len(guide_layers)} layers)", ha="center", fontsize=9, weight="bold")
    ax.text(1, 1.06, f"{target_name} ({len(target_layers)} layers)", ha="center", fontsize=9, weight="bold")
    ax.set_xlim(-0.6, 1.6)
    ax.set_ylim(-0.05, 1.12)
    ax.axis("off")
    ax.set_title(title, pad=14)
    fig.tight_layout()
    return fig


def accuracy_vs_size(size: pd.DataFrame, teacher_acc: float, ensemble_acc: float, labels: dict[str, str],
                     title: str, deep_parameters: int | None = None) -> plt.Figure:
    """Test accuracy against parameters (log scale), one line per family: mean over seeds, bars min to max;
    the teacher and the ensemble as horizontal lines, and where ``deep_parameters`` is given the teacher also
    as a point at its own size (the deep net at equal parameters). ``size`` as
    :func:`untrainable.analysis.size_frame`."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    sizes = size["parameters"]
    if deep_parameters is not None:
        ax.plot([deep_parameters], [teacher_acc], marker="*", ms=14, ls="", color=COLORS["teacher"],
                label=f"deep teacher at its own size ({deep_parameters / 1e6:.2f} M parameters)")
        sizes = pd.concat([sizes, pd.Series([deep_parameters])])
    for family, g in size.groupby("family", sort=False):
        s = g.groupby("parameters")["test_acc"].agg(["mean", "min", "max"])
        ax.errorbar(s.index, s["mean"], yerr=[s["mean"] - s["min"], s["max"] - s["mean"]], marker="o", capsize=3,
                    color=COLORS.get(family), ls=LINESTYLES.get(family, "-"), label=labels.get(family, family))
    ax.axhline(teacher_acc, color=COLORS["teacher"], ls="--", label=f"deep teacher ({teacher_acc:.1f}%)")
    ax.axhline(ensemble_acc, color=COLORS["teacher"], ls=":", label=f"teacher ensemble ({ensemble_acc:.1f}%)")
    ax.set(xscale="log", xlabel="parameters (log scale)", ylabel="test accuracy (%)", title=title)
    _log_ticks(ax.xaxis, sizes)
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)  # below: never on a line
    return fig


def _log_ticks(axis: Any, values: pd.Series) -> None:
    """Labelled ticks on a log axis, in engineering units (600 k, 1 M): at 1, 2 and 5 of each decade, and
    at 1, 1.5, 2, 3, 4, 6 and 8 when the values span less than a decade and a half (1, 2 and 5 would leave
    one labelled tick between, say, 595 k and 1.9 M)."""
    span = np.log10(values.max() / values.min())
    subs = (1, 2, 5) if span >= 1.5 else (1, 1.5, 2, 3, 4, 6, 8)
    axis.set_major_locator(mticker.LogLocator(subs=subs, numticks=30))
    axis.set_major_formatter(mticker.EngFormatter(sep=" "))
    axis.set_minor_formatter(mticker.NullFormatter())


def student_vs_teacher(quality: pd.DataFrame, title: str) -> plt.Figure:
    """Student against teacher test accuracy, one line per student width (shades of the mimic colour),
    with y = x dashed: a student on it matches its teacher. ``quality`` as :func:`untrainable.analysis.quality_frame`."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    shades = sns.light_palette(COLORS["mimic"], quality["width"].nunique() + 1)[1:]
    sns.lineplot(data=quality, x="teacher_test_acc", y="test_acc", hue="width", marker="o", errorbar=("pi", 100),
                 palette=shades, ax=ax, legend="full")
    values = quality[["test_acc", "teacher_test_acc"]]
    lim = [values.min().min() - 2, values.max().max() + 2]
    ax.plot(lim, lim, ls="--", color="grey", lw=1)
    ax.set(xlabel="teacher test accuracy (%)", ylabel="student test accuracy (%)", title=title)
    ax.legend(title="student width")
    return fig


def bottleneck_curves(records: list[dict[str, Any]], title: str) -> plt.Figure:
    """Test accuracy per epoch (left) and per second of training (right) for each named run, mean over seeds."""
    history = pd.DataFrame([{"name": r["name"], "seed": r["seed"], "parameters": r["metrics"]["parameters"], **h}
                            for r in records for h in r["history"]])
    history["seconds"] = history.groupby(["name", "seed"])["epoch_time_s"].cumsum()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for name, g in history.groupby("name", sort=False):
        label = f"{name.replace('_', ' ')} ({int(g['parameters'].iloc[0]):,} params)"
        for ax, x in zip(axes, ("epoch", "seconds")):
            m = g.groupby("epoch")[[x, "test_acc"]].mean()
            ax.plot(m[x], 100 * m["test_acc"], marker="o", color=COLORS.get(name), label=label)
    axes[0].set(xlabel="epoch", ylabel="test accuracy (%)")
    axes[1].set(xlabel="training time (s, this machine)")
    axes[0].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def point_clouds(original: np.ndarray, copies: dict[str, np.ndarray], colour: np.ndarray, title: str) -> plt.Figure:
    """A 2-D point cloud and its transformed copies side by side, each point coloured by ``colour``
    (the same in every panel, so a point can be followed from one panel to the next)."""
    clouds = {"original": original, **copies}
    fig, axes = plt.subplots(1, len(clouds), figsize=(2.5 * len(clouds), 2.8))
    for ax, (name, points) in zip(axes, clouds.items()):
        ax.scatter(points[:, 0], points[:, 1], c=colour, cmap="viridis", s=6)
        ax.set_title(name, fontsize="small")
        ax.set(xticks=[], yticks=[])
        ax.set_aspect("equal", "datalim")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def measure_table(table: pd.DataFrame, title: str) -> plt.Figure:
    """A table of similarities in [0, 1] as an annotated heatmap (darker: more similar)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    sns.heatmap(table, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="rocket_r", cbar=False, ax=ax)
    ax.set_title(title)
    return fig


def error_vs_offset(errors: pd.DataFrame, title: str) -> plt.Figure:
    """Errors against float64 per common offset (index), one line per formulation, both axes logarithmic
    (the offset axis linear around 0, so that offset 0 has a place)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    errors.plot(logy=True, marker="o", ax=ax)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=-0.2)  # offsets are never negative: no empty negative half of the axis
    ax.set(ylabel="|CKA - float64 CKA|", title=title)
    return fig


def panel_grid(n: int, columns: int, panel_size: tuple[float, float], **kw: Any) -> tuple[plt.Figure, list[plt.Axes]]:
    """``n`` panels in rows of at most ``columns``, each ``panel_size`` inches, spare axes removed: a figure
    of many panels side by side is shrunk to the page's width (about 7.5 inches at the book's dpi) until
    its labels cannot be read. ``kw`` goes to ``plt.subplots`` (``sharey``, ``layout``)."""
    cols = min(n, columns)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel_size[0] * cols, panel_size[1] * rows), squeeze=False, **kw)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.remove()
    return fig, flat[:n]


def legend_below(ax: plt.Axes, ncol: int = 1, wrap: int = 60) -> None:
    """The panel's legend under it, never over a curve, each label wrapped at ``wrap`` characters so that
    the legend is no wider than the panel (a wider one squeezes the panel in a constrained layout)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, [textwrap.fill(label, wrap) for label in labels], fontsize="small", ncol=ncol,
                  loc="upper left", bbox_to_anchor=(0, -0.2))


def layer_matrices(panels: Sequence[LayerMatrix], title: str, annotated: bool = False) -> plt.Figure:
    """One heatmap per panel, rows and columns labelled by layer.

    ``annotated``: values in [0, 1] written in each cell, one panel per row so that the numbers stay
    readable at the page's width (for the CKA heatmaps); otherwise square cells, two panels per row,
    each with its own colour bar and a distance drawn with the colour map reversed (for comparing
    measures of different ranges).
    """
    fig, axes = (panel_grid(len(panels), 1, (7.0, 5.2)) if annotated else panel_grid(len(panels), 2, (5.0, 5.2)))
    for ax, p in zip(axes, panels):
        style = (dict(vmin=0, vmax=1, cmap="magma", annot=True, fmt=".2f", annot_kws={"fontsize": 9}, cbar=False)
                 if annotated else dict(cmap="rocket_r" if p.distance else "rocket", square=True,
                                        cbar_kws={"shrink": 0.7}))
        sns.heatmap(p.values, ax=ax, xticklabels=p.columns, yticklabels=p.rows, **style)
        ax.set(xlabel=p.xlabel, ylabel=p.ylabel)
        ax.set_title(p.title, fontsize="medium")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def time_per_call(cells: pd.DataFrame, methods: Sequence[str], title: str) -> plt.Figure:
    """Seconds per call against the number of features, one panel per number of examples ``n`` (two per
    row) and one line per method (``cells`` has columns n, d and ``<method>_s``)."""
    groups = list(cells.groupby("n"))
    fig, axes = panel_grid(len(groups), 2, (5.0, 3.8), sharey=True)
    for ax, (n, sub) in zip(axes, groups):
        for method, style in zip(methods, ["-o", "--s", "--^", ":x"]):
            ax.plot(sub["d"], sub[f"{method}_s"], style, label=method)
        ax.set(xscale="log", yscale="log", title=f"n = {n}", xlabel="features d", ylabel="seconds per call")
        ax.set_xscale("log", base=2)
    axes[0].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _t_interval(values: pd.Series) -> tuple[float, float]:
    """The 95 % interval of the mean by Student's t (the tables' test), not seaborn's bootstrap; one
    value has none."""
    if len(values) < 2:
        return (values.mean(), values.mean())
    return stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))


def transfer_methods(frame: pd.DataFrame, labels: dict[str, str], title: str) -> plt.Figure:
    """Chapter 08: each method's test accuracy with the trained and the untrained teacher (mean and 95 %
    interval over seeds; seeds as dots), the labels alone as a grey band (its mean ± one SD) across
    both. ``frame`` as :func:`untrainable.analysis.method_frame`; ``labels``: method -> display name.
    Guidance is the paper's, linear CKA: the distance study's runs (other distances) are left out, not
    pooled with it. The interval is Student's t over seeds, as in the chapter's tables."""
    frame = frame[(frame["method"] != "guidance") | (frame["distance"] == "linear_cka")]
    base = frame[frame["method"] == "labels"]["accuracy"]
    rest = frame[frame["method"] != "labels"].assign(method=lambda f: f["method"].map(labels))
    order = [labels[m] for m in labels if m != "labels" and labels[m] in set(rest["method"])]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    if len(base):
        spread = base.std(ddof=1) if len(base) > 1 else 0.0
        ax.axhspan(base.mean() - spread, base.mean() + spread, color="grey", alpha=0.2, lw=0)
        ax.axhline(base.mean(), color="grey", lw=1, label=f"labels alone ({base.mean():.1f} %)")
    sns.pointplot(data=rest, x="method", y="accuracy", hue="teacher", order=order, hue_order=["trained", "untrained"],
                  errorbar=_t_interval, dodge=0.35, linestyle="none", markers="D", ax=ax)
    sns.stripplot(data=rest, x="method", y="accuracy", hue="teacher", order=order, hue_order=["trained", "untrained"],
                  dodge=True, alpha=0.4, size=4, ax=ax, legend=False)
    ax.set(xlabel="", ylabel="test accuracy (%) at the epoch of\nhighest validation accuracy", title=title)
    ax.tick_params(axis="x", labelrotation=15)
    ax.legend(title="teacher", fontsize="small")
    fig.tight_layout()
    fig.text(0.01, -0.02, "Diamonds: mean over seeds; error bars: 95 % CI over seeds (Student's t);\n"
             "dots: one seed each; grey band: the labels alone, mean ± one SD over seeds.", fontsize="small", va="top")
    return fig
