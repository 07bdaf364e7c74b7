"""Chapter 03's analysis: one table of the image chapters' models, and what the even mapping leaves out."""

from __future__ import annotations

from torch import nn

from untrainable.analysis import layer_mapping as LM


def test_a_model_shared_by_two_chapters_is_one_row_naming_both():
    resnet = {"role": "guide", "model": "resnet18", "parameters": 100, "recorded layers": 21}
    table = LM.model_table({"04": [{"role": "target", "model": "deep_fcn", "parameters": 5, "recorded layers": 8},
                                   resnet],
                            "05": [{"role": "target", "model": "plain_cnn", "parameters": 7, "recorded layers": 10},
                                   dict(resnet)]})
    assert list(table.index) == ["deep_fcn", "resnet18", "plain_cnn"]
    assert table.loc["resnet18", "chapters"] == "04, 05" and table.loc["plain_cnn", "chapters"] == "05"


def test_the_same_name_at_another_size_stays_its_own_row():
    row = {"role": "guide", "model": "resnet18", "parameters": 100, "recorded layers": 21}
    table = LM.model_table({"04": [row], "05": [{**row, "parameters": 400}]})
    assert list(table["parameters"]) == [100, 400]


def test_kind_names():
    assert LM.kind_names([nn.Conv2d, nn.Linear]) == "Conv2d, Linear"


def test_a_deeper_guide_leaves_guide_layers_unused():
    guide, target = [f"g{i}" for i in range(5)], ["t0", "t1", "t2"]
    pairs = [(0, 0), (2, 1), (4, 2)]
    assert LM.unpaired_layers(guide, target, pairs) == (["g1", "g3"], [])
    assert LM.mapping_summary(guide, target, pairs) == (
        "3 pairs: each of the 3 target layers has one guide layer, and 2 of the 5 guide layers (g1, g3) are not used.")
    assert LM.mapping_summary(guide[:4], target, [(0, 0), (1, 1), (3, 2)]).endswith("(g2) is not used.")


def test_a_deeper_target_leaves_target_layers_free():
    guide, target = ["g0", "g1"], ["t0", "t1", "t2"]
    text = LM.mapping_summary(guide, target, [(0, 0), (1, 2)])
    assert text.startswith("2 pairs: each of the 2 guide layers has one target layer, and 1 of the 3 target layers")
    assert LM.mapping_summary(guide, ["t0", "t1"], [(0, 0), (1, 1)]).endswith("has one target layer.")


def test_mapping_counts_pair_min_of_the_two_depths():
    table = LM.mapping_counts({"a": (["g"] * 21, ["t"] * 48), "b": (["g"] * 21, ["t"] * 8)})
    assert table.loc["a"].tolist() == [21, 48, 21] and table.loc["b"].tolist() == [21, 8, 8]


def test_guide_layer_summary_counts_each_kind():
    guide = ["conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.downsample.0", "avgpool"]
    text = LM.guide_layer_summary(guide, ["fc1", "fc2"], guide_width=8, target_depth=2)
    assert "**5** recorded layers" in text and "2 block convolutions, 1 downsample" in text and "**2**" in text
