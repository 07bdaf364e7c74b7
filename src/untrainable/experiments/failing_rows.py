"""The untrainable rows (issue #31, item 3): chapter 04's other guidance conditions where the Deep FCN fails.

The depth map (:mod:`untrainable.experiments.depth_map`) finds the shallowest depth at which the unguided
Deep FCN fails to train (its ``failing_depth``) and runs there the control, the trained and the untrained
ResNet-18 guide with five seeds. The paper's other claims about guides were measured on such a failing net,
so this module trains, at that depth and with the same seeds, learning rate, alpha, images and epochs,
the rest of chapter 04's conditions (:data:`CONDITIONS`, from
:data:`untrainable.experiments.image_guidance.CONDITIONS`):

* **guidance as initialisation**: the trained guide for the first ``guide_steps`` optimiser steps only (the
  paper's share of the steps, chapter 04's preset) and a longer start (``guide_steps_long``), then the task
  loss alone;
* **a second guide family**: a trained small CNN, so error consistency can compare nets guided by two
  families against unguided pairs with independent units (:mod:`untrainable.analysis.kappa`).

Its records join the map's (``results/<profile>/depth_map``, named ``fcn24-trained_guide_init`` and so on),
so the control a row is judged against is the map's own run of the same seed. Nothing here is tuned: the
rows take the control's learning rate, chosen by the map's pilots. The module is a section of chapter 04
(:data:`untrainable.experiments.SECTIONS`); distillation at the same depth is chapter 08's
(:mod:`untrainable.experiments.failing_transfer`).

From a shell (``UNTRAINABLE_THREADS=1``; ``--conditions`` and ``--seeds`` split it over processes)::

    python -m untrainable.experiments.failing_rows --profile full --estimate
    python -m untrainable.experiments.failing_rows --profile full --conditions small_cnn_guide --seeds 0 1
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from untrainable.experiments import PlannedRun, print_estimate, shell_parser, shell_seeds
from untrainable.experiments import depth_map as DM
from untrainable.experiments import image_guidance as ig
from untrainable.profiles import check_profile, preset_table

__all__ = ["EXPERIMENT", "REQUIRED_METRICS", "NAME", "CONDITIONS", "SHOWN", "CONTRASTS", "FailingRowsPreset", "PRESETS",
           "preset", "depth", "configs", "planned_runs", "run", "with_map", "estimate", "main"]

EXPERIMENT = DM.EXPERIMENT
REQUIRED_METRICS = DM.REQUIRED_METRICS
NAME = "untrainable.experiments.failing_rows"
#: Chapter 04's conditions this module adds at the failing depth (the map runs the other three).
CONDITIONS = ("trained_guide_init", "trained_guide_init_long", "small_cnn_guide")
#: Every condition shown at the failing depth, the map's three first, and each one's contrast with the control.
SHOWN = (*DM.CONDITIONS, *CONDITIONS)
CONTRASTS = tuple((c, "no_guide") for c in SHOWN[1:])


@dataclass(frozen=True, kw_only=True)
class FailingRowsPreset:
    """What the rows set in one profile: which conditions, and at which depth (None: the depth map's
    ``failing_depth``, which its pilots chose). Seeds, learning rate and everything else are the map's."""

    conditions: tuple[str, ...] = CONDITIONS
    depth: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.conditions) - set(ig.CONDITIONS))
        if unknown:
            raise ValueError(f"{NAME}: conditions {unknown} are not chapter 04's ({sorted(ig.CONDITIONS)})")


PRESETS: dict[str, FailingRowsPreset] = preset_table(NAME, {
    # quick's map has no failing depth written in (its pilots are trained by CI); its deepest net stands in.
    "quick": FailingRowsPreset(depth=24),
    "full": FailingRowsPreset(),
    # The paper's Deep FCN is 48 blocks deep.
    "paper": FailingRowsPreset(depth=48),
})


def preset(profile: str) -> FailingRowsPreset:
    """The rows' preset of ``profile``."""
    return PRESETS[check_profile(profile)]


def depth(profile: str, smoke: bool = False) -> int:
    """The depth of the rows: the preset's, else the depth map's ``failing_depth`` (an error where it has none)."""
    chosen = preset(profile).depth or DM.preset(profile, smoke).failing_depth
    if chosen is None:
        raise ValueError(f"{NAME}: the depth map's {profile} preset names no failing depth yet: run its pilots "
                         "(python -m untrainable.experiments.depth_map --stage pilots) and write it in")
    if chosen not in DM.preset(profile, smoke).depths:
        raise ValueError(f"{NAME}: depth {chosen} is not in the depth map's {profile} preset "
                         f"{DM.preset(profile, smoke).depths}")
    return chosen


