"""The guidance chapters' figures that read records rather than one history frame (chapters 04, 05, 06).

Each function takes the records a chapter already holds and draws what they store, nothing
recomputed: the parts of a guided run's training loss per epoch (:func:`loss_decomposition`), every
guide layer against every target layer at initialisation and after training (:func:`cka_heatmaps`,
from a record's ``cka_grid``), chapter 06's alignment over training (:func:`sequence_alignment`)
and its learning curves with accuracies in % (:func:`sequence_curves`). A record that lacks what a
figure needs is named in the error (or, for the grids, in a printed sentence saying how to make it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator
from scipy import stats

from untrainable.plotting import COLORS, learning_curves, run_label
from untrainable.results import history_frame

__all__ = ["UNDEFINED_NOTE", "REFERENCES", "SEQUENCE_AXES", "pick", "short_layer", "loss_decomposition",
           "missing_grids", "cka_heatmaps", "t_band", "sequence_alignment_frame", "sequence_alignment",
           "sequence_curves", "depth_map"]

#: How a None CKA (a layer constant over the probe set, ``0/0``) is drawn and named in the legend.
UNDEFINED_NOTE = "undefined (constant layer)"
#: The reference guides every image and sequence run is probed against.
REFERENCES: tuple[str, ...] = ("trained", "untrained")
#: Layer-name abbreviations for heatmap axes, applied in order (ResNet, FCN and sequence nets' names).
_SHORT: tuple[tuple[str, str], ...] = (("downsample", "ds"), ("features.", "f"), ("layers.", "l"), ("layer", "L"),
                                      ("conv", "c"), ("avgpool", "pool"))
#: Axis labels of chapter 06's learning curves: one unit per axis.
SEQUENCE_AXES = {"valid_acc": "validation accuracy (%)", "valid_loss": "validation loss (nats per token)",
                 "train_acc": "training accuracy (%)", "train_loss": "training loss (nats per token)",
                 "test_acc": "test accuracy (%)", "test_loss": "test loss (nats per token)"}


def pick(records: Sequence[dict[str, Any]], name: str, seed: int) -> dict[str, Any]:
    """The record named ``name`` of seed ``seed``; a clear error listing what there is when it is missing."""
    for r in records:
        if r["name"] == name and r["seed"] == seed:
            return r
    there = sorted({(r["name"], r["seed"]) for r in records})
    raise LookupError(f"no record {name!r} of seed {seed} among these records: {there}")


def short_layer(name: str) -> str:
    """A layer's name short enough for a heatmap axis ('layer2.0.downsample.0' -> 'L2.0.ds.0')."""
    for long, short in _SHORT:
        name = name.replace(long, short)
    return name


# ----------------------------------------------------------------------------- the loss, part by part


def loss_decomposition(records: Sequence[dict[str, Any]], name: str, run: str, seed: int = 0) -> plt.Figure:
    """A guided run's training loss per epoch and its two parts: the task loss (cross-entropy) and the
    guidance term as the loss adds it, alpha x the epoch's mean over mini-batches of the summed pair
    distances (for linear CKA, sum of 1 - CKA over the mapped pairs; a pair constant over a batch counts 1).

    The sum is drawn from the two logged parts, so the run must be guided in every epoch (a run guided
    for its first steps only has no guidance term after them): such a run is refused, by name.
    ``run`` describes the run for the title (which also gives the profile and the seed).
    """
    r = pick(records, name, seed)
    history = pd.DataFrame(r["history"])
    if "guidance_term" not in history or history["guidance_term"].isna().any():
        raise ValueError(f"{name} seed {seed} has no guidance term in every epoch (unguided, or guided for its "
                         "first steps only): the loss has no two parts to draw")
    c = r["config"]
    alpha, pairs = c["alpha"], len(r.get("pairs") or history["pair_distance"].iloc[0])
    term = "1 − CKA" if c.get("distance", "linear_cka") == "linear_cka" else f"{c['distance']} distance"
    guidance = alpha * history["guidance_term"]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.plot(history["epoch"], history["train_task_loss"], color=COLORS["no_guide"], lw=2,
            label="task loss (cross-entropy)")
    ax.plot(history["epoch"], guidance, color=COLORS["trained_guide"], lw=2,
            label=f"guidance term: alpha × Σ ({term}) over {pairs} pairs, alpha = {alpha:g}")
    ax.plot(history["epoch"], history["train_task_loss"] + guidance, color="k", lw=2, ls="--",
            label="training loss (their sum)")
    ax.set(xlabel="epoch", ylabel="loss, mean over the epoch's mini-batches", ylim=(0, None),
           title=f"{run}: the training loss and its parts\n(profile {r['profile']}, seed {seed})")
    ax.legend(fontsize="small", frameon=True)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- CKA of every layer pair


