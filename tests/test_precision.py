"""Precision: which hardware gets bf16, that autocast really casts, and that similarity math escapes it."""

from __future__ import annotations

import warnings

import pytest
import torch

from untrainable import precision as P


def test_resolve_precision_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        P.resolve_precision("fp16", torch.device("cpu"))


def test_auto_follows_the_cpu_flags(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert P.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"avx2"}))
    assert P.resolve_precision("auto", cpu) == "fp32"
    assert P.resolve_precision("bf16", cpu) == "bf16"  # emulated: training_precision warns
    assert P.resolve_precision("fp32", cpu) == "fp32"


def test_bf16_training_on_a_cpu_without_native_bf16_warns_that_it_is_emulated(monkeypatch):
    """A reader without avx512_bf16/amx_bf16 can retrain a committed bf16 run, told plainly that it is slow."""
    cpu = torch.device("cpu")
    monkeypatch.setattr(P, "cpu_flags", lambda: ("avx2", "fma"))
    with pytest.warns(P.EmulatedBf16Warning, match=r"lacks native bf16.*avx512_bf16 or amx_bf16.*slower"):
        assert P.training_precision("bf16", cpu) == "bf16"


@pytest.mark.parametrize("flags, setting", [(("avx512_bf16",), "bf16"), (("amx_bf16",), "auto"), ((), "fp32"),
                                            ((), "auto")])
def test_fp32_or_native_bf16_training_does_not_warn(monkeypatch, flags, setting):
    monkeypatch.setattr(P, "cpu_flags", lambda: flags)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert P.training_precision(setting, torch.device("cpu")) == ("bf16" if flags else "fp32")


def test_recorded_precision_collects_what_training_resolves_block_by_block(monkeypatch):
    monkeypatch.setattr(P, "cpu_flags", lambda: ("avx512_bf16",))
    cpu = torch.device("cpu")
    P.training_precision("fp32", cpu)  # outside any block: noted nowhere
    with P.recorded_precision() as outer:
        P.training_precision("auto", cpu)
        with P.recorded_precision() as inner:  # a guide trained while its target's run is open
            P.training_precision("fp32", cpu)
    assert outer == ["bf16"] and inner == ["fp32"]


def test_autocast_casts_products_and_full_precision_undoes_it(monkeypatch):
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    cpu = torch.device("cpu")
    a = torch.randn(8, 8)
    with P.autocast(cpu, "bf16"):
        assert (a @ a).dtype == torch.bfloat16
        with P.full_precision(cpu):
            assert (a @ a).dtype == torch.float32
    with P.autocast(cpu, "fp32"):
        assert (a @ a).dtype == torch.float32


def test_channels_last_only_for_conv_nets_in_bf16(monkeypatch):
    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    cpu = torch.device("cpu")
    conv = P.channels_last(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), "bf16", cpu)
    assert conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    kept = P.channels_last(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), "fp32", cpu)
    assert kept[0].weight.is_contiguous()
    linear = torch.nn.Linear(4, 4)
    assert P.channels_last(linear, "bf16", cpu) is linear


# ----------------------------------------------------------------------------- in training


from torch import nn  # noqa: E402

from untrainable import guidance as G  # noqa: E402
from untrainable.recording import record_layers  # noqa: E402
from untrainable.runtime import seed_everything  # noqa: E402
from untrainable.similarity import linear_cka  # noqa: E402
from untrainable.train import FitSettings, fit  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture
def bf16_cpu(monkeypatch):
    """Claim native bf16 products, so the bf16 path runs on any CPU (emulated where it is not native)."""
    monkeypatch.setattr(P, "cpu_flags", lambda: ("avx512_bf16",))


