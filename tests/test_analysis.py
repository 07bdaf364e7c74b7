"""The analysis layer against hand computations: Welch effects, the verdict rule, kappa, overfitting."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from untrainable import analysis as A


def test_welch_effect_matches_a_hand_computation_and_scipy():
    e = A.welch_effect([1, 2, 3], [4, 6, 8])
    # means 2 and 6; variances 1 and 4; se² = 1/3 + 4/3; Welch–Satterthwaite df = (5/3)² / ((1/3)²/2 + (4/3)²/2) = 50/17
    se, df = math.sqrt(5 / 3), 50 / 17
    half = stats.t.ppf(0.975, df) * se
    assert e.effect == pytest.approx(4.0)
    assert (e.ci_low, e.ci_high) == (pytest.approx(4 - half), pytest.approx(4 + half))
    assert e.p_value == pytest.approx(stats.ttest_ind([4, 6, 8], [1, 2, 3], equal_var=False).pvalue)
    assert e.p_value == pytest.approx(2 * stats.t.sf(4 / se, df))  # the same p from the t statistic by hand
    assert e.seeds == 3 and e.significant is bool(e.p_value < 0.05)


def test_welch_effect_refuses_a_side_without_a_variance():
    with pytest.raises(ValueError, match="at least 2 seeds per side"):
        A.welch_effect([1.0], [2.0, 3.0])


def test_verdicts_follow_the_one_rule():
    low, high = [10.0, 10.5, 9.8, 10.2], [14.0, 14.6, 13.9, 14.3]
    assert A.verdict(low, high, +1).verdict == A.REPRODUCED
    assert A.verdict(low, high, -1).verdict == A.OPPOSITE
    flat = [10.1, 9.9, 10.4, 10.0]
    assert A.verdict(low, flat, +1, paper_effect=4.0).verdict == A.NO_EFFECT  # the interval excludes the paper's 4
    assert A.verdict(low, flat, +1, paper_effect=0.1).verdict == A.INCONCLUSIVE  # it holds both 0 and 0.1
    assert A.verdict(low, flat, +1).verdict == A.INCONCLUSIVE  # no size given: nothing to exclude
    assert A.verdict(low, high, None).verdict == A.NOT_COMPARABLE
    assert A.verdict([], high, +1).verdict == A.NOT_RUN
    failed = A.Precondition("the control overfits", False, "rise 0.01")
    v = A.verdict(low, high, +1, precondition=failed)
    assert v.verdict == A.NOT_TESTABLE and "the control overfits" in v.reason
    assert A.verdict(low, high, +1, precondition=A.Precondition("ok", True)).verdict == A.REPRODUCED
    assert {A.verdict(low, high, d).verdict for d in (1, -1, None)} <= set(A.VERDICTS)
    with pytest.raises(ValueError, match="paper_direction"):
        A.verdict(low, high, 2)


def test_one_seed_or_two_never_get_a_verdict():
    """A huge difference is still no verdict with one seed on a side, and none with two (MIN_SEEDS = 3)."""
    one = A.verdict([1.0], [50.0, 51.0, 52.0], +1)
    assert one.verdict == A.TOO_FEW_SEEDS and one.effect is None and "1 and 3 seeds" in one.reason
    assert A.verdict([1.0, 1.1], [50.0, 51.0], +1).verdict == A.TOO_FEW_SEEDS


def test_error_consistency_is_cohens_kappa():
    # both right or both wrong on 3 of 4: c_obs = 0.75; accuracies 0.75 and 0.5: c_exp = 0.375 + 0.125 = 0.5
    assert A.error_consistency("1110", "1100") == pytest.approx((0.75 - 0.5) / (1 - 0.5))
    assert A.error_consistency("1100", "1100") == pytest.approx(1.0)
    assert A.error_consistency("1100", "0011") == pytest.approx(-1.0)
    assert A.error_consistency("10" * 50, "1100" * 25) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="different sets"):
        A.error_consistency("10", "101")


def _image_record(condition, seed, correct, last="0" * 8):
    """A Deep FCN run of two epochs: ``correct`` at epoch 1 (its highest validation accuracy), ``last`` at
    epoch 2 (its stored final string), so a kappa read at the wrong epoch is caught."""
    history = [{"epoch": 1, "valid_acc": 0.6, "valid_loss": 1.0, "test_correct": correct},
               {"epoch": 2, "valid_acc": 0.5, "valid_loss": 1.1, "test_correct": last}]
    return {"name": f"deep_fcn-{condition}", "seed": seed, "profile": "full", "history": history,
            "config": {"target": "deep_fcn", "condition": condition}, "metrics": {"test_correct": last}}


def test_kappa_table_has_the_controls():
    seqs = {0: "11001100", 1: "11000011", 2: "00111100"}
    records = [_image_record(c, s, seqs[s], last=seqs[(s + 1) % 3]) for s in seqs
               for c in ("no_guide", "trained_guide", "small_cnn_guide")]
    guides = {"resnet18": {"metrics": {"test_correct": "11001100"}},
              "small_cnn": {"metrics": {"test_correct": "11001100"}}}
    k = A.kappa_table(records, guides).set_index("pair")
    control = "unguided vs unguided (other seed, disjoint pairs)"
    assert k.loc[control, "kappa"] == pytest.approx(A.error_consistency(seqs[0], seqs[1]))  # (0, 1); seed 2 left out
    assert k.loc[control, "pairs averaged"] == 1
    assert k.loc["unguided vs guided by resnet18 (same seed)", "kappa"] == pytest.approx(1.0)  # identical here
    assert k.loc["the guides together", "kappa"] == pytest.approx(1.0)
    assert k.loc["the guides together", "pairs averaged"] == 1 and math.isnan(k.loc["the guides together", "sd"])
    assert "resnet18 guide vs its guided nets" in k.index and "small_cnn guide vs the unguided nets" in k.index
    assert "κ" in A.kappa_summary(k.reset_index())
    final = A.kappa_table(records, guides, rule=A.FINAL_EPOCH).set_index("pair")  # the last epoch's strings
    assert final.loc[control, "kappa"] == pytest.approx(A.error_consistency(seqs[1], seqs[2]))


def test_a_kappa_without_a_string_at_the_rules_epoch_is_not_read_elsewhere():
    """A record that kept only its last epoch's string (before issue #30) has no kappa at the book's checkpoint:
    "rule not available", never the last epoch's string in its place."""
    old = [{**_image_record(c, s, "1100", last="1100"), "history": [{"epoch": 1, "valid_acc": 0.6, "valid_loss": 1.0},
                                                        {"epoch": 2, "valid_acc": 0.5, "valid_loss": 1.1}]}
           for s in range(4) for c in ("no_guide", "trained_guide", "small_cnn_guide")]
    with pytest.raises(A.RuleNotAvailable, match="picks epoch 1"):
        A.kappa_values("no_guide", "no_guide", old, {})
    assert A.kappa_values("no_guide", "no_guide", old, {}, rule=A.FINAL_EPOCH) == [1.0, 1.0]
    guides = {"resnet18": {"metrics": {"test_correct": "1100"}}, "small_cnn": {"metrics": {"test_correct": "1010"}}}
    k = A.kappa_table(old, guides).set_index("pair")
    assert k.loc["unguided vs unguided (other seed, disjoint pairs)", "note"].startswith("rule not available")
    assert math.isnan(k.loc["unguided vs unguided (other seed, disjoint pairs)", "kappa"])
    assert k.loc["the guides together", "note"] == ""  # the guides' strings are their kept checkpoints'
    assert "not available" in A.kappa_summary(k.reset_index())
    check = A.agreement_precondition(old, "trained_guide", "small_cnn_guide")
    assert not check.holds and "rule not available" in check.detail


