"""Models for 32x32 images, sized so that their parameter counts can be compared.

The motivating experiment (chapter 01) sets three architectures of about the same size side by
side: a fully connected net, a small CNN and a deep, narrow fully connected net. What differs is
only the inductive bias each architecture builds in.

Which function builds which chapter's networks. Each chapter's builder sits beside the config it
reads (those of ``untrainable.experiments``); this module imports no chapter.

=================================  ===============================================================
builder                            networks
=================================  ===============================================================
``inductive_bias.build_model``     chapter 01: the FCN, the small CNN and the deep FCN (:class:`FCN`,
                                   :class:`SmallCNN`)
:func:`build_target` (here)        chapters 03-05, 08: the image targets (:func:`deep_fcn`,
                                   :func:`wide_fcn`, :func:`plain_convnet`)
:func:`build_guide` (here)         chapters 03-05, 08: the image guides (:func:`resnet18`,
                                   :func:`resnet50`, :class:`SmallCNN`, a residual twin)
``image_pilots.build_model``       the image pilots' networks, from the same classes
``sequence_guidance.build_net``    chapter 06: :class:`StackedRNN`, :class:`CausalTransformer`,
                                   :class:`TransformerClassifier`
``mimic_students.build_teacher``   chapter 07: the deep teacher CNN (:mod:`untrainable.mimic`)
``mimic_students.build_student``   chapter 07: the shallow or deeper students (:mod:`untrainable.mimic`)
=================================  ===============================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

__all__ = ["count_parameters", "FCN", "SmallCNN", "deep_fcn", "wide_fcn", "BasicBlock", "Bottleneck", "ResNet",
           "resnet18", "resnet50", "plain_convnet", "TargetSpec", "GuideSpec", "build_target",
           "build_guide", "StackedRNN", "last_positions",
           "causal_mask", "CausalTransformer", "TransformerClassifier"]


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
    batch_norm: bool = True,
) -> FCN:
    """The paper's Deep FCN: ``depth`` blocks of Linear + BatchNorm + ReLU + Dropout, then logits.

    The paper: a first block of width 2048, then 47 blocks of width 1024, dropout 0.1 (49 Linear
    layers with the classifier). ``first_width=None`` makes every block ``width`` wide;
    ``batch_norm=False`` drops BatchNorm (the plain deep MLP of the depth map).
    """
    widths = [first_width or width] + [width] * (depth - 1)
    return FCN(in_features, widths, num_classes=num_classes, batch_norm=batch_norm, dropout=dropout)


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


class TargetSpec(Protocol):
    """What :func:`build_target` reads of a run's config (``experiments.image_guidance.Config`` has it all).

    A protocol rather than the chapter's config class, so that this module imports no chapter.
    """

    @property
    def target(self) -> str: ...  # "deep_fcn" | "wide_fcn" | "plain_cnn"
    @property
    def image_size(self) -> int: ...
    @property
    def num_classes(self) -> int: ...
    @property
    def fcn_width(self) -> int: ...
    @property
    def fcn_depth(self) -> int: ...
    @property
    def fcn_first_width(self) -> int | None: ...
    @property
    def fcn_dropout(self) -> float: ...
    @property
    def fcn_batch_norm(self) -> bool: ...
    @property
    def wide_width(self) -> int: ...
    @property
    def wide_depth(self) -> int: ...
    @property
    def plain_layers(self) -> Sequence[int]: ...
    @property
    def plain_block(self) -> str: ...
    @property
    def plain_width(self) -> int: ...


class GuideSpec(Protocol):
    """What :func:`build_guide` reads of a guide's config (``experiments.image_guides.GuideConfig`` has it all)."""

    @property
    def family(self) -> str: ...  # "resnet18" | "resnet50" | "small_cnn" | "residual_twin"
    @property
    def width(self) -> int: ...
    @property
    def image_size(self) -> int: ...
    @property
    def channels(self) -> Sequence[int]: ...
    @property
    def hidden(self) -> int: ...
    @property
    def layers(self) -> Sequence[int]: ...
    @property
    def block(self) -> str: ...


def build_target(c: TargetSpec) -> nn.Module:
    """The target network of a guidance run on images (chapters 04, 05), from its config's sizes."""
    in_features = 3 * c.image_size * c.image_size
    if c.target == "deep_fcn":
        return deep_fcn(in_features, c.fcn_width, c.fcn_depth, c.fcn_first_width, c.num_classes, c.fcn_dropout,
                        c.fcn_batch_norm)
    if c.target == "wide_fcn":
        return wide_fcn(in_features, c.wide_width, c.wide_depth, c.num_classes)
    if c.target == "plain_cnn":
        return plain_convnet(c.plain_layers, c.plain_block, c.plain_width, c.num_classes, c.image_size)
    raise ValueError(f"unknown target {c.target!r}: choose deep_fcn, wide_fcn or plain_cnn")


def build_guide(g: GuideSpec, num_classes: int = 10) -> nn.Module:
    """A guide network of the image chapters (initialised from the current torch seed)."""
    if g.family == "resnet18":
        return resnet18(g.width, num_classes, g.image_size)
    if g.family == "resnet50":
        return resnet50(g.width, num_classes, g.image_size)
    if g.family == "small_cnn":
        return SmallCNN(channels=g.channels, hidden=g.hidden, num_classes=num_classes, image_size=g.image_size)
    if g.family == "residual_twin":  # the plain ConvNet's layout with its skips: its guide in chapter 05
        return ResNet(g.layers, g.block, g.width, num_classes, image_size=g.image_size, residual=True)
    raise ValueError(f"unknown guide family {g.family!r}: choose resnet18, resnet50, small_cnn or residual_twin")


