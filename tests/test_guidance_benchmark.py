"""The guided-step benchmark: FLOP counts with known values, and every variant measured."""

from __future__ import annotations

import torch
from torch import nn

from untrainable import benchmarks_guidance as B
from untrainable.models import FCN, resnet18


def test_count_flops_of_a_linear_layer_forward_and_backward():
    layer = nn.Linear(4, 3, bias=False)
    x = torch.randn(2, 4)
    assert B.count_flops(lambda: layer(x)) == 2 * 2 * 4 * 3  # one multiply and one add per weight and example
    # forward, then the weight's gradient (the same product again); x needs no gradient
    assert B.count_flops(lambda: layer(x).sum().backward()) == 2 * (2 * 2 * 4 * 3)


def test_measure_times_and_counts_every_variant():
    torch.manual_seed(0)
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    target, guide = FCN(3 * 32 * 32, [32] * 4, num_classes=10), resnet18(width=4)
    out = B.measure(target, guide, x, y, batch_size=16, rounds=1)
    assert set(out["ratio"]) == set(out["ratio_flops"]) == {"naive", "online", "bank_features", "bank_gram"}
    flops = out["flops"]
    assert all(f > 0 for f in flops.values())
    # a Gram bank skips the guide's forward pass: less arithmetic than running the guide every step
    assert flops["bank_gram"] < flops["online"] and out["ratio_flops"]["bank_gram"] < 1.0
    assert flops["online"] > flops["target"] + flops["guide_forward"]  # plus the CKA products
