"""The copy-paste regime where the RNN fails (:mod:`untrainable.experiments.copy_untrainable`) as configs: its rows,
each profile's preset, and every run's config, name, seeds and learning rate, as the sweep chooses it. Everything
but the lengths is chapter 06's copy-paste config of the same profile
(:func:`untrainable.experiments.sequence_configs.configs`); how a run trains is the chapter module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from untrainable.analysis.selection import BOOK_CRITERION, choose, group_by
from untrainable.experiments import checked_lrs
from untrainable.experiments import sequence_configs as S
from untrainable.experiments import sequence_pilots as sp
from untrainable.profiles import check_profile, check_seeds, default_seeds, preset_table, replace_preset

__all__ = ["EXPERIMENT", "SWEEP_EXPERIMENT", "SWEEP_SEED", "SELECTION", "NAME", "STAGES", "CONDITIONS",
           "REQUIRED_METRICS", "Row", "CONTROL", "ROWS", "CopyPreset", "PRESETS", "shrink", "preset", "rows", "row_of",
           "row_config", "guide_config", "run_name", "sweep_name", "pilot_configs", "sweep_configs", "run_configs",
           "chosen_lrs", "learning_rates", "run_seeds"]

EXPERIMENT = "copy_untrainable"
SWEEP_EXPERIMENT = "copy_untrainable_sweeps"
#: The seed of every sweep run: no reported run uses it, so the choice does not favour a reported seed.
SWEEP_SEED = 100
#: How a row's learning rate is chosen from its sweep runs (:func:`untrainable.analysis.selection.choose`).
SELECTION = BOOK_CRITERION
NAME = "untrainable.experiments.copy_untrainable"
STAGES = ("pilots", "sweep", "runs")
CONDITIONS = ("no_guide", "trained_guide", "untrained_guide")
#: What every record stores and the preconditions and the sweep read: chapter 06's metrics.
REQUIRED_METRICS = S.REQUIRED_METRICS


class Row(NamedTuple):
    """One row of the results: a condition, and what CKA compares (token rows or flattened sequences)."""

    condition: str
    tokens: str

    def __str__(self) -> str:
        return self.condition if self.condition == "no_guide" else f"{self.condition}-{self.tokens}"


#: The control (one for both token rows: it has no guidance term), each guide per token (chapter 06's
#: treatment), then each guide on flattened sequences (the paper's).
CONTROL = Row("no_guide", "per_token")
ROWS = (CONTROL, Row("trained_guide", "per_token"), Row("untrained_guide", "per_token"),
        Row("trained_guide", "flatten"), Row("untrained_guide", "flatten"))


@dataclass(frozen=True, kw_only=True)
class CopyPreset:
    """What the regime sets in one profile; the rest is chapter 06's copy-paste preset of the profile.
    ``guide_lr``: the trained guide's learning rate (the pilots' guide rate). ``seeds`` None: the profile's
    default seeds. ``chosen_lrs``: each row's learning rate as the sweep chose it, written in once the
    sweep's records are stored (:func:`run` refuses a preset that disagrees with them)."""

    lengths: tuple[int, int]
    sweep_lrs: tuple[float, ...]
    guide_lr: float
    seeds: tuple[int, ...] | None = None
    chosen_lrs: Mapping[Row, float] = field(default_factory=dict)
    smoke: bool = False  # chapter 06's smoke slice (tiny nets and data), for tests


PRESETS: dict[str, CopyPreset] = preset_table(NAME, {
    "quick": CopyPreset(lengths=(10, 20), sweep_lrs=(3e-3, 1e-3), guide_lr=sp.PRESETS["quick"].copy.lr),
    # chapter 06's sweep chose 1e-3 (guided) and 3e-4 (control) at 5-10 digits; 3e-3 is one step above
    # the committed sweep (seed 100) chose 1e-3 for every row but the untrained guide on flattened sequences
    "full": CopyPreset(lengths=(10, 20), sweep_lrs=(3e-3, 1e-3, 3e-4), guide_lr=sp.PRESETS["full"].copy.lr,
                       seeds=tuple(range(5)),
                       chosen_lrs={CONTROL: 1e-3, Row("trained_guide", "per_token"): 1e-3,
                                   Row("untrained_guide", "per_token"): 1e-3, Row("trained_guide", "flatten"): 1e-3,
                                   Row("untrained_guide", "flatten"): 3e-4}),
    # the paper's lengths, and its learning rate for the guide
    "paper": CopyPreset(lengths=(20, 40), sweep_lrs=(1e-3, 3e-4, 1e-4), guide_lr=1e-3, seeds=tuple(range(5))),
})


def shrink(p: CopyPreset) -> CopyPreset:
    """A tiny slice of any profile's regime, for testing that its code paths run: chapter 06's smoke nets
    and data (:data:`untrainable.experiments.sequence_configs.SMOKE`), one sweep learning rate."""
    return replace_preset(NAME, p, sweep_lrs=p.sweep_lrs[:1], chosen_lrs={}, smoke=True)


