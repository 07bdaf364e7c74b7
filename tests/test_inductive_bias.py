"""Chapter 01's experiment: comparable models, profile presets, and a smoke run of each profile."""

from __future__ import annotations

import pytest

from untrainable.experiments import inductive_bias as ib
from untrainable.profiles import UnknownProfileError, default_seeds
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
