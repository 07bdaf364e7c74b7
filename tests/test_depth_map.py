"""The depth map (issue #31): its configs come from chapter 04's presets, its pilots choose on validation
accuracy, its deep BatchNorm FCNs start and train, and it says where a control fails to train."""

from __future__ import annotations

import dataclasses
import math

import pytest

from untrainable.experiments import depth_map as dm
from untrainable.experiments import fcn_guidance as fcn
from untrainable.experiments import image_guidance as ig
from untrainable.profiles import PROFILES, PresetError, replace_preset
from untrainable.record_keys import key_payload, run_key


def test_every_profile_has_a_map_and_the_full_one_spans_depth_3_to_48_with_batchnorm_and_pilots_without():
    assert set(dm.PRESETS) == set(PROFILES)
    full = dm.PRESETS["full"]
    assert full.depths == (3, 6, 12, 24, 48) and full.batch_norm == (True,)
    assert [str(c) for c in dm.cells(full, (24, 48))] == ["fcn24", "fcn48"]
    assert [str(c) for c in dm.pilot_cells(full, (24, 48))] == ["fcn24", "fcn48", "fcn24-nobn"]
    assert [str(c) for c in dm.cells(dm.PRESETS["quick"], (24,))] == ["fcn24"]
    assert [str(c) for c in dm.pilot_cells(dm.PRESETS["quick"])] == ["fcn3", "fcn24", "fcn24-nobn"]
    with pytest.raises(ValueError, match=r"depths \[7\] are not in the preset's map"):
        dm.cells(full, (7,))
    with pytest.raises(PresetError, match="unknown preset key.*'widht'"):
        replace_preset(dm.NAME, full, widht=3)


def test_a_cell_is_chapter_04s_run_resized_so_its_images_guide_and_training_are_chapter_04s():
    """At chapter 04's own depth, width and learning rate, the map's control is chapter 04's control."""
    chapter = next(c for c in fcn.configs("full") if (c.target, c.condition) == ("deep_fcn", "no_guide"))
    full = dm.PRESETS["full"]
    mine = dm.run_configs(full, {cell: chapter.lr for cell in dm.cells(full)}, (chapter.fcn_depth,))
    assert mine[0] == chapter
    assert [c.condition for c in mine[:3]] == list(dm.CONDITIONS)
    assert mine[1].guide == fcn.configs("full")[1].guide  # the trained guide is chapter 04's record
    pilots = dm.pilot_configs(full, (24,))  # the piloted cell without BatchNorm is the same net without it
    n = len(full.pilot_lrs)
    assert [c.fcn_batch_norm for c in pilots] == [True] * n + [False] * n
    assert [dataclasses.replace(c, fcn_batch_norm=True) for c in pilots[n:]] == pilots[:n]


def test_batchnorm_at_its_default_leaves_every_record_key_as_it_was():
    c = fcn.configs("full")[0]
    assert c.fcn_batch_norm and "fcn_batch_norm" not in key_payload(c)
    without = dataclasses.replace(c, fcn_batch_norm=False)
    assert key_payload(without)["fcn_batch_norm"] is False
    assert run_key(ig.EXPERIMENT, without, 0) != run_key(ig.EXPERIMENT, c, 0)


def test_runs_need_each_cells_learning_rate_and_the_full_plan_holds_the_pilots_and_the_chosen_cells():
    full = dm.PRESETS["full"]
    with pytest.raises(ValueError, match=r"no learning rate chosen for cells \['fcn48'.*--stage pilots"):
        dm.run_configs(replace_preset(dm.NAME, full, chosen_lrs={}), {}, (48,))
    planned = dm.planned_runs("full")
    assert [(r.experiment, r.name) for r in planned[:1]] == [("guides", "resnet18-same-images")]
    pilots = [r for r in planned if r.experiment == dm.PILOT_EXPERIMENT]
    assert len(pilots) == (len(full.depths) + len(full.extra_pilots)) * len(full.pilot_lrs)
    assert {r.seed for r in pilots} == {dm.PILOT_SEED} and {r.config.condition for r in pilots} == {"no_guide"}
    runs = [r for r in planned if r.experiment == dm.EXPERIMENT]
    seeds = {(r.config.fcn_depth, r.config.condition): set() for r in runs}
    for r in runs:
        seeds[r.config.fcn_depth, r.config.condition].add(r.seed)
    assert {d for d, _ in seeds} == {c.depth for c in full.chosen_lrs}
    for (depth, condition), s in seeds.items():  # the untrainable rows' depth has five seeds (its control ten),
        if depth != full.failing_depth:  # the others three
            assert s == {0, 1, 2}
        else:
            assert s == set(full.failing_control_seeds if condition == "no_guide" else full.failing_seeds)
    assert len(full.failing_control_seeds) == 10 and set(full.failing_seeds) < set(full.failing_control_seeds)


