"""Page 98 and the landing page: the verdict rows of :mod:`untrainable.paper_comparison` as a reader sees them.

Page 98 shows one narrow row per claim (:func:`compact`: the claim in words, :func:`claim`, never
a row's id; effects with their units, :data:`UNITS`) with the long notes folded under it (:func:`notes_html`);
the landing page opens with :func:`answer`, three sentences from the same table, and the forest plot of
:mod:`untrainable.forest`.

Nothing here computes a verdict or reads a number the verdict rows do not hold: :func:`comparison` formats
:func:`untrainable.paper_comparison.verdicts` (means, effects, intervals, p, with their units), and every other
function formats a :func:`comparison` table or the data file's own words.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from untrainable import analysis as A
from untrainable.pages import NA_NOTE_ATTR, table_html
from untrainable.paper_comparison import ACCURACIES, paper_numbers, verdicts
from untrainable.paper_comparison_records import PlannedStore, is_set, names_a_record, precondition_specs

__all__ = ["SHOWN", "UNITS", "COMPACT", "NOTES", "UNTRAINABLE", "chapter_rows", "verdict_html", "GUIDANCE_CHAPTERS", "MIMICRY_CHAPTERS", "sources_table", "comparison",
           "verdict_counts", "headline", "transfer_paragraph", "claim", "compact", "notes_html", "answer"]

#: The columns a page shows of :func:`comparison`: the verdict first, so it is read before any number.
#: Not shown: chapter, source (the sources table), and "why": every page puts under its table the
#: sentences of :func:`untrainable.analysis.verdict_narrative`, which say it in full (the test, or the
#: failed precondition's numbers), so the table stays narrow enough to read.
SHOWN = ["verdict", "setting", "condition", "paper metric", "paper", "ours", "seeds", "effect (paper)",
         "paper on our scale", "effect (ours) [95 % CI]", "p", "MDE", "precondition", "under other rules"]


def sources_table(paper: pd.DataFrame) -> pd.DataFrame:
    """Where each of the papers' numbers comes from, one row per number (``paper``: :func:`~untrainable.paper_comparison.paper_numbers`),
    by its :func:`claim`: the number with its spread and metric, its source and the data file's note in full."""
    spread = paper["paper_spread"].map(lambda v: "" if pd.isna(v) else f" ± {v:g}")
    number = paper["paper_mean"].map(lambda v: "—" if pd.isna(v) else f"{v:g}") + spread
    # the columns' values, not the Series: indexed by row id, they would be aligned to the claims (all missing)
    return pd.DataFrame({"paper's number": (number + " (" + paper["paper_metric"].fillna("") + ")").to_numpy(),
                         "source": paper["source"].fillna("—").to_numpy(), "note": paper["note"].fillna("").to_numpy()},
                        index=pd.Index([claim(row) for _, row in paper.iterrows()], name="claim"))


def _fmt(mean: float, sd: float, digits: int) -> str:
    """'41.0 ± 1.0', '41.0' (one seed) or '' (no value)."""
    if math.isnan(mean):
        return ""
    return f"{mean:.{digits}f}" + ("" if math.isnan(sd) else f" ± {sd:.{digits}f}")


def _fmt_effect(e: pd.Series, digits: int, unit: str = "") -> str:
    """'+3.3 [+0.4, +6.2]' (the 95 % interval), with ``unit`` '+3.3 pts [+0.4, +6.2]', or '' (no test)."""
    if math.isnan(e["effect"]):
        return ""
    value = f"{e['effect']:+.{digits}f}" + (f" {unit}" if unit else "")
    return f"{value} [{e['ci_low']:+.{digits}f}, {e['ci_high']:+.{digits}f}]"


def _fmt_paper_effect(e: pd.Series, direction: Any, digits: int, unit: str) -> str:
    """The paper's effect with its unit and, where it differs, on our scale: '+5.85 pts (+1.2 scaled)'; a
    direction alone as 'lower (no size)'; '' for a reference row."""
    if math.isnan(e["paper_effect"]):
        return f"{direction} (no size)" if is_set(direction) else ""
    scaled = e["paper_effect_scaled"]
    shown = "" if math.isnan(scaled) or round(scaled, 2) == round(e["paper_effect"], 2) else \
        f" ({scaled:+.{digits}f} scaled)"
    return f"{e['paper_effect']:+.2f} {unit}{shown}"


def _fmt_number(value: float, digits: int, signed: bool = False) -> str:
    """'+1.2' / '1.2', or '' for no value."""
    return "" if math.isnan(value) else f"{value:{'+' if signed else ''}.{digits}f}"


