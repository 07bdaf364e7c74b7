"""The CKA benchmark appendix's tables and sentences, from a hand-made record."""

from __future__ import annotations

import pandas as pd

from untrainable.analysis import cka_benchmark as CB

CELLS = pd.DataFrame([
    {"n": 64, "d": 512, "space": "feature", "ours_s": 0.001, "feature_s": 0.001, "gram_s": 0.004, "authors_s": 0.002,
     "ours_vs_best_fixed": 1.0, "worst_fixed_vs_ours": 4.0, "authors_vs_ours": 2.0, "goal_3x_applies": False,
     "ours_err": 1e-7, "authors_err": 1e-4, "ours_err_offset100": 2e-7, "authors_err_offset100": 1e-2},
    {"n": 64, "d": 65536, "space": "gram", "ours_s": 0.5, "feature_s": None, "gram_s": 0.5, "authors_s": 1.0,
     "ours_vs_best_fixed": 1.0, "worst_fixed_vs_ours": None, "authors_vs_ours": 2.0, "goal_3x_applies": True,
     "ours_err": 1e-7, "authors_err": 1e-3, "ours_err_offset100": None, "authors_err_offset100": None},
])


def test_times_are_in_milliseconds_with_the_space_ours_chose():
    table = CB.times_table(CELLS, ("ours", "feature"))
    assert list(table.columns) == [*CB.time_columns(("ours", "feature")), "ours uses"]
    assert table.loc[(64, 512), "ours (ms)"] == 1.0 and pd.isna(table.loc[(64, 65536), "feature (ms)"])


def test_ratio_and_error_columns_are_renamed_for_display():
    assert list(CB.ratios_table(CELLS).columns) == [*CB.RATIOS.values(), "n, d 16x apart"]
    errors = CB.errors_table(CELLS)
    assert list(errors.columns) == ["ours", "authors", "ours, offset 100", "authors, offset 100"]


def test_goals_summary_says_where_a_goal_was_missed():
    goals = {key: {"cells": 4, "met": 4, "failed_at": []} for key in CB.GOALS}
    goals["not_more_than_10pct_slower_than_best_fixed"] = {"cells": 4, "met": 3, "failed_at": [(64, 512)]}
    lines = CB.goals_summary(goals).splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("met in 3 of 4 cells; missed at (n, d) = [(64, 512)].")
    assert lines[1].endswith("met in 4 of 4 cells.")


def test_minibatch_summary_compares_the_accumulator_with_the_forward_passes():
    mb = {"images": 10000, "batches": 40, "batch_size": 256, "features_per_image": 123456, "pairs": 121,
          "accumulator_s": 30.0, "accumulator_ms_per_batch": 750.0, "forward_two_nets_s_estimated_total": 60.0,
          "forward_two_nets_s_per_batch": 1.5}
    text = CB.minibatch_summary(mb)
    assert "10,000 images in 40 batches" in text and "about 0.5x the forward passes" in text
