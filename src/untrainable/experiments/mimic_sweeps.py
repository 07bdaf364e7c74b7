"""Chapter 07's runs: the configs of teachers and students, the profiles' sizes, and the sweeps.

What is trained is decided here and nowhere else: a teacher (:class:`TeacherConfig`), which teacher a
student learns from (:class:`TeacherSpec`), a student (:class:`StudentConfig`), the sizes of each
profile (:data:`PRESETS`) and every figure's set of named students (:data:`SWEEPS`). How they are
trained is :mod:`untrainable.experiments.mimic_students`. Every field of a config is part of its
record key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from untrainable import mimic
from untrainable.config_checks import check_fields
from untrainable.precision import PRECISIONS
from untrainable.profiles import DEFAULT_SEEDS, check_profile, check_seeds, preset_table, replace_preset
from untrainable.results import added_field

__all__ = ["LOSSES", "TeacherConfig", "TeacherSpec", "StudentConfig", "Preset", "CHAPTER", "PRESETS", "preset",
           "SWEEPS", "configs", "size_sweep", "quality_sweep", "loss_sweep", "bottleneck_sweep", "overfit_pair"]

#: What a student learns from (:func:`untrainable.mimic.mimic_loss_fn`).
LOSSES = ("logits", "kd", "probs", "labels")


@dataclass(frozen=True)
class TeacherConfig:
    """A deep teacher CNN and how it is trained (on labels); every field is part of the record key."""

    channels: int
    hidden: int
    epochs: int
    n_train: int | None
    n_test: int | None
    dropout: float = 0.5
    batch_size: int = 128
    lr: float = 1e-3
    snapshots: tuple[int, ...] = ()  # earlier epochs whose weights are kept as weaker teachers
    precision: str = added_field("fp32")  # "fp32" | "bf16" | "auto" (untrainable.precision); fp32 keeps old keys

    def __post_init__(self) -> None:
        check_fields(self, positive=("channels", "hidden", "epochs", "n_train", "n_test", "batch_size", "lr"),
                     fractions=("dropout",), choices={"precision": PRECISIONS})
        late = [e for e in self.snapshots if not 1 <= e <= self.epochs]
        if late:
            raise ValueError(f"TeacherConfig.snapshots must be epochs from 1 to {self.epochs}, got {late}")


@dataclass(frozen=True)
class TeacherSpec:
    """Which teacher a student learns from: one seed or an ensemble, final weights or a snapshot."""

    config: TeacherConfig
    seeds: tuple[int, ...] = (0,)
    epoch: int | None = None  # None: the final weights

    def __post_init__(self) -> None:
        check_seeds(self.seeds)  # an ensemble of one teacher twice would count it twice
        check_fields(self, positive=("epoch",))


@dataclass(frozen=True)
class StudentConfig:
    """A shallow student and its training target; every field (the teacher's too) is part of the record key."""

    hidden: int
    epochs: int
    n_train: int | None
    n_test: int | None
    loss: str = "logits"  # "logits" | "kd" | "probs" | "labels"
    teacher: TeacherSpec | None = None  # None for label-trained students
    temperature: float = 1.0
    bottleneck: int | None = None
    depth: int = 1  # hidden ReLU layers; > 1 gives the deeper MLP control (no convolution, no bottleneck)
    conv_channels: int = 32
    dropout: float = 0.0
    views: int = 1  # augmented copies of the training images added to the transfer set
    batch_size: int = 128
    lr: float = 1e-3
    precision: str = added_field("fp32")  # "fp32" | "bf16" | "auto" (untrainable.precision); fp32 keeps old keys

    def __post_init__(self) -> None:
        check_fields(self, positive=("hidden", "epochs", "n_train", "n_test", "temperature", "bottleneck", "depth",
                                     "batch_size", "lr"),
                     non_negative=("conv_channels", "views"), fractions=("dropout",),
                     choices={"loss": LOSSES, "precision": PRECISIONS})


@dataclass(frozen=True)
class Preset:
    """The sizes of one profile: its teachers, and what every student shares."""

    teacher: TeacherConfig
    ensemble: tuple[int, ...]
    n_train: int | None
    n_test: int | None
    student_epochs: int
    widths: tuple[int, ...]
    bottleneck: int
    conv_channels: int
    quality_widths: tuple[int, ...]
    seeds: tuple[int, ...]  # every sweep's default seeds; quick runs one (40-odd students, minutes on a CPU)
    loss_width: int
    views: int  # augmented views of the training images in every student's transfer set
    precision: str  # the students' (the teacher's is in its config); teachers' logits are fp32
    temperatures: tuple[float, ...] = (1.0, 2.0, 4.0, 20.0)
    mlp_depth: int = 3
    overfit_epochs: int | None = None  # the overfitting pair's epochs (None: the students' epochs)


CHAPTER = "chapter 07 (mimic)"
PRESETS: dict[str, Preset] = preset_table(CHAPTER, {
    "quick": Preset(
        teacher=TeacherConfig(channels=32, hidden=256, epochs=3, n_train=2000, n_test=1000, snapshots=(1,),
                              precision="auto"),
        ensemble=(0, 1), n_train=2000, n_test=1000, student_epochs=3, widths=(64, 512), bottleneck=64,
        conv_channels=16, quality_widths=(64, 512), seeds=(0,), loss_width=512, views=1, precision="auto",
        temperatures=(1.0, 20.0)),
    # Two CPU cores: 10k training images plus two augmented views, the transfer set of every student
    # (on labels or mimicking), teachers of 32 channels, 8 student epochs (30 for the overfitting pair),
    # three seeds on every sweep. Students train in bf16, native on the book's CPU (appendix
    # 91: 1.6x faster, accuracy within the seed spread); the teachers stay fp32 (trained before the switch;
    # every teacher logit a student regresses is computed in fp32 either way).
    "full": Preset(
        teacher=TeacherConfig(channels=32, hidden=512, epochs=30, n_train=10_000, n_test=None, snapshots=(2, 8)),
        ensemble=(0, 1, 2), n_train=10_000, n_test=None, student_epochs=8, widths=(256, 1024, 4096),
        bottleneck=256, conv_channels=32, quality_widths=(256, 4096), seeds=DEFAULT_SEEDS["full"], loss_width=256,
        views=2, precision="bf16", overfit_epochs=30),
    "paper": Preset(
        teacher=TeacherConfig(channels=128, hidden=1000, epochs=100, n_train=None, n_test=None, snapshots=(2, 5, 20),
                              precision="auto"),
        ensemble=(0, 1, 2, 3), n_train=None, n_test=None, student_epochs=100, widths=(1000, 4000, 10000, 30000),
        bottleneck=1200, conv_channels=128, quality_widths=(4000, 30000), seeds=DEFAULT_SEEDS["paper"],
        loss_width=30000, views=4, precision="auto"),
})


def preset(profile: str, smoke: bool = False) -> Preset:
    """The profile's sizes; ``smoke`` shrinks data and epochs to a tiny slice (for tests)."""
    p = PRESETS[check_profile(profile)]
    if not smoke:
        return p
    teacher = dataclasses.replace(p.teacher, epochs=1, n_train=256, n_test=256, snapshots=())
    return replace_preset(CHAPTER, p, teacher=teacher, ensemble=p.ensemble[:2], n_train=256, n_test=256,
                          student_epochs=1, widths=p.widths[:1], quality_widths=p.widths[:1], seeds=p.seeds[:1],
                          temperatures=p.temperatures[:2], loss_width=p.widths[0])


def _student(p: Preset, **kw: Any) -> StudentConfig:
    """A student of the profile's sizes; every student, on labels or mimicking, trains on the same
    transfer set (the training images and ``p.views`` augmented views)."""
    base = dict(epochs=p.student_epochs, n_train=p.n_train, n_test=p.n_test, conv_channels=p.conv_channels,
                views=p.views, precision=p.precision)
    base.update(kw)
    return StudentConfig(**base)


def size_sweep(p: Preset) -> dict[str, StudentConfig]:
    """Figure 1: accuracy vs parameters for label-trained, mimic and convolution-free mimic students,
    and a deeper MLP (``p.mlp_depth`` hidden layers) with as many parameters as each convolution-free
    student, trained on labels and by mimicry: does depth without convolution help?"""
    ens = TeacherSpec(p.teacher, p.ensemble)
    out = {}
    for h in p.widths:
        out[f"labels-h{h}"] = _student(p, hidden=h, loss="labels", dropout=0.5, bottleneck=p.bottleneck)
        out[f"mimic-h{h}"] = _student(p, hidden=h, teacher=ens, bottleneck=p.bottleneck)
        out[f"mimic_noconv-h{h}"] = _student(p, hidden=h, teacher=ens, bottleneck=p.bottleneck, conv_channels=0)
        budget = mimic.student_params(h, p.bottleneck, 0)
        w = mimic.deep_mlp_width(budget, p.mlp_depth)
        out[f"deep_mlp_labels-h{h}"] = _student(p, hidden=w, depth=p.mlp_depth, conv_channels=0, loss="labels",
                                                dropout=0.5)
        out[f"deep_mlp_mimic-h{h}"] = _student(p, hidden=w, depth=p.mlp_depth, conv_channels=0, teacher=ens)
    return out


def quality_sweep(p: Preset) -> dict[str, StudentConfig]:
    """Figure 2: students of two widths mimicking teachers of several qualities (snapshots and the ensemble)."""
    specs = {f"e{e}": TeacherSpec(p.teacher, (0,), e) for e in p.teacher.snapshots}
    specs["final"] = TeacherSpec(p.teacher, (0,))
    specs["ensemble"] = TeacherSpec(p.teacher, p.ensemble)
    return {f"quality-{t}-h{h}": _student(p, hidden=h, teacher=spec, bottleneck=p.bottleneck)
            for t, spec in specs.items() for h in p.quality_widths}


def loss_sweep(p: Preset) -> dict[str, StudentConfig]:
    """The loss table: one student width and budget, trained with each target."""
    ens = TeacherSpec(p.teacher, p.ensemble)
    h = p.loss_width
    out = {"loss-logits": _student(p, hidden=h, teacher=ens, bottleneck=p.bottleneck, loss="logits"),
           "loss-probs": _student(p, hidden=h, teacher=ens, bottleneck=p.bottleneck, loss="probs"),
           "loss-labels": _student(p, hidden=h, bottleneck=p.bottleneck, loss="labels")}
    for t in p.temperatures:
        out[f"loss-kd-T{t:g}"] = _student(p, hidden=h, teacher=ens, bottleneck=p.bottleneck, loss="kd", temperature=t)
    return out


def bottleneck_sweep(p: Preset) -> dict[str, StudentConfig]:
    """Bottleneck vs none, on the widest student: accuracy per epoch and per second."""
    ens = TeacherSpec(p.teacher, p.ensemble)
    h = p.widths[-1]
    return {"bottleneck": _student(p, hidden=h, teacher=ens, bottleneck=p.bottleneck),
            "no_bottleneck": _student(p, hidden=h, teacher=ens, bottleneck=None)}


def overfit_pair(p: Preset) -> dict[str, StudentConfig]:
    """Test error over epochs of a wide student on labels (no dropout) vs mimicking, on the same
    images, for ``p.overfit_epochs`` (long enough for every label seed to overfit)."""
    ens = TeacherSpec(p.teacher, p.ensemble)
    h = p.widths[-1]
    epochs = p.student_epochs if p.overfit_epochs is None else p.overfit_epochs
    return {"overfit-labels": _student(p, hidden=h, loss="labels", bottleneck=p.bottleneck, epochs=epochs),
            "overfit-mimic": _student(p, hidden=h, teacher=ens, bottleneck=p.bottleneck, epochs=epochs)}


SWEEPS = {"size": size_sweep, "quality": quality_sweep, "loss": loss_sweep, "bottleneck": bottleneck_sweep,
          "overfit": overfit_pair}


def configs(profile: str, smoke: bool = False) -> dict[str, dict[str, StudentConfig]]:
    """The student configs of every sweep, by sweep and name (the teachers are ``preset(profile).teacher``)."""
    p = preset(profile, smoke)
    return {name: sweep(p) for name, sweep in SWEEPS.items()}
