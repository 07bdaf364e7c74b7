"""Mimic learning (Ba & Caruana, 2014): a shallow student regresses a deep teacher's logits.

The recipe:

1. Train an accurate deep teacher (or an ensemble, whose logits are averaged).
2. Record the teacher's logits ``z`` (pre-softmax scores) on a *transfer set*.
3. Train a shallow student ``g`` by L2 regression on those logits, no labels and no softmax:
   ``L = 1/(2N) Σ_n ||g(x_n) − z_n||²``. Logits keep what a softmax throws away: a shift of all
   logits changes nothing after the softmax, and near-zero probabilities hide which wrong classes
   the teacher finds close.
4. Factor the student's wide input layer as ``W = U V`` with ``k`` linear units between (a linear
   bottleneck): the same function class up to rank ``k``, fewer multiply-adds, faster convergence.

This module holds the losses, the transfer-set builder and the chapter's models.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from untrainable.data import batches
from untrainable.files import CorruptFileError, exclusive, load_torch, save_torch_atomic
from untrainable.paths import cache_root
from untrainable.precision import autocast
from untrainable.runtime import eval_mode, log

__all__ = ["logit_regression_loss", "distillation_loss", "soft_cross_entropy", "mimic_loss_fn", "random_crop_flip",
           "ensemble_logits", "transfer_images", "transfer_set", "TeacherCNN", "ShallowStudent", "deep_mlp_params",
           "deep_mlp_width", "deep_mlp_of_width", "student_params", "cached_path"]

# ---------------------------------------------------------------------------------------------
# Losses. Each takes the student's logits first; "teacher" is a teacher's logits or probabilities.
# ---------------------------------------------------------------------------------------------


def logit_regression_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Ba & Caruana's mimic loss: ``1/(2N) Σ_n ||g_n − z_n||²`` (half the summed squared error, batch mean)."""
    return 0.5 * (student_logits.float() - teacher_logits.float()).pow(2).sum(dim=1).mean()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al.'s (2015) distillation at temperature ``T``, scaled by ``T²``.

    ``T² · KL(softmax(z/T) || softmax(g/T))``, batch mean. KL differs from the soft-target cross
    entropy only by the teacher's entropy, a constant, so the gradients are the same. The ``T²``
    keeps gradient sizes comparable across temperatures. As ``T → ∞`` the gradient tends to
    ``(g − z)/C`` for zero-mean logits over ``C`` classes: logit matching, i.e. the mimic loss.
    """
    t = float(temperature)
    log_q = F.log_softmax(student_logits.float() / t, dim=1)
    log_p = F.log_softmax(teacher_logits.float() / t, dim=1)
    return t * t * (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()


def soft_cross_entropy(student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student's softmax against the teacher's probabilities (``T = 1``, no scaling)."""
    return -(teacher_probs.float() * F.log_softmax(student_logits.float(), dim=1)).sum(dim=1).mean()


