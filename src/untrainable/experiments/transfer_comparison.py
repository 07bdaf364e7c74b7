"""Chapter 08: guidance against distillation, one student, one teacher, one budget (issue 17).

A student of chapter 04 (the Deep FCN in its chosen regime) learns from the labels beside one
method of handing it what a frozen teacher knows (:mod:`untrainable.transfer`): Hinton's KD, logit
regression (mimic), FitNets' hint, similarity-preserving KD, or guidance; the teacher is the trained
ResNet-18 guide of chapter 04 or the same network untrained. Everything else (data, epochs,
schedule) is the chapter-04 run's, so the methods differ in their loss, its weight and the learning
rate alone. Each method's weight and learning rate are chosen on the validation split in chapter 04's
order (:func:`sweep_configs`, seed :data:`SWEEP_SEED`), and the number reported is the book's estimate, the
test accuracy at the epoch of highest validation accuracy (:data:`untrainable.analysis.transfer_tables.METRIC`
says why not the lowest validation loss); the labels alone keep the rate chapter 04 chose for this student. Guidance's
distance can be any of :data:`untrainable.guidance.GUIDANCE_DISTANCES` (the distance study).

One run: :func:`train_student`. Records: ``transfer_comparison`` (the sweep: ``transfer_sweeps``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from untrainable import guidance as G
from untrainable import transfer as T
from untrainable.mimic import random_crop_flip
from untrainable.analysis.estimates import Rule, estimate_key, estimated
from untrainable.analysis.transfer_tables import METRIC, RULE
from untrainable.analysis.preconditions import CheckedPrecondition, guide_beats_target, overfits
from untrainable.analysis.selection import BOOK_CRITERION, best_record, group_by, max_valid_acc
from untrainable.data import stratified_indices
from untrainable.config_checks import check_fields
from untrainable.experiments import PlannedRun, checked_seeds, shell_parser, shell_seeds
from untrainable.experiments import fcn_guidance, plain_cnn_guidance
from untrainable.experiments import image_guidance as ig
from untrainable.experiments.image_guides import scored_as, trained_guide, untrained_guide
from untrainable.models import build_target, count_parameters
from untrainable.profiles import check_profile, check_seeds, default_seeds, preset_table, replace_preset
from untrainable.record_keys import added_field
from untrainable.results import run_or_load_resolved
from untrainable.runtime import seed_everything
from untrainable.train import FitSettings, best_epoch, fit

__all__ = ["EXPERIMENT", "SWEEP_EXPERIMENT", "SWEEP_SEED", "METHODS", "SWEEP_METRICS", "REQUIRED_METRICS", "STAGES",
           "Config", "TransferSettings", "TransferPreset", "PRESETS", "configs", "run_name", "sweep_name",
           "sweep_configs", "max_valid_acc", "chosen_settings", "run_seeds", "planned_runs", "train_student", "run", "run_sweep",
           "records_of", "named_configs", "teacher_record", "preconditions", "sweep_table", "main"]

EXPERIMENT, SWEEP_EXPERIMENT, SWEEP_SEED = "transfer_comparison", "transfer_sweeps", 100
#: The methods beside the labels (``labels`` alone is the baseline).
METHODS = ("labels", "kd", "logits", "fitnets", "spkd", "guidance")
#: What the sweep's choice and chapter 08's tables read of every record (chapter 04's checkpoint, the
#: alignment reached, the time a step took) ...
SWEEP_METRICS = ("train_acc", "train_loss", "test_acc", "test_loss", "valid_acc", "valid_loss", "min_valid_loss",
                 "checkpoint_test_acc", "mean_cka_teacher", "seconds_per_step", "parameters")
#: ... and of a reported run also the checkpoint the chapter reports (:data:`METRIC`), which sweep
#: records older than it lack: a run record without it is a clear error, not a silent fallback.
REQUIRED_METRICS = (*SWEEP_METRICS, "max_valid_acc", "acc_checkpoint_epoch", "acc_checkpoint_test_acc")


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
    #: whether the labels' cross-entropy is a term (False: the method alone, e.g. KD without the label
    #: term, the paper's "distillation failed completely" case; added after records were stored)
    with_labels: bool = added_field(True)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}: choose from {', '.join(METHODS)}")
        check_fields(self, positive=("temperature",), non_negative=("weight",),
                     choices={"distance": G.GUIDANCE_DISTANCES})
        if self.method == "labels" and not self.with_labels:
            raise ValueError("the labels alone without the labels' term is no loss: with_labels=False needs a "
                             "method that reads the teacher")

    @property
    def precision(self) -> str:
        """The student's precision setting, where a flat config has its own: the store's checks read it (a
        property, not a field, so it adds nothing to the key)."""
        return self.student.precision

    def methods(self) -> list[T.Method]:
        """The transfer loss's terms: the labels, and the method at its weight."""
        own = [] if self.method == "labels" else [T.Method(self.method, self.weight, self.temperature, self.distance)]
        return [T.Method("labels"), *own] if self.with_labels else own


