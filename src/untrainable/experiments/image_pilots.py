"""Appendix 92: pilot runs that choose the image regimes of chapters 04 and 05 (issue 15, step 1).

Guidance can only be tested where the unguided control shows the failure the paper's method is
meant to cure, and where the guide has something to give. This module trains the controls and
the guides *alone* (never a guided run), so that the regime of each claim is chosen before any
guided result exists:

* the Deep FCN (width x depth, batch norm and dropout as :func:`untrainable.models.deep_fcn`) on
  small training sets for many epochs: does it overfit, or fail to train where a shallow FCN of the
  same width trains?
* the Wide FCN on the same sizes: does it overfit?
* the plain ConvNet (a ResNet stack of basic blocks without skips) and its residual twin, trained
  to a plateau: does the plain net fall clearly short of its twin?
* the guides, trained as a practitioner would (random crop and flip, a cosine schedule, the
  best-validation checkpoint) on the targets' training images, and one on every training image
  (a separate condition: it brings data as well as bias).

Every run holds out a validation split from the training images (the same images for every run,
never the test split); its learning rate is chosen on validation loss, its checkpoint by
validation accuracy. The test split is for reporting only: per epoch on ``n_test_curve`` images
(the curves), and once at the end, on ``n_test`` images, for the restored best-validation weights.
The ``full`` grid trains in bf16 (``precision="bf16"``, native on the book's CPU); ``quick`` and ``paper``
in bf16 where the CPU multiplies bf16 natively (``precision="auto"``, the config's default).

Final metrics: ``train_*``, ``valid_*``, ``test_*`` are the last epoch's (the curves, as the store
requires); ``best_epoch``, ``best_valid_*`` and ``best_test_*`` are the best-validation checkpoint's,
``best_test_*`` on the whole ``n_test`` test set. How a regime is chosen from these records:
:mod:`.pilot_regimes`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from untrainable.config_checks import check_fields
from untrainable.data import held_out_splits
from untrainable.experiments import PlannedRun, checked_seeds, select_cells, shell_parser, shell_seeds
from untrainable.mimic import random_crop_flip
from untrainable.models import ResNet, count_parameters, deep_fcn, resnet18, wide_fcn
from untrainable.precision import PRECISIONS, autocast, channels_last
from untrainable.profiles import check_profile, preset_table, replace_preset
from untrainable.results import run_or_load
from untrainable.runtime import log, resolve_device, seed_everything, set_threads
from untrainable.train import (BEST_BY, OPTIMIZERS, SCHEDULES, FitSettings, best_epoch, cross_entropy, evaluate, fit,
                               make_optimizer)

__all__ = ["EXPERIMENT", "MODELS", "GROUPS", "PilotConfig", "Preset", "CHAPTER", "PRESETS", "SMOKE", "DEFAULT_SEEDS",
           "REQUIRED_METRICS",
           "preset", "run_name", "configs", "select", "planned_runs", "PilotData", "pilot_data", "build_model",
           "train_one", "run", "estimate_seconds", "estimate_table", "main"]

EXPERIMENT = "image_pilots"
MODELS = ("deep_fcn", "wide_fcn", "plain_cnn", "residual_cnn", "resnet18")
#: The groups of runs, in the order a shell run trains them (``--cells`` takes these or run names).
GROUPS = ("deep_fcn", "shallow_fcn", "wide_fcn", "convnets", "convnets_aug", "deeper_convnets", "convnets_long",
          "guides", "guide_all")
#: One seed per pilot cell; a second seed is added where a regime's choice hinges on it.
DEFAULT_SEEDS = (0,)
#: What appendix 92 reads of a pilot record: the last epoch, the restored best checkpoint and the
#: validation numbers a regime is chosen by (:mod:`.pilot_regimes`).
REQUIRED_METRICS = ("train_acc", "train_loss", "valid_acc", "valid_loss", "test_acc", "test_loss", "best_epoch",
                    "best_valid_acc", "best_test_acc", "min_valid_loss", "parameters")


@dataclass(frozen=True)
class PilotConfig:
    """One pilot run apart from its seed; every field is part of the record key."""

    group: str  # a name of GROUPS
    model: str  # a name of MODELS
    width: int  # FCN units per layer, or the first conv stage's channels
    depth: int = 0  # FCN blocks (0 for the conv nets)
    layers: tuple[int, ...] = ()  # basic blocks per stage of the plain and residual ConvNets
    dropout: float = 0.0  # Deep FCN dropout after every block
    n_train: int | None = 5000  # None: every training image not held out for validation
    n_valid: int = 1000  # held out from the training images, the same for every run
    n_test: int | None = None  # the best checkpoint's test set (None: all 10,000)
    n_test_curve: int = 1000  # the per-epoch test curve
    epochs: int = 60
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    schedule: str = "constant"
    weight_decay: float = 0.0
    augment: bool = False  # random crop (padding 4) and horizontal flip per batch
    best_by: str = "valid_acc"  # the checkpoint restored at the end (untrainable.train.BEST_BY)
    data_seed: int = 0
    precision: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self, positive=("width", "n_train", "n_valid", "n_test", "n_test_curve", "epochs", "batch_size",
                                     "lr"),
                     non_negative=("depth", "weight_decay", "data_seed"), fractions=("dropout",),
                     choices={"group": GROUPS, "model": MODELS, "optimizer": OPTIMIZERS, "schedule": SCHEDULES,
                              "best_by": BEST_BY, "precision": PRECISIONS})


@dataclass(frozen=True)
class Preset:
    """The pilot grid of one profile: the sizes, depths, widths and learning rates each group tries.

    The split sizes and the precision left None keep :class:`PilotConfig`'s defaults.
    """

    sizes: tuple[int, ...]  # training images of the FCN cells
    fcn_width: int
    deep_lrs: dict[int, tuple[float, ...]]  # the learning rates tried at each Deep FCN depth
    shallow_depth: int
    shallow_lrs: tuple[float, ...]
    fcn_epochs: int
    fcn_dropout: float
    wide_width: int
    wide_depth: int
    wide_lrs: tuple[float, ...]
    conv_width: int
    conv_layers: tuple[int, ...]
    conv_sizes: tuple[int, ...]  # training images of the ConvNet cells
    conv_epochs: int
    plain_lrs: tuple[float, ...]
    residual_lrs: tuple[float, ...]
    conv_aug_lrs: tuple[float, ...]
    deeper_width: int
    deeper_layers: tuple[int, ...]
    deeper_lrs: tuple[float, ...]
    long_epochs: int
    guide_width: int
    guide_epochs: dict[int, int]  # one guide per training-set size: its epochs
    guide_lr: float
    guide_weight_decay: float
    guide_all_width: int
    guide_all_epochs: int
    guide_all_n: int | None  # the guide trained on every image (None: all not held out)
    n_valid: int | None = None
    n_test: int | None = None
    n_test_curve: int | None = None
    precision: str | None = None


CHAPTER = "appendix 92 (image pilots)"
_FULL = Preset(
    sizes=(2000, 5000), fcn_width=512, deep_lrs={12: (1e-3, 1e-4), 24: (1e-3, 3e-4, 1e-4)}, shallow_depth=3,
    shallow_lrs=(1e-3, 1e-4), fcn_epochs=60, fcn_dropout=0.1, wide_width=1024, wide_depth=3, wide_lrs=(1e-3, 1e-4),
    conv_width=16, conv_layers=(3, 4, 6, 3), conv_sizes=(5000,), conv_epochs=30, plain_lrs=(1e-3, 3e-4),
    residual_lrs=(1e-3, 3e-4), conv_aug_lrs=(1e-3,), deeper_width=8, deeper_layers=(6, 8, 12, 6), deeper_lrs=(1e-3,),
    long_epochs=60, guide_width=32, guide_epochs={2000: 40, 5000: 30}, guide_lr=0.05, guide_weight_decay=5e-4,
    guide_all_width=16, guide_all_epochs=15, guide_all_n=None, precision="bf16")
_PAPER_LRS = (1e-3, 3e-4, 1e-4, 3e-5, 1e-5)
PRESETS: dict[str, Preset] = preset_table(CHAPTER, {
    "quick": replace_preset(
        CHAPTER, _FULL, sizes=(256, 512), n_valid=256, n_test=512, n_test_curve=256, fcn_width=64,
        deep_lrs={8: (1e-3,)}, shallow_depth=2, fcn_epochs=20, shallow_lrs=(1e-3,), wide_width=128,
        wide_lrs=(1e-3,), conv_width=4, conv_layers=(1, 1, 1, 1), conv_sizes=(256,), conv_epochs=2,
        plain_lrs=(1e-3,), residual_lrs=(1e-3,), conv_aug_lrs=(1e-3,), deeper_width=4, deeper_layers=(2, 2, 2, 2),
        deeper_lrs=(1e-3,), long_epochs=3, guide_width=4, guide_epochs={256: 2, 512: 2}, guide_all_width=4,
        guide_all_epochs=1, guide_all_n=1024, precision=None),
    "full": _FULL,
    "paper": replace_preset(
        CHAPTER, _FULL, deep_lrs={12: _PAPER_LRS, 24: _PAPER_LRS}, shallow_lrs=_PAPER_LRS, wide_lrs=_PAPER_LRS,
        plain_lrs=(3e-3, 1e-3, 3e-4, 1e-4, 3e-5), residual_lrs=(3e-3, 1e-3, 3e-4, 1e-4, 3e-5), precision=None),
})
#: Overrides (checked by :func:`~untrainable.profiles.replace_preset`): a tiny slice of any profile with the
#: same runs, for tests.
SMOKE: dict[str, Any] = {"sizes": (64, 96), "n_valid": 32, "n_test": 64, "n_test_curve": 32, "fcn_epochs": 2,
                         "conv_sizes": (64,), "conv_epochs": 1, "guide_epochs": {64: 1, 96: 1}, "guide_all_epochs": 1,
                         "guide_all_n": 128}


def preset(profile: str, smoke: bool = False) -> Preset:
    """The profile's grid; ``smoke`` shrinks it to a tiny slice of the same runs (for tests)."""
    p = PRESETS[check_profile(profile)]
    return replace_preset(CHAPTER, p, **SMOKE) if smoke else p


