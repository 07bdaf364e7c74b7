"""The guides of chapters 04 and 05: how each is trained, where its weights and Gram banks are cached.

A *trained* guide (a ResNet-18, a ResNet-50 or a small CNN) is trained once per profile and
config, seed 0. Its record (accuracy, history, which test images it gets right) is committed
under ``results/<profile>/guides/``; its weights are not, they live in the cache folder, and
:func:`untrainable.results.run_with_weights` retrains them into the cache when a fresh clone
lacks them, never touching the stored record. An *untrained* guide is the same network at a
random initialisation, frozen: run seed ``s`` gets the one initialised from ``10_000 + s``.

A Gram bank (:class:`untrainable.guidance.GuideBank`) is the guide's side of linear CKA computed
once over a training set and looked up per batch. It is cached as plain tensors (so it loads with
``weights_only=True``) under a lock, so parallel processes compute each bank once.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from untrainable import guidance as G
from untrainable.data import held_out_splits, load_image_data
from untrainable.config_checks import check_fields
from untrainable.mimic import random_crop_flip
from untrainable.files import exclusive, load_torch, save_torch_atomic
from untrainable.models import build_guide, count_parameters
from untrainable.paths import cache_root
from untrainable.precision import PRECISIONS
from untrainable.results import added_field, run_key, run_with_weights
from untrainable.runtime import seed_everything
from untrainable.train import BEST_BY, OPTIMIZERS, SCHEDULES, FitSettings, best_epoch, correct_string, evaluate, fit

__all__ = ["GUIDE_EXPERIMENT", "UNTRAINED_GUIDE_SEED", "FAMILIES", "REQUIRED_METRICS", "GuideConfig", "guide_name",
           "guide_accuracy", "scored_as", "guide_weights_path", "train_guide", "trained_guide", "untrained_guide",
           "guide_id", "bank_path", "guide_bank", "CachedGuideBank"]

GUIDE_EXPERIMENT = "guides"
UNTRAINED_GUIDE_SEED = 10_000  # an untrained guide for run seed s is initialised from 10_000 + s
#: The guide networks :func:`untrainable.models.build_guide` builds.
FAMILIES = ("resnet18", "resnet50", "small_cnn", "residual_twin")
#: What the pages read of a guide's record: its accuracy (:func:`guide_accuracy`, whose fallback is
#: ``test_acc``) and which test images it gets right (the kappa rows of chapter 04).
REQUIRED_METRICS = ("test_acc", "train_acc", "test_correct", "parameters")


@dataclass(frozen=True)
class GuideConfig:
    """A guide network and how it is trained (when it is). Every field is part of the record key."""

    family: str  # "resnet18" | "resnet50" | "small_cnn" | "residual_twin"
    width: int = 16  # ResNet first-stage channels
    channels: tuple[int, ...] = (32, 64, 128)  # small CNN
    hidden: int = 256  # small CNN
    epochs: int = 15
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 5e-4
    optimizer: str = "adamw"
    n_train: int | None = 4000
    n_test: int | None = 2000
    data_seed: int = 0
    dataset: str = "cifar10"
    image_size: int = 32
    num_classes: int = added_field(10)  # an ImageFolder dataset's classes (ImageNet: 1000)
    precision: str = added_field("fp32")  # "fp32" | "bf16" | "auto" (untrainable.precision); fp32 keeps old keys
    # Trained as a practitioner would (chapter 04 on): a held-out validation split, the best-validation
    # checkpoint, a schedule, random crop and flip. The defaults keep the keys of the earlier guides.
    label: str = added_field("")  # the record's name (default: the family), e.g. "resnet18-same-images"
    n_valid: int = added_field(0)  # validation images held out from the training images (0: none)
    n_test_curve: int | None = added_field(None)  # the per-epoch test curve's images (None: the n_test images)
    schedule: str = added_field("constant")  # "constant" | "cosine"
    augment: bool = added_field(False)  # random crop (padding 4) and horizontal flip per batch
    best_by: str = added_field("")  # restore the epoch best by this validation metric ("": the last epoch)
    layers: tuple[int, ...] = added_field(())  # residual_twin: blocks per stage, as its plain ConvNet's
    block: str = added_field("basic")  # residual_twin: "basic" | "bottleneck"

    def __post_init__(self) -> None:
        check_fields(self, positive=("width", "hidden", "epochs", "batch_size", "lr", "n_train", "n_test", "image_size",
                                     "num_classes", "n_test_curve"),
                     non_negative=("weight_decay", "n_valid", "data_seed"),
                     choices={"family": FAMILIES, "optimizer": OPTIMIZERS, "schedule": SCHEDULES,
                              "precision": PRECISIONS, "best_by": ("", *BEST_BY), "block": ("basic", "bottleneck")})


def guide_name(g: GuideConfig) -> str:
    """The name of a guide's record: its label, else its family."""
    return g.label or g.family


