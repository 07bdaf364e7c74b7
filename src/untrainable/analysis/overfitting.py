"""Overfitting: how far a run's test loss ends above its minimum, per run and per condition."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["overfit_gap", "overfitting_table", "overfitting_summary"]


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


def overfitting_summary(table: pd.DataFrame, labels: dict[str, str], baseline: str = "no_guide",
                        opening: str = "Without a guide") -> str:
    """Prose for :func:`overfitting_table`: the baseline's curve (its sentence opens with ``opening``), then
    each other run (whether the baseline overfits enough for a claim is
    :func:`untrainable.analysis.preconditions.overfits`)."""
    b = table.loc[baseline]
    lines = [f"{opening} the lowest test loss ({b['min test loss']:.2f}) comes at epoch {b['epoch of min']:.1f} on "
             f"average and the final loss ends {b['rise after min']:.2f} above it; training accuracy ends "
             f"{b['train - test (points)']:.1f} points above test accuracy.\n"]
    lines += [f"* {labels.get(name, name)}: the test loss ends {row['rise after min']:.2f} above its minimum; train "
              f"accuracy {row['final train acc']:.1f}%, test {row['final test acc']:.1f}%."
              for name, row in table.drop(index=baseline).iterrows()]
    return "\n".join(lines)
