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
2. **sweep**: each loss at the swept widths (``sweep_widths``; in ``full`` the widest only) at each of
   ``sweep_lrs``, seed :data:`SWEEP_SEED` (no reported run uses it); each loss's learning rate is chosen on
   validation by :func:`untrainable.analysis.selection.choose` with the book's criterion :data:`SELECTION`
   and used at every width;
3. **runs**: every cell at its chosen learning rate, for ``seeds`` (the widest width: ``widest_seeds``, the
   headline "mimic vs labels at the widest student").

:func:`preconditions` says whether the comparison can be read: the ensemble beats the best label-trained
student by at least :data:`MIN_TEACHER_GAP` points, and every setting's students are trained to a plateau (the
best of their validation accuracy, averaged over seeds epoch by epoch, rose by less than :data:`PLATEAU_POINTS`
over the last :data:`PLATEAU_FRACTION` of epochs). It is a section of chapter 07
(:data:`untrainable.experiments.SECTIONS`), the strong-teacher regime beside the chapter's weak one; what the
section shows is :mod:`untrainable.experiments.mimic_strong_tables`.

What it costs in ``full`` (:func:`estimate`, ``--estimate``): :mod:`untrainable.experiments.mimic_strong_costs`.
The configs and presets are :mod:`untrainable.experiments.mimic_strong_configs` (both re-exported here).

From a shell (``UNTRAINABLE_THREADS=1``; ``--seeds`` and ``--widths`` split a stage over processes)::

    python -m untrainable.experiments.mimic_strong --estimate
    python -m untrainable.experiments.mimic_strong --stage teachers --seeds 1
    python -m untrainable.experiments.mimic_strong --stage sweep --widths 4096
    python -m untrainable.experiments.mimic_strong --stage runs --widths 256 1024 --seeds 0 1
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from untrainable import mimic
from untrainable.analysis.preconditions import CheckedPrecondition, teacher_beats_best_student, trained_to_plateau
from untrainable.data import HeldOutSplits, held_out_splits
from untrainable.experiments import PlannedRun, print_estimate, shell_parser, shell_seeds
from untrainable.experiments import image_guides as guides
from untrainable.experiments.mimic_strong_configs import (EXPERIMENT, LOSSES, NAME, PRESETS, REQUIRED_METRICS,
                                                          SELECTION, STAGES, SWEEP_EXPERIMENT, SWEEP_SEED,
                                                          TEACHER_EXPERIMENT, TEACHER_METRICS, TRANSFER_SEED, Cell,
                                                          Ensemble, StrongPreset, StudentConfig, cell_of, cells,
                                                          chosen_lrs, learning_rates, preset, run_configs, run_name,
                                                          run_seeds, shrink, student_config, student_metrics,
                                                          one_teacher_configs, is_one_teacher,
                                                          sweep_configs, sweep_name, sweep_widths_for, teacher_config)
from untrainable.experiments.mimic_strong_costs import (EVAL_BATCH, estimate, step_seconds, student_seconds,
                                                        teacher_step_seconds)
from untrainable.files import load_torch
from untrainable.models import build_guide, count_parameters
from untrainable.paths import cache_root
from untrainable.profiles import check_seeds
from untrainable.results import run_key, run_or_load, run_with_weights, will_train
from untrainable.runtime import log, seed_everything
from untrainable.train import FitSettings, fit

# with the names of mimic_strong_configs (configs, presets) and mimic_strong_costs (--estimate), re-exported
__all__ = ["EXPERIMENT", "SWEEP_EXPERIMENT", "TEACHER_EXPERIMENT", "SWEEP_SEED", "TRANSFER_SEED", "SELECTION", "NAME",
           "STAGES", "LOSSES", "REQUIRED_METRICS", "TEACHER_METRICS", "MIN_TEACHER_GAP", "PLATEAU_FRACTION",
           "PLATEAU_POINTS", "Ensemble", "StudentConfig", "Cell", "StrongPreset", "teacher_config", "PRESETS",
           "shrink", "preset", "cells", "student_config", "sweep_name", "run_name", "sweep_configs",
           "sweep_widths_for", "run_configs", "run_seeds", "chosen_lrs", "learning_rates", "teacher_weights",
           "run_teachers", "teacher_records", "resolve_teachers", "train_student", "run_sweep", "run", "planned_runs",
           "ensemble_accuracy", "preconditions", "EVAL_BATCH", "step_seconds", "teacher_step_seconds",
           "student_seconds", "estimate", "main"]

#: The ensemble must beat the best label-trained student by this many points (issue #32).
MIN_TEACHER_GAP = 8.0
#: A setting's students are at a plateau when the best of their validation accuracy, averaged over seeds, rose by
#: less than PLATEAU_POINTS over the last PLATEAU_FRACTION of epochs
#: (:func:`untrainable.analysis.preconditions.trained_to_plateau`).
PLATEAU_FRACTION = 0.2
PLATEAU_POINTS = 0.5


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
                  test_every_epoch=False, desc=f"student {cell_of(c)} lr {c.lr:g} seed {seed}")
    metrics = {"test_acc": history[-1]["test_acc"], "train_acc": history[-1]["train_acc"],
               "best_valid_acc": max(h["valid_acc"] for h in history), "parameters": count_parameters(model),
               "train_time_s": sum(h["epoch_time_s"] for h in history), **extra}
    return {"metrics": metrics, "history": history}


