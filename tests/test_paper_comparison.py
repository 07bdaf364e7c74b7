"""The paper comparison: our numbers come from records, verdicts come from the one tested rule."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import pandas as pd
import pytest
from scipy import stats

from untrainable import analysis as A
from untrainable import paper_comparison as PC
from untrainable import paper_comparison_display as PD
from untrainable import paper_comparison_records as R
from untrainable.experiments import PlannedRun
from untrainable.results import CorruptRecordError, MissingRecordError, run_key, write_record

HEADER = ("row_id,chapter,setting,condition,paper_metric,paper_mean,paper_spread,paper_direction,baseline_row,"
          "precondition,experiment,record,our_metric,source,note\n")
CSV = HEADER + """a-none,04,A,no guide,acc,10,1,,,,exp,a-no_guide,test_acc,paper,
a-up,04,A,guide,acc,20,1,,a-none,,exp,a-guide,test_acc,paper,
a-down,04,A,guide,acc,5,1,,a-none,,exp,a-guide,test_acc,paper,
a-flat,04,A,other,acc,20,1,,a-none,,exp,a-other,test_acc,paper,
a-one,04,A,one seed,acc,20,1,,a-none,,exp,a-single,test_acc,paper,
a-init,04,A,guide,loss rise,,,lower,a-init-base,overfits:a-no_guide,exp,a-guide,overfit_gap,paper,
a-init-base,04,A,no guide,loss rise,,,,,,exp,a-no_guide,overfit_gap,paper,
a-later,,B,guide,acc,5,,,,,,,,paper,
"""
ACCS = {"a-no_guide": (0.30, 0.32, 0.31), "a-guide": (0.40, 0.41, 0.42), "a-other": (0.31, 0.30, 0.33),
        "a-single": (0.90,)}


@dataclass(frozen=True)
class Toy:
    """The config of every synthetic run."""

    c: int = 1


def _record(name, seed, acc):
    return {"experiment": "exp", "profile": "full", "seed": seed, "name": name, "config": {"c": 1},
            "metrics": {"test_acc": acc}, "git_commit": "x", "device": "cpu", "versions": {}, "wall_time_s": 1.0,
            "history": [{"test_loss": 1.0, "train_acc": 0.5, "test_acc": acc}], "created": "2026-01-01T00:00:00"}


@pytest.fixture()
def plan(monkeypatch):
    """The chapters' plan, with the synthetic runs a test adds (:func:`_write` plans what it stores)."""
    runs: list[PlannedRun] = []
    real = R.planned_runs
    monkeypatch.setattr(R, "planned_runs", lambda profile, prefixes=None: real(profile, prefixes) + runs)
    return runs


def _run(record):
    return PlannedRun(record["experiment"], record["name"], Toy(), record["seed"])


def _store(record):
    """Store ``record`` where its planned run is looked up."""
    run = _run(record)
    write_record({**record, "key": run_key(run.experiment, run.config, run.seed)}, run.path("full"))


def _write(records, plan, experiment="exp"):
    """Plan and store ``records`` (in ``experiment``)."""
    for r in records:
        r = {**r, "experiment": experiment}
        plan.append(_run(r))
        _store(r)


@pytest.fixture()
def data_file(tmp_path, plan):
    path = tmp_path / "numbers.csv"
    path.write_text(CSV)
    _write([_record(name, seed, acc) for name, accs in ACCS.items() for seed, acc in enumerate(accs)], plan)
    return path


def test_verdicts_come_from_welchs_test(data_file):
    v = PC.verdicts("full", data_file)
    assert v.loc["a-up", "verdict"] == A.REPRODUCED and v.loc["a-down", "verdict"] == A.OPPOSITE
    assert v.loc["a-flat", "verdict"] == A.NO_EFFECT
    expected = stats.ttest_ind([40, 41, 42], [30, 32, 31], equal_var=False).pvalue
    assert v.loc["a-up", "p_value"] == pytest.approx(expected) and v.loc["a-up", "effect"] == pytest.approx(10.0)
    assert v.loc["a-up", "ci_low"] < 10 < v.loc["a-up", "ci_high"]
    assert v.loc["a-none", "verdict"] == A.NOT_COMPARABLE and v.loc["a-later", "verdict"] == A.NOT_RUN
    assert set(v["verdict"]) <= set(A.VERDICTS)
    for column in ("precondition", "seeds", "effect", "ci_low", "ci_high", "p_value", "verdict"):
        assert column in v.columns


def test_a_one_seed_side_gets_no_verdict(data_file):
    v = PC.verdicts("full", data_file)
    assert v.loc["a-one", "verdict"] == A.TOO_FEW_SEEDS and v.loc["a-one", "seeds"] == 1
    assert pd.isna(v.loc["a-one", "p_value"])


def test_a_failed_precondition_makes_a_row_not_testable(data_file):
    v = PC.verdicts("full", data_file)  # flat test losses: the unguided control never overfits
    assert v.loc["a-init", "verdict"] == A.NOT_TESTABLE
    assert "a-no_guide overfits: no" in v.loc["a-init", "precondition"]


