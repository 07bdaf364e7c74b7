"""Chapter 07's strong-teacher section as tables and words (untrainable.experiments.mimic_strong_tables)."""

from __future__ import annotations

import pytest

from untrainable.experiments import mimic_strong as ms
from untrainable.experiments import mimic_strong_tables as mt


def _student(name: str, seed: int, test: float, teacher: float | None = None, valid: bool = True) -> dict:
    """A student whose test accuracy is ``test`` at its best-validation epoch (2 of 3) and 0.1 elsewhere."""
    loss = "labels" if name.startswith("labels") else "logits"
    history = [{"epoch": e, "test_acc": test if e == 2 else 0.1, "train_acc": 0.9,
                **({"valid_acc": 0.5 if e == 2 else 0.4, "valid_loss": 1.0} if valid else {})} for e in (1, 2, 3)]
    if not valid:
        history[-1]["test_acc"] = test  # no validation: read at the last epoch
    teachers = None if loss == "labels" else {"seeds": [0] if name.startswith("mimic_one") else [0, 1, 2]}
    return {"name": name, "seed": seed, "history": history, "config": {"loss": loss, "hidden": 64,
                                                                        "teachers": teachers},
            "metrics": {"test_acc": history[-1]["test_acc"], **({"teacher_test_acc": teacher} if teacher else {})}}


def _regime(labels: float, mimic: float, teacher: float, valid: bool = True) -> list[dict]:
    return ([_student("labels-h64", s, labels + 0.002 * s, valid=valid) for s in range(3)]
            + [_student("mimic-h64", s, mimic + 0.002 * s, teacher, valid=valid) for s in range(3)])


def test_each_width_reads_labels_and_mimicry_at_the_regimes_rule():
    table = mt.width_table({"strong": _regime(0.60, 0.70, 0.88), "weak": _regime(0.64, 0.64, 0.67, valid=False)})
    strong, weak = table.loc[("strong", "64")], table.loc[("weak", "64")]
    assert strong["shallow, trained on labels (%)"] == "60.2 ± 0.2 (n=3)"
    assert strong["shallow mimic of the ensemble (%)"] == "70.2 ± 0.2 (n=3)"
    assert strong["read at"] == "the epoch of highest validation accuracy" and weak["read at"] == "the last epoch"


def test_a_regime_without_headroom_says_mimicry_gains_nothing_and_one_with_it_does_not():
    text = mt.regimes_summary({"Strong": (_regime(0.60, 0.70, 0.88), 0.88),
                               "Weak": (_regime(0.645, 0.644, 0.67, valid=False), 0.67)}).splitlines()
    assert text[0].startswith("* **Strong**: the teacher ensemble 88.0%") and "+10.0 points" in text[0]
    assert "better" in text[0] and "no headroom" not in text[0] and "not testable" not in text[0]
    assert "2.3 points (needs ≥ 8)" in text[1] and text[1].endswith("Mimicry gains nothing when the teacher has no "
                                                                      "headroom.")


def test_the_ensemble_is_read_from_its_students_not_from_the_one_teachers():
    runs = _regime(0.6, 0.7, 0.88) + [_student("mimic_one-h64", s, 0.68, 0.86) for s in range(3)]
    assert ms.ensemble_accuracy(runs) == pytest.approx(0.88)
    assert [r["name"] for r in mt.mimic_students(runs)].count("mimic_one-h64") == 3
    assert mt.contrasts(ms.preset("full"))[-1] == ("mimic-h4096", "mimic_one-h4096")
    assert mt.name_labels(ms.preset("full"))["mimic_one-h4096"] == "shallow mimic of one teacher, 4,096 units"


def test_a_regime_whose_students_still_rise_says_page_98_cannot_test_it():
    rising = _regime(0.60, 0.70, 0.88)
    for r in rising:
        r["history"][-1]["valid_acc"] = 0.6  # a new best in the last epoch: 10 points above the plateau
    text = mt.regimes_summary({"Strong": (rising, 0.88)})
    assert text.endswith("so page 98 calls the comparison not testable.")
    assert "rose by at most 10.00 points" in text
