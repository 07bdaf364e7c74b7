"""Error consistency: Cohen's kappa of two classifiers' right/wrong sequences (Geirhos et al., 2020),
and the table of kappas with the controls a claim about guides needs.

**Checkpoint.** The records keep one right/wrong string per run (``metrics.test_correct``), of the
last epoch's weights: a kappa is the final epoch's, whatever rule the accuracy beside it uses
(:mod:`untrainable.analysis.estimates`); the records allow no other until the runs store the string
of the reported checkpoint.

**Independent units.** Kappas of all pairs of seeds share nets (seed 0 is in four of the ten pairs of
five seeds), so they are not independent and a test over them pretends to more seeds than were run.
:func:`kappa_contrast` tests on :func:`disjoint_pairs` (each net in at most one pair); the table's
means over all pairs describe, they do not test.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from untrainable.analysis.effects import MIN_SEEDS, Effect, welch_effect

__all__ = ["GUIDED_BY", "error_consistency", "disjoint_pairs", "kappa_table", "kappa_contrast",
           "kappa_summary"]


def error_consistency(correct_a: str, correct_b: str) -> float:
    """Cohen's kappa of two classifiers' errors on the same test images (Geirhos et al., 2020).

    ``c_obs`` is the fraction of images both get right or both get wrong; ``c_exp = p_a p_b +
    (1 - p_a)(1 - p_b)`` what independent classifiers of the same accuracies would reach;
    ``kappa = (c_obs - c_exp) / (1 - c_exp)``: 0 for independent errors, 1 for identical ones.
    """
    a = np.frombuffer(correct_a.encode(), dtype=np.uint8) == ord("1")
    b = np.frombuffer(correct_b.encode(), dtype=np.uint8) == ord("1")
    if a.shape != b.shape:
        raise ValueError(f"the two classifiers were tested on different sets: {a.size} and {b.size} images")
    c_obs = float(np.mean(a == b))
    pa, pb = a.mean(), b.mean()
    c_exp = float(pa * pb + (1 - pa) * (1 - pb))
    return (c_obs - c_exp) / (1 - c_exp) if c_exp < 1 else float("nan")


def disjoint_pairs(seeds: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive pairs of the sorted seeds, each seed in one pair at most ((0, 1), (2, 3), ...; an odd
    seed out is left out): pairs of nets that share none, so their kappas are independent units."""
    ordered = sorted(set(seeds))
    return list(zip(ordered[0::2], ordered[1::2]))


def kappa_contrast(records: list[dict[str, Any]], first: str, second: str, target: str = "deep_fcn",
                   control: str = "no_guide") -> Effect | None:
    """Whether nets of conditions ``first`` and ``second`` (same seed) agree more than two ``control``
    nets of different seeds: Welch's effect over independent units (same-seed pairs against
    :func:`disjoint_pairs` of the control); ``None`` when a side has fewer than :data:`MIN_SEEDS` values."""
    correct = {(r["config"]["condition"], r["seed"]): r["metrics"]["test_correct"] for r in records
               if r["config"]["target"] == target}
    seeds = sorted({s for _, s in correct})
    treated = [error_consistency(correct[(first, s)], correct[(second, s)]) for s in seeds
               if (first, s) in correct and (second, s) in correct]
    base = [error_consistency(correct[(control, a)], correct[(control, b)])
            for a, b in disjoint_pairs(s for c, s in correct if c == control)]
    return welch_effect(base, treated) if min(len(base), len(treated)) >= MIN_SEEDS else None


#: The guide each guided condition follows (condition -> the guide's record name), for "each guide vs
#: its guided nets". Rows name a guide by its family, the record name's first part.
GUIDED_BY = {"trained_guide": "resnet18", "small_cnn_guide": "small_cnn"}