def test_joined_preconditions_hold_only_when_each_holds(data_file, plan, tmp_path):
    """'overfits:...;guide_beats:...': a guide scored on the row's metric against the target's seeds."""
    _write([{**_record("g", 0, 0.2), "metrics": {"test_acc": 0.2, "best_test_acc": 0.9}}], plan, "guides")
    path = tmp_path / "joined.csv"
    path.write_text(HEADER + "b-none,04,B,no guide,acc,10,1,,,,exp,a-no_guide,test_acc,paper,\n"
                    "b-up,04,B,guide,acc,20,1,,b-none,guide_beats:g>a-no_guide,exp,a-guide,test_acc,paper,\n"
                    "b-both,04,B,guide,acc,20,1,,b-none,overfits:a-no_guide;guide_beats:g>a-no_guide,exp,a-guide,"
                    "test_acc,paper,\n")
    v = PC.verdicts("full", path)
    assert v.loc["b-up", "verdict"] == A.REPRODUCED  # the guide's kept checkpoint (90 %) beats 31 %
    assert "guide 90.0%" in v.loc["b-up", "precondition"]
    assert v.loc["b-both", "verdict"] == A.NOT_TESTABLE and "overfits: no" in v.loc["b-both", "precondition"]


def test_verdicts_csv_has_the_columns_scripts_read(data_file, capsys):
    import csv
    import io

    from untrainable.cli import main

    rows = list(csv.DictReader(io.StringIO(PC.verdicts_csv("full", data_file))))
    assert {"row_id", "precondition", "seeds", "effect", "ci_low", "ci_high", "p_value", "verdict"} <= set(rows[0])
    up = next(r for r in rows if r["row_id"] == "a-up")
    assert up["verdict"] == A.REPRODUCED and float(up["effect"]) == pytest.approx(10.0)
    assert main(["verdicts", "--profile", "full", "--csv"]) == 0  # the book's own data file
    out = capsys.readouterr().out
    assert out.startswith(",".join(PC.VERDICT_COLUMNS)) and "img-deep-trained" in out


def test_the_display_table_shows_effect_interval_p_and_verdict(data_file):
    table = PD.comparison("full", data_file)
    assert table.loc["a-up", "ours"] == "41.0 ± 1.0" and table.loc["a-up", "effect (paper)"] == "+10.00"
    assert table.loc["a-up", "effect (ours) [95 % CI]"].startswith("+10.0 [")
    assert table.loc["a-later", "ours"] == "" and table.loc["a-later", "verdict"] == A.NOT_RUN
    assert "1 row not run" in PD.verdict_counts(table, "full")


def test_a_lower_perplexity_reproduces_a_lower_paper_perplexity(tmp_path, plan):
    path = tmp_path / "numbers.csv"
    path.write_text(HEADER + "lm-none,06,LM,none,ppl,69.19,1.89,,,,seq,lm-no_guide,perplexity,paper,\n"
                    "lm-trained,06,LM,trained,ppl,40.01,1.54,,lm-none,,seq,lm-trained,perplexity,paper,\n"
                    "lm-untrained,06,LM,untrained,ppl,59.61,2.33,,lm-none,,seq,lm-untrained,perplexity,paper,\n")
    for seed, ppls in enumerate([(6.0, 5.0, 6.5), (6.1, 5.1, 6.4), (6.2, 5.2, 6.6)]):
        for name, ppl in zip(("lm-no_guide", "lm-trained", "lm-untrained"), ppls):
            _write([{**_record(name, seed, 0.5), "metrics": {"perplexity": ppl}}], plan, "seq")
    v = PC.verdicts("full", path)
    assert v.loc["lm-trained", "verdict"] == A.REPRODUCED  # lower in both
    assert v.loc["lm-untrained", "verdict"] == A.OPPOSITE  # higher here, lower in the paper


def test_the_book_data_file_has_sources_and_consistent_rows():
    paper = PC.paper_numbers()
    assert paper["source"].notna().all() and paper.index.is_unique
    assert paper["baseline_row"].dropna().isin(paper.index).all()
    # issue 15: the paper's 0.04 is unguided FCN vs guided FCN, not unguided FCN vs a guide
    assert paper.loc["img-kappa-unguided", "record"] == "kappa:no_guide|trained_guide"
    assert "guided FCN" in paper.loc["img-kappa-unguided", "setting"]
    assert isinstance(PD.comparison("full"), pd.DataFrame)