def mimic_loss_fn(kind: str, temperature: float = 1.0):
    """A ``loss_fn(model, x, target) -> (loss, logits)`` for :func:`untrainable.train.fit`.

    ``kind``: ``"logits"`` (L2 on logits), ``"kd"`` (Hinton at ``temperature``), ``"probs"`` (cross
    entropy on the teacher's probabilities, computed from its logits), ``"labels"`` (ordinary
    cross-entropy; targets are class indices).
    """

    def loss(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        if kind == "logits":
            return logit_regression_loss(logits, target), logits
        if kind == "kd":
            return distillation_loss(logits, target, temperature), logits
        if kind == "probs":
            return soft_cross_entropy(logits, F.softmax(target.float(), dim=1)), logits
        if kind == "labels":
            return F.cross_entropy(logits, target), logits
        raise ValueError(f"unknown mimic loss {kind!r}: choose logits, kd, probs or labels")

    return loss


# ---------------------------------------------------------------------------------------------
# Transfer set: the teacher's logits, computed once and cached on disk.
# ---------------------------------------------------------------------------------------------


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Each image shifted by a random crop of its zero-padded copy and mirrored with probability 1/2.

    Vectorised over the batch (a different crop per image), for uint8 or float ``(N, C, H, W)``.
    Augmented views stand in for the paper's 1M unlabeled tiny images, which are withdrawn.
    """
    n, _, h, w = images.shape
    padded = F.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # (n, 1, h, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # (n, 1, 1, w)
    idx = torch.arange(n)[:, None, None, None]
    chans = torch.arange(images.shape[1])[None, :, None, None]
    out = padded[idx, chans, rows, cols]
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


@torch.no_grad()
def ensemble_logits(teachers: Sequence[nn.Module], x: torch.Tensor, device: torch.device,
                    batch_size: int = 1000, precision: str = "fp32") -> torch.Tensor:
    """The teachers' logits averaged (Ba & Caruana's ensemble teacher), in eval mode, on CPU, float32.

    ``precision`` is the teachers' forward precision (see :mod:`untrainable.precision`); the
    returned logits are float32 either way."""
    chunks = []
    for idx in batches(len(x), batch_size):
        xb = x[idx].to(device)
        total = None
        for t in teachers:
            with eval_mode(t), autocast(device, precision):
                z = t(xb).float()
            total = z if total is None else total + z
        chunks.append((total / len(teachers)).cpu())
    return torch.cat(chunks)


def transfer_set(
    teachers: Sequence[nn.Module],
    images: torch.Tensor,
    normalize,
    views: int,
    seed: int,
    device: torch.device,
    cache_key: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (the originals plus ``views`` augmented copies) and the teachers' mean logits on them.

    ``images`` are uint8; ``normalize`` maps uint8 to the float input the teachers expect. With a
    ``cache_key`` (which must identify the teachers, e.g. their record keys) the result is stored
    under the cache folder and reused, since computing teacher logits is the expensive part.
    Parallel students share the cache: a lock makes the first one build it and the others read it;
    an unreadable cached file (a crash of an older version) is rebuilt.
    """
    if cache_key is None:
        return _build_transfer_set(teachers, images, normalize, views, seed, device)
    digest = hashlib.sha256(f"{cache_key}|{views}|{seed}|{len(images)}".encode()).hexdigest()[:16]
    path = cache_root() / "transfer" / f"{digest}.pt"
    with exclusive(path):
        if path.is_file():
            try:
                cached = load_torch(path)
                return cached["images"], cached["logits"]
            except (CorruptFileError, KeyError, TypeError) as err:
                log(f"{path}: unreadable transfer set, rebuilt ({err})")
        all_images, logits = _build_transfer_set(teachers, images, normalize, views, seed, device)
        save_torch_atomic({"images": all_images, "logits": logits}, path)
    return all_images, logits


def transfer_images(images: torch.Tensor, views: int, seed: int) -> torch.Tensor:
    """The transfer set's images: the originals, then ``views`` augmented copies (random crop and
    flip, drawn from ``seed``). Label-trained students train on these same images with the originals'
    labels, so mimicry and labels differ in their targets only."""
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([images] + [random_crop_flip(images, gen) for _ in range(views)])


