"""Chapter 08's tables and prose: each way of handing a student what a teacher knows, against the
labels alone, with a trained and an untrained teacher; and guidance under each distance.

Every number comes from the records passed in; effects are :func:`~untrainable.analysis.effects.welch_effect`'s
(the same test as every chapter), read as "better", "worse" or "no effect detected".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from untrainable.analysis.contrasts import contrasts_table
from untrainable.analysis.estimates import PRIMARY_RULE, estimate
from untrainable.analysis.effects import NO_EFFECT, TOO_FEW_SEEDS

__all__ = ["METRIC", "RULE", "METHOD_LABELS", "DISTANCE_LABELS", "method_frame", "method_table", "distance_table", "transfer_summary", "transfer_findings", "page_table"]

#: The number this chapter reports: the book's declared estimate (test accuracy at the epoch of highest
#: validation accuracy, ties to the lower validation loss, :func:`untrainable.analysis.estimates.estimate`),
#: the one every chapter and page 98 report. The paper's lowest-validation-loss rule would not do here: a
#: student that regresses or softly matches a trained teacher's large logits is confident, so its validation
#: cross-entropy never drops below its first epoch's while its accuracy is among the best (its sweep shows
#: it); that rule would report a chance-level epoch 1.
METRIC = "test_acc"
RULE = PRIMARY_RULE
#: How the page names each method.
METHOD_LABELS = {"labels": "labels alone", "kd": "KD (Hinton)", "logits": "logit regression (mimic)",
                 "fitnets": "FitNets hint", "spkd": "similarity-preserving KD", "guidance": "guidance (linear CKA)"}
#: How the page names each distance of the distance study.
DISTANCE_LABELS = {"linear_cka": "linear CKA", "debiased_cka": "debiased linear CKA", "rbf_cka": "RBF CKA",
                   "procrustes": "Procrustes", "rsa": "RSA", "cca": "CCA"}


def _teacher(config: dict[str, Any]) -> str:
    return "—" if config["method"] == "labels" else ("trained" if config["teacher_trained"] else "untrained")


def method_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per record: run name, method, distance, teacher, seed, test accuracy (%), the book's estimate (:data:`RULE`), the
    mean CKA reached with its own teacher's mapped layers (trained or untrained), and milliseconds per training step."""
    rows = [{"name": r["name"], "method": r["config"]["method"], "distance": r["config"]["distance"],
             "teacher": _teacher(r["config"]), "seed": r["seed"],
             "accuracy": 100 * estimate(r, METRIC, RULE), "cka": r["metrics"]["mean_cka_teacher"],
             "ms_per_step": 1000 * r["metrics"]["seconds_per_step"]} for r in records]
    return pd.DataFrame(rows, columns=["name", "method", "distance", "teacher", "seed", "accuracy", "cka",
                                       "ms_per_step"])


def _table(records: Sequence[dict[str, Any]], names: list[str]) -> pd.DataFrame:
    """Per run name: means over seeds, the effect against the labels alone and the cost per step."""
    frame = method_frame(records)
    means = frame.groupby("name").agg(method=("method", "first"), distance=("distance", "first"),
                                      teacher=("teacher", "first"), seeds=("seed", "count"),
                                      accuracy=("accuracy", "mean"), cka=("cka", "mean"),
                                      ms_per_step=("ms_per_step", "mean"))
    base = names[0]  # the student's labels-alone run
    effects = contrasts_table({"": list(records)}, [(n, base) for n in names[1:]], METRIC,
                              rule=RULE).set_index("treated")
    out = means.reindex([n for n in names if n in means.index])
    # a contrast with too few seeds has no effect columns: reindexing gives it NaN there; reindexed on the
    # table's own rows, so a student without records (the plain ConvNet in ``full``) gives an empty table
    effects = effects.reindex(index=out.index, columns=["effect", "ci_low", "ci_high", "p_value", "reading"])
    out["effect vs labels"], out["ci_low"], out["ci_high"], out["p"] = (effects[k] for k in
                                                                        ("effect", "ci_low", "ci_high", "p_value"))
    out["reading"] = effects["reading"].fillna("")
    out["cost vs labels"] = out["ms_per_step"] / (means.loc[base, "ms_per_step"] if base in means.index else np.nan)
    return out


def _shown(out: pd.DataFrame, column: str, labels: dict[str, str]) -> pd.DataFrame:
    """``out`` without its raw method and distance columns, led by ``column`` in the page's words."""
    shown = out[column].map(lambda v: labels.get(v, v))
    out = out.drop(columns=["method", "distance"])
    out.insert(0, column, shown)
    return out


def method_table(records: Sequence[dict[str, Any]], prefix: str = "") -> pd.DataFrame:
    """The methods comparison: the labels alone, then each method with the trained and the untrained
    teacher (guidance with linear CKA, the paper's distance); ``prefix`` picks another student's runs
    (``"plain_cnn-"``)."""
    names = [f"{prefix}labels"] + [f"{prefix}{m}-{t}" for m in list(METHOD_LABELS)[1:] for t in ("trained", "untrained")]
    return _shown(_table(records, names), "method", METHOD_LABELS)


