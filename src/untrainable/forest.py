"""The book's answer in one figure: every judged claim's effect beside the paper's, a forest plot.

One row per row of :func:`untrainable.paper_comparison.verdicts` that judges a claim (every verdict but
"not comparable", the reference numbers): our effect with its 95 % interval, coloured by its verdict, and
the paper's effect on our scale (``paper_effect_scaled``) as an open diamond. A row without a test (not
testable, too few seeds, ...) shows its verdict in words where its interval would be, so no claim drops
out of the figure. Effects of different units never share an axis: one panel per unit
(:data:`untrainable.paper_comparison_display.UNITS`), rows grouped by chapter. Page 98 draws it at its top and
:func:`untrainable.reproduce.write_headline` saves it for the landing page: one function, one figure.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from untrainable import analysis as A
from untrainable import paper_comparison as PC
from untrainable import paper_comparison_display as PD

__all__ = ["VERDICT_COLORS", "AXIS_LABELS", "judged_rows", "forest_plot", "figure_markup"]

#: One colour per verdict: green the paper's direction, red the other, amber undecided, blue no effect, greys
#: the verdicts without a test.
VERDICT_COLORS = {A.REPRODUCED: "#2ca02c", A.OPPOSITE: "#d62728", A.INCONCLUSIVE: "#ff9f1c", A.NO_EFFECT: "#1f77b4",
                  A.NOT_TESTABLE: "#7f7f7f", A.RULE_NOT_AVAILABLE: "#a0a0a0", A.TOO_FEW_SEEDS: "#a0a0a0",
                  A.NOT_RUN: "#c0c0c0"}
#: Each unit's axis, in the order the panels stack (accuracy first: most claims are accuracies).
AXIS_LABELS = {"pts": "effect on test accuracy (percentage points)",
               "nats": "effect on the test loss's rise after its minimum (nats)",
               "κ": "effect on Cohen's kappa of errors", "ppl": "effect on perplexity (ppl; ours per character)"}
_WRAP = 48  # characters per line of a row's label: about 40 % of a 688 px column at 7.5 pt


def judged_rows(verdicts: pd.DataFrame, path: Path | None = None) -> pd.DataFrame:
    """The rows of ``verdicts`` that judge a claim, with what the figure needs from the data file: the
    chapter, the claim in words (:func:`~untrainable.paper_comparison_display.claim`) and the effect's unit."""
    paper = PC.paper_numbers(path).loc[verdicts.index]
    rows = verdicts.assign(chapter=paper["chapter"].fillna(""), claim=[PD.claim(r) for _, r in paper.iterrows()],
                           unit=paper["our_metric"].map(PD.UNITS).fillna(""))
    return rows[rows["verdict"] != A.NOT_COMPARABLE]


def _seeds(rows: pd.DataFrame) -> str:
    """'3 to 5 seeds per side' (or '3 seeds per side', 'no records'): what the figure's effects average over."""
    counts = pd.concat([rows["seeds"], rows["baseline_seeds"]])
    if not (counts > 0).any():
        return "no records"
    lo, hi = int(counts[counts > 0].min()), int(counts.max())
    return f"{lo} seed{'s' * (hi != 1)} per side" if lo == hi else f"{lo} to {hi} seeds per side"


def _label(row: pd.Series) -> str:
    """A row's claim wrapped to :data:`_WRAP`, a fragile row marked (another rule tests it otherwise)."""
    return textwrap.fill(row["claim"] + (" ⚠\u00a0fragile" if row["fragile"] else ""), _WRAP)  # the flag unbroken


def _layout(rows: pd.DataFrame) -> list[tuple[str, pd.Series | None]]:
    """A panel's lines top to bottom: each chapter's heading, then its rows in the data file's order."""
    lines: list[tuple[str, pd.Series | None]] = []
    for chapter, group in rows.groupby("chapter", sort=True):
        lines.append((f"chapter {chapter}" if chapter else "other", None))
        lines.extend((_label(r), r) for _, r in group.iterrows())
    return lines


def _height(lines: list[tuple[str, pd.Series | None]]) -> float:
    """A panel's height in inches: a row of one line of label text 0.2 in, each further line 0.13 in more,
    and the axis under it 0.5 in."""
    return sum(0.2 + 0.13 * label.count("\n") for label, _ in lines) + 0.5


