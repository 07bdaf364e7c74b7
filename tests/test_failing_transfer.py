"""Distillation from the untrained teacher where the Deep FCN fails to train (issue #31, item 3's last row):
KD beside the labels and KD alone, on the depth map's control at its failing depth."""

from __future__ import annotations

import pytest
import torch

from untrainable import transfer as T
from untrainable.experiments import depth_map as dm
from untrainable.experiments import failing_transfer as ft
from untrainable.experiments import transfer_comparison as tc
from untrainable.profiles import PROFILES
from untrainable.record_keys import key_payload


def test_the_full_plan_is_kds_weight_sweep_then_both_runs_on_the_maps_failing_control_and_seeds():
    assert set(ft.PRESETS) == set(PROFILES)
    full_map = dm.PRESETS["full"]
    lr = full_map.chosen_lrs[dm.Cell(24)]
    control = dm.cell_configs(full_map, dm.Cell(24), lr, ("no_guide",))[0]
    planned = ft.planned_runs("full")
    sweep = [r for r in planned if r.experiment == ft.SWEEP_EXPERIMENT]
    assert [r.config.weight for r in sweep] == list(tc.PRESETS["full"].weights) and {r.seed for r in sweep} == {100}
    assert all(r.config.student == control and not r.config.teacher_trained for r in planned)
    runs = [r for r in planned if r.experiment == ft.EXPERIMENT]
    assert {r.name for r in runs} == set(ft.RUNS) and {r.seed for r in runs} == set(full_map.failing_seeds)
    alone = [r.config for r in runs if r.name == "kd_only-untrained"]
    assert all(not c.with_labels and c.methods() == [T.Method("kd", 1.0, 4.0, "linear_cka")] for c in alone)


def test_the_runs_wait_for_the_chosen_weight(monkeypatch):
    monkeypatch.setitem(ft.PRESETS, "full", ft.FailingTransferPreset(weights=(0.1, 1.0, 10.0)))
    assert {r.experiment for r in ft.planned_runs("full")} == {ft.SWEEP_EXPERIMENT}


def test_without_labels_is_a_new_run_and_stored_transfer_keys_are_unchanged():
    student = ft.student("full", 1e-3)
    with_labels = tc.Config(student, "kd", False)
    assert "with_labels" not in key_payload(with_labels)  # the added field at its default leaves keys as they were
    assert tc.run_name(with_labels) == "kd-untrained"
    alone = tc.Config(student, "kd", False, with_labels=False)
    assert key_payload(alone)["with_labels"] is False and tc.run_name(alone) == "kd_only-untrained"
    with pytest.raises(ValueError, match="needs a method that reads the teacher"):
        tc.Config(student, "labels", True, with_labels=False)


def test_kd_alone_learns_only_the_teachers_outputs():
    """Without the label term the loss does not read the labels: shuffling them changes nothing."""
    torch.manual_seed(0)
    student, teacher = (torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 6), torch.nn.ReLU(),
                                            torch.nn.Linear(6, 3)) for _ in range(2))
    x, y = torch.randn(8, 3, 2, 2), torch.randint(0, 3, (8,))
    alone = T.TransferLoss(student, teacher, [T.Method("kd", 1.0, 4.0)], x[:2])
    both = T.TransferLoss(student, teacher, [T.Method("labels"), T.Method("kd", 1.0, 4.0)], x[:2])
    assert alone(student, x, y)[0].item() == pytest.approx(alone(student, x, y.flip(0))[0].item())
    assert both(student, x, y)[0].item() != pytest.approx(both(student, x, (y + 1) % 3)[0].item())


def test_a_tiny_sweep_and_both_runs_train_and_load_when_stored():
    records = ft.run("quick", seeds=(0,), smoke=True)
    assert [r["name"] for r in records] == list(ft.RUNS)
    assert [r["config"].get("with_labels", True) for r in records] == [True, False]
    assert {r["config"]["student"]["fcn_depth"] for r in records} == {24}
    again = ft.run("quick", seeds=(0,), smoke=True)
    assert [r["key"] for r in again] == [r["key"] for r in records]


def test_the_section_compares_the_maps_control_and_untrained_guide_at_the_depth_with_both_kd_runs():
    map_records = [{"name": f"fcn{d}-{c}", "config": {"fcn_depth": d, "condition": c}}
                   for d in (3, 24) for c in dm.CONDITIONS]
    map_records.append({"name": "fcn24-nobn-no_guide", "config": {"fcn_depth": 24, "fcn_batch_norm": False,
                                                                  "condition": "no_guide"}})
    kd = [{"name": name, "config": {}} for name in ft.RUNS]
    shown = ft.with_map("quick", map_records, kd)
    assert [r["name"] for r in shown] == ["fcn24-no_guide", "fcn24-untrained_guide", *ft.RUNS]
    assert list(ft.shown("quick")) == [r["name"] for r in shown]
    assert ft.contrasts("quick")[:2] == [("kd-untrained", "fcn24-no_guide"), ("kd_only-untrained", "fcn24-no_guide")]
    assert ft.contrasts("quick")[3:] == [("fcn24-untrained_guide", "kd-untrained"),
                                         ("fcn24-untrained_guide", "kd_only-untrained")]


def test_the_full_presets_weight_is_what_the_committed_sweep_chooses(committed_store):
    sweep = ft.run_sweep("full", train_missing=False)
    assert len(sweep) == len(ft.PRESETS["full"].weights)
    assert ft.chosen_weight(sweep) == ft.PRESETS["full"].chosen_weight


def test_the_shell_entry_refuses_seeds_for_the_sweep(capsys):
    with pytest.raises(SystemExit) as exit_:
        ft.main(["--stage", "sweep", "--seeds", "0"])
    assert exit_.value.code == 2 and "the sweep stage has its own seed (100)" in capsys.readouterr().err
