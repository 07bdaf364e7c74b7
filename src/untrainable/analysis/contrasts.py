"""Contrasts inside a chapter: for each group and each (treated, baseline) pair, the Welch effect
and a reading ("better", "worse", "no effect detected"); no paper is involved (page 98 holds the
verdicts against the papers)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from untrainable.analysis.effects import MIN_SEEDS, NO_EFFECT, TOO_FEW_SEEDS, welch_effect
from untrainable.analysis.estimates import Rule
from untrainable.analysis.runs import values

__all__ = ["contrasts_table", "contrasts_summary"]


def contrasts_table(groups: dict[str, list[dict[str, Any]]], contrasts: Sequence[tuple[str, str]],
                    metric: str, scale: float = 100.0, lower_is_better: bool = False,
                    rule: Rule | None = None) -> pd.DataFrame:
    """For each group (a target or a setting) and each (treated, baseline) pair of names: the effect.

    Columns: group, treated, baseline, the two means, effect, its 95 % interval, p, seeds and a
    ``reading`` ("better", "worse", "no effect detected" or "too few seeds"; better means lower
    when ``lower_is_better``). ``rule``: read ``metric`` as the book's estimate under it
    (:func:`untrainable.analysis.runs.values`). No paper is involved: page 98 holds the verdicts against the paper.
    """
    rows = []
    for (group, recs), (treated, baseline) in itertools.product(groups.items(), contrasts):
        a, b = values(recs, baseline, metric, scale, rule), values(recs, treated, metric, scale, rule)
        rows.append({"group": group, "treated": treated, "baseline": baseline,
                     **_contrast_row(a, b, lower_is_better)})
    return pd.DataFrame(rows)


def _contrast_row(a: list[float], b: list[float], lower_is_better: bool) -> dict[str, Any]:
    """One row of :func:`contrasts_table`."""
    if min(len(a), len(b)) < MIN_SEEDS:
        return {"baseline mean": np.mean(a) if a else np.nan, "treated mean": np.mean(b) if b else np.nan,
                "seeds": min(len(a), len(b)), "reading": TOO_FEW_SEEDS}
    e = welch_effect(a, b)
    better = (e.effect < 0) == lower_is_better
    reading = ("better" if better else "worse") if e.significant else NO_EFFECT
    return {"baseline mean": e.baseline_mean, "treated mean": e.treated_mean, "effect": e.effect,
            "ci_low": e.ci_low, "ci_high": e.ci_high, "p_value": e.p_value, "seeds": e.seeds, "reading": reading}


def contrasts_summary(table: pd.DataFrame, labels: dict[str, str], digits: int = 1) -> str:
    """A Markdown list with one line per row of :func:`contrasts_table`."""
    return "\n".join(_contrast_line(row, labels, digits) for _, row in table.iterrows())


def _contrast_line(row: pd.Series, labels: dict[str, str], digits: int) -> str:
    """'* group: treated vs baseline: better, +2.1 (95 % CI 0.4 to 3.8, p = 0.03, 3 seeds)'."""
    head = f"* **{labels.get(row['group'], row['group'])}**: {labels.get(row['treated'], row['treated'])} " \
           f"vs {labels.get(row['baseline'], row['baseline'])}: {row['reading']}"
    if row["reading"] == TOO_FEW_SEEDS:
        return f"{head} ({row['seeds']} seeds; a test needs {MIN_SEEDS} per side)"
    return (f"{head}, {signed(row['effect'], digits)} (95 % CI {signed(row['ci_low'], digits)} to "
            f"{signed(row['ci_high'], digits)}, p = {row['p_value']:.2g}, {row['seeds']} seeds)")


def signed(value: float, digits: int) -> str:
    """``value`` with its sign, ``digits`` decimals, and no "-0.0": what rounds to zero is written as zero."""
    rounded = round(float(value), digits)
    return f"{rounded + 0.0:+.{digits}f}" if rounded != 0 else f"{0:.{digits}f}"