def guide_weights_path(profile: str, g: GuideConfig) -> Path:
    """Where a trained guide's weights are cached (never committed)."""
    return cache_root() / "guides" / profile / f"{guide_name(g)}-{run_key(GUIDE_EXPERIMENT, g, 0)}.pt"


def _guide_data(g: GuideConfig) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, ...]:
    """``(train, valid, test_curve, test)`` of a guide: normalised images and labels (``valid`` None
    without a held-out split; ``test_curve`` the test images of the per-epoch curve)."""
    if not g.n_valid:
        train, test = load_image_data(g.dataset, g.n_train, g.n_test, g.data_seed, g.image_size)
        return train, None, test, test
    s = held_out_splits(g.dataset, g.n_train, g.n_valid, g.n_test, g.data_seed, g.image_size)
    curve = s.test.subset(g.n_test_curve, seed=g.data_seed)
    return s.train.tensors(), s.valid.tensors(), curve.tensors(), s.test.tensors()


def train_guide(g: GuideConfig, seed: int, device: torch.device, checkpoint: Path, weights: Path) -> dict[str, Any]:
    """Train one guide, save its weights to ``weights``; return its metrics and history.

    ``test_*`` are the last epoch's, as in its history. With ``best_by`` the best-validation epoch's
    weights are restored and saved, and ``best_test_*`` are theirs on all ``n_test`` test images
    (``best_epoch`` says which epoch): that is the guide's accuracy (:func:`guide_accuracy`).
    """
    generator = seed_everything(seed)
    model = build_guide(g, g.num_classes)
    train, valid, test_curve, test = _guide_data(g)
    settings = FitSettings(epochs=g.epochs, batch_size=g.batch_size, lr=g.lr, weight_decay=g.weight_decay,
                           optimizer=g.optimizer, schedule=g.schedule, precision=g.precision)
    history = fit(model, train, test_curve, settings, generator=generator, device=device, checkpoint=checkpoint,
                  desc=f"guide {guide_name(g)}", valid=valid, best_by=g.best_by or "valid_loss",
                  restore_best=bool(g.best_by), augment=random_crop_flip if g.augment else None)
    save_torch_atomic(model.state_dict(), weights)
    last = history[-1]
    metrics = {k: last[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    if g.best_by:
        final = evaluate(model, *test, device, precision=g.precision)
        best = history[best_epoch(history, g.best_by) - 1]
        metrics.update(best_test_loss=final["loss"], best_test_acc=final["acc"], best_epoch=best["epoch"],
                       best_valid_loss=best["valid_loss"], best_valid_acc=best["valid_acc"])
    metrics.update(parameters=count_parameters(model),
                   test_correct=correct_string(model, *test, device, precision=g.precision))
    return {"metrics": metrics, "history": history}


def guide_accuracy(record: dict[str, Any]) -> float:
    """A trained guide's test accuracy: its best-validation checkpoint's when it kept one, else its last epoch's."""
    return record["metrics"].get("best_test_acc", record["metrics"]["test_acc"])


def scored_as(records: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Guide records with their accuracy (:func:`guide_accuracy`) under ``metric``, so that a guide
    compares with its targets' ``metric`` (e.g. ``checkpoint_test_acc``) in one check."""
    return [{**r, "metrics": {**r["metrics"], metric: guide_accuracy(r)}} for r in records]


def trained_guide(profile: str, g: GuideConfig, device: str = "auto", force: bool = False,
                  train_missing: bool | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The trained, frozen guide of a profile and its record (stored: loaded; missing: trained once).

    The global random state is left as it was: training a guide must not change the target
    run's dropout masks, so a run gives the same numbers whether or not its guide was cached.
    """
    weights = guide_weights_path(profile, g)
    with torch.random.fork_rng():
        record = run_with_weights(GUIDE_EXPERIMENT, profile, guide_name(g), g, 0, weights,
                                  functools.partial(train_guide, weights=weights), device=device, force=force,
                                  train_missing=train_missing, required_metrics=REQUIRED_METRICS)
    model = build_guide(g, g.num_classes)
    model.load_state_dict(load_torch(weights))
    return G.freeze(model), record


def untrained_guide(g: GuideConfig, seed: int) -> nn.Module:
    """A randomly initialised, frozen guide for run seed ``seed`` (the global RNG is left untouched)."""
    with torch.random.fork_rng():
        torch.manual_seed(UNTRAINED_GUIDE_SEED + seed)
        return G.freeze(build_guide(g, g.num_classes))


def guide_id(g: GuideConfig, trained: bool, seed: int) -> str:
    """A name for one guide's weights: the trained one is shared, an untrained one is per run seed."""
    if trained:
        return f"{g.family}-{run_key(GUIDE_EXPERIMENT, g, 0)}"
    return f"{g.family}-untrained{UNTRAINED_GUIDE_SEED + seed}-{run_key('u', g, 0)}"


def bank_path(profile: str, guide: str, mode: str, x_train: torch.Tensor) -> Path:
    """The cache file of guide ``guide``'s bank over ``x_train`` (named by which guide, which images)."""
    sample = x_train[:: max(1, len(x_train) // 64)].contiguous().cpu().numpy().tobytes()
    return cache_root() / "banks" / profile / f"{guide}-{mode}-{len(x_train)}-{hashlib.sha1(sample).hexdigest()[:10]}.pt"


class CachedGuideBank(G.GuideBank):
    """A :class:`~untrainable.guidance.GuideBank` read back from its cached tensors: the same lookups,
    without the guide's forward passes that the parent's constructor runs."""

    def __init__(self, mode: str, layers: list[str], n: int, store: dict[str, torch.Tensor]) -> None:
        self.mode, self.layers, self.n, self.store = mode, list(layers), n, store


def _compute_bank(path: Path, guide: nn.Module, layers: list[str], x_train: torch.Tensor, mode: str) -> None:
    """Compute a bank and save it as plain CPU tensors (freed on return: a full bank is hundreds of MB)."""
    bank = G.GuideBank(guide, layers, x_train, mode=mode, memory_gb=2.0)
    store = {name: t.cpu() for name, t in bank.store.items()}
    save_torch_atomic({"mode": bank.mode, "layers": bank.layers, "n": bank.n, "store": store}, path)


def guide_bank(path: Path, guide: nn.Module, layers: list[str], x_train: torch.Tensor, mode: str) -> G.GuideBank:
    """The guide's bank over the training set: read from ``path``, else computed once and cached there.

    A lock makes parallel processes that need the same bank compute it once. The bank is served
    from the file just written, so a run sees the same tensors whether or not it computed them.
    """
    with exclusive(path):
        if not path.is_file():
            _compute_bank(path, guide, layers, x_train, mode)
        saved = load_torch(path)  # on the CPU, where the batches' indices are
    return CachedGuideBank(saved["mode"], saved["layers"], saved["n"], saved["store"])
