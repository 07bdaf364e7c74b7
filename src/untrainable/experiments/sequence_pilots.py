"""Appendix 93: pilot runs that choose the sequence regimes of chapter 06 (issue 16, step 1).

Guidance can only be tested where the unguided target fails at what the paper's guide cures, and
where the guide succeeds. This module trains the targets and the guides of chapter 06 *alone*
(never a guided run), at several string lengths or sizes, so that each setting's regime is chosen
before any guided result exists:

* **copy-paste**: the tanh RNN (the target) and the causal Transformer (its guide) at three ranges
  of string length, on strings drawn fresh every epoch as the paper's loader does: where is the RNN
  clearly above chance but far below the Transformer (the paper: 14 % vs 97 %)?
* **parity**: the Transformer encoder (the target) and the tanh RNN (its guide) at four maximum
  lengths, strings drawn fresh: where does the RNN reach at least 95 % on validation while the
  Transformer learns something (clearly above chance, as the paper's 72 %) yet stays clearly below it?
* **language model**: the RNN (the target) and Transformers of two widths, the wider also with
  dropout 0.2 (guides), on tiny-shakespeare characters in windows of 64, trained twice as long as
  chapter 06 did, and the RNN and the wider Transformer with dropout on the same characters in
  windows of 256; then the RNN and the wider Transformer (with and without dropout) on the words of
  the same text (:func:`untrainable.data.word_corpus`, windows of 64 words; the paper's models read
  WikiText-103's words): which guide beats the RNN?

A target (the control of chapter 06) is trained at four learning rates per cell and judged at the
one the book's criterion picks (:data:`SELECTION`), as chapter 06 chooses each condition's rate: a control that fails
only at an untuned rate would make a failure guidance need not cure (the first pilots fixed the
rate, and at its tuned rate the 2-10-bit parity Transformer learned the task). Guides keep one rate.

Every run is one network trained by :func:`.sequence_runs.train_run` with no guide; its config
is chapter 06's :class:`~.sequence_configs.Config` (condition ``"alone"``), so a chosen cell
carries over to the chapter unchanged. Validation and test strings are the fixed splits of
:func:`untrainable.data.sequence_data`. The grid of each profile is a :class:`PilotPreset`
(:data:`PRESETS`). The choice itself is :func:`choose`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from untrainable.analysis.chapter_tables import cell_change_text
from untrainable.analysis.selection import BOOK_CRITERION, LOSS_CRITERION, Criterion, best_record, group_by
from untrainable.experiments import PlannedRun, checked_seeds, select_cells, shell_parser, shell_seeds
from untrainable.experiments import sequence_configs as S
from untrainable.experiments.sequence_runs import train_run
from untrainable.plotting import legend_below, panel_grid
from untrainable.profiles import check_profile, preset_table, replace_preset
from untrainable.results import run_or_load
from untrainable.runtime import log

__all__ = ["EXPERIMENT", "CHAPTER", "GROUPS", "DEFAULT_SEEDS", "CHANCE", "TARGET_LRS", "RULES", "LengthGrid",
           "LmCell", "LmGrid", "PilotPreset", "PRESETS", "configs", "run_name", "select", "planned_runs", "run",
           "pilot_table", "tuned_targets", "choose", "FIRST_SELECTION", "criterion_changes", "criterion_summary",
           "pilot_figure", "main"]

EXPERIMENT = "sequence_pilots"
GROUPS = ("copy", "parity", "lm")
DEFAULT_SEEDS = (0,)
#: Chance accuracy of the generated tasks (copy: one of ten digits; parity: one of two labels).
CHANCE = {"copy": 0.10, "parity": 0.50}
#: The learning rates of every copy-paste and parity target (chapter 06's sweep without its smallest, 3e-5,
#: which no condition chose); the cell's ``lr`` is its guides' rate and the first pilots' one.
TARGET_LRS = (3e-3, 1e-3, 3e-4, 1e-4)
#: How a copy-paste or parity target's learning rate is chosen (:func:`untrainable.analysis.selection.best_record`):
#: the book's criterion; the pilots first chose by :data:`FIRST_SELECTION`, the paper's (:func:`criterion_changes`
#: shows what the switch moved, from the same records: no pilot was retrained). A language model is a loss-type
#: claim: judged by its lowest validation perplexity (:data:`~untrainable.analysis.selection.LOSS_CRITERION`).
SELECTION = BOOK_CRITERION
FIRST_SELECTION = LOSS_CRITERION
#: What a cell must show to qualify: on copy-paste and parity the target at least ``above_chance`` above
#: chance (a target that learns nothing would give verdicts read off noise); copy, the guide this far
#: above the target; parity, the guide at least ``guide_valid_acc`` on validation and this far above
#: the target; the language model, the guide's lowest validation perplexity this fraction below the target's.
RULES = {"above_chance": 0.10, "gap": 0.20, "guide_valid_acc": 0.95, "parity_gap": 0.10, "ppl_margin": 0.05}
#: How errors in the pilots' presets name them.
CHAPTER = "appendix 93 (sequence pilots)"



@dataclass(frozen=True)
class LengthGrid:
    """A copy-paste or parity grid: the target and its guide alone at each range of string lengths."""

    lengths: tuple[tuple[int, int], ...]  # (min_len, max_len) per cell
    n_train: int
    n_valid: int
    n_test: int
    epochs: int
    lr: float  # the guides' rate, and the first pilots' (a target at another rate has it in its name)
    target_lrs: tuple[float, ...] = TARGET_LRS


@dataclass(frozen=True)
class LmCell:
    """A language-model cell: one text in windows of one length, its RNN target and its Transformer guides."""

    seq_len: int
    n_train: int | None  # None: every window of the split
    n_valid: int | None
    n_test: int | None
    epochs: int
    guide_widths: tuple[tuple[int, int, float], ...]  # (d_model, ff, dropout) per guide
    task: str | None = None  # None: chapter 06's language-model task
    target_epochs: tuple[int, ...] | None = None  # the target's epochs, one run each (None: ``epochs``)


@dataclass(frozen=True)
class LmGrid:
    """The language-model grid: every cell at one learning rate, the first cell the chapter's windows."""

    lr: float
    cells: tuple[LmCell, ...]


