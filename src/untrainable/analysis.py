"""What the chapters conclude from their records: effects with intervals, tests and one verdict rule.

Every chapter, page 98 and the notebooks call this module, so that a number, an interval or a
verdict means the same thing everywhere. Nothing here trains or reads files: functions take
records (the dicts of :mod:`untrainable.results`) and return numbers, frames or sentences.

**Effects.** An effect is the difference of means ``treated - baseline`` over seeds. Its 95 %
interval uses Welch's standard error and the Welch–Satterthwaite degrees of freedom

    se² = s_a²/n_a + s_b²/n_b,    ν = se⁴ / ((s_a²/n_a)²/(n_a-1) + (s_b²/n_b)²/(n_b-1)),

    interval = effect ± t_{0.975, ν} · se,

and its p-value is Welch's two-sided t-test (``scipy.stats.ttest_ind(equal_var=False)``).

**Verdicts.** :func:`verdict` is the one rule: "reproduced" (p < 0.05 in the paper's direction),
"opposite" (p < 0.05 the other way), "no effect detected" (p ≥ 0.05), "not testable" (a named
precondition of the claim fails in our records), "not comparable" (no direction to test), "not
run" (no records). A side with fewer than :data:`MIN_SEEDS` seeds gets no verdict: "too few seeds".

**Error consistency.** Cohen's kappa of two classifiers' right/wrong sequences (Geirhos et al., 2020).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from untrainable.results import history_frame, metrics_frame

__all__ = [
    "ALPHA", "MIN_SEEDS", "VERDICTS", "REPRODUCED", "OPPOSITE", "NO_EFFECT", "NOT_TESTABLE", "NOT_COMPARABLE",
    "NOT_RUN", "TOO_FEW_SEEDS", "Effect", "Precondition", "Verdict", "welch_effect", "verdict",
    "error_consistency", "kappa_table", "kappa_summary", "select", "renamed", "values", "find", "alignment_frame",
    "alignment_summary", "overfit_gap", "overfitting_table", "overfitting_precondition", "overfitting_summary",
    "contrasts_table", "contrasts_summary", "run_summary", "config_table", "guide_table", "mean_percent",
    "endpoint_alignment", "inductive_bias_summary", "size_frame", "size_summary", "quality_frame", "quality_summary", "mimic_loss_labels",
]

#: Significance level of every test in the book.
ALPHA = 0.05
#: Fewest seeds on each side of a comparison for a verdict.
MIN_SEEDS = 3

REPRODUCED = "reproduced"
OPPOSITE = "opposite"
NO_EFFECT = "no effect detected"
NOT_TESTABLE = "not testable"
NOT_COMPARABLE = "not comparable"
NOT_RUN = "not run"
TOO_FEW_SEEDS = "too few seeds"
VERDICTS = (REPRODUCED, OPPOSITE, NO_EFFECT, NOT_TESTABLE, NOT_COMPARABLE, NOT_RUN, TOO_FEW_SEEDS)


# ----------------------------------------------------------------------------- effects and verdicts


@dataclass(frozen=True)
class Effect:
    """``treated - baseline`` over seeds, with its 95 % Welch interval and Welch's two-sided p-value."""

    baseline_mean: float
    treated_mean: float
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    n_baseline: int
    n_treated: int

    @property
    def seeds(self) -> int:
        """The smaller side's seed count: what limits the comparison."""
        return min(self.n_baseline, self.n_treated)

    @property
    def significant(self) -> bool:
        """p < :data:`ALPHA` (a NaN p-value, from two spread-free sides, is not significant)."""
        return bool(self.p_value < ALPHA)


def welch_effect(baseline: Sequence[float], treated: Sequence[float]) -> Effect:
    """The effect ``mean(treated) - mean(baseline)``, its 95 % interval and p (module docstring).

    Needs at least two values per side (a variance); fewer is a clear error, not a NaN.
    """
    a, b = np.asarray(baseline, dtype=float), np.asarray(treated, dtype=float)
    if a.size < 2 or b.size < 2:
        raise ValueError(f"an effect needs at least 2 seeds per side, got {a.size} (baseline) and {b.size} (treated)")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    diff = float(b.mean() - a.mean())
    if se == 0:
        return Effect(float(a.mean()), float(b.mean()), diff, diff, diff, float("nan"), a.size, b.size)
    df = se**4 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(stats.t.ppf(0.975, df)) * se
    p = float(stats.ttest_ind(b, a, equal_var=False).pvalue)
    return Effect(float(a.mean()), float(b.mean()), diff, diff - half, diff + half, p, a.size, b.size)