def test_chapter_06s_rows_are_tested_where_their_preconditions_hold(monkeypatch):
    """Copy-paste in the cell appendix 93 chose is testable (the control is above chance, the guide far ahead of
    it) and tested under every rule; parity is not (one of its 10 guides did not learn the task);
    the language model's precondition (its guide beats its target) is read at the row's rule, the lowest validation
    loss (perplexity: exp of that epoch's per-token test loss), and fails: its guide is the worse language model,
    so its rows are "not testable", with the seeds they have."""
    from untrainable.paths import repo_root

    monkeypatch.setenv("UNTRAINABLE_RESULTS", str(repo_root() / "results"))
    rows = PD.comparison("full")
    tested = rows.loc[["seq-copy-trained", "seq-copy-untrained"]]
    assert (tested["precondition"] == "holds").all() and not tested["verdict"].isin([A.NOT_TESTABLE, A.NOT_RUN]).any()
    # parity at 10 seeds: seed 9's RNN guide reached 82.8 % on validation, short of the 95 % every guide needs
    parity = rows.loc[["seq-parity-trained", "seq-parity-untrained"]]
    assert (parity["precondition"] == "does not hold").all() and (parity["verdict"] == A.NOT_TESTABLE).all()
    last = PC.verdicts("full").loc[tested.index, "verdict_final_epoch"]  # copy-paste
    assert last.isin([A.REPRODUCED, A.OPPOSITE, A.INCONCLUSIVE, A.NO_EFFECT]).all()
    lm = rows.loc[["seq-lm-trained", "seq-lm-untrained"]]
    assert (lm["verdict"] == A.NOT_TESTABLE).all() and (lm["seeds"] == "3").all()
    assert (lm["precondition"] == "does not hold").all() and rows.loc["seq-lm-none", "seeds"] == "3"


def test_a_record_without_the_rows_metric_is_named(data_file):
    old = _record("a-guide", 0, 0.4)  # neither its metrics nor its history have the row's metric
    _store({**old, "metrics": {"train_acc": 0.5}, "history": [{"test_loss": 1.0, "train_acc": 0.5}]})
    with pytest.raises(KeyError, match="a-guide .seed 0. has no metric 'test_acc'"):
        PC.verdicts("full", data_file)


def test_a_teacher_read_from_each_of_its_students_counts_once():
    import pandas as pd

    class Store:
        def named(self, experiment, name):
            return [{"name": "mimic-h4096", "seed": s, "metrics": {"teacher_test_acc": 0.703, "test_acc": t}}
                    for s, t in enumerate((0.64, 0.65, 0.63))]

    row = pd.Series({"experiment": "mimic_student", "record": "mimic-h4096", "our_metric": "teacher_test_acc"},
                    name="mim-ensemble")
    assert PC.our_values(row, Store()) == [pytest.approx(70.3)]  # one ensemble, not three seeds of it
    assert len(PC.our_values(row.replace("teacher_test_acc", "test_acc"), Store())) == 3


def _epochs(name, seed, tests, valid=((0.5, 1.0), (0.6, 1.2)), final_test=True):
    """A run of two epochs: the highest validation accuracy at epoch 2, the lowest validation loss at epoch 1."""
    history = [{"epoch": i + 1, "valid_acc": a, "valid_loss": lo, "test_acc": t, "test_loss": 1.0, "train_acc": 0.5}
               for i, ((a, lo), t) in enumerate(zip(valid, tests))]
    return {**_record(name, seed, tests[-1]), "history": history,
            "metrics": {"test_acc": tests[-1]} if final_test else {}}


def test_a_row_whose_verdict_changes_with_the_rule_is_fragile(tmp_path, plan):
    """At the lowest validation loss (epoch 1) the guide changes nothing; at the highest validation accuracy
    (epoch 2, also the last) it is 10 points ahead: reproduced under the primary rule, not under the paper's."""
    _write([_epochs("f-none", s, (0.30 + 0.01 * s, 0.31 + 0.01 * s)) for s in range(3)]
           + [_epochs("f-guide", s, (0.305 - 0.01 * s, 0.41 + 0.01 * s)) for s in range(3)], plan)
    path = tmp_path / "numbers.csv"
    path.write_text(HEADER + "f-none,04,F,no guide,acc,10,1,,,,exp,f-none,test_acc,paper,\n"
                    "f-up,04,F,guide,acc,20,1,,f-none,,exp,f-guide,test_acc,paper,\n")
    v = PC.verdicts("full", path).loc["f-up"]
    assert v["estimate_rule"] == A.PRIMARY_RULE and v["verdict"] == A.REPRODUCED
    assert v["effect"] == pytest.approx(10.0) and v["verdict_final_epoch"] == A.REPRODUCED
    assert v["verdict_min_valid_loss"] == A.NO_EFFECT and v["fragile"]  # epoch 1: about 0, the paper's +10 excluded
    assert v["mde"] == pytest.approx(A.minimum_detectable_effect([31, 32, 33], [41, 42, 43]))
    assert PD.comparison("full", path).loc["f-up", "under other rules"] == \
        "fragile: lowest validation loss: no effect detected; last epoch: reproduced"


