"""Mimicry with a teacher worth mimicking (issue #32): shallow students learn from ResNet-18s at about 87 %.

Chapter 07 reproduces Ba & Caruana (2014) with teacher CNNs at 66-68 % CIFAR-10 test accuracy, where the
label-trained shallow students are nearly as good: mimicry has no headroom to show. Here the teachers are
ResNet-18s trained with random crop and flip on every training image but a held-out validation split of
1,000: chapter 04's ``resnet18-every-image`` guide (:func:`teacher_config`, 86.9 % at its best-validation
checkpoint), one per seed of :data:`StrongPreset.ensemble`. Teachers are stored as guides
(``results/<profile>/guides/``), so seed 0 *is* chapter 04's record (and its cached weights); seeds 1 and 2
are new records of the same config, trained by :func:`untrainable.experiments.image_guides.train_guide`.

The students are chapter 07's (:class:`untrainable.mimic.ShallowStudent`: one 5x5 convolution + pool, a
linear bottleneck, one hidden ReLU layer) at the widths of :data:`StrongPreset.widths`, trained either on
labels (dropout 0.5, as chapter 07's label-trained students) or by L2 regression on the ensemble's mean
logits, on the same transfer set: chapter 07's construction (:func:`untrainable.mimic.transfer_images`),
``n_train`` of the teachers' training images plus ``views`` random crop-and-flip copies of each, drawn once
(seed :data:`TRANSFER_SEED`); the label students see each copy with its original's label, so the two arms
differ in their targets only. Students and teachers share the validation split, which no teacher or
student trains on; the ensemble's logits on the transfer set and on the test split are computed once and
cached (:func:`untrainable.mimic.transfer_set`, under a lock: parallel students compute them once).

Stages (:data:`STAGES`):

1. **teachers**: every seed of the ensemble (each one's accuracy and cost are in its record);
2. **sweep**: every (loss, width) cell at each of ``sweep_lrs``, seed :data:`SWEEP_SEED` (no reported run
   uses it); each cell's learning rate is chosen on validation by
   :func:`untrainable.analysis.selection.choose` with the book's criterion :data:`SELECTION`;
3. **runs**: every cell at its chosen learning rate, for ``seeds`` (the widest width: ``widest_seeds``, the
   headline "mimic vs labels at the widest student").

:func:`preconditions` says whether the comparison can be read: the ensemble beats the best label-trained
student by at least :data:`MIN_TEACHER_GAP` points, and every student is trained to a plateau (its best
validation accuracy rose by less than :data:`PLATEAU_POINTS` over its last :data:`PLATEAU_FRACTION` of
epochs). The module is not a chapter of the book yet (no ``full`` records): it is absent from
:data:`untrainable.experiments.CHAPTERS`.

What it costs in ``full`` (:func:`estimate`, ``--estimate``): the issue's budget is about 4 hours of the
2-core machine, 8 one-thread hours, for two new teachers (seed 0 is stored), 12 sweep runs and 22 runs of 30
epochs over a transfer set of 12,000 images and two views (36,000 an epoch). Timed on one thread of the shared
2-core CPU (6 Dec 2026, with two other trainings running; the fastest of five steps): a student step 41-66 ms
(bf16, widths 256-4096), a teacher step 372-392 ms (its stored seed-0 record took 26 minutes on a quieter
machine, where the estimate says 36-38), so about 72 one-thread minutes for the teachers, 2 for the ensemble's
logits, 96 for the sweep and 182 for the runs: about 350 one-thread minutes, 3 hours on both cores. The rest
of the budget is the margin of a busy machine over these lower bounds; a transfer set of 15,000 images came to
about 500 one-thread minutes (4.1 hours) in a first, busier timing: too close to the budget.

From a shell (``UNTRAINABLE_THREADS=1``; ``--seeds`` and ``--widths`` split a stage over processes)::

    python -m untrainable.experiments.mimic_strong --estimate
    python -m untrainable.experiments.mimic_strong --stage teachers --seeds 1
    python -m untrainable.experiments.mimic_strong --stage sweep --widths 4096
    python -m untrainable.experiments.mimic_strong --stage runs --widths 256 1024 --seeds 0 1
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from untrainable import mimic
from untrainable.analysis.preconditions import CheckedPrecondition, teacher_beats_best_student, trained_to_plateau
from untrainable.analysis.selection import BOOK_CRITERION, choose
from untrainable.config_checks import check_fields
from untrainable.data import HeldOutSplits, held_out_splits
from untrainable.experiments import PlannedRun, fcn_guidance, shell_parser, shell_seeds
from untrainable.experiments import image_guides as guides
from untrainable.experiments import image_presets as ip
from untrainable.files import load_torch
from untrainable.models import build_guide, count_parameters
from untrainable.paths import cache_root
from untrainable.precision import PRECISIONS, autocast, channels_last
from untrainable.profiles import check_profile, check_seeds, preset_table, replace_preset
from untrainable.results import find_record, run_key, run_or_load, run_with_weights, will_train
from untrainable.runtime import log, seed_everything
from untrainable.train import FitSettings, fit, to_device

__all__ = ["EXPERIMENT", "SWEEP_EXPERIMENT", "TEACHER_EXPERIMENT", "SWEEP_SEED", "TRANSFER_SEED", "SELECTION", "NAME",
           "STAGES", "LOSSES", "REQUIRED_METRICS", "TEACHER_METRICS", "MIN_TEACHER_GAP", "PLATEAU_FRACTION",
           "PLATEAU_POINTS", "Ensemble", "StudentConfig", "Cell", "StrongPreset", "teacher_config", "PRESETS",
           "shrink", "preset", "cells", "student_config", "sweep_name", "run_name", "sweep_configs", "run_configs",
           "run_seeds", "chosen_lrs", "learning_rates", "teacher_weights", "run_teachers", "teacher_records",
           "resolve_teachers", "train_student", "run_sweep", "run", "planned_runs", "ensemble_accuracy",
           "preconditions", "EVAL_BATCH", "step_seconds", "teacher_step_seconds", "student_seconds", "estimate", "main"]

EXPERIMENT = "mimic_strong"
SWEEP_EXPERIMENT = "mimic_strong_sweeps"
#: The teachers are guides: seed 0 of the full ensemble is chapter 04's ``resnet18-every-image`` record.
TEACHER_EXPERIMENT = guides.GUIDE_EXPERIMENT
#: The seed of every sweep run: no reported run uses it, so the choice does not favour a reported seed.
SWEEP_SEED = 100
#: The seed the transfer set's augmented views are drawn from: one transfer set for every student.
TRANSFER_SEED = 0
#: How a cell's learning rate is chosen from its sweep runs (:func:`untrainable.analysis.selection.choose`).
SELECTION = BOOK_CRITERION
NAME = "untrainable.experiments.mimic_strong"
STAGES = ("teachers", "sweep", "runs")
#: What a student learns from (:func:`untrainable.mimic.mimic_loss_fn`): labels, or the ensemble's logits (L2).
LOSSES = ("labels", "logits")
#: What every student's record carries (a mimic student's also ``teacher_test_acc``, the ensemble's).
REQUIRED_METRICS = ("test_acc", "train_acc", "best_valid_acc", "parameters", "train_time_s")
#: What a teacher's record carries: a guide's metrics and its best-validation checkpoint's test accuracy.
TEACHER_METRICS = (*guides.REQUIRED_METRICS, "best_test_acc")
#: The ensemble must beat the best label-trained student by this many points (issue #32).
MIN_TEACHER_GAP = 8.0
#: A student is at a plateau when its best validation accuracy rose by less than PLATEAU_POINTS over its
#: last PLATEAU_FRACTION of epochs.
PLATEAU_FRACTION = 0.2
PLATEAU_POINTS = 0.5


@dataclass(frozen=True)
class Ensemble:
    """The teachers a mimic student regresses: one guide config trained from each of ``seeds``; the
    student's target is their mean logits (Ba & Caruana's ensemble teacher)."""

    teacher: guides.GuideConfig
    seeds: tuple[int, ...]

    def __post_init__(self) -> None:
        check_seeds(self.seeds)  # an ensemble of one teacher twice would count it twice
        if not self.teacher.n_valid:
            raise ValueError("an Ensemble's teacher must hold out a validation split (n_valid): the students "
                             "choose their learning rates on it")


@dataclass(frozen=True)
class StudentConfig:
    """A shallow student and its target; every field (the teachers' too) is part of the record key.

    The images: ``n_train`` of the training split left after ``n_valid`` validation images are held out
    (:func:`untrainable.data.held_out_splits`, ``data_seed``), plus ``views`` augmented copies; a mimic
    student's teachers must hold out the same validation split, so no student validates on a teacher's
    training image."""

    hidden: int
    loss: str  # "labels" | "logits"
    epochs: int
    n_train: int | None
    n_valid: int
    n_test: int | None
    views: int
    lr: float
    bottleneck: int
    conv_channels: int
    teachers: Ensemble | None = None  # None: a label-trained student
    dropout: float = 0.0
    batch_size: int = 128
    precision: str = "fp32"
    data_seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, positive=("hidden", "epochs", "n_train", "n_valid", "n_test", "lr", "bottleneck",
                                     "batch_size"),
                     non_negative=("views", "conv_channels", "data_seed"), fractions=("dropout",),
                     choices={"loss": LOSSES, "precision": PRECISIONS})
        if (self.loss == "logits") != (self.teachers is not None):
            raise ValueError(f"StudentConfig: loss {self.loss!r} with teachers={self.teachers is not None}: a "
                             "mimic student (logits) needs its teachers, a label-trained one has none")
        t = self.teachers.teacher if self.teachers else None
        if t is not None and (t.dataset, t.n_valid, t.data_seed) != ("cifar10", self.n_valid, self.data_seed):
            raise ValueError(f"StudentConfig: the teachers hold out {t.n_valid} validation images of {t.dataset} "
                             f"(data seed {t.data_seed}), the student {self.n_valid} of cifar10 (data seed "
                             f"{self.data_seed}): they must share the split")


class Cell(NamedTuple):
    """One setting of the comparison: what the student learns from, and its width."""

    loss: str
    hidden: int

    def __str__(self) -> str:
        return f"{'mimic' if self.loss == 'logits' else 'labels'}-h{self.hidden}"


@dataclass(frozen=True, kw_only=True)
class StrongPreset:
    """What the comparison sets in one profile. ``teacher``: chapter 04's every-image ResNet guide of the
    profile; ``ensemble``: its seeds. ``n_train``/``views``: the transfer set (``n_train`` of the teachers'
    training images, None: all). ``seeds``: each cell's, but the widest width's (``widest_seeds``).
    ``chosen_lrs``: each cell's learning rate as the sweep chose it, written in once the sweep is stored
    (:func:`run` refuses a preset that disagrees)."""

    teacher: guides.GuideConfig
    ensemble: tuple[int, ...]
    n_train: int | None
    n_test: int | None
    views: int
    epochs: int
    widths: tuple[int, ...]
    bottleneck: int
    conv_channels: int
    sweep_lrs: tuple[float, ...]
    seeds: tuple[int, ...]
    widest_seeds: tuple[int, ...]
    precision: str
    label_dropout: float = 0.5
    chosen_lrs: Mapping[Cell, float] = field(default_factory=dict)


def teacher_config(profile: str) -> guides.GuideConfig:
    """The teacher of ``profile``: chapter 04's ``resnet18-every-image`` guide (in ``full``: width 16, 15
    epochs of SGD with a cosine schedule, crop and flip, 49,000 training images and 1,000 held out)."""
    return ip.guide_configs(fcn_guidance.PRESETS[check_profile(profile)])["resnet_all"]


PRESETS: dict[str, StrongPreset] = preset_table(NAME, {
    "quick": StrongPreset(teacher=teacher_config("quick"), ensemble=(0, 1), n_train=512, n_test=512, views=1,
                          epochs=4, widths=(64, 256), bottleneck=32, conv_channels=8, sweep_lrs=(1e-3, 3e-4),
                          seeds=(0,), widest_seeds=(0, 1), precision="auto"),
    # Sized to the budget, about 4 hours of the 2-core machine (8 one-thread hours; --estimate):
    # the transfer set is 12,000 of the teachers' 49,000 training images and two views (36,000 an epoch),
    # 30 epochs; two learning rates a cell (3e-4 and 1e-3, chapter 07's constant Adam rate and a lower one).
    "full": StrongPreset(teacher=teacher_config("full"), ensemble=(0, 1, 2), n_train=12_000, n_test=None, views=2,
                         epochs=30, widths=(256, 1024, 4096), bottleneck=256, conv_channels=32,
                         sweep_lrs=(1e-3, 3e-4), seeds=(0, 1, 2), widest_seeds=(0, 1, 2, 3, 4), precision="bf16"),
    "paper": StrongPreset(teacher=teacher_config("paper"), ensemble=(0, 1, 2, 3), n_train=None, n_test=None, views=4,
                          epochs=100, widths=(1000, 4000, 10000, 30000), bottleneck=1200, conv_channels=128,
                          sweep_lrs=(3e-3, 1e-3, 3e-4, 1e-4), seeds=(0, 1, 2), widest_seeds=(0, 1, 2, 3, 4),
                          precision="auto"),
})


def shrink(p: StrongPreset) -> StrongPreset:
    """A tiny slice of any profile's comparison, for testing that its code paths run: two teachers of one
    epoch on 128 images, students of widths 8 and 16 for two epochs on 128 images and one view."""
    teacher = dataclasses.replace(p.teacher, width=4, epochs=1, n_train=128, n_valid=32, n_test=64,
                                  n_test_curve=None, precision="fp32")
    return replace_preset(NAME, p, teacher=teacher, ensemble=p.ensemble[:2], n_train=128, n_test=64, views=1,
                          epochs=2, widths=(8, 16), bottleneck=8, conv_channels=4, sweep_lrs=(1e-3, 3e-4),
                          seeds=(0,), widest_seeds=(0, 1), precision="fp32", chosen_lrs={})


def preset(profile: str, smoke: bool = False) -> StrongPreset:
    """The comparison's preset of ``profile`` (shrunk by :func:`shrink` when ``smoke``)."""
    p = PRESETS[check_profile(profile)]
    return shrink(p) if smoke else p


