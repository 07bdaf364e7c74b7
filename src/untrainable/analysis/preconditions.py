"""The failures the paper's method cures, checked in our records before any guided result is read.

A guidance claim can only be tested where the unguided control shows the failure guidance is
meant to cure and the guide has something to give. Each function here takes records (of one
control, or of a control and its comparison), and returns a :class:`CheckedPrecondition`: a
:class:`~untrainable.analysis.effects.Precondition` (so :func:`~untrainable.analysis.effects.verdict`
takes it) that also carries the numbers it was decided on.

* :func:`overfits`: the validation or test loss ends ≥ ``min_rise`` above its minimum, and train
  accuracy is ≥ ``min_gap`` points above test accuracy at the epoch of a declared rule (the book's estimate);
* :func:`fails_to_train`: the control's best training accuracy stays near chance while a
  shallower net of the same width trains;
* :func:`falls_short_of_twin`: the plain net's training loss has reached a plateau, and its
  residual twin beats it by more than the seed spread;
* :func:`guide_beats_target`: the guide's test accuracy (or perplexity) beats the target's by more than the
  seed spread;
* :func:`above_chance`: the control learns something, so a gain is not read off noise at chance;
* :func:`every_guide_reaches`: every seed's trained guide reaches a stated bar on validation;
* :func:`teacher_beats_best_student`: a mimicry teacher beats the best label-trained student of the
  student family by a stated gap, so mimicry has headroom to show;
* :func:`trained_to_plateau`: every run's best validation accuracy stopped rising over its last epochs.

A side with one seed has no spread: the other side's is used, and with one seed on both sides a margin
must exceed a stated threshold instead (``min_margin``); the detail says which rule was applied. Numbers are means over seeds; every
accuracy is a fraction in records and in points (x 100) in the details.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from untrainable.analysis.effects import Precondition
from untrainable.analysis.estimates import (PRIMARY_RULE, RULE_WORDS, Rule, RuleNotAvailable, estimate, row_rule,
                                            rule_epoch)

__all__ = ["CHANCE", "LOWER_IS_BETTER", "CheckedPrecondition", "loss_rise", "train_test_gap", "overfits",
           "best_train_acc", "fails_to_train", "plateau_drop", "curve_rise", "falls_short_of_twin", "beats", "guide_beats_target", "above_chance",
           "stays_at_chance", "every_guide_reaches", "teacher_beats_best_student", "plateau_rise", "trained_to_plateau"]

#: Chance accuracy on CIFAR-10's ten balanced classes.
CHANCE = 0.1
#: A metric as the details name it: a record's key is an internal id, not words a page should print.
METRIC_WORDS = {"test_acc": "final test accuracy", "best_test_acc": "best test accuracy",
                "checkpoint_test_acc": "test accuracy at the lowest-validation-loss checkpoint",
                "acc_checkpoint_test_acc": "test accuracy at the highest-validation-accuracy checkpoint",
                "best_valid_acc": "best validation accuracy", "perplexity": "test perplexity"}


def _named(metric: str) -> str:
    """``metric`` in words (:data:`METRIC_WORDS`; an :func:`~untrainable.analysis.estimates.estimated` one with
    its rule's epoch), or as stored where it has none."""
    base, _, rule = metric.partition("@")
    if rule:
        return f"{METRIC_WORDS.get(base, base.replace('_', ' ')).removeprefix('final ')} at {RULE_WORDS[rule]}"
    return METRIC_WORDS.get(metric, metric.replace("_", " "))


@dataclass(frozen=True)
class CheckedPrecondition(Precondition):
    """A precondition with the numbers it was decided on (``numbers``: name -> value)."""

    numbers: Mapping[str, float] = field(default_factory=dict, compare=False)
    #: Why it could not be decided at its rule's epoch (a run did not test that epoch), or None.
    unread: RuleNotAvailable | None = field(default=None, compare=False)

    @property
    def status(self) -> str:
        """"holds", "does not hold", "rule not available", or "no records"."""
        if self.unread is not None:
            return "rule not available"
        if not self.numbers:
            return "no records"
        return "holds" if self.holds else "does not hold"


def _no_records(name: str, what: str) -> CheckedPrecondition:
    return CheckedPrecondition(name, False, f"no records of {what}")


def loss_rise(record: dict[str, Any], split: str) -> float:
    """How far ``split``'s (``valid`` or ``test``) loss ends above its minimum over epochs (0: never rose);
    epochs that skipped the split (None: ``fit(test_every_epoch=False)``) are left out."""
    losses = [h[f"{split}_loss"] for h in record["history"] if h[f"{split}_loss"] is not None]
    return losses[-1] - min(losses)


def _mean(records: list[dict[str, Any]], value) -> float:
    return float(np.mean([value(r) for r in records]))


def train_test_gap(record: dict[str, Any], rule: Rule) -> float:
    """Train minus test accuracy (fractions) at the epoch ``rule`` picks: the test side is the book's estimate
    (:func:`~untrainable.analysis.estimates.estimate`), the train side that epoch's history row; a rule whose
    epoch has no test value raises :class:`~untrainable.analysis.estimates.RuleNotAvailable`."""
    epoch = rule_epoch(record, rule)
    row = next(h for i, h in enumerate(record["history"]) if h.get("epoch", i + 1) == epoch)
    return row["train_acc"] - estimate(record, "test_acc", rule)


def overfits(records: list[dict[str, Any]], name: str = "the control", min_rise: float = 0.2,
             min_gap: float = 20.0, rule: Rule | None = None) -> CheckedPrecondition:
    """Does the control (``records``: its seeds) overfit? The larger of its validation and test loss
    rises after their minima (the test loss alone where a run holds out no validation split; a shape of the
    curve, the same under every rule) must reach ``min_rise``, and its train - test accuracy gap at the epoch
    ``rule`` picks (:func:`train_test_gap`; default the records' declared estimate,
    :func:`~untrainable.analysis.estimates.row_rule`: the book's rule, the last epoch without a validation
    split) ``min_gap`` points. A rule whose epoch a run did not test leaves it undecided (``unread``: its status
    is "rule not available"; it does not hold)."""
    what = f"{name} overfits"
    if not records:
        return _no_records(what, name)
    rule = rule or row_rule(records)
    splits = [s for s in ("valid", "test") if all(f"{s}_loss" in r["history"][0] for r in records)]
    rises = {s: _mean(records, lambda r, s=s: loss_rise(r, s)) for s in splits}
    rise = max(rises.values())
    shown = ", ".join(f"{'validation' if s == 'valid' else s} {v:.2f}" for s, v in rises.items())
    numbers = {**{f"{s}_rise": v for s, v in rises.items()}, "seeds": float(len(records))}
    try:
        gap = 100 * _mean(records, lambda r: train_test_gap(r, rule))
    except RuleNotAvailable as e:
        return CheckedPrecondition(what, False, f"loss rise after its minimum: {shown}; train - test at "
                                   f"{RULE_WORDS[rule]}: rule not available ({e})", numbers, unread=e)
    return CheckedPrecondition(what, bool(rise >= min_rise and gap >= min_gap),
                               f"loss rise after its minimum: {shown} (needs ≥ {min_rise}); train - test {gap:.1f} "
                               f"points at {RULE_WORDS[rule]} (needs ≥ {min_gap:g}); "
                               f"{len(records)} seed(s)", {**numbers, "train_test_gap": gap})


def best_train_acc(record: dict[str, Any]) -> float:
    """The highest training accuracy over a run's epochs (did it train at all?)."""
    return max(h["train_acc"] for h in record["history"])


def fails_to_train(records: list[dict[str, Any]], shallow: list[dict[str, Any]], name: str = "the control",
                   near: float = 0.1, trains: float = 0.3, min_gap: float | None = None) -> CheckedPrecondition:
    """Does the control fail to train where a shallower net trains? Its best training accuracy over
    epochs stays within ``near`` of chance, while the shallow net's reaches ``trains`` above chance; or, with
    ``min_gap``, it ends that far or more below the shallow net's (a net that learns a little still fails)."""
    what = f"{name} fails to train where a shallower net trains"
    if not records or not shallow:
        return _no_records(what, name if not records else "the shallow net")
    best = _mean(records, best_train_acc)
    best_shallow = _mean(shallow, best_train_acc)
    trains_shallow = best_shallow >= CHANCE + trains
    gap = best_shallow - best
    holds = trains_shallow and (best <= CHANCE + near or (min_gap is not None and gap >= min_gap))
    detail = (f"best train accuracy {100 * best:.1f}% (needs ≤ {100 * (CHANCE + near):.0f}%"
              + (f", or {100 * min_gap:.0f} points or more below the shallow net's" if min_gap is not None else "")
              + f"), the shallow net's {100 * best_shallow:.1f}% (needs ≥ {100 * (CHANCE + trains):.0f}%)")
    return CheckedPrecondition(what, bool(holds), detail,
                               {"best_train_acc": best, "shallow_best_train_acc": best_shallow,
                                "gap_to_shallow": gap})


def plateau_drop(record: dict[str, Any], last: int = 5) -> float:
    """How much the training loss fell over the last ``last`` epochs (small: the run reached a plateau)."""
    losses = [h["train_loss"] for h in record["history"]]
    return losses[max(0, len(losses) - 1 - last)] - losses[-1]


#: Metrics where lower is better: ``beats`` then asks for the lower value.
LOWER_IS_BETTER = frozenset({"perplexity", "bits_per_char", "test_loss", "overfit_gap"})


def _lower(metric: str) -> bool:
    """Whether lower is better for ``metric`` (an estimated one by its base metric: ``perplexity@...``)."""
    return metric.partition("@")[0] in LOWER_IS_BETTER


def _shown(metric: str, value: float) -> str:
    """An accuracy in points (x 100, with %), anything else as it is."""
    return f"{value:.2f}" if _lower(metric) else f"{100 * value:.1f}%"


def _points(metric: str, value: float) -> str:
    """A difference of ``metric``: accuracy points, or the metric's own units."""
    return f"{value:.2f}" if _lower(metric) else f"{100 * value:.1f} points"


def beats(better: list[dict[str, Any]], worse: list[dict[str, Any]], metric: str,
          min_margin: float) -> tuple[bool, dict[str, float], str]:
    """Whether ``better``'s mean ``metric`` is better than ``worse``'s (higher, or lower for
    :data:`LOWER_IS_BETTER`) by more than the larger seed spread (standard deviation) of the sides with
    two or more seeds (a guide trained once is compared with its targets' spread), or by more than
    ``min_margin`` when neither side has two seeds."""
    a = np.array([r["metrics"][metric] for r in better], dtype=float)
    b = np.array([r["metrics"][metric] for r in worse], dtype=float)
    margin = float(a.mean() - b.mean()) * (-1 if _lower(metric) else 1)
    spreads = [float(v.std(ddof=1)) for v in (a, b) if v.size >= 2]
    if spreads:
        spread = max(spreads)
        rule = f"the seed spread {_points(metric, spread)}"
    else:
        spread = min_margin
        rule = f"the stated threshold {_points(metric, min_margin)} (one seed: no spread)"
    numbers = {"better": float(a.mean()), "worse": float(b.mean()), "margin": margin, "threshold": spread,
               "seeds": float(min(a.size, b.size))}
    return bool(margin > spread), numbers, f"margin {_points(metric, margin)} against {rule}"


def falls_short_of_twin(plain: list[dict[str, Any]], residual: list[dict[str, Any]], name: str = "the plain net",
                        metric: str = "best_test_acc", max_drop: float = 0.05, last: int = 5,
                        min_margin: float = 0.05) -> CheckedPrecondition:
    """Is the plain net trained to a plateau (its training loss fell ≤ ``max_drop`` over its last
    ``last`` epochs) and does its residual twin beat it on ``metric`` (see :func:`beats`)?"""
    what = f"{name} reaches a plateau and falls short of its residual twin"
    if not plain or not residual:
        return _no_records(what, name if not plain else "the residual twin")
    drop = _mean(plain, lambda r: plateau_drop(r, last))
    twin_better, numbers, rule = beats(residual, plain, metric, min_margin)
    return CheckedPrecondition(what, bool(drop <= max_drop and twin_better),
                               f"training loss fell {drop:.3f} over the last {last} epochs (needs ≤ {max_drop}); "
                               f"{_named(metric)}: twin {100 * numbers['better']:.1f}%, "
                               f"plain {100 * numbers['worse']:.1f}%, "
                               f"{rule}", {**numbers, "plateau_drop": drop})


def guide_beats_target(guide: list[dict[str, Any]], target: list[dict[str, Any]], name: str = "the guide",
                       metric: str = "best_test_acc", min_margin: float = 0.05, min_gap: float = 0.0
                       ) -> CheckedPrecondition:
    """Does the guide beat its unguided target on ``metric`` by more than the seed spread (:func:`beats`),
    and by at least ``min_gap`` (a target within a point of a perfect guide has nothing left to gain)?"""
    what = f"{name} beats its target"
    if not guide or not target:
        return _no_records(what, name if not guide else "the target")
    holds, numbers, rule = beats(guide, target, metric, min_margin)
    gap = f" and at least {_points(metric, min_gap)}" if min_gap else ""
    return CheckedPrecondition(what, bool(holds and numbers["margin"] >= min_gap),
                               f"{_named(metric)}: guide {_shown(metric, numbers['better'])}, target "
                               f"{_shown(metric, numbers['worse'])}, {rule}{gap}", numbers)


def above_chance(records: list[dict[str, Any]], chance: float, name: str = "the control",
                 metric: str = "test_acc", margin: float = 0.10) -> CheckedPrecondition:
    """Does the control learn something (its mean ``metric`` at least ``margin`` above ``chance``), so
    that a guided run's gain is not read off noise at chance?"""
    what = f"{name} is above chance"
    if not records:
        return _no_records(what, name)
    value = _mean(records, lambda r: r["metrics"][metric])
    return CheckedPrecondition(what, bool(value >= chance + margin),
                               f"{_named(metric)} {100 * value:.1f}% against chance {100 * chance:.0f}% (needs ≥ "
                               f"{100 * (chance + margin):.0f}%); {len(records)} seed(s)",
                               {metric: value, "chance": chance, "seeds": float(len(records))})


def stays_at_chance(records: list[dict[str, Any]], chance: float, name: str = "the control",
                    metric: str = "test_acc", margin: float = 0.05) -> CheckedPrecondition:
    """Does the control fail, so that a guided gain is a rescue? Every record's ``metric`` (each seed, or
    each pilot learning rate) is at most ``margin`` above ``chance``: one control that learns is no failure."""
    what = f"{name} stays at chance"
    if not records:
        return _no_records(what, name)
    values = [r["metrics"][metric] for r in records]
    shown = ", ".join(f"{100 * v:.1f}%" for v in values)
    return CheckedPrecondition(what, bool(max(values) <= chance + margin),
                               f"{_named(metric)} {shown} against chance {100 * chance:.0f}% (each needs ≤ "
                               f"{100 * (chance + margin):.0f}%); {len(records)} record(s)",
                               {"highest": max(values), "mean": float(np.mean(values)), "chance": chance,
                                "records": float(len(records))})


def every_guide_reaches(guides: list[dict[str, Any]], bar: float, name: str = "every trained guide",
                        metric: str = "best_valid_acc") -> CheckedPrecondition:
    """Does every trained guide (each seed's) reach ``bar`` on ``metric``? A guide that failed its task has
    nothing to give, whatever its targets do."""
    what = f"{name} reaches {100 * bar:.0f}%"
    if not guides:
        return _no_records(what, name)
    values = {r["seed"]: r["metrics"][metric] for r in guides}
    low = {s: v for s, v in values.items() if v < bar}
    detail = ", ".join(f"seed {s}: {100 * v:.1f}%" for s, v in sorted(values.items()))
    return CheckedPrecondition(what, not low, f"{_named(metric)}: {detail} (needs ≥ {100 * bar:.0f}% each)",
                               {"lowest": min(values.values()), "seeds": float(len(values))})


def teacher_beats_best_student(teacher_acc: float, students: Mapping[str, list[dict[str, Any]]],
                               name: str = "the teacher", min_gap: float = 8.0, metric: str = "test_acc",
                               rule: Rule = PRIMARY_RULE) -> CheckedPrecondition:
    """Does the teacher (``teacher_acc``, a fraction: one net's or an ensemble's test accuracy) beat the best
    label-trained student by at least ``min_gap`` points? ``students``: each setting's records (a width's
    seeds); the best setting is the one of highest mean ``metric`` at the epoch ``rule`` picks (the book's
    estimate). A teacher barely better than what labels already give leaves mimicry no headroom to show."""
    what = f"{name} beats the best label-trained student by at least {min_gap:g} points"
    students = {k: v for k, v in students.items() if v}
    if not students:
        return _no_records(what, "label-trained students")
    words = _named(f"{metric}@{rule}")
    try:
        means = {k: _mean(rs, lambda r: estimate(r, metric, rule)) for k, rs in students.items()}
    except RuleNotAvailable as e:
        return CheckedPrecondition(what, False, f"the students' {words}: rule not available ({e})",
                                   {"teacher": teacher_acc}, unread=e)
    best = max(means, key=means.__getitem__)
    gap = 100 * (teacher_acc - means[best])
    return CheckedPrecondition(what, bool(gap >= min_gap),
                               f"{name} {100 * teacher_acc:.1f}%, the best label-trained student ({best}, "
                               f"{len(students[best])} seed(s)) {100 * means[best]:.1f}% ({words}): "
                               f"{gap:.1f} points (needs ≥ {min_gap:g})",
                               {"teacher": teacher_acc, "best_student": means[best], "gap": gap,
                                "seeds": float(len(students[best]))})


def plateau_rise(record: dict[str, Any], fraction: float = 0.2) -> float:
    """How much the best validation accuracy (a fraction) rose over the last ``fraction`` of epochs (at least
    one): the best of every epoch minus the best before that window (:func:`curve_rise`)."""
    return curve_rise(_valid_accs(record), fraction)


def curve_rise(accs: list[float], fraction: float = 0.2) -> float:
    """How much the best of a validation-accuracy curve rose over its last ``fraction`` of epochs. A curve of
    one epoch has no epochs before the window: infinite (it cannot be shown to be at a plateau)."""
    window = max(1, math.ceil(fraction * len(accs)))
    before = accs[:-window]
    return max(accs) - max(before) if before else math.inf


def _valid_accs(record: dict[str, Any]) -> list[float]:
    accs = [h["valid_acc"] for h in record["history"] if h.get("valid_acc") is not None]
    if not accs:
        raise KeyError(f"record {record.get('name', '?')!r} has no validation accuracy: its plateau cannot be read")
    return accs


def trained_to_plateau(records: list[dict[str, Any]], name: str = "the students", fraction: float = 0.2,
                       max_rise: float = 0.5) -> CheckedPrecondition:
    """Is every setting (a record name, its seeds together) trained to a plateau: did the best of its validation
    accuracy, averaged over its seeds epoch by epoch, rise by less than ``max_rise`` points over its last
    ``fraction`` of epochs? A comparison of runs still rising reads how fast each learns, not how far.

    The seeds are averaged because one run's curve on a small validation split (1,000 images: about 1.4
    points of noise an epoch) sets a new best by chance alone, however flat it is; the largest single run's
    rise is reported beside the check."""
    what = f"{name} are trained to a plateau"
    if not records:
        return _no_records(what, name)
    by_name: dict[str, list[list[float]]] = {}
    for r in records:
        by_name.setdefault(str(r.get("name", "?")), []).append(_valid_accs(r))
    rises = {k: 100 * curve_rise(list(np.mean([c[:min(map(len, cs))] for c in cs], axis=0)), fraction)
             for k, cs in by_name.items()}
    runs = {f"{r.get('name', '?')} seed {r.get('seed', '?')}": 100 * plateau_rise(r, fraction) for r in records}
    worst, worst_run = max(rises, key=rises.__getitem__), max(runs, key=runs.__getitem__)
    return CheckedPrecondition(what, bool(rises[worst] < max_rise),
                               f"the best of each setting's validation accuracy, mean over its seeds, rose by at most "
                               f"{rises[worst]:.2f} points over the last {100 * fraction:.0f}% of epochs ({worst}; "
                               f"each needs < {max_rise:g}); one run alone by up to {runs[worst_run]:.2f} "
                               f"({worst_run}); {len(records)} record(s) in {len(rises)} setting(s)",
                               {"largest_rise": rises[worst], "largest_run_rise": runs[worst_run],
                                "records": float(len(records))})
