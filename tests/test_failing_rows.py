"""The untrainable rows (issue #31, item 3): chapter 04's other conditions at the depth map's failing depth,
with the map's seeds and learning rate, stored beside the map's runs."""

from __future__ import annotations

import pytest

from untrainable.experiments import depth_map as dm
from untrainable.experiments import failing_rows as fr
from untrainable.experiments import fcn_guidance as fcn
from untrainable.profiles import PROFILES, replace_preset


def test_every_profile_has_rows_and_full_takes_the_maps_failing_depth_seeds_and_learning_rate():
    assert set(fr.PRESETS) == set(PROFILES)
    full_map = dm.PRESETS["full"]
    assert fr.depth("full") == full_map.failing_depth == 24
    planned = fr.planned_runs("full")
    rows = [r for r in planned if r.experiment == fr.EXPERIMENT]
    assert {r.name for r in rows} == {f"fcn24-{c}" for c in fr.CONDITIONS}
    assert {r.seed for r in rows} == set(full_map.failing_seeds)
    assert {r.config.lr for r in rows} == {full_map.chosen_lrs[dm.Cell(24)]}
    assert ("guides", "small_cnn-same-images") in {(r.experiment, r.name) for r in planned}
    assert not {r.path("full") for r in rows} & {r.path("full") for r in dm.planned_runs("full")}


def test_a_row_is_the_maps_cell_under_chapter_04s_condition_with_its_guide_steps():
    """Only the condition (its guide, its guided steps) separates a row from the map's control of the cell."""
    lr = dm.PRESETS["full"].chosen_lrs[dm.Cell(24)]
    control = dm.cell_configs(dm.PRESETS["full"], dm.Cell(24), lr, ("no_guide",))[0]
    by_condition = {c.condition: c for c in fr.configs("full", lr)}
    base = fcn.PRESETS["full"]
    assert by_condition["trained_guide_init"].guide_steps == base.guide_steps == 48
    assert by_condition["trained_guide_init_long"].guide_steps == base.guide_steps_long == 192
    assert by_condition["small_cnn_guide"].guide.family == "small_cnn"
    for c in by_condition.values():
        assert (c.fcn_depth, c.fcn_width, c.lr, c.alpha, c.n_train, c.epochs, c.reference_guide) == (
            control.fcn_depth, control.fcn_width, control.lr, control.alpha, control.n_train, control.epochs,
            control.reference_guide)


def test_wrong_conditions_and_a_map_without_a_failing_depth_are_refused_by_name(monkeypatch):
    with pytest.raises(ValueError, match=r"conditions \['dropout_guide'\] are not chapter 04's"):
        fr.FailingRowsPreset(conditions=("dropout_guide",))
    with pytest.raises(ValueError, match=r"conditions \['no_guide'\] are not the full rows'"):
        fr.configs("full", 1e-3, ["no_guide"])
    monkeypatch.setitem(dm.PRESETS, "full", replace_preset(dm.NAME, dm.PRESETS["full"], failing_depth=None))
    with pytest.raises(ValueError, match="names no failing depth yet: run its pilots"):
        fr.planned_runs("full")
    monkeypatch.setitem(fr.PRESETS, "full", fr.FailingRowsPreset(depth=7))
    with pytest.raises(ValueError, match=r"depth 7 is not in the depth map's full preset"):
        fr.depth("full")


def test_tiny_rows_train_at_the_maps_pilot_choice_and_load_when_stored():
    records = fr.run("quick", seeds=(0,), smoke=True)
    assert [r["name"] for r in records] == [f"fcn24-{c}" for c in fr.CONDITIONS]
    lr = {r["config"]["lr"] for r in records}
    pilots = dm.run_pilots("quick", [24], smoke=True, mapped_only=True)
    assert lr == {dm.chosen_lrs(pilots)[dm.Cell(24)]}
    init = next(r for r in records if r["config"]["condition"] == "trained_guide_init")
    assert init["config"]["guide_steps"] == fcn.smoke(fcn.PRESETS["quick"]).guide_steps
    again = fr.run("quick", seeds=(0,), smoke=True)  # loaded, not retrained
    assert [r["key"] for r in again] == [r["key"] for r in records]


def test_the_shell_entry_estimates_without_training_and_refuses_unknown_conditions(monkeypatch, capsys):
    monkeypatch.setattr(dm, "step_seconds", lambda c, steps=5: {"step_s": 0.5, "eval_batch_s": 0.1})
    monkeypatch.setattr(fr.ig, "run_targets", lambda *a, **k: pytest.fail("an estimate trained something"))
    fr.main(["--profile", "full", "--seeds", "0", "--estimate"])
    out = capsys.readouterr().out
    assert "depth_map/fcn24-small_cnn_guide seed 0:" in out and "3 runs, " in out
    with pytest.raises(SystemExit) as exit_:
        fr.main(["--conditions", "no_guide"])
    assert exit_.value.code == 2 and "invalid choice: 'no_guide'" in capsys.readouterr().err


def test_the_nets_shown_at_the_depth_are_the_maps_there_and_the_rows():
    map_records = [{"name": f"fcn{d}-no_guide", "config": {"fcn_depth": d}} for d in (3, 24, 48)] + [
        {"name": "fcn24-nobn-no_guide", "config": {"fcn_depth": 24, "fcn_batch_norm": False}}]  # quick maps it too
    rows = [{"name": "fcn24-small_cnn_guide", "config": {"fcn_depth": 24}}]
    assert [r["name"] for r in fr.with_map("full", map_records, rows)] == ["fcn24-no_guide", "fcn24-small_cnn_guide"]
    assert fr.SHOWN[:3] == dm.CONDITIONS and fr.CONTRASTS[0] == ("trained_guide", "no_guide")
    assert {c for c, _ in fr.CONTRASTS} == set(fr.SHOWN) - {"no_guide"}
