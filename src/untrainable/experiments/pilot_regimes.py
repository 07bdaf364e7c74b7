"""Choosing the regime of each image claim from the pilot records alone (appendix 92).

The pilots (:mod:`.image_pilots`) train the controls and the guides, never a guided run. For each
claim of chapters 04 and 05 a *cell* is one control setting (depth, training images); inside a
cell the learning rate is chosen on validation by the book's criterion (:data:`SELECTION`; the pilots
first chose by the validation loss, as the paper did: :func:`criterion_changes`). A cell qualifies when its
control shows the failure guidance cures (:mod:`untrainable.analysis.preconditions`) and the guide
trained on the same images beats the control; the chosen regime is the cheapest qualifying cell
(least measured training time). If none qualifies the claim is "not testable here", and the
reason lists what was tried.

The guide of the two FCNs is the ResNet-18 trained on the cell's images (the one trained on every
image is a separate condition and takes no part in the choice); the plain ConvNet's guide is its
residual twin, trained as the control is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from untrainable.analysis.chapter_tables import cell_change_text
from untrainable.analysis.selection import BOOK_CRITERION, LOSS_CRITERION, Criterion, choose
from untrainable.plotting import legend_below, panel_grid
from untrainable.analysis.preconditions import (CheckedPrecondition, falls_short_of_twin, fails_to_train,
                                                guide_beats_target, loss_rise, overfits)

__all__ = ["CLAIMS", "SELECTION", "FIRST_SELECTION", "Regime", "cells", "chosen_lr", "choose_regimes", "regime_table",
           "regime_summary", "criterion_changes", "criterion_summary", "pilot_table", "guide_table", "pilot_figure"]

#: The claims whose regime the pilots choose: claim -> (control groups, model, label).
CLAIMS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "deep_fcn": (("deep_fcn",), "deep_fcn", "Deep FCN (chapter 04)"),
    "wide_fcn": (("wide_fcn",), "wide_fcn", "Wide FCN (chapter 04)"),
    "plain_cnn": (("convnets", "convnets_aug", "deeper_convnets", "convnets_long"), "plain_cnn",
                  "plain ConvNet (chapter 05)"),
}
#: A cell: (group, FCN depth or 0, ConvNet blocks or 0, training images).
Cell = tuple[str, int, int, "int | None"]


@dataclass(frozen=True)
class Regime:
    """One claim's candidate cell, its checks, and whether it is the chosen regime."""

    claim: str
    cell: str  # e.g. "24x512, 5000 images"
    control: str  # the run name at the chosen learning rate
    guide: str  # the guide's run name ("" without one)
    control_check: CheckedPrecondition
    guide_check: CheckedPrecondition
    minutes: float  # the control's training time at the chosen learning rate (mean over seeds)
    chosen: bool = False

    @property
    def qualifies(self) -> bool:
        """The control shows its failure and the guide beats it."""
        return self.control_check.holds and self.guide_check.holds


#: Config fields a record may lack (grids made before they varied), with the value they then had.
_DEFAULTS = {"layers": (), "augment": False}
#: How a pilot cell's learning rate is chosen (:func:`untrainable.analysis.selection.choose`): the book's
#: criterion. The pilots first chose by :data:`FIRST_SELECTION` (the paper's); :func:`criterion_changes` shows
#: what the switch moved, from the same records (no pilot was retrained).
SELECTION = BOOK_CRITERION
FIRST_SELECTION = LOSS_CRITERION


def _config(r: dict[str, Any], field: str) -> Any:
    return r["config"].get(field, _DEFAULTS[field]) if field in _DEFAULTS else r["config"][field]


