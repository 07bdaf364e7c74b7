"""Chapters 04-05: guidance on images (Subramaniam et al., 2024, the ImageNet table, at CIFAR-10 scale).

This module holds what the two chapters share: the target run's config, the conditions, and one
target run; the presets that size it are :mod:`.image_presets`. The chapters themselves are
:mod:`.fcn_guidance` (a Deep FCN and a Wide FCN, chapter 04) and :mod:`.plain_cnn_guidance` (a plain deep ConvNet, a ResNet stack with
every skip connection removed, chapter 05); the guides are :mod:`.image_guides`.

Each target is trained with no guide, with a trained ResNet guide, and with an untrained one
(randomly initialised, frozen); chapter 04 adds the Deep FCN guided for its first steps only
("guidance as initialisation") and guided by a second guide family (a small plain CNN). Every run
also measures, at initialisation and at the end of every epoch, on a fixed probe set of test
images, the linear CKA of each target layer with its mapped layer of the trained and of the
untrained ResNet guide, so alignment compares across conditions, the unguided one included.

How a run goes, from a chapter's ``run(profile)`` to the record file:

1. :func:`run_targets` looks each (config, seed) up in the store of ``profile``;
2. for a missing record (and only then) :func:`resolve_inputs` loads the data and resolves the
   guides (:func:`~.image_guides.trained_guide` from the store and cache of ``profile``, the
   untrained one from the seed) and the Gram bank;
3. :func:`train_target` trains from the config, the seed and these inputs (it knows nothing of
   profiles or stores), resuming its checkpoint; ``run_or_load`` writes the record.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from untrainable import distributed as D
from untrainable import guidance as G
from untrainable.experiments import image_probes as IP
from untrainable.config_checks import check_fields
from untrainable.data import held_out_splits, load_image_data, stratified_indices
from untrainable.experiments import PlannedRun
from untrainable.experiments.image_guides import REQUIRED_METRICS as GUIDE_METRICS
from untrainable.experiments.image_guides import (GUIDE_EXPERIMENT, GuideConfig, bank_path, guide_bank, guide_id,
                                                   guide_name, guide_weights_path, train_guide, trained_guide,
                                                   untrained_guide)
from untrainable.mimic import random_crop_flip
from untrainable.models import build_guide, build_target, count_parameters
from untrainable.precision import PRECISIONS
from untrainable.profiles import check_seeds, default_seeds
from untrainable.results import added_field, run_or_load, run_or_load_resolved
from untrainable.runtime import resolve_device, seed_everything
from untrainable.train import (OPTIMIZERS, SCHEDULES, FitSettings, LossFn, best_epoch, correct_string,
                               cross_entropy_loss, fit)

__all__ = ["EXPERIMENT", "CONDITIONS", "CONDITION_LABELS", "TARGETS", "REQUIRED_METRICS", "VALIDATION_METRICS",
           "Config", "run_name", "required_metrics", "planned_runs", "TargetInputs",
           "resolve_inputs", "train_target", "validation_metrics", "target_data", "run_targets", "guide_records",
           "describe_models", "layer_table"]

EXPERIMENT = "image_guidance"

#: What each condition hands the target: (guide role, trained?, the preset field of its guided steps or
#: None when guided throughout). Roles are keys of a preset's guides (:mod:`.image_presets`).
CONDITIONS: dict[str, tuple[str | None, bool, str | None]] = {
    "no_guide": (None, False, None),
    "trained_guide": ("resnet", True, None),
    "untrained_guide": ("resnet", False, None),
    "trained_guide_init": ("resnet", True, "guide_steps"),
    "trained_guide_init_long": ("resnet", True, "guide_steps_long"),
    "small_cnn_guide": ("small_cnn", True, None),
    "all_images_guide": ("resnet_all", True, None),
}
#: The target networks :func:`untrainable.models.build_target` builds.
TARGETS = ("deep_fcn", "wide_fcn", "plain_cnn")
#: What chapters 04-05, their sweep and page 98 read of every target record (the final and best
#: epochs, the right/wrong string of the kappa rows) ...
REQUIRED_METRICS = ("train_acc", "train_loss", "test_acc", "test_loss", "best_test_acc", "parameters", "test_correct")
#: ... and, of a run with a validation split, what selection and the reported checkpoint read
#: (:func:`validation_metrics`).
VALIDATION_METRICS = ("min_valid_loss", "valid_loss", "valid_acc", "checkpoint_epoch", "checkpoint_test_acc")
CONDITION_LABELS = {"no_guide": "no guide", "trained_guide": "trained ResNet-18 guide",
                    "untrained_guide": "untrained ResNet-18 guide",
                    "trained_guide_init": "trained guide, first steps only",
                    "trained_guide_init_long": "trained guide, longer start",
                    "small_cnn_guide": "trained small-CNN guide",
                    "all_images_guide": "ResNet-18 guide trained on every image"}


@dataclass(frozen=True)
class Config:
    """Everything that defines one target run apart from the seed. Every field is part of the record
    key: a field added later must be declared with :func:`untrainable.results.added_field`."""

    target: str  # "deep_fcn" | "wide_fcn" | "plain_cnn"
    condition: str  # a key of CONDITIONS
    guide: GuideConfig | None
    n_train: int | None
    n_test: int | None
    epochs: int
    guide_steps: int | None = None  # guided for the first N optimiser steps only (None: throughout)
    alpha: float = 1.0
    distance: str = "linear_cka"
    guide_bank: str = "gram"  # "gram" | "features" | "none": how the frozen guide's side is computed
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    data_seed: int = 0
    probe_n: int = 256
    dataset: str = "cifar10"  # or "imagefolder:<root with train/ and val/>"
    image_size: int = 32
    num_classes: int = 10
    fcn_depth: int = 20
    fcn_width: int = 256
    fcn_first_width: int | None = 512
    fcn_dropout: float = 0.1
    wide_width: int = 1024
    wide_depth: int = 3
    plain_layers: tuple[int, ...] = (3, 4, 6, 3)
    plain_block: str = "basic"
    plain_width: int = 8
    reference_guide: GuideConfig | None = None  # the trained ResNet guide every run is probed against
    precision: str = added_field("fp32")  # "fp32" | "bf16" | "auto" (untrainable.precision); fp32 keeps old keys
    n_valid: int = added_field(0)  # validation images held out from the training images (0: none)
    schedule: str = added_field("constant")  # learning-rate schedule (untrainable.train.lr_factor)
    augment: bool = added_field(False)  # random crop and flip per batch (the guide then runs online: no bank)
    gram_precision: str = added_field("fp32")  # wide layers' CKA Gram products: "fp32" | "bf16" | "auto"
    fcn_batch_norm: bool = added_field(True)  # False: the Deep FCN's blocks without BatchNorm (the depth map)

    def __post_init__(self) -> None:
        check_fields(self, positive=("epochs", "batch_size", "lr", "n_train", "n_test", "guide_steps", "probe_n",
                                     "image_size", "num_classes", "fcn_depth", "fcn_width", "fcn_first_width",
                                     "wide_width", "wide_depth", "plain_width"),
                     non_negative=("alpha", "weight_decay", "n_valid", "data_seed"), fractions=("fcn_dropout",),
                     choices={"target": TARGETS, "condition": CONDITIONS, "distance": G.GUIDANCE_DISTANCES,
                              "guide_bank": ("gram", "features", "none"), "optimizer": OPTIMIZERS,
                              "schedule": SCHEDULES, "precision": PRECISIONS, "gram_precision": PRECISIONS,
                              "plain_block": ("basic", "bottleneck")})
        if self.augment and self.guide is not None and self.guide_bank != "none":
            raise ValueError("an augmented target sees new images every step, which no bank of the guide's side "
                             "holds: set guide_bank='none' (the guide runs online) or augment=False")


def run_name(c: Config) -> str:
    return f"{c.target}-{c.condition}"


def required_metrics(c: Config) -> tuple[str, ...]:
    """The metrics a record of ``c`` must carry: :data:`REQUIRED_METRICS`, with a validation split also
    :data:`VALIDATION_METRICS` (a run without one has none to choose by)."""
    return REQUIRED_METRICS + (VALIDATION_METRICS if c.n_valid else ())


def _trained_guides(configs: Iterable[Config]) -> list[GuideConfig]:
    """The trained guides the configs need (each once): their own and the probes' reference."""
    guides = [c.guide for c in configs if c.guide is not None and CONDITIONS[c.condition][1]]
    guides += [c.reference_guide for c in configs if c.reference_guide is not None]
    return list(dict.fromkeys(guides))


