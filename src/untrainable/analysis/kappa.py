"""Error consistency: Cohen's kappa of two classifiers' right/wrong sequences (Geirhos et al., 2020),
and the table of kappas with the controls a claim about guides needs.

**Checkpoint.** A kappa is read at the epoch its accuracy is: the right/wrong string of the test split at
the epoch a rule picks (:func:`untrainable.analysis.estimates.correct_at`, the book's
:data:`~untrainable.analysis.estimates.PRIMARY_RULE` unless told). A record that kept no string there (the
records before issue #30 kept the last epoch's only) makes its kappas "rule not available": never a
silent fall back to another epoch. A trained guide's string is that of its kept checkpoint, its one
reported accuracy.

**Independent units.** Kappas of all pairs of seeds share nets (seed 0 is in four of the ten pairs of
five seeds), so they are not independent and a test over them pretends to more seeds than were run.
Two unguided nets are compared on :func:`disjoint_pairs` of seeds (each net in one pair at most: seeds
0-9 give (0, 1), (2, 3), ..., (8, 9)), nets of two conditions on pairs of the same seed (seed s of one
with seed s of the other); :func:`kappa_contrast` tests those units with Welch's t.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from untrainable.analysis.effects import MIN_SEEDS, Effect, welch_effect
from untrainable.analysis.estimates import PRIMARY_RULE, Rule, RuleNotAvailable, correct_at
from untrainable.analysis.preconditions import CheckedPrecondition

__all__ = ["GUIDED_BY", "CONTROL_PAIRS", "error_consistency", "disjoint_pairs", "condition_pairs", "kappa_values",
           "kappa_table", "kappa_contrast", "agreement_precondition", "kappa_summary"]

Record = dict[str, Any]
#: A net's right/wrong string, or why the rule's epoch has none.
Correct = str | RuleNotAvailable


def error_consistency(correct_a: str, correct_b: str) -> float:
    """Cohen's kappa of two classifiers' errors on the same test images (Geirhos et al., 2020).

    ``c_obs`` is the fraction of images both get right or both get wrong; ``c_exp = p_a p_b +
    (1 - p_a)(1 - p_b)`` what independent classifiers of the same accuracies would reach;
    ``kappa = (c_obs - c_exp) / (1 - c_exp)``: 0 for independent errors, 1 for identical ones.
    """
    a = np.frombuffer(correct_a.encode(), dtype=np.uint8) == ord("1")
    b = np.frombuffer(correct_b.encode(), dtype=np.uint8) == ord("1")
    if a.shape != b.shape:
        raise ValueError(f"the two classifiers were tested on different sets: {a.size} and {b.size} images")
    c_obs = float(np.mean(a == b))
    pa, pb = a.mean(), b.mean()
    c_exp = float(pa * pb + (1 - pa) * (1 - pb))
    return (c_obs - c_exp) / (1 - c_exp) if c_exp < 1 else float("nan")


def disjoint_pairs(seeds: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive pairs of the sorted seeds, each seed in one pair at most ((0, 1), (2, 3), ...; an odd
    seed out is left out): pairs of nets that share none, so their kappas are independent units."""
    ordered = sorted(set(seeds))
    return list(zip(ordered[0::2], ordered[1::2]))


def _correct(records: Iterable[Record], target: str, rule: Rule) -> dict[tuple[str, int], Correct]:
    """Each ``target`` net's right/wrong string at ``rule``'s epoch, by (condition, seed); a net without one
    maps to the :class:`RuleNotAvailable` that says why."""
    out: dict[tuple[str, int], Correct] = {}
    for r in records:
        if r["config"].get("target") != target:
            continue
        if (r["config"]["condition"], r["seed"]) in out:  # two nets of one condition and seed: say which are meant
            raise ValueError(f"records of several nets are {r['config']['condition']} seed {r['seed']} (another is "
                             f"{r['name']}): name the records' sides (kappa:<record name>|<record name>)")
        try:
            out[r["config"]["condition"], r["seed"]] = correct_at(r, rule)
        except RuleNotAvailable as e:
            out[r["config"]["condition"], r["seed"]] = e
    return out


def condition_pairs(correct: dict[tuple[str, int], Correct], first: str,
                    second: str) -> list[tuple[Correct, Correct]]:
    """The independent pairs of nets of two conditions (module docstring): :func:`disjoint_pairs` of seeds
    when ``first == second``, else same-seed pairs over the seeds both conditions have."""
    if first == second:
        return [(correct[first, a], correct[first, b]) for a, b in disjoint_pairs(s for c, s in correct if c == first)]
    seeds = sorted({s for c, s in correct if c == first} & {s for c, s in correct if c == second})
    return [(correct[first, s], correct[second, s]) for s in seeds]


def _kappas(pairs: list[tuple[Correct, Correct]]) -> list[float]:
    """The kappa of each pair; the first pair missing a string raises its :class:`RuleNotAvailable`."""
    missing = next((side for pair in pairs for side in pair if isinstance(side, RuleNotAvailable)), None)
    if missing is not None:
        raise missing
    return [error_consistency(a, b) for a, b in pairs]


