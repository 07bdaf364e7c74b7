"""Tables and prose a chapter prints from its records: the preconditions it checked, the validation
sweep that chose its hyper-parameters, and a narrative of its verdicts against the paper.

Every sentence is built from numbers passed in (records, checked preconditions, the verdict table of
:func:`untrainable.paper_comparison_display.comparison`), so a page never states what its records do not show.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

import numpy as np

from untrainable.analysis.effects import INCONCLUSIVE, NO_EFFECT, NOT_TESTABLE, OPPOSITE, REPRODUCED, RULE_NOT_AVAILABLE
from untrainable.analysis.estimates import (FINAL_EPOCH, LOSS_RULE, PRIMARY_RULE, RULE_WORDS, RuleNotAvailable,
                                            estimate, rule_epoch)
from untrainable.analysis.preconditions import CheckedPrecondition, best_train_acc
from untrainable.analysis.selection import CRITERION_WORDS, max_valid_acc

__all__ = ["precondition_table", "precondition_summary", "sweep_table", "chosen_table", "verdict_narrative",
           "REPORTED_RULES", "estimate_heading", "estimate_table", "regimes_table", "selection_changes", "selection_change_text",
           "cell_change_text", "rule_change_text"]

#: The rules a chapter's accuracy table shows: the book's estimate first, then its reported sensitivities (the
#: paper's rule, the last epoch).
REPORTED_RULES = (PRIMARY_RULE, LOSS_RULE, FINAL_EPOCH)
#: What each rule is to a reader of a chapter.
_ROLE = {PRIMARY_RULE: "the book's estimate", LOSS_RULE: "the paper's rule", FINAL_EPOCH: "a sensitivity"}



def precondition_table(checks: Sequence[CheckedPrecondition]) -> pd.DataFrame:
    """One row per checked precondition: what it requires, whether it holds, and the numbers why."""
    return pd.DataFrame([{"precondition": c.name, "status": c.status, "numbers": c.detail} for c in checks]
                        ).set_index("precondition")


def precondition_summary(checks: Sequence[CheckedPrecondition]) -> str:
    """'All 4 preconditions hold.' or which fail, by name: the sentence a chapter opens its results with."""
    unread = [c.name for c in checks if c.status == RULE_NOT_AVAILABLE]
    failed = [c.name for c in checks if not c.holds and c.name not in unread]
    if not failed and not unread:
        held = f"The precondition ({checks[0].name}) holds" if len(checks) == 1 else \
            f"All {len(checks)} preconditions hold"
        return f"{held}, so every comparison below could show the paper's effect."
    said = [f"{len(failed)} of {len(checks)} preconditions fail ({'; '.join(failed)}): the comparisons that need "
            "them are \"not testable\" here, whatever their numbers."] if failed else []
    if unread:
        said.append(f"{len(unread)} of {len(checks)} cannot be read at the book's estimate ({'; '.join(unread)}): "
                    "a run did not keep what that epoch needs, so the comparisons that need them say \"rule not "
                    "available\".")
    return " ".join(said)


def settings_by_name(chosen: Mapping[Any, Any]) -> dict[str, dict[str, float]]:
    """A chapter's typed choices (``Run -> RunSettings``) as ``"<group>/condition" -> {"lr", "alpha"}``
    (a run key is a (group, condition) pair; settings left at None are the config's defaults, omitted)."""
    def name(run: Any) -> str:
        return "/".join(run) if isinstance(run, tuple) else str(run)

    def values(s: Any) -> dict[str, float]:
        d = dataclasses.asdict(s) if dataclasses.is_dataclass(s) else dict(s)
        return {k: v for k, v in d.items() if v is not None}

    return {name(run): values(s) for run, s in chosen.items()}


def chosen_table(chosen: Mapping[Any, Any], index: str = "target/condition") -> pd.DataFrame:
    """What a chapter's validation sweep chose, one row per run."""
    return pd.DataFrame(settings_by_name(chosen)).T.rename_axis(index)


def sweep_table(records: Iterable[dict[str, Any]], chosen: Mapping[Any, Any],
                group: str = "target") -> pd.DataFrame:
    """The validation sweep: per run (``group``: its target or setting, condition, alpha when guided,
    learning rate) its highest validation accuracy (the book's criterion), its lowest validation loss (the
    paper's, and the tie-breaker), the epoch of that loss, and whether the chapter uses that
    setting (``chosen``: the chapter's typed choices, or "<group>/condition" -> {"lr"} and, where alpha
    was swept, "alpha")."""
    chosen = settings_by_name(chosen)
    rows = []
    for r in records:
        c, m = r["config"], r["metrics"]
        pick = chosen.get(f"{c[group]}/{c['condition']}", {})
        guided = c.get("guide") is not None
        uses = pick.get("lr") == c["lr"] and ("alpha" not in pick or pick["alpha"] == c["alpha"])
        losses = [h["valid_loss"] for h in r["history"]]
        rows.append({group: c[group], "condition": c["condition"], "alpha": c["alpha"] if guided else None,
                     "learning rate": c["lr"], "highest validation accuracy": max_valid_acc(r),
                     "lowest validation loss": m["min_valid_loss"],
                     "at epoch": m.get("checkpoint_epoch", 1 + losses.index(min(losses))),
                     "chosen": "yes" if uses else ""})
    columns = [group, "condition", "alpha", "learning rate", "highest validation accuracy", "lowest validation loss",
               "at epoch", "chosen"]
    table = pd.DataFrame(rows, columns=columns)  # a profile without a sweep: an empty table
    return table.sort_values([group, "condition", "alpha", "learning rate"], na_position="first").reset_index(drop=True)


_READING = {REPRODUCED: "reproduced", OPPOSITE: "went the other way",
            INCONCLUSIVE: "was inconclusive (our interval holds both no effect and the paper's)",
            NO_EFFECT: "showed no effect, and our interval excludes the paper's", NOT_TESTABLE: "could not be tested",
            RULE_NOT_AVAILABLE: "could not be read under the book's estimate"}


def verdict_narrative(table: pd.DataFrame) -> str:
    """A Markdown list from the rows of :func:`untrainable.paper_comparison_display.comparison` that carry a test:
    per row, the claim, our effect with its interval and p, the paper's effect, and (when a precondition
    failed) which one. Reference rows and rows without records are left out."""
    lines = []
    for _, row in table.iterrows():
        verdict = row["verdict"]
        if verdict not in _READING:
            continue
        head = f"* **{row['setting']}, {row['condition']}** {_READING[verdict]}"
        if verdict in (NOT_TESTABLE, RULE_NOT_AVAILABLE):
            lines.append(f"{head}: {row['why']}.")
            continue
        lines.append(f"{head}: our effect {row['effect (ours) [95 % CI]']} (p = {row['p']}, {row['seeds']} seeds); "
                     f"the paper's {row['effect (paper)']}.")
    return "\n".join(lines) if lines else "No row of this chapter has a test yet."


def estimate_heading(rule: str, what: str = "test acc (%)") -> str:
    """A column heading that says which epoch its numbers are from, generated from the rule's name:
    'test acc (%) at the epoch of highest validation accuracy (the book's estimate)'."""
    return f"{what} at {RULE_WORDS[rule]} ({_ROLE.get(rule, 'a sensitivity')})"


def _mean_sd(values: Sequence[float], scale: float, digits: int) -> str:
    """'41.0 ± 1.0' of ``values`` times ``scale`` (the sd of one value: 0)."""
    v = scale * np.array(values)
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.{digits}f}"