def planned_runs(configs: list[Config], seeds: Iterable[int]) -> list[PlannedRun]:
    """Every record the configs need: the trained guides first, then each target run per seed."""
    guides = [PlannedRun(GUIDE_EXPERIMENT, guide_name(g), g, 0, GUIDE_METRICS) for g in _trained_guides(configs)]
    return guides + [PlannedRun(EXPERIMENT, run_name(c), c, s, required_metrics(c)) for c in configs for s in seeds]


# ----------------------------------------------------------------------------- one target run


@dataclass
class TargetInputs:
    """What a target run needs besides its config and seed, resolved before it starts.

    ``train``/``test``: normalised images and labels; ``guide``: the condition's frozen guide (None
    without one); ``bank``: that guide's Gram bank over ``train`` (None: the guide runs per batch);
    ``references``: the trained and the untrained ResNet guide every run is probed against;
    ``valid``: the validation split held out from the training images (None without one).
    """

    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    guide: nn.Module | None
    bank: G.GuideBank | None
    references: dict[str, nn.Module]
    valid: tuple[torch.Tensor, torch.Tensor] | None = None


def target_data(c: Config) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """``(train, valid, test)`` of a target run, normalised images and labels (``valid`` None when
    the config holds out none; else the split :func:`untrainable.data.held_out_splits` draws)."""
    if not c.n_valid:
        train, test = load_image_data(c.dataset, c.n_train, c.n_test, c.data_seed, c.image_size)
        return train, None, test
    s = held_out_splits(c.dataset, c.n_train, c.n_valid, c.n_test, c.data_seed, c.image_size)
    return s.train.tensors(), s.valid.tensors(), s.test.tensors()