def test_a_rule_whose_epoch_was_not_tested_is_said_so(tmp_path, plan):
    """Chapter 06's records test once, after the last epoch: a rule picking an earlier epoch has no number."""
    peaked = ((0.6, 1.0), (0.5, 1.2))  # the best validation epoch is the first, never tested
    _write([_epochs("r-none", s, (None, 0.3 + 0.01 * s), peaked) for s in range(3)]
           + [_epochs("r-guide", s, (None, 0.4 + 0.01 * s), peaked) for s in range(3)], plan)
    path = tmp_path / "numbers.csv"
    path.write_text(HEADER + "r-none,06,R,none,acc,10,1,,,,exp,r-none,test_acc,paper,\n"
                    "r-up,06,R,guide,acc,20,1,,r-none,,exp,r-guide,test_acc,paper,\n")
    v = PC.verdicts("full", path).loc["r-up"]
    assert v["verdict"] == A.RULE_NOT_AVAILABLE and "picks epoch 1" in v["reason"]
    assert v["seeds"] == 3 and v["baseline_seeds"] == 3  # the seeds it has, though the rule reads none of them
    assert v["verdict_final_epoch"] == A.REPRODUCED and not v["fragile"]  # one tested verdict: nothing to disagree


def test_the_papers_effect_is_scaled_by_the_guide_gap():
    assert PC.scaled_paper_effect(5.0, 50.0, 20.0) == pytest.approx(2.0)  # 10 % of the gap, here and there
    assert PC.scaled_paper_effect(5.0, float("nan"), 20.0) == 5.0  # no guide gap: the paper's effect as is
    assert math.isnan(PC.scaled_paper_effect(5.0, 50.0, -3.0))  # our guide is behind: nothing to scale by


def test_a_guide_row_scales_the_effect_a_test_must_exclude(tmp_path, plan):
    """The paper's +10 is a tenth of its guide gap (100); ours is 20, so +2 on our scale: our interval
    around +0.3 holds 0 and 2: inconclusive (unscaled, +10 would be excluded: "no effect detected")."""
    _write([_record("g-none", s, a) for s, a in enumerate((0.30, 0.32, 0.31))]
           + [_record("g-other", s, a) for s, a in enumerate((0.31, 0.30, 0.33))]
           + [_record("g-guide", s, a) for s, a in enumerate((0.51, 0.50, 0.52))], plan)
    header = HEADER.replace("baseline_row,", "baseline_row,guide_row,")
    path = tmp_path / "numbers.csv"
    path.write_text(header + "g-none,04,G,none,acc,10,1,,,,,exp,g-none,test_acc,paper,\n"
                    "g-guide,04,G,guide,acc,110,1,,,,,exp,g-guide,test_acc,paper,\n"
                    "g-flat,04,G,other,acc,20,1,,g-none,g-guide,,exp,g-other,test_acc,paper,\n"
                    "g-raw,04,G,other,acc,20,1,,g-none,,,exp,g-other,test_acc,paper,\n")
    v = PC.verdicts("full", path)
    assert v.loc["g-flat", "paper_effect_scaled"] == pytest.approx(10 / 100 * 20)
    assert v.loc["g-flat", "verdict"] == A.INCONCLUSIVE and v.loc["g-raw", "verdict"] == A.NO_EFFECT


def test_a_control_split_at_chance_gets_fishers_test(tmp_path, plan):
    _write([_record("p-none", s, a) for s, a in enumerate((0.50, 0.52, 0.90))]
           + [_record("p-guide", s, a) for s, a in enumerate((0.80, 0.85, 0.90))], plan)
    path = tmp_path / "numbers.csv"
    path.write_text(HEADER + "p-none,06,P,none,acc,70,1,,,,exp,p-none,test_acc,paper,\n"
                    "p-up,06,P,guide,acc,80,1,,p-none,above_chance:p-none@0.5,exp,p-guide,test_acc,paper,\n")
    v = PC.verdicts("full", path).loc["p-up"]
    assert v["escape_p"] == pytest.approx(stats.fisher_exact([[3, 0], [1, 2]]).pvalue)


def test_the_csv_has_the_rule_sensitivity_and_power_columns(data_file):
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(PC.verdicts_csv("full", data_file))))
    assert {"estimate_rule", "verdict_min_valid_loss", "verdict_final_epoch", "fragile", "paper_effect_scaled", "mde",
            "escape_p"} <= set(rows[0])
    assert next(r for r in rows if r["row_id"] == "a-up")["estimate_rule"] == A.FINAL_EPOCH  # no validation split


def test_an_extra_stored_seed_is_listed_not_pooled(data_file):
    """Seed 9 of a guided run, trained from a shell but planned by no chapter, must not enter the row the
    chapter shows with its three seeds: it is listed in ``extra_seeds``."""
    _store(_record("a-guide", 9, 0.99))
    v = PC.verdicts("full", data_file)
    assert v.loc["a-up", "seeds"] == 3 and v.loc["a-up", "mean"] == pytest.approx(41.0)
    assert v.loc["a-up", "extra_seeds"] == "9" and v.loc["a-none", "extra_seeds"] == ""
    assert PD.comparison("full", data_file).loc["a-up", "extra seeds"] == "9"


def test_a_missing_planned_record_is_an_error_naming_it(data_file, plan):
    """A planned seed whose record is not stored must not leave the row at fewer seeds than the chapter's."""
    plan.append(_run(_record("a-guide", 3, 0.5)))  # planned, never stored
    with pytest.raises(MissingRecordError, match=r"row a-up: .*exp/a-guide: 1 of the 4 planned seeds .*seed 3"):
        PC.verdicts("full", data_file)