@dataclass(frozen=True)
class TransferSettings:
    """What the validation sweep chose for one run: the method's weight and the student's learning rate."""

    weight: float
    lr: float


@dataclass(frozen=True)
class TransferPreset:
    """The chapter's sweep and runs in one profile (chapter 04's sweep: the method's weight at the
    student's own learning rate, then the learning rate from ``lrs`` at the chosen weight; the distance
    study's runs choose their weight only, at the student's rate).

    ``students``: the chapter targets taught (``"deep_fcn"``: chapter 04's Deep FCN; ``"plain_cnn"``:
    chapter 05's plain ConvNet, its residual twin the teacher); ``chosen``: run name -> what the committed
    sweep picks (a test holds them equal), a run not yet chosen keeping the config's weight and the
    student's learning rate; ``seeds`` None: the profile's default seeds; ``run_seeds``: run name -> its own
    seeds, for the runs of a headline row that came out inconclusive at the default seeds (more seeds where a
    run is cheap, as the book's verdict rules ask).
    """

    weights: tuple[float, ...]
    lrs: tuple[float, ...]
    distances: tuple[str, ...]
    students: tuple[str, ...] = ("deep_fcn",)
    seeds: tuple[int, ...] | None = None
    chosen: Mapping[str, TransferSettings] = field(default_factory=dict)
    run_seeds: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


_CHAPTER = "untrainable.experiments.transfer_comparison"
#: CCA is left out of ``full``: it took 15 s a step on one thread (an SVD per layer pair), 130 times the
#: labels' step, about 4 h a run. ``paper`` adds chapter 05's plain ConvNet, which ``full`` cannot afford
#: (a guided run of chapter 05 takes about 45 one-thread minutes here: 11 runs x 3 seeds and their sweep
#: would take days).
_FULL = TransferPreset(weights=(0.1, 1.0, 10.0), lrs=(3e-3, 1e-3, 3e-4, 1e-4, 3e-5),
                       distances=("linear_cka", "debiased_cka", "rbf_cka", "procrustes", "rsa"),
                       chosen={"fitnets-trained": TransferSettings(10.0, 0.003),
                               "fitnets-untrained": TransferSettings(0.1, 0.001),
                               "guidance-debiased_cka-trained": TransferSettings(0.1, 0.0003),
                               "guidance-debiased_cka-untrained": TransferSettings(1.0, 0.0003),
                               "guidance-procrustes-trained": TransferSettings(10.0, 0.0003),
                               "guidance-procrustes-untrained": TransferSettings(0.1, 0.0003),
                               "guidance-rbf_cka-trained": TransferSettings(1.0, 0.0003),
                               "guidance-rbf_cka-untrained": TransferSettings(0.1, 0.0003),
                               "guidance-rsa-trained": TransferSettings(10.0, 0.0003),
                               "guidance-rsa-untrained": TransferSettings(0.1, 0.0003),
                               "guidance-trained": TransferSettings(1.0, 0.0003),
                               "guidance-untrained": TransferSettings(0.1, 0.0003),
                               "kd-trained": TransferSettings(1.0, 0.0003),
                               "kd-untrained": TransferSettings(1.0, 0.003),
                               "logits-trained": TransferSettings(0.1, 0.0003),
                               "logits-untrained": TransferSettings(0.1, 0.001),
                               "spkd-trained": TransferSettings(0.1, 0.0003),
                               "spkd-untrained": TransferSettings(10.0, 0.0003)},
                       # xfer-guidance-untrained was inconclusive at 3 seeds a side (a run: 1-8 one-thread minutes)
                       run_seeds={"guidance-untrained": tuple(range(10)), "kd-untrained": tuple(range(10))})