def cells(p: StrongPreset, widths: Iterable[int] | None = None) -> list[Cell]:
    """The preset's cells, labels then mimic at each width (``widths``: only those; a width the preset
    lacks is an error naming it)."""
    wanted = p.widths if widths is None else tuple(widths)
    unknown = sorted(set(wanted) - set(p.widths))
    if unknown:
        raise ValueError(f"{NAME}: widths {unknown} are not in the preset's {p.widths}")
    return [Cell(loss, h) for h in p.widths if h in wanted for loss in LOSSES]


def student_config(p: StrongPreset, cell: Cell, lr: float) -> StudentConfig:
    """The student of ``cell`` at ``lr``, on the preset's transfer set."""
    labels = cell.loss == "labels"
    return StudentConfig(hidden=cell.hidden, loss=cell.loss, epochs=p.epochs, n_train=p.n_train,
                         n_valid=p.teacher.n_valid, n_test=p.n_test, views=p.views, lr=lr, bottleneck=p.bottleneck,
                         conv_channels=p.conv_channels, teachers=None if labels else Ensemble(p.teacher, p.ensemble),
                         dropout=p.label_dropout if labels else 0.0, precision=p.precision,
                         data_seed=p.teacher.data_seed)


def _cell(c: StudentConfig | Mapping[str, Any]) -> Cell:
    """The cell of a config (or of a record's config dict)."""
    get = c.__getitem__ if isinstance(c, Mapping) else lambda k: getattr(c, k)
    return Cell(get("loss"), get("hidden"))