def _other_rules(r: pd.Series) -> str:
    """'' where the other rules give the row's verdict, else theirs, opened by "fragile" where tested verdicts
    disagree: 'fragile: lowest validation loss: inconclusive; last epoch: reproduced'."""
    others = {"lowest validation loss": r["verdict_min_valid_loss"], "last epoch": r["verdict_final_epoch"]}
    if all(v == r["verdict"] for v in others.values()):
        return ""
    return ("fragile: " if r["fragile"] else "") + "; ".join(f"{k}: {v}" for k, v in others.items())


def _status(holds: bool | None) -> str:
    """'holds', 'does not hold' or '' (the row names no precondition); the numbers are in the row's "why"."""
    return "" if holds is None or holds != holds else ("holds" if holds else "does not hold")


def comparison(profile: str = "full", path: Path | None = None) -> pd.DataFrame:
    """The display table: per paper number, the paper's value, ours (mean ± sd, seeds), both effects (the
    paper's also on our scale), our 95 % interval, p and minimum detectable effect, the precondition, the
    verdict, the estimate's rule and the verdicts under the other rules where they differ (:func:`_other_rules`);
    and what :func:`compact` and :func:`notes_html` read: the row's :func:`claim`, its effect's unit
    (:data:`UNITS`) and whether it is fragile."""
    paper, v = paper_numbers(path), verdicts(profile, path)
    rows = []
    for rid, row in paper.iterrows():
        r = v.loc[rid]
        digits = 2 if row["our_metric"] in ("kappa", "overfit_gap", "perplexity") else 1
        unit = UNITS.get(row["our_metric"], "")
        paper_effect = f"{r['paper_effect']:+.2f}" if not math.isnan(r["paper_effect"]) else row["paper_direction"]
        rows.append({"row": rid, "chapter": row["chapter"] if is_set(row["chapter"]) else "",
                     "setting": row["setting"], "condition": row["condition"], "paper metric": row["paper_metric"],
                     "paper": _fmt(row["paper_mean"], row["paper_spread"], 2) if not math.isnan(row["paper_mean"])
                     else row["note"], "ours": _fmt(r["mean"], r["sd"], digits), "seeds": f"{r['seeds']}",
                     "extra seeds": r["extra_seeds"],
                     "profile": profile, "effect (paper)": paper_effect if is_set(paper_effect) else "",
                     "effect (ours) [95 % CI]": _fmt_effect(r, digits),
                     "paper on our scale": _fmt_number(r["paper_effect_scaled"], digits, signed=True),
                     "p": "" if math.isnan(r["p_value"]) else f"{r['p_value']:.2g}",
                     "MDE": _fmt_number(r["mde"], digits), "escape p": _fmt_number(r["escape_p"], 2),
                     "precondition": _status(r["precondition_holds"]), "verdict": r["verdict"], "why": r["reason"],
                     "rule": r["estimate_rule"], "under other rules": _other_rules(r), "source": row["source"],
                     "claim": claim(row), "fragile": bool(r["fragile"]), "unit": unit,
                     "our effect": _fmt_effect(r, digits, unit),
                     "paper's effect": _fmt_paper_effect(r, row["paper_direction"], digits, unit),
                     "baseline seeds": f"{r['baseline_seeds']}", "precondition numbers": r["precondition"],
                     "untrainable": is_rescue(row, paper)})
    return pd.DataFrame(rows).set_index("row")


def verdict_counts(table: pd.DataFrame, profile: str) -> str:
    """'Profile full: 5 rows reproduced, 2 rows opposite, ...' for a :func:`comparison` table."""
    counts = table["verdict"].value_counts()
    parts = [f"{n} row{'s' * (n != 1)} {verdict}" for verdict, n in counts.items()]
    return f"Profile **{profile}**: " + ", ".join(parts) + "."


