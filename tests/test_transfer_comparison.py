"""Chapter 08 (issue 17): the runs, the weight sweep and a smoke run of every method with both teachers."""

from __future__ import annotations

import numpy as np

from untrainable.experiments import transfer_comparison as TC


def test_every_method_meets_both_teachers_at_the_chapter_04_students_training():
    cfgs = TC.configs("full")
    names = [TC.run_name(c) for c in cfgs]
    assert len(set(names)) == len(names) and names[0] == "labels"
    assert {c.method for c in cfgs} == set(TC.METHODS)
    assert {c.teacher_trained for c in cfgs if c.method == "kd"} == {True, False}
    assert len({c.student for c in cfgs}) == 1 and cfgs[0].student.target == "deep_fcn"
    assert {c.distance for c in cfgs if c.method == "guidance"} == set(TC.PRESETS["full"]["distances"])
    assert [m.name for m in cfgs[1].methods()] == ["labels", cfgs[1].method]
    sweep = TC.sweep_configs("full")
    assert len(sweep) == (len(cfgs) - 1) * len(TC.PRESETS["full"]["weights"])
    records = [{"name": f"kd-trained-w{w:g}", "config": {"weight": w}, "metrics": {"min_valid_loss": v}}
               for w, v in ((0.1, 1.2), (1.0, 1.1), (10.0, 1.3))]
    assert TC.chosen_weights(records) == {"kd-trained": 1.0}


def test_a_smoke_run_trains_each_method_with_a_trained_and_an_untrained_teacher():
    records = TC.run("quick", seeds=(0,), smoke=True)
    assert [r["name"] for r in records] == [TC.run_name(c) for c in TC.configs("quick", smoke=True)]
    for r in records:
        m = r["metrics"]
        assert np.isfinite(m["checkpoint_test_acc"]) and 0 <= m["mean_cka_teacher"] <= 1 and m["seconds_per_step"] > 0