def _named_sides(first: str, second: str, records: list[Record]) -> tuple[str, str, list[Record]]:
    """Sides that name records (``fcn24-trained_guide``, where a store holds nets of one condition at several
    depths) as their condition, with the records narrowed to the named ones; condition sides unchanged."""
    names = {r["name"]: r["config"]["condition"] for r in records if "condition" in r.get("config", {})}
    named = {side for side in (first, second) if side in names and not side.startswith("guide:")}
    if not named:
        return first, second, records
    unnamed = [side for side in (first, second) if side not in named and not side.startswith("guide:")]
    if unnamed:
        raise ValueError(f"kappa sides {first!r} and {second!r}: {unnamed[0]!r} is a condition beside a record name; "
                         "name both sides' records")
    kept = [r for r in records if r["name"] in named]
    return names.get(first, first), names.get(second, second), kept


def kappa_values(first: str, second: str, records: list[Record], guides: dict[str, str],
                 target: str = "deep_fcn", rule: Rule = PRIMARY_RULE) -> list[float]:
    """The kappas of two sides over independent units, one per pair (module docstring). A side is a
    condition of the ``target`` nets, a record name (those nets only: :func:`_named_sides`), or
    ``guide:<name>`` (``guides``: a trained guide's name -> its right/wrong string): two guides are one pair, a guide against nets one pair per net. A net without a
    string at ``rule``'s epoch raises :class:`RuleNotAvailable`."""
    first, second, records = _named_sides(first, second, records)
    correct = _correct(records, target, rule)

    def guide(side: str) -> Correct | None:
        return guides.get(side.split(":", 1)[1]) if side.startswith("guide:") else None

    if first.startswith("guide:") and second.startswith("guide:"):
        pairs = [(guide(first), guide(second))]
    elif first.startswith("guide:") or second.startswith("guide:"):
        ref, cond = (first, second) if first.startswith("guide:") else (second, first)
        pairs = [(guide(ref), net) for (c, _), net in sorted(correct.items(), key=lambda kv: kv[0][1]) if c == cond]
    else:
        pairs = condition_pairs(correct, first, second)
    return _kappas([(a, b) for a, b in pairs if a is not None and b is not None])


#: The control of every guided agreement: two unguided nets of different seeds, in disjoint pairs.
CONTROL_PAIRS = ("no_guide", "no_guide")


def kappa_contrast(records: list[Record], first: str, second: str, target: str = "deep_fcn",
                   control: str = "no_guide", rule: Rule = PRIMARY_RULE) -> Effect | None:
    """Whether nets of conditions ``first`` and ``second`` (same seed) agree more than two ``control``
    nets of different seeds: Welch's effect over independent units (same-seed pairs against
    :func:`disjoint_pairs` of the control), read at ``rule``'s epoch; ``None`` when a side has fewer than
    :data:`MIN_SEEDS` values. A net without a string there raises :class:`RuleNotAvailable`."""
    base = kappa_values(control, control, records, {}, target, rule)
    treated = kappa_values(first, second, records, {}, target, rule)
    return welch_effect(base, treated) if min(len(base), len(treated)) >= MIN_SEEDS else None


def agreement_precondition(records: list[Record], first: str, second: str, target: str = "deep_fcn",
                           control: str = "no_guide", rule: Rule = PRIMARY_RULE) -> CheckedPrecondition:
    """Do unguided nets *not* already agree as much as guided ones? Guided nets' agreement is evidence that
    they inherit their guides' errors only if two unguided nets of the architecture (different seeds,
    disjoint pairs) agree less; this holds when the control's mean kappa is below that of ``first`` vs
    ``second`` (same seed), both read at ``rule``'s epoch."""
    what = "unguided nets do not already agree as much as guided ones"
    try:
        base = kappa_values(control, control, records, {}, target, rule)
        guided = kappa_values(first, second, records, {}, target, rule)
    except RuleNotAvailable as e:
        return CheckedPrecondition(what, False, f"rule not available: {e}", unread=e)
    if not base or not guided:
        return CheckedPrecondition(what, False, f"no pairs of {'unguided' if not base else 'guided'} nets")
    b, g = float(np.mean(base)), float(np.mean(guided))
    return CheckedPrecondition(what, b < g, f"unguided pairs κ = {b:.3f} ({len(base)} disjoint pairs), guided across "
                               f"families κ = {g:.3f} ({len(guided)} same-seed pairs), at the {rule} epoch",
                               {"unguided": b, "guided": g, "unguided_pairs": float(len(base)),
                                "guided_pairs": float(len(guided))})


#: The guide each guided condition follows (condition -> the guide's record name), for "each guide vs
#: its guided nets". Rows name a guide by its family, the record name's first part.
GUIDED_BY = {"trained_guide": "resnet18", "small_cnn_guide": "small_cnn"}