def missing_grids(records: Sequence[dict[str, Any]], module: str) -> str:
    """The sentence a page prints when ``records`` lack the ``cka_grid`` a heatmap needs ('' when none does):
    which runs, and the command of ``module``, the chapter's shell entry, that trains them."""
    lacking = [r for r in records if "cka_grid" not in r]
    if not lacking:
        return ""
    runs = " ".join(f"{r['config'].get('target')}/{r['config']['condition']}" for r in lacking)
    seeds = " ".join(str(s) for s in sorted({r["seed"] for r in lacking}))
    names = ", ".join(f"{r['name']} seed {r['seed']}" for r in lacking)
    profile = _one_profile(lacking)
    return (f"No CKA grid to draw: {names} (profile {profile}) "
            "were trained before runs stored the CKA of every layer pair. A run stores it when it trains: "
            f"`python -m {module} --profile {profile} --stage runs --runs {runs} --seeds {seeds}` trains these runs "
            "when their records are missing from the store (a stored record is loaded as it is; the notebook's "
            "force=True retrains every run of the chapter).")


def cka_heatmaps(records: Sequence[dict[str, Any]], names: tuple[str, str], seed: int, run: str,
                 module: str) -> plt.Figure | None:
    """Linear CKA of every target layer (rows) with every guide layer (columns) at initialisation (top)
    and after training (bottom), for the run guided by the trained guide (left) and by the untrained one
    (right), each against its own guide; one colour scale, 0 to 1. A None CKA (a layer constant over the
    probe set) is a grey hatched cell.

    ``names``: the trained-guide and the untrained-guide run. When one lacks ``cka_grid`` (records
    trained before it was stored) nothing is drawn: :func:`missing_grids` is printed, with the command of
    ``module`` (the chapter's shell entry) that makes them, and None returned, so that a page built from
    older records still builds.
    """
    runs = [pick(records, n, seed) for n in names]
    missing = missing_grids(runs, module)
    if missing:
        print(missing)
        return None
    first = runs[0]["cka_grid"]["initial"]["trained"]
    rows, cols = len(first["target_layers"]), len(first["guide_layers"])
    fig, axes = plt.subplots(2, 2, figsize=(11, max(6.0, 1.5 + 0.3 * rows)), squeeze=False, constrained_layout=True)
    image = None
    for col, (r, ref) in enumerate(zip(runs, REFERENCES)):
        for row, when in enumerate(("initial", "final")):
            grid = r["cka_grid"][when][ref]
            image = _heatmap(axes[row][col], grid)
            moment = "at initialisation" if when == "initial" else "after training"
            axes[row][col].set_title(f"the net guided by the {ref} guide, against that guide,\n{moment}",
                                     fontsize="medium")
    fig.colorbar(image, ax=axes, shrink=0.6, label="linear CKA")
    if _has_undefined(runs):
        fig.legend(handles=[Patch(facecolor="lightgrey", hatch="///", edgecolor="grey", label=UNDEFINED_NOTE)],
                   loc="lower center", bbox_to_anchor=(0.5, -0.04), fontsize="small")
    fig.suptitle(f"{run}: CKA of every target layer with every guide layer "
                 f"(profile {_one_profile(runs)}, seed {seed}; {rows} target × {cols} guide layers)")
    return fig


def _has_undefined(records: Sequence[dict[str, Any]]) -> bool:
    """Whether any grid of ``records`` has a None CKA (then the figure's legend says what grey hatching is)."""
    grids = [grid for r in records for moment in r["cka_grid"].values() for grid in moment.values()]
    return any(v is None for grid in grids for line in grid["cka"] for v in line)


def _one_profile(records: Sequence[dict[str, Any]]) -> str:
    """The profile of ``records``, all of one (a figure never mixes profiles)."""
    profiles = sorted({r["profile"] for r in records})
    if len(profiles) != 1:
        raise ValueError(f"records of several profiles in one figure: {profiles}")
    return profiles[0]


