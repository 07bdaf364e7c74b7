"""Models for 32x32 images, sized so that their parameter counts can be compared.

The motivating experiment (chapter 01) sets three architectures of about the same size side by
side: a fully connected net, a small CNN and a deep, narrow fully connected net. What differs is
only the inductive bias each architecture builds in.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class FCN(nn.Module):
    """Flatten, then ``depth`` blocks of Linear (+ optional BatchNorm) + ReLU (+ Dropout), then logits.

    With ``batch_norm=False`` and many layers this is the "untrainable" deep plain MLP: nothing
    keeps the signal's scale constant through depth, so gradients shrink or explode.
    """

    def __init__(
        self,
        in_features: int = 3 * 32 * 32,
        width: int | Sequence[int] = 192,
        depth: int = 2,
        num_classes: int = 10,
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        widths = [width] * depth if isinstance(width, int) else list(width)
        layers: list[nn.Module] = [nn.Flatten()]
        prev = in_features
        for w in widths:
            layers.append(nn.Linear(prev, w))
            if batch_norm:
                layers.append(nn.BatchNorm1d(w))
            layers.append(nn.ReLU(inplace=True))
            if dropout:
                layers.append(nn.Dropout(dropout))
            prev = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class SmallCNN(nn.Module):
    """Three conv-ReLU-maxpool stages (``channels``) then a hidden fully connected layer.

    Convolution shares weights across positions and pooling builds in small-shift invariance:
    the locality and translation bias a fully connected net has to learn from data.
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: Sequence[int] = (32, 64, 128),
        hidden: int = 256,
        num_classes: int = 10,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for c in channels:
            layers += [nn.Conv2d(prev, c, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            prev = c
        self.features = nn.Sequential(*layers, nn.Flatten())
        side = image_size // 2 ** len(channels)
        self.classifier = nn.Sequential(
            nn.Linear(prev * side * side, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
