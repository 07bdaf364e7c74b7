"""Distillation where the Deep FCN fails (issue #31, item 3's last row): KD from the untrained teacher.

The paper's claim is that guidance is not distillation: with an *untrained* ResNet-18 as the teacher,
knowledge distillation "failed completely" while guidance still helped. Chapter 08
(:mod:`untrainable.experiments.transfer_comparison`) compares the methods on chapter 04's Deep FCN, a net
that trains; this module asks the same question where the net fails to train: the depth map's cell at its
failing depth (:func:`untrainable.experiments.failing_rows.depth`, 24 layers in ``full``), with its
control's learning rate, images, epochs and seeds. Two students learn from the untrained teacher of their
seed (the depth map's untrained guide of that seed, :func:`untrainable.experiments.image_guides.untrained_guide`):

* **kd-untrained**: the labels' cross-entropy plus Hinton's KD at temperature 4 (chapter 08's), its
  weight chosen on validation (seed :data:`SWEEP_SEED`, the book's criterion) from :attr:`FailingTransferPreset.weights`;
* **kd_only-untrained**: KD alone, without the label term. Nothing is chosen for it: with the labels gone
  the weight only scales the one loss, and Adam's step does not depend on a loss's scale.

Guidance by the same untrained teacher is the depth map's own ``untrained_guide`` run, and the control
its ``no_guide`` run: page 98 judges KD against the control and guidance against KD from these records.
Every run is trained by chapter 08's :func:`~untrainable.experiments.transfer_comparison.train_student`.

From a shell (``UNTRAINABLE_THREADS=1``; ``--runs`` and ``--seeds`` split a stage over processes)::

    python -m untrainable.experiments.failing_transfer --profile full --stage sweep
    python -m untrainable.experiments.failing_transfer --profile full --stage runs --runs kd_only-untrained
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from untrainable.analysis.selection import BOOK_CRITERION, choose
from untrainable.experiments import PlannedRun, checked_lrs, shell_parser, shell_seeds
from untrainable.experiments import depth_map as DM
from untrainable.experiments import failing_rows as FR
from untrainable.experiments import image_guidance as ig
from untrainable.experiments import transfer_comparison as TC
from untrainable.profiles import check_profile, preset_table

__all__ = ["EXPERIMENT", "SWEEP_EXPERIMENT", "SWEEP_SEED", "NAME", "SELECTION", "STAGES", "RUNS",
           "FailingTransferPreset", "PRESETS", "student", "sweep_configs", "configs", "chosen_weight", "sweep_choice", "depth",
           "planned_runs", "run_sweep", "run", "MAP_CONDITIONS", "shown", "contrasts", "with_map", "main"]

EXPERIMENT, SWEEP_EXPERIMENT = "failing_transfer", "failing_transfer_sweeps"
#: The seed of every sweep run: no reported run uses it.
SWEEP_SEED = 100
NAME = "untrainable.experiments.failing_transfer"
#: How KD's weight is chosen (:func:`untrainable.analysis.selection.choose`): the book's criterion.
SELECTION = BOOK_CRITERION
STAGES = ("sweep", "runs")
#: The runs, by record name: KD beside the labels, and KD alone.
RUNS = ("kd-untrained", "kd_only-untrained")


@dataclass(frozen=True, kw_only=True)
class FailingTransferPreset:
    """What the rows set in one profile: KD's candidate weights beside the labels (chapter 08's), and the
    weight the committed sweep chose (None until it is stored; a test holds it to the records)."""

    weights: tuple[float, ...]
    chosen_weight: float | None = None


PRESETS: dict[str, FailingTransferPreset] = preset_table(NAME, {
    "quick": FailingTransferPreset(weights=(1.0,)),
    # the committed sweep (seed 100): highest validation accuracy 30.3 % at 0.1, 28.6 % at 1, 14.6 % at 10
    "full": FailingTransferPreset(weights=TC.PRESETS["full"].weights, chosen_weight=0.1),
    "paper": FailingTransferPreset(weights=TC.PRESETS["paper"].weights),
})


def _lr(profile: str, smoke: bool, device: str, train_missing: bool | None) -> float:
    """The control's learning rate at the failing depth: the preset's, else the map's pilots' choice."""
    p, d = DM.preset(profile, smoke), FR.depth(profile, smoke)
    if DM.Cell(d) in p.chosen_lrs:
        return p.chosen_lrs[DM.Cell(d)]
    pilots = DM.run_pilots(profile, [d], device, train_missing=train_missing, smoke=smoke, mapped_only=True)
    return DM.learning_rates(p, pilots)[DM.Cell(d)]


def student(profile: str, lr: float, smoke: bool = False) -> ig.Config:
    """The depth map's unguided net at the failing depth, at learning rate ``lr``: what every run trains."""
    return DM.cell_configs(DM.preset(profile, smoke), DM.Cell(FR.depth(profile, smoke)), lr, ("no_guide",))[0]


