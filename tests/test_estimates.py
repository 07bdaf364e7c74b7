"""The book's one estimate: which epoch each rule picks, where its test number comes from, and when a
record cannot give it; checked on toy histories and on the committed records."""

from __future__ import annotations

import pytest

from untrainable import analysis as A
from untrainable.paths import repo_root
from untrainable.results import load_record


def _history(valid_acc, valid_loss, test_acc):
    return [{"epoch": i + 1, "valid_acc": a, "valid_loss": lo, "test_acc": t}
            for i, (a, lo, t) in enumerate(zip(valid_acc, valid_loss, test_acc))]


def _record(history, **metrics):
    return {"name": "toy", "seed": 0, "history": history, "metrics": metrics}


def test_each_rule_picks_its_epoch_and_ties_go_to_the_lower_validation_loss():
    # epochs 2 and 3 tie on validation accuracy; 3 has the lower validation loss; 1 the lowest loss overall
    r = _record(_history([0.4, 0.6, 0.6, 0.5], [0.9, 1.2, 1.1, 1.3], [0.41, 0.62, 0.63, 0.55]), test_acc=0.55)
    assert A.rule_epoch(r, "max_valid_acc") == 3 and A.estimate(r, "test_acc", "max_valid_acc") == 0.63
    assert A.rule_epoch(r, "min_valid_loss") == 1 and A.estimate(r, "test_acc", "min_valid_loss") == 0.41
    assert A.rule_epoch(r, "final_epoch") == 4 and A.estimate(r, "test_acc", "final_epoch") == 0.55
    assert A.estimate(r) == A.estimate(r, "test_acc", A.PRIMARY_RULE) == 0.63 and A.PRIMARY_RULE == "max_valid_acc"


def test_an_untested_epoch_falls_back_to_the_stored_checkpoint_or_is_not_available():
    """``fit(test_every_epoch=False)``: the history has no test number at the rule's epoch."""
    history = _history([0.4, 0.6, 0.5], [0.9, 1.2, 1.3], [0.41, None, 0.5])
    stored = _record(history, test_acc=0.5, acc_checkpoint_epoch=2, acc_checkpoint_test_acc=0.61)
    assert A.estimate(stored, "test_acc", "max_valid_acc") == 0.61
    with pytest.raises(A.RuleNotAvailable, match="rule 'max_valid_acc' picks epoch 2"):
        A.estimate(_record(history, test_acc=0.5, acc_checkpoint_epoch=3, acc_checkpoint_test_acc=0.5),
                   "test_acc", "max_valid_acc")


def test_a_run_tested_once_at_the_end_has_a_rule_only_where_it_picks_the_last_epoch():
    """Chapter 06: the history is validation only, the test split is evaluated after the last epoch."""
    def valid_only(*epochs):
        return [{"epoch": i + 1, "valid_acc": a, "valid_loss": lo} for i, (a, lo) in enumerate(epochs)]

    rising = _record(valid_only((0.5, 1.0), (0.7, 0.8)), test_acc=0.68, perplexity=2.2)
    assert A.estimate(rising, "test_acc", "max_valid_acc") == 0.68
    assert A.estimate(rising, "perplexity", "min_valid_loss") == 2.2
    peaked = _record(valid_only((0.7, 0.8), (0.6, 0.9)), test_acc=0.58)
    with pytest.raises(A.RuleNotAvailable, match="epoch 1"):
        A.estimate(peaked, "test_acc", "max_valid_acc")
    assert A.estimate(peaked, "test_acc", "final_epoch") == 0.58


def test_a_run_without_a_validation_split_has_only_its_final_epoch():
    r = _record([{"epoch": 1, "test_acc": 0.3}, {"epoch": 2, "test_acc": 0.4}], test_acc=0.4)
    with pytest.raises(A.RuleNotAvailable, match="no validation split"):
        A.estimate(r, "test_acc", "min_valid_loss")
    assert A.row_rule([r]) == A.FINAL_EPOCH and A.estimate(r, "test_acc", A.row_rule([r])) == 0.4
    with_valid = _record(_history([0.5], [1.0], [0.5]))
    assert A.row_rule([with_valid]) == A.PRIMARY_RULE and A.row_rule([with_valid], loss_type=True) == A.LOSS_RULE


def test_a_missing_metric_or_rule_is_a_clear_error():
    with pytest.raises(KeyError, match=r"toy \(seed 0\) has no metric 'test_loss'"):
        A.estimate(_record(_history([0.5], [1.0], [0.5])), "test_loss", "final_epoch")
    with pytest.raises(ValueError, match="unknown estimate rule 'best'"):
        A.estimate(_record(_history([0.5], [1.0], [0.5])), "test_acc", "best")


def _committed(experiment):
    return [load_record(p) for p in sorted((repo_root() / "results" / "full" / experiment).glob("*.json"))]


def test_the_rules_give_the_checkpoints_the_chapters_stored():
    """Chapter 04's ``checkpoint_test_acc`` is the lowest-validation-loss epoch's; chapter 08's
    ``acc_checkpoint_test_acc`` the highest-validation-accuracy epoch's (first of ties: where a tie has no
    lower loss later, the primary rule picks the same epoch)."""
    image = [r for r in _committed("image_guidance") if "checkpoint_test_acc" in r["metrics"]]
    assert image, "no committed chapter-04 records"
    for r in image:
        assert A.estimate(r, "test_acc", "min_valid_loss") == r["metrics"]["checkpoint_test_acc"]
        assert A.estimate(r, "test_acc", "final_epoch") == r["metrics"]["test_acc"]
    transfer = [r for r in _committed("transfer_comparison") if "acc_checkpoint_epoch" in r["metrics"]]
    assert transfer, "no committed chapter-08 records"
    for r in transfer:
        ours, theirs = A.rule_epoch(r, "max_valid_acc"), r["metrics"]["acc_checkpoint_epoch"]
        if ours == theirs:
            assert A.estimate(r, "test_acc", "max_valid_acc") == r["metrics"]["acc_checkpoint_test_acc"]
            continue
        mine, first = r["history"][ours - 1], r["history"][theirs - 1]  # a tie, which the primary rule breaks
        assert mine["valid_acc"] == first["valid_acc"] and mine["valid_loss"] < first["valid_loss"]


