"""Chapter 01: the same data, three architectures of about the same size, three inductive biases.

On CIFAR-10 without augmentation a fully connected net (FCN), a small CNN and a deep, narrow
FCN, each with about 0.63M parameters, are trained by the same loop with the same optimiser.
The question is how each generalises: the FCN fits the training set and stalls on the test set,
the deep plain FCN trains badly, and the CNN, whose convolutions build in locality and weight
sharing, generalises best.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from untrainable.config_checks import check_fields
from untrainable.data import load_cifar10
from untrainable.experiments import PlannedRun, checked_seeds
from untrainable.models import FCN, SmallCNN, count_parameters
from untrainable.precision import PRECISIONS
from untrainable.profiles import check_profile, default_seeds, preset_table, replace_preset
from untrainable.results import added_field, run_or_load
from untrainable.runtime import log, seed_everything
from untrainable.train import OPTIMIZERS, FitSettings, fit

__all__ = ["EXPERIMENT", "MODELS", "LABELS", "REQUIRED_METRICS", "Config", "Preset", "CHAPTER", "PRESETS", "SMOKE",
           "preset", "configs", "planned_runs", "build_model", "train_one", "run", "describe_models"]

EXPERIMENT = "inductive_bias"
MODELS = ("fcn", "cnn", "deep_fcn")
LABELS = {"fcn": "FCN (2 x 192)", "cnn": "small CNN", "deep_fcn": "deep FCN (16 x 128)"}
#: What the chapter's table reads from each record: a record without one of them is refused.
REQUIRED_METRICS = ("train_acc", "test_acc", "best_test_acc", "generalization_gap")


@dataclass(frozen=True)
class Config:
    """Everything that defines one run apart from the seed; every field is part of the record key."""

    model: str
    n_train: int | None  # None: all 50,000 training images
    n_test: int | None  # None: all 10,000 test images
    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    data_seed: int = 0  # which subset; fixed so that seeds vary only initialisation and order
    precision: str = added_field("fp32")  # "fp32" | "bf16" | "auto" (untrainable.precision); fp32 keeps old keys

    def __post_init__(self) -> None:
        check_fields(self, positive=("n_train", "n_test", "epochs", "batch_size", "lr"),
                     non_negative=("weight_decay", "data_seed"),
                     choices={"model": MODELS, "optimizer": OPTIMIZERS, "precision": PRECISIONS})


@dataclass(frozen=True)
class Preset:
    """The sizes of one profile; a field left None keeps the config's default."""

    n_train: int | None  # None: all 50,000 training images
    n_test: int | None  # None: all 10,000 test images
    epochs: int
    precision: str | None = None


CHAPTER = "chapter 01 (inductive bias)"
PRESETS: dict[str, Preset] = preset_table(CHAPTER, {
    "quick": Preset(n_train=2000, n_test=1000, epochs=5, precision="auto"),
    "full": Preset(n_train=None, n_test=None, epochs=10),
    "paper": Preset(n_train=None, n_test=None, epochs=100, precision="auto"),
})
#: Overrides (checked by :func:`~untrainable.profiles.replace_preset`) that shrink any profile for tests.
SMOKE: dict[str, Any] = {"n_train": 256, "n_test": 256, "epochs": 1}


def preset(profile: str, smoke: bool = False) -> Preset:
    """The profile's sizes; ``smoke`` shrinks them to a tiny slice (for tests)."""
    p = PRESETS[check_profile(profile)]
    return replace_preset(CHAPTER, p, **SMOKE) if smoke else p


def configs(profile: str, smoke: bool = False) -> list[Config]:
    """The runs of a profile, one per model; ``smoke`` shrinks them to a tiny slice for tests."""
    p = preset(profile, smoke)
    runs = [Config(model=m, n_train=p.n_train, n_test=p.n_test, epochs=p.epochs) for m in MODELS]
    return runs if p.precision is None else [replace(c, precision=p.precision) for c in runs]


def build_model(name: str) -> nn.Module:
    """The network :attr:`Config.model` names, untrained: ``"fcn"`` an :class:`~untrainable.models.FCN` of
    2 x 192 units, ``"cnn"`` a :class:`~untrainable.models.SmallCNN` (32, 64, 128 channels, 256 hidden),
    ``"deep_fcn"`` an FCN of 16 x 128; each has about 0.63M parameters, so only the architecture differs."""
    if name == "fcn":
        return FCN(width=192, depth=2)
    if name == "cnn":
        return SmallCNN(channels=(32, 64, 128), hidden=256)
    if name == "deep_fcn":
        return FCN(width=128, depth=16)
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")


def _data(config: Config) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    train = load_cifar10(train=True).subset(config.n_train, seed=config.data_seed)
    test = load_cifar10(train=False).subset(config.n_test, seed=config.data_seed)
    return train.tensors(), test.tensors()


def train_one(config: Config, seed: int, device: torch.device, checkpoint: Path) -> dict[str, Any]:
    """Train one model from seed ``seed``; return its final metrics and per-epoch history."""
    generator = seed_everything(seed)
    model = build_model(config.model)
    train, test = _data(config)
    settings = FitSettings(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                           weight_decay=config.weight_decay, optimizer=config.optimizer, precision=config.precision)
    history = fit(model, train, test, settings, generator=generator, device=device,
                  checkpoint=checkpoint, desc=f"{config.model} seed {seed}")
    last = history[-1]
    metrics = {k: last[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    metrics["best_test_acc"] = max(h["test_acc"] for h in history)
    metrics["generalization_gap"] = last["train_acc"] - last["test_acc"]
    metrics["parameters"] = count_parameters(model)
    return {"metrics": metrics, "history": history}


def planned_runs(profile: str, seeds: tuple[int, ...] | None = None) -> list[PlannedRun]:
    """Every record of the chapter: each model for each seed."""
    seeds = checked_seeds(seeds, default_seeds(profile))
    return [PlannedRun(EXPERIMENT, c.model, c, s, REQUIRED_METRICS) for c in configs(profile) for s in seeds]


def run(profile: str = "quick", seeds: tuple[int, ...] | None = None, device: str = "auto",
        force: bool = False, smoke: bool = False) -> list[dict[str, Any]]:
    """Every model of the profile for every seed: stored records are reused, missing ones trained."""
    seeds = checked_seeds(seeds, default_seeds(profile))
    records = []
    for c in configs(profile, smoke):
        for s in seeds:
            log(f"{EXPERIMENT}/{c.model} seed {s} ({profile})")
            records.append(run_or_load(EXPERIMENT, profile, c.model, c, s, train_one, device=device, force=force,
                                       required_metrics=REQUIRED_METRICS))
    return records


def describe_models() -> list[dict[str, Any]]:
    """Name, label and parameter count of each architecture, for the chapter's table."""
    return [{"model": m, "label": LABELS[m], "parameters": count_parameters(build_model(m))} for m in MODELS]