def run_name(c: PilotConfig) -> str:
    """A readable name: model, size, training images and learning rate (the key tells runs apart)."""
    shape = f"{c.depth}x{c.width}" if c.depth else f"w{c.width}"
    blocks = f"-b{sum(c.layers)}" if c.layers and c.group != "convnets" else ""
    aug = "-aug" if c.augment and c.model != "resnet18" else ""
    longer = f"-e{c.epochs}-{c.schedule}" if c.group == "convnets_long" else ""
    return f"{c.model}-{shape}{blocks}-n{c.n_train or 'all'}-lr{c.lr:g}{aug}{longer}"


def _fcn_runs(p: Preset, splits: dict[str, Any]) -> list[PilotConfig]:
    runs = [PilotConfig("deep_fcn", "deep_fcn", p.fcn_width, d, dropout=p.fcn_dropout, n_train=n,
                        epochs=p.fcn_epochs, lr=lr, **splits)
            for d, lrs in p.deep_lrs.items() for n in p.sizes for lr in lrs]
    runs += [PilotConfig("shallow_fcn", "deep_fcn", p.fcn_width, p.shallow_depth, dropout=p.fcn_dropout,
                         n_train=n, epochs=p.fcn_epochs, lr=lr, **splits)
             for n in p.sizes for lr in p.shallow_lrs]
    runs += [PilotConfig("wide_fcn", "wide_fcn", p.wide_width, p.wide_depth, n_train=n, epochs=p.fcn_epochs,
                         lr=lr, **splits) for n in p.sizes for lr in p.wide_lrs]
    return runs


