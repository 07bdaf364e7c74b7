"""The papers' numbers (``book/paper_numbers.csv``) beside ours, each row with a test-based verdict.

Each row of the data file is one number of a paper, with its source, and says which of our records
answer it (``experiment``, ``record``, ``our_metric``). Our values are read from the results store of
a profile, one per seed; no number is ever filled in by hand.

**Seeds.** A record name's values are those of exactly the seeds its chapter plans
(:func:`untrainable.experiments.planned_runs`), each loaded with the chapter's checks (its
``required_metrics``), so this page, the landing page and the chapter read the same runs. A name with
some planned records stored and others not is an error naming the missing ones (a table must not
quietly average fewer seeds than it says); a name none of whose records are stored, or that the
profile does not plan (``quick`` runs no 4096-unit student), is "not run" (in ``full``, the book, every
row's record is planned: :func:`unplanned_records`). A stored seed no chapter plans (one trained from a
shell, say) is listed in ``extra_seeds`` and never pooled.

Absolute numbers do not compare across scales (ImageNet top-5 against CIFAR-10 top-1 on a subset),
so a row is judged by its *effect*: the difference to its ``baseline_row`` (e.g. the unguided target
of the same setting), tested by :func:`untrainable.analysis.verdict`, the book's one rule. The
paper's direction is the sign of its own difference, or ``paper_direction`` ("higher"/"lower") where
the paper gives no number. A row may name a ``precondition`` the claim needs from our records
(``overfits:<record>``: that run overfits, :func:`untrainable.analysis.preconditions.overfits`;
``above_chance:<record>@0.1``; ``guides_reach:<guide record>@0.95``; ``guide_beats:<guide>><target>``,
the guide's record among the trained guides or, for a sequence guide, in the row's experiment);
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

**Pages.** Page 98 shows one narrow row per claim (:func:`compact`: the claim in words, :func:`claim`, never
a row's id; effects with their units, :data:`UNITS`) with the long notes folded under it (:func:`notes_html`);
the landing page opens with :func:`answer`, three sentences from the same table, and the forest plot of
:mod:`untrainable.forest`.

Metrics: ``test_acc`` (a run's test accuracy under the row's rule, in %; a stored checkpoint's metric
such as ``checkpoint_test_acc`` is refused: every reported accuracy is the estimate), ``guide_acc`` (a trained
guide's accuracy, :func:`~untrainable.experiments.image_guides.guide_accuracy`, in %), ``teacher_test_acc`` (a
mimic student's teacher or ensemble, in %), ``perplexity`` (under the row's rule; ours per character, the
paper's per word: only the effect's sign compares), ``overfit_gap`` (final test loss minus its minimum over
epochs: a shape of the test curve, the same under every rule), and ``kappa`` (Cohen's kappa of errors at the
rule's epoch, :func:`untrainable.analysis.kappa_values`; record ``kappa:A|B``: ``A``, ``B`` conditions of the
Deep FCN runs paired by seed, ``kappa:no_guide|no_guide`` disjoint pairs of seeds, ``guide:<name>`` a guide).
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from untrainable import analysis as A
from untrainable.experiments import PlannedRun, planned_runs
from untrainable.experiments.image_guides import guide_accuracy, scored_as
from untrainable.pages import NA_NOTE_ATTR
from untrainable.paths import repo_root
from untrainable.results import MissingRecordError, run_key

__all__ = ["DATA_FILE", "SHOWN", "sources_table", "transfer_paragraph", "PRECONDITION_KINDS", "VERDICT_COLUMNS",
           "ESCAPE_MARGIN", "RULE_FREE", "verdicts_csv", "paper_numbers", "unplanned_records", "our_values", "estimate_rule",
           "paper_direction", "scaled_paper_effect", "verdicts", "comparison", "verdict_counts", "headline", "UNITS",
           "COMPACT", "GUIDANCE_CHAPTERS", "MIMICRY_CHAPTERS", "claim", "compact", "notes_html", "answer"]

#: The papers' numbers with their sources, one row per number.
DATA_FILE = Path("book") / "paper_numbers.csv"
_DIRECTIONS = {"higher": 1, "lower": -1}
#: The columns a page shows of :func:`comparison`: the verdict first, so it is read before any number.
#: Not shown: chapter, source (the sources table), and "why": every page puts under its table the
#: sentences of :func:`untrainable.analysis.verdict_narrative`, which say it in full (the test, or the
#: failed precondition's numbers), so the table stays narrow enough to read.
SHOWN = ["verdict", "setting", "condition", "paper metric", "paper", "ours", "seeds", "effect (paper)",
         "paper on our scale", "effect (ours) [95 % CI]", "p", "MDE", "precondition", "under other rules"]


def paper_numbers(path: Path | None = None) -> pd.DataFrame:
    """The data file of the papers' numbers, one row per number, indexed by ``row_id``."""
    df = pd.read_csv(path or repo_root() / DATA_FILE, dtype={"chapter": str})
    return df.set_index("row_id")