def configs(profile: str, lr: float, conditions: Iterable[str] | None = None, smoke: bool = False
            ) -> list[ig.Config]:
    """The rows' configs at learning rate ``lr``: the map's cell at :func:`depth` (``conditions``: only those)."""
    wanted = preset(profile).conditions if conditions is None else tuple(conditions)
    unknown = sorted(set(wanted) - set(preset(profile).conditions))
    if unknown:
        raise ValueError(f"{NAME}: conditions {unknown} are not the {profile} rows' {preset(profile).conditions}")
    return DM.cell_configs(DM.preset(profile, smoke), DM.Cell(depth(profile, smoke)), lr, wanted)


def _seeds(profile: str, seeds: Iterable[int] | None, smoke: bool = False) -> tuple[int, ...]:
    """The map's seeds at the rows' depth (its ``failing_seeds`` there), or ``seeds`` when given."""
    return DM.run_seeds(DM.preset(profile, smoke), profile, seeds, depth(profile, smoke))


def planned_runs(profile: str, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """Every record the rows need, once the map's preset holds the depth's learning rate: the trained
    guides they add (the small CNN), then each row per seed. Before that only the map's pilots can say."""
    lr = DM.preset(profile).chosen_lrs.get(DM.Cell(depth(profile)))
    if lr is None:
        return []
    rows = configs(profile, lr)
    guides = [r for r in ig.planned_runs(rows, ()) if r.experiment != ig.EXPERIMENT]
    return guides + [PlannedRun(EXPERIMENT, DM.run_name(c), c, s, ig.required_metrics(c)) for c in rows
                     for s in _seeds(profile, seeds)]


def run(profile: str = "quick", seeds: Iterable[int] | None = None, device: str = "auto", force: bool = False, *,
        conditions: Iterable[str] | None = None, train_missing: bool | None = None, smoke: bool = False
        ) -> list[dict[str, Any]]:
    """The record of every row for every seed: the map's pilots at the depth first (loaded, or trained where
    the profile allows), then each row at the learning rate they chose (``force``: the rows retrained)."""
    d = depth(profile, smoke)
    pilots = DM.run_pilots(profile, [d], device, train_missing=train_missing, smoke=smoke, mapped_only=True)
    lr = DM.learning_rates(DM.preset(profile, smoke), pilots)[DM.Cell(d)]
    return ig.run_targets(profile, configs(profile, lr, conditions, smoke), _seeds(profile, seeds, smoke), device,
                          force=force, train_missing=train_missing, experiment=EXPERIMENT, name=DM.run_name)


def with_map(profile: str, map_records: Iterable[dict[str, Any]], rows: Iterable[dict[str, Any]]
             ) -> list[dict[str, Any]]:
    """Every net of the rows' cell: the map's runs at their depth with BatchNorm (its control and its two guides;
    not a cell without BatchNorm of the same depth, which ``quick`` maps too), then the rows."""
    cell = DM.Cell(depth(profile))
    return [r for r in map_records if DM.Cell(r["config"]["fcn_depth"], r["config"].get("fcn_batch_norm", True)) == cell
            ] + list(rows)


def estimate(profile: str, seeds: Iterable[int] | None = None, steps: int = 5) -> list[dict[str, Any]]:
    """The planned rows, each with whether it is stored and its estimated seconds on this machine (the map's
    :func:`~untrainable.experiments.depth_map.timed_runs`, measured once per condition; a first-steps-only row is
    timed as guided throughout, an upper bound)."""
    p = DM.preset(profile)
    lr = p.chosen_lrs.get(DM.Cell(depth(profile)), p.pilot_lrs[0])
    planned = [PlannedRun(EXPERIMENT, DM.run_name(c), c, s) for c in configs(profile, lr)
               for s in _seeds(profile, seeds)]
    return DM.timed_runs(planned, profile, lambda c: DM.Cell(c.fcn_depth) in p.chosen_lrs, lambda c: c.condition, steps)


def main(argv: list[str] | None = None) -> None:
    """Train the untrainable rows from a shell (missing records are trained; the map's pilots at the depth must
    be stored), or with ``--estimate`` print the planned rows and their cost on this machine (nothing trains).
    ``--conditions`` and ``--seeds`` split them over parallel one-thread processes; an interrupted run resumes."""
    parser = shell_parser(f"python -m {NAME}", main.__doc__, "distinct seeds (default: the map's at the depth)")
    parser.add_argument("--conditions", nargs="*", choices=CONDITIONS, help="default: every row of the preset")
    parser.add_argument("--estimate", action="store_true", help="print the planned rows and their cost; train nothing")
    args = parser.parse_args(argv)
    seeds = shell_seeds(parser, args.seeds)
    if args.estimate:
        print_estimate(estimate(args.profile, seeds), cost=lambda r: f"{r['step_s']:.3f} s/step",
                       note="training steps and per-epoch evaluation; probes and the guides not counted", hours=True)
        return
    run(args.profile, seeds, args.device, conditions=args.conditions, train_missing=True)


if __name__ == "__main__":
    main()