PRESETS: dict[str, TransferPreset] = preset_table(_CHAPTER, {
    "quick": replace_preset(_CHAPTER, _FULL, weights=(1.0,), lrs=(1e-3, 3e-4), distances=("linear_cka", "rbf_cka"),
                            chosen={}, run_seeds={}),
    "full": _FULL,
    "paper": replace_preset(_CHAPTER, _FULL, distances=(*_FULL.distances, "cca"), students=("deep_fcn", "plain_cnn"),
                            chosen={}, run_seeds={}),  # its own sweep chooses (run_sweep("paper"))
})
#: What a shell run trains, one stage at a time.
STAGES = ("weights", "lrs", "runs")
#: How the sweep chooses a weight and a learning rate (:func:`untrainable.analysis.selection.choose`).
SELECTION = BOOK_CRITERION


#: Each student's chapter module: its unguided run is the student, its trained guide the teacher.
_CHAPTERS = {"deep_fcn": fcn_guidance, "plain_cnn": plain_cnn_guidance}


def _student(profile: str, smoke: bool = False, target: str = "deep_fcn") -> ig.Config:
    """The unguided run of ``target``'s chapter (04: the Deep FCN; 05: the plain ConvNet): the data, model
    and training every method keeps."""
    return next(c for c in _CHAPTERS[target].configs(profile, smoke) if (c.target, c.condition) == (target, "no_guide"))


def _at(c: Config, weight: float, lr: float) -> Config:
    """``c`` with the method's weight and the student's learning rate replaced."""
    return dataclasses.replace(c, weight=weight, student=dataclasses.replace(c.student, lr=lr))


def _methods(profile: str, smoke: bool = False) -> list[Config]:
    """Every run at weight 1 and the student's learning rate: the labels alone, each method with each
    teacher, and guidance with each other distance."""
    p = PRESETS[check_profile(profile)]
    runs = []
    for target in p.students:
        student = _student(profile, smoke, target)
        runs += [Config(student, "labels", True)]
        runs += [Config(student, m, trained) for m in METHODS[1:] for trained in (True, False)]
    student = _student(profile, smoke)  # the distance study: the Deep FCN
    runs += [Config(student, "guidance", trained, distance=d) for d in p.distances if d != "linear_cka"
             for trained in (True, False)]
    return runs


def configs(profile: str, smoke: bool = False) -> list[Config]:
    """Every run, each at its chosen weight and learning rate (the preset's ``chosen``). The labels
    alone keep the learning rate chapter 04 chose for this student on validation."""
    chosen = PRESETS[check_profile(profile)].chosen
    out = []
    for c in _methods(profile, smoke):
        own = chosen.get(run_name(c))
        out.append(_at(c, own.weight, own.lr) if own else c)
    return out


def _distance_study(c: Config) -> bool:
    """Guidance with another distance than the paper's linear CKA (weight chosen, not the learning rate)."""
    return c.method == "guidance" and c.distance != "linear_cka"


def _kind(trained: bool) -> str:
    return "trained" if trained else "untrained"


def run_name(c: Config) -> str:
    """``labels``, or the method (guidance with another distance: ``guidance-<distance>``) and the teacher;
    prefixed ``plain_cnn-`` for the plain ConvNet student."""
    method = c.method if c.distance == "linear_cka" or c.method != "guidance" else f"guidance-{c.distance}"
    method = method if c.with_labels else f"{method}_only"
    name = f"{method}-{_kind(c.teacher_trained)}" if c.method != "labels" else "labels"
    return name if c.student.target == "deep_fcn" else f"{c.student.target}-{name}"