def sources_table(paper: pd.DataFrame) -> pd.DataFrame:
    """Where each of the papers' numbers comes from, one row per number (``paper``: :func:`paper_numbers`),
    by its :func:`claim`: the number with its spread and metric, its source and the data file's note in full."""
    spread = paper["paper_spread"].map(lambda v: "" if pd.isna(v) else f" ± {v:g}")
    number = paper["paper_mean"].map(lambda v: "—" if pd.isna(v) else f"{v:g}") + spread
    return pd.DataFrame({"paper's number": number + " (" + paper["paper_metric"].fillna("") + ")",
                         "source": paper["source"].fillna("—"), "note": paper["note"].fillna("")},
                        index=pd.Index([claim(row) for _, row in paper.iterrows()], name="claim"))


class _Store:
    """The records the chapters plan in a profile (module docstring, "Seeds"), read once per name."""

    def __init__(self, profile: str):
        self.profile = profile
        self._plan: dict[tuple[str, str], list[PlannedRun]] | None = None
        self._cache: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def plan(self) -> dict[tuple[str, str], list[PlannedRun]]:
        """Every planned run of the profile by (experiment, record name)."""
        if self._plan is None:
            self._plan = {}
            for run in planned_runs(self.profile):
                self._plan.setdefault((run.experiment, run.name), []).append(run)
        return self._plan

    def plans(self, experiment: str, name: str) -> bool:
        """Whether a chapter plans records of ``experiment/name``."""
        return (experiment, name) in self.plan()

    def named(self, experiment: str, name: str) -> list[dict[str, Any]]:
        """The records of ``name``, one per planned seed: all of them, or none when none is stored (or none is
        planned); an error naming the missing ones when only some are stored."""
        if (experiment, name) not in self._cache:
            runs = self._runs(experiment, name)
            loaded = [(run, run.load(self.profile)) for run in runs]
            missing = [run for run, record in loaded if record is None]
            if missing and len(missing) < len(runs):
                raise MissingRecordError(
                    f"{self.profile} records of {experiment}/{name}: {len(missing)} of the {len(runs)} planned seeds "
                    f"are not stored (seed {', '.join(str(r.seed) for r in missing)}: "
                    f"{', '.join(r.path(self.profile).name for r in missing)}); the page would average fewer seeds "
                    "than the chapter: train them (reproduce --train-missing) or restore them")
            self._cache[experiment, name] = [record for _, record in loaded if record is not None]
        return self._cache[experiment, name]

    def records(self, experiment: str) -> list[dict[str, Any]]:
        """The records of every name ``experiment`` plans (:meth:`named`)."""
        return [r for e, name in self.plan() if e == experiment for r in self.named(e, name)]

    def extra_seeds(self, experiment: str, name: str) -> list[int]:
        """Seeds stored for ``name`` under a planned config that no chapter plans: listed, never pooled."""
        runs = self._runs(experiment, name)
        if not runs:
            return []
        planned = {run.seed for run in runs}
        extra = set()
        for path in (runs[0].path(self.profile).parent).glob(f"{name}-seed*.json"):
            seed, _, key = path.stem[len(name) + len("-seed"):].partition("-")
            if seed.isdigit() and int(seed) not in planned and any(
                    key == run_key(experiment, run.config, int(seed)) for run in runs):
                extra.add(int(seed))
        return sorted(extra)

    def _runs(self, experiment: str, name: str) -> list[PlannedRun]:
        return self.plan().get((experiment, name), [])