def test_a_chapter_reads_the_books_estimate_through_values_and_contrasts():
    """``rule=`` switches a chapter's numbers from a stored metric to the book's estimate in one argument."""
    def run(condition, seed, tests):
        return {**_record(_history([0.4, 0.6], [0.9, 1.2], tests), checkpoint_test_acc=tests[0]),
                "name": condition, "seed": seed}

    recs = [run("no_guide", s, (0.30, 0.30 + 0.01 * s)) for s in range(3)] + \
        [run("guide", s, (0.30, 0.40 + 0.01 * s)) for s in range(3)]
    assert A.values(recs, "guide", "checkpoint_test_acc", 100) == [30.0, 30.0, 30.0]
    assert A.values(recs, "guide", "test_acc", 100, rule=A.PRIMARY_RULE) == pytest.approx([40.0, 41.0, 42.0])
    t = A.contrasts_table({"g": recs}, [("guide", "no_guide")], "test_acc", rule=A.PRIMARY_RULE)
    assert t.loc[0, "effect"] == pytest.approx(10.0) and t.loc[0, "reading"] == "better"


def test_estimated_copies_carry_the_estimate_under_a_name_that_says_its_rule():
    r = _record(_history([0.4, 0.6, 0.5], [0.9, 1.2, 1.3], [0.41, 0.62, 0.55]), test_acc=0.55)
    key = A.estimate_key("test_acc", A.PRIMARY_RULE)
    (copy,) = A.estimated([r])
    assert key == "test_acc@max_valid_acc" and copy["metrics"][key] == 0.62 and key not in r["metrics"]
    assert A.estimated([r], rule=A.LOSS_RULE)[0]["metrics"]["test_acc@min_valid_loss"] == 0.41
    assert set(A.RULE_WORDS) == set(A.RULES) and A.RULE_WORDS[A.FINAL_EPOCH] == "the last epoch"
    with pytest.raises(ValueError, match="unknown estimate rule"):
        A.estimate_key("test_acc", "best_epoch")


def test_the_right_wrong_string_is_the_rules_epochs_or_not_available():
    history = _history([0.4, 0.6, 0.5], [0.9, 1.2, 1.3], [0.41, 0.62, 0.55])
    history[1]["test_correct"] = "110"
    r = _record(history, test_correct="100")
    assert A.correct_at(r) == "110" and A.correct_at(r, A.FINAL_EPOCH) == "100"
    with pytest.raises(A.RuleNotAvailable, match="picks epoch 1, where the run kept no right/wrong string"):
        A.correct_at(r, A.LOSS_RULE)


def test_a_language_models_perplexity_is_read_at_the_rules_epoch_from_its_test_loss():
    """A run stores ``perplexity`` at its end only; at an earlier epoch a rule picks, it is exp of that epoch's
    per-token test cross-entropy, which the history keeps."""
    import math

    from untrainable.analysis.estimates import estimate

    history = [{"epoch": 1, "valid_loss": 2.0, "valid_acc": 0.1, "test_loss": 2.1},
               {"epoch": 2, "valid_loss": 1.5, "valid_acc": 0.2, "test_loss": 1.6},
               {"epoch": 3, "valid_loss": 1.7, "valid_acc": 0.3, "test_loss": 1.8}]
    record = {"name": "lm", "seed": 0, "history": history, "metrics": {"perplexity": math.exp(1.8)}}
    assert estimate(record, "perplexity", "min_valid_loss") == pytest.approx(math.exp(1.6))
    assert estimate(record, "perplexity", "final_epoch") == pytest.approx(math.exp(1.8))


def test_regimes_side_by_side_show_which_failure_by_best_train_accuracy_and_the_books_estimate():
    def run(name, train, valid, test):
        history = [{"epoch": i + 1, "train_acc": t, "valid_acc": v, "valid_loss": 1.0, "test_acc": s}
                   for i, (t, v, s) in enumerate(zip(train, valid, test))]
        return {"name": name, "history": history, "metrics": {"test_acc": test[-1]}}

    overfits = [run("no_guide", (0.5, 1.0), (0.40, 0.30), (0.41, 0.31)), run("no_guide", (0.6, 0.98), (0.42, 0.3),
                                                                               (0.43, 0.29))]
    fails = [run("no_guide", (0.11, 0.12), (0.10, 0.11), (0.10, 0.12)) for _ in range(3)]
    table = A.regimes_table({"overfits": overfits, "fails": fails}, {"no_guide": "no guide"})
    assert list(table.index) == [("overfits", "no guide"), ("fails", "no guide")]
    assert table.loc[("overfits", "no guide"), "best train acc (%)"] == "99.0 ± 1.4"
    estimate = table.columns[-1]
    assert table.loc[("overfits", "no guide"), estimate] == "42.0 ± 1.4"  # the epoch of highest validation accuracy
    assert table.loc[("fails", "no guide"), "seeds"] == 3 and table.loc[("fails", "no guide"), estimate] == "12.0 ± 0.0"