def test_a_record_its_profile_does_not_plan_is_not_run_and_listed(data_file, tmp_path):
    """A stored record no chapter plans is not read (``quick`` plans no 4096-unit student), and is listed."""
    _write([_record("unplanned", 0, 0.5)], [])  # stored, never planned
    path = tmp_path / "numbers.csv"
    path.write_text(HEADER + "u-none,04,U,none,acc,10,1,,,,exp,unplanned,test_acc,paper,\n")
    assert PC.verdicts("full", path).loc["u-none", "verdict"] == A.NOT_RUN
    assert PC.unplanned_records("full", path) == ["u-none: exp/unplanned"]


def test_every_row_of_the_book_reads_a_record_the_full_profile_plans():
    assert PC.unplanned_records("full") == []


def test_page_98_loads_a_record_with_its_chapters_required_metrics(data_file, plan):
    """A planned record lacking a metric its chapter declares is refused by the store, named, on page 98 too."""
    plan[:] = [dataclasses.replace(r, required_metrics=("test_acc", "best_test_acc")) for r in plan]
    with pytest.raises(CorruptRecordError, match="best_test_acc"):
        PC.verdicts("full", data_file)


def test_the_compact_table_is_narrow_and_speaks_in_words(data_file):
    """Page 98 at 1280 px: a few short columns per claim, units on every effect, no internal id anywhere."""
    table = PD.comparison("full", data_file)
    compact = PD.compact(table)
    assert list(compact.columns) == PD.COMPACT and len(compact.columns) + 1 <= 7  # the claim is the index
    assert "A, no guide" not in compact.index  # a reference number is not a claim
    cells = compact.fillna("").astype(str)
    assert cells.map(len).max().max() <= 32 and max(map(len, compact.index)) <= 90
    up = compact.iloc[0]  # a-up: the data file's first claim
    assert up.name == "A, guide" and up["verdict"] == A.REPRODUCED
    assert up["our effect [95 % CI]"].startswith("+10.0 pts [")
    assert up["paper's effect"] == "+10.00 pts" and up["seeds"] == "3 vs 3"
    shown = compact.to_html() + PD.notes_html(table, "Notes", data_file)
    for internal in ("a-up", "a-none", "a-no_guide", "a-guide", "test_acc", "final_epoch"):
        assert internal not in shown, internal


def test_a_fragile_or_inconclusive_row_is_flagged():
    table = pd.DataFrame({"verdict": [A.REPRODUCED, A.INCONCLUSIVE], "fragile": [True, False],
                          "our effect": ["+1.0 pts [+0.1, +1.9]", "+0.3 pts [-1.0, +1.6]"], "paper's effect": ["", ""],
                          "p": ["0.04", "0.6"], "seeds": ["3", "3"], "baseline seeds": ["3", "3"],
                          "claim": ["X, guide", "Y, guide"]})
    assert list(PD.compact(table)["verdict"]) == ["reproduced, ⚠ fragile", "⚠ inconclusive"]


def test_the_answer_is_written_from_the_records_and_names_every_verdict(data_file):
    table = PD.comparison("full", data_file)
    text = PD.answer(table)
    assert text.count("\n* ") == 3 and text.startswith("* **Guidance** reproduced")  # four sentences, a bullet each
    assert "No judged row has a control that fails to train yet" in text
    judged = set(table["verdict"]) - {A.NOT_COMPARABLE}
    assert {A.REPRODUCED, A.OPPOSITE, A.NO_EFFECT, A.TOO_FEW_SEEDS, A.NOT_TESTABLE, A.NOT_RUN} <= judged
    for verdict in judged - {A.REPRODUCED, A.NOT_RUN}:
        assert f"*{verdict}*" in text, verdict
    assert "*not run*" not in text  # a claim not run yet did not fail to reproduce: page 98 lists it
    assert "trained guide in 1 of 5 judged rows (A: +10.0 pts [" in text  # a-up, by its setting and effect
    assert "untrained guide in no judged row yet" in text
    for seed, acc in enumerate((0.50, 0.51, 0.52)):  # the guided run's records move ten points
        _store(_record("a-guide", seed, acc))
    moved = PD.answer(PD.comparison("full", data_file))
    assert "A: +20.0 pts [" in moved and moved != text


def test_no_row_reads_a_stored_checkpoint_metric(tmp_path, plan):
    """Every reported accuracy is the book's estimate (issue #30): the data file names ``test_acc``, read at the
    row's rule, never a stored checkpoint's metric, which the page refuses."""
    paper = PC.paper_numbers()
    assert not paper["our_metric"].str.contains("checkpoint").any()
    _write([_record("c-none", s, 0.3) for s in range(3)], plan)
    path = tmp_path / "numbers.csv"
    path.write_text(HEADER + "c-none,04,C,none,acc,10,1,,,,exp,c-none,checkpoint_test_acc,paper,\n")
    with pytest.raises(ValueError, match="unknown metric 'checkpoint_test_acc'"):
        PC.verdicts("full", path)


