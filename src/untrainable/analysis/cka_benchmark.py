"""The CKA benchmark appendix: its record (:mod:`untrainable.benchmarks.cka`) as tables and sentences.

The benchmark stores one row per ``(n, d)`` cell (times ``<method>_s``, ratios, errors
``<method>_err`` and ``<method>_err_offset<c>``), the verdict on each goal over the cells where it
applies, and the minibatch-CKA timing over two ResNet-18s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

__all__ = ["GOALS", "RATIOS", "time_columns", "times_table", "ratios_table", "goals_summary", "errors_table",
           "minibatch_summary"]

#: The goals the record checks, with how the appendix states them.
GOALS: dict[str, str] = {
    "not_more_than_10pct_slower_than_best_fixed": "at most 10% slower than the better fixed form",
    "at_least_3x_faster_than_worse_fixed_when_16x_apart": "at least 3x faster than the worse fixed form "
                                                          "(n, d 16x apart)",
    "within_1e-5_where_authors_off_by_1e-3": "within 1e-5 of float64 where the authors' form is off by more than 1e-3",
}
#: The ratio columns of a cell, with their display names.
RATIOS: dict[str, str] = {"ours_vs_best_fixed": "ours / best fixed", "worst_fixed_vs_ours": "worse fixed / ours",
                          "authors_vs_ours": "authors / ours"}


def time_columns(methods: Sequence[str]) -> list[str]:
    """The columns of :func:`times_table` that hold times (the others describe the cell)."""
    return [f"{m} (ms)" for m in methods]


def times_table(cells: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Milliseconds per call of each method per ``(n, d)``, and the space ours chose (``NaN``: skipped)."""
    times = cells.set_index(["n", "d"])[[f"{m}_s" for m in methods]] * 1000
    times.columns = time_columns(methods)
    return times.join(cells.set_index(["n", "d"])["space"].rename("ours uses"))


def ratios_table(cells: pd.DataFrame) -> pd.DataFrame:
    """The three speed ratios per ``(n, d)`` and whether the 3x goal applies there."""
    columns = {**RATIOS, "goal_3x_applies": "n, d 16x apart"}
    return cells.set_index(["n", "d"])[list(columns)].rename(columns=columns)


def goals_summary(goals: dict[str, Any]) -> str:
    """One Markdown line per goal: in how many of the cells where it applies it was met, and where not."""
    lines = []
    for key, text in GOALS.items():
        g = goals[key]
        missed = f"; missed at (n, d) = {g['failed_at']}" if g["failed_at"] else ""
        lines.append(f"* **{text}**: met in {g['met']} of {g['cells']} cells{missed}.")
    return "\n".join(lines)


def errors_table(cells: pd.DataFrame) -> pd.DataFrame:
    """The error against float64 of ours and the authors' form per ``(n, d)``, with and without the offsets."""
    columns = [c for c in cells.columns if c.startswith(("ours_err", "authors_err"))]
    names = {c: c.replace("_err", "").replace("_offset", ", offset ") for c in columns}
    return cells.set_index(["n", "d"])[columns].rename(columns=names)


def minibatch_summary(minibatch: dict[str, Any]) -> str:
    """What the minibatch-CKA timing measured, and its cost against the forward passes it needs anyway."""
    mb = minibatch
    ratio = mb["accumulator_s"] / mb["forward_two_nets_s_estimated_total"]
    return (f"* {mb['images']:,} images in {mb['batches']} batches of {mb['batch_size']}; "
            f"{mb['features_per_image']:,} recorded features per image and network; {mb['pairs']} layer pairs.\n"
            f"* **Accumulator**: {mb['accumulator_s']:.1f} s in all ({mb['accumulator_ms_per_batch']:.0f} ms per "
            "batch).\n"
            f"* **Forward passes** of both networks: about {mb['forward_two_nets_s_estimated_total']:.0f} s for the "
            f"whole set ({mb['forward_two_nets_s_per_batch']:.2f} s per batch), so the heatmap costs about "
            f"{ratio:.1f}x the forward passes themselves.")

