"""Mimicry with a strong teacher (issue #32): the plan's sizes, the teachers are chapter 04's every-image guide,
each cell's learning rate is chosen on validation, a tiny comparison trains end to end with the ensemble's
logits computed once, the preconditions decide on their numbers, and the shell entry refuses wrong arguments."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from untrainable import mimic
from untrainable.analysis.preconditions import plateau_rise, teacher_beats_best_student, trained_to_plateau
from untrainable.experiments import CHAPTERS
from untrainable.experiments import mimic_strong as ms
from untrainable.experiments import mimic_strong_costs as costs
from untrainable.paths import repo_root
from untrainable.profiles import PROFILES
from untrainable.record_keys import run_key
from untrainable.results import MissingRecordError


def test_the_full_plan_has_three_teachers_three_widths_thirty_bf16_epochs_and_five_seeds_at_the_widest():
    assert set(ms.PRESETS) == set(PROFILES) and ms.NAME not in CHAPTERS.values()
    full = ms.PRESETS["full"]
    assert full.ensemble == (0, 1, 2) and {256, 1024, 4096} <= set(full.widths) and full.epochs >= 30
    assert len(full.seeds) >= 3 and len(full.widest_seeds) == 5 and full.precision == "bf16"
    assert len(full.sweep_lrs) >= 2
    configs = ms.sweep_configs(full)
    assert {c.loss for c in configs} == {"labels", "logits"} and {c.precision for c in configs} == {"bf16"}
    assert {c.n_train for c in configs} == {full.n_train} and {c.views for c in configs} == {full.views}


def test_the_full_teachers_are_chapter_04s_every_image_resnet_so_seed_0_is_its_committed_record():
    teacher = ms.teacher_config("full")
    assert teacher.family == "resnet18" and teacher.n_train is None and teacher.n_valid == 1000 and teacher.augment
    assert run_key(ms.TEACHER_EXPERIMENT, teacher, 0) == "41ef48f46f99"  # results/full/guides/resnet18-every-image
    planned = ms.planned_runs("full")  # the teachers are guides, planned by chapter 04 (seed 0) and read by run
    assert not [r for r in planned if r.experiment == "guides"]
    paths = {ms.teacher_weights("full", teacher, s) for s in (0, 1, 2)}
    assert len(paths) == 3 and ms.guides.guide_weights_path("full", teacher) in paths  # seed 0 shares chapter 04's


def test_the_committed_seed_0_teacher_loads_as_planned_and_is_a_teacher_worth_mimicking(monkeypatch):
    monkeypatch.setenv("UNTRAINABLE_RESULTS", str(repo_root() / "results"))
    records = ms.teacher_records("full")  # checked with every metric the module reads of a teacher
    assert len(records) == 3 and all(ms.guides.guide_accuracy(r) >= 0.85 for r in records)


def test_students_share_the_teachers_validation_split_and_a_mimic_student_needs_its_teachers():
    full = ms.PRESETS["full"]
    mimic_student = ms.student_config(full, ms.Cell("logits", 256), 1e-3)
    assert mimic_student.n_valid == full.teacher.n_valid and mimic_student.teachers.seeds == (0, 1, 2)
    with pytest.raises(ValueError, match="needs its teachers"):
        dataclasses.replace(mimic_student, teachers=None)
    with pytest.raises(ValueError, match="must share the split"):
        dataclasses.replace(mimic_student, n_valid=500)
    labels = ms.student_config(full, ms.Cell("labels", 256), 1e-3)
    assert labels.teachers is None and labels.dropout == 0.5 and mimic_student.dropout == 0.0


def test_the_full_plan_awaits_the_sweep_and_then_gives_every_cell_its_seeds(monkeypatch):
    full = dataclasses.replace(ms.PRESETS["full"], chosen_lrs={})  # before the sweep
    monkeypatch.setitem(ms.PRESETS, "full", full)
    planned = ms.planned_runs("full")
    sweep = [r for r in planned if r.experiment == ms.SWEEP_EXPERIMENT]
    assert len(sweep) == len(full.sweep_widths) * 2 * len(full.sweep_lrs) == len(planned)
    assert {r.config.hidden for r in sweep} == {max(full.widths)} == set(full.sweep_widths)
    assert {r.seed for r in sweep} == {ms.SWEEP_SEED} and all(r.required_metrics for r in planned)
    with pytest.raises(ValueError, match=r"no learning rate chosen for cells \['labels-h256'.*--stage sweep"):
        ms.run_configs(full, {}, (256,))
    chosen = dataclasses.replace(full, chosen_lrs={c: 1e-3 for c in ms.cells(full)})
    monkeypatch.setitem(ms.PRESETS, "full", chosen)
    runs = [r for r in ms.planned_runs("full") if r.experiment == ms.EXPERIMENT]
    assert len(runs) == 2 * (len(full.seeds) * (len(full.widths) - 1) + len(full.widest_seeds)) + 3 == 25
    one = [r for r in runs if r.name == "mimic_one-h4096"]  # the widest student of the first teacher alone
    assert [r.seed for r in one] == [0, 1, 2] and {r.config.teachers.seeds for r in one} == {(0,)}
    assert {r.seed for r in runs if r.name.endswith("h4096")} == {0, 1, 2, 3, 4}
    assert {r.name for r in runs if r.config.loss == "logits"} == {"mimic-h256", "mimic-h1024", "mimic-h4096",
                                                                     "mimic_one-h4096"}


def _student(loss: str, hidden: int, lr: float, valid: list[float], seed: int = 0, test: float = 0.6,
             teacher: float = 0.87) -> dict:
    history = [{"epoch": i + 1, "valid_acc": v, "valid_loss": 1.0, "test_acc": test, "train_acc": 0.7}
               for i, v in enumerate(valid)]
    metrics = {"test_acc": test, **({"teacher_test_acc": teacher} if loss == "logits" else {})}
    return {"name": f"{loss}-h{hidden}", "seed": seed, "history": history, "metrics": metrics,
            "config": {"loss": loss, "hidden": hidden, "lr": lr}}


def test_each_cell_chooses_its_learning_rate_by_validation_accuracy_and_the_preset_must_agree():
    records = [_student("labels", 256, 1e-3, [0.5, 0.6]), _student("labels", 256, 3e-4, [0.5, 0.7]),
               _student("logits", 256, 1e-3, [0.5, 0.8]), _student("logits", 256, 3e-4, [0.5, 0.7])]
    lrs = ms.chosen_lrs(records)
    assert lrs == {ms.Cell("labels", 256): 3e-4, ms.Cell("logits", 256): 1e-3}
    wrong = dataclasses.replace(ms.PRESETS["full"], chosen_lrs={ms.Cell("labels", 256): 1e-3})
    with pytest.raises(ValueError, match=r"disagree.*'labels-h256': \(0.001, 0.0003\)"):
        ms.learning_rates(wrong, records)


def test_a_width_the_sweep_skips_takes_its_losss_choice_at_the_nearest_swept_width():
    records = [_student("labels", 4096, 1e-3, [0.5, 0.6]), _student("labels", 4096, 3e-4, [0.5, 0.7]),
               _student("logits", 4096, 1e-3, [0.5, 0.8]), _student("logits", 4096, 3e-4, [0.5, 0.7]),
               _student("logits", 256, 3e-4, [0.5, 0.9]), _student("logits", 256, 1e-3, [0.5, 0.6])]
    lrs = ms.chosen_lrs(records, (256, 1024, 4096))
    assert lrs[ms.Cell("labels", 256)] == lrs[ms.Cell("labels", 1024)] == 3e-4  # only 4096 swept
    assert lrs[ms.Cell("logits", 256)] == 3e-4 and lrs[ms.Cell("logits", 1024)] == lrs[ms.Cell("logits", 4096)] == 1e-3
    full = ms.PRESETS["full"]
    assert ms.sweep_widths_for(full, (256,)) is None  # runs at 256 need the sweep at 4096
    assert ms.sweep_configs(full, (256,)) == [] and len(ms.sweep_configs(full, (4096,))) == 4
    with pytest.raises(ValueError, match="sweep_widths"):
        dataclasses.replace(full, sweep_widths=(512,))


def test_the_teacher_gap_holds_at_8_points_over_the_best_label_width_and_fails_below():
    students = {"labels-h256": [_student("labels", 256, 1e-3, [0.6, 0.7], test=0.70)],
                "labels-h4096": [_student("labels", 4096, 1e-3, [0.6, 0.7], s, test=t) for s, t in
                                 enumerate((0.76, 0.78))]}
    ok = teacher_beats_best_student(0.87, students, "the ensemble")
    assert ok.holds and ok.numbers["best_student"] == pytest.approx(0.77) and ok.numbers["gap"] == pytest.approx(10)
    assert "labels-h4096, 2 seed(s)) 77.0%" in ok.detail and "10.0 points (needs ≥ 8)" in ok.detail
    weak = teacher_beats_best_student(0.83, students)
    assert not weak.holds and weak.status == "does not hold" and weak.numbers["gap"] == pytest.approx(6)
    assert teacher_beats_best_student(0.9, {}).status == "no records"
    untested = _student("labels", 256, 1e-3, [0.7, 0.6])
    untested["history"][0]["test_acc"] = None  # the run did not test the epoch its rule picks
    unread = teacher_beats_best_student(0.9, {"labels-h256": [untested]})
    assert unread.status == "rule not available" and not unread.holds


def test_a_student_is_at_a_plateau_when_its_best_validation_accuracy_stops_rising_over_the_last_fifth():
    flat = _student("labels", 256, 1e-3, [0.5, 0.6, 0.7, 0.702, 0.69, 0.7, 0.7, 0.7, 0.704, 0.703])
    rising = _student("logits", 256, 1e-3, [0.5, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.70, 0.72], seed=3)
    assert plateau_rise(flat) == pytest.approx(0.002) and plateau_rise(rising) == pytest.approx(0.02)
    assert math.isinf(plateau_rise(_student("labels", 8, 1e-3, [0.3])))
    assert trained_to_plateau([flat]).holds
    check = trained_to_plateau([flat, rising])
    assert not check.holds and check.numbers["largest_rise"] == pytest.approx(2.0)
    assert "(logits-h256; each needs < 0.5)" in check.detail and "one run alone by up to 2.00 (logits-h256 seed 3)" \
        in check.detail
    assert trained_to_plateau([]).status == "no records"


def test_one_seeds_chance_peak_on_a_flat_curve_is_averaged_out_with_its_settings_other_seeds():
    """Seed 0 sets a new best of +0.8 points in its last fifth by noise; its setting's mean curve is flat."""
    peak = _student("logits", 4096, 1e-3, [0.6, 0.7, 0.71, 0.70, 0.71, 0.70, 0.71, 0.70, 0.718, 0.70])
    dip = _student("logits", 4096, 1e-3, [0.6, 0.7, 0.71, 0.70, 0.71, 0.70, 0.71, 0.70, 0.69, 0.71], seed=1)
    assert plateau_rise(peak) == pytest.approx(0.008)
    check = trained_to_plateau([peak, dip])
    assert check.holds and check.numbers["largest_rise"] == pytest.approx(0.0, abs=1e-9)
    assert check.numbers["largest_run_rise"] == pytest.approx(0.8) and "1 setting(s)" in check.detail


