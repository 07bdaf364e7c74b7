"""Chapters 04-05's experiment: presets, a smoke run of each chapter, cached guides, error consistency."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from untrainable.experiments import image_guidance as ig
from untrainable.results import REQUIRED_KEYS


def test_profiles_scale_up_and_conditions_are_complete():
    quick, full, paper = (ig.configs(p, "fcn") for p in ("quick", "full", "paper"))
    assert [(c.target, c.condition) for c in full] == ig.PARTS["fcn"]
    assert quick[0].n_train < full[0].n_train and paper[0].n_train is None
    assert paper[0].fcn_depth == 48 and paper[0].fcn_first_width == 2048 and paper[0].wide_width == 8192
    init = next(c for c in full if c.condition == "trained_guide_init")
    assert 150 <= init.guide_steps <= 300 and all(c.guide_steps is None for c in full if c is not init)
    assert ig.configs("paper", "plain")[1].guide.family == "resnet50"
    assert len(ig.DEFAULT_SEEDS["full"]) >= 3
    with pytest.raises(ValueError, match="unknown part"):
        ig.configs("quick", "rnn")


def test_error_consistency_is_cohens_kappa():
    assert ig.error_consistency("1100", "1100") == pytest.approx(1.0)
    # same accuracy (50%), errors on different images: agreement 0 < expected 0.5
    assert ig.error_consistency("1100", "0011") == pytest.approx(-1.0)
    assert ig.error_consistency("10" * 50, "1100" * 25) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="different sets"):
        ig.error_consistency("10", "101")


@pytest.mark.parametrize("part", ["fcn", "plain"])
def test_smoke_run_writes_valid_records_and_caches_guides(part):
    records = ig.run("quick", part, seeds=(0,), smoke=True)
    assert [r["name"] for r in records] == [f"{t}-{c}" for t, c in ig.PARTS[part]]
    for r in records:
        assert all(k in r for k in REQUIRED_KEYS)
        h = r["history"][-1]
        assert len(h["cka_trained"]) == len(r["probe_pairs"]["trained"]) and 0 <= min(h["cka_trained"]) <= 1
        assert len(r["metrics"]["test_correct"]) == r["config"]["n_test"]
        assert ("pairs" in r) == (r["config"]["condition"] != "no_guide")
    guided = next(r for r in records if r["config"]["condition"] == "trained_guide")
    assert len(guided["history"][-1]["pair_distance"]) == len(guided["pairs"])
    guide_record = ig.guide_records("quick", part, smoke=True)["resnet18"]
    assert len(guide_record["metrics"]["test_correct"]) == r["config"]["n_test"]
    again = ig.run("quick", part, seeds=(0,), smoke=True)  # loaded, not retrained
    assert [(r["key"], r["created"], r["metrics"]) for r in again] == [(r["key"], r["created"], r["metrics"])
                                                                      for r in records]


def test_an_interrupted_guided_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    c = ig.configs("quick", "fcn", smoke=True, epochs=3, n_train=256, batch_size=64)[1]  # trained guide
    straight = ig.train_one(c, 0, torch.device("cpu"), tmp_path / "a.pt", "quick")

    real_fit, calls = ig.fit, []

    def interrupted_fit(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stopped during epoch 2
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(ig, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        ig.train_one(c, 0, torch.device("cpu"), tmp_path / "b.pt", "quick")
    monkeypatch.setattr(ig, "fit", real_fit)
    resumed = ig.train_one(c, 0, torch.device("cpu"), tmp_path / "b.pt", "quick")
    strip = lambda h: [{k: v for k, v in e.items() if k != "epoch_time_s"} for e in h]  # noqa: E731
    assert strip(resumed["history"]) == strip(straight["history"])
    assert resumed["initial_cka"] == straight["initial_cka"]


def _image_folder(root, classes=("cat", "dog"), per_split={"train": 12, "val": 6}, size=40):
    """A tiny ImageFolder dataset (``root/train/<class>/*.png``, ``root/val/...``) of random images."""
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    for split, n in per_split.items():
        for k, cls in enumerate(classes):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = torch.randint(0, 256, (size, size, 3), generator=gen, dtype=torch.uint8) // (k + 1)
                Image.fromarray(pixels.numpy()).save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize("part", ["fcn", "plain"])
def test_paper_profile_smoke_run_on_an_image_folder(tmp_path, part):
    """The paper profile end to end (for the plain net: its ResNet-50 guide and bottleneck blocks), shrunk to
    small models on a tiny ImageFolder dataset, as a reader with ImageNet or Imagenette would run it."""
    root = _image_folder(tmp_path / "folder")
    overrides = dict(dataset=f"imagefolder:{root}", num_classes=2, n_train=16, n_test=8, guide_n_train=16,
                     batch_size=8, probe_n=8)
    cs = ig.configs("paper", part, smoke=True, **overrides)
    if part == "plain":
        assert cs[1].guide.family == "resnet50" and cs[1].plain_block == "bottleneck"
    records = ig.run("paper", part, seeds=(0,), smoke=True, **overrides)
    assert [r["profile"] for r in records] == ["paper"] * len(ig.PARTS[part])
    for r in records:
        assert all(k in r for k in REQUIRED_KEYS) and len(r["metrics"]["test_correct"]) == 8  # the balanced subset
        assert 0.0 <= r["metrics"]["test_acc"] <= 1.0 and np.isfinite(r["metrics"]["test_loss"])


def test_a_missing_image_folder_names_the_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected .*/train and .*/val"):
        ig.load_image_folder(f"imagefolder:{tmp_path}", True, 32, None, 0)
