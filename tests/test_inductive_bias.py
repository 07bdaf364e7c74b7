"""Chapter 01's experiment: comparable models, profile presets, and a smoke run of each profile."""

from __future__ import annotations

import pytest

from untrainable.experiments import inductive_bias as ib
from untrainable.profiles import UnknownProfileError
from untrainable.results import REQUIRED_KEYS


def test_the_three_models_have_comparable_size():
    sizes = {m["model"]: m["parameters"] for m in ib.describe_models()}
    assert set(sizes) == set(ib.MODELS)
    assert max(sizes.values()) / min(sizes.values()) < 1.05


def test_profiles_scale_up():
    quick, full, paper = (ib.configs(p)[0] for p in ("quick", "full", "paper"))
    assert quick.n_train < 50_000 and full.n_train is None and paper.epochs > full.epochs > quick.epochs
    assert len(ib.DEFAULT_SEEDS["full"]) >= 3
    with pytest.raises(UnknownProfileError):
        ib.configs("medium")


@pytest.mark.parametrize("profile", ["quick", "full", "paper"])
def test_smoke_run_of_every_profile_writes_valid_records(profile):
    records = ib.run(profile, seeds=(0,), smoke=True)
    assert [r["name"] for r in records] == list(ib.MODELS)
    for r in records:
        assert all(k in r for k in REQUIRED_KEYS) and r["profile"] == profile
        assert len(r["history"]) == r["config"]["epochs"] == 1
        assert 0.0 <= r["metrics"]["test_acc"] <= 1.0
    # an identical second call loads the records instead of training
    assert ib.run(profile, seeds=(0,), smoke=True) == records
