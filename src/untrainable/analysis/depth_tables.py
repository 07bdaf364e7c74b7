"""The depth map as tables (:mod:`untrainable.experiments.depth_map`): per depth and condition, how far
training got and what the book's estimate of test accuracy is, and which learning rate each depth's pilots
chose.

Two numbers a cell, because the map asks two questions. *Best train accuracy* (the highest over epochs)
says whether the net trains at all, the failure the paper claims a guide cures; *test accuracy* is the
book's estimate (:func:`untrainable.analysis.estimate` under
:data:`~untrainable.analysis.estimates.PRIMARY_RULE`), the number page 98 judges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from untrainable.analysis.estimates import PRIMARY_RULE, estimate
from untrainable.analysis.preconditions import best_train_acc

__all__ = ["depth_frame", "depth_table", "pilot_table", "depth_summary"]


def depth_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per run: depth, BatchNorm, condition, seed, best train accuracy and the estimated test
    accuracy, in %."""
    rows = [{"depth": r["config"]["fcn_depth"], "batch_norm": r["config"]["fcn_batch_norm"],
             "condition": r["config"]["condition"], "seed": r["seed"],
             "best train acc (%)": 100 * best_train_acc(r),
             "test acc (%)": 100 * estimate(r, "test_acc", PRIMARY_RULE)} for r in records]
    return pd.DataFrame(rows)


def depth_table(records: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> pd.DataFrame:
    """Per depth (rows; with and without BatchNorm apart where the records hold both) and condition (column
    groups): mean ± sd over seeds of the best train accuracy and the estimated test accuracy, and the seeds;
    conditions named by ``labels``, in its order."""
    frame = depth_frame(records)

    def cell(values: pd.Series) -> str:
        return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}" if len(values) > 1 else f"{values.mean():.1f}"

    frame = frame.assign(BatchNorm=frame["batch_norm"].map({True: "yes", False: "no"}))
    keys = ["depth"] if frame["batch_norm"].nunique() == 1 else ["BatchNorm", "depth"]
    order = {c: i for i, c in enumerate(labels)}  # the labels' order, then the rest as they come
    frame = frame.sort_values("condition", key=lambda c: c.map(lambda v: order.get(v, len(order))), kind="stable")
    out = {}
    for condition, sub in frame.groupby("condition", sort=False):
        grouped = sub.groupby(keys)
        out[labels.get(condition, condition)] = pd.DataFrame({
            "best train acc (%)": grouped["best train acc (%)"].agg(cell),
            "test acc (%)": grouped["test acc (%)"].agg(cell), "seeds": grouped["seed"].count()})
    table = pd.concat(out, axis=1)
    if len(keys) == 1:
        table.index.name = "depth (layers)"
        return table
    table.index = table.index.set_names(["BatchNorm", "depth (layers)"])
    return table.sort_index(ascending=[False, True])


def pilot_table(pilots: Sequence[Mapping[str, Any]], chosen: Mapping[Any, float]) -> pd.DataFrame:
    """Each pilot (an unguided control at one learning rate): its best train and validation accuracy, and
    whether it is the learning rate its cell chose (``chosen``: cell -> learning rate, cells named as
    ``fcn24`` / ``fcn24-nobn``)."""
    named = {str(c): lr for c, lr in chosen.items()}
    rows = []
    for r in pilots:
        c = r["config"]
        cell = f"fcn{c['fcn_depth']}" + ("" if c["fcn_batch_norm"] else "-nobn")
        rows.append({"depth": c["fcn_depth"], "BatchNorm": "yes" if c["fcn_batch_norm"] else "no",
                     "learning rate": c["lr"], "best train acc (%)": 100 * best_train_acc(r),
                     "best valid acc (%)": 100 * max(h["valid_acc"] for h in r["history"]),
                     "chosen": "✓" if named.get(cell) == c["lr"] else ""})
    return pd.DataFrame(rows).sort_values(["BatchNorm", "depth", "learning rate"], ascending=[False, True, False])


def depth_summary(records: Sequence[Mapping[str, Any]], fails: Mapping[int, bool], labels: Mapping[str, str],
                  control: str = "no_guide") -> str:
    """A paragraph from the records: the shallowest depth whose control fails to train (``fails``: depth ->
    whether its unguided BatchNorm control fails, :func:`untrainable.experiments.depth_map.failing_depths`), and
    at that depth each condition's mean best train and estimated test accuracy (the BatchNorm nets')."""
    failing = sorted(d for d, holds in fails.items() if holds)
    if not failing:
        return (f"At no depth of the map does the unguided control fail to train, so no row here can show a "
                f"guide rescuing it (depths {', '.join(str(d) for d in sorted(fails))} checked).")
    depth = failing[0]
    frame = depth_frame(records)
    at = frame[(frame["depth"] == depth) & frame["batch_norm"]].groupby("condition", sort=False)[["best train acc (%)", "test acc (%)"]]
    means = at.mean()
    parts = [f"{labels.get(c, c)} {row['best train acc (%)']:.1f} % best train, {row['test acc (%)']:.1f} % test "
             f"({int(at.size()[c])} seeds)" for c, row in means.iterrows()]
    deeper = [d for d in sorted(fails) if d > depth]
    beyond = (f" It fails at {', '.join(str(d) for d in failing[1:])} layers too." if failing[1:] else "")
    if deeper and not failing[1:]:
        beyond = f" At {', '.join(str(d) for d in deeper)} layers it trains again."
    return (f"The unguided control first fails to train at **{depth} layers**.{beyond} At {depth} layers: "
            + "; ".join(parts) + ".")