def _curve_record(name, seed, losses, train_acc, test_acc):
    history = [{"epoch": i + 1, "test_loss": v, "train_acc": train_acc, "test_acc": test_acc}
               for i, v in enumerate(losses)]
    return {"name": name, "seed": seed, "profile": "full", "history": history, "config": {"condition": name},
            "metrics": {"test_acc": test_acc}}


def test_overfitting_gap_table_and_precondition():
    over = [_curve_record("no_guide", s, [2.0, 1.5, 1.8, 2.0], 0.9, 0.4) for s in range(3)]
    flat = [_curve_record("guided", s, [2.0, 1.5, 1.4, 1.3], 0.5, 0.45) for s in range(3)]
    assert A.overfit_gap(over[0]) == pytest.approx(0.5) and A.overfit_gap(flat[0]) == 0
    table = A.overfitting_table(over + flat)  # no validation split: read at the last epoch, and said so
    assert table.loc["no_guide", "epoch of min"] == 2
    assert table.loc["no_guide", "train - test (points) at the last epoch"] == pytest.approx(50)
    assert A.overfits(over, "no_guide").holds
    weak = A.overfits(flat, "guided")
    assert not weak.holds and "test 0.00" in weak.detail
    assert A.overfits([], "missing").status == "no records"
    assert "ends 0.50 above it" in A.overfitting_summary(table, {}, baseline="no_guide")


