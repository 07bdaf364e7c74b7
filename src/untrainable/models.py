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


# ----------------------------------------------------------------------------- guidance (chapters 03-05)
#
# The guidance paper's image models (Subramaniam et al., 2024), for 32x32 inputs by default and for
# ImageNet-size inputs with ``image_size=224``. Sizes are arguments so that the book's CPU profiles
# can scale them down and the ``paper`` profile can build them at the paper's size.


def deep_fcn(
    in_features: int = 3 * 32 * 32,
    width: int = 1024,
    depth: int = 48,
    first_width: int | None = 2048,
    num_classes: int = 10,
    dropout: float = 0.1,
) -> FCN:
    """The paper's Deep FCN: ``depth`` blocks of Linear + BatchNorm + ReLU + Dropout, then logits.

    The paper: a first block of width 2048, then 47 blocks of width 1024, dropout 0.1 (49 Linear
    layers with the classifier). ``first_width=None`` makes every block ``width`` wide.
    """
    widths = [first_width or width] + [width] * (depth - 1)
    return FCN(in_features, widths, num_classes=num_classes, batch_norm=True, dropout=dropout)


def wide_fcn(
    in_features: int = 3 * 32 * 32, width: int = 8192, depth: int = 3, num_classes: int = 10, dropout: float = 0.0
) -> FCN:
    """The paper's Wide FCN: 3 blocks of Linear 8192 + BatchNorm + ReLU, then logits."""
    return FCN(in_features, [width] * depth, num_classes=num_classes, batch_norm=True, dropout=dropout)


class BasicBlock(nn.Module):
    """ResNet's two 3x3 convolutions; ``residual=False`` drops the skip and its downsample branch."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, residual: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.residual = residual
        self.downsample: nn.Module | None = None
        if residual and (stride != 1 or in_planes != planes):
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(nn.Module):
    """ResNet-50's 1x1-3x3-1x1 block (expansion 4); ``residual=False`` drops the skip and downsample."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, residual: bool = True) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.residual = residual
        self.downsample: nn.Module | None = None
        if residual and (stride != 1 or in_planes != out_planes):
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet (He et al., 2016) with a width multiplier, for 32x32 or ImageNet-size inputs.

    ``width`` is the first stage's channel count (64 in the original; stages double it).
    ``stem="cifar"`` is one 3x3 convolution at stride 1 and no max-pool (the usual CIFAR stem);
    ``stem="imagenet"`` is the original 7x7 stride-2 convolution and 3x3 max-pool; ``"auto"`` picks
    the CIFAR stem below 64 pixels. ``residual=False`` removes every skip connection and downsample
    branch: the plain deep ConvNet of the guidance paper, the same stack of layers without shortcuts.
    """

    def __init__(
        self,
        layers: Sequence[int] = (2, 2, 2, 2),
        block: str = "basic",
        width: int = 64,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        stem: str = "auto",
        residual: bool = True,
    ) -> None:
        super().__init__()
        if block not in ("basic", "bottleneck"):
            raise ValueError(f"unknown block {block!r}: choose basic or bottleneck")
        if not 1 <= len(layers) <= 4:
            raise ValueError(f"a ResNet has 1 to 4 stages, got layers={tuple(layers)}")
        block_cls = BasicBlock if block == "basic" else Bottleneck
        if stem == "auto":
            stem = "cifar" if image_size < 64 else "imagenet"
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        elif stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        else:
            raise ValueError(f"unknown stem {stem!r}: choose auto, cifar or imagenet")
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.residual = residual
        planes, in_planes = width, width
        stages = []
        for i, n in enumerate(layers):
            blocks = []
            for j in range(n):
                blocks.append(block_cls(in_planes, planes, 2 if (i > 0 and j == 0) else 1, residual))
                in_planes = planes * block_cls.expansion
            stages.append(nn.Sequential(*blocks))
            planes *= 2
        self.layer1, self.layer2, self.layer3, self.layer4 = (stages + [nn.Identity()] * 4)[:4]
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(width: int = 64, num_classes: int = 10, image_size: int = 32) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2]."""
    return ResNet((2, 2, 2, 2), "basic", width, num_classes, image_size=image_size)


def resnet50(width: int = 64, num_classes: int = 10, image_size: int = 32) -> ResNet:
    """ResNet-50: bottleneck blocks [3, 4, 6, 3]."""
    return ResNet((3, 4, 6, 3), "bottleneck", width, num_classes, image_size=image_size)


def plain_convnet(
    layers: Sequence[int] = (3, 4, 6, 3), block: str = "bottleneck", width: int = 64, num_classes: int = 10,
    image_size: int = 32,
) -> ResNet:
    """The paper's Deep ConvNet: a ResNet stack (ResNet-50's by default) with no skip connections."""
    return ResNet(layers, block, width, num_classes, image_size=image_size, residual=False)
