"""Issue #30: the chapters report the book's one estimate, with the paper's rule and the last epoch as reported
sensitivities; a change of rule is said, from the records; one condition has one number in every chapter."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from untrainable import analysis as A
from untrainable.analysis.preconditions import CheckedPrecondition
from untrainable.paths import repo_root

#: The pages whose reported accuracies must be the book's estimate.
PAGES = ("04_fcn_guidance", "05_plain_cnn_guidance")


def _code(page: str) -> str:
    cells = json.loads((repo_root() / "notebooks" / f"{page}.ipynb").read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("page", PAGES)
def test_a_page_reports_no_stored_checkpoint_metric(page):
    """A stored checkpoint's accuracy (``checkpoint_test_acc``: the lowest validation loss's) is never a reported
    number: the tables are :func:`estimate_table`'s and the contrasts are read under ``PRIMARY_RULE``."""
    code = _code(page)
    assert "checkpoint_test_acc" not in code and "summary_table" not in code
    assert "A.estimate_table(" in code and 'rule=A.PRIMARY_RULE' in code


def test_the_chapters_check_their_preconditions_at_the_books_estimate():
    import inspect

    from untrainable.experiments import fcn_guidance, plain_cnn_guidance

    for module in (fcn_guidance, plain_cnn_guidance):
        rule = inspect.signature(module.preconditions).parameters["rule"].default
        assert rule == A.PRIMARY_RULE and "metric" not in inspect.signature(module.preconditions).parameters


def _run(name, seed, valid, tests, train=0.9):
    """Three epochs: ``valid`` = (accuracy, loss) per epoch, ``tests`` the test accuracy per epoch."""
    history = [{"epoch": i + 1, "valid_acc": a, "valid_loss": lo, "test_acc": t, "train_acc": train, "test_loss": 1.0}
               for i, ((a, lo), t) in enumerate(zip(valid, tests))]
    return {"name": name, "seed": seed, "history": history, "metrics": {"test_acc": tests[-1]}}


VALID = ((0.3, 1.0), (0.5, 1.2), (0.4, 1.4))  # the loss rule picks epoch 1, the book's epoch 2


def test_the_estimate_table_shows_the_books_estimate_then_the_sensitivities_with_headings_from_the_rules():
    runs = [_run("no_guide", s, VALID, (0.30, 0.40 + 0.02 * s, 0.35)) for s in range(3)]
    table = A.estimate_table(runs, {"no_guide": "no guide"})
    book, paper, last = (A.estimate_heading(rule) for rule in (A.PRIMARY_RULE, A.LOSS_RULE, A.FINAL_EPOCH))
    assert list(table.columns) == ["seeds", book, paper, last]
    assert book == "test acc (%) at the epoch of highest validation accuracy (the book's estimate)"
    assert paper == "test acc (%) at the epoch of lowest validation loss (the paper's rule)"
    row = table.loc["no guide"]
    assert (row[book], row[paper], row[last], row["seeds"]) == ("42.0 ± 2.0", "30.0 ± 0.0", "35.0 ± 0.0", 3)
    untested = [_run("r", 0, VALID, (0.3, None, 0.35)), _run("r", 1, VALID, (0.3, None, 0.35))]
    assert A.estimate_table(untested).loc["r", book] == A.RULE_NOT_AVAILABLE


def test_a_change_of_criterion_is_shown_run_by_run():
    from untrainable.experiments.image_presets import Run, RunSettings

    changes = {Run("deep_fcn", "untrained_guide"): (RunSettings(3e-4, 0.3), RunSettings(1e-3, 1.0)),
               Run("wide_fcn", "no_guide"): (RunSettings(3e-5), None)}
    table = A.selection_changes(changes, "valid_loss", "valid_acc")
    assert list(table.columns) == ["run", "chosen by highest validation accuracy", "chosen by lowest validation loss"]
    assert table.iloc[0].tolist() == ["deep_fcn/untrained_guide", "lr 0.0003, alpha 0.3", "lr 0.001, alpha 1"]
    assert table.iloc[1, 2] == "its learning rates were not swept at that alpha"
    text = A.selection_change_text(changes, "valid_loss", "valid_acc", 6)
    assert "moved the settings of 2 of the 6 swept runs (deep_fcn/untrained_guide, wide_fcn/no_guide)" in text
    assert A.selection_change_text({}, "valid_loss", "valid_acc", 6).startswith("The change of criterion moved none")


