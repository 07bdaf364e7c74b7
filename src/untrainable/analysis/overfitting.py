"""Overfitting: how far a run's test loss ends above its minimum, and the precondition a claim about
overfitting networks needs from our records."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from untrainable.analysis.effects import Precondition

__all__ = ["overfit_gap", "overfitting_table", "overfitting_precondition", "overfitting_summary"]


def overfit_gap(record: dict[str, Any]) -> float:
    """How far the test loss ends above its minimum over epochs: ``loss[-1] - min(loss)`` (0: never rose)."""
    losses = [h["test_loss"] for h in record["history"]]
    return losses[-1] - min(losses)


def overfitting_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Per name, averaged over seeds: the minimum test loss, its epoch, the final loss, the rise after
    the minimum, and final train and test accuracy with their gap (in points)."""
    rows = [{"name": r["name"], "min test loss": min(h["test_loss"] for h in r["history"]),
             "epoch of min": 1 + int(np.argmin([h["test_loss"] for h in r["history"]])),
             "final test loss": r["history"][-1]["test_loss"], "rise after min": overfit_gap(r),
             "final train acc": 100 * r["history"][-1]["train_acc"], "final test acc": 100 * r["history"][-1]["test_acc"]}
            for r in records]
    table = pd.DataFrame(rows).groupby("name", sort=False).mean()
    return table.assign(**{"train - test (points)": table["final train acc"] - table["final test acc"]})


def overfitting_precondition(records: list[dict[str, Any]], name: str, min_rise: float = 0.2,
                             min_gap: float = 20.0) -> Precondition:
    """Does the run ``name`` overfit? Its test loss ends ≥ ``min_rise`` above its minimum and its train
    accuracy ≥ ``min_gap`` points above its test accuracy (means over seeds)."""
    mine = [r for r in records if r["name"] == name]
    if not mine:
        return Precondition(f"{name} overfits", False, "no records")
    return _overfits(overfitting_table(mine).loc[name], name, min_rise, min_gap)


def _overfits(row: pd.Series, name: str, min_rise: float = 0.2, min_gap: float = 20.0) -> Precondition:
    """The overfitting precondition from one row of :func:`overfitting_table`."""
    rise, gap = row["rise after min"], row["train - test (points)"]
    return Precondition(f"{name} overfits", bool(rise >= min_rise and gap >= min_gap),
                        f"test-loss rise {rise:.2f} (needs ≥ {min_rise}), train - test {gap:.1f} points "
                        f"(needs ≥ {min_gap})")


def overfitting_summary(table: pd.DataFrame, labels: dict[str, str], baseline: str = "no_guide") -> str:
    """Prose for :func:`overfitting_table`: the baseline's curve and its precondition, then each other run."""
    b = table.loc[baseline]
    lines = [f"Without a guide the lowest test loss ({b['min test loss']:.2f}) comes at epoch {b['epoch of min']:.1f} on "
             f"average and the final loss ends {b['rise after min']:.2f} above it; training accuracy ends "
             f"{b['train - test (points)']:.1f} points above test accuracy. Precondition {_overfits(b, baseline)}.\n"]
    lines += [f"* {labels.get(name, name)}: the test loss ends {row['rise after min']:.2f} above its minimum; train "
              f"accuracy {row['final train acc']:.1f}%, test {row['final test acc']:.1f}%."
              for name, row in table.drop(index=baseline).iterrows()]
    return "\n".join(lines)
