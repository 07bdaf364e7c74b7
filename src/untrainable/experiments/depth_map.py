"""The depth map (issue #31): where does a Deep FCN stop training, and does a guide rescue it there?

The guidance paper's headline cases are networks that *fail to train*. This map trains the Deep FCN of
chapter 04 (blocks of Linear + BatchNorm + ReLU + dropout, :func:`untrainable.models.deep_fcn`) at one
width and the depths :data:`DEPTHS`, each with no guide, a trained and an untrained ResNet-18 guide, and
reports best train and estimated test accuracy against depth (:mod:`untrainable.analysis.depth_tables`).
A profile may map nets without BatchNorm too (``fcn_batch_norm``); ``full`` maps the paper's block alone,
since it already fails at 24 layers, and pilots two depths without BatchNorm as evidence (``extra_pilots``).

Everything but the depth, the width and BatchNorm comes from chapter 04's typed preset of the same
profile (:data:`untrainable.experiments.fcn_guidance.PRESETS`: images, validation split, epochs,
schedule, guides), so the trained guide is chapter 04's own record. Two stages:

1. **pilots**: the unguided control of each (depth, BatchNorm) cell at each of ``pilot_lrs``, seed
   :data:`PILOT_SEED` (no reported run uses it); each cell's learning rate is chosen on validation by
   :func:`untrainable.analysis.selection.choose` with the book's criterion :data:`SELECTION`, and written
   into the preset (``chosen_lrs``), which a test holds to the stored pilots;
2. **runs**: every condition of every cell at its control's chosen learning rate (guided runs are not
   tuned on their own), for the preset's seeds; ``failing_seeds`` at ``failing_depth``.

:func:`control_fails` says where the map is read: a control *fails to train* when its best training
accuracy stays near chance (:func:`untrainable.analysis.preconditions.fails_to_train`) or ends
:data:`MIN_GAP` points or more below the 3-layer control of the same cell kind. ``failing_depth`` is the
shallowest depth where the pilots say so (a test holds it); page 98's untrainable rows are judged there.

A deep BatchNorm FCN at initialisation has layers that are constant over a batch in eval mode (its
running statistics are the initial ones); the alignment probes record such pairs as null with a reason
(:class:`untrainable.guidance.SimilarityProbe`), and the guidance loss counts them as unrelated for that
step (:class:`untrainable.guidance.GuidanceLoss`), so nothing stops a run. The map is a section of chapter 04
(:data:`untrainable.experiments.SECTIONS`).

From a shell::

    python -m untrainable.experiments.depth_map --profile full --stage pilots --depths 24 48
    python -m untrainable.experiments.depth_map --profile full --stage runs --depths 24 48 --seeds 0
    python -m untrainable.experiments.depth_map --profile full --stage runs --estimate
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from untrainable import guidance as G
from untrainable.analysis.preconditions import CheckedPrecondition, fails_to_train
from untrainable.analysis.selection import BOOK_CRITERION, choose, group_by
from untrainable.experiments import (PlannedRun, checked_lrs, fcn_guidance, print_estimate, shell_parser,
                                     shell_seeds)
from untrainable.experiments import image_guidance as ig
from untrainable.experiments import image_presets as ip
from untrainable.experiments.image_presets import ImagePreset, Run
from untrainable.models import build_guide, build_target
from untrainable.profiles import check_profile, check_seeds, default_seeds, preset_table, replace_preset
from untrainable.results import find_record
from untrainable.train import cross_entropy_loss

__all__ = ["EXPERIMENT", "REQUIRED_METRICS", "PILOT_EXPERIMENT", "PILOT_SEED", "SELECTION", "NAME", "DEPTHS",
           "CONDITIONS", "STAGES", "SHALLOW", "MIN_GAP", "Cell", "DepthMapPreset", "PRESETS", "shrink", "preset",
           "cells", "pilot_name", "run_name", "cell_configs", "run_seeds", "pilot_configs", "run_configs",
           "chosen_lrs", "learning_rates", "planned_runs", "run_pilots", "run", "control_fails", "preconditions",
           "failing_depths", "pilot_cells", "step_seconds", "run_seconds", "timed_runs", "estimate", "main"]

EXPERIMENT = "depth_map"
#: What the map's pages read of a run: chapter 04's metrics (:func:`~.image_guidance.required_metrics`).
REQUIRED_METRICS = ig.REQUIRED_METRICS
PILOT_EXPERIMENT = "depth_map_pilots"
#: The seed of every pilot run: no reported run uses it, so the choice does not favour a reported seed.
PILOT_SEED = 100
#: How a cell's learning rate is chosen from its pilots (:func:`untrainable.analysis.selection.choose`).
SELECTION = BOOK_CRITERION
NAME = "untrainable.experiments.depth_map"
#: The depths of the full map.
DEPTHS = (3, 6, 12, 24, 48)
#: The conditions of every cell (keys of :data:`~.image_guidance.CONDITIONS`).
CONDITIONS = ("no_guide", "trained_guide", "untrained_guide")
STAGES = ("guides", "pilots", "runs")
#: The depth every deeper control is compared with, and the gap (points) below it that counts as failing.
SHALLOW = 3
MIN_GAP = 20.0


class Cell(NamedTuple):
    """One column of the map: a depth, with or without BatchNorm."""

    depth: int
    batch_norm: bool = True

    def __str__(self) -> str:
        return f"fcn{self.depth}" + ("" if self.batch_norm else "-nobn")


@dataclass(frozen=True, kw_only=True)
class DepthMapPreset:
    """What the map sets in one profile. ``base``: chapter 04's preset of the profile (data, epochs,
    guides; its FCN sizes give way to ``depths``/``width``/``first_width``, which is required: None is a
    size there). ``seeds`` None: the profile's default seeds. ``chosen_lrs``: each cell's learning rate as
    the pilots chose it, written in once they are stored (:func:`run` refuses a preset that disagrees).
    ``extra_pilots``: cells piloted but not mapped (their controls say where a net without BatchNorm fails).
    ``failing_depth``: the shallowest depth whose BatchNorm control fails to train (:func:`control_fails`,
    read from the pilots; a test holds it to the records), where the untrainable rows are judged with
    ``failing_seeds``, more seeds than the map's other cells; its unguided control with ``failing_control_seeds``
    where given (error consistency compares unguided nets in disjoint pairs of seeds, so ten seeds give five
    independent pairs, as chapter 04's control has)."""

    base: ImagePreset
    depths: tuple[int, ...]
    width: int
    first_width: int | None
    pilot_lrs: tuple[float, ...]
    batch_norm: tuple[bool, ...] = (True, False)
    extra_pilots: tuple[Cell, ...] = ()
    seeds: tuple[int, ...] | None = None
    failing_depth: int | None = None
    failing_seeds: tuple[int, ...] | None = None
    failing_control_seeds: tuple[int, ...] | None = None
    chosen_lrs: Mapping[Cell, float] = field(default_factory=dict)


def _base(profile: str) -> ImagePreset:
    """Chapter 04's preset of ``profile`` without its own per-run choices (the map chooses its own)."""
    return replace_preset(NAME, fcn_guidance.PRESETS[profile], run_settings={}, headline_seeds=None)


PRESETS: dict[str, DepthMapPreset] = preset_table(NAME, {
    "quick": DepthMapPreset(base=_base("quick"), depths=(3, 24), width=64, first_width=None, pilot_lrs=(1e-3, 3e-4),
                            batch_norm=(True,), extra_pilots=(Cell(24, False),)),  # a net that trains, one that fails
    # The paper's block (with BatchNorm) already fails to train at 24 layers (the pilots), so the map runs it
    # alone; the issue adds nets without BatchNorm only where the BatchNorm net still trains at 48 layers.
    # Their pilots at 3 and 24 layers stay as the evidence that without BatchNorm the 24-layer net sits at chance
    # while the 3-layer one trains.
    "full": DepthMapPreset(base=_base("full"), depths=DEPTHS, width=512, first_width=None,
                           pilot_lrs=(1e-3, 3e-4, 1e-4), batch_norm=(True,),
                           extra_pilots=(Cell(3, False), Cell(24, False)), failing_depth=24,
                           failing_seeds=(0, 1, 2, 3, 4), failing_control_seeds=tuple(range(10)),
                           chosen_lrs={Cell(3): 1e-4, Cell(6): 3e-4, Cell(12): 3e-4, Cell(24): 1e-3, Cell(48): 1e-4}),
    "paper": DepthMapPreset(base=_base("paper"), depths=DEPTHS, width=1024, first_width=2048,
                            pilot_lrs=(3e-3, 1e-3, 3e-4, 1e-4, 3e-5)),
})


def shrink(p: DepthMapPreset) -> DepthMapPreset:
    """A tiny slice of any profile's map, for testing that its code paths run: a shallow and a 24-layer
    FCN (with and without BatchNorm, as the profile has them), one pilot learning rate, one epoch on 128
    images (:func:`untrainable.experiments.fcn_guidance.smoke`)."""
    return replace_preset(NAME, p, base=fcn_guidance.smoke(p.base), depths=(SHALLOW, 24), width=16, first_width=None,
                          pilot_lrs=(1e-3,), chosen_lrs={})


def preset(profile: str, smoke: bool = False) -> DepthMapPreset:
    """The map's preset of ``profile`` (shrunk by :func:`shrink` when ``smoke``)."""
    p = PRESETS[check_profile(profile)]
    return shrink(p) if smoke else p


def cells(p: DepthMapPreset, depths: Iterable[int] | None = None) -> list[Cell]:
    """The preset's cells (``depths``: only those; a depth the preset lacks is an error naming them)."""
    wanted = p.depths if depths is None else tuple(depths)
    unknown = sorted(set(wanted) - set(p.depths))
    if unknown:
        raise ValueError(f"{NAME}: depths {unknown} are not in the preset's map {p.depths}")
    return [Cell(d, bn) for bn in p.batch_norm for d in p.depths if d in wanted]


def cell_configs(p: DepthMapPreset, cell: Cell, lr: float, conditions: Iterable[str]) -> list[ig.Config]:
    """The configs of ``conditions`` in ``cell`` at ``lr``: chapter 04's, sized for the cell."""
    sizes = replace_preset(NAME, p.base.fcn, fcn_depth=cell.depth, fcn_width=p.width, fcn_first_width=p.first_width)
    base = replace_preset(NAME, p.base, fcn=sizes, lr=lr)
    return [dataclasses.replace(c, fcn_batch_norm=cell.batch_norm)
            for c in ip.target_configs(base, [Run("deep_fcn", c) for c in conditions], {})]


def _cell(c: ig.Config | Mapping[str, Any]) -> Cell:
    """The cell of a config (or of a record's config dict)."""
    get = c.__getitem__ if isinstance(c, Mapping) else lambda k: getattr(c, k)
    return Cell(get("fcn_depth"), get("fcn_batch_norm"))


def pilot_name(c: ig.Config) -> str:
    """A pilot's record name: cell, condition and learning rate (``fcn48-nobn-no_guide-lr0.001``)."""
    return f"{_cell(c)}-{c.condition}-lr{c.lr:g}"


def run_name(c: ig.Config) -> str:
    """A run's record name: cell and condition (``fcn48-trained_guide``)."""
    return f"{_cell(c)}-{c.condition}"


def pilot_cells(p: DepthMapPreset, depths: Iterable[int] | None = None) -> list[Cell]:
    """The cells piloted: the map's and the preset's ``extra_pilots`` (``depths``: only those)."""
    mapped = cells(p, depths)
    extra = [c for c in p.extra_pilots if depths is None or c.depth in tuple(depths)]
    return mapped + [c for c in extra if c not in mapped]


def pilot_configs(p: DepthMapPreset, depths: Iterable[int] | None = None, mapped_only: bool = False
                  ) -> list[ig.Config]:
    """Every pilot: each piloted cell's unguided control at each of ``pilot_lrs`` (``mapped_only``: only the
    map's cells, whose pilots choose the runs' learning rates)."""
    piloted = cells(p, depths) if mapped_only else pilot_cells(p, depths)
    return [c for cell in piloted for lr in p.pilot_lrs for c in cell_configs(p, cell, lr, ("no_guide",))]


def run_configs(p: DepthMapPreset, lrs: Mapping[Cell, float], depths: Iterable[int] | None = None) -> list[ig.Config]:
    """Every condition of every cell at the cell's learning rate in ``lrs`` (a cell without one is an error)."""
    missing = [str(c) for c in cells(p, depths) if c not in lrs]
    if missing:
        raise ValueError(f"{NAME}: no learning rate chosen for cells {missing}: run the pilots first (--stage pilots)")
    return [c for cell in cells(p, depths) for c in cell_configs(p, cell, lrs[cell], CONDITIONS)]


def chosen_lrs(records: list[dict[str, Any]]) -> dict[Cell, float]:
    """Each cell's learning rate, chosen from its pilot records on validation (:data:`SELECTION`)."""
    by_cell = group_by(records, lambda r: _cell(r["config"]))
    return {cell: choose(rs, lambda r: r["config"]["lr"], SELECTION) for cell, rs in by_cell.items()}


def run_pilots(profile: str, depths: Iterable[int] | None = None, device: str = "auto", *,
               train_missing: bool | None = None, smoke: bool = False, mapped_only: bool = False
               ) -> list[dict[str, Any]]:
    """The record of every pilot (seed :data:`PILOT_SEED`; ``mapped_only``: of the map's cells): stored ones
    loaded, missing ones trained."""
    return ig.run_targets(profile, pilot_configs(preset(profile, smoke), depths, mapped_only), (PILOT_SEED,), device,
                          train_missing=train_missing, experiment=PILOT_EXPERIMENT, name=pilot_name)


def learning_rates(p: DepthMapPreset, pilots: list[dict[str, Any]]) -> dict[Cell, float]:
    """The pilots' choice per cell, checked against the values written into the preset (``chosen_lrs``)."""
    return checked_lrs(NAME, p.chosen_lrs, chosen_lrs(pilots), source="pilots", verb="choose")


def run_seeds(p: DepthMapPreset, profile: str, seeds: Iterable[int] | None, depth: int | None = None,
              condition: str | None = None) -> tuple[int, ...]:
    """``seeds`` when given (checked), else the failing depth's (``failing_control_seeds`` for its unguided
    ``condition``, ``failing_seeds`` for the others) or the preset's, else the profile's defaults."""
    if seeds is not None:
        return check_seeds(seeds)
    if depth is not None and depth == p.failing_depth:
        if condition == "no_guide" and p.failing_control_seeds is not None:
            return p.failing_control_seeds
        if p.failing_seeds is not None:
            return p.failing_seeds
    return p.seeds if p.seeds is not None else default_seeds(profile)


def _planned(p: DepthMapPreset, profile: str, configs: list[ig.Config], seeds: Iterable[int] | None
             ) -> list[PlannedRun]:
    """Each run of ``configs`` for each of its seeds (:func:`_seeds` of its depth)."""
    return [PlannedRun(EXPERIMENT, run_name(c), c, s, ig.required_metrics(c)) for c in configs
            for s in run_seeds(p, profile, seeds, c.fcn_depth, c.condition)]


def _train(profile: str, p: DepthMapPreset, configs: list[ig.Config], seeds: Iterable[int] | None, device: str,
           train_missing: bool | None, force: bool = False) -> list[dict[str, Any]]:
    """The records of ``configs``, each for its seeds (:func:`_seeds` of its depth): stored ones loaded,
    missing ones trained."""
    groups: dict[tuple[int, ...], list[ig.Config]] = {}
    for c in configs:
        groups.setdefault(run_seeds(p, profile, seeds, c.fcn_depth, c.condition), []).append(c)
    return [rec for group_seeds, group in groups.items()
            for rec in ig.run_targets(profile, group, group_seeds, device, force=force,
                                      train_missing=train_missing, experiment=EXPERIMENT, name=run_name)]


def run(profile: str = "quick", seeds: Iterable[int] | None = None, device: str = "auto", force: bool = False, *,
        depths: Iterable[int] | None = None, train_missing: bool | None = None, smoke: bool = False
        ) -> list[dict[str, Any]]:
    """The record of every run of the map for every seed: the pilots first (loaded or trained), then each
    cell's conditions at the learning rate its pilots chose (``force``: the runs retrained, not the pilots)."""
    p = preset(profile, smoke)
    lrs = learning_rates(p, run_pilots(profile, depths, device, train_missing=train_missing, smoke=smoke,
                                       mapped_only=True))
    return _train(profile, p, run_configs(p, lrs, depths), seeds, device, train_missing, force)


def planned_runs(profile: str, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """Every record the map needs that can be named now: its trained guide, the pilots, and the runs of
    the cells whose learning rate the preset holds (the others await their pilots)."""
    p = PRESETS[check_profile(profile)]
    pilots = pilot_configs(p)
    chosen = [c for c in cells(p) if c in p.chosen_lrs]
    runs = [c for cell in chosen for c in cell_configs(p, cell, p.chosen_lrs[cell], CONDITIONS)]
    guides = [r for r in ig.planned_runs(pilots + runs, ()) if r.experiment != ig.EXPERIMENT]
    return (guides + [PlannedRun(PILOT_EXPERIMENT, pilot_name(c), c, PILOT_SEED, ig.required_metrics(c)) for c in pilots]
            + _planned(p, profile, runs, seeds))


# ----------------------------------------------------------------------------- where the map is read


def control_fails(control: list[dict[str, Any]], shallow: list[dict[str, Any]], name: str) -> CheckedPrecondition:
    """Does the control fail to train? Its best training accuracy stays near chance while the shallow net
    trains, or ends :data:`MIN_GAP` points or more below the shallow net's best training accuracy
    (:func:`~untrainable.analysis.preconditions.fails_to_train`)."""
    return fails_to_train(control, shallow, name, min_gap=MIN_GAP / 100)


def _control_checks(records: list[dict[str, Any]]) -> dict[Cell, CheckedPrecondition]:
    """Per deeper cell, whether its unguided control fails to train (:func:`control_fails`) against the
    :data:`SHALLOW`-layer control of the same kind (with or without BatchNorm)."""
    controls: dict[Cell, list[dict[str, Any]]] = {}
    for r in records:
        if r["config"]["condition"] == "no_guide":
            controls.setdefault(_cell(r["config"]), []).append(r)
    return {cell: control_fails(rs, controls.get(Cell(SHALLOW, cell.batch_norm), []), f"the unguided {cell}")
            for cell, rs in sorted(controls.items()) if cell.depth > SHALLOW}


def preconditions(records: list[dict[str, Any]]) -> list[CheckedPrecondition]:
    """For each deeper cell, whether its unguided control fails to train (:func:`_control_checks`)."""
    return list(_control_checks(records).values())


def failing_depths(records: list[dict[str, Any]], batch_norm: bool = True) -> dict[int, bool]:
    """Depth -> whether its unguided control fails to train (:func:`control_fails`), for the cells with or
    without BatchNorm, read from the runs' records."""
    return {cell.depth: check.holds for cell, check in _control_checks(records).items()
            if cell.batch_norm == batch_norm}


# ----------------------------------------------------------------------------- what it costs


def step_seconds(c: ig.Config, steps: int = 5) -> dict[str, float]:
    """Seconds per training step of run ``c`` on this machine (random inputs, untrained weights, the
    config's guide and bank mode) and per evaluation batch (a forward pass without gradients), each the
    fastest of ``steps`` after a warm-up: on a shared machine the fastest is the one least disturbed."""
    gen = torch.Generator().manual_seed(0)
    n, side = c.batch_size, c.image_size
    x = torch.randn(2 * n, 3, side, side, generator=gen)
    y = torch.randint(0, c.num_classes, (2 * n,), generator=gen)
    model = build_target(c)
    loss_fn: Any = cross_entropy_loss
    inputs: Any = x
    if c.guide is not None:
        guide = G.freeze(build_guide(c.guide, c.guide.num_classes))
        bank = None
        if c.guide_bank != "none":
            bank = G.GuideBank(guide, G.guidance_layers(guide, x[:2]), x, c.guide_bank)
            inputs = G.IndexedInputs(x)
        loss_fn = G.GuidanceLoss(model, guide, x[:2], alpha=c.alpha, distance=c.distance, bank=bank,
                                 gram_precision=c.gram_precision)
    opt = torch.optim.Adam(model.parameters(), lr=c.lr)
    model.train()
    times = []
    for i in range(steps + 1):
        idx = torch.randperm(2 * n, generator=gen)[:n]
        t0 = time.perf_counter()
        opt.zero_grad()
        loss_fn(model, inputs[idx], y[idx])[0].backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    model.eval()
    forwards = []
    with torch.no_grad():
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            model(x[:n])
            forwards.append(time.perf_counter() - t0)
    return {"step_s": min(times[1:]), "eval_batch_s": min(forwards[1:])}


def run_seconds(c: ig.Config, timing: dict[str, float]) -> float:
    """One run's estimated seconds: its training steps, and every epoch's evaluation of its validation and
    test splits (CIFAR-10's sizes where the config takes every image)."""
    n_train = c.n_train if c.n_train is not None else 50000 - c.n_valid
    evaluated = c.n_valid + (c.n_test if c.n_test is not None else 10000)
    per_epoch = math.ceil(n_train / c.batch_size) * timing["step_s"] + math.ceil(evaluated / c.batch_size) * \
        timing["eval_batch_s"]
    return c.epochs * per_epoch


def estimate(profile: str, stage: str, depths: Iterable[int] | None = None, seeds: Iterable[int] | None = None,
             steps: int = 5) -> list[dict[str, Any]]:
    """The runs of ``stage`` (``pilots`` or ``runs``), each with whether it is stored and its estimated
    seconds on this machine (:func:`step_seconds`, measured once per distinct shape; the runs of a cell
    whose learning rate is not chosen yet are timed at the first pilot learning rate: time does not
    depend on it)."""
    p = PRESETS[check_profile(profile)]
    if stage == "pilots":
        planned = [PlannedRun(PILOT_EXPERIMENT, pilot_name(c), c, PILOT_SEED) for c in pilot_configs(p, depths)]
    else:
        lrs = {cell: p.chosen_lrs.get(cell, p.pilot_lrs[0]) for cell in cells(p, depths)}
        planned = _planned(p, profile, run_configs(p, lrs, depths), seeds)
    return timed_runs(planned, profile, lambda c: stage == "pilots" or _cell(c) in p.chosen_lrs,
                      lambda c: (_cell(c), c.guide is not None), steps)


def timed_runs(planned: Iterable[PlannedRun], profile: str, lr_chosen: Callable[[ig.Config], bool],
               shape: Callable[[ig.Config], Hashable], steps: int = 5) -> list[dict[str, Any]]:
    """Each planned run, whether it is stored and its estimated seconds here (:func:`step_seconds`, measured once
    per ``shape``: runs of one cost share it); ``lr_chosen`` says whether a config's rate is the chosen one."""
    timings: dict[Hashable, dict[str, float]] = {}
    rows = []
    for r in planned:
        key = shape(r.config)
        if key not in timings:
            timings[key] = step_seconds(r.config, steps)
        rows.append({"experiment": r.experiment, "name": r.name, "seed": r.seed, "lr chosen": lr_chosen(r.config),
                     "stored": find_record(r.path(profile)) is not None, **timings[key],
                     "estimated_s": run_seconds(r.config, timings[key])})
    return rows


# ----------------------------------------------------------------------------- from a shell


def main(argv: list[str] | None = None) -> None:
    """Train the map's records from a shell, one stage at a time (missing records are trained), or with
    ``--estimate`` print the stage's planned runs and their estimated cost on this machine (nothing trains).

    Stages: ``guides`` (the trained guide, chapter 04's), ``pilots`` (the controls at each pilot learning
    rate), ``runs`` (every condition at the learning rate its pilots chose; in ``full`` the pilots must be
    stored first, ``quick`` trains missing ones). ``--depths`` (and, for the runs, ``--conditions`` and
    ``--seeds``) split a stage over parallel one-thread processes; an interrupted run resumes.
    """
    parser = shell_parser(f"python -m {NAME}", main.__doc__, "distinct seeds of the runs stage (default: the "
                                                             "preset's)")
    parser.add_argument("--stage", choices=STAGES, required=True)
    parser.add_argument("--depths", type=int, nargs="*", help="default: every depth of the preset")
    parser.add_argument("--conditions", nargs="*", choices=CONDITIONS, help="the runs stage: only these "
                        "(default: all)")
    parser.add_argument("--estimate", action="store_true", help="print the planned runs and their cost; train nothing")
    args = parser.parse_args(argv)
    seeds = shell_seeds(parser, args.seeds)
    p = PRESETS[args.profile]
    if args.estimate:
        if args.stage == "guides":
            parser.error("--estimate covers the pilots and runs stages (the guide is chapter 04's record)")
        print_estimate(estimate(args.profile, args.stage, args.depths, seeds),
                       cost=lambda r: f"{r['step_s']:.3f} s/step",
                       note="training steps and per-epoch evaluation; probes and the guide not counted", hours=True)
    elif args.stage == "guides":
        ig.guide_records(args.profile, pilot_configs(p, args.depths), args.device, train_missing=True)
    elif args.stage == "pilots":
        run_pilots(args.profile, args.depths, args.device, train_missing=True)
    else:
        pilots = run_pilots(args.profile, args.depths, args.device, train_missing=False, mapped_only=True)
        configs = [c for c in run_configs(p, learning_rates(p, pilots), args.depths)
                   if args.conditions is None or c.condition in args.conditions]
        _train(args.profile, p, configs, seeds, args.device, True)


if __name__ == "__main__":
    main()