def headline(profile: str, chapters: dict[str, tuple[str, str]], path: Path | None = None) -> str:
    """The landing page's results, from the records: per chapter, how its rows on page 98 were judged.

    ``chapters`` maps a chapter's number to (its title, its page's path from the landing page). Rows
    with nothing to judge (a baseline, a guide alone: "not comparable") are left out of the counts.
    """
    table = comparison(profile, path)
    judged = table[table["verdict"] != A.NOT_COMPARABLE]
    lines = [f"What the `{profile}` records show, row by row of [paper vs reproduction]"
             f"({chapters.get('98', ('', '../notebooks/98_paper_vs_reproduction.ipynb'))[1]}), by chapter:", ""]
    for chapter, rows in judged.groupby("chapter", sort=True):
        if chapter not in chapters:
            continue
        title, link = chapters[chapter]
        counts = rows["verdict"].value_counts()
        order = [v for v in A.VERDICTS if v in counts]
        lines.append(f"* [{title}]({link}): " + ", ".join(f"{counts[v]} {v}" for v in order)
                     + f" (of {len(rows)} judged row{'s' * (len(rows) != 1)})" + _decided(rows))
    return "\n".join(lines) + "\n"


def transfer_paragraph(profile: str, chapter: tuple[str, str] | None) -> str:
    """The landing page's paragraph on chapter 08 (``chapter``: its title and link), from its records:
    which ways of handing a student what a teacher knows beat the labels alone, with each teacher
    (:func:`untrainable.analysis.transfer_summary`); empty while the chapter has no records."""
    records = PlannedStore(profile).records("transfer_comparison")
    if chapter is None or not records:
        return ""
    seeds = len({r["seed"] for r in records})
    return (f"\n**Guidance vs distillation** ([{chapter[0]}]({chapter[1]})): every method against the labels "
            f"alone on one student and one budget (profile `{profile}`, {seeds} seeds, Welch's t-test):\n\n"
            + A.transfer_summary(A.method_table(records)) + "\n")


def _decided(rows: pd.DataFrame) -> str:
    """The rows a test decided (reproduced, opposite), each with our effect and its p: what a reader
    of the landing page wants before opening the chapter."""
    parts = [f"{verdict}: " + "; ".join(f"{r['setting']}, {r['condition']}: {r['effect (ours) [95 % CI]']} "
                                         f"(p = {r['p']})" for _, r in rows[rows["verdict"] == verdict].iterrows())
             for verdict in (A.REPRODUCED, A.OPPOSITE) if (rows["verdict"] == verdict).any()]
    return ". " + ". ".join(p[0].upper() + p[1:] for p in parts) + "." if parts else ""


#: The unit of an effect, by our metric: accuracies in percentage points, a rise of the test loss in nats
#: (the cross-entropy's unit), perplexities in ppl, Cohen's kappa as the number it is.
UNITS = {**dict.fromkeys((*ACCURACIES, "guide_acc", "teacher_test_acc"), "pts"), "overfit_gap": "nats",
         "perplexity": "ppl", "kappa": "κ"}
#: The columns of :func:`compact` (its index is the claim): what a reader needs to see of each claim at a glance.
COMPACT = ["verdict", "our effect [95 % CI]", "paper's effect", "p", "seeds"]
#: The precondition kinds that mark a row as a rescue claim: its control fails to train, or stays at chance (the
#: landing page asks "does guidance train the untrainable?" of these rows alone).
UNTRAINABLE = ("fails_to_train", "at_chance")


def is_rescue(row: pd.Series, paper: pd.DataFrame) -> bool:
    """Whether a row of the data file is a rescue claim: an accuracy judged against a control (a baseline row
    with no baseline of its own: not, say, guidance against distillation) whose precondition says that control
    fails (:data:`UNTRAINABLE`)."""
    kinds = {part.partition(":")[0] for part in precondition_specs(row)}
    base = row["baseline_row"]
    return (bool(kinds & set(UNTRAINABLE)) and row["our_metric"] == "test_acc" and is_set(base)
            and not is_set(paper.loc[base, "baseline_row"]))
#: The chapters whose rows the landing page's answer (:func:`answer`) counts as guidance, and as mimicry.
GUIDANCE_CHAPTERS = ("04", "05", "06", "08")
MIMICRY_CHAPTERS = ("07",)
#: A setting's parenthetical aside of at least this many characters is left out of its :func:`claim`:
#: the notes (:func:`notes_html`) and the sources table give it in full.
_LONG_ASIDE = re.compile(r"\s*\([^()]{30,}\)")
#: Internal names a note may carry (the estimate's rules, our metrics), in words.
_WORDS = {"max_valid_acc": "highest validation accuracy", "min_valid_loss": "lowest validation loss",
          "final_epoch": "last epoch", "test_acc": "test accuracy", "guide_acc": "guide accuracy", "teacher_test_acc": "teacher accuracy",
          "overfit_gap": "loss rise", "perplexity": "perplexity"}