def sweep_name(c: Config) -> str:
    """A sweep run's record name: the run's, its weight and its learning rate."""
    return f"{run_name(c)}-w{c.weight:g}-lr{c.student.lr:g}"


def sweep_configs(profile: str, smoke: bool = False, stage: str | None = None) -> list[Config]:
    """The validation sweep of every method and teacher (the labels alone need none): ``"weights"``, each
    weight at the student's learning rate; ``"lrs"``, each learning rate at the chosen weight (weight 1
    before one is chosen), for the methods, not the distance study; None, both."""
    p = PRESETS[check_profile(profile)]
    out: list[Config] = []
    for c in _methods(profile, smoke)[1:]:
        if stage in (None, "weights"):
            out += [_at(c, w, c.student.lr) for w in p.weights]
        if stage in (None, "lrs") and not _distance_study(c):
            own = p.chosen.get(run_name(c))
            out += [_at(c, own.weight if own else c.weight, lr) for lr in p.lrs]
    return list(dict.fromkeys(out))


def chosen_settings(profile: str, records: list[dict[str, Any]]) -> dict[str, TransferSettings]:
    """``run name -> TransferSettings(weight, lr)`` from the sweep's ``records``: the weight of highest validation
    accuracy (ties: lower validation loss) at the student's learning rate, then the learning rate of
    highest validation accuracy at that weight.
    A choice waits for its whole stage: a run whose weights are not all in ``records`` is left out, and
    one whose learning rates are not all there keeps the student's (a sweep half done picks nothing)."""
    p = PRESETS[check_profile(profile)]
    student_lr = {t: _student(profile, target=t).lr for t in p.students}
    groups = group_by(records, lambda r: r["name"].split("-w", 1)[0])
    best = lambda rs: best_record(rs, SELECTION)["config"]  # noqa: E731
    out = {}
    for name, rs in groups.items():
        own_lr = student_lr[rs[0]["config"]["student"]["target"]]
        at_lr = [r for r in rs if r["config"]["student"]["lr"] == own_lr and r["config"]["weight"] in p.weights]
        if {r["config"]["weight"] for r in at_lr} != set(p.weights):
            continue
        weight = best(at_lr)["weight"]
        at_weight = [r for r in rs if r["config"]["weight"] == weight and r["config"]["student"]["lr"] in p.lrs]
        whole = {r["config"]["student"]["lr"] for r in at_weight} == set(p.lrs)
        out[name] = TransferSettings(weight, best(at_weight)["student"]["lr"] if whole else own_lr)
    return out


