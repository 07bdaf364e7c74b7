"""The paper-vs-reproduction table: the papers' numbers (``book/paper_numbers.csv``) beside ours.

Each row of the data file is one number of a paper, with its source, and says which of our records
answer it (``experiment``, ``record``, ``our_metric``). Our value is read from the results store
of a profile: the mean and standard deviation over seeds, and the seed count. Rows whose records do
not exist yet say so; no number is ever filled in by hand.

Verdicts. Absolute numbers are not comparable across scales (ImageNet top-5 against CIFAR-10
top-1 on a subset; a 49-layer net against a 20-layer one), so a row is judged by its *effect*: the
difference to its baseline row (``baseline_row``, e.g. the unguided target of the same setting).
"reproduced in direction" when our difference has the paper's sign and exceeds the pooled seed
standard deviation ``sqrt((sd² + sd_baseline²) / 2)``; "not reproduced" otherwise (opposite sign,
or a difference within the seed spread); "not comparable" for rows without a baseline, and for a
claim about preventing overfitting when our unguided baseline does not overfit (its test loss rises
by less than :data:`OVERFIT_MIN` after its minimum). A lower-is-better metric (perplexity) needs no
special case: a guide that lowers perplexity has a negative effect in the paper's numbers and in ours.

Metrics: ``test_acc`` (in %), ``teacher_test_acc`` (a mimic student's teacher or ensemble, in %),
``perplexity`` (ours per character, the paper's per word: only the effect's sign compares), ``overfit_gap`` (final test loss minus its minimum over epochs),
``kappa:A|B`` (Cohen's kappa of errors between two classifiers; ``A`` a condition of the Deep FCN
runs, or ``guide:<family>`` a trained guide), averaged over seeds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from untrainable.paths import repo_root, results_root
from untrainable.results import load_record

VERDICTS = ("reproduced in direction", "not reproduced", "not comparable", "not run yet")
#: An overfitting row is judged only when its baseline overfits: a test-loss rise after the minimum above this.
OVERFIT_MIN = 0.1


def paper_numbers(path: Path | None = None) -> pd.DataFrame:
    """The data file of the papers' numbers, one row per number, with its source."""
    df = pd.read_csv(path or repo_root() / "book" / "paper_numbers.csv", dtype={"chapter": str})
    return df.set_index("row_id")


def _records(profile: str, experiment: str) -> list[dict[str, Any]]:
    """The records of an experiment; where one name has runs of several configs, the newest config's."""
    folder = results_root() / profile / experiment
    records = [load_record(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    newest: dict[str, dict[str, Any]] = {}
    for r in records:
        name = r.get("name", "")
        if name not in newest or r.get("created", "") > newest[name].get("created", ""):
            newest[name] = r
    return [r for r in records if r["config"] == newest[r.get("name", "")]["config"]]


def _values(row: pd.Series, profile: str, cache: dict[str, list[dict[str, Any]]]) -> list[float]:
    """Our per-seed values for one row (empty when the records do not exist)."""
    if not isinstance(row["experiment"], str) or not isinstance(row["record"], str):
        return []
    exp = row["experiment"]
    if exp not in cache:
        cache[exp] = _records(profile, exp)
    records = cache[exp]
    metric = row["our_metric"]
    if metric == "kappa":
        from untrainable.experiments.image_guidance import error_consistency

        a, b = row["record"].split(":", 1)[1].split("|")
        if "guides" not in cache:
            cache["guides"] = _records(profile, "guides")

        def correct(ref: str, seed: int) -> str | None:
            if ref.startswith("guide:"):
                fam = ref.split(":", 1)[1]
                hits = [r for r in cache["guides"] if r["name"] == fam]
            else:
                hits = [r for r in records if r["name"] == f"deep_fcn-{ref}" and r["seed"] == seed]
            return hits[0]["metrics"]["test_correct"] if hits else None

        seeds = sorted({r["seed"] for r in records}) or [0]
        if a.startswith("guide:") and b.startswith("guide:"):
            seeds = seeds[:1]
        out = []
        for s in seeds:
            ca, cb = correct(a, s), correct(b, s)
            if ca is not None and cb is not None:
                out.append(error_consistency(ca, cb))
        return out
    hits = [r for r in records if r["name"] == row["record"]]
    if metric in ("test_acc", "teacher_test_acc"):
        return [100 * r["metrics"][metric] for r in hits]
    if metric == "perplexity":
        return [r["metrics"]["perplexity"] for r in hits]
    if metric == "overfit_gap":
        return [r["history"][-1]["test_loss"] - min(h["test_loss"] for h in r["history"]) for r in hits]
    raise ValueError(f"row {row.name}: unknown metric {metric!r}")


def _fmt(mean: float, sd: float | None, digits: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None and not math.isnan(sd) else "")


def comparison(profile: str = "full", path: Path | None = None) -> pd.DataFrame:
    """One row per paper number: the paper's value, ours (mean ± sd, seeds, profile), the effect and the verdict."""
    paper = paper_numbers(path)
    cache: dict[str, list[dict[str, Any]]] = {}
    ours: dict[str, tuple[float, float, int]] = {}
    for rid, row in paper.iterrows():
        vals = _values(row, profile, cache)
        if vals:
            ours[rid] = (float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, len(vals))
    rows = []
    for rid, row in paper.iterrows():
        digits = 2 if row["our_metric"] in ("kappa", "overfit_gap", "perplexity") else 1
        pm, ps = row["paper_mean"], row["paper_spread"]
        out = {"row": rid, "chapter": row["chapter"] if isinstance(row["chapter"], str) else "",
               "setting": row["setting"], "condition": row["condition"], "paper metric": row["paper_metric"],
               "paper": _fmt(pm, ps, 2) if not math.isnan(pm) else row["note"],
               "ours": "", "seeds": 0, "profile": profile, "effect (paper)": "", "effect (ours)": "",
               "verdict": "not run yet", "source": row["source"]}
        if rid in ours:
            m, sd, n = ours[rid]
            out.update(ours=_fmt(m, sd, digits), seeds=n)
            base = row["baseline_row"]
            if not isinstance(base, str):
                out["verdict"] = "not comparable"
            elif base not in ours:
                out["verdict"] = "not run yet"
            else:
                bm, bsd, _ = ours[base]
                delta = m - bm
                if row["our_metric"] == "overfit_gap" and bm < OVERFIT_MIN:
                    out.update(verdict="not comparable", **{"effect (ours)": f"baseline rise {bm:.2f}"})
                    rows.append(out)
                    continue
                pbase = paper.loc[base, "paper_mean"]
                if not math.isnan(pm) and not math.isnan(pbase):
                    p_sign = np.sign(pm - pbase)
                    out["effect (paper)"] = f"{pm - pbase:+.2f}"
                else:
                    p_sign = -1.0 if row["paper_direction"] == "lower" else 1.0
                    out["effect (paper)"] = row["paper_direction"]
                out["effect (ours)"] = f"{delta:+.{digits}f}"
                pooled = math.sqrt((sd**2 + bsd**2) / 2)
                same = np.sign(delta) == p_sign and abs(delta) > pooled
                out["verdict"] = "reproduced in direction" if same else "not reproduced"
        elif not isinstance(row["experiment"], str):
            out["verdict"] = "not run yet"
        rows.append(out)
    return pd.DataFrame(rows).set_index("row")