def distance_table(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The distance study: guidance under each distance, trained and untrained teacher, against the labels."""
    frame = method_frame(records)
    distances = list(dict.fromkeys(frame.loc[frame.method == "guidance", "distance"]))
    names = ["labels"] + [f"guidance{'' if d == 'linear_cka' else '-' + d}-{t}" for d in distances
                          for t in ("trained", "untrained")]
    return _shown(_table(records, names).drop(index="labels", errors="ignore"), "distance", DISTANCE_LABELS)


def transfer_summary(table: pd.DataFrame) -> str:
    """A Markdown list, one line per teacher: which methods beat the labels alone, which did worse, and
    which showed no effect we could detect (from :func:`method_table`)."""
    lines = []
    for teacher in ("trained", "untrained"):
        rows = table[table["teacher"] == teacher]
        if rows.empty:
            continue
        parts = []
        for reading, word in (("better", "beat the labels alone"), ("worse", "did worse than the labels alone"),
                              (NO_EFFECT, "showed no effect we could detect"), (TOO_FEW_SEEDS, "have too few seeds")):
            hit = rows[rows["reading"] == reading]
            if not hit.empty:
                parts.append(f"{', '.join(_effect(r) for _, r in hit.iterrows())} {word}")
        lines.append(f"* **{teacher} teacher**: " + "; ".join(parts) + ".")
    return "\n".join(lines)


def _effect(row: pd.Series) -> str:
    """'KD (Hinton) (+2.1 points, p = 0.03)'."""
    name = row["method"] if "method" in row else row["distance"]
    if pd.isna(row.get("effect vs labels")):
        return str(name)
    return f"{name} ({row['effect vs labels']:+.1f} points, p = {row['p']:.2g})"


def _cost(table: pd.DataFrame, column: str) -> str:
    """'KD (Hinton) 1.1×, FitNets hint 1.6×, …': each run's step cost against the labels alone's, the
    trained teacher's runs (a teacher's kind changes the numbers it hands over, not the arithmetic)."""
    rows = table[(table["teacher"] == "trained") & table["cost vs labels"].notna()]
    return ", ".join(f"{r[column]} {r['cost vs labels']:.1f}×" for _, r in rows.iterrows())


def transfer_findings(methods: pd.DataFrame, distances: pd.DataFrame) -> str:
    """The chapter's findings as Markdown, for its summary: the methods against the labels alone per
    teacher (:func:`transfer_summary` of :func:`method_table`), guidance under each distance (of
    :func:`distance_table`), and what a training step costs."""
    parts = ["**Methods against the labels alone:**\n\n" + transfer_summary(methods)]
    if not distances.empty:
        parts.append("**Guidance under each distance, against the labels alone:**\n\n" + transfer_summary(distances))
    costs = [c for c in (_cost(methods, "method"), _cost(distances, "distance")) if c]
    if costs:
        parts.append("**Cost of a training step** against the labels alone's, on this CPU: " + "; ".join(costs) + ".")
    return "\n\n".join(parts)


#: The page's name for each column of :func:`method_table` and :func:`distance_table`, with its unit, and
#: how its numbers are written.
PAGE_COLUMNS = {"seeds": ("seeds", "{:d}"), "accuracy": ("test acc (%)", "{:.1f}"),
                "effect vs labels": ("effect vs labels (points) [95 % CI]", "{:+.1f}"),
                "p": ("Welch p", "{:.2g}"), "reading": ("reading", "{}"),
                "cka": ("CKA with its teacher", "{:.2f}"), "ms_per_step": ("ms per step", "{:.1f}"),
                "cost vs labels": ("cost vs labels (×)", "{:.2f}")}
#: Why a cell of the page's table is empty.
PAGE_NA_NOTE = ("—: the labels alone are the baseline every effect is measured against (no effect, interval "
                "or p against themselves); a run with fewer than 3 seeds per side is not tested.")


def page_table(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (:func:`method_table` or :func:`distance_table`) as the page prints it: headers with their
    units, numbers written to their precision, an empty cell as "—" with :data:`PAGE_NA_NOTE` under it."""
    lead = table.columns[0]  # "method" or "distance", in the page's words: the row's name
    out = table.set_index(lead)[["teacher", *PAGE_COLUMNS]]
    interval = [f" [{lo:+.1f}, {hi:+.1f}]" for lo, hi in zip(table["ci_low"], table["ci_high"])]
    for column, (name, form) in PAGE_COLUMNS.items():
        out[column] = [form.format(v) if not (isinstance(v, float) and np.isnan(v)) else "—" for v in out[column]]
    out["effect vs labels"] = [e if e == "—" else e + i for e, i in zip(out["effect vs labels"], interval)]
    out = out.rename(columns={k: v[0] for k, v in PAGE_COLUMNS.items()})
    if (out == "—").to_numpy().any():
        out.attrs["na_note"] = PAGE_NA_NOTE
    return out