@dataclass(frozen=True)
class PilotPreset:
    """The pilot grid of one profile, one grid per setting."""

    copy: LengthGrid
    parity: LengthGrid
    lm: LmGrid

    def grid(self, setting: str) -> LengthGrid | LmGrid:
        """The grid of ``setting``."""
        grids = {"copy": self.copy, "parity": self.parity, "lm": self.lm}
        if setting not in grids:
            raise ValueError(f"{CHAPTER}: unknown setting {setting!r}: choose one of {', '.join(grids)}")
        return grids[setting]


_FULL = PilotPreset(
    copy=LengthGrid(lengths=((5, 10), (10, 20), (20, 40)), n_train=16_000, n_valid=500, n_test=1000, epochs=8,
                    lr=1e-3),
    parity=LengthGrid(lengths=((2, 10), (2, 20), (2, 30), (2, 50)), n_train=16_000, n_valid=500, n_test=1000,
                      epochs=8, lr=3e-3),
    lm=LmGrid(lr=2e-3, cells=(
        LmCell(seq_len=64, n_train=9600, n_valid=400, n_test=871, epochs=12,
               guide_widths=((64, 256, 0.0), (128, 512, 0.0), (128, 512, 0.2))),
        # the same characters in windows four times longer, where a Transformer's attention should pay
        LmCell(seq_len=256, n_train=2400, n_valid=100, n_test=217, epochs=12, guide_widths=((128, 512, 0.2),)),
        # words instead of characters (the paper's models read words): every window of 64 words
        # (the RNN's validation perplexity still fell at its 10th epoch: it also trains for 25)
        LmCell(task="word_lm", seq_len=64, n_train=None, n_valid=None, n_test=None, epochs=10,
               target_epochs=(10, 25), guide_widths=((128, 512, 0.0), (128, 512, 0.2))))),
)
_QUICK = PilotPreset(
    copy=replace_preset(CHAPTER, _FULL.copy, lengths=((5, 10),), n_train=256, n_valid=64, n_test=64, epochs=2,
                        target_lrs=(1e-3,)),
    parity=replace_preset(CHAPTER, _FULL.parity, lengths=((2, 10),), n_train=256, n_valid=64, n_test=64, epochs=2,
                          target_lrs=(3e-3, 1e-3)),
    lm=replace_preset(CHAPTER, _FULL.lm, cells=(
        LmCell(seq_len=32, n_train=64, n_valid=16, n_test=16, epochs=2, guide_widths=((32, 64, 0.0),)),
        LmCell(seq_len=64, n_train=32, n_valid=8, n_test=8, epochs=2, guide_widths=((32, 64, 0.0),)),
        LmCell(task="word_lm", seq_len=16, n_train=32, n_valid=8, n_test=8, epochs=1, target_epochs=(1,),
               guide_widths=((32, 64, 0.0),)))),
)
#: The pilots choose the CPU regime: the paper profile has the paper's own, and runs the full grid.
PRESETS: dict[str, PilotPreset] = preset_table(CHAPTER, {"quick": _QUICK, "full": _FULL, "paper": _FULL})