def test_the_overfitting_gap_is_read_at_the_declared_rule():
    """Train - test at the epoch of highest validation accuracy (epoch 2: 70 - 50 = 20 points), not the last
    epoch's (95 - 45 = 50); the paper's rule (lowest validation loss, epoch 1: 60 - 48) on request."""
    rows = [(0.60, 0.48, 0.50, 1.0), (0.70, 0.50, 0.55, 1.1), (0.95, 0.45, 0.52, 1.3)]
    history = [{"epoch": i + 1, "train_acc": tr, "test_acc": te, "valid_acc": va, "valid_loss": vl,
                "test_loss": vl} for i, (tr, te, va, vl) in enumerate(rows)]
    records = [{"name": "no_guide", "seed": s, "history": history, "metrics": {"test_acc": 0.45}} for s in range(3)]
    table = A.overfitting_table(records)
    assert table.loc["no_guide", "train - test (points) at the epoch of highest validation accuracy"] == \
        pytest.approx(20)
    check = A.overfits(records, "the control", min_gap=30)
    assert check.numbers["train_test_gap"] == pytest.approx(20) and not check.holds
    assert "at the epoch of highest validation accuracy" in check.detail
    paper = A.overfits(records, "the control", rule=A.LOSS_RULE)
    assert paper.numbers["train_test_gap"] == pytest.approx(12)
    untested = [{**r, "history": [{**h, "test_acc": None if h["epoch"] == 2 else h["test_acc"]} for h in history]}
                for r in records]
    unread = A.overfits(untested, "the control")
    assert unread.status == "rule not available" and not unread.holds and "picks epoch 2" in unread.detail


def test_contrasts_table_reads_better_worse_or_no_effect():
    recs = ([_curve_record("no_guide", s, [1.0], 0.5, acc) for s, acc in enumerate((0.30, 0.31, 0.32))]
            + [_curve_record("trained_guide", s, [1.0], 0.5, acc) for s, acc in enumerate((0.40, 0.41, 0.42))]
            + [_curve_record("untrained_guide", 0, [1.0], 0.5, 0.2)])
    t = A.contrasts_table({"Deep FCN": recs}, [("trained_guide", "no_guide"), ("untrained_guide", "no_guide")],
                          "test_acc")
    assert t.loc[0, "reading"] == "better" and t.loc[0, "effect"] == pytest.approx(10.0)
    assert t.loc[1, "reading"] == A.TOO_FEW_SEEDS
    lower = A.contrasts_table({"g": recs}, [("trained_guide", "no_guide")], "test_acc", lower_is_better=True)
    assert lower.loc[0, "reading"] == "worse"
    assert "too few seeds" in A.contrasts_summary(t, {})


def test_select_matches_config_fields_and_orders_conditions():
    records = [_image_record(c, 0, "1") for c in ("no_guide", "trained_guide", "small_cnn_guide")]
    picked = A.select(records, ["trained_guide", "no_guide"], target="deep_fcn")
    assert [r["name"] for r in picked] == ["trained_guide", "no_guide"]
    assert A.select(records, target="wide_fcn") == []


def test_alignment_frame_has_one_row_per_epoch_reference_and_pair():
    r = {"name": "no_guide", "seed": 0, "probe_pairs": {"trained": [(0, 0), (1, 1)], "untrained": [(0, 0), (1, 1)]},
         "initial_cka": {"trained": [0.1, 0.2], "untrained": [0.3, 0.4]},
         "history": [{"epoch": 1, "cka_trained": [0.5, 0.6], "cka_untrained": [0.7, 0.8]}]}
    f = A.alignment_frame([r])
    assert len(f) == 2 * 2 * 2 and set(f["depth"]) == {0.0, 1.0}
    assert f[(f["epoch"] == 1) & (f["reference"] == "untrained")]["cka"].tolist() == [0.7, 0.8]