@dataclass(frozen=True)
class Precondition:
    """A condition a claim needs from our records (e.g. "the unguided Deep FCN overfits"), checked."""

    name: str
    holds: bool
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.name}: {'yes' if self.holds else 'no'}" + (f"; {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class Verdict:
    """One of :data:`VERDICTS`, why, and the effect it rests on (``None`` when no test was made)."""

    verdict: str
    reason: str
    effect: Effect | None = None


def verdict(baseline: Sequence[float], treated: Sequence[float], paper_direction: int | None,
            precondition: Precondition | None = None, min_seeds: int = MIN_SEEDS) -> Verdict:
    """The book's one verdict rule (module docstring), in the order its checks apply.

    ``paper_direction`` is the sign of the paper's effect (+1: the paper's treated value is higher,
    -1: lower; ``None``: the paper states no direction). A lower-is-better metric needs no special
    case: its direction is already in the sign.
    """
    if paper_direction not in (1, -1, None):
        raise ValueError(f"paper_direction must be +1, -1 or None, got {paper_direction!r}")
    if not len(baseline) or not len(treated):
        return Verdict(NOT_RUN, f"no records: {len(baseline)} baseline and {len(treated)} treated seeds")
    if paper_direction is None:
        return Verdict(NOT_COMPARABLE, "the paper states no effect to compare")
    if precondition is not None and not precondition.holds:
        return Verdict(NOT_TESTABLE, str(precondition))
    if min(len(baseline), len(treated)) < min_seeds:
        return Verdict(TOO_FEW_SEEDS, f"{len(baseline)} and {len(treated)} seeds; a verdict needs {min_seeds} per side")
    e = welch_effect(baseline, treated)
    if not e.significant:
        return Verdict(NO_EFFECT, f"p = {e.p_value:.2g} ≥ {ALPHA}", e)
    same = np.sign(e.effect) == paper_direction
    return Verdict(REPRODUCED if same else OPPOSITE,
                   f"p = {e.p_value:.2g}, {'the paper' if same else 'not the paper'}'s direction", e)


# ----------------------------------------------------------------------------- selecting records


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


def values(records: Iterable[dict[str, Any]], name: str, metric: str, scale: float = 1.0) -> list[float]:
    """One metric of every seed of one named run, scaled (e.g. 100 for %)."""
    return [scale * r["metrics"][metric] for r in records if r["name"] == name]


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


# ----------------------------------------------------------------------------- contrasts in a chapter


def contrasts_table(groups: dict[str, list[dict[str, Any]]], contrasts: Sequence[tuple[str, str]],
                    metric: str, scale: float = 100.0, lower_is_better: bool = False) -> pd.DataFrame:
    """For each group (a target or a setting) and each (treated, baseline) pair of names: the effect.

    Columns: group, treated, baseline, the two means, effect, its 95 % interval, p, seeds and a
    ``reading`` ("better", "worse", "no effect detected" or "too few seeds"; better means lower
    when ``lower_is_better``). No paper is involved: page 98 holds the verdicts against the paper.
    """
    rows = []
    for (group, recs), (treated, baseline) in itertools.product(groups.items(), contrasts):
        a, b = values(recs, baseline, metric, scale), values(recs, treated, metric, scale)
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
    return (f"{head}, {row['effect']:+.{digits}f} (95 % CI {row['ci_low']:+.{digits}f} to {row['ci_high']:+.{digits}f}, "
            f"p = {row['p_value']:.2g}, {row['seeds']} seeds)")


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
    """The trained guides: accuracy, parameters and how they were trained, one row per family."""
    return pd.DataFrame([{"guide": family, "test acc (%)": 100 * r["metrics"]["test_acc"],
                          "train acc (%)": 100 * r["metrics"]["train_acc"], "parameters": r["metrics"]["parameters"],
                          "training images": r["config"]["n_train"] or full_train_size,
                          "epochs": r["config"]["epochs"]} for family, r in guides.items()]).set_index("guide").round(1)


# ----------------------------------------------------------------------------- overfitting


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


# ----------------------------------------------------------------------------- alignment


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


# ----------------------------------------------------------------------------- inductive bias (chapter 01)


def inductive_bias_summary(records: list[dict[str, Any]]) -> str:
    """Chapter 01's findings as Markdown, from its records (``fcn``, ``cnn``, ``deep_fcn``): who fits,
    who generalises, and whether the deep FCN trains; every clause follows the numbers."""
    m = metrics_frame(records).groupby("name")[["train_acc", "test_acc", "best_test_acc"]].mean() * 100
    loss = history_frame(records).groupby(["name", "epoch"])["test_loss"].mean()
    fcn_best, last, cnn_best = int(loss["fcn"].idxmin()), int(loss["fcn"].index.max()), int(loss["cnn"].idxmin())
    gap = {k: m.loc[k, "train_acc"] - m.loc[k, "test_acc"] for k in ("fcn", "cnn")}
    fcn_curve = (f"its test loss is lowest at epoch {fcn_best} of {last} and rises after that, the signature of overfitting"
                 if fcn_best < last else f"its test loss is still falling at epoch {last}")
    gain = m.loc["cnn", "test_acc"] - m.loc["fcn", "test_acc"]
    if gap["cnn"] < gap["fcn"]:
        cnn = (f"**The CNN generalises better.** With the same number of parameters it reaches "
               f"{m.loc['cnn', 'test_acc']:.1f}% test accuracy, {gain:+.1f} points over the FCN, with a smaller "
               f"train-test gap ({gap['cnn']:.1f} points against {gap['fcn']:.1f}).")
    else:
        cnn = (f"**The CNN learns what transfers.** With the same number of parameters it reaches "
               f"{m.loc['cnn', 'test_acc']:.1f}% test accuracy (best epoch {m.loc['cnn', 'best_test_acc']:.1f}%), "
               f"{gain:+.1f} points over the FCN. It overfits too: its train-test gap ({gap['cnn']:.1f} points) "
               f"is no smaller than the FCN's ({gap['fcn']:.1f}), and its test loss turns up after epoch {cnn_best}. "
               "Without augmentation or regularisation both nets overfit; the architecture decides how much of "
               "what they fit carries over to new images.")
    deep = "hardly trains" if m.loc["deep_fcn", "train_acc"] < m.loc["fcn", "train_acc"] / 2 else "trains more slowly"
    return (f"* **The FCN fits the training set better than the test set.** It reaches {m.loc['fcn', 'train_acc']:.1f}% "
            f"on the training images but {m.loc['fcn', 'test_acc']:.1f}% on the test images; {fcn_curve}.\n"
            f"* {cnn}\n"
            f"* **The deep FCN {deep}.** Sixteen plain layers of 128 units reach {m.loc['deep_fcn', 'train_acc']:.1f}% on "
            f"the *training* set, against the shallow FCN's {m.loc['fcn', 'train_acc']:.1f}%: its problem is "
            "optimisation, not overfitting.")


# ----------------------------------------------------------------------------- mimic (chapter 07)


def size_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per student of the size sweep: family (``labels``, ``mimic``, ...), width, parameters, test acc (%)."""
    df = pd.DataFrame([{"name": r["name"], "seed": r["seed"], "family": r["name"].rsplit("-h", 1)[0],
                        "width": int(r["name"].rsplit("-h", 1)[1]), "parameters": r["metrics"]["parameters"],
                        "test_acc": 100 * r["metrics"]["test_acc"]} for r in records])
    return df


def size_summary(size: pd.DataFrame, teacher_acc: float, mlp_depth: int) -> str:
    """What the size sweep shows: each family's best student, and mimic vs labels at the largest width."""
    best = size.groupby("family")["test_acc"].max()
    widest = size[size["width"] == size["width"].max()].groupby("family")["test_acc"].mean()
    verb = "beats" if widest["mimic"] > widest["labels"] else "does not beat"
    return (f"The best label-trained shallow net reaches {best['labels']:.1f}%, the best mimic student "
            f"{best['mimic']:.1f}% and the best convolution-free mimic {best['mimic_noconv']:.1f}%, against "
            f"{teacher_acc:.1f}% for the deep teacher. At the largest width ({size['width'].max():,} hidden units), "
            f"mimicry {verb} label training ({widest['mimic']:.1f}% vs {widest['labels']:.1f}%, means over seeds). "
            f"Without convolution, {mlp_depth} hidden layers of the same size reach at best "
            f"{best['deep_mlp_mimic']:.1f}% by mimicry and {best['deep_mlp_labels']:.1f}% on labels, against "
            f"{best['mimic_noconv']:.1f}% for one hidden layer by mimicry and {best['mimic']:.1f}% with the convolution.")


def quality_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per student of the teacher-quality study: width, teacher and student test accuracy (%)."""
    return pd.DataFrame([{"name": r["name"], "seed": r["seed"], "width": int(r["name"].rsplit("-h", 1)[1]),
                          "teacher_test_acc": 100 * r["metrics"]["teacher_test_acc"],
                          "test_acc": 100 * r["metrics"]["test_acc"]} for r in records])


def quality_summary(quality: pd.DataFrame) -> str:
    """Per width, the correlation of student with teacher accuracy, and how often a student beats its teacher."""
    corr = {w: round(float(np.corrcoef(g["teacher_test_acc"], g["test_acc"])[0, 1]), 2)
            for w, g in quality.groupby("width")}
    passed = 100 * float((quality["test_acc"] > quality["teacher_test_acc"]).mean())
    return (f"Correlation of student with teacher accuracy, per student width: {corr}. "
            f"Runs where the student beats its teacher: {passed:.0f}%.")


def mimic_loss_labels(temperatures: Iterable[float]) -> dict[str, str]:
    """Display names of the loss study's runs (``loss-logits``, ``loss-kd-T4``, ...)."""
    return {"loss-logits": "L2 on logits (mimic)", "loss-probs": "cross-entropy on teacher probabilities",
            "loss-labels": "labels only", **{f"loss-kd-T{t:g}": f"Hinton KD, T = {t:g}" for t in temperatures}}


# ----------------------------------------------------------------------------- error consistency


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


#: The guide family each guided condition follows (for "each guide vs its guided nets").
GUIDED_BY = {"trained_guide": "resnet18", "small_cnn_guide": "small_cnn"}


def kappa_table(records: list[dict[str, Any]], guides: dict[str, dict[str, Any]],
                target: str = "deep_fcn") -> pd.DataFrame:
    """Error consistency between a chapter's classifiers, with the controls a claim about guides needs.

    Rows: unguided vs unguided (pairs of seeds), unguided vs guided (same seed, per guide family),
    guided vs guided across guide families (same seed), each guide vs its guided nets, each guide vs
    the unguided nets, and the guides together. Columns: pair, kappa (mean), sd, pairs averaged.
    """
    correct = {(r["config"]["condition"], r["seed"]): r["metrics"]["test_correct"] for r in records
               if r["config"]["target"] == target}
    seeds = sorted({s for _, s in correct})
    guide_correct = {fam: g["metrics"]["test_correct"] for fam, g in guides.items()}
    pairs: dict[str, list[tuple[str | None, str | None]]] = {
        "unguided vs unguided (other seed)": [(correct.get(("no_guide", a)), correct.get(("no_guide", b)))
                                              for a, b in itertools.combinations(seeds, 2)]}
    for cond, fam in GUIDED_BY.items():
        pairs[f"unguided vs guided by {fam} (same seed)"] = [(correct.get(("no_guide", s)), correct.get((cond, s)))
                                                             for s in seeds]
    pairs["guided by resnet18 vs guided by small_cnn (same seed)"] = [
        (correct.get(("trained_guide", s)), correct.get(("small_cnn_guide", s))) for s in seeds]
    for cond, fam in GUIDED_BY.items():
        pairs[f"{fam} guide vs its guided nets"] = [(guide_correct.get(fam), correct.get((cond, s))) for s in seeds]
        pairs[f"{fam} guide vs the unguided nets"] = [(guide_correct.get(fam), correct.get(("no_guide", s)))
                                                      for s in seeds]
    pairs["the guides together"] = [(guide_correct.get("resnet18"), guide_correct.get("small_cnn"))]
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
