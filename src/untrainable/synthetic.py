"""Synthetic activations for testing how similarity measures compute, not what networks learn.

Chapter 02's float32 comparison (:mod:`untrainable.analysis.layer_comparison`) and the CKA benchmark
(:mod:`untrainable.benchmarks.cka`) draw the same data, so this sits below both of them.
"""

from __future__ import annotations

import torch

__all__ = ["post_relu_pair"]


def post_relu_pair(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Post-ReLU-like float32 activations ``(n, d)`` of two related layers: ``relu(z + 1)``.

    The common offset is what makes centring a Gram matrix in float32 cancel badly.
    """
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g)
    x = torch.relu(z + 1)
    y = torch.relu(0.8 * z + 0.6 * torch.randn(n, d, generator=g) + 1)
    return x, y