def _build_transfer_set(teachers: Sequence[nn.Module], images: torch.Tensor, normalize, views: int, seed: int,
                        device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    all_images = transfer_images(images, views, seed)
    return all_images, ensemble_logits(teachers, normalize(all_images), device)


# ---------------------------------------------------------------------------------------------
# Models: the deep teacher, the shallow students and a deeper MLP control.
# ---------------------------------------------------------------------------------------------


class TeacherCNN(nn.Module):
    """Ba & Caruana's CIFAR-10 teacher: 3 × [conv ``channels`` 3×3 + ReLU + max-pool 2], a hidden
    fully connected layer of ``hidden`` units with dropout, then logits (the paper: 128 channels, 1000 units)."""

    def __init__(self, channels: int = 128, hidden: int = 1000, dropout: float = 0.5, num_classes: int = 10,
                 in_channels: int = 3, image_size: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for _ in range(3):
            layers += [nn.Conv2d(prev, channels, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            prev = channels
        side = image_size // 8
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels * side * side, hidden),
                                        nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class ShallowStudent(nn.Module):
    """One non-linear hidden layer of ``hidden`` ReLU units, optionally behind a conv + pool front end
    and a linear bottleneck of ``bottleneck`` units.

    * ``conv_channels=0`` gives the convolution-free student (Urban et al., 2017's control).
    * ``bottleneck=None`` gives the plain shallow net (full-rank input weights).
    * ``dropout`` is for the label-trained baselines; mimic students train without it.
    """

    def __init__(self, hidden: int, bottleneck: int | None = None, conv_channels: int = 0, pool: int = 4,
                 dropout: float = 0.0, num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> None:
        super().__init__()
        front: list[nn.Module] = []
        features = in_channels * image_size * image_size
        if conv_channels:
            front += [nn.Conv2d(in_channels, conv_channels, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(pool)]
            features = conv_channels * (image_size // pool) ** 2
        self.front = nn.Sequential(*front, nn.Flatten())
        if bottleneck:
            self.bottleneck = nn.Linear(features, bottleneck, bias=False)  # linear: no non-linearity
            features = bottleneck
        else:
            self.bottleneck = nn.Identity()
        self.hidden = nn.Linear(features, hidden)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.hidden(self.bottleneck(self.front(x))))
        return self.out(self.dropout(h))

    def input_weight(self) -> torch.Tensor:
        """The effective input-to-hidden matrix ``W = U V`` (rank at most the bottleneck width)."""
        w = self.hidden.weight
        if isinstance(self.bottleneck, nn.Linear):
            w = w @ self.bottleneck.weight
        return w


def deep_mlp_params(width: int, depth: int, in_features: int = 3 * 32 * 32, num_classes: int = 10) -> int:
    """Parameter count of a ``depth``-hidden-layer MLP of ``width`` units per layer."""
    return (in_features + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * num_classes


def deep_mlp_width(params_target: int, depth: int = 3, in_features: int = 3 * 32 * 32, num_classes: int = 10) -> int:
    """The widest ``depth``-hidden-layer MLP with at most ``params_target`` parameters (at least 1 unit)."""
    width = 1
    while deep_mlp_params(width + 1, depth, in_features, num_classes) <= params_target:
        width += 1
    return width


def deep_mlp_of_width(width: int, depth: int = 3, in_features: int = 3 * 32 * 32, num_classes: int = 10,
                      dropout: float = 0.0) -> nn.Sequential:
    """A ReLU MLP of ``depth`` hidden layers of ``width`` units: the deeper, convolution-free control."""
    layers: list[nn.Module] = [nn.Flatten()]
    prev = in_features
    for _ in range(depth):
        layers += [nn.Linear(prev, width), nn.ReLU(inplace=True)] + ([nn.Dropout(dropout)] if dropout else [])
        prev = width
    return nn.Sequential(*layers, nn.Linear(prev, num_classes))


def student_params(hidden: int, bottleneck: int | None, conv_channels: int, pool: int = 4, in_channels: int = 3,
                   image_size: int = 32, num_classes: int = 10) -> int:
    """Parameter count of a :class:`ShallowStudent` without building it (for sizing sweeps)."""
    features = in_channels * image_size * image_size
    total = 0
    if conv_channels:
        total += in_channels * 25 * conv_channels + conv_channels
        features = conv_channels * (image_size // pool) ** 2
    if bottleneck:
        total += features * bottleneck
        features = bottleneck
    return total + (features + 1) * hidden + (hidden + 1) * num_classes


def cached_path(kind: str, key: str) -> Path:
    """Where a trained teacher's weights are cached (never committed)."""
    return cache_root() / "mimic" / kind / f"{key}.pt"
