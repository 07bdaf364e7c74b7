"""Choosing a setting on validation records: one function for every chapter and every pilot.

A chapter sweeps a hyper-parameter (a learning rate, the guidance weight alpha, a transfer method's
weight) on a validation split and keeps the value whose runs did best there. *Best* is a
criterion, and the criterion is always passed explicitly, so a reader can see which one each choice
used and the book can switch all of them at once:

* ``"valid_loss"``: the lowest validation loss the run reached (the paper's rule);
* ``"valid_acc"``: the highest validation accuracy the run reached, ties broken by the lower
  validation loss.

Several records of one setting (seeds) are pooled by the mean of their scores. Ties between settings
keep the first setting in the order the records came in, so a choice never depends on dict order.
The test split is never read here.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any, Literal

__all__ = ["CRITERIA", "CRITERION_WORDS", "Criterion", "BOOK_CRITERION", "LOSS_CRITERION", "max_valid_acc", "validation_score", "best_record", "choose", "group_by"]

Criterion = Literal["valid_loss", "valid_acc"]
#: Every criterion :func:`choose` knows.
CRITERIA: tuple[str, ...] = ("valid_loss", "valid_acc")
#: The book's declared criterion for settings judged by accuracy: the highest validation accuracy, ties
#: broken by the lower validation loss. It matches the book's estimate
#: (:data:`untrainable.analysis.estimates.PRIMARY_RULE`). It replaced the paper's rule (lowest validation
#: loss) after the first results were seen: under that rule a Deep FCN's checkpoint falls at epochs 5-9 of
#: 60, before its test accuracy stops rising, and two chapters reported the same run differently.
BOOK_CRITERION: Criterion = "valid_acc"
#: The criterion for settings judged by a loss (perplexity, a loss rise): the lowest validation loss.
LOSS_CRITERION: Criterion = "valid_loss"
#: Each criterion in words, for the pages that say which one chose.
CRITERION_WORDS = {"valid_acc": "highest validation accuracy", "valid_loss": "lowest validation loss"}

Record = dict[str, Any]


def _check(criterion: str) -> None:
    if criterion not in CRITERIA:
        raise ValueError(f"unknown selection criterion {criterion!r}: choose one of {', '.join(CRITERIA)}")


def _min_valid_loss(record: Record) -> float:
    """The lowest validation loss of a run: the stored metric, else the minimum over its history."""
    metrics = record.get("metrics", {})
    if "min_valid_loss" in metrics:
        return metrics["min_valid_loss"]
    losses = [h["valid_loss"] for h in record.get("history", []) if "valid_loss" in h]
    if not losses:
        raise KeyError(f"record {record.get('name', '?')!r} has no validation loss: it cannot be chosen on validation")
    return min(losses)


def max_valid_acc(record: Record) -> float:
    """The highest validation accuracy of a run over its epochs (read from the history, which every
    record that had a validation split stores, whatever metrics the code of its day kept)."""
    accs = [h["valid_acc"] for h in record.get("history", []) if "valid_acc" in h]
    if not accs:
        raise KeyError(f"record {record.get('name', '?')!r} has no validation accuracy: it cannot be chosen on "
                       "validation accuracy")
    return max(accs)


def validation_score(record: Record, criterion: Criterion) -> tuple[float, ...]:
    """A run's score under ``criterion``; lower is better (so ``min`` picks the best)."""
    _check(criterion)
    if criterion == "valid_loss":
        return (_min_valid_loss(record),)
    return (-max_valid_acc(record), _min_valid_loss(record))


def best_record(records: Iterable[Record], criterion: Criterion) -> Record:
    """The record that did best on validation under ``criterion`` (the first of equals)."""
    records = list(records)
    if not records:
        raise ValueError("no records to choose from")
    return min(records, key=lambda r: validation_score(r, criterion))


def group_by(records: Iterable[Record], setting: Callable[[Record], Hashable]) -> dict[Hashable, list[Record]]:
    """The records by the value of ``setting`` (e.g. a config's learning rate), in first-seen order."""
    out: dict[Hashable, list[Record]] = {}
    for r in records:
        out.setdefault(setting(r), []).append(r)
    return out


def _mean_score(records: list[Record], criterion: Criterion) -> tuple[float, ...]:
    scores = [validation_score(r, criterion) for r in records]
    return tuple(sum(s[i] for s in scores) / len(scores) for i in range(len(scores[0])))


def choose(records: Iterable[Record], setting: Callable[[Record], Hashable], criterion: Criterion) -> Hashable:
    """The value of ``setting`` whose records did best on validation under ``criterion``.

    ``setting`` reads the swept value from a record (``lambda r: r["config"]["lr"]``); the records
    of one value (several seeds) count by the mean of their scores.
    """
    _check(criterion)
    groups = group_by(records, setting)
    if not groups:
        raise ValueError("no records to choose a setting from")
    return min(groups, key=lambda value: _mean_score(groups[value], criterion))