def _cell(records: list[dict[str, Any]], rule: str, scale: float, digits: int) -> str:
    """'41.0 ± 1.0' of the records' estimates under ``rule``, or "rule not available" where a run has none."""
    try:
        return _mean_sd([estimate(r, "test_acc", rule) for r in records], scale, digits)
    except RuleNotAvailable:
        return RULE_NOT_AVAILABLE


def regimes_table(regimes: Mapping[str, Iterable[dict[str, Any]]], labels: Mapping[str, str] | None = None,
                  scale: float = 100.0, digits: int = 1) -> pd.DataFrame:
    """Regimes side by side (``regimes``: a regime's words -> its records): per regime and condition (record
    name), the seeds, the best training accuracy (which failure: a net that overfits fits its training set, one
    that fails to train does not) and the book's estimate of test accuracy, each mean ± sd over seeds."""
    rows = []
    for regime, records in regimes.items():
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            groups.setdefault(r["name"], []).append(r)
        rows += [{"regime": regime, "condition": (labels or {}).get(name, name), "seeds": len(rs),
                  "best train acc (%)": _mean_sd([best_train_acc(r) for r in rs], scale, digits),
                  estimate_heading(PRIMARY_RULE): _cell(rs, PRIMARY_RULE, scale, digits)} for name, rs in groups.items()]
    return pd.DataFrame(rows).set_index(["regime", "condition"])