def _accuracy_checkpoint(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The checkpoint the chapter reports, the epoch of highest validation accuracy, with its test
    numbers (``fit(test_every_epoch=False)`` tests every such epoch)."""
    best = history[best_epoch(history, "valid_acc") - 1]
    return {"max_valid_acc": best["valid_acc"], "acc_checkpoint_epoch": best["epoch"],
            "acc_checkpoint_test_acc": best["test_acc"], "acc_checkpoint_test_loss": best["test_loss"]}


def _seeds(profile: str) -> tuple[int, ...]:
    """The seeds of every run: the preset's, else the profile's default."""
    p = PRESETS[check_profile(profile)]
    return p.seeds if p.seeds is not None else default_seeds(profile)


def run_seeds(profile: str, c: Config, seeds: Iterable[int] | None = None) -> tuple[int, ...]:
    """The seeds of run ``c``: ``seeds`` when given (checked as a set), else the preset's ``run_seeds`` for its
    name, else every run's seeds (:func:`_seeds`)."""
    own = PRESETS[check_profile(profile)].run_seeds.get(run_name(c))
    return checked_seeds(seeds, check_seeds(own) if own is not None else _seeds(profile))


def planned_runs(profile: str, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """The sweep, then every run for every seed (the teacher is chapter 04's guide, planned there)."""
    sweep = [PlannedRun(SWEEP_EXPERIMENT, sweep_name(c), c, SWEEP_SEED, SWEEP_METRICS) for c in sweep_configs(profile)]
    return sweep + [PlannedRun(EXPERIMENT, run_name(c), c, s, REQUIRED_METRICS) for c in configs(profile)
                    for s in run_seeds(profile, c, seeds)]


def train_student(c: Config, seed: int, device: torch.device, checkpoint: Path, teacher: torch.nn.Module
                  ) -> dict[str, Any]:
    """Train the student with the labels and the method; the chapter-04 run's metrics, plus the CKA it
    reached with its teacher's mapped layers (the one it learnt from) and the seconds per step. The test split is
    evaluated only at the epochs the metrics read (each best so far by validation loss or accuracy,
    and the last): the same training in about half the time, as no curve of this chapter plots it.
    Reported: the checkpoint of highest validation accuracy (``acc_checkpoint_*``); chapter 04's
    checkpoint of lowest validation loss (``checkpoint_*``) is kept beside it."""
    s = c.student
    train, valid, test = ig.target_data(s)
    generator = seed_everything(seed)
    model = build_target(s).to(device)
    teacher = teacher.to(device)
    example = train[0][:2].to(device)
    loss = T.TransferLoss(model, teacher, c.methods(), example)
    if not s.augment:  # the same images every epoch: the teacher's side is computed once, then looked up
        loss.bank_teacher(train[0].to(device))
        train = (G.IndexedInputs(train[0]), train[1])
    settings = FitSettings(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, weight_decay=s.weight_decay,
                           optimizer=s.optimizer, schedule=s.schedule, precision=s.precision)
    history = fit(T.with_regressors(loss), train, test, settings, generator=generator, device=device, loss_fn=loss,
                  checkpoint=checkpoint, desc=f"{run_name(c)} seed {seed}", progress=False, valid=valid,
                  augment=random_crop_flip if s.augment else None, test_every_epoch=False)
    x_probe = test[0][stratified_indices(test[1], min(s.probe_n, len(test[1])), 1)].to(device)
    cka = G.SimilarityProbe(teacher, loss.pairs, x_probe).measure(model)
    steps = len(history) * -(-len(train[1]) // s.batch_size)
    metrics = {k: history[-1][k] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    metrics.update(ig.validation_metrics(history), **_accuracy_checkpoint(history),
                   parameters=count_parameters(model), mean_cka_teacher=G.mean_defined(cka),
                   seconds_per_step=sum(h["train_time_s"] for h in history) / steps)
    return {"metrics": metrics, "history": history, "final_cka": cka, "pairs": loss.pairs}


def _teacher(profile: str, c: Config, seed: int, device: str, train_missing: bool | None) -> torch.nn.Module:
    g = c.student.reference_guide
    return trained_guide(profile, g, device, train_missing=train_missing)[0] if c.teacher_trained else \
        untrained_guide(g, seed)


def records_of(profile: str, cfgs: list[Config], seeds: Iterable[int], device: str, force: bool,
             train_missing: bool | None, experiment: str, name: Callable[[Config], str],
             required: Sequence[str]) -> list[dict[str, Any]]:
    """The record of every config in ``cfgs`` for every seed (named by ``name``, checked for ``required``
    metrics), each with its teacher (the trained guide, or the seed's untrained one): loaded, or trained."""
    return [run_or_load_resolved(experiment, profile, name(c), c, seed, train_student,
                                 lambda c=c, seed=seed: {"teacher": _teacher(profile, c, seed, device, train_missing)},
                                 device=device, force=force, train_missing=train_missing, required_metrics=required)
            for c in cfgs for seed in seeds]


def named_configs(cfgs: list[Config], names: Iterable[str] | None) -> list[Config]:
    """The configs whose run name is in ``names`` (None: all); an unknown name is an error listing them."""
    if names is None:
        return cfgs
    known = {run_name(c) for c in cfgs}
    unknown = set(names) - known
    if unknown:
        raise ValueError(f"unknown runs {sorted(unknown)}: choose from {', '.join(sorted(known))}")
    return [c for c in cfgs if run_name(c) in set(names)]


def run(profile: str = "quick", seeds: Iterable[int] | None = None, device: str = "auto", force: bool = False, *,
        train_missing: bool | None = None, smoke: bool = False, names: Iterable[str] | None = None
        ) -> list[dict[str, Any]]:
    """The record of every run (or of the runs ``names``) for every seed: stored ones loaded, missing ones
    trained when allowed."""
    return [r for c in named_configs(configs(profile, smoke), names)
            for r in records_of(profile, [c], run_seeds(profile, c, seeds), device, force, train_missing, EXPERIMENT,
                              run_name, REQUIRED_METRICS)]


def run_sweep(profile: str = "quick", device: str = "auto", force: bool = False, *, train_missing: bool | None = None,
              smoke: bool = False, stage: str | None = None, names: Iterable[str] | None = None
              ) -> list[dict[str, Any]]:
    """The record of every sweep run (seed :data:`SWEEP_SEED`; ``stage`` and ``names`` as in
    :func:`sweep_configs` and :func:`run`)."""
    return records_of(profile, named_configs(sweep_configs(profile, smoke, stage), names), (SWEEP_SEED,), device, force,
                    train_missing, SWEEP_EXPERIMENT, sweep_name, SWEEP_METRICS)


def teacher_record(profile: str, target: str = "deep_fcn") -> dict[str, Any]:
    """The trained teacher's record: chapter 04's trained ResNet-18 guide (the Deep FCN's), or chapter
    05's residual twin (the plain ConvNet's)."""
    records = _CHAPTERS[target].guide_records(profile)
    return records[_student(profile, target=target).reference_guide.label]


def preconditions(records: list[dict[str, Any]], teacher: dict[str, Any] | None,
                  rule: Rule = RULE) -> list[CheckedPrecondition]:
    """What the comparison needs from its records, checked at the book's estimate (``rule``'s epoch): the
    student trained on labels alone shows chapter 04's failure (it overfits), and the trained teacher (at its
    kept checkpoint) beats it by more than the seed spread, so it has something to hand over."""
    labels = [r for r in records if r["name"] == "labels"]
    metric = estimate_key(METRIC, rule)
    return [overfits(labels, "the student on labels alone", rule=rule),
            guide_beats_target(scored_as([teacher] if teacher else [], metric), estimated(labels, METRIC, rule),
                               "the trained teacher", metric)]


def sweep_table(records: list[dict[str, Any]], chosen: Mapping[str, TransferSettings]) -> pd.DataFrame:
    """The validation sweep: per run, weight and learning rate, its highest validation accuracy (%, what
    chooses), its lowest validation loss (what breaks ties) and whether the chapter uses that setting
    (``chosen`` as :func:`chosen_settings` returns it)."""
    rows = []
    for r in records:
        name, c = r["name"].split("-w", 1)[0], r["config"]
        rows.append({"run": name, "weight": c["weight"], "learning rate": c["student"]["lr"],
                     "highest validation acc (%)": 100 * max_valid_acc(r),
                     "lowest validation loss": r["metrics"]["min_valid_loss"],
                     "chosen": "yes" if chosen.get(name) == TransferSettings(c["weight"], c["student"]["lr"]) else ""})
    columns = ["run", "weight", "learning rate", "highest validation acc (%)", "lowest validation loss", "chosen"]
    return pd.DataFrame(rows, columns=columns).sort_values(["run", "weight", "learning rate"]).reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    """Train the chapter's records from a shell, one stage at a time (missing records are trained):
    ``weights`` and ``lrs`` (the validation sweep), ``runs``; ``--runs kd-trained ...`` trains only those
    runs, so a stage can be split over parallel one-thread processes."""
    parser = shell_parser("python -m untrainable.experiments.transfer_comparison", main.__doc__,
                          "distinct seeds (default: the preset's)")
    parser.add_argument("--stage", choices=STAGES, required=True)
    parser.add_argument("--runs", nargs="*", help="run names (default: every run of the stage)")
    args = parser.parse_args(argv)
    seeds = shell_seeds(parser, args.seeds)
    try:
        named_configs(_methods(args.profile), args.runs)
    except ValueError as err:
        parser.error(str(err))
    if args.stage == "runs":
        run(args.profile, seeds, args.device, train_missing=True, names=args.runs)
    else:
        run_sweep(args.profile, args.device, train_missing=True, stage=args.stage, names=args.runs)


if __name__ == "__main__":
    main()
