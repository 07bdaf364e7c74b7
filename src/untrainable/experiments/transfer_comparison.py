"""Chapter 08 (in progress, issue 17): guidance against distillation, one student, one teacher, one budget.

A student of chapter 04 (the Deep FCN in its chosen regime) learns from the labels beside one
method of handing it what a frozen teacher knows (:mod:`untrainable.transfer`): Hinton's KD, logit
regression (mimic), FitNets' hint, similarity-preserving KD, or guidance; the teacher is the trained
ResNet-18 guide of chapter 04 or the same network untrained. Everything else (data, epochs,
learning rate, schedule, the checkpoint of lowest validation loss) is the chapter-04 run's, so the
methods differ in their loss alone. Each method's weight is chosen on the validation split
(:func:`sweep_configs`, seed :data:`SWEEP_SEED`); guidance's distance can be any of
:data:`untrainable.guidance.GUIDANCE_DISTANCES` (the distance study).

One run: :func:`train_student`. Records: ``transfer_comparison`` (the sweep: ``transfer_sweeps``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from untrainable import guidance as G
from untrainable import transfer as T
from untrainable.data import stratified_indices
from untrainable.experiments import PlannedRun
from untrainable.experiments import fcn_guidance
from untrainable.experiments import image_guidance as ig
from untrainable.experiments.image_guides import trained_guide, untrained_guide
from untrainable.models import build_target, count_parameters
from untrainable.profiles import check_profile
from untrainable.results import find_record, record_path, run_key, run_or_load, training_allowed
from untrainable.runtime import seed_everything
from untrainable.train import FitSettings, fit

__all__ = ["EXPERIMENT", "SWEEP_EXPERIMENT", "SWEEP_SEED", "METHODS", "Config", "PRESETS", "configs", "run_name",
           "sweep_configs", "chosen_weights", "planned_runs", "train_student", "run", "run_sweep"]

EXPERIMENT, SWEEP_EXPERIMENT, SWEEP_SEED = "transfer_comparison", "transfer_sweeps", 100
#: The methods beside the labels (``labels`` alone is the baseline).
METHODS = ("labels", "kd", "logits", "fitnets", "spkd", "guidance")


@dataclass(frozen=True)
class Config:
    """One student run apart from its seed: the chapter run it starts from, the method and its teacher.
    Every field is part of the record key."""

    student: ig.Config  # the chapter-04 unguided run whose data, model and training this run keeps
    method: str  # one of METHODS
    teacher_trained: bool  # the chapter's trained guide, or the same network untrained
    weight: float = 1.0  # the method's weight beside the labels' cross-entropy (none for "labels")
    temperature: float = 4.0  # kd
    distance: str = "linear_cka"  # guidance

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}: choose from {', '.join(METHODS)}")

    def methods(self) -> list[T.Method]:
        """The transfer loss's terms: the labels, and the method at its weight."""
        own = [] if self.method == "labels" else [T.Method(self.method, self.weight, self.temperature, self.distance)]
        return [T.Method("labels"), *own]


PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(weights=(1.0,), distances=("linear_cka", "rbf_cka"), seeds=(0, 1), chosen={}),
    "full": dict(weights=(0.1, 1.0, 10.0), distances=("linear_cka", "debiased_cka", "rbf_cka", "procrustes", "rsa",
                                                       "cca"), seeds=(0, 1, 2), chosen={}),
    "paper": dict(weights=(0.1, 1.0, 10.0), distances=("linear_cka", "debiased_cka", "rbf_cka", "procrustes", "rsa",
                                                        "cca"), seeds=(0, 1, 2, 3, 4), chosen={}),
}


def _student(profile: str, smoke: bool = False) -> ig.Config:
    """Chapter 04's unguided Deep FCN run: the data, model and training every method keeps."""
    return next(c for c in fcn_guidance.configs(profile, smoke) if (c.target, c.condition) == ("deep_fcn", "no_guide"))


def configs(profile: str, smoke: bool = False) -> list[Config]:
    """Every run: the labels alone, each method with each teacher, and guidance with each other distance,
    each at its chosen weight (the preset's ``chosen``: run name -> weight; 1 before a choice)."""
    p, student = PRESETS[check_profile(profile)], _student(profile, smoke)
    runs = [Config(student, "labels", True)]
    runs += [Config(student, m, trained) for m in METHODS[1:] for trained in (True, False)]
    runs += [Config(student, "guidance", trained, distance=d) for d in p["distances"] if d != "linear_cka"
             for trained in (True, False)]
    return [dataclasses.replace(c, weight=p["chosen"].get(run_name(c), 1.0)) for c in runs]


def _kind(trained: bool) -> str:
    return "trained" if trained else "untrained"


def run_name(c: Config) -> str:
    method = c.method if c.distance == "linear_cka" or c.method != "guidance" else f"guidance-{c.distance}"
    return f"{method}-{_kind(c.teacher_trained)}" if c.method != "labels" else "labels"