def sweep_name(c: StudentConfig) -> str:
    """A sweep run's record name: cell and learning rate (``mimic-h4096-lr0.001``)."""
    return f"{_cell(c)}-lr{c.lr:g}"


def run_name(c: StudentConfig) -> str:
    """A run's record name: its cell (``labels-h256``)."""
    return str(_cell(c))


def sweep_configs(p: StrongPreset, widths: Iterable[int] | None = None) -> list[StudentConfig]:
    """Every sweep run: each cell at each of ``sweep_lrs``."""
    return [student_config(p, cell, lr) for cell in cells(p, widths) for lr in p.sweep_lrs]


def run_configs(p: StrongPreset, lrs: Mapping[Cell, float], widths: Iterable[int] | None = None
                ) -> list[StudentConfig]:
    """Every cell at its learning rate in ``lrs`` (a cell without one is an error)."""
    missing = [str(c) for c in cells(p, widths) if c not in lrs]
    if missing:
        raise ValueError(f"{NAME}: no learning rate chosen for cells {missing}: run the sweep first (--stage sweep)")
    return [student_config(p, cell, lrs[cell]) for cell in cells(p, widths)]


def run_seeds(p: StrongPreset, c: StudentConfig, seeds: Iterable[int] | None = None) -> tuple[int, ...]:
    """The seeds of run ``c``: ``seeds`` when given (checked), else the widest width's or the others'."""
    if seeds is not None:
        return check_seeds(tuple(seeds))
    return p.widest_seeds if c.hidden == max(p.widths) else p.seeds