def _is_set(value: Any) -> bool:
    return isinstance(value, str) and value != ""


#: Metrics whose value no checkpoint rule changes, with what they are read from instead.
RULE_FREE = {"teacher_test_acc": "final_epoch",
             "guide_acc": "the guide's kept checkpoint", "overfit_gap": "test curve (final minus minimum)"}
_ACCURACIES = ("test_acc",)


def _names_a_record(row: pd.Series) -> bool:
    """Whether the row reads one record name (not a kappa pair, not a reference number without records)."""
    return _is_set(row["experiment"]) and _is_set(row["record"]) and row["our_metric"] != "kappa"


def _hits(row: pd.Series, store: _Store) -> list[dict[str, Any]]:
    if not _names_a_record(row):
        return []
    try:
        return store.named(row["experiment"], row["record"])
    except MissingRecordError as e:
        raise MissingRecordError(f"row {row.name}: {e}") from None


def unplanned_records(profile: str, path: Path | None = None) -> list[str]:
    """The rows of the data file whose record no chapter plans in ``profile`` (``"row: experiment/record"``):
    such a row is "not run" in that profile, and in ``full`` a misspelt name."""
    store = _Store(profile)
    return [f"{rid}: {row['experiment']}/{row['record']}" for rid, row in paper_numbers(path).iterrows()
            if _names_a_record(row) and not store.plans(row["experiment"], row["record"])]


def estimate_rule(row: pd.Series, store: _Store) -> str:
    """The rule a row's values are read under (:func:`untrainable.analysis.row_rule`), or what a
    rule-free metric is read from (:data:`RULE_FREE`)."""
    if row["our_metric"] in RULE_FREE:
        return RULE_FREE[row["our_metric"]]
    return A.row_rule(_hits(row, store), loss_type=row["our_metric"] == "perplexity")


def our_values(row: pd.Series, store: _Store, rule: str | None = None) -> list[float]:
    """Our values for one row, one per seed (per disjoint pair of seeds or per guide pair for kappa rows),
    read under ``rule`` (default: :func:`estimate_rule`; rule-free metrics ignore it). A rule a run did not
    test raises :class:`~untrainable.analysis.RuleNotAvailable`."""
    hits, metric = _hits(row, store), row["our_metric"]
    if not hits and metric != "kappa":
        return []
    rule = rule or estimate_rule(row, store)
    if metric == "kappa":  # "kappa:A|B" (module docstring), one value per independent pair
        guides = {g["name"]: g["metrics"]["test_correct"] for g in store.records("guides")}
        return A.kappa_values(*row["record"].split(":", 1)[1].split("|"), store.records(row["experiment"]), guides,
                              rule=rule) if _is_set(row["record"]) else []
    if metric == "teacher_test_acc":  # one teacher (or ensemble) read from each of its students: one value
        return list(dict.fromkeys(100 * _metric(r, metric, row.name) for r in hits))
    if metric in _ACCURACIES:
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
    if not _is_set(base):
        return None
    pm, pb = row["paper_mean"], paper.loc[base, "paper_mean"]
    if not math.isnan(pm) and not math.isnan(pb) and pm != pb:
        return int(np.sign(pm - pb))
    return _DIRECTIONS.get(row["paper_direction"]) if _is_set(row["paper_direction"]) else None


