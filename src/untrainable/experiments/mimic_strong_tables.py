"""What chapter 07's strong-teacher section shows (:mod:`untrainable.experiments.mimic_strong`): the teachers,
the sweep, each width's students in both regimes and each regime in words, all read from the records.

Every student's accuracy is the book's estimate (test accuracy at the epoch of highest validation accuracy,
:data:`~untrainable.analysis.estimates.PRIMARY_RULE`); chapter 07's weak-teacher students kept no validation
split, so theirs is read at the last epoch (:func:`untrainable.analysis.row_rule` says which).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from untrainable.analysis.contrasts import contrasts_table
from untrainable.analysis.estimates import FINAL_EPOCH, RULE_WORDS, estimate, row_rule
from untrainable.analysis.preconditions import CheckedPrecondition, teacher_beats_best_student, trained_to_plateau
from untrainable.experiments import image_guides as guides
from untrainable.experiments.mimic_strong import MIN_TEACHER_GAP, STAGES, cell_of, ensemble_accuracy, preset
from untrainable.experiments.mimic_strong_configs import Cell, StrongPreset

__all__ = ["FAMILY_LABELS", "by_stage", "describe", "name_labels", "contrasts", "at_estimate", "weak_students", "mimic_students",
           "teacher_accuracy", "teacher_table", "sweep_table", "width_table", "regime_summary", "regimes_summary"]

#: Each family of record names in words (a width's records are ``labels-h<width>``, ``mimic-h<width>``).
FAMILY_LABELS = {"labels": "shallow, trained on labels", "mimic": "shallow mimic of the ensemble",
                 "mimic_one": "shallow mimic of one teacher"}


def by_stage(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """:func:`~untrainable.experiments.mimic_strong.run`'s records by stage (teachers, sweep, runs)."""
    return {stage: [r for r in records if r["stage"] == stage] for stage in STAGES}


def describe(profile: str) -> str:
    """The section's setting in ``profile``, from its preset, as Markdown."""
    p = preset(profile)
    images = "every training image" if p.teacher.n_train is None else f"{p.teacher.n_train:,} training images"
    transfer = ("all the teachers' training images" if p.n_train is None
                else f"{p.n_train:,} of the teachers' training images")
    return (f"Profile **{profile}**: {len(p.ensemble)} ResNet-18 teachers (width {p.teacher.width}, "
            f"{_count(p.teacher.epochs, 'epoch')} of SGD with crop and flip on {images}, with "
            f"{p.teacher.n_valid:,} held out for validation); shallow students of "
            f"{', '.join(f'{h:,}' for h in p.widths)} hidden units (a {p.bottleneck}-unit linear bottleneck, "
            f"{p.conv_channels} convolution channels), {_count(p.epochs, 'epoch')} of Adam ({p.precision}), on "
            f"{transfer} and {_count(p.views, 'augmented view')} of each; {_count(len(p.seeds), 'seed')} a width, "
            f"{len(p.widest_seeds)} at the widest.")


def _count(n: int, noun: str) -> str:
    """'1 epoch', '30 epochs'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def name_labels(p: StrongPreset) -> dict[str, str]:
    """Each run name of the preset in words (``mimic-h4096`` -> "shallow mimic of the ensemble, 4,096 units")."""
    return {f"{family}-h{h}": f"{words}, {h:,} units" for family, words in FAMILY_LABELS.items() for h in p.widths}


def contrasts(p: StrongPreset) -> list[tuple[str, str]]:
    """The comparisons the section tests (treated, baseline): mimicry against labels at each width, then the
    ensemble's student against the one teacher's at the widest."""
    widest = max(p.widths)
    return [(f"mimic-h{h}", f"labels-h{h}") for h in p.widths] + (
        [(f"mimic-h{widest}", f"mimic_one-h{widest}")] if p.one_teacher_seeds else [])


def at_estimate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the students' records whose ``test_acc`` is their estimate under the records' rule (what the
    figures plot: :func:`untrainable.analysis.size_frame` and ``quality_frame`` read ``test_acc``)."""
    rule = row_rule(records)
    return [{**r, "metrics": {**r["metrics"], "test_acc": estimate(r, "test_acc", rule)}} for r in records]


def weak_students(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chapter 07's weak-teacher size sweep, its shallow students only (labels and mimicry of the ensemble, with
    convolution): the records this section compares its own with."""
    return [r for r in records if r["name"].split("-h")[0] in ("labels", "mimic")]


def mimic_students(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The students that learnt from a teacher's logits (of the ensemble or of one teacher)."""
    return [r for r in records if r["config"]["loss"] == "logits"]


def teacher_accuracy(teachers: list[dict[str, Any]]) -> float:
    """The teachers' mean test accuracy (%), each at its kept (best-validation) checkpoint."""
    return 100 * float(np.mean([guides.guide_accuracy(r) for r in teachers]))


