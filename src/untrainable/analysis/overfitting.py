"""Overfitting: how far a run's test loss ends above its minimum, per run and per condition, and its train
and test accuracy at the epoch of a declared rule (the book's estimate unless told: the epoch of highest
validation accuracy, the last epoch for a run without a validation split)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from untrainable.analysis.estimates import RULE_WORDS, Rule, estimate, row_rule
from untrainable.analysis.preconditions import train_test_gap

__all__ = ["overfit_gap", "overfitting_table", "overfitting_summary"]

#: The table's columns of the rule's epoch, in the order shown.
_AT = ("train acc", "test acc", "train - test (points)")


def overfit_gap(record: dict[str, Any]) -> float:
    """How far the test loss ends above its minimum over epochs: ``loss[-1] - min(loss)`` (0: never rose); a
    shape of the test curve, the same under every rule."""
    losses = [h["test_loss"] for h in record["history"]]
    return losses[-1] - min(losses)


def _row(r: dict[str, Any], rule: Rule) -> dict[str, Any]:
    losses = [h["test_loss"] for h in r["history"]]
    test = estimate(r, "test_acc", rule)
    return {"name": r["name"], "min test loss": min(losses), "epoch of min": 1 + int(np.argmin(losses)),
            "final test loss": losses[-1], "rise after min": overfit_gap(r),
            "train acc": 100 * (train_test_gap(r, rule) + test), "test acc": 100 * test}


def overfitting_table(records: list[dict[str, Any]], rule: Rule | None = None) -> pd.DataFrame:
    """Per name, averaged over seeds: the minimum test loss, its epoch, the final loss, the rise after
    the minimum, and train and test accuracy with their gap (in points) at the epoch ``rule`` picks (default
    the records' declared estimate, :func:`~untrainable.analysis.estimates.row_rule`; the column headings
    say which: "train acc at the epoch of highest validation accuracy")."""
    rule = rule or row_rule(records)
    table = pd.DataFrame([_row(r, rule) for r in records]).groupby("name", sort=False).mean()
    table = table.assign(**{"train - test (points)": table["train acc"] - table["test acc"]})
    return table.rename(columns={c: f"{c} at {RULE_WORDS[rule]}" for c in _AT})


def _at(row: pd.Series, column: str) -> float:
    """A rule's column of :func:`overfitting_table`, whatever its rule."""
    return row[next(c for c in row.index if c.startswith(f"{column} at "))]


def overfitting_summary(table: pd.DataFrame, labels: dict[str, str], baseline: str = "no_guide",
                        opening: str = "Without a guide") -> str:
    """Prose for :func:`overfitting_table`: the baseline's curve (its sentence opens with ``opening``), then
    each other run (whether the baseline overfits enough for a claim is
    :func:`untrainable.analysis.preconditions.overfits`)."""
    b = table.loc[baseline]
    when = next(c for c in table.columns if c.startswith("train acc at ")).removeprefix("train acc at ")
    lines = [f"{opening} the lowest test loss ({b['min test loss']:.2f}) comes at epoch {b['epoch of min']:.1f} on "
             f"average and the final loss ends {b['rise after min']:.2f} above it; at {when}, training accuracy is "
             f"{_at(b, 'train - test (points)'):.1f} points above test accuracy.\n"]
    lines += [f"* {labels.get(name, name)}: the test loss ends {row['rise after min']:.2f} above its minimum; "
              f"at {when}, train accuracy {_at(row, 'train acc'):.1f}%, test {_at(row, 'test acc'):.1f}%."
              for name, row in table.drop(index=baseline).iterrows()]
    return "\n".join(lines)