def _base(setting: str, condition: str) -> S.Config:
    """Chapter 06's ``full`` config of ``setting`` (its nets' sizes), to be varied by the pilots."""
    return next(c for c in S.configs("full", settings=(setting,)) if c.condition == condition)


def _alone(c: S.Config, net: S.NetConfig, **values: Any) -> S.Config:
    """One network alone, everything else as chapter 06's first regime had it (the pilots chose the
    chapter's later settings, so they must not follow them)."""
    return dataclasses.replace(c, condition=S.PILOT_CONDITION, net=net, guide=None,
                               **S.config_defaults("tokens", "guide_lr", "guide_reseeds"), **values)


def configs(profile: str) -> list[S.Config]:
    """Every pilot run of ``profile``: per setting, its target and its guide at each length or size."""
    p = PRESETS[check_profile(profile)]
    out = []
    for setting in ("copy", "parity"):
        q = p.grid(setting)
        target = _base(setting, "no_guide")
        common = dict(n_train=q.n_train, n_valid=q.n_valid, n_test=q.n_test, epochs=q.epochs, fresh=True)
        lrs = (q.lr, *(lr for lr in q.target_lrs if lr != q.lr))  # the first pilots' rate first
        for lo, hi in q.lengths:
            out += [_alone(target, target.net, min_len=lo, max_len=hi, lr=lr, **common) for lr in lrs]
            out.append(_alone(target, target.guide, min_len=lo, max_len=hi, lr=q.lr, **common))
    target = _base("lm", "no_guide")
    for cell in p.lm.cells:
        sizes = {k: S.EVERY_WINDOW if v is None else v
                 for k, v in (("n_train", cell.n_train), ("n_valid", cell.n_valid), ("n_test", cell.n_test))}
        common = dict(sizes, epochs=cell.epochs, lr=p.lm.lr, seq_len=cell.seq_len, task=cell.task or target.task)
        out += [_alone(target, target.net, **{**common, "epochs": e}) for e in cell.target_epochs or (cell.epochs,)]
        out += [_alone(target, dataclasses.replace(target.guide, width=w, ff=ff, dropout=d), **common)
                for w, ff, d in cell.guide_widths]
    return out


def run_name(c: S.Config) -> str:
    """A readable name: setting, network, and the lengths (copy, parity) or the epochs (language model),
    then the learning rate where it is not the setting's first pilot rate (a target's other rates)."""
    net = f"{c.net.family}{c.net.width}x{c.net.layers}" + (f"d{c.net.dropout:g}" if c.net.dropout else "")
    cell = f"len{c.min_len}-{c.max_len}" if c.setting != "lm" else f"e{c.epochs}" + (
        f"-T{c.seq_len}" if c.seq_len != _FULL.lm.cells[0].seq_len else "") + ("-words" if c.task == "word_lm" else "")
    rate = f"-lr{c.lr:g}" if c.lr != _FULL.grid(c.setting).lr else ""
    return f"{c.setting}-{net}-{cell}{rate}"


def select(runs: list[S.Config], cells: Iterable[str] | None) -> list[S.Config]:
    """The runs named by ``cells`` (settings or run names; None: all), in grid order."""
    return select_cells(runs, cells, GROUPS, run_name, lambda c: c.setting, kind="settings")


