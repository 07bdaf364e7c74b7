"""Chapter 07: do deep nets really need to be deep? Shallow students mimicking a deep CNN on CIFAR-10.

Runs come in two kinds, each with its own records:

* ``mimic_teacher``: the deep teacher CNNs (Ba & Caruana's 3 × [conv + pool] + fully connected
  layer, dropout), trained on labels. Their weights are cached (never committed), including
  snapshots at earlier epochs, which serve as teachers of lower quality.
* ``mimic_student``: a shallow student trained either on labels or on a teacher's (or an
  ensemble's) logits over a transfer set of training images plus augmented views.

Every figure of the chapter is a sweep, a set of named student configs (:data:`SWEEPS`, with the
configs and the profiles' sizes, in :mod:`.mimic_sweeps`; re-exported here for the notebook). A
teacher's weights are resolved (:func:`resolve_teachers`, retrained into the cache if they are
missing, never over the teacher's record) only for a student that must be trained.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from untrainable import mimic
from untrainable.data import load_cifar10
from untrainable.experiments import PlannedRun, checked_seeds, shell_parser, shell_seeds
from untrainable.files import load_torch, save_torch_atomic
from untrainable.models import count_parameters
from untrainable.experiments.mimic_sweeps import (PRESETS, SWEEPS, Preset, StudentConfig, TeacherConfig, TeacherSpec,
                                                 bottleneck_sweep, configs, loss_sweep, overfit_pair, preset,
                                                 quality_sweep, size_sweep)
from untrainable.results import config_differences, run_key, run_or_load, run_with_weights, will_train
from untrainable.runtime import log, seed_everything
from untrainable.train import FitSettings, fit

__all__ = ["EXPERIMENT", "TEACHER_EXPERIMENT", "STUDENT_EXPERIMENT", "REQUIRED_METRICS", "TEACHER_METRICS",
           "TeacherConfig", "TeacherSpec", "StudentConfig",
           "Preset", "PRESETS", "preset", "SWEEPS", "configs", "planned_runs", "teacher_metrics", "student_metrics",
           "build_teacher", "weights_path", "train_teacher", "resolve_teachers", "build_student", "train_student",
           "run", "records_by_sweep", "ensemble_accuracy", "size_sweep", "quality_sweep", "loss_sweep",
           "bottleneck_sweep", "overfit_pair", "main"]

TEACHER_EXPERIMENT = "mimic_teacher"
STUDENT_EXPERIMENT = "mimic_student"
EXPERIMENT = STUDENT_EXPERIMENT  # the chapter's records; its teachers have their own folder
#: What chapter 07 and page 98 read of every student's record (a mimic student's also ``teacher_test_acc``,
#: :func:`student_metrics`) and of every teacher's (with each snapshot's accuracy, :func:`teacher_metrics`).
REQUIRED_METRICS = ("test_acc", "best_test_acc", "train_acc", "parameters")
TEACHER_METRICS = ("test_acc", "train_acc")


# ---------------------------------------------------------------------------------------------
# Teachers
# ---------------------------------------------------------------------------------------------


def _cifar(n_train: int | None, n_test: int | None):
    train = load_cifar10(train=True).subset(n_train, seed=0)
    test = load_cifar10(train=False).subset(n_test, seed=0)
    return train, test


def build_teacher(config: TeacherConfig) -> nn.Module:
    """The teacher of ``config``, untrained: Ba & Caruana's deep CNN (:class:`~untrainable.mimic.TeacherCNN`,
    3 x [conv of ``channels`` + pool] + a fully connected layer of ``hidden`` units, dropout), the only
    teacher the chapter trains."""
    return mimic.TeacherCNN(channels=config.channels, hidden=config.hidden, dropout=config.dropout)


def teacher_metrics(config: TeacherConfig) -> tuple[str, ...]:
    """What a teacher's record must carry: final accuracies and each snapshot's test accuracy."""
    return (*TEACHER_METRICS, *(f"test_acc_epoch{e}" for e in config.snapshots))


def weights_path(config: TeacherConfig, seed: int, epoch: int) -> Path:
    """Where the weights of a teacher after ``epoch`` epochs are cached (named by the run's key)."""
    return mimic.cached_path("teacher", f"{run_key(TEACHER_EXPERIMENT, config, seed)}-e{epoch}")


def train_teacher(config: TeacherConfig, seed: int, device: torch.device, checkpoint: Path) -> dict[str, Any]:
    """Train one teacher on labels, caching its weights at each snapshot epoch and at the end."""
    generator = seed_everything(seed)
    model = build_teacher(config)
    train, test = _cifar(config.n_train, config.n_test)

    def snapshot(epoch: int, m: nn.Module) -> None:
        if epoch in config.snapshots or epoch == config.epochs:
            save_torch_atomic(m.state_dict(), weights_path(config, seed, epoch))

    settings = FitSettings(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                           precision=config.precision)
    history = fit(model, train.tensors(), test.tensors(), settings,
                  generator=generator, device=device, checkpoint=checkpoint, desc=f"teacher seed {seed}",
                  on_epoch_end=snapshot)
    metrics = {"test_acc": history[-1]["test_acc"], "train_acc": history[-1]["train_acc"],
               "parameters": count_parameters(model),
               **{f"test_acc_epoch{e}": history[e - 1]["test_acc"] for e in config.snapshots}}
    return {"metrics": metrics, "history": history}


def _teacher_records(config: TeacherConfig, seeds: tuple[int, ...], profile: str, device: str,
                     force: bool) -> list[dict[str, Any]]:
    return [run_or_load(TEACHER_EXPERIMENT, profile, "teacher", config, s, train_teacher, device=device, force=force,
                        required_metrics=teacher_metrics(config)) for s in seeds]


def resolve_teachers(spec: TeacherSpec, profile: str, device: str = "auto") -> list[nn.Module]:
    """The teacher modules of ``spec`` (on the CPU, in eval mode).

    Weights missing from the cache (a fresh clone) are retrained into it; the teachers' stored
    records stay as they are (:func:`untrainable.results.run_with_weights`).
    """
    epoch = spec.epoch or spec.config.epochs
    models = []
    for seed in spec.seeds:
        weights = weights_path(spec.config, seed, epoch)
        run_with_weights(TEACHER_EXPERIMENT, profile, "teacher", spec.config, seed, weights, train_teacher,
                         device=device, required_metrics=teacher_metrics(spec.config))
        model = build_teacher(spec.config)
        model.load_state_dict(load_torch(weights))
        models.append(model.eval())
    return models


# ---------------------------------------------------------------------------------------------
# Students
# ---------------------------------------------------------------------------------------------


def build_student(config: StudentConfig) -> nn.Module:
    """The student of ``config``, untrained: a :class:`~untrainable.mimic.ShallowStudent` (one hidden ReLU
    layer of ``hidden`` units after an optional convolution and linear bottleneck), or with ``depth > 1``
    the deeper convolution-free control, a ReLU MLP of ``depth`` layers of ``hidden`` units
    (:func:`~untrainable.mimic.deep_mlp_of_width`; the size sweep picks ``hidden`` to match a budget)."""
    if config.depth > 1:
        return mimic.deep_mlp_of_width(config.hidden, depth=config.depth, dropout=config.dropout)
    return mimic.ShallowStudent(hidden=config.hidden, bottleneck=config.bottleneck,
                                conv_channels=config.conv_channels, dropout=config.dropout)


def student_metrics(config: StudentConfig) -> tuple[str, ...]:
    """What a student's record must carry (a mimic student also the teacher's test accuracy)."""
    return REQUIRED_METRICS + (("teacher_test_acc",) if config.teacher else ())


def train_student(config: StudentConfig, seed: int, device: torch.device, checkpoint: Path,
                  teachers: list[nn.Module] | None = None) -> dict[str, Any]:
    """Train one student on labels, or on ``teachers``' mean logits over the transfer set."""
    train_data, test = _cifar(config.n_train, config.n_test)
    x_test = test.normalized()
    extra: dict[str, Any] = {}
    if config.teacher is None:  # the transfer set's images, each with its original's label
        images = mimic.transfer_images(train_data.images, config.views, seed=0)
        x, target = train_data.normalized(images), train_data.labels.repeat(config.views + 1)
    else:
        if not teachers:
            raise ValueError("a mimic student needs its resolved teachers (resolve_teachers(config.teacher, ...))")
        teachers = [t.to(device) for t in teachers]
        key = "|".join(run_key(TEACHER_EXPERIMENT, config.teacher.config, s) for s in config.teacher.seeds)
        images, target = mimic.transfer_set(
            teachers, train_data.images, train_data.normalized, config.views,
            seed=0, device=device, cache_key=f"{key}|e{config.teacher.epoch}")
        x = train_data.normalized(images)
        z_test = mimic.ensemble_logits(teachers, x_test, device)
        extra["teacher_test_acc"] = (z_test.argmax(1) == test.labels).float().mean().item()
    generator = seed_everything(seed)
    model = build_student(config)
    settings = FitSettings(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                           precision=config.precision)
    history = fit(model, (x, target), (x_test, test.labels), settings, generator=generator, device=device,
                  loss_fn=mimic.mimic_loss_fn(config.loss, config.temperature), checkpoint=checkpoint,
                  desc=f"student h={config.hidden} {config.loss} seed {seed}")
    metrics = {"test_acc": history[-1]["test_acc"], "best_test_acc": max(h["test_acc"] for h in history),
               "train_acc": history[-1]["train_acc"], "parameters": count_parameters(model),
               "train_time_s": sum(h["epoch_time_s"] for h in history), **extra}
    return {"metrics": metrics, "history": history}


def _students(sweep: str, students: dict[str, StudentConfig], profile: str, seeds: tuple[int, ...], device: str,
              force: bool, teachers: dict[TeacherSpec, list[nn.Module]]) -> list[dict[str, Any]]:
    """The records of one sweep; teachers are resolved (once per spec, kept in ``teachers``) only
    for a student that must be trained."""
    records = []
    for name, cfg in students.items():
        for s in seeds:
            log(f"{STUDENT_EXPERIMENT}/{name} seed {s} ({profile})")
            spec = cfg.teacher
            if spec is not None and spec not in teachers and will_train(STUDENT_EXPERIMENT, profile, name, cfg, s,
                                                                         force):
                teachers[spec] = resolve_teachers(spec, profile, device)
            train = partial(train_student, teachers=teachers.get(spec) if spec else None)
            record = run_or_load(STUDENT_EXPERIMENT, profile, name, cfg, s, train, device=device, force=force,
                                 required_metrics=student_metrics(cfg))
            records.append({**record, "sweep": sweep})
    return records


def planned_runs(profile: str, seeds: tuple[int, ...] | None = None) -> list[PlannedRun]:
    """Every record of the chapter: the teachers of the ensemble, then each sweep's students for each seed
    (default: the preset's).

    Sweeps share some configs under other names; each name is planned, and a stored twin counts.
    """
    p = preset(profile)
    seeds = checked_seeds(seeds, p.seeds)
    runs = [PlannedRun(TEACHER_EXPERIMENT, "teacher", p.teacher, s, teacher_metrics(p.teacher)) for s in p.ensemble]
    for students in configs(profile).values():
        runs += [PlannedRun(STUDENT_EXPERIMENT, name, cfg, s, student_metrics(cfg)) for name, cfg in students.items()
                 for s in seeds]
    return runs


def run(profile: str = "quick", seeds: tuple[int, ...] | None = None, device: str = "auto", force: bool = False,
        smoke: bool = False, sweeps: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Every record of the chapter (or of ``sweeps``): the teachers, then each sweep's students.

    Each returned record carries ``sweep`` (``"teachers"`` for a teacher); :func:`records_by_sweep`
    groups them. ``seeds=None`` runs every sweep for the preset's seeds; the teachers are the preset's
    ensemble either way.
    """
    p = preset(profile, smoke)
    seeds = checked_seeds(seeds, p.seeds)
    unknown = set(sweeps or ()) - set(SWEEPS)
    if unknown:
        raise ValueError(f"unknown mimic sweep(s) {sorted(unknown)}: choose from {sorted(SWEEPS)}")
    records = [{**r, "sweep": "teachers"} for r in _teacher_records(p.teacher, p.ensemble, profile, device, force)]
    teachers: dict[TeacherSpec, list[nn.Module]] = {}
    for name, students in configs(profile, smoke).items():
        if sweeps is None or name in sweeps:
            records += _students(name, students, profile, seeds, device, force, teachers)
    return records


def records_by_sweep(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The records of :func:`run` grouped by their ``sweep`` (``"teachers"``, ``"size"``, ...), in order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if "sweep" not in r:
            raise ValueError(f"record {r.get('name')!r} carries no sweep: group the records that run() returns")
        groups.setdefault(r["sweep"], []).append(r)
    return groups


def ensemble_accuracy(records: list[dict[str, Any]], profile: str, smoke: bool = False) -> float:
    """Test accuracy of the profile's teacher ensemble (averaged logits), read from student records.

    Every student that mimics the ensemble measured it on the test set when it was trained
    (``teacher_test_acc``), so the figure needs no teacher weights, which are never committed.
    """
    p = preset(profile, smoke)
    ens = TeacherSpec(p.teacher, p.ensemble)
    found = {r["metrics"]["teacher_test_acc"] for r in records if r["experiment"] == STUDENT_EXPERIMENT
             and r["config"].get("teacher") is not None and not config_differences(r["config"]["teacher"], ens)}
    if not found:
        raise ValueError(f"no {profile!r} student record mimics the teacher ensemble: run the size sweep first")
    if max(found) - min(found) > 1e-6:
        raise ValueError(f"students disagree on the ensemble's test accuracy: {sorted(found)}")
    return found.pop()


def main(argv: list[str] | None = None) -> None:
    """Run the chapter from a shell, e.g. seeds in parallel background processes (records are shared)."""
    parser = shell_parser("python -m untrainable.experiments.mimic_students", main.__doc__,
                          "distinct seeds (default: the profile's)")
    parser.add_argument("--sweeps", nargs="*", choices=sorted(SWEEPS), default=None,
                        help="default: all; --sweeps without a name trains the teachers only")
    args = parser.parse_args(argv)
    run(args.profile, seeds=shell_seeds(parser, args.seeds), device=args.device,
        sweeps=None if args.sweeps is None else tuple(args.sweeps))


if __name__ == "__main__":
    main()
