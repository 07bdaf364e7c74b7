"""Chapters 04-05: guidance on images (Subramaniam et al., 2024, the ImageNet table, at CIFAR-10 scale).

Targets: a Deep FCN and a Wide FCN (chapter 04), and a plain deep ConvNet, a ResNet stack with
every skip connection removed (chapter 05). Each is trained with no guide, with a trained ResNet-18
guide, and with an untrained (randomly initialised, frozen) one; chapter 04 adds the Deep FCN
guided for its first steps only ("guidance as initialisation") and guided by a second guide
family (a small plain CNN) for the error-consistency study.

Guides are trained once per profile by :func:`trained_guide` and cached under the cache folder
(their records, not their weights, are committed); an untrained guide is built from the run's
seed (``10_000 + seed``), so each seed has its own. Every run also measures, at the end of every
epoch and on a fixed probe set of test images, the linear CKA of each target layer with its mapped
layer of the trained and of the untrained ResNet-18 guide, so alignment can be compared across
conditions, including the unguided one.

A run is ``run_or_load(config, seed)``: stored records are loaded, missing ones trained (and resumed
from their per-epoch checkpoint after an interruption).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from untrainable import guidance as G
from untrainable.data import ImageData, load_cifar10, stratified_indices
from untrainable.models import ResNet, SmallCNN, count_parameters, deep_fcn, resnet18, resnet50, wide_fcn
from untrainable.paths import cache_root
from untrainable.profiles import check_profile
from untrainable.results import load_record, record_path, run_key, run_or_load
from untrainable.runtime import seed_everything, set_threads
from untrainable.train import FitSettings, cross_entropy_loss, fit

EXPERIMENT = "image_guidance"
GUIDE_EXPERIMENT = "guides"
DEFAULT_SEEDS = {"quick": (0, 1), "full": (0, 1, 2), "paper": (0, 1, 2, 3, 4)}
UNTRAINED_GUIDE_SEED = 10_000  # an untrained guide for run seed s is initialised from 10_000 + s

#: What each condition hands the target: (guide family, trained?, guided for the first steps only?)
CONDITIONS: dict[str, tuple[str | None, bool, bool]] = {
    "no_guide": (None, False, False),
    "trained_guide": ("resnet", True, False),
    "untrained_guide": ("resnet", False, False),
    "trained_guide_init": ("resnet", True, True),
    "small_cnn_guide": ("small_cnn", True, False),
}
PARTS = {
    "fcn": [("deep_fcn", c) for c in ("no_guide", "trained_guide", "untrained_guide", "trained_guide_init",
                                      "small_cnn_guide")] + [("wide_fcn", c) for c in ("no_guide", "trained_guide",
                                                                                      "untrained_guide")],
    "plain": [("plain_cnn", c) for c in ("no_guide", "trained_guide", "untrained_guide")],
}
TARGET_LABELS = {"deep_fcn": "Deep FCN", "wide_fcn": "Wide FCN", "plain_cnn": "plain deep ConvNet"}
CONDITION_LABELS = {"no_guide": "no guide", "trained_guide": "trained ResNet-18 guide",
                    "untrained_guide": "untrained ResNet-18 guide",
                    "trained_guide_init": "trained guide, first steps only",
                    "small_cnn_guide": "trained small-CNN guide"}


@dataclass(frozen=True)
class GuideConfig:
    """A guide network and how it is trained (when it is)."""

    family: str  # "resnet18" | "resnet50" | "small_cnn"
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


@dataclass(frozen=True)
class Config:
    """Everything that defines one target run apart from the seed."""

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


def _guide_configs(p: dict[str, Any]) -> dict[str, GuideConfig]:
    common = {k: p.get(k, d) for k, d in (("n_test", None), ("data_seed", 0), ("dataset", "cifar10"),
                                          ("image_size", 32))}
    common["n_train"] = p.get("guide_n_train", p.get("n_train"))
    return {
        "resnet": GuideConfig(family=p["resnet_family"], width=p["guide_width"], epochs=p["guide_epochs"], **common),
        "small_cnn": GuideConfig(family="small_cnn", channels=p["small_channels"], hidden=p["small_hidden"],
                                 epochs=p["guide_epochs"], **common),
    }


#: Sizes and lengths per profile. ``full`` is what 2 CPU cores allow in about an hour per chapter.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(n_train=768, n_test=500, epochs=3, batch_size=128, guide_steps=6, probe_n=128,
                  guide_n_train=1000, guide_epochs=4, guide_width=8, resnet_family="resnet18",
                  small_channels=(8, 16, 32), small_hidden=64,
                  fcn_depth=8, fcn_width=64, fcn_first_width=128, wide_width=256, wide_depth=3,
                  plain_layers=(1, 1, 1, 1), plain_width=8),
    "full": dict(n_train=3000, n_test=2000, epochs=20, batch_size=256, guide_steps=150, probe_n=256,
                 guide_n_train=10000, guide_epochs=6, guide_width=16, resnet_family="resnet18",
                 small_channels=(32, 64, 128), small_hidden=256,
                 fcn_depth=20, fcn_width=256, fcn_first_width=512, wide_width=1024, wide_depth=3,
                 plain_layers=(3, 4, 6, 3), plain_width=8, plain_epochs=10, plain_n_train=2000),
    "paper": dict(n_train=None, n_test=None, epochs=100, batch_size=256, guide_steps=300, probe_n=256,
                  guide_n_train=None, guide_epochs=100, guide_width=64, resnet_family="resnet18",
                  small_channels=(32, 64, 128), small_hidden=256,
                  fcn_depth=48, fcn_width=1024, fcn_first_width=2048, wide_width=8192, wide_depth=3,
                  plain_layers=(3, 4, 6, 3), plain_width=64),
}
SMOKE = dict(n_train=128, n_test=64, epochs=1, guide_n_train=128, guide_epochs=1, guide_steps=1, probe_n=32,
             fcn_depth=3, fcn_width=16,
             fcn_first_width=None, wide_width=32, plain_layers=(1, 1, 1, 1), plain_width=4, guide_width=4,
             small_channels=(4, 8), small_hidden=16)


def configs(profile: str, part: str = "fcn", smoke: bool = False, **overrides: Any) -> list[Config]:
    """The runs of one chapter (``part`` "fcn" or "plain") in a profile.

    ``overrides`` replace preset values, e.g. ``dataset="imagefolder:/data/imagenette2", image_size=224,
    num_classes=10`` for readers with Imagenette and a GPU.
    """
    p = dict(PRESETS[check_profile(profile)])
    if smoke:
        p.update(SMOKE)
    p.update(overrides)
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}: choose one of {', '.join(PARTS)}")
    guides = _guide_configs(p)
    if part == "plain" and profile == "paper" and "resnet_family" not in overrides:
        guides["resnet"] = replace(guides["resnet"], family="resnet50")  # the paper's guide for the plain net
        p["plain_block"] = "bottleneck"
    epochs = p.get("plain_epochs", p["epochs"]) if part == "plain" else p["epochs"]
    if part == "plain":
        p["n_train"] = p.get("plain_n_train", p["n_train"])
    fields = {f.name for f in dataclasses.fields(Config)}
    base = {k: v for k, v in p.items() if k in fields and k not in ("guide_steps", "epochs")}
    out = []
    for target, condition in PARTS[part]:
        family, _, init_only = CONDITIONS[condition]
        out.append(Config(target=target, condition=condition, guide=guides[family] if family else None,
                          guide_steps=p["guide_steps"] if init_only else None, epochs=epochs,
                          reference_guide=guides["resnet"], **base))
    return out


def _log(message: str) -> None:
    """Progress lines for long background runs (``UNTRAINABLE_LOG=1``)."""
    if os.environ.get("UNTRAINABLE_LOG") == "1":
        from datetime import datetime, timezone

        print(f"{datetime.now(timezone.utc):%H:%M:%S} {message}", flush=True)


# ----------------------------------------------------------------------------- data


def load_image_folder(spec: str, train: bool, image_size: int, n: int | None, seed: int) -> ImageData:
    """An ImageFolder dataset (ImageNet, Imagenette: ``<root>/train/<class>/*.JPEG``, ``<root>/val/...``).

    Images are resized (shorter side ``image_size·8/7``), centre-cropped to ``image_size`` and held
    in memory as uint8, a class-balanced subset of ``n`` when ``n`` is given.
    """
    from torchvision import datasets, transforms

    root = Path(spec.split(":", 1)[1]).expanduser()
    folder = root / ("train" if train else "val")
    if not folder.is_dir():
        raise FileNotFoundError(f"ImageFolder dataset: {folder} does not exist (expected {root}/train and {root}/val)")
    tf = transforms.Compose([transforms.Resize(image_size * 8 // 7), transforms.CenterCrop(image_size),
                             transforms.PILToTensor()])
    ds = datasets.ImageFolder(str(folder), transform=tf)
    labels = torch.tensor(ds.targets)
    idx = stratified_indices(labels, n, seed) if n is not None and n < len(labels) else torch.arange(len(labels))
    images = torch.stack([ds[int(i)][0] for i in idx])
    return ImageData(images, labels[idx], tuple(ds.classes), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def load_data(dataset: str, n_train: int | None, n_test: int | None, data_seed: int, image_size: int = 32):
    """``((x_train, y_train), (x_test, y_test))``, normalised float32 tensors."""
    if dataset == "cifar10":
        train = load_cifar10(train=True).subset(n_train, seed=data_seed)
        test = load_cifar10(train=False).subset(n_test, seed=data_seed)
    elif dataset.startswith("imagefolder:"):
        train = load_image_folder(dataset, True, image_size, n_train, data_seed)
        test = load_image_folder(dataset, False, image_size, n_test, data_seed)
    else:
        raise ValueError(f"unknown dataset {dataset!r}: use cifar10 or imagefolder:<path>")
    return (train.normalized(), train.labels), (test.normalized(), test.labels)


def _data(c: Config | GuideConfig):
    return load_data(c.dataset, c.n_train, c.n_test, c.data_seed, c.image_size)


# ----------------------------------------------------------------------------- models


def build_target(c: Config) -> nn.Module:
    """The target network of a run."""
    in_features = 3 * c.image_size * c.image_size
    if c.target == "deep_fcn":
        return deep_fcn(in_features, c.fcn_width, c.fcn_depth, c.fcn_first_width, c.num_classes, c.fcn_dropout)
    if c.target == "wide_fcn":
        return wide_fcn(in_features, c.wide_width, c.wide_depth, c.num_classes)
    if c.target == "plain_cnn":
        return ResNet(c.plain_layers, c.plain_block, c.plain_width, c.num_classes, image_size=c.image_size,
                      residual=False)
    raise ValueError(f"unknown target {c.target!r}: choose deep_fcn, wide_fcn or plain_cnn")


def build_guide(g: GuideConfig, num_classes: int = 10) -> nn.Module:
    """A guide network (initialised from the current torch seed)."""
    if g.family == "resnet18":
        return resnet18(g.width, num_classes, g.image_size)
    if g.family == "resnet50":
        return resnet50(g.width, num_classes, g.image_size)
    if g.family == "small_cnn":
        return SmallCNN(channels=g.channels, hidden=g.hidden, num_classes=num_classes, image_size=g.image_size)
    raise ValueError(f"unknown guide family {g.family!r}: choose resnet18, resnet50 or small_cnn")


def correct_string(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> str:
    """Which test images the model gets right, as a string of 0/1 (for error consistency)."""
    from untrainable.runtime import eval_mode

    out = []
    with torch.no_grad(), eval_mode(model):
        for s in range(0, len(y), 1000):
            out.append(model(x[s:s + 1000].to(device)).argmax(1).cpu() == y[s:s + 1000])
    return "".join("1" if v else "0" for v in torch.cat(out).tolist())


# ----------------------------------------------------------------------------- guides


def guide_weights_path(profile: str, g: GuideConfig) -> Path:
    return cache_root() / "guides" / profile / f"{g.family}-{run_key(GUIDE_EXPERIMENT, g, 0)}.pt"


def _train_guide(g: GuideConfig, seed: int, device: torch.device, checkpoint: Path, weights: Path) -> dict[str, Any]:
    generator = seed_everything(seed)
    model = build_guide(g)
    train, test = _data(g)
    settings = FitSettings(epochs=g.epochs, batch_size=g.batch_size, lr=g.lr, weight_decay=g.weight_decay,
                           optimizer=g.optimizer)
    history = fit(model, train, test, settings, generator=generator, device=device, checkpoint=checkpoint,
                  desc=f"guide {g.family}")
    weights.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, weights)
    last = history[-1]
    metrics = {k: last[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    metrics.update(parameters=count_parameters(model), test_correct=correct_string(model, *test, device))
    return {"metrics": metrics, "history": history}


def trained_guide(profile: str, g: GuideConfig, device: str = "auto", force: bool = False
                  ) -> tuple[nn.Module, dict[str, Any]]:
    """The trained guide of a profile and its record: loaded from the cache, else trained once.

    The weights live in the cache (never committed); the record (accuracy, history, which test
    images it gets right) in the results store. A record without weights (a fresh clone) retrains.
    """
    weights = guide_weights_path(profile, g)

    def train_fn(c, seed, dev, checkpoint):
        return _train_guide(c, seed, dev, checkpoint, weights)

    record = run_or_load(GUIDE_EXPERIMENT, profile, g.family, g, 0, train_fn, device=device,
                         force=force or not weights.is_file())
    model = build_guide(g)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return G.freeze(model), record


def untrained_guide(g: GuideConfig, seed: int) -> nn.Module:
    """A randomly initialised, frozen guide for run seed ``seed`` (the global RNG is left untouched)."""
    with torch.random.fork_rng():
        torch.manual_seed(UNTRAINED_GUIDE_SEED + seed)
        return G.freeze(build_guide(g))


_BANKS: dict[str, G.GuideBank] = {}


def guide_bank(profile: str, key: str, guide: nn.Module, layers: list[str], x_train: torch.Tensor,
               mode: str) -> G.GuideBank:
    """The guide's bank over the training set: kept in memory (one at a time) and on disk in the cache."""
    import hashlib

    sample = x_train[:: max(1, len(x_train) // 64)].contiguous().cpu().numpy().tobytes()
    name = f"{key}-{mode}-{len(x_train)}-{hashlib.sha1(sample).hexdigest()[:10]}"  # which guide, which images
    if name in _BANKS:
        return _BANKS[name]
    _BANKS.clear()
    path = cache_root() / "banks" / profile / f"{name}.pt"
    if path.is_file():
        bank = torch.load(path, weights_only=False)
    else:
        bank = G.GuideBank(guide, layers, x_train, mode=mode, memory_gb=2.0)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(bank, path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)
    _BANKS[name] = bank
    return bank


# ----------------------------------------------------------------------------- one target run


def _guide_for(c: Config, seed: int, profile: str, device: str, trained: bool, g: GuideConfig):
    """(guide, identity key) for a run: a trained guide is shared, an untrained one is per seed.

    The global random state is left as it was (building, loading or even training a guide must
    not change the target run's dropout masks), so a run gives the same numbers whether or not
    its guide was cached."""
    with torch.random.fork_rng():
        if trained:
            return trained_guide(profile, g, device)[0], f"{g.family}-{run_key(GUIDE_EXPERIMENT, g, 0)}"
        return untrained_guide(g, seed), f"{g.family}-untrained{UNTRAINED_GUIDE_SEED + seed}-{run_key('u', g, 0)}"


def train_one(c: Config, seed: int, device: torch.device, checkpoint: Path, profile: str) -> dict[str, Any]:
    """Train one target under one condition; return metrics and a per-epoch history with alignment."""
    generator = seed_everything(seed)
    model = build_target(c).to(device)  # same initialisation for every condition of a seed
    (x_train, y_train), (x_test, y_test) = _data(c)
    example = x_train[:2]
    x_probe = x_test[stratified_indices(y_test, min(c.probe_n, len(y_test)), 1)]
    family, trained, _ = CONDITIONS[c.condition]

    # probes: alignment with the trained and the untrained ResNet guide, for every condition
    ref = c.reference_guide
    probes = {}
    for label, is_trained in (("trained", True), ("untrained", False)):
        g_model = _guide_for(c, seed, profile, str(device), is_trained, ref)[0].to(device)
        pairs = G.resolve_mapping(G.guidance_layers(g_model, example.to(device)),
                                  G.guidance_layers(model, example.to(device)))
        probes[label] = G.SimilarityProbe(g_model, pairs, x_probe.to(device))

    train_inputs: Any = x_train
    loss_fn: Any = cross_entropy_loss
    guidance = None
    if family is not None:
        guide, key = _guide_for(c, seed, profile, str(device), trained, c.guide)
        guide = guide.to(device)
        bank = None
        if c.guide_bank != "none":
            layers = G.guidance_layers(guide, example.to(device))
            bank = guide_bank(profile, key, guide, layers, x_train.to(device), c.guide_bank)
            train_inputs = G.IndexedInputs(x_train)
        guidance = G.GuidanceLoss(model, guide, example.to(device), alpha=c.alpha, distance=c.distance,
                                  guide_steps=c.guide_steps, bank=bank)
        loss_fn = guidance

    settings = FitSettings(epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, weight_decay=c.weight_decay,
                           optimizer=c.optimizer)
    steps_per_epoch = -(-len(y_train) // c.batch_size)
    extras_path = checkpoint.with_suffix(".extras.json")
    extras: dict[str, Any] = {"epochs": []}
    done = 0
    if checkpoint.is_file():
        done = torch.load(checkpoint, map_location="cpu", weights_only=False)["epoch"]
        if extras_path.is_file():
            extras = json.loads(extras_path.read_text())
        if "initial" not in extras or len(extras["epochs"]) < done:  # interrupted between the two writes
            checkpoint.unlink()
            done, extras = 0, {"epochs": []}
        extras["epochs"] = extras["epochs"][:done]
    if done == 0:
        extras["initial"] = {k: p.measure(model) for k, p in probes.items()}
    if guidance is not None:
        guidance.step = done * steps_per_epoch
    history: list[dict[str, Any]] = []
    for epoch in range(done + 1, c.epochs + 1):  # one epoch per call: fit resumes from its checkpoint
        history = fit(model, (train_inputs, y_train), (x_test, y_test), replace(settings, epochs=epoch),
                      generator=generator, device=device, loss_fn=loss_fn, checkpoint=checkpoint,
                      desc=f"{c.target}/{c.condition} seed {seed}", progress=False)
        row: dict[str, Any] = {f"cka_{k}": p.measure(model) for k, p in probes.items()}
        row["train_task_loss"] = history[-1]["train_loss"]  # the cross-entropy part of train_loss
        if guidance is not None and guidance.log:
            means = guidance.epoch_means(steps_per_epoch)[-1]
            row.update(guidance_term=means["guidance"], pair_distance=means["terms"], guided_steps=means["steps"])
            row["train_task_loss"] -= c.alpha * means["guidance_sum"] / len(y_train)
            guidance.log.clear()
        extras["epochs"].append(row)
        _log(f"{c.target}/{c.condition} seed {seed} epoch {epoch}/{c.epochs}: train acc {history[-1]['train_acc']:.3f} "
             f"test acc {history[-1]['test_acc']:.3f} test loss {history[-1]['test_loss']:.3f} "
             f"({history[-1]['epoch_time_s']:.1f} s)")
        tmp = extras_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(extras))
        os.replace(tmp, extras_path)
    if not history:  # every epoch was already done: the checkpoint holds the history
        history = torch.load(checkpoint, map_location="cpu", weights_only=False)["history"]
    for h, row in zip(history, extras["epochs"]):
        h.update(row)
    extras_path.unlink(missing_ok=True)

    last = history[-1]
    metrics = {k: last[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    metrics.update(
        best_test_acc=max(h["test_acc"] for h in history),
        min_test_loss=min(h["test_loss"] for h in history),
        min_test_loss_epoch=int(np.argmin([h["test_loss"] for h in history])) + 1,
        parameters=count_parameters(model),
        guided_steps=0 if guidance is None else min(c.guide_steps or 10**12, c.epochs * steps_per_epoch),
        test_correct=correct_string(model, x_test, y_test, device),
        mean_cka_trained=float(np.mean(last["cka_trained"])),
        mean_cka_untrained=float(np.mean(last["cka_untrained"])),
    )
    out = {"metrics": metrics, "history": history, "initial_cka": extras["initial"],
           "probe_pairs": {k: p.pairs for k, p in probes.items()}}
    if guidance is not None:
        out["pairs"] = guidance.pairs
    return out


def run_name(c: Config) -> str:
    return f"{c.target}-{c.condition}"


def run(profile: str = "quick", part: str = "fcn", seeds: Iterable[int] | None = None, device: str = "auto",
        force: bool = False, smoke: bool = False, **overrides: Any) -> list[dict[str, Any]]:
    """Every run of a chapter for every seed: stored records are reused, missing ones trained."""
    seeds = DEFAULT_SEEDS[check_profile(profile)] if seeds is None else tuple(seeds)
    set_threads()
    records = []
    for c in configs(profile, part, smoke, **overrides):
        for s in seeds:
            def train_fn(config, seed, dev, checkpoint):
                return train_one(config, seed, dev, checkpoint, profile)

            records.append(run_or_load(EXPERIMENT, profile, run_name(c), c, s, train_fn, device=device, force=force))
    return records


def guide_records(profile: str, part: str = "fcn", device: str = "auto", smoke: bool = False,
                  **overrides: Any) -> dict[str, dict[str, Any]]:
    """The trained guides' records of a chapter, keyed by family.

    A stored record is read without its weights (a reader of the book needs no guide); a missing
    one is trained (and its weights cached).
    """
    cs = configs(profile, part, smoke, **overrides)
    gs = {c.guide.family: c.guide for c in cs if c.guide is not None and CONDITIONS[c.condition][1]}
    out = {}
    for fam, g in gs.items():
        path = record_path(profile, GUIDE_EXPERIMENT, g.family, 0, run_key(GUIDE_EXPERIMENT, g, 0))
        out[fam] = load_record(path) if path.is_file() else trained_guide(profile, g, device)[1]
    return out


def is_stored(profile: str, part: str = "fcn", seeds: Iterable[int] | None = None, **overrides: Any) -> bool:
    """Whether every record of a chapter is already in the store."""
    seeds = DEFAULT_SEEDS[check_profile(profile)] if seeds is None else tuple(seeds)
    return all(record_path(profile, EXPERIMENT, run_name(c), s, run_key(EXPERIMENT, c, s)).is_file()
               for c in configs(profile, part, **overrides) for s in seeds)


# ----------------------------------------------------------------------------- analysis


def describe_models(profile: str, part: str = "fcn") -> list[dict[str, Any]]:
    """Each target and guide of a chapter: parameters and the number of recorded layers."""
    cs = configs(profile, part)
    rows, seen = [], set()
    x = torch.zeros(2, 3, cs[0].image_size, cs[0].image_size)
    for c in cs:
        for kind, model, name in (("target", lambda: build_target(c), c.target),
                                  ("guide", lambda: build_guide(c.guide) if c.guide else None,
                                   c.guide.family if c.guide else None)):
            if name is None or name in seen:
                continue
            seen.add(name)
            m = model()
            rows.append({"role": kind, "model": name, "parameters": count_parameters(m),
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


__all__ = ["EXPERIMENT", "CONDITIONS", "PARTS", "Config", "GuideConfig", "PRESETS", "configs", "run", "train_one",
           "trained_guide", "untrained_guide", "build_target", "build_guide", "load_data",
           "describe_models", "layer_table", "guide_records", "is_stored"]