def _conv_runs(p: Preset, splits: dict[str, Any]) -> list[PilotConfig]:
    """The plain ConvNet and its residual twin: as first piloted, trained with random crop and flip
    (as practitioners train ConvNets), and twice as deep at half the width."""
    twins = ("plain_cnn", "residual_cnn")
    runs = [PilotConfig("convnets", model, p.conv_width, layers=p.conv_layers, n_train=n, epochs=p.conv_epochs, lr=lr,
                        **splits)
            for model, lrs in zip(twins, (p.plain_lrs, p.residual_lrs)) for n in p.conv_sizes for lr in lrs]
    runs += [PilotConfig("convnets_aug", model, p.conv_width, layers=p.conv_layers, n_train=n, epochs=p.conv_epochs,
                         lr=lr, augment=True, **splits)
             for model in twins for n in p.conv_sizes for lr in p.conv_aug_lrs]
    runs += [PilotConfig("deeper_convnets", model, p.deeper_width, layers=p.deeper_layers, n_train=n,
                         epochs=p.conv_epochs, lr=lr, augment=True, **splits)
             for model in twins for n in p.conv_sizes for lr in p.deeper_lrs]
    # the 34-layer crop-and-flip cell again, twice as long with the authors' step schedule, to a plateau
    runs += [PilotConfig("convnets_long", model, p.conv_width, layers=p.conv_layers, n_train=n,
                         epochs=p.long_epochs, lr=lr, augment=True, schedule="step", **splits)
             for model in twins for n in p.conv_sizes for lr in p.conv_aug_lrs]
    return runs