def claim(row: pd.Series) -> str:
    """A row of the data file in words, 'Deep FCN (ResNet-18 guide), trained guide': its setting (without a
    long aside, :data:`_LONG_ASIDE`) and condition, the label every page shows instead of the row's id."""
    return f"{_LONG_ASIDE.sub('', str(row['setting']))}, {row['condition']}"


def _flagged(verdict: str, fragile: bool) -> str:
    """The verdict with what a reader must not miss: 'reproduced, ⚠ fragile' (another rule tests otherwise),
    '⚠ inconclusive' (the experiment could not tell)."""
    shown = f"⚠ {verdict}" if verdict == A.INCONCLUSIVE else verdict
    return f"{shown}, ⚠ fragile" if fragile else shown


def compact(table: pd.DataFrame) -> pd.DataFrame:
    """The claims of a :func:`comparison` table (its reference rows left out), one narrow row each
    (:data:`COMPACT`): the verdict flagged (:func:`_flagged`), our effect with its unit and 95 % interval, the
    paper's effect (and on our scale), p and the seeds of the row and of its baseline. The long notes are in
    :func:`notes_html`."""
    judged = table[table["verdict"] != A.NOT_COMPARABLE]
    out = pd.DataFrame({
        "verdict": [_flagged(v, f) for v, f in zip(judged["verdict"], judged["fragile"])],
        "our effect [95 % CI]": judged["our effect"].to_numpy(), "paper's effect": judged["paper's effect"].to_numpy(),
        "p": judged["p"].to_numpy(),
        "seeds": [s if b in ("", "0") else f"{s} vs {b}" for s, b in zip(judged["seeds"], judged["baseline seeds"])],
    }, index=pd.Index(judged["claim"], name="claim"), columns=COMPACT).replace("", None)
    out.attrs[NA_NOTE_ATTR] = ("— : no test (the verdict says why, the notes below give the numbers), or a paper "
                               "that states a direction without a size")
    return out


#: The summary line of the folded notes under a verdict table.
NOTES = "Notes: the papers' numbers and ours, preconditions, other rules, power, reference rows"


def chapter_rows(profile: str, chapter: str, path: Path | None = None) -> pd.DataFrame:
    """The :func:`comparison` rows of one chapter (``"04"``): what its page judges, as page 98 shows it."""
    rows = comparison(profile, path)
    return rows[rows["chapter"] == chapter]


def verdict_html(rows: pd.DataFrame) -> str:
    """A chapter's verdicts as page 98 prints them: the :func:`compact` table (one narrow row per claim, no column
    off-screen at 1280 px) and the long notes folded under it (:func:`notes_html`)."""
    return table_html(compact(rows)) + "\n" + notes_html(rows, NOTES)


def _humane(text: str, names: dict[str, str]) -> str:
    """``text`` with every internal name (a record's, a row's, a rule's or metric's: ``names``) in words."""
    if not text or not names:
        return text
    alternatives = "|".join(map(re.escape, sorted(names, key=len, reverse=True)))  # the longest name first
    pattern = re.compile(r"(?<![\w-])(" + alternatives + r")(?![\w-])")
    return pattern.sub(lambda m: names[m.group(1)], text)


def _names(path: Path | None) -> dict[str, str]:
    """Every internal name a note may carry, in words: each row's id and record name (as the row's
    :func:`claim`; a guide's record as the guide), our rules and metrics (:data:`_WORDS`)."""
    paper = paper_numbers(path)
    names = {rid: claim(row) for rid, row in paper.iterrows()}
    for _, row in paper.iterrows():
        if names_a_record(row):
            names.setdefault(row["record"], str(row["setting"]) if row["condition"] == "guide" else claim(row))
    return {**names, **_WORDS}


def notes_html(table: pd.DataFrame, summary: str, path: Path | None = None) -> str:
    """Every row of a :func:`comparison` table in full, folded (an HTML ``<details>`` opened by ``summary``):
    the paper's number and ours, the estimate's rule, the minimum detectable effect, the verdicts under the
    other rules, the preconditions' numbers and why the verdict is what it is; no internal id (:func:`_humane`)."""
    names = _names(path)
    items = []
    for _, r in table.iterrows():
        unit = f" {r['unit']}" if r["unit"] else ""
        seeds = f"{r['seeds']} seed{'s' * (r['seeds'] != '1')}"
        parts = [f"the paper: {re.sub('^paper: ', '', str(r['paper']))} ({r['paper metric']})",
                 f"ours: {r['ours'] or '—'} over {seeds}" + (f" (stored, not pooled: seeds {r['extra seeds']})"
                                                             if r["extra seeds"] else ""),
                 f"read at: {r['rule']}"]
        if r["MDE"]:
            parts.append(f"smallest effect our seeds detect 80 % of the time: {r['MDE']}{unit}")
        if r["under other rules"]:
            parts.append(f"under other rules: {r['under other rules']}")
        if r["precondition numbers"]:
            parts.append(f"{r['precondition numbers']}")
        if r["why"] and r["why"] != r["precondition numbers"]:
            parts.append(f"why: {r['why']}")
        items.append(f"<li><b>{html.escape(str(r['setting']))}, {html.escape(str(r['condition']))}</b> — "
                     f"{html.escape(r['verdict'])}. " + html.escape(_humane("; ".join(parts), names)) + ".</li>")
    return f"<details><summary>{html.escape(summary)}</summary>\n<ul>\n" + "\n".join(items) + "\n</ul>\n</details>"


