"""The chapter contract: one module per experiment of the book, all with the same shape.

Every chapter module offers

* ``EXPERIMENT``: the store folder of its records (``results/<profile>/<EXPERIMENT>/``);
* ``PRESETS``: sizes and lengths per profile (``quick``, ``full``, ``paper``);
* ``configs(profile)``: the configs of its runs, each a frozen dataclass whose every field is part
  of the record key (see :func:`untrainable.results.run_key`);
* ``planned_runs(profile, seeds=None) -> list[PlannedRun]``: every record the chapter needs,
  including the guides or teachers it trains first, so the store can say what is missing
  before anything trains;
* ``run(profile, seeds=None, device="auto", force=False) -> list[dict]``: the records of every
  run, loading stored ones and training missing ones;
* ``REQUIRED_METRICS``: what its pages and its selection read of a record, passed to every load
  (``run_or_load``) and carried by each planned run, so a record lacking one is refused by name;
* where it trains from a shell, ``main(argv)``, built on :func:`shell_parser`.

Seeds are a set: ``run`` and ``planned_runs`` read a ``seeds`` argument through :func:`checked_seeds`
(a repeated, negative or too large seed is an error naming it), and every view of a run (the chapter,
page 98) reads the seeds the chapter plans, no more and no fewer.

Guides, teachers and banks are resolved before a run starts; the training function takes a
config, a seed and a device, and knows nothing of profiles or stores. Seeds come from
:data:`untrainable.profiles.DEFAULT_SEEDS` unless a chapter says why it needs others.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from untrainable.profiles import PROFILES, check_profile, check_seeds
from untrainable.runtime import DEVICE_FORMS, parse_device

#: Notebook prefix -> chapter module, in reading order (chapters without training are absent).
CHAPTERS: dict[str, str] = {
    "01": "untrainable.experiments.inductive_bias",
    "02": "untrainable.experiments.representations",
    "04": "untrainable.experiments.fcn_guidance",
    "05": "untrainable.experiments.plain_cnn_guidance",
    "06": "untrainable.experiments.sequence_guidance",
    "07": "untrainable.experiments.mimic_students",
    "08": "untrainable.experiments.transfer_comparison",
    "91": "untrainable.benchmarks.precision_parity",  # its trained parity runs (the timings are benchmarks)
    "92": "untrainable.experiments.image_pilots",
    "93": "untrainable.experiments.sequence_pilots",
}

#: Notebook prefix -> further modules whose records that chapter also shows, each a section of its notebook on
#: the same contract (``planned_runs``, ``run``): chapter 04's depth map, where its FCN fails to train, and the
#: other untrainable rows at its failing depth; chapter 06's copy-paste where the RNN fails; chapter 08's
#: distillation from the untrained teacher at the FCN's failing depth.
SECTIONS: dict[str, tuple[str, ...]] = {
    "04": ("untrainable.experiments.depth_map", "untrainable.experiments.failing_rows"),
    "06": ("untrainable.experiments.copy_untrainable",),
    "07": ("untrainable.experiments.mimic_strong",),
    "08": ("untrainable.experiments.failing_transfer",),
}


@dataclass(frozen=True)
class PlannedRun:
    """One record a chapter needs: where it is stored, what defines it, and the metrics its pages read
    (``required_metrics``: the chapter's ``REQUIRED_METRICS``, which every load of the record checks)."""

    experiment: str
    name: str
    config: Any
    seed: int
    required_metrics: tuple[str, ...] = ()

    def path(self, profile: str):
        """The record file this run is stored in."""
        from untrainable.results import record_path, run_key

        return record_path(profile, self.experiment, self.name, self.seed, run_key(self.experiment, self.config,
                                                                                     self.seed))

    def load(self, profile: str) -> dict[str, Any] | None:
        """This run's stored record in ``profile`` (a twin stored under another name counts), checked as the
        chapter checks it (the requested run, sealed, with every metric of ``required_metrics``), under this
        run's name; ``None`` when it is not stored."""
        from untrainable.results import find_record, load_record

        stored = find_record(self.path(profile))
        if stored is None:
            return None
        return {**load_record(stored, experiment=self.experiment, config=self.config, seed=self.seed,
                              required_metrics=self.required_metrics), "name": self.name}


def checked_seeds(seeds: Iterable[int] | None, default: tuple[int, ...]) -> tuple[int, ...]:
    """A chapter's ``seeds`` argument as a tuple checked as a set (:func:`untrainable.profiles.check_seeds`), or
    ``default`` (the chapter's own seeds) when it is ``None``. Every chapter's ``run`` and ``planned_runs`` read
    their seeds through it."""
    return default if seeds is None else check_seeds(tuple(seeds))


def shell_parser(prog: str, description: str | None, seeds_help: str, device: str = "auto") -> argparse.ArgumentParser:
    """A chapter shell entry's parser with the arguments every one takes: ``--profile`` (one of the
    profiles), ``--seeds`` (space-separated) and ``--device`` (checked by :func:`untrainable.runtime.parse_device`,
    so ``--device tpu`` ends at once naming it; default ``device``). Read the seeds with :func:`shell_seeds`."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--profile", default="full", choices=PROFILES)
    parser.add_argument("--seeds", type=int, nargs="*", help=seeds_help)
    parser.add_argument("--device", type=parse_device, default=device, help=f"{DEVICE_FORMS} (default {device})")
    return parser


def shell_seeds(parser: argparse.ArgumentParser, seeds: list[int] | None) -> tuple[int, ...] | None:
    """The ``--seeds`` of a shell entry (none given: ``None``, the chapter's own), checked as a set: a repeated,
    negative or too large seed ends the command with ``parser.error`` naming it (exit status 2)."""
    try:
        return check_seeds(seeds) if seeds else None
    except ValueError as err:
        parser.error(f"--seeds: {err}")


def checked_lrs(chapter: str, written: Mapping[Any, float], chosen: dict[Any, float], unit: str = "cell",
                source: str = "sweep", verb: str = "chooses") -> dict[Any, float]:
    """``chosen``, the learning rate per ``unit`` (row, cell) that a chapter's stored ``source`` records choose,
    once the preset's ``written`` values agree with it: the preset plans the runs (and so their record keys) at
    the written rates, so one the records no longer choose is an error naming each such unit as (preset,
    ``source``). A unit written but not yet chosen (its records are not stored) is not checked."""
    wrong = {str(u): (lr, chosen[u]) for u, lr in written.items() if u in chosen and chosen[u] != lr}
    if wrong:
        raise ValueError(f"{chapter}: the preset's chosen learning rates disagree with what the {source} {verb} "
                         f"({unit}: (preset, {source})): {wrong}")
    return chosen


def print_estimate(rows: Sequence[Mapping[str, Any]], cost: Callable[[Mapping[str, Any]], str], note: str, *,
                   label: Callable[[Mapping[str, Any]], str] | None = None, noun: str = "runs",
                   hours: bool = False) -> None:
    """A shell entry's ``--estimate``: each planned row on a line (``label``, by default ``experiment/name seed N``;
    stored or missing; ``cost``, its measured step times; its estimated minutes; ``(lr not chosen yet)`` where
    its learning rate is a stand-in), then the total one-thread minutes (``hours``: hours) of the missing ones,
    with ``note`` on what the total counts. A row has ``stored``, ``estimated_s`` and ``lr chosen``."""
    for r in rows:
        lr = "" if r["lr chosen"] else "  (lr not chosen yet)"
        name = label(r) if label else f"{r['experiment']}/{r['name']} seed {r['seed']}"
        print(f"{name}: {'stored' if r['stored'] else 'missing'}, {cost(r)}, about {r['estimated_s'] / 60:.1f} min{lr}")
    todo = [r["estimated_s"] for r in rows if not r["stored"]]
    total = f"{sum(todo) / 3600:.2f} hours" if hours else f"{sum(todo) / 60:.0f} minutes"
    print(f"{len(rows)} {noun}, {len(todo)} missing: about {total} on one thread of this machine ({note})")


def select_cells(runs: list[Any], cells: Iterable[str] | None, groups: Sequence[str], name: Callable[[Any], str],
                 group: Callable[[Any], str], kind: str = "groups") -> list[Any]:
    """The pilot runs named by ``cells`` (a group's name, ``group(run)``, or a run's, ``name(run)``; None:
    all), in grid order; an unknown name is an error that lists the ``kind`` and the runs there are."""
    if cells is None:
        return list(runs)
    cells = set(cells)
    unknown = cells - set(groups) - {name(c) for c in runs}
    if unknown:
        raise ValueError(f"unknown pilot cells {sorted(unknown)}: name {kind} ({', '.join(groups)}) or runs "
                         f"({', '.join(name(c) for c in runs)})")
    return [c for c in runs if group(c) in cells or name(c) in cells]


def chapter(prefix: str) -> ModuleType:
    """The chapter module of a notebook prefix (``"04"``)."""
    if prefix not in CHAPTERS:
        raise KeyError(f"no chapter module for notebook {prefix!r}: the chapters are {', '.join(CHAPTERS)}")
    return importlib.import_module(CHAPTERS[prefix])


def chapter_modules(prefix: str) -> list[ModuleType]:
    """The chapter module of a notebook prefix, then its sections' (:data:`SECTIONS`)."""
    return [chapter(prefix)] + [importlib.import_module(m) for m in SECTIONS.get(prefix, ())]


def planned_runs(profile: str, prefixes: list[str] | None = None) -> list[PlannedRun]:
    """Every record the chosen chapters (default: all) and their sections need in ``profile``, without
    duplicates."""
    check_profile(profile)
    seen: dict[Any, PlannedRun] = {}
    for prefix in prefixes or list(CHAPTERS):
        for module in chapter_modules(prefix):
            for run in module.planned_runs(profile):
                seen.setdefault(run.path(profile), run)
    return list(seen.values())


def missing_records(profile: str, prefixes: list[str] | None = None) -> list[PlannedRun]:
    """The planned runs of ``profile`` with no stored record (a twin under another name counts)."""
    from untrainable.results import find_record

    return [r for r in planned_runs(profile, prefixes) if find_record(r.path(profile)) is None]