def test_the_failing_depth_is_the_shallowest_whose_stored_pilot_control_fails_to_train(committed_store):
    """The preset's ``failing_depth`` (where page 98's untrainable rows are judged) is what the committed
    pilots say: at each depth the control at its chosen learning rate against the 3-layer control."""
    from untrainable.results import find_record, load_record
    full = dm.PRESETS["full"]
    pilots = [load_record(find_record(r.path("full"))) for r in dm.planned_runs("full")
              if r.experiment == dm.PILOT_EXPERIMENT and r.config.fcn_batch_norm]
    chosen = {dm.Cell(r["config"]["fcn_depth"]): r for r in pilots
              if full.chosen_lrs.get(dm.Cell(r["config"]["fcn_depth"])) == r["config"]["lr"]}
    fails = [d for d in full.depths if dm.Cell(d) in chosen and d > dm.SHALLOW
             and dm.control_fails([chosen[dm.Cell(d)]], [chosen[dm.Cell(dm.SHALLOW)]], f"fcn{d}").holds]
    assert fails and fails[0] == full.failing_depth
    assert all(full.chosen_lrs[c] == lr for c, lr in dm.chosen_lrs(pilots).items() if c in full.chosen_lrs)


def _record(depth: int, lr: float, valid_acc: float, train_acc: float = 0.5, batch_norm: bool = True) -> dict:
    return {"name": f"fcn{depth}", "config": {"fcn_depth": depth, "fcn_batch_norm": batch_norm, "lr": lr,
                                               "condition": "no_guide"},
            "metrics": {"min_valid_loss": 1.0},
            "history": [{"valid_acc": valid_acc, "valid_loss": 1.0, "train_acc": train_acc}]}


def test_the_pilots_choose_each_cells_learning_rate_by_validation_accuracy():
    records = [_record(3, 1e-3, 0.40), _record(3, 1e-4, 0.45), _record(48, 1e-3, 0.12), _record(48, 1e-4, 0.11),
               _record(48, 1e-3, 0.30, batch_norm=False), _record(48, 1e-4, 0.20, batch_norm=False)]
    assert dm.chosen_lrs(records) == {dm.Cell(3): 1e-4, dm.Cell(48): 1e-3, dm.Cell(48, False): 1e-3}
    written = replace_preset(dm.NAME, dm.PRESETS["quick"], chosen_lrs={dm.Cell(48): 1e-4})
    with pytest.raises(ValueError, match="disagree with what the pilots choose.*fcn48"):
        dm.learning_rates(written, records)


def test_a_control_fails_to_train_near_chance_or_twenty_points_below_the_shallow_net():
    shallow = [_record(3, 1e-3, 0.5, train_acc=0.9)]
    near_chance = dm.control_fails([_record(48, 1e-3, 0.1, train_acc=0.15)], shallow, "the 48-layer net")
    below = dm.control_fails([_record(48, 1e-3, 0.3, train_acc=0.65)], shallow, "the 48-layer net")
    trains = dm.control_fails([_record(48, 1e-3, 0.4, train_acc=0.8)], shallow, "the 48-layer net")
    assert near_chance.holds and below.holds and not trains.holds
    assert below.numbers["gap_to_shallow"] == pytest.approx(0.25) and "20 points or more below" in below.detail
    assert dm.control_fails([], shallow, "the 48-layer net").status == "no records"
    checks = dm.preconditions(shallow + [_record(48, 1e-3, 0.3, train_acc=0.65)])
    assert [(c.name, c.holds) for c in checks] == [("the unguided fcn48 fails to train where a shallower net trains",
                                                    True)]
    assert dm.failing_depths(shallow + [_record(48, 1e-3, 0.3, train_acc=0.65)]) == {48: True}


