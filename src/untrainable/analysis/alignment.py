"""Alignment: the linear CKA of a guided run's mapped layer pairs with a reference guide, over epochs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["alignment_frame", "alignment_summary", "endpoint_alignment", "pair_alignment"]


def alignment_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Long-form linear CKA of every mapped layer pair: one row per (run, epoch, reference guide, pair).

    Columns: name, seed, epoch (0 = at initialisation), reference ("trained"/"untrained" guide),
    pair (index), depth (the target layer's relative depth, 0 first to 1 last), cka.
    """
    rows = [{"name": r["name"], "seed": r["seed"], "epoch": epoch, "reference": ref, "pair": i,
             "depth": i / max(len(r["probe_pairs"][ref]) - 1, 1), "cka": v}
            for r in records for ref in ("trained", "untrained")
            for epoch, cka in [(0, r["initial_cka"][ref])] + [(h["epoch"], h[f"cka_{ref}"]) for h in r["history"]]
            for i, v in enumerate(cka)]
    return pd.DataFrame(rows)


def alignment_summary(frame: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """Mean CKA over pairs and seeds at initialisation and at the last epoch, per reference guide and run."""
    first = frame[frame["epoch"] == 0].groupby(["reference", "name"], sort=False)["cka"].mean()
    last = frame[frame["epoch"] == frame["epoch"].max()].groupby(["reference", "name"], sort=False)["cka"].mean()
    table = pd.DataFrame({"at initialisation": first, "at the last epoch": last})
    return table.rename(index=labels, level="name").round(2)


def endpoint_alignment(records: list[dict[str, Any]], labels: dict[str, str], group: str = "setting") -> pd.DataFrame:
    """Mean CKA over mapped pairs and seeds, at initialisation and at the end, per group, reference guide
    and condition, for records that store ``initial_cka`` and ``final_cka`` (``{reference: [per pair]}``)."""
    rows = [{group: r["config"][group], "guide": ref, "condition": labels.get(r["name"], r["name"]),
             "at init": float(np.mean(r["initial_cka"][ref])), "at the end": float(np.mean(r["final_cka"][ref]))}
            for r in records if "final_cka" in r for ref in r["final_cka"]]
    return pd.DataFrame(rows).groupby([group, "guide", "condition"], sort=False).mean()


def pair_alignment(records: list[dict[str, Any]], labels: dict[str, str], group: str = "setting") -> pd.DataFrame:
    """Per group, reference guide, condition and mapped pair (``guide layer → target layer``): the CKA at
    initialisation and at the end, means over seeds. A pair near 1 at initialisation leaves guidance
    little to pull; the end shows how far training (guided or not) moved it."""
    rows = [{group: r["config"][group], "guide": ref, "condition": labels.get(r["name"], r["name"]),
             "pair": f"{g} → {t}", "at init": a, "at the end": b}
            for r in records if "final_cka" in r for ref in r["final_cka"]
            for (g, t), a, b in zip(r["probe_pairs"][ref], r["initial_cka"][ref], r["final_cka"][ref])]
    return pd.DataFrame(rows).groupby([group, "guide", "condition", "pair"], sort=False).mean()