def preset(profile: str, smoke: bool = False) -> CopyPreset:
    """The regime's preset of ``profile`` (shrunk by :func:`shrink` when ``smoke``)."""
    p = PRESETS[check_profile(profile)]
    return shrink(p) if smoke else p


def rows(names: Iterable[str] | None = None) -> list[Row]:
    """The rows named (``str(row)``; None: all), in :data:`ROWS` order; an unknown name is an error naming it."""
    if names is None:
        return list(ROWS)
    unknown = sorted(set(names) - {str(r) for r in ROWS})
    if unknown:
        raise ValueError(f"{NAME}: unknown rows {unknown}: the rows are {', '.join(map(str, ROWS))}")
    return [r for r in ROWS if str(r) in set(names)]


def row_of(c: S.Config | Mapping[str, Any]) -> Row:
    """The row of a config (or of a record's config dict)."""
    get = c.__getitem__ if isinstance(c, Mapping) else lambda k: getattr(c, k)
    return CONTROL if get("condition") == "no_guide" else Row(get("condition"), get("tokens"))


def row_config(profile: str, row: Row, lr: float, p: CopyPreset | None = None) -> S.Config:
    """Row ``row`` at ``lr``: chapter 06's copy-paste config of its condition, at the preset's lengths,
    token treatment of CKA and trained guide's learning rate."""
    p = p or preset(profile)
    base = next(c for c in S.configs(profile, ("copy",), p.smoke) if c.condition == row.condition)
    lo, hi = p.lengths
    return dataclasses.replace(base, min_len=lo, max_len=hi, tokens=row.tokens, lr=lr, guide_lr=p.guide_lr,
                               guide_reseeds=())


def guide_config(profile: str, p: CopyPreset | None = None) -> S.Config:
    """The ``guide_alone`` run whose weights are every guided row's trained guide (its training reads
    neither the row's learning rate nor its tokens: the control's config stands for all)."""
    p = p or preset(profile)
    return S.guide_alone_config(row_config(profile, CONTROL, p.guide_lr, p))


def run_name(c: S.Config) -> str:
    """A record's name: chapter 06's (``copy-trained_guide``), with the token treatment of a guided row."""
    return S.run_name(c) + ("" if c.condition in ("no_guide", "guide_alone") else f"-{c.tokens}")


def sweep_name(c: S.Config) -> str:
    """A sweep record's name: the run's, with the learning rate of a swept row (the guide is not swept)."""
    return run_name(c) + ("" if c.condition == "guide_alone" else f"-lr{c.lr:g}")


def pilot_configs(profile: str) -> list[S.Config]:
    """Appendix 93's copy-paste pilots (the RNN alone at each of its learning rates, the Transformer alone
    at its guides' rate) at the preset's lengths: in ``full`` the committed 10-20-digit cell itself."""
    lo, hi = PRESETS[check_profile(profile)].lengths
    moved = [dataclasses.replace(c, min_len=lo, max_len=hi) for c in sp.configs(profile) if c.setting == "copy"]
    return list(dict.fromkeys(moved))


def sweep_configs(profile: str, names: Iterable[str] | None = None, p: CopyPreset | None = None) -> list[S.Config]:
    """The sweep (seed :data:`SWEEP_SEED`): the guide alone, then each row at each of ``sweep_lrs``."""
    p = p or preset(profile)
    return [guide_config(profile, p)] + [row_config(profile, r, lr, p) for r in rows(names) for lr in p.sweep_lrs]


def run_configs(profile: str, lrs: Mapping[Row, float], names: Iterable[str] | None = None,
                p: CopyPreset | None = None) -> list[S.Config]:
    """The guide alone, then each row at its learning rate in ``lrs`` (a row without one is an error)."""
    p = p or preset(profile)
    missing = [str(r) for r in rows(names) if r not in lrs]
    if missing:
        raise ValueError(f"{NAME}: no learning rate chosen for rows {missing}: run the sweep first (--stage sweep)")
    return [guide_config(profile, p)] + [row_config(profile, r, lrs[r], p) for r in rows(names)]


def chosen_lrs(records: list[dict[str, Any]]) -> dict[Row, float]:
    """Each row's learning rate, chosen from its sweep records on validation (:data:`SELECTION`)."""
    swept = group_by([r for r in records if r["config"]["condition"] != "guide_alone"], lambda r: row_of(r["config"]))
    return {row: choose(rs, lambda r: r["config"]["lr"], SELECTION) for row, rs in swept.items()}


def learning_rates(p: CopyPreset, sweep: list[dict[str, Any]]) -> dict[Row, float]:
    """The sweep's choice per row, checked against the values written into the preset (``chosen_lrs``)."""
    return checked_lrs(NAME, p.chosen_lrs, chosen_lrs(sweep), "row")


def run_seeds(p: CopyPreset, profile: str, seeds: Iterable[int] | None) -> tuple[int, ...]:
    """``seeds`` when given (checked), else the preset's, else the profile's defaults."""
    if seeds is not None:
        return check_seeds(tuple(seeds))
    return p.seeds if p.seeds is not None else default_seeds(profile)
