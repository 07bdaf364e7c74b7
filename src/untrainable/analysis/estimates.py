"""The book's one estimate of a run: a test metric at the epoch a validation rule picks.

A run has a number per epoch; which one a page reports is a *rule*, and page 98's verdicts, its
rule-sensitivity columns and the chapters' tables (:func:`untrainable.analysis.estimate_table`) all read it
through :func:`estimate`, so the rule is :data:`PRIMARY_RULE`, one constant:

* ``"max_valid_acc"`` (the book's primary rule, issue #30): the epoch of highest validation accuracy,
  ties broken by the lower validation loss, then by the earlier epoch;
* ``"min_valid_loss"`` (the guidance paper's rule, a reported sensitivity; :data:`LOSS_RULE`, the
  primary rule of loss-type claims such as perplexity): the epoch of lowest validation loss, the earlier
  on ties;
* ``"final_epoch"``: the last epoch.

The epochs are scored as :func:`untrainable.analysis.selection.validation_score` scores a run, so a
setting and a checkpoint are chosen by the same criterion.

**What each experiment's records allow** (``results/full``, read when this was written):

* ``image_guidance``, ``image_sweeps`` (chapters 04, 05): ``test_acc``/``test_loss`` on every test image
  at every epoch: every rule.
* ``image_pilots`` and ``guides`` with a validation split: every rule, but their per-epoch test numbers
  are on the curve's subset of test images (``n_test_curve``); the whole test split was evaluated only
  at the checkpoint they restored (``best_test_acc``, which
  :func:`~untrainable.experiments.image_guides.guide_accuracy` reports and page 98 keeps).
* ``transfer_comparison`` (chapter 08, ``fit(test_every_epoch=False)``): the test split only at each
  epoch that was the best so far by validation loss or by validation accuracy, and at the last: every
  rule, except where a later epoch ties the best validation accuracy at a lower loss (never tested);
  stored ``checkpoint_*`` / ``acc_checkpoint_*`` metrics fill the rule's epoch when they name it.
* ``sequence_guidance`` (chapter 06): the history is validation only; the test split is evaluated once,
  after the last epoch (``metrics``). A rule is available for a run only where its epoch is the last.
* ``mimic_student``, ``mimic_teacher`` (chapter 07) and the chapter-01 experiments: no validation split:
  ``final_epoch`` only, the one estimate such a run has (:func:`row_rule` falls back to it).
* Kappa (:func:`correct_at`): the right/wrong string at the rule's epoch, where ``fit(keep_test_correct=True)``
  kept one (chapter 04's runs from issue #30 on); the records before it have the last epoch's only, so their
  kappas are "rule not available" at any other epoch.
* A check that compares stored metrics (a precondition) reads the estimate from :func:`estimated` copies.

A rule whose epoch has no test value raises :class:`RuleNotAvailable` (page 98 marks the row "rule not
available"); a record with no such metric at all raises ``KeyError`` naming it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Literal

from untrainable.analysis.selection import validation_score

__all__ = ["Rule", "RULES", "RULE_WORDS", "PRIMARY_RULE", "LOSS_RULE", "FINAL_EPOCH", "RuleNotAvailable",
           "has_validation",
           "rule_epoch", "estimate", "estimate_key", "estimated", "correct_at", "row_rule"]

Rule = Literal["max_valid_acc", "min_valid_loss", "final_epoch"]
#: Every rule :func:`estimate` knows, the primary first.
RULES: tuple[str, ...] = ("max_valid_acc", "min_valid_loss", "final_epoch")
#: Each rule in words, for the headings and sentences that say which epoch a number is from.
RULE_WORDS: dict[str, str] = {"max_valid_acc": "the epoch of highest validation accuracy",
                              "min_valid_loss": "the epoch of lowest validation loss", "final_epoch": "the last epoch"}
#: The book's estimate of an accuracy-type claim (issue #30).
PRIMARY_RULE: Rule = "max_valid_acc"
#: The estimate of a loss-type claim (perplexity): the validation rule that matches the metric.
LOSS_RULE: Rule = "min_valid_loss"
#: The one estimate of a run without a validation split.
FINAL_EPOCH: Rule = "final_epoch"

_CRITERION = {"max_valid_acc": "valid_acc", "min_valid_loss": "valid_loss"}
#: Stored metrics that hold a test number at a rule's epoch: (prefix, the metric naming its epoch).
_STORED = {"max_valid_acc": ("acc_checkpoint_", "acc_checkpoint_epoch"),
           "min_valid_loss": ("checkpoint_", "checkpoint_epoch")}

Record = dict[str, Any]
#: Metrics a run stores only at its end but whose source every tested epoch keeps: a language model's
#: perplexity is exp of its mean per-token test cross-entropy (nats), which its history holds per epoch.
_DERIVED: dict[str, tuple[str, Callable[[float], float]]] = {"perplexity": ("test_loss", math.exp)}


class RuleNotAvailable(ValueError):
    """A rule's epoch has no test value in a record (the test split was not evaluated there)."""