def sweep_configs(profile: str, smoke: bool = False) -> list[Config]:
    """Each method with each teacher at every weight of the preset (the labels alone need none)."""
    weights = PRESETS[check_profile(profile)]["weights"]
    return [dataclasses.replace(c, weight=w) for c in configs(profile, smoke) if c.method != "labels" for w in weights]


def chosen_weights(records: list[dict[str, Any]]) -> dict[str, float]:
    """``"<run name>" -> weight``: per method, teacher and distance, the weight of lowest validation loss."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r["name"].rsplit("-w", 1)[0], []).append(r)
    return {k: min(rs, key=lambda r: r["metrics"]["min_valid_loss"])["config"]["weight"] for k, rs in groups.items()}


def planned_runs(profile: str, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """The sweep, then every run for every seed (the teacher is chapter 04's guide, planned there)."""
    seeds = PRESETS[check_profile(profile)]["seeds"] if seeds is None else tuple(seeds)
    sweep = [PlannedRun(SWEEP_EXPERIMENT, _sweep_name(c), c, SWEEP_SEED) for c in sweep_configs(profile)]
    return sweep + [PlannedRun(EXPERIMENT, run_name(c), c, s) for c in configs(profile) for s in seeds]


def _sweep_name(c: Config) -> str:
    return f"{run_name(c)}-w{c.weight:g}"


def train_student(c: Config, seed: int, device: torch.device, checkpoint: Path, teacher: torch.nn.Module
                  ) -> dict[str, Any]:
    """Train the student with the labels and the method; the chapter-04 run's metrics, plus the CKA it
    reached with the trained teacher's mapped layers and the seconds per step."""
    s = c.student
    train, valid, test = ig.target_data(s)
    generator = seed_everything(seed)
    model = build_target(s).to(device)
    teacher = teacher.to(device)
    example = train[0][:2].to(device)
    loss = T.TransferLoss(model, teacher, c.methods(), example)
    settings = FitSettings(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, weight_decay=s.weight_decay,
                           optimizer=s.optimizer, schedule=s.schedule, precision=s.precision)
    history = fit(T.with_regressors(loss), train, test, settings, generator=generator, device=device, loss_fn=loss,
                  checkpoint=checkpoint, desc=f"{run_name(c)} seed {seed}", progress=False, valid=valid)
    x_probe = test[0][stratified_indices(test[1], min(s.probe_n, len(test[1])), 1)].to(device)
    cka = G.SimilarityProbe(teacher, loss.pairs, x_probe).measure(model)
    steps = len(history) * -(-len(train[1]) // s.batch_size)
    metrics = {k: history[-1][k] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    metrics.update(ig._validation_metrics(history), parameters=count_parameters(model), mean_cka_teacher=float(
        np.mean(cka)), seconds_per_step=sum(h["epoch_time_s"] for h in history) / steps)
    return {"metrics": metrics, "history": history, "final_cka": cka, "pairs": loss.pairs}


def _teacher(profile: str, c: Config, seed: int, device: str, train_missing: bool | None) -> torch.nn.Module:
    g = c.student.reference_guide
    return trained_guide(profile, g, device, train_missing=train_missing)[0] if c.teacher_trained else \
        untrained_guide(g, seed)


def _records(profile: str, cfgs: list[Config], seeds: Iterable[int], device: str, force: bool,
             train_missing: bool | None, experiment: str, name) -> list[dict[str, Any]]:
    out = []
    for c in cfgs:
        for seed in seeds:
            path = record_path(profile, experiment, name(c), seed, run_key(experiment, c, seed))
            needed = force or (find_record(path) is None and training_allowed(profile, force, train_missing))
            teacher = _teacher(profile, c, seed, device, train_missing) if needed else None
            out.append(run_or_load(experiment, profile, name(c), c, seed,
                                   functools.partial(train_student, teacher=teacher), device=device, force=force,
                                   train_missing=train_missing))
    return out


def run(profile: str = "quick", seeds: Iterable[int] | None = None, device: str = "auto", force: bool = False, *,
        train_missing: bool | None = None, smoke: bool = False) -> list[dict[str, Any]]:
    """The record of every run for every seed: stored ones loaded, missing ones trained when allowed."""
    seeds = PRESETS[check_profile(profile)]["seeds"] if seeds is None else tuple(seeds)
    return _records(profile, configs(profile, smoke), seeds, device, force, train_missing, EXPERIMENT, run_name)


def run_sweep(profile: str = "quick", device: str = "auto", force: bool = False, *,
              train_missing: bool | None = None, smoke: bool = False) -> list[dict[str, Any]]:
    """The record of every sweep run (seed :data:`SWEEP_SEED`)."""
    return _records(profile, sweep_configs(profile, smoke), (SWEEP_SEED,), device, force, train_missing,
                    SWEEP_EXPERIMENT, _sweep_name)