def test_the_module_preconditions_read_the_ensemble_from_the_mimic_students():
    records = [_student("labels", 256, 1e-3, [0.7, 0.7], test=0.7), _student("logits", 256, 1e-3, [0.7, 0.7])]
    gap, plateau = ms.preconditions(records)
    assert gap.holds and gap.numbers["teacher"] == pytest.approx(0.87) and plateau.holds
    with pytest.raises(ValueError, match="disagree on the ensemble"):
        ms.ensemble_accuracy(records + [_student("logits", 1024, 1e-3, [0.7], teacher=0.5)])
    with pytest.raises(ValueError, match="no mimic student"):
        ms.ensemble_accuracy(records[:1])


def test_a_tiny_comparison_trains_end_to_end_with_the_ensembles_logits_computed_once(monkeypatch):
    calls = []
    real = mimic.ensemble_logits

    def counted(teachers, x, *a, **k):
        calls.append(len(x))
        return real(teachers, x, *a, **k)

    monkeypatch.setattr(mimic, "ensemble_logits", counted)
    records = ms.run("quick", device="cpu", smoke=True)
    p = ms.preset("quick", smoke=True)
    stages = [r["stage"] for r in records]
    assert stages.count("teachers") == 2 and stages.count("sweep") == 2 * 2  # both losses, two rates, widest only
    runs = [r for r in records if r["stage"] == "runs"]
    assert sorted((r["name"], r["seed"]) for r in runs) == [("labels-h16", 0), ("labels-h16", 1), ("labels-h8", 0),
                                                            ("mimic-h16", 0), ("mimic-h16", 1), ("mimic-h8", 0),
                                                            ("mimic_one-h16", 0)]
    # one pass over the transfer set (128 images and a view) and one over the test split, for 5 mimic students
    # of the ensemble, and the same for the student of the first teacher alone
    assert calls == [128 * 2, 64, 128 * 2, 64]
    assert all(set(ms.REQUIRED_METRICS) <= set(r["metrics"]) for r in runs)
    ensemble = {r["metrics"]["teacher_test_acc"] for r in runs if r["name"].startswith("mimic-")}
    assert len(ensemble) == 1 and ms.ensemble_accuracy(runs) == ensemble.pop()  # the one-teacher student's is not it
    assert all(r["config"]["epochs"] == p.epochs for r in runs)
    assert [c.name for c in ms.preconditions(runs)][0].startswith("the teacher ensemble beats")
    for s in p.ensemble:  # a fresh clone: records stored, weights not
        ms.teacher_weights("quick", p.teacher, s).unlink()
    monkeypatch.setattr(ms.guides, "train_guide", lambda *a, **k: pytest.fail("retrained a stored teacher"))
    monkeypatch.setattr(ms, "train_student", lambda *a, **k: pytest.fail("retrained a stored student"))
    monkeypatch.setattr(ms, "resolve_teachers", lambda *a, **k: pytest.fail("resolved teachers for stored records"))
    again = ms.run("quick", device="cpu", smoke=True)
    assert [r["metrics"] for r in again] == [r["metrics"] for r in records]
    with pytest.raises(pytest.fail.Exception, match="retrained a stored student"):  # force retrains the students
        ms.run("quick", device="cpu", smoke=True, force=True)