def _kd(s: ig.Config, weight: float, with_labels: bool = True) -> TC.Config:
    return TC.Config(s, "kd", teacher_trained=False, weight=weight, with_labels=with_labels)


def sweep_configs(profile: str, lr: float, smoke: bool = False) -> list[TC.Config]:
    """KD beside the labels at each candidate weight (KD alone has nothing to choose)."""
    s = student(profile, lr, smoke)
    return [_kd(s, w) for w in PRESETS[check_profile(profile)].weights]


def chosen_weight(records: list[dict[str, Any]]) -> float:
    """KD's weight of the sweep's ``records``, chosen on validation by :data:`SELECTION`."""
    return choose(records, lambda r: r["config"]["weight"], SELECTION)


def sweep_choice(records: list[dict[str, Any]]) -> dict[str, TC.TransferSettings]:
    """The sweep's choice as chapter 08's :func:`~untrainable.experiments.transfer_comparison.sweep_table` marks
    it: KD's weight, at the control's learning rate (not swept)."""
    return {"kd-untrained": TC.TransferSettings(chosen_weight(records), records[0]["config"]["student"]["lr"])}


def depth(profile: str) -> int:
    """The depth of the student: the depth map's failing depth (:func:`untrainable.experiments.failing_rows.depth`)."""
    return FR.depth(profile)


def configs(profile: str, lr: float, weight: float, smoke: bool = False) -> list[TC.Config]:
    """The two runs (:data:`RUNS`): KD beside the labels at ``weight``, then KD alone."""
    s = student(profile, lr, smoke)
    return [_kd(s, weight), _kd(s, 1.0, with_labels=False)]


def _seeds(profile: str, seeds: Iterable[int] | None, smoke: bool = False) -> tuple[int, ...]:
    """The map's guided seeds at the failing depth (the seeds of its untrained guide), or ``seeds``."""
    return DM.run_seeds(DM.preset(profile, smoke), profile, seeds, FR.depth(profile, smoke), "untrained_guide")