def _trained_to(name, seed, best_train, test=0.3):
    return {**_record(name, seed, test), "history": [{"train_acc": 0.1, "test_acc": 0.2, "test_loss": 1.0},
                                                      {"train_acc": best_train, "test_acc": test, "test_loss": 1.0}]}


@pytest.mark.parametrize("control_best, holds", [(0.45, True), (0.15, True), (0.80, False)])
def test_a_rescue_row_needs_a_control_that_fails_to_train_and_the_answer_says_so(tmp_path, plan, control_best, holds):
    """``fails_to_train``: the control's best training accuracy near chance, or 20 points or more below the
    shallow net's (90 %): 45 % and 15 % fail, 80 % trains and makes the row not testable."""
    _write([_trained_to("d-shallow", s, 0.9) for s in range(3)] + [_trained_to("d-none", s, control_best, 0.3 + 0.005 * s)
                                                                    for s in range(3)]
           + [_trained_to("d-guide", s, 0.9, test=0.4 + 0.01 * s) for s in range(3)], plan)
    path = tmp_path / "numbers.csv"
    path.write_text(HEADER + "d-none,04,D,no guide,acc,10,1,,,,exp,d-none,test_acc,paper,\n"
                    "d-up,04,D,guide,acc,20,1,,d-none,fails_to_train:d-none>d-shallow@0.2,exp,d-guide,test_acc,paper,\n"
                    "d-k,04,D,kappa,kappa,0.5,,higher,,fails_to_train:d-none>d-shallow@0.2,exp,kappa:x|y,kappa,paper,\n")
    v = PC.verdicts("full", path).loc["d-up"]
    assert bool(v["precondition_holds"]) is holds and "points or more below the shallow net's" in v["precondition"]
    assert (v["verdict"] == A.NOT_TESTABLE) is not holds
    table = PD.comparison("full", path)  # error consistency where the control fails does not answer "does it train"
    assert table.loc["d-up", "untrainable"] and not table.loc["d-k", "untrainable"]
    text = PD.answer(table)
    assert "Where our control fails to train, guidance reproduced the paper's direction" in text
    assert ("in 1 of 1 judged row (D, guide: +" in text) is holds


def test_a_precondition_is_read_at_the_rows_rule(tmp_path, plan):
    """``guide_beats``: the target's accuracy at the row's rule (epoch 2 here, 60 %), not its stored final metric
    (99 %, which a guide of 70 % would not beat)."""
    guides = [_epochs("g-guide", s, (0.70, 0.70)) for s in range(3)]
    targets = [{**_epochs("g-none", s, (0.2, 0.6 + 0.01 * s, 0.99), ((0.3, 1.0), (0.5, 1.1), (0.4, 0.9))),
                "metrics": {"test_acc": 0.99}} for s in range(3)]
    _write(guides + targets, plan)
    path = tmp_path / "numbers.csv"
    path.write_text(HEADER + "g-none,04,G,none,acc,10,1,,,,exp,g-none,test_acc,paper,\n"
                    "g-up,04,G,guide,acc,20,1,,g-none,guide_beats:g-guide>g-none,exp,g-guide,test_acc,paper,\n")
    v = PC.verdicts("full", path).loc["g-up"]
    assert v["precondition_holds"] and "test accuracy at the epoch of highest validation accuracy" in v["precondition"]


@dataclass(frozen=True)
class Net:
    """The config of a synthetic Deep FCN run of the kappa rows."""

    target: str = "deep_fcn"
    condition: str = "no_guide"


def _kappa_runs(plan, strings, at_rule=True):
    """Store one Deep FCN run per (condition, seed) -> string: the string at its highest-validation-accuracy epoch
    (epoch 1) when ``at_rule``, else only its last epoch's (the records before issue #30)."""
    for (condition, seed), correct in strings.items():
        history = [{"epoch": 1, "valid_acc": 0.6, "valid_loss": 1.0, "test_acc": 0.5},
                   {"epoch": 2, "valid_acc": 0.5, "valid_loss": 1.1, "test_acc": 0.5}]
        if at_rule:
            history[0]["test_correct"] = correct
        run = PlannedRun("kexp", f"deep_fcn-{condition}", Net(condition=condition), seed)
        record = {**_record(run.name, seed, 0.5), "experiment": "kexp", "config": dataclasses.asdict(run.config),
                  "history": history, "metrics": {"test_acc": 0.5, "test_correct": "1" * len(correct)}}
        plan.append(run)
        write_record({**record, "key": run_key(run.experiment, run.config, run.seed)}, run.path("full"))


KAPPA_CSV = HEADER + ("k-control,04,K,unguided pairs,kappa,,,,,,kexp,kappa:no_guide|no_guide,kappa,paper,\n"
                      "k-guided,04,K,guided pairs,kappa,0.5,,higher,k-control,,kexp,kappa:a|b,kappa,paper,\n")