def resolve_inputs(profile: str, c: Config, seed: int, device: str = "auto",
                   train_missing: bool | None = None) -> TargetInputs:
    """Load the data and resolve the guides and the bank of run (``c``, ``seed``) in ``profile``.

    A trained guide comes from the store of ``profile`` (its weights from the cache; a missing
    ``full`` guide record is trained only with ``train_missing``), an untrained one from the seed.
    """
    train, valid, test = target_data(c)
    ref = c.reference_guide
    references = {"trained": trained_guide(profile, ref, device, train_missing=train_missing)[0],
                  "untrained": untrained_guide(ref, seed)}
    role, trained, _ = CONDITIONS[c.condition]
    if role is None:
        return TargetInputs(train, test, None, None, references, valid)
    if c.guide == ref:
        guide = references["trained" if trained else "untrained"]
    else:
        guide = trained_guide(profile, c.guide, device, train_missing=train_missing)[0] if trained else \
            untrained_guide(c.guide, seed)
    bank = None
    if c.guide_bank != "none":
        dev = resolve_device(device)
        x_train = train[0].to(dev)
        layers = G.guidance_layers(guide.to(dev), x_train[:2])
        bank = guide_bank(bank_path(profile, guide_id(c.guide, trained, seed), c.guide_bank, x_train), guide, layers,
                          x_train, c.guide_bank)
    return TargetInputs(train, test, guide, bank, references, valid)


