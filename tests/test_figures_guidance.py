"""The guidance chapters' record figures (:mod:`untrainable.figures_guidance`), drawn from synthetic records:
the panels, lines, labels and colour limits a reader sees, and what a record without the needed field gives."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from untrainable import figures_guidance as F  # noqa: E402

GUIDE_LAYERS, TARGET_LAYERS = ["conv1", "layer2.0.downsample.0", "avgpool"], ["features.1", "features.5"]


def image_record(condition: str, seed: int = 0, grid: bool = True, epochs: int = 4) -> dict:
    """A chapter-04-like record: a guided history with the loss's parts, and (``grid``) a CKA grid whose
    first cell is undefined at initialisation."""
    history = [{"epoch": e, "train_task_loss": 2.0 / e, "train_loss": 2.0 / e + 0.5 * (3.0 - 0.1 * e),
                "guidance_term": 3.0 - 0.1 * e, "pair_distance": [0.5, 0.5]} for e in range(1, epochs + 1)]
    record = {"name": condition, "seed": seed, "profile": "quick", "history": history, "pairs": [["a", "b"]] * 2,
              "config": {"alpha": 0.5, "distance": "linear_cka", "condition": condition, "target": "deep_fcn"}}
    if grid:
        cells = [[0.2 * (i + 1) for _ in TARGET_LAYERS] for i in range(len(GUIDE_LAYERS))]
        first = [[None, *line[1:]] if i == 0 else line for i, line in enumerate(cells)]
        ref = {"guide_layers": GUIDE_LAYERS, "target_layers": TARGET_LAYERS}
        record["cka_grid"] = {"initial": {"trained": {**ref, "cka": first}, "untrained": {**ref, "cka": first}},
                              "final": {"trained": {**ref, "cka": cells}, "untrained": {**ref, "cka": cells}}}
    return record


def sequence_record(setting: str, condition: str, seed: int, epochs: int = 3) -> dict:
    """A chapter-06-like record: probe CKA at initialisation and at the end; a guided run's history
    also logs the pair distances of its loss."""
    history = [{"epoch": e, "valid_acc": 0.1 * e, "valid_loss": 2.0 - 0.1 * e, "name": condition}
               for e in range(1, epochs + 1)]
    if condition != "no_guide":
        for h in history:
            h["pair_distance"] = [0.5 - 0.1 * h["epoch"] + 0.01 * seed, 0.5]
    return {"name": condition, "seed": seed, "profile": "full", "history": history,
            "config": {"setting": setting, "condition": condition},
            "initial_cka": {"trained": [0.2, None], "untrained": [0.4, 0.6]},
            "final_cka": {"trained": [0.3 + 0.01 * seed, 0.5], "untrained": [0.4, 0.4]}}


def test_loss_decomposition_draws_the_task_loss_the_weighted_term_and_their_sum():
    fig = F.loss_decomposition([image_record("no_guide"), image_record("trained_guide")], "trained_guide",
                               "Deep FCN + trained guide", seed=0)
    ax = fig.axes[0]
    task, guidance, total = ax.get_lines()
    np.testing.assert_allclose(guidance.get_ydata(), [0.5 * (3.0 - 0.1 * e) for e in range(1, 5)])
    np.testing.assert_allclose(total.get_ydata(), task.get_ydata() + guidance.get_ydata())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[1] == "guidance term: alpha × Σ (1 − CKA) over 2 pairs, alpha = 0.5"
    assert "profile quick" in ax.get_title() and "seed 0" in ax.get_title() and "trained_guide" not in ax.get_title()  # no internal id
    plt.close(fig)


def test_loss_decomposition_refuses_a_run_without_a_term_in_every_epoch():
    partial = image_record("trained_guide_init")
    del partial["history"][-1]["guidance_term"]
    with pytest.raises(ValueError, match="no guidance term in every epoch"):
        F.loss_decomposition([partial], "trained_guide_init", "first steps only")
    with pytest.raises(LookupError, match="no record 'trained_guide' of seed 3"):
        F.loss_decomposition([partial], "trained_guide", "x", seed=3)


def test_cka_heatmaps_share_a_zero_to_one_scale_and_mark_undefined_cells():
    records = [image_record("trained_guide"), image_record("untrained_guide")]
    fig = F.cka_heatmaps(records, ("trained_guide", "untrained_guide"), 0, "Deep FCN", "chapter")
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 4
    assert {ax.images[0].get_clim() for ax in panels} == {(0.0, 1.0)}
    top_left = panels[0]
    assert top_left.images[0].get_array().shape == (len(TARGET_LAYERS), len(GUIDE_LAYERS))
    assert [t.get_text() for t in top_left.get_xticklabels()] == ["c1", "L2.0.ds.0", "pool"]
    assert [t.get_text() for t in top_left.get_yticklabels()] == ["f1", "f5"]
    assert top_left.get_xlabel() == "guide layer" and top_left.get_ylabel() == "target layer"
    assert len(top_left.patches) == 1 and top_left.patches[0].get_hatch() == "///"  # the one None at init
    assert not panels[2].patches  # after training every cell is defined
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [F.UNDEFINED_NOTE]
    assert "initialisation" in top_left.get_title() and "after training" in panels[2].get_title()
    assert all("_guide" not in ax.get_title() for ax in panels)  # the page names guides in words, not run ids
    plt.close(fig)


def test_cka_heatmaps_without_grids_print_which_runs_lack_them_and_how_to_make_them(capsys):
    records = [image_record("trained_guide", grid=False), image_record("untrained_guide")]
    assert F.cka_heatmaps(records, ("trained_guide", "untrained_guide"), 0, "Deep FCN", "chapter") is None
    said = capsys.readouterr().out
    assert said.startswith("No CKA grid to draw: trained_guide seed 0 (profile quick)")
    assert "`python -m chapter --profile quick --stage runs --runs deep_fcn/trained_guide --seeds 0`" in said


def test_sequence_alignment_has_a_panel_per_task_and_guide_with_ci_and_seed_counts():
    conditions = ("no_guide", "trained_guide", "untrained_guide")
    records = [sequence_record(s, c, seed) for s in ("copy", "parity") for c in conditions for seed in (0, 1, 2)]
    records += [sequence_record("parity", "no_guide", 3)]
    frame = F.sequence_alignment_frame(records)
    loss = frame[(frame["source"] == "loss") & (frame["name"] == "trained_guide")]
    assert set(loss["reference"]) == {"trained"} and sorted(loss["epoch"].unique()) == [1, 2, 3]
    assert frame[(frame["source"] == "probe") & (frame["epoch"] == 0) & (frame["reference"] == "trained")]["cka"] \
        .eq(0.2).all()  # the mean over defined pairs only
    fig = F.sequence_alignment(records, {"copy": "copy-paste"}, "alignment")
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title().startswith("copy-paste\nwith the trained guide")
    assert fig.axes[0].get_ylim() == (0.0, 1.0)
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == ["no_guide (n = 4)", "trained_guide (n = 3)", "untrained_guide (n = 3)"]
    assert "95 % CI over seeds" in fig.get_suptitle()
    plt.close(fig)


def test_t_band_is_students_interval_and_collapses_for_one_seed():
    mean, lo, hi = F.t_band(pd.Series([1.0, 2.0, 3.0]))
    assert mean == 2.0 and hi - mean == pytest.approx(4.302653 * 1.0 / np.sqrt(3), rel=1e-5)
    assert F.t_band(pd.Series([0.5])) == (0.5, 0.5, 0.5)


def test_sequence_curves_show_accuracy_in_percent_with_one_unit_per_axis():
    records = [sequence_record("copy", c, seed) for c in ("no_guide", "trained_guide") for seed in (0, 1)]
    records.append(sequence_record("copy", "no_guide", 2))
    fig = F.sequence_curves(records, {"no_guide": "no guide"}, "copy")
    acc, loss = fig.axes[:2]
    assert acc.get_ylabel() == "validation accuracy (%)" and acc.get_ylim() == (0.0, 100.0)
    assert loss.get_ylabel() == "validation loss (nats per token)"
    np.testing.assert_allclose(acc.get_lines()[0].get_ydata(), [10.0, 20.0, 30.0])
    assert [t.get_text() for t in acc.get_legend().get_texts()] == ["no guide (n = 3)", "trained_guide (n = 2)"]
    assert "2 to 3 seeds per condition" in fig.get_suptitle()
    plt.close(fig)