def planned_runs(profile: str, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """Every pilot record of ``profile``."""
    seeds = checked_seeds(seeds, DEFAULT_SEEDS)
    return [PlannedRun(EXPERIMENT, run_name(c), c, s, S.REQUIRED_METRICS) for c in configs(profile) for s in seeds]


def run(profile: str = "quick", seeds: Iterable[int] | None = None, device: str = "auto", force: bool = False, *,
        cells: Iterable[str] | None = None, train_missing: bool | None = None) -> list[dict[str, Any]]:
    """The record of every pilot run (or of those in ``cells``): stored ones loaded, missing ones trained."""
    seeds = checked_seeds(seeds, DEFAULT_SEEDS)
    records = []
    for c in select(configs(profile), cells):
        for s in seeds:
            log(f"{EXPERIMENT}/{run_name(c)} seed {s} ({profile})")
            records.append(run_or_load(EXPERIMENT, profile, run_name(c), c, s, train_run, device=device,
                                       force=force, train_missing=train_missing,
                                       required_metrics=S.REQUIRED_METRICS))
    return records


# ----------------------------------------------------------------------------- choosing the regimes


def pilot_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per pilot record: setting, role (target or guide), network, cell, learning rate,
    accuracies, the lowest validation loss, perplexity, minutes."""
    rows = []
    for r in records:
        c = r["config"]
        m = r["metrics"]
        net, cell = run_name_parts(r)
        rows.append({"setting": c["setting"], "task": c["task"], "role": _role(r), "net": net, "cell": cell,
                     "lr": f"{c['lr']:g}",
                     "width": c["net"]["width"], "seq_len": c["seq_len"], "lengths": (c["min_len"], c["max_len"]),
                     "test_acc": m["test_acc"], "best_valid_acc": m["best_valid_acc"],
                     "min_valid_loss": min(h["valid_loss"] for h in r["history"]),
                     "valid_perplexity": math.exp(min(h["valid_loss"] for h in r["history"])),
                     "perplexity": m["perplexity"],
                     "minutes": r.get("wall_time_s", math.nan) / 60, "seed": r["seed"]})
    return pd.DataFrame(rows)


def _role(r: dict[str, Any]) -> str:
    """``"target"`` (chapter 06's control network of the setting) or ``"guide"``."""
    return "target" if r["config"]["net"]["family"] == _base(r["config"]["setting"], "no_guide").net.family else "guide"


def run_name_parts(r: dict[str, Any]) -> tuple[str, str]:
    """(network, cell) of a pilot record's name; the cell without a learning-rate suffix."""
    _, net, cell = r["name"].split("-", 2)
    return net, cell.split("-lr", 1)[0]


def tuned_targets(records: list[dict[str, Any]], criterion: Criterion = SELECTION) -> list[dict[str, Any]]:
    """Every guide record and, per setting and cell, the target record chosen on validation (by ``criterion``,
    a language model by :data:`~untrainable.analysis.selection.LOSS_CRITERION`: the target at its tuned
    learning rate): what :func:`choose` and :func:`pilot_figure` judge."""
    targets = group_by([r for r in records if _role(r) == "target"],
                       lambda r: (r["config"]["setting"], run_name_parts(r)[1]))
    tuned = [best_record(rs, LOSS_CRITERION if setting == "lm" else criterion)
             for (setting, _), rs in targets.items()]
    return [r for r in records if _role(r) == "guide" or any(r is t for t in tuned)]


def choose(records: list[dict[str, Any]], criterion: Criterion = SELECTION) -> pd.DataFrame:
    """Per setting and cell: the target's and the guide's numbers, whether the cell qualifies
    (:data:`RULES`) and which cell is chosen: for copy-paste and parity the longest qualifying
    strings (the nearest to the paper's 20-40 and 2-50), for the language model the smallest guide
    that beats the target of its text and context length (then the shorter context). A copy-paste or
    parity target is judged at its learning rate chosen by ``criterion`` (:func:`tuned_targets`); a
    language model by its lowest validation perplexity (its best epoch: a Transformer on words
    overfits within ten epochs while the RNN still improves), against the best of its text's targets."""
    t = pilot_table(tuned_targets(records, criterion))
    rows = []
    for (setting, lengths), cell in t[t.setting != "lm"].groupby(["setting", "lengths"]):
        target, guide = cell[cell.role == "target"].iloc[0], cell[cell.role == "guide"].iloc[0]
        learns = target.test_acc >= CHANCE[setting] + RULES["above_chance"]
        if setting == "copy":
            ok = learns and guide.test_acc - target.test_acc >= RULES["gap"]
        else:
            ok = (learns and guide.best_valid_acc >= RULES["guide_valid_acc"]
                  and guide.test_acc - target.test_acc >= RULES["parity_gap"])
        rows.append({"setting": setting, "cell": target.cell, "target_lr": target.lr, "target": target.test_acc,
                     "guide": guide.test_acc,
                     "guide_valid": guide.best_valid_acc, "qualifies": bool(ok), "size": lengths[1]})
    for (task, seq_len), lm in t[t.setting == "lm"].groupby(["task", "seq_len"]):  # each text and window: a target
        targets = lm[lm.role == "target"]
        target = targets.loc[targets.min_valid_loss.idxmin()]
        unit = "words" if task == "word_lm" else "characters"
        for _, guide in lm[lm.role == "guide"].iterrows():
            ok = guide.valid_perplexity <= (1 - RULES["ppl_margin"]) * target.valid_perplexity
            rows.append({"setting": "lm", "cell": f"{guide.net}, windows of {seq_len} {unit}",
                         "target_lr": target.lr, "target": target.valid_perplexity,
                         "guide": guide.valid_perplexity, "guide_valid": math.nan, "qualifies": bool(ok),
                         "size": -(10_000 * guide.width + seq_len)})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["chosen"] = False
    for setting, group in out[out.qualifies].groupby("setting"):
        out.loc[group["size"].idxmax(), "chosen"] = True
    return out.drop(columns="size")


def criterion_changes(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Per copy-paste and parity cell, the target's learning rate :data:`SELECTION` chooses and the one
    :data:`FIRST_SELECTION` chose, and whether the cell qualifies and is chosen under each: what switching to
    the book's criterion moved (the language model's choice is by perplexity under both)."""
    now, first = (choose(records, c) for c in (SELECTION, FIRST_SELECTION))
    if now.empty:
        return pd.DataFrame()
    keep = ["setting", "cell", "target_lr", "qualifies", "chosen"]
    both = now[now.setting != "lm"][keep].merge(first[first.setting != "lm"][keep], on=["setting", "cell"],
                                                 suffixes=(" now", " first"))
    return both[["setting", "cell", "target_lr now", "target_lr first", "qualifies now", "qualifies first",
                 "chosen now", "chosen first"]]


def criterion_summary(changes: pd.DataFrame) -> str:
    """A sentence from :func:`criterion_changes`: the cells whose tuned learning rate the book's criterion moved,
    and whether any setting's chosen cell moved with them."""
    return cell_change_text(changes, SELECTION, FIRST_SELECTION, group="setting", lr="target_lr",
                            choosing="Tuning each target", rate="tuned learning rate", regime="chosen cell",
                            stands="every regime stands", both="the table shows both")


def _panel(r: dict[str, Any]) -> tuple[str, str]:
    """The figure panel of a pilot record: its setting and, for the language model, its text unit."""
    setting = r["config"]["setting"]
    return setting, ("words" if r["config"]["task"] == "word_lm" else "characters") if setting == "lm" else ""


def pilot_figure(records: list[dict[str, Any]], title: str) -> plt.Figure:
    """One panel per setting, one above the other (side by side they shrink past reading): the validation
    accuracy in percent (copy, parity) or perplexity (language model) per epoch of each target at its tuned
    learning rate (solid) and guide (dashed), one colour per cell. The language model on characters and on words
    gets a panel each: their perplexities (about 7 against 55 to 170) would flatten each other on one axis."""
    records = tuned_targets(records)
    panels = list(dict.fromkeys(sorted((_panel(r) for r in records), key=lambda p: GROUPS.index(p[0]))))
    fig, axes = panel_grid(len(panels), 1, (7.5, 4.2), layout="constrained")
    for ax, (setting, unit) in zip(axes, panels):
        mine = sorted((r for r in records if _panel(r) == (setting, unit)), key=lambda r: r["name"])
        cells = list(dict.fromkeys(run_name_parts(r)[1] for r in mine))
        lm = setting == "lm"
        for r in mine:
            net, cell = run_name_parts(r)
            role = _role(r)
            y = [math.exp(h["valid_loss"]) if lm else 100 * h["valid_acc"] for h in r["history"]]
            colour = f"C{mine.index(r) if lm else cells.index(cell)}"
            label = f"{net}, {cell}" if lm else f"{cell}, {role} ({net}, lr {r['config']['lr']:g})"
            style = "-" if role == "target" else "--"
            ax.plot([h["epoch"] for h in r["history"]], y, color=colour, linestyle=style, label=label)
        if not lm:
            ax.axhline(100 * CHANCE[setting], color="grey", linewidth=0.8, linestyle=":")
        ax.set(title=f"RNN language model on {unit}, Transformer guide" if lm else S.SETTING_LABELS[setting],
               xlabel="epoch",
               ylabel=f"validation perplexity\n(per {unit.rstrip('s')})" if lm else "validation accuracy (%)")
        legend_below(ax, ncol=2, wrap=40)
    fig.suptitle(title)
    return fig


def main(argv: list[str] | None = None) -> None:
    """Train the pilot runs from a shell (missing records are trained); ``--cells`` splits the grid
    over parallel one-thread processes (settings or run names)."""
    parser = shell_parser("python -m untrainable.experiments.sequence_pilots", main.__doc__,
                          f"distinct seeds (default: {DEFAULT_SEEDS})")
    parser.add_argument("--cells", nargs="*", help="settings or run names (default: every run)")
    args = parser.parse_args(argv)
    seeds = shell_seeds(parser, args.seeds)
    try:
        select(configs(args.profile), args.cells)
    except ValueError as err:
        parser.error(str(err))
    run(args.profile, seeds, args.device, cells=args.cells, train_missing=True)


if __name__ == "__main__":
    main()
