"""Tables and prose a chapter prints from its records: the preconditions it checked, the validation
sweep that chose its hyper-parameters, and a narrative of its verdicts against the paper.

Every sentence is built from numbers passed in (records, checked preconditions, the verdict table of
:func:`untrainable.paper_comparison.comparison`), so a page never states what its records do not show.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from untrainable.analysis.effects import INCONCLUSIVE, NO_EFFECT, NOT_TESTABLE, OPPOSITE, REPRODUCED, RULE_NOT_AVAILABLE
from untrainable.analysis.preconditions import CheckedPrecondition

__all__ = ["precondition_table", "precondition_summary", "sweep_table", "verdict_narrative"]


def precondition_table(checks: Sequence[CheckedPrecondition]) -> pd.DataFrame:
    """One row per checked precondition: what it requires, whether it holds, and the numbers why."""
    return pd.DataFrame([{"precondition": c.name, "status": c.status, "numbers": c.detail} for c in checks]
                        ).set_index("precondition")


def precondition_summary(checks: Sequence[CheckedPrecondition]) -> str:
    """'All 4 preconditions hold.' or which fail, by name: the sentence a chapter opens its results with."""
    failed = [c.name for c in checks if not c.holds]
    if not failed:
        held = f"The precondition ({checks[0].name}) holds" if len(checks) == 1 else \
            f"All {len(checks)} preconditions hold"
        return f"{held}, so every comparison below could show the paper's effect."
    return (f"{len(failed)} of {len(checks)} preconditions fail ({'; '.join(failed)}): the comparisons that need "
            "them are \"not testable\" here, whatever their numbers.")


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
    learning rate) its lowest validation loss, the epoch it came at, and whether the chapter uses that
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
                     "learning rate": c["lr"], "lowest validation loss": m["min_valid_loss"],
                     "at epoch": m.get("checkpoint_epoch", 1 + losses.index(min(losses))),
                     "chosen": "yes" if uses else ""})
    columns = [group, "condition", "alpha", "learning rate", "lowest validation loss", "at epoch", "chosen"]
    table = pd.DataFrame(rows, columns=columns)  # a profile without a sweep: an empty table
    return table.sort_values([group, "condition", "alpha", "learning rate"], na_position="first").reset_index(drop=True)


_READING = {REPRODUCED: "reproduced", OPPOSITE: "went the other way",
            INCONCLUSIVE: "was inconclusive (our interval holds both no effect and the paper's)",
            NO_EFFECT: "showed no effect, and our interval excludes the paper's", NOT_TESTABLE: "could not be tested",
            RULE_NOT_AVAILABLE: "could not be read under the book's estimate"}


def verdict_narrative(table: pd.DataFrame) -> str:
    """A Markdown list from the rows of :func:`untrainable.paper_comparison.comparison` that carry a test:
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