def chosen_lrs(records: list[dict[str, Any]]) -> dict[Cell, float]:
    """Each cell's learning rate, chosen from its sweep records on validation (:data:`SELECTION`)."""
    by_cell: dict[Cell, list[dict[str, Any]]] = {}
    for r in records:
        by_cell.setdefault(_cell(r["config"]), []).append(r)
    return {cell: choose(rs, lambda r: r["config"]["lr"], SELECTION) for cell, rs in by_cell.items()}


def learning_rates(p: StrongPreset, sweep: list[dict[str, Any]]) -> dict[Cell, float]:
    """The sweep's choice per cell, checked against the values written into the preset (``chosen_lrs``)."""
    lrs = chosen_lrs(sweep)
    wrong = {str(c): (lr, lrs[c]) for c, lr in p.chosen_lrs.items() if c in lrs and lrs[c] != lr}
    if wrong:
        raise ValueError(f"{NAME}: the preset's chosen learning rates disagree with what the sweep chooses "
                         f"(cell: (preset, sweep)): {wrong}")
    return lrs


# ----------------------------------------------------------------------------- teachers


def teacher_weights(profile: str, g: guides.GuideConfig, seed: int) -> Path:
    """Where teacher ``seed``'s weights are cached (never committed); seed 0's is the guide's own file
    (:func:`untrainable.experiments.image_guides.guide_weights_path`), shared with chapter 04."""
    return cache_root() / "guides" / profile / f"{guides.guide_name(g)}-{run_key(TEACHER_EXPERIMENT, g, seed)}.pt"


def _teacher_record(profile: str, g: guides.GuideConfig, seed: int, device: str,
                    train_missing: bool | None) -> dict[str, Any]:
    """One teacher's record with its weights cached (stored: loaded; missing: trained once, under a lock).
    The global random state is left as it was, as :func:`~untrainable.experiments.image_guides.trained_guide`
    leaves it."""
    weights = teacher_weights(profile, g, seed)
    with torch.random.fork_rng():
        return run_with_weights(TEACHER_EXPERIMENT, profile, guides.guide_name(g), g, seed, weights,
                                functools.partial(guides.train_guide, weights=weights), device=device,
                                train_missing=train_missing, required_metrics=TEACHER_METRICS)


def run_teachers(profile: str, seeds: Iterable[int] | None = None, device: str = "auto", *,
                 train_missing: bool | None = None, smoke: bool = False) -> list[dict[str, Any]]:
    """The teachers stage: the record of every teacher of the ensemble (or of ``seeds``), loaded, or trained
    where allowed, with its weights in the cache (retrained into it where a stored record lacks them)."""
    p = preset(profile, smoke)
    wanted = p.ensemble if seeds is None else check_seeds(tuple(seeds))
    return [_teacher_record(profile, p.teacher, s, device, train_missing) for s in wanted]