def planned_runs(profile: str, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """The sweep and the runs, once the map's preset holds the failing depth's learning rate (and the runs
    once this preset holds the chosen weight)."""
    lr = DM.preset(profile).chosen_lrs.get(DM.Cell(FR.depth(profile)))
    if lr is None:
        return []
    sweep = [PlannedRun(SWEEP_EXPERIMENT, TC.sweep_name(c), c, SWEEP_SEED, TC.SWEEP_METRICS)
             for c in sweep_configs(profile, lr)]
    weight = PRESETS[check_profile(profile)].chosen_weight
    if weight is None:
        return sweep
    return sweep + [PlannedRun(EXPERIMENT, TC.run_name(c), c, s, TC.REQUIRED_METRICS)
                    for c in configs(profile, lr, weight) for s in _seeds(profile, seeds)]


def _records(profile: str, cfgs: list[TC.Config], seeds: Iterable[int], device: str, force: bool,
             train_missing: bool | None, experiment: str, sweep: bool) -> list[dict[str, Any]]:
    name, required = (TC.sweep_name, TC.SWEEP_METRICS) if sweep else (TC.run_name, TC.REQUIRED_METRICS)
    return TC.records_of(profile, cfgs, seeds, device, force, train_missing, experiment, name, required)


def run_sweep(profile: str = "quick", device: str = "auto", force: bool = False, *,
              train_missing: bool | None = None, smoke: bool = False) -> list[dict[str, Any]]:
    """The record of every sweep run (seed :data:`SWEEP_SEED`): stored ones loaded, missing ones trained."""
    lr = _lr(profile, smoke, device, train_missing)
    return _records(profile, sweep_configs(profile, lr, smoke), (SWEEP_SEED,), device, force, train_missing,
                    SWEEP_EXPERIMENT, sweep=True)


def _weight(profile: str, sweep: list[dict[str, Any]], smoke: bool) -> float:
    """The sweep's choice, checked against the preset's ``chosen_weight`` where it is written."""
    written = {} if smoke or PRESETS[profile].chosen_weight is None else {"kd-untrained": PRESETS[profile].chosen_weight}
    return checked_lrs(NAME, written, {"kd-untrained": chosen_weight(sweep)}, "run", "sweep")["kd-untrained"]


def run(profile: str = "quick", seeds: Iterable[int] | None = None, device: str = "auto", force: bool = False, *,
        train_missing: bool | None = None, smoke: bool = False, names: Iterable[str] | None = None
        ) -> list[dict[str, Any]]:
    """The record of each run (or of the runs ``names``) for every seed: the sweep first (loaded, or trained
    where allowed), then each run at the weight it chose."""
    weight = _weight(profile, run_sweep(profile, device, train_missing=train_missing, smoke=smoke), smoke)
    lr = _lr(profile, smoke, device, train_missing)
    return _records(profile, TC.named_configs(configs(profile, lr, weight, smoke), names), _seeds(profile, seeds, smoke),
                    device, force, train_missing, EXPERIMENT, sweep=False)


#: The conditions the section shows, by record name: the map's control and untrained guide at the failing
#: depth, then the two KD runs (the map's names carry the depth, ``fcn24-``: :func:`shown`).
MAP_CONDITIONS = ("no_guide", "untrained_guide")


def shown(profile: str) -> dict[str, str]:
    """Each record name the section shows, with its label, in order."""
    d = FR.depth(profile)
    return {f"fcn{d}-no_guide": "labels alone (no teacher)", f"fcn{d}-untrained_guide": "guidance + labels",
            "kd-untrained": "KD + labels", "kd_only-untrained": "KD alone (no labels)"}


def contrasts(profile: str) -> list[tuple[str, str]]:
    """Each KD run and guidance against the control, then guidance against each KD run (record names)."""
    control, guided, kd, kd_only = shown(profile)
    return [(kd, control), (kd_only, control), (guided, control), (guided, kd), (guided, kd_only)]


def with_map(profile: str, map_records: list[dict[str, Any]], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The map's control and untrained-guide runs at the failing depth (with BatchNorm, of the runs' seeds for
    the guide; every seed of the control), then the KD runs: what the section compares."""
    cell = FR.with_map(profile, map_records, [])
    return [r for r in cell if r["config"]["condition"] in MAP_CONDITIONS] + list(records)


def main(argv: list[str] | None = None) -> None:
    """Train the rows' records from a shell, one stage at a time (missing records are trained): ``sweep``
    (KD's weight beside the labels, seed 100), ``runs`` (both runs for every seed; the sweep must be stored)."""
    parser = shell_parser(f"python -m {NAME}", main.__doc__, "distinct seeds (default: the map's at the depth)")
    parser.add_argument("--stage", choices=STAGES, required=True)
    parser.add_argument("--runs", nargs="*", choices=RUNS, help="default: both runs")
    args = parser.parse_args(argv)
    seeds = shell_seeds(parser, args.seeds)
    if args.stage == "sweep":
        if seeds is not None or args.runs:
            parser.error(f"the sweep stage has its own seed ({SWEEP_SEED}) and one run (kd-untrained)")
        run_sweep(args.profile, args.device, train_missing=True)
    else:
        _train_runs(args.profile, seeds, args.device, args.runs)


def _train_runs(profile: str, seeds: tuple[int, ...] | None, device: str, names: list[str] | None) -> None:
    """The runs stage: the sweep must be stored (an error names a missing one), then every missing run trained."""
    run_sweep(profile, device, train_missing=False)
    run(profile, seeds, device, train_missing=True, names=names)


if __name__ == "__main__":
    main()