def test_why_the_rule_changed_is_read_from_the_records():
    control = [_run("no_guide", s, VALID, (0.30, 0.40, 0.38)) for s in range(3)]
    paper = pd.DataFrame({"chapter": ["04", "04", "05"], "setting": ["Deep FCN"] * 3,
                          "condition": ["trained guide", "untrained guide", "other"]}, index=["t", "u", "o"])
    verdicts = pd.DataFrame({"verdict": ["reproduced", "reproduced", "opposite"],
                             "verdict_min_valid_loss": ["no effect detected", "reproduced", "reproduced"]},
                            index=["t", "u", "o"])
    text = A.rule_change_text(control, verdicts, paper, "04", "Deep FCN")
    assert "checkpoint at epochs 1 to 1 of 3 (3 seeds), where its test accuracy is 30.0 %" in text
    assert "40.0 % at the epoch of highest validation accuracy" in text
    assert ("decide 1 of this chapter's claims differently (Deep FCN, trained guide: reproduced at the epoch of "
            "highest validation accuracy, no effect detected at the epoch of lowest validation loss)") in text
    alike = verdicts.assign(verdict_min_valid_loss=verdicts["verdict"])
    text = A.rule_change_text(control, alike, paper, "04", "Deep FCN")
    assert text.endswith("decide every claim of this chapter alike.")


def test_a_precondition_that_cannot_be_read_at_the_rule_is_said_apart_from_one_that_fails():
    unread = CheckedPrecondition("the nets agree", False, "rule not available", unread=A.RuleNotAvailable("no string"))
    failed = CheckedPrecondition("the control overfits", False, "rise 0.01", {"rise": 0.01})
    held = CheckedPrecondition("the guide is ahead", True, "", {"margin": 0.2})
    assert unread.status == A.RULE_NOT_AVAILABLE and failed.status == "does not hold"
    text = A.precondition_summary([unread, failed, held])
    assert text.startswith("1 of 3 preconditions fail (the control overfits)")
    assert "1 of 3 cannot be read at the book's estimate (the nets agree)" in text
    assert "fail" not in A.precondition_summary([unread, held]).split(".")[0]


def test_the_kappa_summary_carries_the_test_over_independent_pairs():
    rng = __import__("random").Random(3)
    base = "".join(str(int(rng.random() > 0.5)) for _ in range(300))
    noisy = lambda p: "".join(c if rng.random() > p else str(1 - int(c)) for c in base)  # noqa: E731

    def net(condition, seed, correct):
        history = [{"epoch": 1, "valid_acc": 0.5, "valid_loss": 1.0, "test_correct": correct}]
        return {"name": condition, "seed": seed, "history": history,
                "config": {"target": "deep_fcn", "condition": condition}, "metrics": {"test_correct": correct}}

    records = ([net("no_guide", s, noisy(0.5)) for s in range(10)]
               + [net(c, s, noisy(0.05)) for c in ("trained_guide", "small_cnn_guide") for s in range(5)])
    guides = {"resnet18": {"metrics": {"test_correct": base}}, "small_cnn": {"metrics": {"test_correct": base}}}
    table = A.kappa_table(records, guides)
    e = A.kappa_contrast(records, "trained_guide", "small_cnn_guide")
    text = A.kappa_summary(table, records)
    assert f"p = {e.p_value:.2g}" in text and "Welch over independent pairs" in text
    assert "Welch" not in A.kappa_summary(table)
    assert not math.isnan(table.set_index("pair").loc["unguided vs unguided (other seed, disjoint pairs)", "kappa"])
