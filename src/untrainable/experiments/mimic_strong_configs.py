"""Mimicry with a strong teacher (:mod:`untrainable.experiments.mimic_strong`) as configs: the students and
their teachers' ensemble (every field part of a record key), each profile's typed preset, and every run's name,
seeds and learning rate, as the sweep chooses it. How a run trains is the chapter module.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from untrainable.analysis.selection import BOOK_CRITERION, choose, group_by
from untrainable.config_checks import check_fields
from untrainable.experiments import checked_lrs, fcn_guidance
from untrainable.experiments import image_guides as guides
from untrainable.experiments import image_presets as ip
from untrainable.precision import PRECISIONS
from untrainable.profiles import check_profile, check_seeds, preset_table, replace_preset

__all__ = ["EXPERIMENT", "SWEEP_EXPERIMENT", "TEACHER_EXPERIMENT", "SWEEP_SEED", "TRANSFER_SEED", "SELECTION", "NAME",
           "STAGES", "LOSSES", "REQUIRED_METRICS", "TEACHER_METRICS", "Ensemble", "StudentConfig", "Cell",
           "StrongPreset", "teacher_config", "PRESETS", "shrink", "preset", "cells", "student_config", "cell_of",
           "student_metrics", "sweep_name", "run_name", "sweep_configs", "sweep_widths_for", "run_configs",
           "one_teacher_configs", "is_one_teacher", "run_seeds",
           "chosen_lrs", "learning_rates"]

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
    ``sweep_widths``: the widths the sweep trains (None: every width); a width outside them takes the
    learning rate its loss chose at the nearest swept width (:func:`chosen_lrs`). ``one_teacher_seeds``: the
    seeds of the widest mimic student regressing the first teacher alone (Ba & Caruana's one-teacher
    student, :func:`one_teacher_configs`). ``chosen_lrs``: each cell's learning rate as the sweep chose it,
    written in once the sweep is stored (:func:`run` refuses a preset that disagrees)."""

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
    sweep_widths: tuple[int, ...] | None = None
    one_teacher_seeds: tuple[int, ...] = ()
    chosen_lrs: Mapping[Cell, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sweep_widths is not None and not set(self.sweep_widths) <= set(self.widths):
            raise ValueError(f"{NAME}: sweep_widths {self.sweep_widths} are not all in the widths {self.widths}")


def teacher_config(profile: str) -> guides.GuideConfig:
    """The teacher of ``profile``: chapter 04's ``resnet18-every-image`` guide (in ``full``: width 16, 15
    epochs of SGD with a cosine schedule, crop and flip, 49,000 training images and 1,000 held out)."""
    return ip.guide_configs(fcn_guidance.PRESETS[check_profile(profile)])["resnet_all"]


PRESETS: dict[str, StrongPreset] = preset_table(NAME, {
    "quick": StrongPreset(teacher=teacher_config("quick"), ensemble=(0, 1), n_train=512, n_test=512, views=1,
                          epochs=4, widths=(64, 256), bottleneck=32, conv_channels=8, sweep_lrs=(1e-3, 3e-4),
                          sweep_widths=(256,), seeds=(0,), widest_seeds=(0, 1), one_teacher_seeds=(0,),
                          precision="auto"),
    # Sized to the budget, about 4 hours of the 2-core machine (8 one-thread hours; --estimate), of
    # which the three ResNet-18 teachers take about 1.8: the transfer set is 10,000 of the teachers' 49,000
    # training images and one augmented view of each (20,000 an epoch), 30 epochs. Each loss's learning rate
    # is chosen at the widest student (3e-4 or 1e-3: chapter 07's constant Adam rate and a lower one) and
    # used at every width.
    "full": StrongPreset(teacher=teacher_config("full"), ensemble=(0, 1, 2), n_train=10_000, n_test=None, views=1,
                         epochs=30, widths=(256, 1024, 4096), bottleneck=256, conv_channels=32,
                         sweep_lrs=(1e-3, 3e-4), sweep_widths=(4096,), seeds=(0, 1, 2), widest_seeds=(0, 1, 2, 3, 4),
                         one_teacher_seeds=(0, 1, 2), precision="bf16",
                         chosen_lrs={Cell(loss, h): 1e-3 for loss in LOSSES for h in (256, 1024, 4096)}),
    "paper": StrongPreset(teacher=teacher_config("paper"), ensemble=(0, 1, 2, 3), n_train=None, n_test=None, views=4,
                          epochs=100, widths=(1000, 4000, 10000, 30000), bottleneck=1200, conv_channels=128,
                          sweep_lrs=(3e-3, 1e-3, 3e-4, 1e-4), seeds=(0, 1, 2), widest_seeds=(0, 1, 2, 3, 4),
                          one_teacher_seeds=(0, 1, 2), precision="auto"),
})


def shrink(p: StrongPreset) -> StrongPreset:
    """A tiny slice of any profile's comparison, for testing that its code paths run: two teachers of one
    epoch on 128 images, students of widths 8 and 16 for two epochs on 128 images and one view."""
    teacher = dataclasses.replace(p.teacher, width=4, epochs=1, n_train=128, n_valid=32, n_test=64,
                                  n_test_curve=None, precision="fp32")
    return replace_preset(NAME, p, teacher=teacher, ensemble=p.ensemble[:2], n_train=128, n_test=64, views=1,
                          epochs=2, widths=(8, 16), bottleneck=8, conv_channels=4, sweep_lrs=(1e-3, 3e-4),
                          sweep_widths=None if p.sweep_widths is None else (16,), seeds=(0,), widest_seeds=(0, 1),
                          one_teacher_seeds=p.one_teacher_seeds[:1], precision="fp32", chosen_lrs={})


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


def cell_of(c: StudentConfig | Mapping[str, Any]) -> Cell:
    """The cell of a config (or of a record's config dict)."""
    get = c.__getitem__ if isinstance(c, Mapping) else lambda k: getattr(c, k)
    return Cell(get("loss"), get("hidden"))


def sweep_name(c: StudentConfig) -> str:
    """A sweep run's record name: cell and learning rate (``mimic-h4096-lr0.001``)."""
    return f"{cell_of(c)}-lr{c.lr:g}"


def run_name(c: StudentConfig) -> str:
    """A run's record name: its cell (``labels-h256``); a student of one teacher ``mimic_one-h4096``."""
    return f"mimic_one-h{c.hidden}" if is_one_teacher(c) else str(cell_of(c))


def is_one_teacher(c: StudentConfig | Mapping[str, Any]) -> bool:
    """Whether a mimic student (config, or a record's config dict) regresses a single teacher."""
    teachers = c.get("teachers") if isinstance(c, Mapping) else c.teachers
    seeds = (teachers.get("seeds") if isinstance(teachers, Mapping) else teachers.seeds) if teachers else ()
    return len(seeds) == 1


def sweep_configs(p: StrongPreset, widths: Iterable[int] | None = None) -> list[StudentConfig]:
    """Every sweep run: each cell of the swept widths (``sweep_widths``; of those, ``widths``) at each of
    ``sweep_lrs``."""
    swept = p.widths if p.sweep_widths is None else p.sweep_widths
    wanted = swept if widths is None else {c.hidden for c in cells(p, widths)} & set(swept)
    return [student_config(p, cell, lr) for cell in cells(p, wanted) for lr in p.sweep_lrs]


def sweep_widths_for(p: StrongPreset, widths: Iterable[int] | None) -> tuple[int, ...] | None:
    """The widths whose sweep the runs of ``widths`` need: their own, or all the swept ones when the sweep
    trains only some widths (``sweep_widths``) and the others borrow their choices."""
    return None if widths is None or p.sweep_widths is not None else tuple(widths)


def run_configs(p: StrongPreset, lrs: Mapping[Cell, float], widths: Iterable[int] | None = None
                ) -> list[StudentConfig]:
    """Every cell at its learning rate in ``lrs`` (a cell without one is an error)."""
    missing = [str(c) for c in cells(p, widths) if c not in lrs]
    if missing:
        raise ValueError(f"{NAME}: no learning rate chosen for cells {missing}: run the sweep first (--stage sweep)")
    return [student_config(p, cell, lrs[cell]) for cell in cells(p, widths)] + one_teacher_configs(p, lrs, widths)


def one_teacher_configs(p: StrongPreset, lrs: Mapping[Cell, float], widths: Iterable[int] | None = None
                        ) -> list[StudentConfig]:
    """The widest mimic student regressing the first teacher alone, at the ensemble's mimic rate (none when
    the preset has no ``one_teacher_seeds``, the widest width is not among ``widths`` or its rate is not in
    ``lrs``): the teacher-quality comparison's weaker teacher."""
    cell = Cell("logits", max(p.widths))
    if not p.one_teacher_seeds or cell not in lrs or (widths is not None and cell.hidden not in set(widths)):
        return []
    return [dataclasses.replace(student_config(p, cell, lrs[cell]), teachers=Ensemble(p.teacher, p.ensemble[:1]))]


def run_seeds(p: StrongPreset, c: StudentConfig, seeds: Iterable[int] | None = None) -> tuple[int, ...]:
    """The seeds of run ``c``: ``seeds`` when given (checked), else the widest width's or the others'."""
    if seeds is not None:
        return check_seeds(tuple(seeds))
    if is_one_teacher(c):
        return p.one_teacher_seeds
    return p.widest_seeds if c.hidden == max(p.widths) else p.seeds


def chosen_lrs(records: list[dict[str, Any]], widths: Iterable[int] = ()) -> dict[Cell, float]:
    """Each cell's learning rate, chosen from its sweep records on validation (:data:`SELECTION`); each of
    ``widths`` the sweep did not train takes its loss's choice at the nearest swept width (by ratio; the wider
    on a tie)."""
    by_cell = group_by(records, lambda r: cell_of(r["config"]))
    chosen = {cell: choose(rs, lambda r: r["config"]["lr"], SELECTION) for cell, rs in by_cell.items()}
    for loss in {cell.loss for cell in chosen}:
        swept = [cell.hidden for cell in chosen if cell.loss == loss]
        for h in widths:
            nearest = min(swept, key=lambda s: (abs(math.log(s / h)), -s))
            chosen.setdefault(Cell(loss, h), chosen[Cell(loss, nearest)])
    return chosen


def learning_rates(p: StrongPreset, sweep: list[dict[str, Any]]) -> dict[Cell, float]:
    """The sweep's choice per cell (every width), checked against the values written into the preset
    (``chosen_lrs``)."""
    return checked_lrs(NAME, p.chosen_lrs, chosen_lrs(sweep, p.widths))


def student_metrics(c: StudentConfig) -> tuple[str, ...]:
    """What a student's record must carry (a mimic student also the ensemble's test accuracy)."""
    return REQUIRED_METRICS + (("teacher_test_acc",) if c.teachers else ())