def test_kappa_rows_use_independent_pairs_at_the_accuracys_checkpoint(tmp_path, plan):
    """Unguided seeds 0-9 in disjoint pairs against guided seeds 0-4 matched by seed, Welch's t over them, each
    string the one at the epoch of highest validation accuracy (the last epoch's is all ones: no agreement)."""
    rng = __import__("random").Random(2)
    base = "".join(str(int(rng.random() > 0.5)) for _ in range(200))
    noisy = lambda p: "".join(c if rng.random() > p else str(1 - int(c)) for c in base)  # noqa: E731
    strings = {**{("no_guide", s): noisy(0.5) for s in range(10)},
               **{(c, s): noisy(0.05) for c in ("a", "b") for s in range(5)}}
    _kappa_runs(plan, strings)
    path = tmp_path / "numbers.csv"
    path.write_text(KAPPA_CSV)
    v = PC.verdicts("full", path)
    control = [A.error_consistency(strings["no_guide", s], strings["no_guide", s + 1]) for s in range(0, 10, 2)]
    guided = [A.error_consistency(strings["a", s], strings["b", s]) for s in range(5)]
    assert v.loc["k-guided", "seeds"] == 5 and v.loc["k-guided", "baseline_seeds"] == 5
    assert v.loc["k-guided", "p_value"] == pytest.approx(A.welch_effect(control, guided).p_value)
    assert v.loc["k-guided", "verdict"] == A.REPRODUCED and v.loc["k-guided", "estimate_rule"] == A.PRIMARY_RULE


def test_a_kappa_row_without_strings_at_the_rules_epoch_says_so(tmp_path, plan):
    strings = {**{("no_guide", s): "1100" for s in range(10)}, **{(c, s): "1010" for c in ("a", "b") for s in range(5)}}
    _kappa_runs(plan, strings, at_rule=False)
    path = tmp_path / "numbers.csv"
    path.write_text(KAPPA_CSV)
    v = PC.verdicts("full", path).loc["k-guided"]
    assert v["verdict"] == A.RULE_NOT_AVAILABLE and "right/wrong string" in v["reason"]


def test_a_baseline_that_splits_into_stuck_and_learning_seeds_gets_fishers_test(monkeypatch):
    """Issue #30, item 4: KD from the untrained teacher has one seed that stalls near chance (19.8 %) and nine
    that learn; its row adds Fisher's test of the shares escaping chance, computed from the committed records."""
    monkeypatch.delenv("UNTRAINABLE_RESULTS", raising=False)
    assert PC.SPLIT_BASELINES == {"xfer-guidance-untrained": 0.1}
    row = PC.verdicts("full").loc["xfer-guidance-untrained"]
    assert 0 <= row["escape_p"] <= 1 and row["baseline_seeds"] == 10
    assert math.isnan(PC.verdicts("full").loc["xfer-kd-untrained", "escape_p"])


def test_kappa_sides_can_name_records_where_one_condition_is_stored_at_two_depths():
    """The depth map stores ``trained_guide`` at every depth: by condition the pairs would mix depths (an error
    naming the clash); by record name (``fcn24-trained_guide``) they are the 24-layer nets only."""
    def net(depth, condition, seed, correct):
        return {"name": f"fcn{depth}-{condition}", "seed": seed,
                "config": {"target": "deep_fcn", "condition": condition, "fcn_depth": depth},
                "history": [{"epoch": 1, "valid_acc": 0.5, "valid_loss": 1.0, "test_correct": correct}]}
    records = [net(d, c, s, ("1100" if d == 3 else "1010") if c == "a" else "1001")
               for d in (3, 24) for c in ("a", "b") for s in range(3)]
    with pytest.raises(ValueError, match="records of several nets are a seed 0.*name the records"):
        A.kappa_values("a", "b", records, {})
    at_24 = A.kappa_values("fcn24-a", "fcn24-b", records, {})
    assert at_24 == [A.error_consistency("1010", "1001")] * 3
    assert A.kappa_values("fcn3-a", "fcn3-a", records, {}) == [A.error_consistency("1100", "1100")]  # pair (0, 1)
    with pytest.raises(ValueError, match="'b' is a condition beside a record name"):
        A.kappa_values("fcn24-a", "b", records, {})


@pytest.mark.parametrize("control, holds", [((0.10, 0.12, 0.14), True), ((0.10, 0.12, 0.30), False)])
def test_a_rescue_row_may_need_a_control_at_chance_and_one_judged_against_another_method_is_no_rescue(
        tmp_path, plan, control, holds):
    """``at_chance``: every seed of the control within 5 points of chance (15 % here); one seed that learns
    (30 %) makes the row not testable. Guidance judged against KD (a baseline with its own baseline) is not a
    rescue claim, so the landing page's rescue sentence does not count it."""
    _write([_record("c-none", s, a) for s, a in enumerate(control)]
           + [_record("c-guide", s, 0.4 + 0.01 * s) for s in range(3)]
           + [_record("c-kd", s, 0.2 + 0.01 * s) for s in range(3)], plan)
    path = tmp_path / "numbers.csv"
    path.write_text(HEADER + "c-none,06,C,no guide,acc,10,1,,,,exp,c-none,test_acc,paper,\n"
                    "c-up,06,C,guide,acc,20,1,,c-none,at_chance:c-none@0.1,exp,c-guide,test_acc,paper,\n"
                    "c-kd,06,C,kd,acc,,,,c-none,at_chance:c-none@0.1,exp,c-kd,test_acc,paper,\n"
                    "c-vs-kd,06,C,guide vs kd,acc,,,higher,c-kd,at_chance:c-none@0.1,exp,c-guide,test_acc,paper,\n")
    v = PC.verdicts("full", path)
    assert bool(v.loc["c-up", "precondition_holds"]) is holds and "each needs ≤ 15%" in v.loc["c-up", "precondition"]
    assert (v.loc["c-up", "verdict"] == A.REPRODUCED) is holds and (v.loc["c-up", "verdict"] == A.NOT_TESTABLE) is not holds
    table = PD.comparison("full", path)
    assert table.loc["c-up", "untrainable"] and not table.loc["c-vs-kd", "untrainable"]
    assert table.loc["c-up", "precondition"] == ("holds" if holds else "does not hold")
    assert ("in 1 of 1 judged row" in PD.answer(table)) is holds