def teacher_records(profile: str, device: str = "auto", *, train_missing: bool | None = None,
                    smoke: bool = False) -> list[dict[str, Any]]:
    """The ensemble's records as stored (a missing one trained where allowed). Their weights are not asked
    for: a fresh clone reads the records without retraining a teacher; :func:`resolve_teachers` retrains the
    weights only for a student that must train."""
    p = preset(profile, smoke)
    return [run_or_load(TEACHER_EXPERIMENT, profile, guides.guide_name(p.teacher), p.teacher, s,
                        functools.partial(guides.train_guide, weights=teacher_weights(profile, p.teacher, s)),
                        device=device, train_missing=train_missing, required_metrics=TEACHER_METRICS)
            for s in p.ensemble]


def resolve_teachers(profile: str, ensemble: Ensemble, device: str = "auto",
                     train_missing: bool | None = None) -> list[nn.Module]:
    """The ensemble's trained teachers (on the CPU, in eval mode); weights missing from the cache (a fresh
    clone) are retrained into it, the stored records stay as they are."""
    models = []
    for seed in ensemble.seeds:
        _teacher_record(profile, ensemble.teacher, seed, device, train_missing)
        model = build_guide(ensemble.teacher, ensemble.teacher.num_classes)
        model.load_state_dict(load_torch(teacher_weights(profile, ensemble.teacher, seed)))
        models.append(model.eval())
    return models


# ----------------------------------------------------------------------------- students


