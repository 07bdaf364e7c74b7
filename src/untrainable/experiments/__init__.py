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
  run, loading stored ones and training missing ones.

Guides, teachers and banks are resolved before a run starts; the training function takes a
config, a seed and a device, and knows nothing of profiles or stores. Seeds come from
:data:`untrainable.profiles.DEFAULT_SEEDS` unless a chapter says why it needs others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from untrainable.profiles import check_profile

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


@dataclass(frozen=True)
class PlannedRun:
    """One record a chapter needs: where it is stored and what defines it."""

    experiment: str
    name: str
    config: Any
    seed: int

    def path(self, profile: str):
        """The record file this run is stored in."""
        from untrainable.results import record_path, run_key

        return record_path(profile, self.experiment, self.name, self.seed, run_key(self.experiment, self.config,
                                                                                     self.seed))


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


def planned_runs(profile: str, prefixes: list[str] | None = None) -> list[PlannedRun]:
    """Every record the chosen chapters (default: all) need in ``profile``, without duplicates."""
    check_profile(profile)
    seen: dict[Any, PlannedRun] = {}
    for prefix in prefixes or list(CHAPTERS):
        for run in chapter(prefix).planned_runs(profile):
            seen.setdefault(run.path(profile), run)
    return list(seen.values())


def missing_records(profile: str, prefixes: list[str] | None = None) -> list[PlannedRun]:
    """The planned runs of ``profile`` with no stored record (a twin under another name counts)."""
    from untrainable.results import find_record

    return [r for r in planned_runs(profile, prefixes) if find_record(r.path(profile)) is None]