def estimate_table(records: Iterable[dict[str, Any]], labels: Mapping[str, str] | None = None,
                   rules: Sequence[str] = REPORTED_RULES, scale: float = 100.0, digits: int = 1) -> pd.DataFrame:
    """Test accuracy per condition (record name), mean ± sd over seeds, one column per rule: the book's estimate
    (:func:`untrainable.analysis.estimate` under :data:`PRIMARY_RULE`) first, then the paper's rule and the last
    epoch as reported sensitivities; each heading says its epoch (:func:`estimate_heading`)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r["name"], []).append(r)
    rows = [{"condition": (labels or {}).get(name, name), "seeds": len(rs),
             **{estimate_heading(rule): _cell(rs, rule, scale, digits) for rule in rules}}
            for name, rs in groups.items()]
    return pd.DataFrame(rows).set_index("condition")


def selection_changes(changes: Mapping[Any, tuple[Any, Any]], first: str, book: str) -> pd.DataFrame:
    """The swept runs whose chosen settings a change of criterion moved (``changes``: run -> (what ``book``
    chose, what ``first`` chose or None where that alpha's learning rates were never swept), as
    :meth:`~untrainable.experiments.image_chapter.ImageChapter.changes_under` returns them): one row per run."""
    def shown(s: Any) -> str:
        if s is None:
            return "its learning rates were not swept at that alpha"
        return ", ".join(f"{k} {v:g}" for k, v in settings_by_name({"": s})[""].items())

    now, then = (f"chosen by {CRITERION_WORDS[c]}" for c in (book, first))
    rows = [{"run": "/".join(run) if isinstance(run, tuple) else str(run), now: shown(ours), then: shown(theirs)}
            for run, (ours, theirs) in changes.items()]
    return pd.DataFrame(rows, columns=["run", now, then])


def selection_change_text(changes: Mapping[Any, tuple[Any, Any]], first: str, book: str, swept: int) -> str:
    """A sentence saying how many of the ``swept`` runs' settings the change from ``first`` to ``book`` moved,
    and which (:func:`selection_changes` has the settings)."""
    if not changes:
        return f"The change of criterion moved none of the {swept} swept runs' settings."
    runs = ", ".join("/".join(run) if isinstance(run, tuple) else str(run) for run in changes)
    return (f"Choosing by {CRITERION_WORDS[book]} instead of {CRITERION_WORDS[first]} moved the settings of "
            f"{len(changes)} of the {swept} swept runs ({runs}); the chapter's runs are trained at the first column's "
            "settings.")


def cell_change_text(changes: pd.DataFrame, book: str, first: str, *, group: str, lr: str, choosing: str, rate: str,
                     regime: str, stands: str, both: str) -> str:
    """A sentence from a pilot page's table of what the change from criterion ``first`` to ``book`` moved:
    how many cells' learning rates, and whether any claim's or setting's chosen cell moved with them.

    ``changes`` has a row per cell: its ``group`` (the claim or setting it serves, also the sentence's word for
    it), ``cell``, the learning rate each criterion chooses (``f"{lr} now"``, ``f"{lr} first"``) and whether
    each criterion's regime choice picks the cell (``"chosen now"``, ``"chosen first"``). The rest are the page's
    words: ``choosing`` opens the sentence, ``rate`` is what moved, ``regime`` what a group chooses, ``stands``
    is said when no regime moved and ``both`` points to the table when one did."""
    moved = changes[changes[f"{lr} now"] != changes[f"{lr} first"]]
    regimes = changes[changes["chosen now"] != changes["chosen first"]]
    cells = "; ".join(f"{r[group]}, {r['cell']}: {_rate(r[f'{lr} first'])} → {_rate(r[f'{lr} now'])}"
                      for _, r in moved.iterrows())
    lrs = (f"changes the {rate} of {len(moved)} of {len(changes)} cells ({cells})" if len(moved)
           else f"changes the {rate} of none of the {len(changes)} cells")
    choice = (f"and no {group}'s {regime}: {stands}" if regimes.empty else
              f"and the {regime} of " + ", ".join(sorted(set(regimes[group]))) + f" ({both})")
    return (f"{choosing} by the book's criterion ({CRITERION_WORDS[book]}) instead of the first "
            f"({CRITERION_WORDS[first]}) {lrs}, {choice}.")


def _rate(value: Any) -> str:
    """A learning rate as a page writes it: a number in its shortest form, a text as it is."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _disagreements(verdicts: pd.DataFrame, paper: pd.DataFrame, chapter: str, first: str) -> list[str]:
    """'<setting>, <condition>: reproduced at the book's rule's epoch, no effect detected at the first's' for each
    row of ``chapter`` in ``paper`` (:func:`untrainable.paper_comparison.paper_numbers`) whose two verdicts in
    ``verdicts`` (:func:`untrainable.paper_comparison.verdicts`) differ."""
    rows = paper[paper["chapter"] == chapter]
    return [f"{row['setting']}, {row['condition']}: {verdicts.loc[rid, 'verdict']} at {RULE_WORDS[PRIMARY_RULE]}, "
            f"{verdicts.loc[rid, f'verdict_{first}']} at {RULE_WORDS[first]}" for rid, row in rows.iterrows()
            if verdicts.loc[rid, "verdict"] != verdicts.loc[rid, f"verdict_{first}"]]


def rule_change_text(control: Sequence[dict[str, Any]], verdicts: pd.DataFrame, paper: pd.DataFrame, chapter: str,
                     label: str, first: str = LOSS_RULE) -> str:
    """Why the book's rule replaced the ``first`` one, from the records: the epochs ``first`` picks for the
    unguided ``control`` runs (of how many), their test accuracy there and at the book's estimate, and the
    claims of ``chapter`` (``paper``'s rows, judged in ``verdicts``) the two rules decide differently."""
    epochs = [rule_epoch(r, first) for r in control]
    total = max(rule_epoch(r, FINAL_EPOCH) for r in control)
    at_first = 100 * np.mean([estimate(r, "test_acc", first) for r in control])
    at_book = 100 * np.mean([estimate(r, "test_acc", PRIMARY_RULE) for r in control])
    split = _disagreements(verdicts, paper, chapter, first)
    return (f"Picking {RULE_WORDS[first]} puts the unguided {label}'s checkpoint at epochs {min(epochs)} to "
            f"{max(epochs)} of {total} ({len(epochs)} seeds), where its test accuracy is {at_first:.1f} %; the test "
            f"accuracy goes on rising after it: {at_book:.1f} % at {RULE_WORDS[PRIMARY_RULE]}. "
            + (f"The two rules decide {len(split)} of this chapter's claims differently ({'; '.join(split)})."
               if split else "The two rules decide every claim of this chapter alike."))
