"""What the chapters conclude from their records: effects with intervals, tests and one verdict rule.

Every chapter, page 98 and the notebooks call this package (``from untrainable import analysis as
A``), so that a number, an interval or a verdict means the same thing everywhere. Nothing here
trains or writes files: functions take records (the dicts of :mod:`untrainable.results`), or the
models a chapter describes, and return numbers, frames or sentences. By meaning:

* :mod:`.effects`: Welch effects with intervals and p-values, power, and the one verdict rule;
* :mod:`.estimates`: the book's one estimate of a run (a test metric at the epoch a validation rule picks);
* :mod:`.runs`: choosing records, and describing runs, configs and guides;
* :mod:`.contrasts`: the effects inside a chapter, as a table and as prose;
* :mod:`.overfitting`, :mod:`.alignment`, :mod:`.kappa` (error consistency): the three measurements the
  guidance chapters share;
* :mod:`.preconditions`: the failure each guidance claim needs its control to show, checked with its numbers;
* :mod:`.chapter_summaries`: what chapters 01 and 07 conclude;
* :mod:`.chapter_tables`: the preconditions, the validation sweep and the verdict narrative a chapter prints;
* :mod:`.transfer_tables`: chapter 08's methods and distances against the labels alone;
* :mod:`.layer_comparison`, :mod:`.layer_mapping`, :mod:`.cka_benchmark`: chapters 02 and 03 and the
  CKA benchmark appendix.
"""

from __future__ import annotations

from untrainable.analysis.alignment import alignment_frame, alignment_summary, endpoint_alignment, pair_alignment
from untrainable.analysis.chapter_summaries import (inductive_bias_summary, mimic_loss_labels, quality_frame,
                                                    quality_summary, size_frame, size_summary, best_means)
from untrainable.analysis.contrasts import contrasts_summary, contrasts_table
from untrainable.analysis.effects import (INCONCLUSIVE, MIN_SEEDS, NO_EFFECT, NOT_COMPARABLE, NOT_RUN, NOT_TESTABLE,
                                          OPPOSITE, POWER, REPRODUCED, RULE_NOT_AVAILABLE, SIGNIFICANCE, TOO_FEW_SEEDS,
                                          VERDICTS, Effect, Precondition, Verdict, escape_p, escapes_chance,
                                          minimum_detectable_effect, splits_at_chance, verdict, welch_effect)
from untrainable.analysis.estimates import (FINAL_EPOCH, LOSS_RULE, PRIMARY_RULE, RULE_WORDS, RULES, Rule,
                                            RuleNotAvailable, correct_at, estimate, estimate_key, estimated,
                                            has_validation, row_rule, rule_epoch)
from untrainable.analysis.kappa import (CONTROL_PAIRS, GUIDED_BY, agreement_precondition, condition_pairs,
                                        disjoint_pairs, error_consistency, kappa_contrast, kappa_summary, kappa_table,
                                        kappa_values)
from untrainable.analysis.chapter_tables import (REPORTED_RULES, cell_change_text, chosen_table, estimate_heading,
                                                 estimate_table, precondition_summary, precondition_table, regimes_table,
                                                 rule_change_text, selection_change_text, selection_changes,
                                                 sweep_table, verdict_narrative)
from untrainable.analysis.overfitting import overfit_gap, overfitting_summary, overfitting_table
from untrainable.analysis.preconditions import (CHANCE, CheckedPrecondition, beats, fails_to_train,
                                                falls_short_of_twin, guide_beats_target, loss_rise, overfits,
                                                plateau_drop, train_test_gap)
from untrainable.analysis.transfer_tables import (DISTANCE_LABELS, METHOD_LABELS, distance_table, method_frame,
                                                 method_table, page_table, transfer_findings, transfer_summary)
from untrainable.analysis.runs import (config_table, find, guide_table, mean_minutes, mean_percent, named, renamed,
                                       run_summary, select, values)

__all__ = [
    "SIGNIFICANCE", "POWER", "MIN_SEEDS", "VERDICTS", "REPRODUCED", "OPPOSITE", "INCONCLUSIVE", "NO_EFFECT",
    "NOT_TESTABLE", "RULE_NOT_AVAILABLE", "NOT_COMPARABLE", "NOT_RUN", "TOO_FEW_SEEDS", "Effect", "Precondition",
    "Verdict", "regimes_table", "welch_effect", "verdict", "minimum_detectable_effect", "escape_p", "escapes_chance",
    "splits_at_chance",
    "Rule", "RULES", "RULE_WORDS", "PRIMARY_RULE", "LOSS_RULE", "FINAL_EPOCH", "RuleNotAvailable", "has_validation",
    "estimate", "estimate_key", "estimated", "correct_at", "rule_epoch", "row_rule",
    "error_consistency", "GUIDED_BY", "CONTROL_PAIRS", "disjoint_pairs", "condition_pairs", "kappa_values",
    "kappa_table", "kappa_contrast", "agreement_precondition", "kappa_summary", "select", "renamed", "values", "find",
    "alignment_frame", "alignment_summary", "overfit_gap", "overfitting_table",
    "overfitting_summary", "contrasts_table", "contrasts_summary", "run_summary", "config_table", "guide_table",
    "mean_percent", "mean_minutes", "named", "endpoint_alignment", "pair_alignment", "inductive_bias_summary", "size_frame", "size_summary", "best_means", "quality_frame",
    "quality_summary", "mimic_loss_labels",
    "CHANCE", "CheckedPrecondition", "loss_rise", "train_test_gap", "overfits", "fails_to_train", "plateau_drop",
    "falls_short_of_twin",
    "beats", "guide_beats_target", "precondition_table", "precondition_summary", "sweep_table", "chosen_table", "verdict_narrative",
    "REPORTED_RULES", "estimate_heading", "estimate_table", "selection_changes", "selection_change_text",
    "cell_change_text", "rule_change_text",
    "METHOD_LABELS", "DISTANCE_LABELS", "method_frame", "method_table", "distance_table", "transfer_summary", "transfer_findings", "page_table",
]