def _record(profile: str, experiment: str, name: str, c: StudentConfig, seed: int, device: str,
            train_missing: bool | None, resolved: dict[Ensemble, list[nn.Module]], force: bool = False
            ) -> dict[str, Any]:
    """One student's record: loaded when stored (unless ``force``), else trained, its teachers resolved first
    (once per ensemble, kept in ``resolved``) and only when it must train."""
    log(f"{experiment}/{name} seed {seed} ({profile})")
    if c.teachers is not None and c.teachers not in resolved and will_train(experiment, profile, name, c, seed, force,
                                                                             train_missing=train_missing):
        resolved[c.teachers] = resolve_teachers(profile, c.teachers, device, train_missing)
    train = functools.partial(train_student, teachers=resolved.get(c.teachers) if c.teachers else None)
    return run_or_load(experiment, profile, name, c, seed, train, device=device, force=force,
                       train_missing=train_missing, required_metrics=student_metrics(c))


def run_sweep(profile: str, widths: Iterable[int] | None = None, device: str = "auto", force: bool = False, *,
              train_missing: bool | None = None, smoke: bool = False) -> list[dict[str, Any]]:
    """The record of every sweep run (of ``widths``; seed :data:`SWEEP_SEED`): loaded, or trained (``force``:
    retrained)."""
    resolved: dict[Ensemble, list[nn.Module]] = {}
    return [_record(profile, SWEEP_EXPERIMENT, sweep_name(c), c, SWEEP_SEED, device, train_missing, resolved, force)
            for c in sweep_configs(preset(profile, smoke), widths)]


def run(profile: str = "quick", seeds: Iterable[int] | None = None, device: str = "auto", force: bool = False, *,
        widths: Iterable[int] | None = None, train_missing: bool | None = None,
        smoke: bool = False) -> list[dict[str, Any]]:
    """The records of the teachers and of every run (of ``widths``) for its seeds: the sweep first (loaded,
    or trained where allowed), then each cell at the learning rate it chose. Each record carries ``stage``.
    ``force`` retrains the students; the teachers are chapter 04's guides, forced from that chapter."""
    p = preset(profile, smoke)
    teachers = [{**r, "stage": "teachers"} for r in teacher_records(profile, device, train_missing=train_missing,
                                                                      smoke=smoke)]
    sweep = run_sweep(profile, sweep_widths_for(p, widths), device, force, train_missing=train_missing, smoke=smoke)
    resolved: dict[Ensemble, list[nn.Module]] = {}
    runs = [_record(profile, EXPERIMENT, run_name(c), c, s, device, train_missing, resolved, force)
            for c in run_configs(p, learning_rates(p, sweep), widths) for s in run_seeds(p, c, seeds)]
    return teachers + [{**r, "stage": "sweep"} for r in sweep] + [{**r, "stage": "runs"} for r in runs]


def planned_runs(profile: str, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """Every record the comparison needs that can be named now: the sweep, and the runs of the cells whose
    learning rate the preset holds (the others await the sweep). The teachers are not listed: they are guides,
    and chapter 04 plans the first; listing the others would make page 98's rows of chapter 04's every-image
    guide pool them, and wait for this chapter to train them. :func:`run` reads them as it reads any record
    (loaded, never retrained silently in ``full``)."""
    p = preset(profile)
    sweep = [PlannedRun(SWEEP_EXPERIMENT, sweep_name(c), c, SWEEP_SEED, student_metrics(c))
             for c in sweep_configs(p)]
    chosen = ([student_config(p, cell, p.chosen_lrs[cell]) for cell in cells(p) if cell in p.chosen_lrs]
              + one_teacher_configs(p, p.chosen_lrs))
    return sweep + [PlannedRun(EXPERIMENT, run_name(c), c, s, student_metrics(c))
                               for c in chosen for s in run_seeds(p, c, seeds)]


# ----------------------------------------------------------------------------- where the comparison holds


def ensemble_accuracy(records: list[dict[str, Any]]) -> float:
    """The teacher ensemble's test accuracy (mean logits), as every mimic student measured it when it trained;
    students that disagree (two ensembles among the records) are an error."""
    found = {r["metrics"]["teacher_test_acc"] for r in records
             if r["config"]["loss"] == "logits" and not is_one_teacher(r["config"])}
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
            labels.setdefault(str(cell_of(r["config"])), []).append(r)
    gap = teacher_beats_best_student(ensemble_accuracy(records), labels, "the teacher ensemble", MIN_TEACHER_GAP)
    return [gap, trained_to_plateau(records, "the students", PLATEAU_FRACTION, PLATEAU_POINTS)]


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
        rows = [row for stage in stages for row in estimate(args.profile, stage, args.widths or None, seeds,
                                                             timings=timings)]
        print_estimate(rows, label=lambda r: r["name"], noun="rows",
                       cost=lambda r: f"{r['step_s'] * 1000:.1f} ms/step, {r['eval_batch_s'] * 1000:.0f} ms/eval batch",
                       note="the fastest measured step: the CPU is shared with other trainings, so a lower bound")
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
    lrs = learning_rates(p, run_sweep(profile, sweep_widths_for(p, widths), device, train_missing=False))
    resolved: dict[Ensemble, list[nn.Module]] = {}
    for c in run_configs(p, lrs, widths):
        for s in run_seeds(p, c, seeds):
            _record(profile, EXPERIMENT, run_name(c), c, s, device, True, resolved)


if __name__ == "__main__":
    main()