def _rows(family: dict[str, str]) -> dict[str, tuple[str, str]]:
    """The kappa table's rows: name -> the two sides (conditions, or ``guide:<family>``)."""
    (first, fam_a), (second, fam_b) = list(family.items())[:2]
    rows = {"unguided vs unguided (other seed, disjoint pairs)": CONTROL_PAIRS}
    rows.update({f"unguided vs guided by {fam} (same seed)": ("no_guide", cond) for cond, fam in family.items()})
    rows[f"guided by {fam_a} vs guided by {fam_b} (same seed)"] = (first, second)
    for cond, fam in family.items():
        rows[f"{fam} guide vs its guided nets"] = (f"guide:{fam}", cond)
        rows[f"{fam} guide vs the unguided nets"] = (f"guide:{fam}", "no_guide")
    rows["the guides together"] = (f"guide:{fam_a}", f"guide:{fam_b}")
    return rows


def kappa_table(records: list[Record], guides: dict[str, Record], target: str = "deep_fcn",
                guided_by: dict[str, str] | None = None, rule: Rule = PRIMARY_RULE) -> pd.DataFrame:
    """Error consistency between a chapter's classifiers, with the controls a claim about guides needs,
    each net read at ``rule``'s epoch (module docstring).

    Rows: unguided vs unguided (disjoint pairs of seeds), unguided vs guided (same seed, per guide family),
    guided vs guided across guide families (same seed), each guide vs its guided nets, each guide vs
    the unguided nets, and the guides together. Columns: pair, kappa (mean), sd, pairs averaged, and a note
    ("rule not available: ..." where a net kept no string at the rule's epoch). ``guided_by`` maps the two
    guided conditions to their guides' names in ``guides`` (default :data:`GUIDED_BY`).
    """
    guided_by = guided_by or GUIDED_BY
    family = {cond: name.split("-")[0] for cond, name in guided_by.items()}
    strings = {family[c]: guides[name]["metrics"]["test_correct"] for c, name in guided_by.items() if name in guides}
    return pd.DataFrame([_kappa_row(name, a, b, records, strings, target, rule)
                         for name, (a, b) in _rows(family).items()])


def _kappa_row(name: str, first: str, second: str, records: list[Record], guides: dict[str, str], target: str,
               rule: Rule) -> dict[str, Any]:
    """Mean, sd and count of kappa over the row's pairs, or the reason the rule's epoch has none."""
    try:
        ks = kappa_values(first, second, records, guides, target, rule)
    except RuleNotAvailable as e:
        return {"pair": name, "kappa": float("nan"), "sd": float("nan"), "pairs averaged": 0,
                "note": f"rule not available: {e}"}
    return {"pair": name, "kappa": float(np.mean(ks)) if ks else float("nan"),
            "sd": float(np.std(ks, ddof=1)) if len(ks) > 1 else float("nan"), "pairs averaged": len(ks), "note": ""}


def kappa_summary(table: pd.DataFrame, records: Sequence[Record] = (),
                  guided: tuple[str, str] = ("trained_guide", "small_cnn_guide")) -> str:
    """What the kappa table shows against its controls: does guidance add agreement beyond architecture?

    The guided FCNs' agreement is evidence of inherited errors only when it exceeds what two unguided
    FCNs of different seeds already share (with ``records``: tested by :func:`kappa_contrast` over independent
    pairs, the two ``guided`` conditions against the control), and a guide's agreement with its guided nets
    only when it exceeds its agreement with unguided ones.
    """
    k = table.set_index("pair")["kappa"]
    base, guided_k = k["unguided vs unguided (other seed, disjoint pairs)"], \
        k["guided by resnet18 vs guided by small_cnn (same seed)"]
    if np.isnan(base) or np.isnan(guided_k):
        return ("The kappas of the Deep FCNs are not available at the book's checkpoint: their records kept no "
                "right/wrong string at that epoch (the table's notes say which); they are not read at another one.")
    own, unguided = k["resnet18 guide vs its guided nets"], k["resnet18 guide vs the unguided nets"]
    contrast = kappa_contrast(list(records), *guided) if records else None
    test = "" if contrast is None else (f" (Welch over independent pairs: {contrast.effect:+.2f}, 95 % CI "
                                        f"{contrast.ci_low:+.2f} to {contrast.ci_high:+.2f}, "
                                        f"p = {contrast.p_value:.2g})")
    return (f"Two unguided Deep FCNs of different seeds agree at κ = {base:.2f}; FCNs guided by the two families "
            f"agree at κ = {guided_k:.2f}, {guided_k - base:+.2f} beyond that control{test} (the guides together: "
            f"{k['the guides together']:.2f}). The ResNet-18 agrees with the FCNs it guided at κ = {own:.2f} and with "
            f"unguided ones at {unguided:.2f} ({own - unguided:+.2f}). How many pairs each mean averages, and their "
            "spread, are in the table.")
