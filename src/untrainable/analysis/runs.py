"""Choosing records and describing runs: select by config, rename, read one metric, the run summary
and the tables of configs and guides a chapter shows."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from untrainable.analysis.estimates import Rule, estimate

__all__ = ["select", "renamed", "named", "values", "find", "mean_percent", "mean_minutes", "run_summary", "config_table",
           "guide_table"]


def select(records: Iterable[dict[str, Any]], conditions: Sequence[str] | None = None,
           **config: Any) -> list[dict[str, Any]]:
    """The records whose config matches ``config`` (e.g. ``target="deep_fcn"``), renamed to their condition.

    Plots colour by condition (``no_guide`` grey, ``trained_guide`` blue, ...), so the returned
    copies carry ``name = condition``; with ``conditions`` only those, in that order.
    """
    out = [{**r, "name": r["config"]["condition"]} for r in records
           if all(r["config"].get(k) == v for k, v in config.items())]
    if conditions is None:
        return out
    wanted = list(conditions)
    return sorted((r for r in out if r["name"] in wanted), key=lambda r: wanted.index(r["name"]))


def renamed(records: Iterable[dict[str, Any]], names: dict[str, str]) -> list[dict[str, Any]]:
    """Copies of the records named in ``names``, renamed (e.g. ``overfit-mimic`` to its condition ``mimic``)."""
    return [{**r, "name": names[r["name"]]} for r in records if r["name"] in names]


def named(records: Iterable[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The records called ``name`` (one per seed)."""
    return [r for r in records if r["name"] == name]


def mean_minutes(records: Iterable[dict[str, Any]], metric: str = "train_time_s") -> dict[str, float]:
    """Per record name, the mean over seeds of ``metric`` (seconds) in minutes."""
    out: dict[str, list[float]] = {}
    for r in records:
        out.setdefault(r["name"], []).append(r["metrics"][metric] / 60)
    return {k: float(np.mean(v)) for k, v in out.items()}


def values(records: Iterable[dict[str, Any]], name: str, metric: str, scale: float = 1.0,
           rule: Rule | None = None) -> list[float]:
    """One metric of every seed of one named run, scaled (e.g. 100 for %): the stored metric, or with
    ``rule`` the book's estimate of it (:func:`untrainable.analysis.estimate`, e.g. ``metric="test_acc",
    rule=PRIMARY_RULE``)."""
    named_ = [r for r in records if r["name"] == name]
    if rule is None:
        return [scale * r["metrics"][metric] for r in named_]
    return [scale * estimate(r, metric, rule) for r in named_]


def find(items: Iterable[Any], **fields: Any) -> Any:
    """The first item (a config dataclass or a dict) whose ``fields`` have the given values; a clear error if none."""
    for item in items:
        if all(_field(item, k) == v for k, v in fields.items()):
            return item
    raise LookupError(f"no item with {fields}")


def _field(item: Any, name: str) -> Any:
    """A dict's value or a dataclass's attribute (``None`` when absent)."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def mean_percent(records: Iterable[dict[str, Any]], metric: str = "test_acc") -> float:
    """The mean of a fraction metric over records, in %."""
    return 100 * float(np.mean([r["metrics"][metric] for r in records]))


def run_summary(records: list[dict[str, Any]], guides: Iterable[dict[str, Any]] = ()) -> str:
    """'24 runs, profile full, seeds [0, 1, 2]; training time 18 minutes (guides: 6 more) on <device>'."""
    seeds = sorted({r["seed"] for r in records})
    profiles = ", ".join(sorted({r["profile"] for r in records}))
    minutes = sum(r["wall_time_s"] for r in records) / 60
    guides = list(guides)
    extra = f" (guides: {sum(r['wall_time_s'] for r in guides) / 60:.0f} more)" if guides else ""
    devices = ", ".join(sorted({r["device"] for r in records}))
    return (f"{len(records)} runs, profile {profiles}, seeds {seeds}; training time of these records "
            f"{minutes:.1f} minutes{extra} on {devices}")


def config_table(configs: dict[str, Any]) -> pd.DataFrame:
    """One row per labelled config (a dataclass), one column per field: what a chapter runs, shown as is."""
    return pd.DataFrame({label: dataclasses.asdict(c) for label, c in configs.items()}).T


def guide_table(guides: dict[str, dict[str, Any]], full_train_size: int = 50_000) -> pd.DataFrame:
    """The trained guides: accuracy, parameters and how they were trained, one row per guide.

    A guide that kept its best-validation checkpoint is reported at that checkpoint (``best_test_acc``,
    on all its test images; "kept epoch" says which), else at its last epoch.
    """
    rows = []
    for name, r in guides.items():
        m, c = r["metrics"], r["config"]
        rows.append({"guide": name, "test acc (%)": 100 * m.get("best_test_acc", m["test_acc"]),
                     "last-epoch train acc (%)": 100 * m["train_acc"], "parameters": m["parameters"],
                     "training images": c["n_train"] or full_train_size - c.get("n_valid", 0),
                     "epochs": c["epochs"], "kept epoch": m.get("best_epoch", c["epochs"]),
                     "crop and flip": "yes" if c.get("augment") else "no"})
    return pd.DataFrame(rows).set_index("guide").round(1)
