"""Chapter 01's experiment: comparable models, profile presets (and chapter 02's, built the same way), and a
smoke run of each profile."""

from __future__ import annotations

import re

import pytest

from untrainable.experiments import inductive_bias as ib, representations as rep
from untrainable.profiles import PresetError, UnknownProfileError, default_seeds, replace_preset
from untrainable.results import REQUIRED_KEYS


def test_the_three_models_have_comparable_size():
    sizes = {m["model"]: m["parameters"] for m in ib.describe_models()}
    assert set(sizes) == set(ib.MODELS)
    assert max(sizes.values()) / min(sizes.values()) < 1.05


def test_profiles_scale_up():
    quick, full, paper = (ib.configs(p)[0] for p in ("quick", "full", "paper"))
    assert quick.n_train < 50_000 and full.n_train is None and paper.epochs > full.epochs > quick.epochs
    assert len(default_seeds("full")) >= 3
    with pytest.raises(UnknownProfileError):
        ib.configs("medium")


@pytest.mark.parametrize("chapter", [ib, rep])
def test_presets_are_typed_and_an_unknown_override_names_itself_and_the_chapter(chapter):
    assert set(chapter.PRESETS) == {"quick", "full", "paper"}
    assert all(isinstance(p, chapter.Preset) for p in chapter.PRESETS.values())
    with pytest.raises(PresetError, match=re.escape(f"{chapter.CHAPTER}: unknown preset key(s) 'epoch'")):
        replace_preset(chapter.CHAPTER, chapter.PRESETS["full"], epoch=3)
    smoke = replace_preset(chapter.CHAPTER, chapter.PRESETS["full"], **chapter.SMOKE)
    assert chapter.preset("full", smoke=True) == smoke


def test_a_profile_that_sets_no_precision_keeps_the_configs_default():
    assert ib.PRESETS["full"].precision is None and rep.PRESETS["full"].precision is None
    default = ib.Config(model="cnn", n_train=1, n_test=1, epochs=1).precision
    assert {c.precision for c in ib.configs("full")} == {default}
    net = rep.configs("full")[0].cnn
    assert net.precision == rep.ComparedNetConfig(model="cnn", n_train=1, n_test=1, epochs=1).precision
    assert {c.precision for c in ib.configs("quick")} == {"auto"} and rep.configs("quick")[0].fcn.precision == "auto"


@pytest.mark.parametrize("profile", ["quick", "full", "paper"])
def test_smoke_run_of_every_profile_writes_valid_records(profile, monkeypatch):
    monkeypatch.setenv("UNTRAINABLE_TRAIN_MISSING", "1")  # a full record is trained only when asked
    records = ib.run(profile, seeds=(0,), smoke=True)
    assert [r["name"] for r in records] == list(ib.MODELS)
    for r in records:
        assert all(k in r for k in REQUIRED_KEYS) and r["profile"] == profile
        assert len(r["history"]) == r["config"]["epochs"] == 1
        assert 0.0 <= r["metrics"]["test_acc"] <= 1.0
    # an identical second call loads the records instead of training
    assert ib.run(profile, seeds=(0,), smoke=True) == records


def test_planned_runs_are_every_model_for_every_seed():
    planned = ib.planned_runs("full")
    assert {(r.name, r.seed) for r in planned} == {(m, s) for m in ib.MODELS for s in default_seeds("full")}
    assert all(r.experiment == ib.EXPERIMENT for r in planned)
    assert [r.seed for r in ib.planned_runs("quick", seeds=(5,))] == [5, 5, 5]