def test_the_package_offers_every_name_of_its_shared_modules():
    from untrainable.analysis import (alignment, chapter_summaries, contrasts, effects, estimates, kappa,
                                      overfitting, runs)

    for module in (alignment, chapter_summaries, contrasts, effects, estimates, kappa, overfitting, runs):
        for name in module.__all__:
            assert getattr(A, name) is getattr(module, name), f"{module.__name__}.{name}"
            assert name in A.__all__


def test_pair_alignment_gives_each_pairs_initial_and_final_cka_averaged_over_seeds():
    from untrainable.analysis import pair_alignment

    def rec(seed, init, final):
        return {"name": "trained_guide", "seed": seed, "config": {"setting": "copy"},
                "probe_pairs": {"trained": [["g0", "t0"], ["g1", "t1"]]},
                "initial_cka": {"trained": init}, "final_cka": {"trained": final}}

    table = pair_alignment([rec(0, [0.9, 0.5], [1.0, 0.7]), rec(1, [0.7, 0.3], [0.8, 0.5])], {})
    assert table.loc[("copy", "trained", "trained_guide", "g0 → t0"), "at init"] == pytest.approx(0.8)
    assert table.loc[("copy", "trained", "trained_guide", "g1 → t1"), "at the end"] == pytest.approx(0.6)


def test_the_quality_summary_names_every_student_that_beats_its_teacher():
    import pandas as pd

    from untrainable.analysis.chapter_summaries import quality_summary

    q = pd.DataFrame({"name": ["weak-h256", "weak-h256", "final-h256", "final-h256"], "seed": [0, 1, 0, 1],
                      "width": [256] * 4, "teacher_test_acc": [43.0, 43.0, 67.0, 67.0],
                      "test_acc": [43.4, 42.0, 64.0, 63.0]})
    text = quality_summary(q)
    assert "width 256: r = 1.00" in text
    assert "1 of 4 runs (weak-h256 seed 0 (43.4% against its teacher's 43.0%))" in text


def test_the_precondition_sentence_reads_for_one_check_and_for_several():
    from untrainable.analysis.chapter_tables import precondition_summary
    from untrainable.analysis.preconditions import CheckedPrecondition

    one = CheckedPrecondition("the control overfits", True, "", {})
    assert precondition_summary([one]).startswith("The precondition (the control overfits) holds, so")
    assert precondition_summary([one, one]).startswith("All 2 preconditions hold, so")
    failed = CheckedPrecondition("the guide beats its target", False, "", {})
    assert precondition_summary([one, failed]).startswith("1 of 2 preconditions fail (the guide beats its target)")