def _heatmap(ax: plt.Axes, grid: dict[str, Any]) -> Any:
    """One grid as target layers x guide layers, colour 0 to 1, None cells grey and hatched."""
    values = np.array([[np.nan if v is None else v for v in line] for line in grid["cka"]], dtype=float).T
    image = ax.imshow(np.ma.masked_invalid(values), vmin=0, vmax=1, cmap=plt.get_cmap("magma").with_extremes(
        bad="lightgrey"), aspect="auto", interpolation="nearest")
    for t, g in zip(*np.nonzero(np.isnan(values))):
        ax.add_patch(Rectangle((g - 0.5, t - 0.5), 1, 1, fill=False, hatch="///", edgecolor="grey", lw=0))
    ax.set_xticks(range(len(grid["guide_layers"])), [short_layer(n) for n in grid["guide_layers"]],
                  rotation=90, fontsize=6)
    ax.set_yticks(range(len(grid["target_layers"])), [short_layer(n) for n in grid["target_layers"]], fontsize=6)
    ax.set(xlabel="guide layer", ylabel="target layer")
    ax.grid(False)
    return image


# ----------------------------------------------------------------------------- chapter 06


def t_band(values: pd.Series) -> tuple[float, float, float]:
    """Mean and the 95 % interval of the mean by Student's t over seeds (the tables' test); one seed has
    no interval (its bounds are its value)."""
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(values) - 1) * stats.sem(values))
    return mean, mean - half, mean + half