# ----------------------------------------------------------------------------- sequence models (chapter 06)
#
# The guidance paper's sequence models. Everything is batch first: inputs are token ids ``(B, T)``
# and every recorded layer's output is ``(B, T, D)``, so flattening per example can never mix the
# time and batch axes. Each layer is its own module (no ``num_layers=4`` inside one ``nn.RNN``, no
# Transformer layer used four times), so guidance can record and align every layer.


class StackedRNN(nn.Module):
    """Embedding, ``layers`` one-layer recurrent modules stacked, then a Linear head.

    ``kind="rnn"`` is the paper's tanh RNN, ``"lstm"`` an LSTM. ``head="token"`` predicts at every
    position (language model, copy task: logits ``(B, T, outputs)``); ``head="last"`` reads the
    top layer's output at each sequence's last real token (the first ``pad_id`` marks the end) and
    predicts one class per sequence (parity: logits ``(B, outputs)``). The paper's RNN is
    Embedding 256, 4 x tanh RNN of hidden 512; its parity RNN one multi-layer tanh RNN, whose output
    a hook sees only at the top layer, where ours records every layer.
    """

    def __init__(self, vocab_size: int, hidden: int = 512, layers: int = 4, embed: int = 256, outputs: int | None = None,
                 kind: str = "rnn", head: str = "token", pad_id: int | None = None) -> None:
        super().__init__()
        if kind not in ("rnn", "lstm"):
            raise ValueError(f"unknown recurrent kind {kind!r}: choose rnn or lstm")
        if head not in ("token", "last"):
            raise ValueError(f"unknown head {head!r}: choose token or last")
        if layers < 1:
            raise ValueError(f"a StackedRNN needs at least one layer, got {layers}")
        self.head_kind, self.pad_id = head, pad_id
        self.embedding = nn.Embedding(vocab_size, embed)
        make = (lambda i: nn.RNN(embed if i == 0 else hidden, hidden, nonlinearity="tanh", batch_first=True)) \
            if kind == "rnn" else (lambda i: nn.LSTM(embed if i == 0 else hidden, hidden, batch_first=True))
        self.layers = nn.ModuleList(make(i) for i in range(layers))
        self.head = nn.Linear(hidden, outputs or vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embedding(x)
        for layer in self.layers:
            h, _ = layer(h)
        if self.head_kind == "last":
            h = h[torch.arange(len(x), device=x.device), last_positions(x, self.pad_id)]
        return self.head(h)


def last_positions(x: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """Index of each row's last real token (the one before the first ``pad_id``; ``T-1`` without padding)."""
    if pad_id is None:
        return torch.full((len(x),), x.shape[1] - 1, dtype=torch.long, device=x.device)
    return (x != pad_id).long().sum(1).clamp_min(1) - 1


def causal_mask(t: int, device: torch.device | None = None) -> torch.Tensor:
    """``(T, T)`` additive mask: position ``i`` sees positions ``<= i`` only."""
    return torch.triu(torch.full((t, t), float("-inf"), device=device), diagonal=1)


class _TransformerBase(nn.Module):
    def __init__(self, vocab_size: int, d_model: int, heads: int, ff: int, layers: int, max_len: int,
                 dropout: float) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"a Transformer needs at least one layer, got {layers}")
        self.max_len = max_len
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(max_len, d_model)
        # distinct modules: each layer has its own weights and its own recorded output
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, heads, ff, dropout, batch_first=True, norm_first=True)
            for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.max_len:
            raise ValueError(f"sequence length {x.shape[1]} exceeds this Transformer's max_len {self.max_len}")
        return self.embedding(x) + self.position(torch.arange(x.shape[1], device=x.device))


class CausalTransformer(_TransformerBase):
    """A decoder-only Transformer: token and learned position embeddings, ``layers`` pre-norm
    self-attention layers under a causal mask, a final LayerNorm, a Linear head per token.

    The paper's: 4 layers, d = 512, 16 heads, feed-forward 2048. Logits ``(B, T, outputs)``.
    """

    def __init__(self, vocab_size: int, d_model: int = 512, heads: int = 16, ff: int = 2048, layers: int = 4,
                 max_len: int = 512, dropout: float = 0.0, outputs: int | None = None) -> None:
        super().__init__(vocab_size, d_model, heads, ff, layers, max_len, dropout)
        self.head = nn.Linear(d_model, outputs or vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        mask = causal_mask(x.shape[1], x.device)
        for layer in self.layers:
            h = layer(h, src_mask=mask, is_causal=True)
        return self.head(self.norm(h))


class TransformerClassifier(_TransformerBase):
    """A Transformer encoder for one label per sequence (parity): bidirectional attention over the
    real tokens (padding masked out of the keys), the mean of the real positions, a Linear head.
    """

    def __init__(self, vocab_size: int, d_model: int = 512, heads: int = 16, ff: int = 2048, layers: int = 4,
                 max_len: int = 512, dropout: float = 0.0, outputs: int = 2, pad_id: int | None = None) -> None:
        super().__init__(vocab_size, d_model, heads, ff, layers, max_len, dropout)
        self.pad_id = pad_id
        self.head = nn.Linear(d_model, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        pad = (x == self.pad_id) if self.pad_id is not None else torch.zeros_like(x, dtype=torch.bool)
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=pad)
        h = self.norm(h)
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        return self.head((h * keep).sum(1) / keep.sum(1).clamp_min(1))