def test_a_tiny_depth_map_trains_end_to_end_and_its_24_layer_batchnorm_fcn_starts():
    """The 24-layer BatchNorm FCN's deep layers are constant at initialisation in eval mode: its probes
    record null with a reason, and every run trains and is stored."""
    records = dm.run("quick", seeds=(0,), smoke=True)
    p = dm.preset("quick", smoke=True)
    assert [r["name"] for r in records] == [f"{cell}-{c}" for cell in dm.cells(p) for c in dm.CONDITIONS]
    deep = [r for r in records if r["config"]["fcn_depth"] == 24 and r["config"]["fcn_batch_norm"]]
    assert len(deep) == len(dm.CONDITIONS)
    for r in deep:
        initial = r["initial_cka"]["trained"]
        reasons = r["initial_cka_undefined"]["trained"]
        assert None in initial and sorted(map(int, reasons)) == [i for i, v in enumerate(initial) if v is None]
        assert all("constant" in why for why in reasons.values())
    for r in records:
        assert all(math.isfinite(h["train_loss"]) for h in r["history"])
    assert {r["config"]["lr"] for r in records} == set(p.pilot_lrs)  # each cell at its pilots' choice
    again = dm.run("quick", seeds=(0,), smoke=True)  # loaded, not retrained
    assert [r["key"] for r in again] == [r["key"] for r in records]


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: --stage"),
    (["--stage", "runs", "--seeds", "1", "1"], "--seeds: seeds must be distinct"),
    (["--stage", "runs", "--profile", "huge"], "invalid choice: 'huge'"),
    (["--stage", "runs", "--device", "tpu"], "tpu"),
])
def test_the_shell_entry_refuses_wrong_arguments_by_name(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(dm.ig, "run_targets", lambda *a, **k: pytest.fail("a refused command trained something"))
    with pytest.raises(SystemExit) as exit_:
        dm.main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_the_shell_estimate_lists_the_stage_and_its_cost_without_training(monkeypatch, capsys):
    monkeypatch.setattr(dm, "step_seconds", lambda c, steps=5: {"step_s": 0.5, "eval_batch_s": 0.1})
    monkeypatch.setattr(dm.ig, "run_targets", lambda *a, **k: pytest.fail("an estimate trained something"))
    dm.main(["--profile", "full", "--stage", "runs", "--depths", "24", "48", "--seeds", "0", "--estimate"])
    out = capsys.readouterr().out
    assert "depth_map/fcn48-trained_guide seed 0: missing" in out and "(lr not chosen yet)" not in out
    assert "6 runs, " in out  # two cells with BatchNorm, three conditions, seed 0
    dm.main(["--profile", "full", "--stage", "runs", "--depths", "24", "--conditions", "no_guide", "--estimate"])
    out = capsys.readouterr().out  # the estimate lists every condition; --conditions narrows the training
    assert "depth_map/fcn24-no_guide seed 9: missing" in out and "fcn24-trained_guide seed 5" not in out
    trained = []
    monkeypatch.setattr(dm.ig, "run_targets", lambda profile, configs, seeds, *a, **k: trained.append(
        ([c.condition for c in configs], seeds)) or [])
    monkeypatch.setattr(dm, "run_pilots", lambda *a, **k: [])
    monkeypatch.setattr(dm, "learning_rates", lambda p, pilots: dict(p.chosen_lrs))
    dm.main(["--profile", "full", "--stage", "runs", "--depths", "24", "--conditions", "no_guide"])
    assert trained == [(["no_guide"], tuple(range(10)))]
    monkeypatch.setitem(dm.PRESETS, "full", replace_preset(dm.NAME, dm.PRESETS["full"], chosen_lrs={}))
    dm.main(["--profile", "full", "--stage", "runs", "--depths", "48", "--seeds", "0", "--estimate"])
    assert "depth_map/fcn48-no_guide seed 0: missing, 0.500 s/step, about" in capsys.readouterr().out.split(
        "(lr not chosen yet)")[0]
    rows = dm.estimate("full", "pilots", (48,))
    c = dm.pilot_configs(dm.PRESETS["full"], (48,))[0]
    steps = math.ceil(c.n_train / c.batch_size) * c.epochs
    evals = math.ceil((c.n_valid + 10000) / c.batch_size) * c.epochs  # n_test None: every test image
    assert rows[0]["estimated_s"] == pytest.approx(0.5 * steps + 0.1 * evals)


def _run_record(depth: int, condition: str, seed: int, best_train: float, test: float) -> dict:
    """A map run of two epochs whose second has the highest validation accuracy (the book's estimate's epoch)."""
    return {"name": f"fcn{depth}-{condition}", "seed": seed, "profile": "full",
            "config": {"fcn_depth": depth, "fcn_batch_norm": True, "lr": 1e-3, "condition": condition},
            "metrics": {"test_acc": test},
            "history": [{"epoch": 1, "train_acc": 0.1, "valid_acc": 0.1, "valid_loss": 2.3, "test_acc": 0.1},
                        {"epoch": 2, "train_acc": best_train, "valid_acc": 0.3, "valid_loss": 2.0, "test_acc": test}]}


def test_the_map_tables_read_best_train_and_the_estimate_and_name_the_failing_depth():
    from untrainable.analysis import depth_tables as DT
    from untrainable.figures_guidance import depth_map as figure

    records = [_run_record(d, c, s, train, test + 0.01 * s) for s in range(3)
               for d, c, train, test in ((3, "no_guide", 0.99, 0.40), (24, "no_guide", 0.45, 0.30),
                                         (24, "trained_guide", 0.80, 0.36))]
    frame = DT.depth_frame(records)
    assert frame.loc[(frame.depth == 24) & (frame.condition == "no_guide"), "test acc (%)"].tolist() == \
        pytest.approx([30.0, 31.0, 32.0])
    table = DT.depth_table(records, {"no_guide": "no guide", "trained_guide": "trained"})
    assert table.loc[24, ("no guide", "best train acc (%)")] == "45.0 ± 0.0"
    assert table.loc[24, ("trained", "test acc (%)")] == "37.0 ± 1.0" and table.loc[24, ("trained", "seeds")] == 3
    backwards = DT.depth_table(records[::-1], {"no_guide": "no guide", "trained_guide": "trained"})
    assert list(backwards.columns.get_level_values(0).unique()) == ["no guide", "trained"]  # the labels' order
    fails = dm.failing_depths(records)
    assert fails == {24: True}
    text = DT.depth_summary(records, fails, {"no_guide": "no guide", "trained_guide": "trained"})
    assert "first fails to train at **24 layers**" in text and "trained 80.0 % best train, 37.0 % test (3 seeds)" in text
    assert "At no depth" in DT.depth_summary(records, {24: False}, {})
    pilots = DT.pilot_table([_run_record(24, "no_guide", 100, 0.45, 0.3)], {dm.Cell(24): 1e-3})
    assert pilots["chosen"].tolist() == ["✓"] and pilots["best valid acc (%)"].tolist() == [30.0]
    fig = figure(frame, {}, "map")
    assert [ax.get_ylabel() for ax in fig.axes] == ["best train accuracy (%)", "test accuracy (%)"]
    assert len(fig.axes[0].lines) >= 2  # a line per condition, and chance


def test_nets_without_batchnorm_are_a_row_and_a_line_of_their_own():
    from untrainable.analysis import depth_tables as DT
    from untrainable.figures_guidance import depth_map as figure

    with_bn = [_run_record(3, "no_guide", s, 0.99, 0.40) for s in range(2)]
    without = [{**r, "config": {**r["config"], "fcn_batch_norm": False}}
               for r in (_run_record(3, "no_guide", s, 0.50, 0.20) for s in range(2))]
    table = DT.depth_table(with_bn + without, {})
    assert list(table.index) == [("yes", 3), ("no", 3)]
    assert table.loc[("no", 3), ("no_guide", "best train acc (%)")] == "50.0 ± 0.0"
    fig = figure(DT.depth_frame(with_bn + without), {}, "map")
    assert {line.get_linestyle() for line in fig.axes[0].get_lines()} >= {"-", "--"}
