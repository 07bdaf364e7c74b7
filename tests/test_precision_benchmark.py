"""The precision benchmark covers every full model, measures both precisions side by side and
reloads its record; the parity table's arithmetic is the hand computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from untrainable.benchmarks import precision as bench
from untrainable.benchmarks import precision_models as models
from untrainable.benchmarks import precision_parity as parity
from untrainable.experiments import fcn_guidance, mimic_students, plain_cnn_guidance, sequence_guidance
from untrainable.train import FitSettings


def test_the_model_list_covers_every_chapter_and_every_full_model():
    cases = models.model_cases("full")
    names = {(c.chapter, c.name) for c in cases}
    assert {c.chapter for c in cases} == {"01", "02", "04", "05", "06", "07"}
    assert {("01", m) for m in ("fcn", "cnn", "deep_fcn")} | {("02", "cnn"), ("02", "fcn")} <= names
    # chapter 05's plain ConvNet as appendix 91 measured it: its first regime (its 34-layer regime came later)
    image_runs = fcn_guidance.configs("full") + plain_cnn_guidance.first_regime_configs("full")
    assert {(f"0{5 if c.target == 'plain_cnn' else 4}", c.target) for c in image_runs} <= names
    guides = {c.guide.family for c in image_runs if c.guide}
    assert {(ch, f"guide {g}") for g in guides for ch in ("04",)} <= names
    seq = {(c.setting, c.net.family) for c in sequence_guidance.configs("full")}
    assert all(any(n.startswith(f"{s} ") and f"({f})" in n for _, n in names) for s, f in seq)
    assert any("(lstm)" in n for _, n in names)
    assert ("07", "teacher") in names and any(n.startswith("student mimic-") for _, n in names)
    assert mimic_students.PRESETS["full"].teacher.channels == 32
    kinds = {c.name: c.kind for c in cases if c.chapter in ("01", "04", "05")}
    assert kinds["cnn"] == kinds["plain_cnn"] == kinds["guide resnet18"] == "conv"
    assert kinds["deep_fcn"] == kinds["wide_fcn"] == "fcn"
    assert [c.name for c in models.guided_cases("full")] == ["deep_fcn guided (Gram bank)", "plain_cnn guided (Gram bank)"]


def _tiny_cases(profile: str) -> list[models.Case]:
    def conv() -> models.Workload:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
        return models.Workload(model, torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,)), FitSettings(epochs=1, batch_size=8))

    def fcn() -> models.Workload:
        model = nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Linear(32, 10))
        return models.Workload(model, torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,)), FitSettings(epochs=1, batch_size=8))

    return [models.Case("01", "tiny conv", "conv", conv), models.Case("01", "tiny fcn", "fcn", fcn)]


def test_a_tiny_run_measures_both_precisions_and_reloads_its_record(monkeypatch):
    monkeypatch.setattr(bench, "model_cases", _tiny_cases)
    monkeypatch.setattr(bench, "guided_cases", lambda profile: [])
    record = bench.run("quick", rounds=2)
    assert [r["model"] for r in record["cases"]] == ["tiny conv", "tiny fcn"]
    for r in record["cases"]:
        assert set(r["min_s"]) == {"fp32", "bf16"} and all(len(v) == 2 for v in r["all_s"].values())
        assert r["ratio"] == pytest.approx(r["min_s"]["fp32"] / r["min_s"]["bf16"])
        assert r["goal_met"] == (r["ratio"] >= bench.GOALS[r["kind"]])
        assert bool(r.get("profile")) == (not r["goal_met"])
    assert record["machine"]["threads"] == 1 and "cpu_flags" in record["machine"]
    assert len(bench.table(record)) == 2 and "Machine" in bench.summary(record)
    monkeypatch.setattr(bench, "measure_case", lambda *a: pytest.fail("an identical config must reload"))
    assert bench.run("quick", rounds=2)["created"] == record["created"]
    with pytest.raises(pytest.fail.Exception):
        bench.run("quick", rounds=3)  # another config measures again


def test_the_profiler_names_the_ops_and_their_bf16_inputs():
    model = nn.Linear(64, 64)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(torch.randn(16, 64)).float().pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    ops = bench.profile_step(step, top=50)
    assert sum(o["share"] for o in ops) <= 1.0 + 1e-9
    assert any("BFloat16" in d for o in ops for d in o["dtypes"]) and any("float" == d for o in ops for d in o["dtypes"])


def _record(model: str, arm: str, seed: int, acc: float) -> dict:
    return {"parity_model": model, "parity_arm": arm, "seed": seed, "precision": arm, "config": {},
            "metrics": {"test_acc": acc}}


def test_the_parity_table_is_the_hand_computation():
    fp32, bf16 = [0.50, 0.52, 0.54], [0.51, 0.55, 0.56]
    far = [0.70, 0.71, 0.72]
    records = ([_record("a", "fp32", s, v) for s, v in enumerate(fp32)] + [_record("a", "bf16", s, v) for s, v in enumerate(bf16)]
               + [_record("b", "fp32", s, v) for s, v in enumerate(fp32)] + [_record("b", "bf16", s, v) for s, v in enumerate(far)])
    t = parity.parity_table(records).set_index("model")
    sd_a, sd_b = np.std(fp32, ddof=1), np.std(bf16, ddof=1)  # 0.02 and 0.0264575
    assert t.loc["a", "fp32 mean"] == pytest.approx(0.52) and t.loc["a", "bf16 mean"] == pytest.approx(1.62 / 3)
    assert t.loc["a", "fp32 sd"] == pytest.approx(0.02) and t.loc["a", "bf16 sd"] == pytest.approx(sd_b)
    assert t.loc["a", "bf16 - fp32"] == pytest.approx(1.62 / 3 - 0.52)
    assert t.loc["a", "2 x larger sd"] == pytest.approx(2 * max(sd_a, sd_b))
    assert t.loc["a", "Welch p"] == pytest.approx(stats.ttest_ind(bf16, fp32, equal_var=False).pvalue)
    assert t.loc["a", "within seed spread"] and t.loc["a", "use"] == "bf16"
    assert not t.loc["b", "within seed spread"] and t.loc["b", "use"] == "fp32"
    text = parity.parity_summary(records)
    assert "52.00 ± 2.00 %" in text and "stays fp32" in text


def test_parity_configs_take_each_chapters_config_with_the_parity_sizes():
    configs = parity.parity_configs("full")
    assert {p for _, p in configs} == {"fp32", "bf16"} and len(configs) == 2 * len(parity.MODELS)
    cnn = configs[("01 small CNN", "bf16")]
    assert cnn.model == "cnn" and cnn.n_train == parity.SIZES["full"]["01"]["n_train"] and cnn.precision == "bf16"
    assert parity.arms("quick") == ("fp32", "auto")  # quick runs on any CPU