def _used(store: _Store, experiment: str, guide: str) -> list[dict[str, Any]]:
    """The records of guide ``guide`` in ``experiment`` that guided a target run: for a sequence guide, each
    run seed's own or its replacement (:func:`~untrainable.experiments.sequence_guidance.used_guides`)."""
    from untrainable.experiments import sequence_guidance

    named = store.named(experiment, guide)
    if experiment != sequence_guidance.EXPERIMENT or not named:
        return named
    return [r for r in sequence_guidance.used_guides(store.records(experiment), named[0]["config"]["setting"])
            if r["name"] == guide]


def _one_precondition(spec: str, row: pd.Series, store: _Store) -> A.Precondition:
    """One precondition of a row, checked on the records (:data:`PRECONDITION_KINDS`), every accuracy or
    perplexity at the row's estimate (:func:`estimate_rule`; a guide at its kept checkpoint)."""
    kind, _, args = spec.partition(":")
    experiment, measured = row["experiment"], row["our_metric"]
    if kind == "overfits":
        return A.preconditions.overfits(store.named(experiment, args), args)
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
        return A.preconditions.guide_beats_target(guides, at_rule(store.named(experiment, target)),
                                                  f"the guide {guide}", metric, min_gap=float(gap or 0))
    if kind == "above_chance":
        name, _, chance = args.partition("@")
        return A.preconditions.above_chance(at_rule(store.named(experiment, name)), float(chance), name, metric)
    if kind == "falls_short":
        plain, _, twin = args.partition(">")  # the twin is a trained guide: its record is in "guides"
        return A.preconditions.falls_short_of_twin(at_rule(store.named(experiment, plain)),
                                                   scored_as(store.named("guides", twin), metric), plain, metric=metric)
    raise ValueError(f"row {row.name}: unknown precondition {spec!r} (known: "
                     f"{', '.join(k + ':' + v for k, v in PRECONDITION_KINDS.items())})")


#: The preconditions a row of the data file may name, ``;``-separated (all must hold).
PRECONDITION_KINDS = {"overfits": "<record>", "guide_beats": "<guide record>><target record>[@<min gap>]",
                      "falls_short": "<plain record>><residual twin guide record>", "above_chance": "<record>@<chance>",
                      "guides_reach": "<guide record>@<validation accuracy every used guide reaches>"}


def _precondition(row: pd.Series, store: _Store) -> A.Precondition | A.RuleNotAvailable | None:
    """The row's named preconditions, checked on our records and joined (``None`` when it names none):
    it holds when every one holds; a check whose rule's epoch a run did not test: its :class:`RuleNotAvailable`."""
    spec = row.get("precondition")
    if not _is_set(spec):
        return None
    try:
        checks = [_one_precondition(part.strip(), row, store) for part in spec.split(";") if part.strip()]
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
#: The verdicts that come from a test: only these count when rules are compared for ``fragile``.
_TESTED = (A.REPRODUCED, A.OPPOSITE, A.INCONCLUSIVE, A.NO_EFFECT)
_SENSITIVITY = ("min_valid_loss", "final_epoch")

Values = list[float] | A.RuleNotAvailable


def verdicts_csv(profile: str = "full", path: Path | None = None) -> str:
    """:func:`verdicts` as CSV text (:data:`VERDICT_COLUMNS`), what ``python -m untrainable verdicts --csv`` prints."""
    v = verdicts(profile, path).reset_index()
    v["chapter"] = paper_numbers(path).loc[v["row_id"], "chapter"].fillna("").to_numpy()
    return v[VERDICT_COLUMNS].to_csv(index=False, float_format="%.6g")


def _values(row: pd.Series, store: _Store, rule: str) -> Values:
    try:
        return our_values(row, store, rule)
    except A.RuleNotAvailable as e:
        return e


