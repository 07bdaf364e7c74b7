"""The models of the precision benchmark: every network a chapter trains, built from the chapter's own configs.

Each :class:`Case` is one model of one chapter (its kind decides its speed goal), built on demand
as a :class:`Workload`: the network, one batch at the chapter's batch size, the chapter's optimiser
settings and the loss. The guided cases add the guide's Gram bank (chapters 04 and 05).
:mod:`.precision` times them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from untrainable import guidance as G
from untrainable import mimic
from untrainable.data import load_image_data
from untrainable.experiments import (fcn_guidance, inductive_bias, mimic_students, plain_cnn_guidance,
                                     representations, sequence_guidance)
from untrainable.models import build_guide, build_target
from untrainable.profiles import default_seeds
from untrainable.train import FitSettings, LossFn, cross_entropy_loss

__all__ = ["Workload", "Case", "kind_of", "model_cases", "guided_cases", "full_run_steps"]


@dataclass
class Workload:
    """One training step's ingredients: the network, a batch, the optimiser settings, and the loss
    for a copy of the network (a guidance loss is bound to the target it hooks)."""

    model: nn.Module
    x: Any
    y: torch.Tensor
    settings: FitSettings
    loss_for: Callable[[nn.Module], LossFn] = lambda _: cross_entropy_loss


@dataclass(frozen=True)
class Case:
    """A model of a chapter, built on demand (construction may load data)."""

    chapter: str
    name: str
    kind: str  # "conv" | "fcn" | "sequence"
    make: Callable[[], Workload]
    guided: bool = False


# ----------------------------------------------------------------------------- the models of each chapter


def _images(n: int, size: int = 32, classes: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, classes, (n,), generator=g)


def kind_of(model: nn.Module) -> str:
    return "conv" if any(isinstance(m, nn.Conv2d) for m in model.modules()) else "fcn"


def _image_case(chapter: str, name: str, build: Callable[[], nn.Module], settings: FitSettings,
                loss: LossFn = cross_entropy_loss, y: torch.Tensor | None = None) -> Case:
    model = build()  # built once here to know its kind; the workload builds it again (fresh weights)

    def make() -> Workload:
        x, labels = _images(settings.batch_size)
        return Workload(build(), x, labels if y is None else y, settings, lambda _: loss)

    return Case(chapter, name, kind_of(model), make)


def _image_chapters(profile: str) -> list[Case]:
    cases = []
    for c in inductive_bias.configs(profile):
        s = FitSettings(epochs=1, batch_size=c.batch_size, lr=c.lr, optimizer=c.optimizer)
        cases.append(_image_case("01", c.model, lambda m=c.model: inductive_bias.build_model(m), s))
    rep = representations.configs(profile)[0]
    for net in (rep.cnn, rep.fcn):
        s = FitSettings(epochs=1, batch_size=net.batch_size, lr=net.lr)
        cases.append(_image_case("02", net.model, lambda m=net.model: inductive_bias.build_model(m), s))
    fcn_runs = {(c.target, c.condition): c for c in fcn_guidance.configs(profile)}
    for target in ("deep_fcn", "wide_fcn"):
        c = fcn_runs[(target, "no_guide")]
        s = FitSettings(epochs=1, batch_size=c.batch_size, lr=c.lr, optimizer=c.optimizer)
        cases.append(_image_case("04", target, lambda c=c: build_target(c), s))
    for condition in ("trained_guide", "small_cnn_guide"):
        g = fcn_runs[("deep_fcn", condition)].guide
        s = FitSettings(epochs=1, batch_size=g.batch_size, lr=g.lr, weight_decay=g.weight_decay, optimizer=g.optimizer)
        cases.append(_image_case("04", f"guide {g.family}", lambda g=g: build_guide(g, g.num_classes), s))
    c = plain_cnn_guidance.first_regime_configs(profile)[0]
    s = FitSettings(epochs=1, batch_size=c.batch_size, lr=c.lr, optimizer=c.optimizer)
    cases.append(_image_case("05", "plain_cnn", lambda: build_target(c), s))
    return cases


def _sequence_case(c: sequence_guidance.Config, name: str) -> Case:
    kind = "sequence"

    def make() -> Workload:
        data = sequence_guidance.load_data(c)
        x, y = data.train[0][:c.batch_size], data.train[1][:c.batch_size]
        s = FitSettings(epochs=1, batch_size=c.batch_size, lr=c.lr, weight_decay=c.weight_decay,
                        optimizer=c.optimizer, clip_grad_norm=c.clip_grad_norm)
        return Workload(sequence_guidance.build_net(c.net, data), x, y, s)

    return Case("06", name, kind, make)


def _sequence_chapter(profile: str) -> list[Case]:
    cases = []
    runs = {(c.setting, c.condition): c for c in sequence_guidance.configs(profile)}
    for setting in sequence_guidance.SETTINGS:
        for condition, role in (("no_guide", "target"), ("guide_alone", "guide")):
            c = runs[(setting, condition)]
            cases.append(_sequence_case(c, f"{setting} {role} ({c.net.family})"))
    lstm = next(c for c in sequence_guidance.configs(profile, settings=("lm",), lstm=True) if c.condition == "no_guide")
    cases.append(_sequence_case(lstm, f"lm target ({lstm.net.family})"))
    return cases


def _mimic_chapter(profile: str) -> list[Case]:
    p = mimic_students.preset(profile)
    t = p.teacher
    teacher = _image_case("07", "teacher", lambda: mimic_students.build_teacher(t),
                          FitSettings(epochs=1, batch_size=t.batch_size, lr=t.lr))
    name = f"mimic-h{p.widths[len(p.widths) // 2]}"
    sc = mimic_students.configs(profile)["size"][name]
    logits = torch.randn(sc.batch_size, 10, generator=torch.Generator().manual_seed(1))
    student = _image_case("07", f"student {name}", lambda: mimic_students.build_student(sc),
                          FitSettings(epochs=1, batch_size=sc.batch_size, lr=sc.lr),
                          mimic.mimic_loss_fn(sc.loss, sc.temperature), logits)
    return [teacher, student]


def model_cases(profile: str) -> list[Case]:
    """Every model a chapter of ``profile`` trains (targets, guides, teachers, students), from its configs."""
    return _image_chapters(profile) + _sequence_chapter(profile) + _mimic_chapter(profile)


def _guided_case(chapter: str, c: Any) -> Case:
    def make() -> Workload:
        # per-step costs do not depend on the training-set size; 1,024 images keep the bank small
        (x_train, y_train), _ = load_image_data(c.dataset, min(c.n_train or 1024, 1024), 10, c.data_seed, c.image_size)
        torch.manual_seed(0)
        guide = G.freeze(build_guide(c.guide, c.num_classes))  # timing needs no trained weights
        bank = G.GuideBank(guide, G.guidance_layers(guide, x_train[:2]), x_train, mode="gram", memory_gb=2.0)
        idx = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(0))[:c.batch_size]
        s = FitSettings(epochs=1, batch_size=c.batch_size, lr=c.lr, optimizer=c.optimizer)
        example = x_train[:2]
        return Workload(build_target(c), G.IndexedInputs(x_train)[idx], y_train[idx], s,
                        lambda m: G.GuidanceLoss(m, guide, example, alpha=c.alpha, bank=bank))

    kind = "fcn" if c.target.endswith("fcn") else "conv"
    return Case(chapter, f"{c.target} guided (Gram bank)", kind, make, guided=True)


def guided_cases(profile: str) -> list[Case]:
    """The guided steps of chapter 04's Deep FCN and chapter 05's plain ConvNet (trained-guide runs)."""
    fcn = next(c for c in fcn_guidance.configs(profile) if c.target == "deep_fcn" and c.condition == "trained_guide")
    plain = next(c for c in plain_cnn_guidance.first_regime_configs(profile) if c.condition == "trained_guide")
    return [_guided_case("04", fcn), _guided_case("05", plain)]



def full_run_steps(chapter: str, profile: str) -> tuple[int, int]:
    """(optimiser steps of one run, runs of the model in the chapter) of a ``full`` chapter's main target."""
    if chapter == "04":
        runs = [c for c in fcn_guidance.configs(profile) if c.target == "deep_fcn"]
    else:  # the plain ConvNet the benchmarks measured: chapter 05's first regime
        runs = plain_cnn_guidance.first_regime_configs(profile)
    c = runs[0]
    return c.epochs * math.ceil(c.n_train / c.batch_size), len(runs) * len(default_seeds(profile))