def _guide_runs(p: Preset, splits: dict[str, Any]) -> list[PilotConfig]:
    practitioner = dict(optimizer="sgd", schedule="cosine", lr=p.guide_lr, weight_decay=p.guide_weight_decay,
                        augment=True, **splits)
    runs = [PilotConfig("guides", "resnet18", p.guide_width, n_train=n, epochs=epochs, **practitioner)
            for n, epochs in p.guide_epochs.items()]
    runs.append(PilotConfig("guide_all", "resnet18", p.guide_all_width, n_train=p.guide_all_n,
                            epochs=p.guide_all_epochs, **practitioner))
    return runs


def configs(profile: str, smoke: bool = False) -> list[PilotConfig]:
    """The pilot runs of ``profile``, in :data:`GROUPS` order (``smoke``: a tiny slice of the same runs)."""
    p = preset(profile, smoke)
    given = {"n_valid": p.n_valid, "n_test": p.n_test, "n_test_curve": p.n_test_curve, "precision": p.precision}
    splits = {k: v for k, v in given.items() if v is not None}  # the splits (and precision); None: the config's
    return _fcn_runs(p, splits) + _conv_runs(p, splits) + _guide_runs(p, splits)


def select(runs: list[PilotConfig], cells: Iterable[str] | None) -> list[PilotConfig]:
    """The runs named by ``cells`` (group names or run names; None: all), in grid order."""
    return select_cells(runs, cells, GROUPS, run_name, lambda c: c.group)