class TaskLossMeter:
    """A ``loss_fn`` that passes ``loss_fn`` through and sums, over an epoch, the task part of the loss.

    The guidance loss logs the cross-entropy of each guided step; an unguided step's loss (no guide,
    or past ``guide_steps``) is all cross-entropy. ``epoch_mean()`` is the epoch's mean training
    cross-entropy without the guidance term, weighted by batch size as ``train_loss`` is.
    """

    def __init__(self, loss_fn: LossFn, guidance: G.GuidanceLoss | None) -> None:
        self.loss_fn, self.guidance = loss_fn, guidance
        self.total, self.n = 0.0, 0

    def __call__(self, model: nn.Module, x: Any, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logged = len(self.guidance.log) if self.guidance is not None else 0
        loss, logits = self.loss_fn(model, x, y)
        guided = self.guidance is not None and len(self.guidance.log) > logged
        if guided:  # the guidance log holds the global batch's (several processes: untrainable.distributed)
            total, n = self.guidance.log[-1]["task"] * self.guidance.log[-1]["n"], self.guidance.log[-1]["n"]
        else:
            total, n = D.all_sum([loss.item() * len(y), len(y)])
        self.total += total
        self.n += n
        return loss, logits

    def epoch_mean(self) -> float:
        """The mean since the last call, then start over."""
        mean, self.total, self.n = self.total / max(self.n, 1), 0.0, 0
        return mean


def train_target(c: Config, seed: int, device: torch.device, checkpoint: Path, inputs: TargetInputs
                 ) -> dict[str, Any]:
    """Train one target under one condition; return metrics and a per-epoch history with alignment.

    Each history row carries ``cka_trained``/``cka_untrained`` (per mapped pair, on the probe set),
    ``test_correct`` at every epoch a checkpoint rule can pick (:func:`untrainable.train.rule_pickable`),
    ``train_task_loss`` (the cross-entropy part of ``train_loss``) and, for guided epochs,
    ``guidance_term`` (mean ``Σ (1 - CKA)`` over the epoch's guided steps), ``pair_distance`` (per
    pair) and ``guided_steps``. All of it is checkpointed each epoch, with the CKA at initialisation.
    ``cka_grid`` holds every guide layer against every target layer, at initialisation and at the end.
    """
    generator = seed_everything(seed)
    model = build_target(c).to(device)  # same initialisation for every condition of a seed
    (x_train, y_train), (x_test, y_test) = inputs.train, inputs.test
    example = x_train[:2].to(device)
    x_probe = x_test[stratified_indices(y_test, min(c.probe_n, len(y_test)), 1)].to(device)
    probes = IP.probes_for(model, inputs.references, example, x_probe, device)
    grids = IP.grid_probes(model, inputs.references, example, x_probe, device)

    guidance = None
    if inputs.guide is not None:
        guidance = G.GuidanceLoss(model, inputs.guide.to(device), example, alpha=c.alpha, distance=c.distance,
                                  guide_steps=c.guide_steps, bank=inputs.bank, gram_precision=c.gram_precision)
    meter = TaskLossMeter(guidance or cross_entropy_loss, guidance)
    steps_per_epoch = math.ceil(len(y_train) / c.batch_size)

    def start_epoch(epoch: int, _: nn.Module) -> None:
        if guidance is not None:  # the step count decides when "first steps only" guidance stops
            guidance.step, guidance.log = (epoch - 1) * steps_per_epoch, []

    def end_epoch(epoch: int, m: nn.Module) -> dict[str, Any]:
        undefined: dict[str, dict[str, str]] = {}
        row: dict[str, Any] = {f"cka_{k}": v for k, v in IP.measure(probes, m, undefined).items()}
        if undefined:
            row["cka_undefined"] = undefined
        row["train_task_loss"] = meter.epoch_mean()
        if guidance is not None and guidance.log:
            means = guidance.epoch_means(steps_per_epoch)[-1]
            row.update(guidance_term=means["guidance"], pair_distance=means["terms"], guided_steps=means["steps"])
        return row

    undefined: dict[str, dict[str, str]] = {}
    state: dict[str, Any] = {"initial_cka": IP.measure(probes, model, undefined), "initial_cka_grid": IP.cka_grid(grids, model)}
    if undefined:
        state["initial_cka_undefined"] = undefined
    train_inputs = G.IndexedInputs(x_train) if inputs.bank is not None else x_train
    settings = FitSettings(epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, weight_decay=c.weight_decay,
                           optimizer=c.optimizer, schedule=c.schedule, precision=c.precision)
    history = fit(model, (train_inputs, y_train), (x_test, y_test), settings, generator=generator, device=device,
                  loss_fn=meter, checkpoint=checkpoint, desc=f"{c.target}/{c.condition} seed {seed}", progress=False,
                  on_epoch_start=start_epoch, on_epoch_end=end_epoch, state=state, valid=inputs.valid,
                  augment=random_crop_flip if c.augment else None, keep_test_correct=True)
    last = history[-1]
    metrics = {k: last[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    metrics.update(
        best_test_acc=max(h["test_acc"] for h in history),
        min_test_loss=min(h["test_loss"] for h in history),
        min_test_loss_epoch=int(np.argmin([h["test_loss"] for h in history])) + 1,
        parameters=count_parameters(model),
        guided_steps=0 if guidance is None else min(c.guide_steps or 10**12, c.epochs * steps_per_epoch),
        test_correct=correct_string(model, x_test, y_test, device, precision=c.precision),
        mean_cka_trained=G.mean_defined(last["cka_trained"]),
        mean_cka_untrained=G.mean_defined(last["cka_untrained"]),
    )
    if inputs.valid is not None:
        metrics.update(validation_metrics(history))
    out = {"metrics": metrics, "history": history, "initial_cka": state["initial_cka"],
           "probe_pairs": {k: p.pairs for k, p in probes.items()},
           "cka_grid": {"initial": state["initial_cka_grid"], "final": IP.cka_grid(grids, model)}}
    if "initial_cka_undefined" in state:
        out["initial_cka_undefined"] = state["initial_cka_undefined"]
    if guidance is not None:
        out["pairs"] = guidance.pairs
    return out


def validation_metrics(history: list[dict[str, Any]]) -> dict[str, Any]:
    """What the validation split says: the lowest validation loss (the learning rate and alpha are
    chosen on it), and the checkpoint the paper's code keeps, the epoch of lowest validation loss,
    with its test accuracy and loss (``checkpoint_*``: the number the paper reports)."""
    best = history[best_epoch(history, "valid_loss") - 1]
    return {"min_valid_loss": best["valid_loss"], "valid_loss": history[-1]["valid_loss"],
            "valid_acc": history[-1]["valid_acc"], "checkpoint_epoch": best["epoch"],
            "checkpoint_valid_acc": best["valid_acc"], "checkpoint_test_acc": best["test_acc"],
            "checkpoint_test_loss": best["test_loss"]}


def run_targets(profile: str, configs: list[Config], seeds: Iterable[int] | None = None, device: str = "auto",
                force: bool = False, train_missing: bool | None = None, experiment: str = EXPERIMENT,
                name: Callable[[Config], str] = run_name) -> list[dict[str, Any]]:
    """The record of every config for every seed in the store of ``profile`` (under ``experiment``,
    named by ``name``): stored ones are loaded; for a missing one (when training is allowed) the
    inputs are resolved, then it trains."""
    seeds = default_seeds(profile) if seeds is None else check_seeds(tuple(seeds))
    return [run_or_load_resolved(experiment, profile, name(c), c, s, train_target,
                                 lambda c=c, s=s: {"inputs": resolve_inputs(profile, c, s, device, train_missing)},
                                 device=device, force=force, train_missing=train_missing,
                                 required_metrics=required_metrics(c))
            for c in configs for s in seeds]


def guide_records(profile: str, configs: list[Config], device: str = "auto",
                  train_missing: bool | None = None) -> dict[str, dict[str, Any]]:
    """The trained guides' records of a chapter, keyed by record name (:func:`~.image_guides.guide_name`).

    A stored record is read without its weights (a reader of the book needs no guide); a missing
    one is trained when allowed, its weights cached.
    """
    out = {}
    for g in _trained_guides(configs):
        train_fn = functools.partial(train_guide, weights=guide_weights_path(profile, g))
        out[guide_name(g)] = run_or_load(GUIDE_EXPERIMENT, profile, guide_name(g), g, 0, train_fn, device=device,
                                         train_missing=train_missing, required_metrics=GUIDE_METRICS)
    return out


# ----------------------------------------------------------------------------- describing the models


def describe_models(configs: list[Config]) -> list[dict[str, Any]]:
    """Each target and guide of a chapter: parameters and the number of recorded layers."""
    rows, seen = [], set()
    x = torch.zeros(2, 3, configs[0].image_size, configs[0].image_size)
    for c in configs:
        models = [("target", c.target, lambda: build_target(c))]
        if c.guide is not None:
            models.append(("guide", c.guide.family, lambda: build_guide(c.guide, c.guide.num_classes)))
        for role, name, build in models:
            if name in seen:
                continue
            seen.add(name)
            m = build()
            rows.append({"role": role, "model": name, "parameters": count_parameters(m),
                         "recorded layers": len(G.guidance_layers(m, x))})
    return rows


def layer_table(guide: nn.Module, target: nn.Module, example: torch.Tensor) -> list[dict[str, Any]]:
    """The recorded layers of a guide and a target and the even mapping between them, as rows."""
    g_layers, t_layers = G.guidance_layers(guide, example), G.guidance_layers(target, example)
    mods_g, mods_t = dict(guide.named_modules()), dict(target.named_modules())
    pairs = dict(G.even_mapping(len(g_layers), len(t_layers)))
    rows = []
    for i, g in enumerate(g_layers):
        j = pairs.get(i)
        rows.append({"guide index": i, "guide layer": g, "guide kind": type(mods_g[g]).__name__,
                     "target index": "" if j is None else j, "target layer": t_layers[j] if j is not None else "",
                     "target kind": type(mods_t[t_layers[j]]).__name__ if j is not None else ""})
    return rows
