"""Chapter 02's analysis: what the measures ignore, float32 error, and the tables, panels and prose
read from the chapter's records (here small records built by hand)."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from untrainable import plotting  # noqa: E402
from untrainable.analysis import layer_comparison as LC  # noqa: E402

LABELS = {"linear_cka": "linear CKA", "rbf_cka": "RBF CKA", "cca": "CCA", "svcca": "SVCCA",
          "procrustes": "Procrustes", "rsa": "RSA"}


def _record(seed: int, hit: float, diag: float) -> dict:
    cnn, fcn = ["conv1", "pool1", "fc"], ["fc1", "logits"]
    eye = (np.eye(3) * diag + (1 - np.eye(3)) * 0.2).tolist()
    return {"seed": seed, "metrics": {
        "sanity_accuracy": {m: hit for m in LABELS}, "sanity": {m: eye for m in LABELS},
        "heatmaps": {"trained_vs_untrained": eye, "cnn_vs_cnn": eye, "cnn_vs_fcn": [[0.9, 0.1], [0.2, 0.3], [0.1, 0.8]]},
        "layers": {"cnn": cnn, "fcn": fcn}, "test_acc": {"cnn": 0.5, "fcn": 0.4}, "n_probe": 64, "n_heatmap": 128}}


RECORDS = [_record(0, 1.0, 0.9), _record(1, 0.5, 0.7)]


def test_the_toy_shows_which_transforms_each_measure_ignores():
    original, position, copies = LC.toy_clouds(n=200, seed=0)
    assert original.shape == (200, 2) and position.shape == (200,)
    table = LC.invariance_table(original, copies)
    assert list(table.columns) == ["rotated", "scaled x3", "stretched", "warped", "unrelated"]
    assert table.loc["linear CKA", "rotated"] == pytest.approx(1, abs=1e-6)
    assert table.loc["linear CKA", "scaled x3"] == pytest.approx(1, abs=1e-6)
    assert table.loc["CCA", "stretched"] == pytest.approx(1, abs=1e-6)
    assert table.loc["linear CKA", "stretched"] < 0.95
    assert table.loc["linear CKA", "unrelated"] < 0.1
    assert f"{table.loc['CCA', 'stretched']:.2f}, against {table.loc['linear CKA', 'stretched']:.2f}" \
        in LC.invariance_summary(table)


def test_procrustes_similarity_is_one_for_a_rotation():
    original, _, copies = LC.toy_clouds(n=100)
    assert LC.procrustes_similarity(original, copies["rotated"]) == pytest.approx(1, abs=1e-6)
    assert LC.procrustes_similarity(original, copies["unrelated"]) < 0.9


def test_centred_features_keep_float32_close_where_the_hkh_form_drifts():
    errors = LC.float32_errors(offsets=(0, 1000), n=64, d=512)
    assert list(errors.index) == [0, 1000]
    assert (errors["ours (float32)"] < 1e-5).all()
    assert errors.loc[1000, "authors' HKH (float32)"] > errors.loc[0, "authors' HKH (float32)"]


def test_sanity_table_averages_over_seed_pairs_in_the_labels_order():
    table = LC.sanity_table(RECORDS, LABELS)
    assert list(table.index) == list(LABELS.values())
    assert table.loc["CCA", "layers matched (mean)"] == pytest.approx(0.75)
    assert table.loc["CCA", "seed pairs"] == 2
    assert table.loc["CCA", "std over seed pairs"] == pytest.approx(np.std([1.0, 0.5], ddof=1))


def test_panels_carry_the_mean_matrix_and_the_layer_names():
    panels = LC.sanity_panels(RECORDS, LABELS, distances=("procrustes",))
    assert [p.title for p in panels] == ["linear CKA", "CCA", "Procrustes (distance)", "RSA"]
    assert [p.distance for p in panels] == [False, False, True, False]
    assert panels[0].values[0, 0] == pytest.approx(0.8) and panels[0].rows == ["conv1", "pool1", "fc"]
    heat = LC.heatmap_panels(RECORDS)
    assert [p.columns for p in heat][-1] == ["fc1", "logits"] and heat[-1].values.shape == (3, 2)
    fig = plotting.layer_matrices(heat, "title", annotated=True)
    assert [ax.get_title() for ax in fig.axes] == [p.title for p in heat]


def test_network_table_has_one_row_per_seed():
    table = LC.network_table(RECORDS)
    assert list(table["seed"]) == [0, 1] and list(table["test acc fcn (%)"]) == [40.0, 40.0]


def test_summaries_state_the_records_numbers():
    ranked = LC.sanity_result(RECORDS, LABELS, "profile quick, 2 seeds")
    table = LC.sanity_table(RECORDS, LABELS)["layers matched (mean)"]
    shares = [int(x) for x in re.findall(r"(\d+)%", ranked.split("best first:")[1])]
    assert "profile quick, 2 seeds" in ranked and shares == sorted(shares, reverse=True) and len(shares) == len(table)
    assert all(f"{measure} {share:.0%}" in ranked for measure, share in table.items())
    assert "linear CKA matches 75% of the layers" in LC.sanity_summary(RECORDS)
    text = LC.heatmap_summary(RECORDS)
    assert "first convolution 0.80" in text and "from 0.80 to 0.80" in text
    assert "top to bottom: fc1, logits, logits" in text
    assert f"{0.1:.3f}" in text  # a diagonal cell over the two seeds: std of 0.9 and 0.7 (ddof 0)
