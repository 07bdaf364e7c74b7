"""The papers' numbers (``book/paper_numbers.csv``) beside ours, each row with a test-based verdict.

Each row of the data file is one number of a paper, with its source, and says which of our records
answer it (``experiment``, ``record``, ``our_metric``). Our values are read from the results store of
a profile, one per seed; no number is ever filled in by hand.

**Seeds.** Which records answer a row, and which seeds are pooled, is
:mod:`untrainable.paper_comparison_records`.

Absolute numbers do not compare across scales (ImageNet top-5 against CIFAR-10 top-1 on a subset),
so a row is judged by its *effect*: the difference to its ``baseline_row`` (e.g. the unguided target
of the same setting), tested by :func:`untrainable.analysis.verdict`, the book's one rule. The
paper's direction is the sign of its own difference, or ``paper_direction`` ("higher"/"lower") where
the paper gives no number. A row may name a ``precondition`` the claim needs from our records
(``overfits:<record>``: that run overfits, :func:`untrainable.analysis.preconditions.overfits`;
``above_chance:<record>@0.1``; ``at_chance:<record>@0.1``: every seed of that run within 5 points of chance,
the failure a rescue needs (:func:`untrainable.analysis.preconditions.stays_at_chance`); ``guides_reach:<guide record>@0.95``; ``guide_beats:<guide>><target>``,
the guide's record among the trained guides or, for a sequence guide, in the row's experiment;
``fails_to_train:<control>><shallow control>@0.2``: the control fails to train where the shallow one trains,
:func:`untrainable.analysis.preconditions.fails_to_train`; ``teacher_gap:mimic-h4096>labels-h@8``: the
teacher a mimic record learnt from beats the best label-trained width by 8 points,
:func:`untrainable.analysis.preconditions.teacher_beats_best_student`; ``plateau:labels-h``: the runs of that
name prefix are trained to a plateau, each name's seeds averaged,
:func:`untrainable.analysis.preconditions.trained_to_plateau`);
a record of another experiment is named ``<experiment>/<record>``;
when one fails the row is "not testable". A row may name several, ``;``-separated
(:data:`PRECONDITION_KINDS`). Rows without a baseline are reference numbers ("not
comparable"); rows without records are "not run".

**Estimate.** Every accuracy and perplexity is :func:`untrainable.analysis.estimate` under the row's
rule (``estimate_rule``): :data:`~untrainable.analysis.estimates.PRIMARY_RULE` for accuracies,
:data:`~untrainable.analysis.estimates.LOSS_RULE` for perplexity, ``final_epoch`` for runs without a
validation split; switching the book's rule is that one constant. Each row is also judged under
``min_valid_loss`` (the paper's rule) and ``final_epoch``; a row whose tested verdicts differ between
the rules is ``fragile``. A rule whose epoch a run did not test makes the row "rule not available".

**Power and bimodality.** Each row carries the paper's effect on our scale (:func:`scaled_paper_effect`,
via the row's ``guide_row``), which a non-significant test must exclude for "no effect detected" (else
"inconclusive"), and the minimum detectable effect ``mde`` at our seeds and spread
(:func:`untrainable.analysis.minimum_detectable_effect`). Where the baseline's seeds split into stuck and
learning ones (a row with ``above_chance:<record>@<chance>``), ``escape_p`` compares the shares that escape
chance by :data:`ESCAPE_MARGIN` (Fisher's exact test, :func:`untrainable.analysis.escape_p`).

**Pages.** How the rows are shown (page 98's tables, the landing page's answer) is
:mod:`untrainable.paper_comparison_display`; this module computes them.

Metrics: ``test_acc`` (a run's test accuracy under the row's rule, in %; a stored checkpoint's metric
such as ``checkpoint_test_acc`` is refused: every reported accuracy is the estimate), ``guide_acc`` (a trained
guide's accuracy, :func:`~untrainable.experiments.image_guides.guide_accuracy`, in %), ``teacher_test_acc`` (a
mimic student's teacher or ensemble, in %), ``perplexity`` (under the row's rule; ours per character, the
paper's per word: only the effect's sign compares), ``overfit_gap`` (final test loss minus its minimum over
epochs: a shape of the test curve, the same under every rule), and ``kappa`` (Cohen's kappa of errors at the
rule's epoch, :func:`untrainable.analysis.kappa_values`; record ``kappa:A|B``: ``A``, ``B`` conditions of the
Deep FCN runs paired by seed, ``kappa:no_guide|no_guide`` disjoint pairs of seeds, ``guide:<name>`` a guide; where
an experiment holds one condition at several depths, record names: ``kappa:fcn24-no_guide|fcn24-no_guide``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from untrainable import analysis as A
from untrainable.experiments.image_guides import guide_accuracy, scored_as
from untrainable.paper_comparison_records import (DATA_FILE, PlannedStore, is_set, names_a_record, paper_numbers,
                                                  precondition_specs, row_records, unplanned_records)

__all__ = ["DATA_FILE", "PRECONDITION_KINDS", "VERDICT_COLUMNS", "ESCAPE_MARGIN", "SPLIT_BASELINES", "RULE_FREE", "ACCURACIES",
           "verdicts_csv", "paper_numbers", "unplanned_records", "our_values", "estimate_rule", "paper_direction",
           "scaled_paper_effect", "verdicts"]

_DIRECTIONS = {"higher": 1, "lower": -1}
#: Metrics whose value no checkpoint rule changes, with what they are read from instead.
RULE_FREE = {"teacher_test_acc": "final_epoch",
             "guide_acc": "the guide's kept checkpoint", "overfit_gap": "test curve (final minus minimum)"}
#: The metrics read as accuracies (in %, under the row's rule).
ACCURACIES = ("test_acc",)


def estimate_rule(row: pd.Series, store: PlannedStore) -> str:
    """The rule a row's values are read under (:func:`untrainable.analysis.row_rule`), or what a
    rule-free metric is read from (:data:`RULE_FREE`)."""
    if row["our_metric"] in RULE_FREE:
        return RULE_FREE[row["our_metric"]]
    return A.row_rule(row_records(row, store), loss_type=row["our_metric"] == "perplexity")


def our_values(row: pd.Series, store: PlannedStore, rule: str | None = None) -> list[float]:
    """Our values for one row, one per seed (per disjoint pair of seeds or per guide pair for kappa rows),
    read under ``rule`` (default: :func:`estimate_rule`; rule-free metrics ignore it). A rule a run did not
    test raises :class:`~untrainable.analysis.RuleNotAvailable`."""
    hits, metric = row_records(row, store), row["our_metric"]
    if not hits and metric != "kappa":
        return []
    rule = rule or estimate_rule(row, store)
    if metric == "kappa":  # "kappa:A|B" (module docstring), one value per independent pair
        guides = {g["name"]: g["metrics"]["test_correct"] for g in store.records("guides")}
        return A.kappa_values(*row["record"].split(":", 1)[1].split("|"), store.records(row["experiment"]), guides,
                              rule=rule) if is_set(row["record"]) else []
    if metric == "teacher_test_acc":  # one teacher (or ensemble) read from each of its students: one value
        return list(dict.fromkeys(100 * _metric(r, metric, row.name) for r in hits))
    if metric in ACCURACIES:
        return [100 * _estimate(r, "test_acc", rule, row.name) for r in hits]
    if metric == "guide_acc":
        return [100 * guide_accuracy(r) for r in hits]
    if metric == "perplexity":
        return [_estimate(r, "perplexity", rule, row.name) for r in hits]
    if metric == "overfit_gap":
        return [A.overfit_gap(r) for r in hits]
    raise ValueError(f"row {row.name}: unknown metric {metric!r} (choose test_acc, guide_acc, teacher_test_acc, "
                     "perplexity, overfit_gap or kappa; a stored checkpoint's accuracy is test_acc at the row's rule)")


def _estimate(record: dict[str, Any], metric: str, rule: str, row_id: str) -> float:
    """:func:`untrainable.analysis.estimate`, its errors naming the row."""
    try:
        return A.estimate(record, metric, rule)
    except KeyError as e:
        raise KeyError(f"row {row_id}: {e.args[0]}") from None
    except A.RuleNotAvailable as e:
        raise A.RuleNotAvailable(f"row {row_id}: {e}") from None


def _metric(record: dict[str, Any], metric: str, row_id: str) -> float:
    """One metric of a record, or an error naming the record (a record older than the row's metric)."""
    try:
        return record["metrics"][metric]
    except KeyError:
        raise KeyError(f"row {row_id}: record {record['name']} (seed {record['seed']}) has no metric {metric!r}; "
                       "it predates the row: rerun its chapter or remove the record") from None


def paper_direction(row: pd.Series, paper: pd.DataFrame) -> int | None:
    """The sign of the paper's effect: from its two numbers, else its stated direction, else ``None``."""
    base = row["baseline_row"]
    if not is_set(base):
        return None
    pm, pb = row["paper_mean"], paper.loc[base, "paper_mean"]
    if not math.isnan(pm) and not math.isnan(pb) and pm != pb:
        return int(np.sign(pm - pb))
    return _DIRECTIONS.get(row["paper_direction"]) if is_set(row["paper_direction"]) else None


def _used(store: PlannedStore, experiment: str, guide: str) -> list[dict[str, Any]]:
    """The records of guide ``guide`` in ``experiment`` that guided a target run: for a sequence guide, each
    run seed's own or its replacement (:func:`~untrainable.experiments.sequence_guidance.used_guides`)."""
    from untrainable.experiments import sequence_guidance

    named = store.named(experiment, guide)
    if experiment != sequence_guidance.EXPERIMENT or not named:
        return named
    return [r for r in sequence_guidance.used_guides(store.records(experiment), named[0]["config"]["setting"])
            if r["name"] == guide]


def _one_precondition(spec: str, row: pd.Series, store: PlannedStore) -> A.Precondition:
    """One precondition of a row, checked on the records (:data:`PRECONDITION_KINDS`), every accuracy or
    perplexity at the row's estimate (:func:`estimate_rule`; a guide at its kept checkpoint)."""
    kind, _, args = spec.partition(":")
    experiment, measured = row["experiment"], row["our_metric"]

    def named(name: str) -> list[dict[str, Any]]:
        """A record name of the row's experiment, or ``<experiment>/<name>`` of another (a control stored elsewhere)."""
        other, _, own = name.rpartition("/")
        return store.named(other or experiment, own)
    if kind == "overfits":
        return A.preconditions.overfits(named(args), args)
    if kind == "guides_reach":
        name, _, bar = args.partition("@")
        return A.preconditions.every_guide_reaches(_used(store, experiment, name), float(bar), name)
    rule = estimate_rule(row, store)
    metric = A.estimate_key(measured, rule)

    def at_rule(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return A.estimated(records, measured, rule)

    if kind == "guide_beats":
        pair, _, gap = args.partition("@")
        guide, _, target = pair.partition(">")
        guides = (scored_as(store.named("guides", guide), metric) if store.plans("guides", guide)
                  else at_rule(_used(store, experiment, guide)))  # a sequence guide is a run of the row's experiment
        return A.preconditions.guide_beats_target(guides, at_rule(named(target)),
                                                  f"the guide {guide}", metric, min_gap=float(gap or 0))
    if kind == "fails_to_train":
        pair, _, gap = args.partition("@")
        control, _, shallow = pair.partition(">")
        return A.preconditions.fails_to_train(named(control), named(shallow),
                                              control, min_gap=float(gap) if gap else None)
    if kind == "above_chance":
        name, _, chance = args.partition("@")
        return A.preconditions.above_chance(at_rule(named(name)), float(chance), name, metric)
    if kind == "at_chance":
        name, _, chance = args.partition("@")
        return A.preconditions.stays_at_chance(at_rule(named(name)), float(chance), name, metric)
    if kind == "falls_short":
        plain, _, twin = args.partition(">")  # the twin is a trained guide: its record is in "guides"
        return A.preconditions.falls_short_of_twin(at_rule(named(plain)),
                                                   scored_as(store.named("guides", twin), metric), plain, metric=metric)
    if kind == "teacher_gap":
        pair, _, gap = args.partition("@")
        student, _, prefix = pair.partition(">")
        return A.preconditions.teacher_beats_best_student(
            _teacher_acc(named(student), row), _by_name(store, experiment, prefix), f"the teacher of {student}",
            float(gap), rule=rule if rule in A.RULES else A.PRIMARY_RULE)
    if kind == "plateau":
        return A.preconditions.trained_to_plateau(
            [r for rs in _by_name(store, experiment, args).values() for r in rs],
            f"the {args}* runs" if args else f"the {experiment} runs")
    raise ValueError(f"row {row.name}: unknown precondition {spec!r} (known: "
                     f"{', '.join(k + ':' + v for k, v in PRECONDITION_KINDS.items())})")


def _teacher_acc(students: list[dict[str, Any]], row: pd.Series) -> float:
    """The test accuracy of the teacher (or ensemble) a mimic student learnt from, as its records measured it
    (NaN when none is stored: the check then has no records to read)."""
    return _metric(students[0], "teacher_test_acc", row.name) if students else math.nan


def _by_name(store: PlannedStore, experiment: str, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """The planned records of ``experiment`` whose name starts with ``prefix``, by name (each name's seeds)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for r in store.records(experiment):
        if r["name"].startswith(prefix):
            found.setdefault(r["name"], []).append(r)
    return found


#: The preconditions a row of the data file may name, ``;``-separated (all must hold).
PRECONDITION_KINDS = {"overfits": "<record>", "guide_beats": "<guide record>><target record>[@<min gap>]",
                      "falls_short": "<plain record>><residual twin guide record>", "above_chance": "<record>@<chance>",
                      "at_chance": "<record>@<chance> (every seed within 5 points of it)",
                      "guides_reach": "<guide record>@<validation accuracy every used guide reaches>",
                      "fails_to_train": "<control record>><shallow control record>[@<min gap below it>]",
                      "teacher_gap": "<mimic record>><label-trained records' name prefix>@<min gap in points>",
                      "plateau": "<records' name prefix> (each name's validation accuracy, mean over its seeds, rose "
                                 "at its best by < 0.5 points over the last 20 % of epochs)"}


def _precondition(row: pd.Series, store: PlannedStore) -> A.Precondition | A.RuleNotAvailable | None:
    """The row's named preconditions, checked on our records and joined (``None`` when it names none):
    it holds when every one holds; a check whose rule's epoch a run did not test: its :class:`RuleNotAvailable`."""
    spec = row.get("precondition")
    if not is_set(spec):
        return None
    try:
        checks = [_one_precondition(part, row, store) for part in precondition_specs(row)]
    except A.RuleNotAvailable as e:  # a check at the row's rule, where a run did not test that epoch
        return e
    unread = next((c.unread for c in checks if getattr(c, "unread", None) is not None), None)
    if unread is not None:
        return unread
    return A.Precondition("preconditions", all(c.holds for c in checks),
                          "; ".join(f"{c.name}: {'yes' if c.holds else 'no'} ({c.detail})" for c in checks))


#: The columns of :func:`verdicts_csv`, for scripts.
VERDICT_COLUMNS = ["row_id", "chapter", "precondition", "seeds", "baseline_seeds", "extra_seeds", "mean", "effect",
                   "ci_low", "ci_high", "p_value", "paper_effect", "paper_effect_scaled", "mde", "escape_p",
                   "estimate_rule", "verdict", "verdict_min_valid_loss", "verdict_final_epoch", "fragile", "reason"]
#: Points of accuracy above chance a seed must reach to count as escaping it (:func:`untrainable.analysis.escape_p`).
ESCAPE_MARGIN = 10.0
#: Rows whose baseline's seeds split into ones stuck near chance and ones that learn, with that chance, found in
#: the records rather than required beforehand (an ``above_chance`` precondition would contradict the claim): KD
#: from the untrained teacher, whose seed 3 stalls near chance for 20 epochs and ends at 19.8 %, while its other
#: nine seeds reach 34-38 %. Their ``escape_p`` adds Fisher's test of the shares that escape chance.
SPLIT_BASELINES = {"xfer-guidance-untrained": 0.1}
#: The verdicts that come from a test: only these count when rules are compared for ``fragile``.
_TESTED = (A.REPRODUCED, A.OPPOSITE, A.INCONCLUSIVE, A.NO_EFFECT)
_SENSITIVITY = ("min_valid_loss", "final_epoch")

Values = list[float] | A.RuleNotAvailable


def verdicts_csv(profile: str = "full", path: Path | None = None) -> str:
    """:func:`verdicts` as CSV text (:data:`VERDICT_COLUMNS`), what ``python -m untrainable verdicts --csv`` prints."""
    v = verdicts(profile, path).reset_index()
    v["chapter"] = paper_numbers(path).loc[v["row_id"], "chapter"].fillna("").to_numpy()
    return v[VERDICT_COLUMNS].to_csv(index=False, float_format="%.6g")


def _values(row: pd.Series, store: PlannedStore, rule: str) -> Values:
    try:
        return our_values(row, store, rule)
    except A.RuleNotAvailable as e:
        return e


def verdicts(profile: str = "full", path: Path | None = None) -> pd.DataFrame:
    """One machine-readable row per paper number: ``row_id, precondition, seeds, baseline_seeds, extra_seeds, mean,
    sd, effect, ci_low, ci_high, p_value, paper_effect, paper_effect_scaled, mde, escape_p, estimate_rule,
    verdict, verdict_min_valid_loss, verdict_final_epoch, fragile, reason`` (module docstring)."""
    paper = paper_numbers(path)
    store = PlannedStore(profile)
    rules = {rid: estimate_rule(row, store) for rid, row in paper.iterrows()}
    ours = {rule: {rid: _values(row, store, rule) for rid, row in paper.iterrows()} for rule in A.RULES}
    return pd.DataFrame([_verdict_row(rid, row, paper, ours, rules, store)
                         for rid, row in paper.iterrows()]).set_index("row_id")


Ours = dict[str, dict[str, Values]]  # rule -> row -> values


def _sides(rid: str, row: pd.Series, ours: Ours, rule: str) -> tuple[Values, Values]:
    """A row's and its baseline's values, both under ``rule``."""
    base = row["baseline_row"]
    return ours[rule][rid], ours[rule][base] if is_set(base) else []


def _judge(rid: str, row: pd.Series, paper: pd.DataFrame, ours: Ours, rule: str,
           pre: A.Precondition | A.RuleNotAvailable | None) -> A.Verdict:
    """The row's verdict under one rule."""
    vals, base_vals = _sides(rid, row, ours, rule)
    if isinstance(vals, list) and not vals:
        return A.Verdict(A.NOT_RUN, "no records")
    if isinstance(pre, A.RuleNotAvailable):
        return A.Verdict(A.RULE_NOT_AVAILABLE, f"a precondition: {pre}")
    if not is_set(row["baseline_row"]):
        return A.Verdict(A.NOT_COMPARABLE, "a reference number: no baseline to compare with")
    direction = paper_direction(row, paper)
    missing = next((side for side in (vals, base_vals) if isinstance(side, A.RuleNotAvailable)), None)
    if missing is not None and direction is not None and (pre is None or pre.holds):
        return A.Verdict(A.RULE_NOT_AVAILABLE, str(missing))
    if missing is not None:  # the verdict's earlier checks (no direction, a failed precondition) need no values
        return A.verdict([float("nan")], [float("nan")], direction, pre)
    return A.verdict(base_vals, vals, direction, pre, paper_effect=_scaled(rid, row, paper, ours, rule))


def _mean(values: Values) -> float:
    return float(np.mean(values)) if isinstance(values, list) and values else float("nan")


def scaled_paper_effect(paper_effect: float, paper_gap: float, our_gap: float) -> float:
    """The paper's effect on our scale: as a fraction of the paper's guide-minus-control gap, times ours
    (a guided net that closes 10 % of the paper's gap to its guide should close 10 % of ours). Without a
    guide gap (``paper_gap`` NaN: no guide row, or the paper gives no guide number) the paper's effect in
    its own unit; NaN where our gap is missing or goes the other way (our guide is not ahead: nothing to
    scale by)."""
    if math.isnan(paper_gap):
        return paper_effect
    if math.isnan(our_gap) or paper_gap == 0 or np.sign(our_gap) != np.sign(paper_gap):
        return float("nan")
    return paper_effect / paper_gap * our_gap


def _scaled(rid: str, row: pd.Series, paper: pd.DataFrame, ours: Ours, rule: str) -> float:
    """:func:`scaled_paper_effect` of a row, from the paper's numbers and ours under ``rule``."""
    base, guide = row["baseline_row"], row.get("guide_row")
    if not is_set(base):
        return float("nan")
    effect = row["paper_mean"] - paper.loc[base, "paper_mean"]
    if not is_set(guide):
        return effect
    paper_gap = paper.loc[guide, "paper_mean"] - paper.loc[base, "paper_mean"]
    return scaled_paper_effect(effect, paper_gap, _mean(ours[rule][guide]) - _mean(ours[rule][base]))


def _escape(row: pd.Series, vals: Values, base_vals: Values) -> float:
    """Fisher's p for the shares of seeds escaping chance, for a row naming ``above_chance:<record>@<chance>`` or
    listed in :data:`SPLIT_BASELINES`."""
    spec = next((p for p in precondition_specs(row) if p.startswith("above_chance:")), None)
    chance = float(spec.partition("@")[2]) if spec is not None else SPLIT_BASELINES.get(str(row.name))
    if chance is None or not isinstance(vals, list) or not isinstance(base_vals, list) or not vals or not base_vals:
        return float("nan")
    return A.escape_p(base_vals, vals, 100 * chance, ESCAPE_MARGIN)


def _fragile(verdicts: list[str]) -> bool:
    """Whether the rules' tested verdicts (:data:`_TESTED`) disagree."""
    return len({v for v in verdicts if v in _TESTED}) > 1


def _verdict_row(rid: str, row: pd.Series, paper: pd.DataFrame, ours: Ours, rules: dict[str, str],
                 store: PlannedStore) -> dict[str, Any]:
    """One row of :func:`verdicts`: judged under its own rule (a rule-free metric reads the same under
    any: the primary's values stand for it), then under each of the others."""
    own = rules[rid] if rules[rid] in A.RULES else A.PRIMARY_RULE
    vals, base_vals = _sides(rid, row, ours, own)
    pre = _precondition(row, store) if not (isinstance(vals, list) and not vals) else None
    v = _judge(rid, row, paper, ours, own, pre)
    others = {rule: _judge(rid, row, paper, ours, rule, pre).verdict for rule in _SENSITIVITY}
    e, base = v.effect, row["baseline_row"]
    listed = vals if isinstance(vals, list) else []
    base_listed = base_vals if isinstance(base_vals, list) else []
    return {"row_id": rid, "precondition": "" if pre is None else str(pre),
            "precondition_holds": None if pre is None else getattr(pre, "holds", False),
            "seeds": _count(vals, row, store),
            "baseline_seeds": _count(base_vals, paper.loc[base], store) if is_set(base) else 0, "extra_seeds": _extra_seeds(row, store), "mean": _mean(listed),
            "sd": float(np.std(listed, ddof=1)) if len(listed) > 1 else float("nan"),
            "effect": e.effect if e else float("nan"), "ci_low": e.ci_low if e else float("nan"),
            "ci_high": e.ci_high if e else float("nan"), "p_value": e.p_value if e else float("nan"),
            "paper_effect": row["paper_mean"] - paper.loc[base, "paper_mean"] if is_set(base) else float("nan"),
            "paper_effect_scaled": _scaled(rid, row, paper, ours, own),
            "mde": A.minimum_detectable_effect(base_listed, listed) if e else float("nan"),
            "escape_p": _escape(row, vals, base_vals), "estimate_rule": rules[rid], "verdict": v.verdict,
            **{f"verdict_{rule}": verdict for rule, verdict in others.items()},
            "fragile": _fragile([v.verdict, *others.values()]), "reason": v.reason}


def _count(values: Values, row: pd.Series, store: PlannedStore) -> int:
    """How many values a row (or its baseline row) has: where its rule's epoch was not tested, how many records
    it has all the same (a row that says "rule not available" still says how many seeds it has)."""
    return len(values) if isinstance(values, list) else len(row_records(row, store))


def _extra_seeds(row: pd.Series, store: PlannedStore) -> str:
    """The row's stored seeds no chapter plans, e.g. ``"9"`` (:mod:`untrainable.paper_comparison_records`), or ``""``."""
    return ", ".join(map(str, store.extra_seeds(row["experiment"], row["record"]))) if names_a_record(row) else ""