def _draw_row(ax: plt.Axes, y: float, row: pd.Series) -> None:
    """One claim: our effect and interval in its verdict's colour and the paper's on our scale, or, with no
    test, the verdict in words."""
    color = VERDICT_COLORS.get(row["verdict"], "#7f7f7f")
    if math.isnan(row["effect"]):
        ax.annotate(row["verdict"], (0, y), xycoords=("axes fraction", "data"), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=7, style="italic", color=color)
        return
    ax.plot([row["ci_low"], row["ci_high"]], [y, y], color=color, lw=2.2, solid_capstyle="butt")
    ax.plot(row["effect"], y, "o", color=color, ms=5.5, mec="white", mew=0.6)
    if not math.isnan(row["paper_effect_scaled"]):
        ax.plot(row["paper_effect_scaled"], y, "D", mfc="none", mec="black", ms=5, mew=1)


def _panel(ax: plt.Axes, rows: pd.DataFrame, unit: str) -> None:
    """One unit's panel: a zero line, every row of ``rows`` (:func:`_draw_row`) under its chapter's heading."""
    lines = _layout(rows)
    ax.axvline(0, color="#555555", lw=0.8, zorder=0)
    ticks, labels = [], []
    for y, (label, row) in enumerate(lines):
        ticks.append(y)
        labels.append(label)
        if row is not None:
            _draw_row(ax, y, row)
    ax.set_yticks(ticks, labels, fontsize=7.5)
    for tick, (_, row) in zip(ax.get_yticklabels(), lines):
        if row is None:
            tick.set_fontweight("bold")
    ax.set_ylim(len(lines) - 0.5, -0.7)
    ax.tick_params(axis="y", length=0)
    ax.tick_params(axis="x", labelsize=7.5)
    ax.set_xlabel(AXIS_LABELS.get(unit, unit), fontsize=8)
    if rows["effect"].isna().all():  # no row has a number: an axis of ticks would suggest one
        ax.set_xticks([])
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.08)


def _legend(fig: Figure, rows: pd.DataFrame) -> None:
    """The verdicts present, and the paper's diamond, under the panels."""
    handles = [Line2D([], [], color=VERDICT_COLORS[v], marker="o", lw=2.2, label=v)
               for v in A.VERDICTS if v in set(rows["verdict"]) and v in VERDICT_COLORS]
    handles.append(Line2D([], [], color="black", marker="D", mfc="none", lw=0, label="the paper, on our scale"))
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=7.5, frameon=False)


def forest_plot(verdicts: pd.DataFrame, profile: str, path: Path | None = None) -> Figure:
    """Every judged row of ``verdicts`` (:func:`untrainable.paper_comparison.verdicts` of ``profile``; ``path``
    its data file): our effect with its 95 % interval in its verdict's colour beside the paper's effect on our
    scale, one panel per unit, rows grouped by chapter; 7 in wide, legible at the page's 688 px."""
    rows = judged_rows(verdicts, path)
    if rows.empty:
        raise ValueError(f"profile {profile}: no row judges a claim yet (every row is a reference number): "
                         "nothing to draw")
    units = [u for u in AXIS_LABELS if u in set(rows["unit"])] + sorted(set(rows["unit"]) - set(AXIS_LABELS))
    heights = [_height(_layout(rows[rows["unit"] == u])) for u in units]
    fig, axes = plt.subplots(len(units), 1, figsize=(7, sum(heights) + 0.9), layout="constrained",
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, unit in zip(axes[:, 0], units):
        _panel(ax, rows[rows["unit"] == unit], unit)
    fig.suptitle(f"Our effect [95 % interval] against the paper's (profile {profile}, {_seeds(rows)})",
                 fontsize=9.5)
    _legend(fig, rows)
    return fig


def figure_markup(image: str, verdicts: pd.DataFrame, profile: str, page: str, path: Path | None = None) -> str:
    """The landing page's MyST figure of :func:`forest_plot` saved as ``image``, its caption saying the profile,
    the seeds and where each row's numbers are (``page``: page 98's link)."""
    rows = judged_rows(verdicts, path)
    return (f"```{{figure}} {image}\n"
            f":alt: Forest plot of the {len(rows)} judged claims, our effect beside the paper's\n"
            f":width: 100%\n\nEvery claim the book judges (profile `{profile}`, {_seeds(rows)}): our effect with its "
            "95 % interval in its verdict's colour, and the paper's effect on our scale (open diamond); one panel per "
            f"unit. [Paper vs reproduction]({page}) gives every row's numbers, test and reason.\n```\n")