def teacher_table(teachers: list[dict[str, Any]], students: list[dict[str, Any]]) -> pd.DataFrame:
    """Each teacher's test accuracy at its kept checkpoint, epochs, parameters and training time, then the
    ensemble's accuracy (its mean logits, as the students measured it)."""
    rows = [{"teacher": f"ResNet-18, seed {r['seed']}", "test acc (%)": f"{100 * guides.guide_accuracy(r):.1f}",
             "epochs": r["config"]["epochs"], "parameters": f"{r['metrics']['parameters']:,}",
             "training (process-min)": f"{r['wall_time_s'] / 60:.0f}", "precision": r.get("precision", "")}
            for r in teachers]
    rows.append({"teacher": f"ensemble of {len(teachers)} (mean logits)",
                 "test acc (%)": f"{100 * ensemble_accuracy(students):.1f}", "epochs": "", "parameters": "",
                 "training (process-min)": "", "precision": ""})
    return pd.DataFrame(rows).set_index("teacher")


def sweep_table(sweep: list[dict[str, Any]], lrs: dict[Cell, float]) -> pd.DataFrame:
    """The sweep: each run's highest validation accuracy (the book's criterion) and lowest validation loss,
    and whether its learning rate is the one chosen (``lrs``) for its cell."""
    rows = [{"student": FAMILY_LABELS["mimic" if r["config"]["loss"] == "logits" else "labels"],
             "width": r["config"]["hidden"], "learning rate": f"{r['config']['lr']:g}",
             "highest validation accuracy (%)": f"{100 * max(h['valid_acc'] for h in r['history']):.1f}",
             "lowest validation loss": f"{min(h['valid_loss'] for h in r['history']):.3f}",
             "chosen": "yes" if lrs.get(cell_of(r["config"])) == r["config"]["lr"] else ""} for r in sweep]
    return pd.DataFrame(rows).set_index(["student", "width"])


def width_table(regimes: dict[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """Per regime (its words -> its students' records) and width: labels and mimicry of the ensemble, each
    mean ± sd over seeds (n) under the regime's rule, which the last column names."""
    rows = []
    for regime, records in regimes.items():
        rule = row_rule(records)
        for h in sorted({r["config"]["hidden"] for r in records}):
            row: dict[str, Any] = {"regime": regime, "width": f"{h:,}"}
            for family in ("labels", "mimic"):
                row[f"{FAMILY_LABELS[family]} (%)"] = _mean_sd(
                    [estimate(r, "test_acc", rule) for r in records if r["name"] == f"{family}-h{h}"])
            rows.append({**row, "read at": RULE_WORDS[rule]})
    return pd.DataFrame(rows).set_index(["regime", "width"])


def _mean_sd(values: list[float]) -> str:
    """'64.7 ± 0.3 (n=5)' of accuracies (fractions) in %, or "" when there are none."""
    v = 100 * np.array(values)
    return f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0:.1f} (n={len(v)})" if len(v) else ""


def regime_summary(regime: str, gap: CheckedPrecondition, widest: pd.Series,
                   plateau: CheckedPrecondition | None = None) -> str:
    """One regime in words, from its records: the teacher's headroom (``gap``,
    :func:`~untrainable.analysis.preconditions.teacher_beats_best_student`) and mimicry against labels at the
    widest student (``widest``, a row of :func:`untrainable.analysis.contrasts_table`). Where the teacher has no headroom and mimicry shows no gain,
    it says so in those words; where the students are not at a plateau (``plateau``), that page 98 calls the
    comparison not testable."""
    if "gap" not in gap.numbers or pd.isna(widest.get("effect", np.nan)):
        return f"* **{regime}**: too few records to read the regime ({gap.detail})."
    text = (f"* **{regime}**: {gap.detail}. Mimicry against labels at the widest student: {widest['effect']:+.1f} "
            f"points (95 % CI {widest['ci_low']:+.1f} to {widest['ci_high']:+.1f}, p = {widest['p_value']:.2g}, "
            f"{widest['seeds']} seeds): {widest['reading']}.")
    if not gap.holds and widest["reading"] != "better":
        text += " Mimicry gains nothing when the teacher has no headroom."
    if plateau is not None and not plateau.holds:
        text += (f" But not every setting is trained to a plateau ({plateau.detail}), so page 98 calls the "
                 "comparison not testable.")
    return text


def regimes_summary(regimes: dict[str, tuple[list[dict[str, Any]], float]]) -> str:
    """Each regime (its words -> its students' records and its ensemble's test accuracy, a fraction) in words
    (:func:`regime_summary`), each read under its records' rule."""
    lines = []
    for regime, (records, ensemble) in regimes.items():
        rule = row_rule(records)
        labels = {}
        for r in records:
            if r["config"]["loss"] == "labels" and r["name"].startswith("labels-h"):
                labels.setdefault(r["name"], []).append(r)
        gap = teacher_beats_best_student(ensemble, labels, "the teacher ensemble", MIN_TEACHER_GAP, rule=rule)
        widest = max(r["config"]["hidden"] for r in records if r["name"].startswith("mimic-h"))
        row = contrasts_table({regime: records}, [(f"mimic-h{widest}", f"labels-h{widest}")], "test_acc",
                              rule=rule).iloc[0]
        plateau = trained_to_plateau(records) if rule != FINAL_EPOCH else None  # none without validation
        lines.append(regime_summary(regime, gap, row, plateau))
    return "\n".join(lines)