def test_a_precondition_may_name_a_record_of_another_experiment(tmp_path, plan):
    """A row of one experiment whose control is stored in another: ``<experiment>/<record>``."""
    _write([_record("k-none", s, 0.10 + 0.01 * s) for s in range(3)], plan)
    _write([_record("k-kd", s, 0.2 + 0.01 * s) for s in range(3)], plan, experiment="other")
    path = tmp_path / "numbers.csv"
    path.write_text(HEADER + "k-none,08,K,no guide,acc,,,,,,exp,k-none,test_acc,paper,\n"
                    "k-kd,08,K,kd,acc,,,higher,k-none,at_chance:exp/k-none@0.1,other,k-kd,test_acc,paper,\n"
                    "k-own,08,K,kd,acc,,,higher,k-none,at_chance:k-none@0.1,other,k-kd,test_acc,paper,\n")
    v = PC.verdicts("full", path)
    assert v.loc["k-kd", "precondition_holds"] and v.loc["k-kd", "verdict"] == A.REPRODUCED
    assert not v.loc["k-own", "precondition_holds"] and "no records" in v.loc["k-own", "precondition"]


def test_the_sources_table_shows_each_numbers_source_and_note():
    """Every row of the book's data file, by its claim, with the paper's number, its source and the note."""
    paper = PC.paper_numbers()
    table = PD.sources_table(paper)
    assert len(table) == len(paper) and table["source"].notna().all() and table["note"].notna().all()
    row = table.loc[PD.claim(paper.loc["img-deep-untrained"])]
    assert row["paper's number"] == "13.1 ± 0.72 (ImageNet top-5 acc (%))"
    assert row["source"] == paper.loc["img-deep-untrained", "source"] and "v1" in row["source"]


def _student(name, seed, test, valid, teacher=None):
    """A student record whose best validation accuracy follows ``valid`` over its epochs."""
    history = [{"epoch": i + 1, "valid_acc": v, "valid_loss": 1.0 - v, "test_acc": test, "train_acc": 0.9}
               for i, v in enumerate(valid)]
    metrics = {"test_acc": test, **({"teacher_test_acc": teacher} if teacher else {})}
    return {**_record(name, seed, test), "history": history, "metrics": metrics}


@pytest.mark.parametrize("teacher, last, holds", [(0.80, 0.602, True), (0.70, 0.602, False), (0.80, 0.62, False)])
def test_a_mimic_row_needs_a_teacher_with_headroom_and_students_at_a_plateau(tmp_path, plan, teacher, last, holds):
    """``teacher_gap``: the mimic students' teacher beats the best label-trained width (65 %) by 8 points;
    ``plateau``: no student's best validation accuracy rose by 0.5 points over its last 20 % of epochs."""
    flat = [0.5, 0.55, 0.58, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, last]
    _write([_student("labels-h8", s, 0.60 + 0.01 * s, flat) for s in range(3)]
           + [_student("labels-h16", s, 0.64 + 0.01 * s, flat) for s in range(3)]
           + [_student("mimic-h16", s, 0.70 + 0.01 * s, flat, teacher) for s in range(3)], plan)
    path = tmp_path / "numbers.csv"
    path.write_text(HEADER + "m-labels,07,M,labels,acc,78.2,,,,,exp,labels-h16,test_acc,paper,\n"
                    "m-mimic,07,M,mimic,acc,85.8,,,m-labels,teacher_gap:mimic-h16>labels-h@8;plateau:,exp,mimic-h16,"
                    "test_acc,paper,\n")
    v = PC.verdicts("full", path)
    assert v.loc["m-mimic", "precondition_holds"] == holds
    assert v.loc["m-mimic", "verdict"] == (A.REPRODUCED if holds else A.NOT_TESTABLE)
    if teacher == 0.70:
        assert "the best label-trained student (labels-h16, 3 seed(s)) 65.0%" in v.loc["m-mimic", "precondition"]
        assert "5.0 points (needs ≥ 8)" in v.loc["m-mimic", "precondition"]
    if last == 0.62:
        assert "rose by at most 2.00 points" in v.loc["m-mimic", "precondition"]