def _mimic_targets(c: StudentConfig, ensemble: Ensemble, splits: HeldOutSplits, teachers: list[nn.Module],
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """The transfer set's inputs, the ensemble's mean logits on them, and the ensemble's test accuracy; both
    sets of logits cached (:func:`untrainable.mimic.transfer_set`), keyed by the teachers' records and the
    images."""
    teachers = [t.to(device) for t in teachers]
    key = "|".join(run_key(TEACHER_EXPERIMENT, ensemble.teacher, s) for s in ensemble.seeds)
    images, logits = mimic.transfer_set(teachers, splits.train.images, splits.train.normalized, c.views, TRANSFER_SEED,
                                        device, cache_key=f"{key}|train{c.n_train}|valid{c.n_valid}|d{c.data_seed}")
    _, z_test = mimic.transfer_set(teachers, splits.test.images, splits.test.normalized, 0, TRANSFER_SEED, device,
                                   cache_key=f"{key}|test{c.n_test}|d{c.data_seed}")
    accuracy = (z_test.argmax(1) == splits.test.labels).float().mean().item()
    return splits.train.normalized(images), logits, {"teacher_test_acc": accuracy}


def train_student(c: StudentConfig, seed: int, device: torch.device, checkpoint: Path,
                  teachers: list[nn.Module] | None = None) -> dict[str, Any]:
    """Train one student on the transfer set: on its images' labels, or on ``teachers``' mean logits.
    The test split is evaluated where a checkpoint rule can pick an epoch and at the last
    (``test_every_epoch=False``)."""
    s = held_out_splits("cifar10", c.n_train, c.n_valid, c.n_test, c.data_seed)
    extra: dict[str, float] = {}
    if c.teachers is None:
        x = s.train.normalized(mimic.transfer_images(s.train.images, c.views, TRANSFER_SEED))
        target = s.train.labels.repeat(c.views + 1)
    elif not teachers:
        raise ValueError("a mimic student needs its resolved teachers (resolve_teachers(profile, c.teachers))")
    else:
        x, target, extra = _mimic_targets(c, c.teachers, s, teachers, device)
    generator = seed_everything(seed)
    model = mimic.ShallowStudent(hidden=c.hidden, bottleneck=c.bottleneck, conv_channels=c.conv_channels,
                                 dropout=c.dropout)
    settings = FitSettings(epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, precision=c.precision)
    history = fit(model, (x, target), s.test.tensors(), settings, generator=generator, device=device,
                  loss_fn=mimic.mimic_loss_fn(c.loss), checkpoint=checkpoint, valid=s.valid.tensors(),
                  test_every_epoch=False, desc=f"student {_cell(c)} lr {c.lr:g} seed {seed}")
    metrics = {"test_acc": history[-1]["test_acc"], "train_acc": history[-1]["train_acc"],
               "best_valid_acc": max(h["valid_acc"] for h in history), "parameters": count_parameters(model),
               "train_time_s": sum(h["epoch_time_s"] for h in history), **extra}
    return {"metrics": metrics, "history": history}


def _student_metrics(c: StudentConfig) -> tuple[str, ...]:
    """What a student's record must carry (a mimic student also the ensemble's test accuracy)."""
    return REQUIRED_METRICS + (("teacher_test_acc",) if c.teachers else ())


def _record(profile: str, experiment: str, name: str, c: StudentConfig, seed: int, device: str,
            train_missing: bool | None, resolved: dict[Ensemble, list[nn.Module]]) -> dict[str, Any]:
    """One student's record: loaded when stored, else trained, its teachers resolved first (once per
    ensemble, kept in ``resolved``) and only when it must train."""
    log(f"{experiment}/{name} seed {seed} ({profile})")
    if c.teachers is not None and c.teachers not in resolved and will_train(experiment, profile, name, c, seed,
                                                                             train_missing=train_missing):
        resolved[c.teachers] = resolve_teachers(profile, c.teachers, device, train_missing)
    train = functools.partial(train_student, teachers=resolved.get(c.teachers) if c.teachers else None)
    return run_or_load(experiment, profile, name, c, seed, train, device=device, train_missing=train_missing,
                       required_metrics=_student_metrics(c))


def run_sweep(profile: str, widths: Iterable[int] | None = None, device: str = "auto", *,
              train_missing: bool | None = None, smoke: bool = False) -> list[dict[str, Any]]:
    """The record of every sweep run (of ``widths``; seed :data:`SWEEP_SEED`): loaded, or trained."""
    resolved: dict[Ensemble, list[nn.Module]] = {}
    return [_record(profile, SWEEP_EXPERIMENT, sweep_name(c), c, SWEEP_SEED, device, train_missing, resolved)
            for c in sweep_configs(preset(profile, smoke), widths)]


def run(profile: str = "quick", seeds: Iterable[int] | None = None, device: str = "auto", *,
        widths: Iterable[int] | None = None, train_missing: bool | None = None,
        smoke: bool = False) -> list[dict[str, Any]]:
    """The records of the teachers and of every run (of ``widths``) for its seeds: the sweep first (loaded,
    or trained where allowed), then each cell at the learning rate it chose. Each record carries ``stage``."""
    p = preset(profile, smoke)
    teachers = [{**r, "stage": "teachers"} for r in teacher_records(profile, device, train_missing=train_missing,
                                                                      smoke=smoke)]
    sweep = run_sweep(profile, widths, device, train_missing=train_missing, smoke=smoke)
    resolved: dict[Ensemble, list[nn.Module]] = {}
    runs = [_record(profile, EXPERIMENT, run_name(c), c, s, device, train_missing, resolved)
            for c in run_configs(p, learning_rates(p, sweep), widths) for s in run_seeds(p, c, seeds)]
    return teachers + [{**r, "stage": "sweep"} for r in sweep] + [{**r, "stage": "runs"} for r in runs]


def planned_runs(profile: str, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """Every record the comparison needs that can be named now: the teachers, the sweep, and the runs of
    the cells whose learning rate the preset holds (the others await the sweep)."""
    p = preset(profile)
    teachers = [PlannedRun(TEACHER_EXPERIMENT, guides.guide_name(p.teacher), p.teacher, s, TEACHER_METRICS)
                for s in p.ensemble]
    sweep = [PlannedRun(SWEEP_EXPERIMENT, sweep_name(c), c, SWEEP_SEED, _student_metrics(c))
             for c in sweep_configs(p)]
    chosen = [student_config(p, cell, p.chosen_lrs[cell]) for cell in cells(p) if cell in p.chosen_lrs]
    return teachers + sweep + [PlannedRun(EXPERIMENT, run_name(c), c, s, _student_metrics(c))
                               for c in chosen for s in run_seeds(p, c, seeds)]


# ----------------------------------------------------------------------------- where the comparison holds


def ensemble_accuracy(records: list[dict[str, Any]]) -> float:
    """The teacher ensemble's test accuracy (mean logits), as every mimic student measured it when it trained;
    students that disagree (two ensembles among the records) are an error."""
    found = {r["metrics"]["teacher_test_acc"] for r in records if r["config"]["loss"] == "logits"}
    if not found:
        raise ValueError(f"{NAME}: no mimic student among the records: the ensemble's accuracy is read from them")
    if max(found) - min(found) > 1e-6:
        raise ValueError(f"{NAME}: the mimic students disagree on the ensemble's test accuracy: {sorted(found)}")
    return found.pop()


def preconditions(records: list[dict[str, Any]]) -> list[CheckedPrecondition]:
    """Whether the comparison can be read in the students' records (of one stage): the ensemble beats the best
    label-trained width by :data:`MIN_TEACHER_GAP` points (the book's estimate of each width's mean), and every
    student is trained to a plateau (:data:`PLATEAU_POINTS`, :data:`PLATEAU_FRACTION`)."""
    labels: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r["config"]["loss"] == "labels":
            labels.setdefault(str(_cell(r["config"])), []).append(r)
    gap = teacher_beats_best_student(ensemble_accuracy(records), labels, "the teacher ensemble", MIN_TEACHER_GAP)
    return [gap, trained_to_plateau(records, "the students", PLATEAU_FRACTION, PLATEAU_POINTS)]


# ----------------------------------------------------------------------------- what it costs

#: Images per evaluation batch (:class:`untrainable.train.FitSettings`' default).
EVAL_BATCH = 1000


def _fastest(step: Any, steps: int) -> float:
    """The fastest of ``steps`` calls of ``step`` after one warm-up: on a shared machine the fastest is the
    one least disturbed, so an estimate from it is a lower bound of what a busy machine takes."""
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return min(times[1:])


def _timed(model: nn.Module, loss_fn: Any, target: torch.Tensor, batch: int, lr: float, precision: str,
           steps: int, optimizer: str = "adam") -> dict[str, float]:
    """Seconds per training step of ``model`` on random images (one thread, ``precision``) and per evaluation
    batch of :data:`EVAL_BATCH` images without gradients."""
    device = torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    channels_last(model, precision, device)  # as fit() lays out a bf16 convolutional net, before its optimiser
    x = to_device(torch.randn(EVAL_BATCH, 3, 32, 32, generator=gen), device, model)
    opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def train_step() -> None:
        opt.zero_grad()
        with autocast(device, precision):
            loss = loss_fn(model, x[:batch], target[:batch])[0]
        loss.backward()
        opt.step()

    def eval_batch() -> None:
        with torch.no_grad(), autocast(device, precision):
            model(x)

    try:
        model.train()
        step_s = _fastest(train_step, steps)
        model.eval()
        return {"step_s": step_s, "eval_batch_s": _fastest(eval_batch, steps)}
    finally:
        torch.set_num_threads(threads)


def step_seconds(c: StudentConfig, steps: int = 5) -> dict[str, float]:
    """Seconds per training step of student ``c`` and per evaluation batch, on one thread of this machine."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = mimic.ShallowStudent(hidden=c.hidden, bottleneck=c.bottleneck, conv_channels=c.conv_channels,
                                     dropout=c.dropout)
        target = torch.randint(0, 10, (c.batch_size,)) if c.loss == "labels" else torch.randn(c.batch_size, 10)
        return _timed(model, mimic.mimic_loss_fn(c.loss), target, c.batch_size, c.lr, c.precision, steps)


def teacher_step_seconds(g: guides.GuideConfig, steps: int = 3) -> dict[str, float]:
    """Seconds per training step of teacher ``g`` (untrained weights: the same shapes) and per evaluation batch."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_guide(g, g.num_classes)
        return _timed(model, mimic.mimic_loss_fn("labels"), torch.randint(0, 10, (g.batch_size,)), g.batch_size,
                      g.lr, g.precision, steps, g.optimizer)


def _n_train(n_train: int | None, n_valid: int) -> int:
    """Training images: ``n_train``, or CIFAR-10's 50,000 less the validation split."""
    return n_train if n_train is not None else 50_000 - n_valid


def student_seconds(c: StudentConfig, timing: Mapping[str, float]) -> float:
    """One student's estimated seconds: its steps over the transfer set, and every epoch's evaluation of the
    validation and test splits (an upper bound: the test split is evaluated only where a rule can pick)."""
    batches = math.ceil(_n_train(c.n_train, c.n_valid) * (1 + c.views) / c.batch_size)
    evaluated = math.ceil(c.n_valid / EVAL_BATCH) + math.ceil((c.n_test or 10_000) / EVAL_BATCH)
    return c.epochs * (batches * timing["step_s"] + evaluated * timing["eval_batch_s"])


def _teacher_seconds(g: guides.GuideConfig, timing: Mapping[str, float]) -> float:
    """One teacher's estimated seconds: its steps, and every epoch's validation and test-curve evaluation."""
    batches = math.ceil(_n_train(g.n_train, g.n_valid) / g.batch_size)
    evaluated = math.ceil(g.n_valid / EVAL_BATCH) + math.ceil((g.n_test_curve or g.n_test or 10_000) / EVAL_BATCH)
    return g.epochs * (batches * timing["step_s"] + evaluated * timing["eval_batch_s"])


def _logit_seconds(p: StrongPreset, timing: Mapping[str, float]) -> float:
    """The ensemble's forward passes over the transfer set and the test split, computed once and cached (timed in
    the teachers' training precision; the logits are computed in fp32, so in bf16 profiles a lower bound)."""
    images = _n_train(p.n_train, p.teacher.n_valid) * (1 + p.views) + (p.n_test or 10_000)
    return len(p.ensemble) * math.ceil(images / EVAL_BATCH) * timing["eval_batch_s"]


def estimate(profile: str, stage: str, widths: Iterable[int] | None = None, seeds: Iterable[int] | None = None,
             steps: int = 5, timings: dict[Any, dict[str, float]] | None = None) -> list[dict[str, Any]]:
    """The planned work of ``stage``, a row each (a teacher, the ensemble's logits, a student): whether it
    is stored and its estimated one-thread seconds, from steps timed once per network on this machine
    (:func:`step_seconds`, :func:`teacher_step_seconds`; ``timings``: the ones already measured, by cell or
    ``"teacher"``, filled in); a cell whose learning rate is not chosen yet is timed at the first sweep rate
    (time does not depend on it)."""
    p = preset(profile)
    timings = {} if timings is None else timings
    if "teacher" not in timings and stage in ("teachers", "sweep"):
        timings["teacher"] = teacher_step_seconds(p.teacher)
    if stage == "teachers":
        wanted = p.ensemble if seeds is None else check_seeds(tuple(seeds))
        return [{"name": f"{TEACHER_EXPERIMENT}/{guides.guide_name(p.teacher)} seed {s}", **timings["teacher"],
                 "stored": find_record(PlannedRun(TEACHER_EXPERIMENT, guides.guide_name(p.teacher), p.teacher,
                                                  s).path(profile)) is not None,
                 "lr chosen": True, "estimated_s": _teacher_seconds(p.teacher, timings["teacher"])} for s in wanted]
    if stage == "sweep":
        planned = [PlannedRun(SWEEP_EXPERIMENT, sweep_name(c), c, SWEEP_SEED) for c in sweep_configs(p, widths)]
        rows = [{"name": f"the ensemble's logits ({len(p.ensemble)} teachers, computed once)", **timings["teacher"],
                 "stored": False, "lr chosen": True, "estimated_s": _logit_seconds(p, timings["teacher"])}]
    else:
        lrs = {cell: p.chosen_lrs.get(cell, p.sweep_lrs[0]) for cell in cells(p, widths)}
        planned = [PlannedRun(EXPERIMENT, run_name(c), c, s) for c in run_configs(p, lrs, widths)
                   for s in run_seeds(p, c, seeds)]
        rows = []
    for r in planned:
        cell = _cell(r.config)
        if cell not in timings:
            timings[cell] = step_seconds(r.config, steps)
        rows.append({"name": f"{r.experiment}/{r.name} seed {r.seed}", **timings[cell],
                     "stored": find_record(r.path(profile)) is not None,
                     "lr chosen": stage == "sweep" or cell in p.chosen_lrs,
                     "estimated_s": student_seconds(r.config, timings[cell])})
    return rows


# ----------------------------------------------------------------------------- from a shell


def main(argv: list[str] | None = None) -> None:
    """Train the comparison's records from a shell, one stage at a time (missing records are trained), or with
    ``--estimate`` print the stage's planned work (without ``--stage``: the whole plan's) and its estimated
    one-thread cost (nothing trains).

    Stages: ``teachers`` (the ensemble's ResNet-18s; ``--seeds`` picks teachers), ``sweep`` (every cell at each
    sweep learning rate, seed 100), ``runs`` (every cell at the learning rate the sweep chose; in ``full`` the
    sweep must be stored first). ``--widths`` splits the sweep or the runs over parallel one-thread processes
    (the ensemble's logits are computed once, under a lock); an interrupted run resumes.
    """
    parser = shell_parser(f"python -m {NAME}", main.__doc__, "distinct seeds of the teachers or runs stage "
                                                             "(default: the preset's)")
    parser.add_argument("--stage", choices=STAGES, help="required to train; with --estimate, default: every stage")
    parser.add_argument("--widths", type=int, nargs="*", help="default: every width of the preset")
    parser.add_argument("--estimate", action="store_true", help="print the planned work and its cost; train nothing")
    args = parser.parse_args(argv)
    seeds = shell_seeds(parser, args.seeds)
    _check_arguments(parser, args, seeds)
    if args.estimate:
        timings: dict[Any, dict[str, float]] = {}
        stages = STAGES if args.stage is None else (args.stage,)
        _print_estimate([row for stage in stages for row in estimate(args.profile, stage, args.widths or None,
                                                                     seeds, timings=timings)])
    elif args.stage == "teachers":
        run_teachers(args.profile, seeds, args.device, train_missing=True)
    elif args.stage == "sweep":
        run_sweep(args.profile, args.widths or None, args.device, train_missing=True)
    else:
        _shell_runs(args.profile, args.widths or None, seeds, args.device)


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, seeds: tuple[int, ...] | None) -> None:
    """End the command (``parser.error``, exit status 2) on arguments its stage cannot take, naming them."""
    widths = preset(args.profile).widths
    if args.stage is None and not args.estimate:
        parser.error(f"--stage: name the stage to train ({', '.join(STAGES)})")
    if args.stage is None and (seeds is not None or args.widths):
        parser.error("--seeds and --widths belong to one stage: name it (--stage)")
    if args.stage == "sweep" and seeds is not None:
        parser.error(f"--seeds: the sweep stage has its own seed ({SWEEP_SEED})")
    if args.stage == "teachers" and args.widths:
        parser.error("--widths: the teachers stage has no widths (the ensemble's ResNet-18s)")
    if args.widths and set(args.widths) - set(widths):
        parser.error(f"--widths: {sorted(set(args.widths) - set(widths))} are not in the preset's {widths}")


def _shell_runs(profile: str, widths: list[int] | None, seeds: tuple[int, ...] | None, device: str) -> None:
    """The runs stage: every cell (of ``widths``) at the learning rate the stored sweep chose, trained."""
    p = preset(profile)
    lrs = learning_rates(p, run_sweep(profile, widths, device, train_missing=False))
    resolved: dict[Ensemble, list[nn.Module]] = {}
    for c in run_configs(p, lrs, widths):
        for s in run_seeds(p, c, seeds):
            _record(profile, EXPERIMENT, run_name(c), c, s, device, True, resolved)


def _print_estimate(rows: list[dict[str, Any]]) -> None:
    """The planned work, one a line, and the total estimated one-thread minutes of what is not stored yet."""
    for r in rows:
        lr = "" if r["lr chosen"] else "  (lr not chosen yet)"
        print(f"{r['name']}: {'stored' if r['stored'] else 'missing'}, {r['step_s'] * 1000:.1f} ms/step, "
              f"{r['eval_batch_s'] * 1000:.0f} ms/eval batch, about {r['estimated_s'] / 60:.1f} min{lr}")
    todo = [r["estimated_s"] for r in rows if not r["stored"]]
    print(f"{len(rows)} rows, {len(todo)} missing: about {float(np.sum(todo)) / 60:.0f} minutes on one thread of "
          "this machine (the fastest measured step: the CPU is shared with other trainings, so a lower bound)")


if __name__ == "__main__":
    main()