def _check(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown estimate rule {rule!r}: choose one of {', '.join(RULES)}")


def _label(record: Record) -> str:
    return f"record {record.get('name', '?')} (seed {record.get('seed', '?')})"


def has_validation(record: Record) -> bool:
    """Whether the run had a validation split (its history has a validation accuracy)."""
    return any(h.get("valid_acc") is not None for h in record.get("history", []))


def rule_epoch(record: Record, rule: Rule) -> int:
    """The 1-based epoch ``rule`` picks from a record's history (module docstring)."""
    _check(rule)
    history = record.get("history", [])
    if not history:
        raise RuleNotAvailable(f"{_label(record)} has no history: no epoch to pick")
    if rule == "final_epoch":
        return history[-1]["epoch"] if "epoch" in history[-1] else len(history)
    if not has_validation(record):
        raise RuleNotAvailable(f"{_label(record)} has no validation split: rule {rule!r} needs one")
    scored = [(validation_score({"history": [h]}, _CRITERION[rule]), i) for i, h in enumerate(history)]
    best = min(scored)[1]
    return history[best].get("epoch", best + 1)


def estimate(record: Record, metric: str = "test_acc", rule: Rule = PRIMARY_RULE) -> float:
    """``metric`` (e.g. ``test_acc``, ``test_loss``) at the epoch ``rule`` picks (module docstring).

    Read from the epoch's history row (``final_epoch``: the final metrics, the last epoch's); where that
    row has no value (the test split was skipped), from the stored metrics that hold it: the final
    metrics when the epoch is the last, a checkpoint's (``checkpoint_*``, ``acc_checkpoint_*``) when it
    names that epoch. Else :class:`RuleNotAvailable`.
    """
    history, metrics = record.get("history", []), record.get("metrics", {})
    source = _DERIVED.get(metric, (metric,))[0]
    if not any(h.get(m) is not None for h in history for m in (metric, source)) and metrics.get(metric) is None:
        raise KeyError(f"{_label(record)} has no metric {metric!r}; it predates the row: rerun its chapter or "
                       "remove the record")
    if rule == "final_epoch" and metrics.get(metric) is not None:
        return float(metrics[metric])  # a run's final metrics are its last epoch's
    epoch = rule_epoch(record, rule)
    row = next((h for i, h in enumerate(history) if h.get("epoch", i + 1) == epoch), {})
    if row.get(metric) is not None:
        return float(row[metric])
    if metric in _DERIVED and row.get(_DERIVED[metric][0]) is not None:
        return float(_DERIVED[metric][1](row[_DERIVED[metric][0]]))
    if epoch == rule_epoch(record, "final_epoch") and metrics.get(metric) is not None:
        return float(metrics[metric])
    if rule in _STORED:
        prefix, epoch_key = _STORED[rule]
        if metrics.get(epoch_key) == epoch and metrics.get(prefix + metric) is not None:
            return float(metrics[prefix + metric])
    raise RuleNotAvailable(f"{_label(record)}: rule {rule!r} picks epoch {epoch}, where the run has no {metric!r} "
                           "(its test split was evaluated elsewhere)")


def estimate_key(metric: str, rule: Rule) -> str:
    """The name :func:`estimated` stores an estimate under: ``"test_acc@max_valid_acc"``."""
    _check(rule)
    return f"{metric}@{rule}"


def estimated(records: Iterable[Record], metric: str = "test_acc", rule: Rule = PRIMARY_RULE) -> list[Record]:
    """Copies of the records with their :func:`estimate` among their metrics (under :func:`estimate_key`), so
    a check that compares stored metrics (a precondition, a guide against its targets) reads the book's
    estimate and names its rule."""
    key = estimate_key(metric, rule)
    return [{**r, "metrics": {**r.get("metrics", {}), key: estimate(r, metric, rule)}} for r in records]


def correct_at(record: Record, rule: Rule = PRIMARY_RULE) -> str:
    """Which test examples the run got right (a 0/1 string) at the epoch ``rule`` picks, so error consistency
    is read at the checkpoint its accuracy is: the history row's ``test_correct`` (kept where
    ``fit(keep_test_correct=True)`` ran), else the final one when the epoch is the last; else
    :class:`RuleNotAvailable`."""
    epoch = rule_epoch(record, rule)
    history = record.get("history", [])
    row = next((h for i, h in enumerate(history) if h.get("epoch", i + 1) == epoch), {})
    if row.get("test_correct") is not None:
        return row["test_correct"]
    final = record.get("metrics", {}).get("test_correct")
    if epoch == rule_epoch(record, "final_epoch") and final is not None:
        return final
    raise RuleNotAvailable(f"{_label(record)}: rule {rule!r} picks epoch {epoch}, where the run kept no right/wrong "
                           "string (rerun it: fit(keep_test_correct=True) keeps one at every such epoch)")


def row_rule(records: Iterable[Record], loss_type: bool = False) -> Rule:
    """The rule a set of records is judged by: :data:`LOSS_RULE` for a loss-type claim, else
    :data:`PRIMARY_RULE`; :data:`FINAL_EPOCH` when no record had a validation split (its only estimate)."""
    records = list(records)
    if records and not any(has_validation(r) for r in records):
        return FINAL_EPOCH
    return LOSS_RULE if loss_type else PRIMARY_RULE