def kappa_table(records: list[dict[str, Any]], guides: dict[str, dict[str, Any]],
                target: str = "deep_fcn", guided_by: dict[str, str] | None = None) -> pd.DataFrame:
    """Error consistency between a chapter's classifiers, with the controls a claim about guides needs.

    Rows: unguided vs unguided (pairs of seeds), unguided vs guided (same seed, per guide family),
    guided vs guided across guide families (same seed), each guide vs its guided nets, each guide vs
    the unguided nets, and the guides together. Columns: pair, kappa (mean), sd, pairs averaged. The
    unguided pairs share nets: the row describes, :func:`kappa_contrast` tests (module docstring).
    ``guided_by`` maps the two guided conditions to their guides' names in ``guides`` (default
    :data:`GUIDED_BY`; the first is the ResNet-18, the second the other family).
    """
    guided_by = guided_by or GUIDED_BY
    family = {cond: name.split("-")[0] for cond, name in guided_by.items()}
    correct = {(r["config"]["condition"], r["seed"]): r["metrics"]["test_correct"] for r in records
               if r["config"]["target"] == target}
    seeds = sorted({s for _, s in correct})
    guide_correct = {family[c]: guides[name]["metrics"]["test_correct"] for c, name in guided_by.items()
                     if name in guides}
    (first, fam_a), (second, fam_b) = list(family.items())[:2]
    pairs: dict[str, list[tuple[str | None, str | None]]] = {
        "unguided vs unguided (other seed)": [(correct.get(("no_guide", a)), correct.get(("no_guide", b)))
                                              for a, b in itertools.combinations(seeds, 2)]}
    for cond, fam in family.items():
        pairs[f"unguided vs guided by {fam} (same seed)"] = [(correct.get(("no_guide", s)), correct.get((cond, s)))
                                                             for s in seeds]
    pairs[f"guided by {fam_a} vs guided by {fam_b} (same seed)"] = [
        (correct.get((first, s)), correct.get((second, s))) for s in seeds]
    for cond, fam in family.items():
        pairs[f"{fam} guide vs its guided nets"] = [(guide_correct.get(fam), correct.get((cond, s))) for s in seeds]
        pairs[f"{fam} guide vs the unguided nets"] = [(guide_correct.get(fam), correct.get(("no_guide", s)))
                                                      for s in seeds]
    pairs["the guides together"] = [(guide_correct.get(fam_a), guide_correct.get(fam_b))]
    return pd.DataFrame([_kappa_row(name, p) for name, p in pairs.items()])


def _kappa_row(name: str, pairs: list[tuple[str | None, str | None]]) -> dict[str, Any]:
    """Mean, sd and count of kappa over the pairs whose two sides both exist."""
    ks = [error_consistency(a, b) for a, b in pairs if a is not None and b is not None]
    return {"pair": name, "kappa": float(np.mean(ks)) if ks else float("nan"),
            "sd": float(np.std(ks, ddof=1)) if len(ks) > 1 else float("nan"), "pairs averaged": len(ks)}


def kappa_summary(table: pd.DataFrame) -> str:
    """What the kappa table shows against its controls: does guidance add agreement beyond architecture?

    The guided FCNs' agreement is evidence of inherited errors only when it exceeds what two unguided
    FCNs of different seeds already share, and a guide's agreement with its guided nets only when it
    exceeds its agreement with unguided ones.
    """
    k = table.set_index("pair")["kappa"]
    base, guided = k["unguided vs unguided (other seed)"], k["guided by resnet18 vs guided by small_cnn (same seed)"]
    own, unguided = k["resnet18 guide vs its guided nets"], k["resnet18 guide vs the unguided nets"]
    return (f"Two unguided Deep FCNs of different seeds agree at κ = {base:.2f}; FCNs guided by the two families agree "
            f"at κ = {guided:.2f}, {guided - base:+.2f} beyond that control (the guides together: "
            f"{k['the guides together']:.2f}). The ResNet-18 agrees with the FCNs it guided at κ = {own:.2f} and with "
            f"unguided ones at {unguided:.2f} ({own - unguided:+.2f}). How many pairs each mean averages, and their "
            "spread, are in the table.")