def planned_runs(profile: str, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """Every pilot record of ``profile``: each run for each seed (default :data:`DEFAULT_SEEDS`)."""
    seeds = checked_seeds(seeds, DEFAULT_SEEDS)
    return [PlannedRun(EXPERIMENT, run_name(c), c, s, REQUIRED_METRICS) for c in configs(profile) for s in seeds]


# ----------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class PilotData:
    """Normalised images and labels: the training subset, the held-out validation split, the test
    images of the per-epoch curve and the test images of the final evaluation."""

    train: tuple[torch.Tensor, torch.Tensor]
    valid: tuple[torch.Tensor, torch.Tensor]
    test_curve: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


def pilot_data(c: PilotConfig) -> PilotData:
    """The splits of a run (:func:`untrainable.data.held_out_splits`): every size shares one
    validation split, and the per-epoch test curve is a class-balanced subset of the test images."""
    s = held_out_splits("cifar10", c.n_train, c.n_valid, c.n_test, c.data_seed)
    return PilotData(s.train.tensors(), s.valid.tensors(), s.test.subset(c.n_test_curve, seed=c.data_seed).tensors(),
                     s.test.tensors())


def build_model(c: PilotConfig) -> nn.Module:
    """The network of a pilot run, initialised from the current torch seed: ``"deep_fcn"`` the Deep FCN
    (:func:`~untrainable.models.deep_fcn`, ``depth`` x ``width`` with batch norm and dropout), ``"wide_fcn"``
    the Wide FCN (:func:`~untrainable.models.wide_fcn`), ``"plain_cnn"`` / ``"residual_cnn"`` a
    :class:`~untrainable.models.ResNet` of basic blocks ``layers`` without / with skips, ``"resnet18"`` the guide."""
    if c.model == "deep_fcn":
        return deep_fcn(width=c.width, depth=c.depth, first_width=None, dropout=c.dropout)
    if c.model == "wide_fcn":
        return wide_fcn(width=c.width, depth=c.depth)
    if c.model in ("plain_cnn", "residual_cnn"):
        return ResNet(c.layers, "basic", c.width, residual=c.model == "residual_cnn")
    if c.model == "resnet18":
        return resnet18(c.width)
    raise ValueError(f"unknown pilot model {c.model!r}: choose one of {', '.join(MODELS)}")


def _settings(c: PilotConfig) -> FitSettings:
    return FitSettings(epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, weight_decay=c.weight_decay,
                       optimizer=c.optimizer, schedule=c.schedule, precision=c.precision)


def train_one(c: PilotConfig, seed: int, device: torch.device, checkpoint: Path) -> dict[str, Any]:
    """Train one pilot run, restore its best-validation weights and evaluate them on the test set."""
    generator = seed_everything(seed)
    model = build_model(c)
    data = pilot_data(c)
    history = fit(model, data.train, data.test_curve, _settings(c), generator=generator, device=device,
                  checkpoint=checkpoint, desc=f"{run_name(c)} seed {seed}", valid=data.valid, best_by=c.best_by,
                  restore_best=True, augment=random_crop_flip if c.augment else None)
    best = history[best_epoch(history, c.best_by) - 1]
    final = evaluate(model, *data.test, device, precision=c.precision)
    last = history[-1]
    metrics = {k: last[k] for k in ("train_loss", "train_acc", "valid_loss", "valid_acc", "test_loss", "test_acc")}
    metrics.update(best_epoch=best["epoch"], best_valid_loss=best["valid_loss"], best_valid_acc=best["valid_acc"],
                   best_test_loss=final["loss"], best_test_acc=final["acc"],
                   min_valid_loss=min(h["valid_loss"] for h in history), parameters=count_parameters(model))
    return {"metrics": metrics, "history": history}


def run(profile: str = "quick", seeds: Iterable[int] | None = None, device: str = "auto", force: bool = False,
        smoke: bool = False, cells: Iterable[str] | None = None,
        train_missing: bool | None = None) -> list[dict[str, Any]]:
    """The record of every pilot run (or of those in ``cells``, see :func:`select`) for every seed."""
    seeds = checked_seeds(seeds, DEFAULT_SEEDS)
    records = []
    for c in select(configs(profile, smoke), cells):
        for s in seeds:
            log(f"{EXPERIMENT}/{run_name(c)} seed {s} ({profile})")
            records.append(run_or_load(EXPERIMENT, profile, run_name(c), c, s, train_one, device=device, force=force,
                                       train_missing=train_missing, required_metrics=REQUIRED_METRICS))
    return records


# ----------------------------------------------------------------------------- sizing the grid


def _seconds_per_step(model: nn.Module, c: PilotConfig, device: torch.device, steps: int) -> float:
    """Mean seconds of one training step on random inputs of the run's batch size (after one warm-up)."""
    opt = make_optimizer(model.parameters(), _settings(c))
    x, y = torch.randn(c.batch_size, 3, 32, 32), torch.randint(0, 10, (c.batch_size,))
    generator = torch.Generator().manual_seed(0)
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        xb = random_crop_flip(x, generator) if c.augment else x
        with autocast(device, c.precision):
            loss = cross_entropy(model(xb.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def estimate_seconds(c: PilotConfig, steps: int = 3, device: str = "cpu") -> dict[str, float]:
    """Seconds one run of ``c`` should take on this machine, from a few timed steps and one timed
    evaluation of 500 images: training steps, the per-epoch validation and test curves, the final test."""
    set_threads()
    dev = resolve_device(device)
    with torch.random.fork_rng():
        model = build_model(c).to(dev)
    channels_last(model, c.precision, dev)
    step = _seconds_per_step(model, c, dev, steps)
    x, y = torch.randn(500, 3, 32, 32), torch.randint(0, 10, (500,))
    t0 = time.perf_counter()
    evaluate(model, x, y, dev, precision=c.precision)
    per_image = (time.perf_counter() - t0) / 500
    n_train = c.n_train or 50_000 - c.n_valid
    steps_per_epoch = -(-n_train // c.batch_size)
    train_s = c.epochs * steps_per_epoch * step
    eval_s = per_image * (c.epochs * (c.n_valid + c.n_test_curve) + (c.n_test or 10_000))
    return {"step_s": step, "train_s": train_s, "eval_s": eval_s, "total_s": train_s + eval_s}


def estimate_table(profile: str, cells: Iterable[str] | None = None, seeds: Iterable[int] = DEFAULT_SEEDS,
                   steps: int = 3) -> list[dict[str, Any]]:
    """One row per planned run: group, name, seed count, measured step time and estimated minutes."""
    rows = []
    for c in select(configs(profile), cells):
        e = estimate_seconds(c, steps)
        rows.append({"group": c.group, "name": run_name(c), "seeds": len(tuple(seeds)), "step_ms": 1000 * e["step_s"],
                     "minutes": e["total_s"] / 60 * len(tuple(seeds))})
    return rows


def main(argv: list[str] | None = None) -> None:
    """Train the pilot runs from a shell (missing records are trained), or estimate their time.

    ``--cells`` takes group names (``deep_fcn``, ``convnets``, ...) or run names, so the grid can be
    split over parallel one-thread processes; records are shared and an interrupted run resumes.
    """
    parser = shell_parser("python -m untrainable.experiments.image_pilots", main.__doc__,
                          f"distinct seeds (default: {DEFAULT_SEEDS})")
    parser.add_argument("--cells", nargs="*", help="group or run names (default: every run)")
    parser.add_argument("--estimate", action="store_true", help="time a few steps of each run and print estimates")
    args = parser.parse_args(argv)
    seeds = shell_seeds(parser, args.seeds) or DEFAULT_SEEDS
    try:
        select(configs(args.profile), args.cells)
    except ValueError as err:
        parser.error(str(err))
    if args.estimate:
        rows = estimate_table(args.profile, args.cells, seeds)
        for r in rows:
            print(f"{r['group']:12s} {r['name']:40s} {r['step_ms']:7.0f} ms/step {r['minutes']:6.1f} min")
        print(f"total {sum(r['minutes'] for r in rows):.0f} one-thread minutes")
        return
    run(args.profile, seeds, args.device, cells=args.cells, train_missing=True)


if __name__ == "__main__":
    main()