def _listed(rows: pd.DataFrame, label: str = "claim", limit: int = 4) -> str:
    """'Deep FCN (ResNet-18 guide): +2.8 pts [+2.0, +3.6]; Wide FCN ...': each row's ``label`` and, where it
    was tested, our effect with its unit and 95 % interval; past ``limit`` rows, how many more (page 98 has all)."""
    shown = [f"{r[label]}: {r['our effect']}" if r["our effect"] else r[label] for _, r in rows.head(limit).iterrows()]
    more = len(rows) - limit
    return "; ".join(shown) + (f"; and {more} more (page 98)" if more > 0 else "")


def _share(rows: pd.DataFrame, label: str) -> str:
    """'in 3 of 4 judged rows (<the reproduced ones, :func:`_listed`>)', 'in none of 2 judged rows', or 'in no
    judged row yet'."""
    if rows.empty:
        return "in no judged row yet"
    hit = rows[rows["verdict"] == A.REPRODUCED]
    judged = f"{len(rows)} judged row{'s' * (len(rows) != 1)}"
    return f"in none of {judged}" if hit.empty else f"in {len(hit)} of {judged} ({_listed(hit, label)})"


def answer(table: pd.DataFrame) -> str:
    """The landing page's answer in four sentences, a bullet each, from a :func:`comparison` table: where guidance (the
    chapters of :data:`GUIDANCE_CHAPTERS`) reproduced the paper's direction with a trained guide and with an
    untrained one (a row whose setting or condition says "untrained"), where it did for a control that fails
    to train (an accuracy row whose precondition names :data:`UNTRAINABLE`: error consistency there is not
    an answer to "does it train"), where mimicry did
    (:data:`MIMICRY_CHAPTERS`), and every other judged row by its verdict; each effect with its unit."""
    judged = table[~table["verdict"].isin([A.NOT_COMPARABLE, A.NOT_RUN])].assign(short=lambda t: t["setting"].str.replace(
        _LONG_ASIDE, "", regex=True))
    guidance = judged[judged["chapter"].isin(GUIDANCE_CHAPTERS)]
    untrained = (guidance["setting"] + " " + guidance["condition"]).str.contains("untrained")
    mimicry = judged[judged["chapter"].isin(MIMICRY_CHAPTERS)]
    rest = judged[judged["verdict"] != A.REPRODUCED]
    missed = ", ".join(f"*{verdict}* ({_listed(rest[rest['verdict'] == verdict], limit=2)})"
                       for verdict in A.VERDICTS if (rest["verdict"] == verdict).any())
    if judged.empty:
        return "No claim has been judged in this profile yet: its records are not there (page 98 lists them).\n"
    failing = judged[judged["untrainable"]] if "untrainable" in judged else judged.iloc[:0]
    rescue = (f"**Does guidance train a net that fails to train?** Where our control fails to train, guidance "
              f"reproduced the paper's direction {_share(failing, 'claim')}. " if not failing.empty else
              "**Does guidance train a net that fails to train?** No judged row has a control that fails to train "
              "yet. ")
    sentences = [f"**Guidance** reproduced the paper's direction (p < 0.05; our effects with 95 % intervals) with a "
                 f"trained guide {_share(guidance[~untrained], 'short')}, and with an untrained guide "
                 f"{_share(guidance[untrained], 'short')}.", rescue.strip(),
                 f"**Mimicry** reproduced it {_share(mimicry, 'claim')}.",
                 f"**Did not reproduce**: {missed}." if missed else "Every judged row reproduced."]
    return "".join(f"* {s}\n" for s in sentences)  # a list: four long sentences read badly as one paragraph