def test_the_minimum_detectable_effect_has_the_power_it_claims():
    """At [1, 2, 3] vs [4, 6, 8] (se = √(5/3), Welch df = 50/17), the MDE δ gives the two-sided 0.05 test power
    0.8 under the noncentral t; with many seeds it tends to the normal approximation (z_0.975 + z_0.8)·se."""
    se, df = math.sqrt(5 / 3), 50 / 17
    mde = A.minimum_detectable_effect([1, 2, 3], [4, 6, 8])
    crit = stats.t.ppf(0.975, df)
    power = stats.nct.sf(crit, df, mde / se) + stats.nct.cdf(-crit, df, mde / se)
    assert power == pytest.approx(0.8, abs=1e-6) and mde > (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * se
    many_a, many_b = [0.0, 1.0] * 200, [0.5, 1.5] * 200
    se_many = math.sqrt(2 * 0.25 * 400 / 399 / 400)
    assert A.minimum_detectable_effect(many_a, many_b) == pytest.approx(2.8016 * se_many, rel=0.01)
    assert math.isnan(A.minimum_detectable_effect([1.0], [2.0, 3.0]))


def test_inconclusive_holds_both_zero_and_the_papers_effect_no_effect_excludes_it():
    base, same = [10.0, 12.0, 11.0], [10.5, 12.5, 10.0]
    e = A.welch_effect(base, same)
    assert e.ci_low < 0 < e.ci_high
    inside, outside = e.ci_high / 2, e.ci_high + 1
    assert A.verdict(base, same, +1, paper_effect=inside).verdict == A.INCONCLUSIVE
    v = A.verdict(base, same, +1, paper_effect=outside)
    assert v.verdict == A.NO_EFFECT and "excludes the paper's effect" in v.reason
    assert A.verdict(base, same, +1, paper_effect=float("nan")).verdict == A.INCONCLUSIVE


def test_fisher_compares_the_shares_of_seeds_that_escape_chance():
    """Parity-like: two control seeds stuck at chance (50 %), one learns; every treated seed learns."""
    stuck_split, learning = [50.0, 52.0, 90.0], [80.0, 85.0, 90.0]
    assert A.splits_at_chance(stuck_split, 50.0, 10.0) and not A.splits_at_chance(learning, 50.0, 10.0)
    assert A.escapes_chance(stuck_split, 50.0, 10.0) == [False, False, True]
    expected = stats.fisher_exact([[3, 0], [1, 2]]).pvalue  # treated 3 escape / 0 stuck; control 1 / 2
    assert A.escape_p(stuck_split, learning, 50.0, 10.0) == pytest.approx(expected) == pytest.approx(0.4)
    assert math.isnan(A.escape_p(learning, stuck_split, 50.0, 10.0))  # the control does not split: no test


def _net(condition, seed, correct):
    return _image_record(condition, seed, correct, last="1" * len(correct))


def test_kappa_contrasts_use_disjoint_seed_pairs():
    assert A.disjoint_pairs([4, 0, 1, 3, 2]) == [(0, 1), (2, 3)]
    rng = __import__("random").Random(0)

    def net(flip):
        return "".join(str(int(rng.random() > flip)) for _ in range(400))

    base = "".join(str(int(rng.random() > 0.5)) for _ in range(400))
    same = lambda s: "".join(c if rng.random() > 0.1 else str(1 - int(c)) for c in s)  # noqa: E731
    records = ([_net("no_guide", s, net(0.5)) for s in range(6)]
               + [_net(c, s, same(base)) for c in ("a", "b") for s in range(3)])
    e = A.kappa_contrast(records, "a", "b")
    assert e.n_baseline == 3 and e.n_treated == 3 and e.effect > 0.5  # 6 seeds: 3 disjoint pairs, not 15
    assert A.kappa_contrast(records[1:], "a", "b") is None  # 5 seeds: 2 disjoint pairs, too few for a test


def test_error_consistency_compares_disjoint_control_pairs_with_seed_matched_guided_pairs():
    """Chapter 04's design: unguided seeds 0-9 in pairs (0, 1), ..., (8, 9); trained_guide seed s against
    small_cnn_guide seed s, s = 0..4; Welch's t over those ten independent kappas, at the accuracy's epoch."""
    rng = __import__("random").Random(1)
    strings = {(c, s): "".join(str(int(rng.random() > 0.4)) for _ in range(300))
               for c, seeds in (("no_guide", range(10)), ("trained_guide", range(5)), ("small_cnn_guide", range(5)))
               for s in seeds}
    records = [_net(c, s, x) for (c, s), x in strings.items()]
    control = [A.error_consistency(strings["no_guide", a], strings["no_guide", a + 1]) for a in range(0, 10, 2)]
    guided = [A.error_consistency(strings["trained_guide", s], strings["small_cnn_guide", s]) for s in range(5)]
    assert A.kappa_values("no_guide", "no_guide", records, {}) == pytest.approx(control)
    assert A.kappa_values("trained_guide", "small_cnn_guide", records, {}) == pytest.approx(guided)
    e = A.kappa_contrast(records, "trained_guide", "small_cnn_guide")
    expected = A.welch_effect(control, guided)
    assert (e.effect, e.p_value, e.n_baseline, e.n_treated) == (pytest.approx(expected.effect),
                                                                pytest.approx(expected.p_value), 5, 5)
    check = A.agreement_precondition(records, "trained_guide", "small_cnn_guide")
    assert check.holds is bool(sum(control) / 5 < sum(guided) / 5)
    assert check.numbers["unguided"] == pytest.approx(sum(control) / 5) and check.numbers["guided_pairs"] == 5
    copies = records + [_net("trained_guide", 9, strings["no_guide", 0])]  # an unmatched seed takes no part
    assert A.kappa_values("trained_guide", "small_cnn_guide", copies, {}) == pytest.approx(guided)
    agree = [_net("no_guide", s, strings["trained_guide", 0]) for s in range(4)] + records[10:]
    assert not A.agreement_precondition(agree, "trained_guide", "small_cnn_guide").holds  # unguided agree at κ = 1