def verdicts(profile: str = "full", path: Path | None = None) -> pd.DataFrame:
    """One machine-readable row per paper number: ``row_id, precondition, seeds, baseline_seeds, extra_seeds, mean,
    sd, effect, ci_low, ci_high, p_value, paper_effect, paper_effect_scaled, mde, escape_p, estimate_rule,
    verdict, verdict_min_valid_loss, verdict_final_epoch, fragile, reason`` (module docstring)."""
    paper = paper_numbers(path)
    store = _Store(profile)
    rules = {rid: estimate_rule(row, store) for rid, row in paper.iterrows()}
    ours = {rule: {rid: _values(row, store, rule) for rid, row in paper.iterrows()} for rule in A.RULES}
    return pd.DataFrame([_verdict_row(rid, row, paper, ours, rules, store)
                         for rid, row in paper.iterrows()]).set_index("row_id")


Ours = dict[str, dict[str, Values]]  # rule -> row -> values


def _sides(rid: str, row: pd.Series, ours: Ours, rule: str) -> tuple[Values, Values]:
    """A row's and its baseline's values, both under ``rule``."""
    base = row["baseline_row"]
    return ours[rule][rid], ours[rule][base] if _is_set(base) else []


def _judge(rid: str, row: pd.Series, paper: pd.DataFrame, ours: Ours, rule: str,
           pre: A.Precondition | A.RuleNotAvailable | None) -> A.Verdict:
    """The row's verdict under one rule."""
    vals, base_vals = _sides(rid, row, ours, rule)
    if isinstance(vals, list) and not vals:
        return A.Verdict(A.NOT_RUN, "no records")
    if isinstance(pre, A.RuleNotAvailable):
        return A.Verdict(A.RULE_NOT_AVAILABLE, f"a precondition: {pre}")
    if not _is_set(row["baseline_row"]):
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
    if not _is_set(base):
        return float("nan")
    effect = row["paper_mean"] - paper.loc[base, "paper_mean"]
    if not _is_set(guide):
        return effect
    paper_gap = paper.loc[guide, "paper_mean"] - paper.loc[base, "paper_mean"]
    return scaled_paper_effect(effect, paper_gap, _mean(ours[rule][guide]) - _mean(ours[rule][base]))


def _escape(row: pd.Series, vals: Values, base_vals: Values) -> float:
    """Fisher's p for the shares of seeds escaping chance, for a row naming ``above_chance:<record>@<chance>``."""
    spec = next((p.strip() for p in str(row.get("precondition") or "").split(";")
                 if p.strip().startswith("above_chance:")), None)
    if spec is None or not isinstance(vals, list) or not isinstance(base_vals, list) or not vals or not base_vals:
        return float("nan")
    chance = 100 * float(spec.partition("@")[2])
    return A.escape_p(base_vals, vals, chance, ESCAPE_MARGIN)


def _fragile(verdicts: list[str]) -> bool:
    """Whether the rules' tested verdicts (:data:`_TESTED`) disagree."""
    return len({v for v in verdicts if v in _TESTED}) > 1


def _verdict_row(rid: str, row: pd.Series, paper: pd.DataFrame, ours: Ours, rules: dict[str, str],
                 store: _Store) -> dict[str, Any]:
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
            "baseline_seeds": _count(base_vals, paper.loc[base], store) if _is_set(base) else 0, "extra_seeds": _extra_seeds(row, store), "mean": _mean(listed),
            "sd": float(np.std(listed, ddof=1)) if len(listed) > 1 else float("nan"),
            "effect": e.effect if e else float("nan"), "ci_low": e.ci_low if e else float("nan"),
            "ci_high": e.ci_high if e else float("nan"), "p_value": e.p_value if e else float("nan"),
            "paper_effect": row["paper_mean"] - paper.loc[base, "paper_mean"] if _is_set(base) else float("nan"),
            "paper_effect_scaled": _scaled(rid, row, paper, ours, own),
            "mde": A.minimum_detectable_effect(base_listed, listed) if e else float("nan"),
            "escape_p": _escape(row, vals, base_vals), "estimate_rule": rules[rid], "verdict": v.verdict,
            **{f"verdict_{rule}": verdict for rule, verdict in others.items()},
            "fragile": _fragile([v.verdict, *others.values()]), "reason": v.reason}