def _of(records: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    return [r for r in records if all(_config(r, k) == v for k, v in where.items())]


def cells(records: list[dict[str, Any]], groups: tuple[str, ...], model: str) -> dict[Cell, list[dict[str, Any]]]:
    """The records of one control, by cell (group, depth, blocks, training images), in grid order."""
    out: dict[Cell, list[dict[str, Any]]] = {}
    for r in [r for r in records if _config(r, "group") in groups and _config(r, "model") == model]:
        key = (_config(r, "group"), _config(r, "depth"), sum(_config(r, "layers")), _config(r, "n_train"))
        out.setdefault(key, []).append(r)
    return out


def chosen_lr(records: list[dict[str, Any]], criterion: Criterion = SELECTION) -> list[dict[str, Any]]:
    """The records (all seeds) of the learning rate that did best on validation under ``criterion``."""
    best = choose(records, lambda r: _config(r, "lr"), criterion)
    return [r for r in records if _config(r, "lr") == best]


def _cell_label(r: dict[str, Any]) -> str:
    """'12x512, 2000 training images' or '34 layers of width 16, crop and flip, 5000 training images'."""
    depth, blocks, width = _config(r, "depth"), sum(_config(r, "layers")), _config(r, "width")
    shape = f"{depth}x{width}" if depth else f"{2 * blocks + 2} layers of width {width}"
    aug = ", crop and flip" if _config(r, "augment") else ""
    longer = f", {_config(r, 'epochs')} epochs with a step schedule" if _config(r, "group") == "convnets_long" else ""
    return f"{shape}{aug}{longer}, {_config(r, 'n_train') or 'all'} training images"


def _control_check(claim: str, control: list[dict[str, Any]], records: list[dict[str, Any]], n_train: int | None,
                   residual: list[dict[str, Any]], criterion: Criterion) -> CheckedPrecondition:
    """The failure the claim's control must show (the Deep FCN: overfitting, else failing to train)."""
    if claim == "plain_cnn":
        return falls_short_of_twin(control, residual)
    over = overfits(control, f"the {claim.replace('_', ' ')}")
    if claim == "wide_fcn" or over.holds:
        return over
    shallow = _of(records, group="shallow_fcn", n_train=n_train)
    fails = fails_to_train(control, chosen_lr(shallow, criterion) if shallow else [], "the Deep FCN")
    return fails if fails.holds else CheckedPrecondition(
        "the Deep FCN overfits or fails to train", False, f"{over.detail}; {fails.detail}",
        {**over.numbers, **fails.numbers})


def _candidates(claim: str, records: list[dict[str, Any]], criterion: Criterion) -> list[Regime]:
    groups, model, _ = CLAIMS[claim]
    out = []
    for (group, depth, _, n_train), runs in cells(records, groups, model).items():
        control = chosen_lr(runs, criterion)
        twin_runs = _of(records, group=group, model="residual_cnn", n_train=n_train)
        residual = chosen_lr(twin_runs, criterion) if twin_runs else []
        guides = residual if claim == "plain_cnn" else _of(records, group="guides", n_train=n_train)
        out.append(Regime(
            claim, _cell_label(control[0]), control[0]["name"],
            guides[0]["name"] if guides else "", _control_check(claim, control, records, n_train, residual, criterion),
            guide_beats_target(guides, control, "the residual twin" if claim == "plain_cnn" else "the guide"),
            sum(r["wall_time_s"] for r in control) / len(control) / 60))
    return out


def choose_regimes(records: list[dict[str, Any]], criterion: Criterion = SELECTION) -> list[Regime]:
    """Every candidate cell of every claim, each at the learning rate ``criterion`` chooses, the cheapest
    qualifying one per claim marked ``chosen``."""
    out = []
    for claim in CLAIMS:
        candidates = sorted(_candidates(claim, records, criterion), key=lambda r: r.minutes)
        first = next((r for r in candidates if r.qualifies), None)
        out += [replace(r, chosen=r is first) for r in candidates]
    return out


def regime_table(regimes: list[Regime]) -> pd.DataFrame:
    """One row per candidate cell: claim, cell, control and guide checks with their details, minutes, chosen."""
    return pd.DataFrame([{"claim": CLAIMS[r.claim][2], "cell": r.cell, "control": r.control,
                          "control shows its failure": r.control_check.status, "why": r.control_check.detail,
                          "guide beats it": r.guide_check.status, "guide": r.guide_check.detail,
                          "minutes": round(r.minutes, 1), "chosen": "yes" if r.chosen else ""} for r in regimes])


def regime_summary(regimes: list[Regime]) -> str:
    """Markdown: per claim, the chosen regime and why, or "not testable here" with what was tried."""
    lines = []
    for claim, (_, _, label) in CLAIMS.items():
        mine = [r for r in regimes if r.claim == claim]
        chosen = next((r for r in mine if r.chosen), None)
        if chosen is not None:
            lines.append(f"* **{label}**: {chosen.cell} (`{chosen.control}`), the cheapest of "
                         f"{sum(r.qualifies for r in mine)} qualifying cell(s) out of {len(mine)}. "
                         f"{chosen.control_check}. {chosen.guide_check}.")
        else:
            tried = "; ".join(f"{r.cell}: {r.control_check.status} / guide {r.guide_check.status}" for r in mine)
            lines.append(f"* **{label}**: not testable here; tried {tried or 'nothing (no pilot records)'}.")
    return "\n".join(lines)


def criterion_changes(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Per claim and cell, the learning rate :data:`SELECTION` chooses and the one :data:`FIRST_SELECTION` chose,
    and whether each criterion's regime choice picks the cell: what switching to the book's criterion moved."""
    book, first = choose_regimes(records, SELECTION), choose_regimes(records, FIRST_SELECTION)
    firsts = {(r.claim, r.cell): r for r in first}
    rows = []
    for r in book:
        f = firsts[r.claim, r.cell]
        rows.append({"claim": CLAIMS[r.claim][2], "cell": r.cell, "lr now": _lr(r.control, records),
                     "lr first": _lr(f.control, records), "chosen now": "yes" if r.chosen else "",
                     "chosen first": "yes" if f.chosen else ""})
    return pd.DataFrame(rows, columns=["claim", "cell", "lr now", "lr first", "chosen now", "chosen first"])


def _lr(name: str, records: list[dict[str, Any]]) -> float:
    """The learning rate of the run called ``name``."""
    return next(_config(r, "lr") for r in records if r["name"] == name)


def criterion_summary(changes: pd.DataFrame) -> str:
    """A sentence from :func:`criterion_changes`: how many cells' learning rates the book's criterion moved, and
    whether any claim's regime choice moved with them."""
    return cell_change_text(changes, SELECTION, FIRST_SELECTION, group="claim", lr="lr",
                            choosing="Choosing each cell's learning rate", rate="learning rate", regime="regime",
                            stands="every chosen cell is the one the first criterion chose",
                            both="the table shows both choices")


def pilot_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per pilot run (means over seeds): the curves' minimum and rises, final and best-checkpoint
    accuracies (%), and the training minutes."""
    rows = [{"group": _config(r, "group"), "run": r["name"], "seeds": 1,
             "min valid loss": r["metrics"]["min_valid_loss"], "valid rise": loss_rise(r, "valid"),
             "test rise": loss_rise(r, "test"), "final train acc": 100 * r["metrics"]["train_acc"],
             "final test acc": 100 * r["metrics"]["test_acc"], "best epoch": r["metrics"]["best_epoch"],
             "best-checkpoint test acc": 100 * r["metrics"]["best_test_acc"], "minutes": r["wall_time_s"] / 60}
            for r in records]
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows).groupby(["group", "run"], sort=False)
    return table.mean(numeric_only=True).assign(seeds=table["seeds"].sum()).round(2)


def guide_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Each trained guide: training images, epochs, width, best-validation epoch and its validation and
    test accuracy (%), and the training minutes."""
    guides = [r for r in records if _config(r, "group") in ("guides", "guide_all")]
    return pd.DataFrame([{"guide": r["name"], "condition": "every training image" if _config(r, "group") == "guide_all"
                          else "the targets' images", "training images": _config(r, "n_train") or "all",
                          "epochs": _config(r, "epochs"), "best epoch": r["metrics"]["best_epoch"],
                          "validation acc": round(100 * r["metrics"]["best_valid_acc"], 1),
                          "test acc": round(100 * r["metrics"]["best_test_acc"], 1),
                          "minutes": round(r["wall_time_s"] / 60, 1), "seed": r["seed"]} for r in guides])


def pilot_figure(records: list[dict[str, Any]], title: str) -> plt.Figure:
    """Each claim's control, one panel, one above the other (side by side they shrink past reading):
    validation (solid) and test (dashed) loss per epoch, one colour per cell at its chosen learning rate
    (seed 0), so where the loss turns up shows against size and depth; the legend under its panel."""
    fig, axes = panel_grid(len(CLAIMS), 1, (7.5, 4.2), layout="constrained")
    for ax, (claim, (groups, model, label)) in zip(axes, CLAIMS.items()):
        for i, runs in enumerate(cells(records, groups, model).values()):
            r = min(chosen_lr(runs), key=lambda rec: rec["seed"])
            epochs = [h["epoch"] for h in r["history"]]
            name = f"{_cell_label(r)}, lr {_config(r, 'lr'):g}"
            ax.plot(epochs, [h["valid_loss"] for h in r["history"]], color=f"C{i}", label=name)
            ax.plot(epochs, [h["test_loss"] for h in r["history"]], color=f"C{i}", linestyle="--")
        ax.set(title=label, xlabel="epoch", ylabel="loss (solid: validation,\ndashed: test)")
        legend_below(ax)
    fig.suptitle(title)
    return fig
