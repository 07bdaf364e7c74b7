"""Precision: which hardware gets bf16, that autocast really casts, and that similarity math escapes it."""

from __future__ import annotations

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
    with pytest.raises(ValueError, match="no native bf16"):
        P.resolve_precision("bf16", cpu)
    assert P.resolve_precision("fp32", cpu) == "fp32"


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