def test_the_shell_estimate_lists_the_stage_and_its_cost_without_training(monkeypatch, capsys):
    monkeypatch.setattr(costs, "step_seconds", lambda c, steps=5: {"step_s": 0.05, "eval_batch_s": 0.2})
    monkeypatch.setattr(costs, "teacher_step_seconds", lambda g, steps=3: {"step_s": 0.3, "eval_batch_s": 1.0})
    monkeypatch.setattr(ms, "_record", lambda *a, **k: pytest.fail("an estimate trained something"))
    monkeypatch.setitem(ms.PRESETS, "full", dataclasses.replace(ms.PRESETS["full"], chosen_lrs={}))  # before the sweep
    ms.main(["--stage", "runs", "--widths", "4096", "--estimate"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 * 5 + 3 + 1 and "mimic_strong/labels-h4096 seed 4: missing" in lines[4]
    assert "(lr not chosen yet)" in lines[0] and lines[-1].startswith("13 rows, 13 missing")
    # 30 epochs x (ceil(20,000 / 128) steps x 0.05 s + 11 evaluation batches x 0.2 s)
    assert f"about {30 * (157 * 0.05 + 11 * 0.2) / 60:.1f} min" in lines[0]
    ms.main(["--stage", "sweep", "--estimate"])
    out = capsys.readouterr().out
    assert "the ensemble's logits (3 teachers, computed once)" in out and "5 rows, 5 missing" in out


def test_the_whole_plans_estimate_times_each_network_once(monkeypatch, capsys):
    timed = []
    monkeypatch.setattr(costs, "step_seconds", lambda c, steps=5: timed.append(str(ms.Cell(c.loss, c.hidden))) or
                        {"step_s": 0.05, "eval_batch_s": 0.2})
    monkeypatch.setattr(costs, "teacher_step_seconds", lambda g, steps=3: timed.append("teacher") or
                        {"step_s": 0.3, "eval_batch_s": 1.0})
    ms.main(["--estimate"])
    out = capsys.readouterr().out.splitlines()
    assert sorted(timed) == sorted(["teacher"] + [str(c) for c in ms.cells(ms.PRESETS["full"])])
    assert out[-1].startswith(f"{3 + 1 + 4 + 25} rows") and out[0].startswith("guides/resnet18-every-image seed 0")


@pytest.mark.parametrize("argv, message", [
    (["--stage", "sweep", "--seeds", "0"], "the sweep stage has its own seed"),
    (["--stage", "teachers", "--widths", "256"], "the teachers stage has no widths"),
    ([], "--stage: name the stage to train"),
    (["--estimate", "--seeds", "0"], "belong to one stage"),
    (["--stage", "runs", "--widths", "7"], r"--widths: \[7\] are not in the preset's"),
    (["--stage", "runs", "--seeds", "1", "1"], "--seeds"),
    (["--stage", "bogus"], "invalid choice"),
    (["--stage", "runs", "--device", "tpu"], "tpu"),
])
def test_the_shell_entry_refuses_wrong_arguments_by_name(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(ms, "_record", lambda *a, **k: pytest.fail("a refused command trained something"))
    with pytest.raises(SystemExit) as exit_:
        ms.main(argv)
    assert exit_.value.code == 2 and re.search(message, capsys.readouterr().err)


def test_the_shell_runs_stage_needs_the_stored_sweep_in_full(monkeypatch):
    monkeypatch.delenv("UNTRAINABLE_TRAIN_MISSING", raising=False)
    with pytest.raises(MissingRecordError, match="mimic_strong_sweeps/labels-h4096-lr0.001"):
        ms.main(["--stage", "runs", "--widths", "256"])