def _nets():
    torch.manual_seed(0)
    guide = nn.Sequential(nn.Flatten(), nn.Linear(48, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    target = nn.Sequential(nn.Flatten(), nn.Linear(48, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 4))
    return guide, target


def test_the_guidance_term_under_bf16_autocast_is_the_fp32_term(bf16_cpu):
    """Same activations in, same CKA out (to 1e-5): the similarity math escapes autocast. Computed
    naively under autocast the same CKA moves by more, which is what the escape is for."""
    guide, target = _nets()
    x = torch.randn(64, 3, 4, 4)
    loss = G.GuidanceLoss(target, guide, x[:2])
    acts = [a.detach() for a in record_layers(target, x, [t for _, t in loss.pairs]).values()]
    reps = loss.guide_representations(x)
    fp32 = loss.pair_terms(acts, reps)
    with P.autocast(CPU, "bf16"):
        bf16 = loss.pair_terms(acts, reps)
        naive = torch.stack([1 - linear_cka(a @ torch.eye(a.shape[1]), b) for a, b in zip(acts, reps)])
    assert torch.allclose(bf16, fp32, atol=1e-5, rtol=0)
    assert (naive.float() - fp32).abs().max() > 1e-5


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(123)).repeat(1, 3, 1, 1) * 3
    y = torch.randint(0, 3, (n,), generator=gen)
    return centers[y] + torch.randn(n, 3, 4, 4, generator=gen), y


def _train_conv(seed: int, precision: str) -> list[dict]:
    gen = seed_everything(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(128, 3))
    return fit(model, _blobs(600, 0), _blobs(300, 1), FitSettings(epochs=3, batch_size=50, lr=1e-2,
                                                                    precision=precision),
               generator=gen, device=CPU, progress=False)


def _strip_time(history):
    return [{k: v for k, v in h.items() if k not in ("epoch_time_s", "train_time_s")} for h in history]


def test_a_conv_net_learns_in_bf16_channels_last_and_repeats_bitwise(bf16_cpu):
    """bf16 + channels_last trains (well above chance) and, same seed, machine and threads, repeats exactly."""
    first, again = _train_conv(0, "bf16"), _train_conv(0, "bf16")
    assert first[-1]["test_acc"] > 0.8
    assert _strip_time(first) == _strip_time(again)
    assert _strip_time(first) != _strip_time(_train_conv(0, "fp32"))  # bf16 really ran


def test_an_unknown_precision_in_fit_settings_is_refused():
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        FitSettings(epochs=1, precision="half")


# ----------------------------------------------------------------------------- in the record

from dataclasses import dataclass  # noqa: E402

from untrainable import results  # noqa: E402


@dataclass(frozen=True)
class _Toy:
    precision: str = "auto"


def _fit_toy(config, seed, device, checkpoint):
    """A run whose training goes through fit, as every chapter's does."""
    gen = seed_everything(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    history = fit(model, _blobs(60, 0), _blobs(30, 1), FitSettings(epochs=1, batch_size=30, precision=config.precision),
                  generator=gen, device=device, progress=False)
    return {"metrics": {"test_acc": history[-1]["test_acc"]}, "history": history}


@pytest.mark.parametrize("flags, ran", [(("amx_bf16",), "bf16"), (("avx2",), "fp32")])
def test_a_record_states_the_precision_its_training_loop_resolved(monkeypatch, flags, ran):
    monkeypatch.setattr(P, "cpu_flags", lambda: flags)
    record = results.run_or_load("toy", "quick", "t", _Toy("auto"), 0, _fit_toy, device="cpu")
    assert record["precision"] == ran


def test_a_run_whose_config_sets_a_precision_but_resolved_none_is_refused():
    def untrained(config, seed, device, checkpoint):  # trains outside fit, without training_precision
        return {"metrics": {"test_acc": 0.5}, "history": []}

    with pytest.raises(RuntimeError, match=r"toy/t seed 0: its config sets precision 'fp32' but its training resolved"):
        results.run_or_load("toy", "quick", "t", _Toy("fp32"), 0, untrained, device="cpu")


def test_a_run_that_trains_in_two_precisions_is_refused(monkeypatch):
    monkeypatch.setattr(P, "cpu_flags", lambda: ("avx512_bf16",))

    def mixed(config, seed, device, checkpoint):
        P.training_precision("bf16", device)
        P.training_precision("fp32", device)
        return {"metrics": {"test_acc": 0.5}, "history": []}

    with pytest.raises(RuntimeError, match=r"several precisions \(bf16, fp32\)"):
        results.run_or_load("toy", "quick", "t", _Toy(), 0, mixed, device="cpu")


def _onednn_isa(env: dict[str, str]) -> str:
    """The instruction set oneDNN reports for a bf16 convolution run after ``import untrainable``."""
    import os
    import subprocess
    import sys

    code = ("import untrainable, torch\n"
            "x = torch.randn(2, 3, 8, 8, dtype=torch.bfloat16)\n"
            "torch.nn.functional.conv2d(x, torch.randn(4, 3, 3, 3, dtype=torch.bfloat16))\n")
    full = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"} | env | {"ONEDNN_VERBOSE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, check=True).stdout
    return next((line.split("isa:", 1)[1] for line in out.splitlines() if "isa:" in line), "")


def test_importing_the_package_caps_onednn_below_amx():
    """Every committed bf16 record was trained without AMX; the cap makes an AMX CPU round the same way."""
    import untrainable
    from untrainable.runtime import machine_description

    assert untrainable.ONEDNN_ISA_CAP == "AVX512_CORE_BF16"
    isa = _onednn_isa({})
    assert isa and "AMX" not in isa
    assert machine_description(torch.device("cpu"))["onednn_max_cpu_isa"] == "AVX512_CORE_BF16"


def test_a_readers_own_onednn_cap_wins():
    isa = _onednn_isa({"ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert "AVX-512" not in isa and "AMX" not in isa