def _count(values: Values, row: pd.Series, store: _Store) -> int:
    """How many values a row (or its baseline row) has: where its rule's epoch was not tested, how many records
    it has all the same (a row that says "rule not available" still says how many seeds it has)."""
    return len(values) if isinstance(values, list) else len(_hits(row, store))


def _extra_seeds(row: pd.Series, store: _Store) -> str:
    """The row's stored seeds no chapter plans, e.g. ``"9"`` (module docstring, "Seeds"), or ``""``."""
    return ", ".join(map(str, store.extra_seeds(row["experiment"], row["record"]))) if _names_a_record(row) else ""


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
        return f"{direction} (no size)" if _is_set(direction) else ""
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
    """'holds', 'fails' or '' (the row names no precondition); the numbers are in the row's "why"."""
    return "" if holds is None or holds != holds else ("holds" if holds else "fails")


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
        rows.append({"row": rid, "chapter": row["chapter"] if _is_set(row["chapter"]) else "",
                     "setting": row["setting"], "condition": row["condition"], "paper metric": row["paper_metric"],
                     "paper": _fmt(row["paper_mean"], row["paper_spread"], 2) if not math.isnan(row["paper_mean"])
                     else row["note"], "ours": _fmt(r["mean"], r["sd"], digits), "seeds": f"{r['seeds']}",
                     "extra seeds": r["extra_seeds"],
                     "profile": profile, "effect (paper)": paper_effect if _is_set(paper_effect) else "",
                     "effect (ours) [95 % CI]": _fmt_effect(r, digits),
                     "paper on our scale": _fmt_number(r["paper_effect_scaled"], digits, signed=True),
                     "p": "" if math.isnan(r["p_value"]) else f"{r['p_value']:.2g}",
                     "MDE": _fmt_number(r["mde"], digits), "escape p": _fmt_number(r["escape_p"], 2),
                     "precondition": _status(r["precondition_holds"]), "verdict": r["verdict"], "why": r["reason"],
                     "rule": r["estimate_rule"], "under other rules": _other_rules(r), "source": row["source"],
                     "claim": claim(row), "fragile": bool(r["fragile"]), "unit": unit,
                     "our effect": _fmt_effect(r, digits, unit),
                     "paper's effect": _fmt_paper_effect(r, row["paper_direction"], digits, unit),
                     "baseline seeds": f"{r['baseline_seeds']}", "precondition numbers": r["precondition"]})
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
    records = _Store(profile).records("transfer_comparison")
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
UNITS = {**dict.fromkeys((*_ACCURACIES, "guide_acc", "teacher_test_acc"), "pts"), "overfit_gap": "nats",
         "perplexity": "ppl", "kappa": "κ"}
#: The columns of :func:`compact` (its index is the claim): what a reader needs to see of each claim at a glance.
COMPACT = ["verdict", "our effect [95 % CI]", "paper's effect", "p", "seeds"]
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
        if _names_a_record(row):
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
    """The landing page's answer in three sentences, from a :func:`comparison` table: where guidance (the
    chapters of :data:`GUIDANCE_CHAPTERS`) reproduced the paper's direction with a trained guide and with an
    untrained one (a row whose setting or condition says "untrained"), where mimicry did
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
    return (f"**Guidance** reproduced the paper's direction (p < 0.05; our effects with 95 % intervals) with a trained "
            f"guide {_share(guidance[~untrained], 'short')}, and with an untrained guide "
            f"{_share(guidance[untrained], 'short')}. **Mimicry** reproduced it {_share(mimicry, 'claim')}. "
            + (f"**Did not reproduce**: {missed}." if missed else "Every judged row reproduced.") + "\n")