def sequence_alignment_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Long-form mean CKA of the mapped pairs of chapter 06's target runs: columns name, seed, setting,
    reference, epoch, cka, source.

    Two measurements, kept apart by ``source``: ``probe`` is the probe set of validation sequences at
    initialisation (epoch 0) and after the last epoch, against both reference guides, for every
    condition; ``loss`` is 1 - the pair distance the loss logs, per epoch over its training batches,
    against the run's own guide only (the sequence runs store no per-epoch probe). Runs without probes
    (the guide alone) are left out.
    """
    rows = []
    for r in records:
        if "final_cka" not in r:
            continue
        base = {"name": r["name"], "seed": r["seed"], "setting": r["config"]["setting"]}
        last = r["history"][-1]["epoch"]
        for ref in REFERENCES:
            for epoch, values in ((0, r["initial_cka"][ref]), (last, r["final_cka"][ref])):
                defined = [v for v in values if v is not None]
                if defined:
                    rows.append({**base, "reference": ref, "epoch": epoch, "cka": float(np.mean(defined)),
                                 "source": "probe"})
        own = r["config"]["condition"].split("_")[0]
        rows += [{**base, "reference": own, "epoch": h["epoch"], "cka": 1 - float(np.mean(h["pair_distance"])),
                  "source": "loss"} for h in r["history"] if "pair_distance" in h]
    return pd.DataFrame(rows, columns=["name", "seed", "setting", "reference", "epoch", "cka", "source"])


def sequence_alignment(records: Sequence[dict[str, Any]], labels: dict[str, str], title: str,
                       hue_order: Sequence[str] = ("no_guide", "trained_guide", "untrained_guide")) -> plt.Figure:
    """Chapter 06's mean CKA of the mapped pairs over training, one column per task and one row per
    reference guide: lines, the CKA in the loss per epoch on training batches (a guided run, its own
    guide); markers with error bars, the probe set at initialisation and after training (every
    condition). Mean and 95 % CI over seeds (Student's t); n, the seeds of each condition, in the legend.
    ``records`` as :func:`sequence_alignment_frame` reads them; ``labels``: condition and setting names.
    """
    frame = sequence_alignment_frame(records)
    if frame.empty:
        raise ValueError("no target run with CKA probes among these records (the guide alone has none)")
    settings = list(dict.fromkeys(frame["setting"]))
    fig, axes = plt.subplots(len(REFERENCES), len(settings), figsize=(4.4 * len(settings), 3.4 * len(REFERENCES)),
                             squeeze=False, sharey=True, constrained_layout=True)
    for row, ref in zip(axes, REFERENCES):
        for ax, setting in zip(row, settings):
            sub = frame[(frame["setting"] == setting) & (frame["reference"] == ref)]
            _alignment_panel(ax, sub, [n for n in hue_order if n in set(sub["name"])], labels)
            ax.set_title(f"{labels.get(setting, setting)}\nwith the {ref} guide", fontsize="small")
            ax.set(xlabel="epoch (0 = initialisation)", ylim=(0, 1))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        row[0].set_ylabel("CKA, mean over mapped pairs")
    fig.suptitle(f"{title} (profile {_one_profile(records)})\nmean and 95 % CI over seeds (Student's t), n per "
                 "condition in each legend\nlines: CKA in the loss (training batches, the run's own guide); "
                 "markers: the probe set of validation sequences")
    return fig


def _alignment_panel(ax: plt.Axes, sub: pd.DataFrame, order: Sequence[str], labels: dict[str, str]) -> None:
    """One task against one reference: per condition, a line with a band where the loss logged CKA, and
    a marker with an error bar at each probe epoch."""
    for k, name in enumerate(order):
        s = sub[sub["name"] == name]
        color, n = COLORS.get(name), s["seed"].nunique()
        ax.plot([], [], color=color, marker="o", label=f"{labels.get(name, name)} (n = {n})")
        loss = s[s["source"] == "loss"].groupby("epoch")["cka"].apply(t_band)
        if len(loss):
            mean, lo, hi = (np.array([b[i] for b in loss]) for i in range(3))
            ax.plot(loss.index, mean, color=color, lw=2)
            ax.fill_between(loss.index, lo, hi, color=color, alpha=0.2, lw=0)
        probe = s[s["source"] == "probe"].groupby("epoch")["cka"].apply(t_band)
        x = np.array(probe.index, dtype=float) + 0.08 * (k - (len(order) - 1) / 2)  # side by side, not on top
        mean, lo, hi = (np.array([b[i] for b in probe]) for i in range(3))
        ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], color=color, marker="o", ls="none", capsize=3)
    if order:  # a panel with nothing measured (every probe value undefined) has no legend to draw
        ax.legend(fontsize="x-small", loc="best")


def sequence_curves(records: Sequence[dict[str, Any]], labels: dict[str, str], title: str,
                    metrics: tuple[str, ...] = ("valid_acc", "valid_loss"),
                    hue_order: Sequence[str] | None = None) -> plt.Figure:
    """Chapter 06's learning curves: accuracies in % on a 0-100 axis, each axis in one unit, and each
    condition's number of seeds in its legend entry (the title counts them as
    :func:`~untrainable.plotting.run_label` does, per condition)."""
    history = history_frame(list(records))
    percent = [m for m in metrics if m.endswith("_acc")]
    history[percent] = history[percent] * 100
    seeds = history.groupby("name")["seed"].nunique()
    counted = {name: f"{labels.get(name, name)} (n = {n})" for name, n in seeds.items()}
    fig = learning_curves(history, metrics, counted, f"{title} ({run_label(list(records))})",
                          hue_order=list(hue_order) if hue_order else None,
                          ylabels={m: SEQUENCE_AXES.get(m, m.replace("_", " ")) for m in metrics})
    for ax, metric in zip(fig.axes, metrics):
        if metric in percent:
            ax.set_ylim(0, 100)
    return fig


def depth_map(frame: pd.DataFrame, labels: dict[str, str], title: str, chance: float = 10.0) -> plt.Figure:
    """The depth map (:func:`untrainable.analysis.depth_tables.depth_frame`): best train accuracy (left: does
    the net train at all?) and the book's estimate of test accuracy (right) against depth, one line per
    condition (dashed: without BatchNorm, where the records hold such nets), the mean over seeds with a bar from
    the lowest to the highest seed; chance dotted."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for ax, column in zip(axes, ("best train acc (%)", "test acc (%)")):
        for (condition, bn), sub in frame.groupby(["condition", "batch_norm"], sort=False):
            stat = sub.groupby("depth")[column].agg(["mean", "min", "max"])
            name = labels.get(condition, condition) + ("" if bn else " (no BatchNorm)")
            ax.errorbar(stat.index, stat["mean"], yerr=[stat["mean"] - stat["min"], stat["max"] - stat["mean"]],
                        marker="o", capsize=3, color=COLORS.get(condition), linestyle="-" if bn else "--",
                        label=name)
        ax.axhline(chance, color="#444444", linestyle=":", linewidth=1, label="chance")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(frame["depth"].unique()), [str(d) for d in sorted(frame["depth"].unique())])
        ax.minorticks_off()
        ax.set(xlabel="depth (hidden layers)", ylabel=column.replace("acc", "accuracy"), ylim=(0, 100))
    axes[0].legend(frameon=False, fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
