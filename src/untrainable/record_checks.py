"""Checks on a stored record before anyone uses its numbers.

A stored record is served only if it is the record asked for: its ``key``, ``experiment``, ``seed``
and ``config`` match the request, and its metrics are complete (the chapter's required names) and
finite. Anything else is an error naming the file and what differs: a hand-edited or truncated
record must never become a number in the book.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from untrainable.record_keys import config_dict, key_payload, run_key

__all__ = ["REQUIRED_KEYS", "LAST_EPOCH_METRICS", "CorruptRecordError", "RecordMismatchError", "load_record",
           "non_finite_paths", "config_differences"]

REQUIRED_KEYS = ("experiment", "profile", "seed", "config", "metrics", "history",
                 "git_commit", "device", "versions", "wall_time_s")

#: Final metrics that are the last epoch of the record's history, whenever that epoch has them.
LAST_EPOCH_METRICS: tuple[str, ...] = ("train_loss", "train_acc", "test_loss", "test_acc")


class CorruptRecordError(ValueError):
    """A stored record cannot be used as it is: unreadable, incomplete, or with non-finite metrics."""


class RecordMismatchError(ValueError):
    """A stored record is not the run asked for (its key, experiment, seed or config differ)."""


def _json_form(value: Any) -> Any:
    """``value`` as it reads back from a record: tuples become lists, other objects strings."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def config_differences(stored: dict[str, Any], config: Any, where: str = "config") -> list[str]:
    """Where a stored config (as read from a record) differs from ``config``, one line per field; an
    added field at its default (:func:`added_field`) may be absent from a record stored before it existed."""
    return _config_differences(_json_form(stored), _json_form(config_dict(config)), _json_form(key_payload(config)),
                               where)


def _config_differences(stored: Any, expected: Any, in_key: Any, where: str = "config") -> list[str]:
    """Where a stored config differs from the requested one (both in JSON form), one line per field.

    ``in_key`` is the requested config's key payload: a field it lacks is an added field at its
    default (:func:`added_field`), which a record stored before the field existed may lack too.
    """
    if isinstance(stored, dict) and isinstance(expected, dict):
        in_key = in_key if isinstance(in_key, dict) else {}
        out = []
        for name in sorted(set(stored) | set(expected)):
            if name not in stored:
                if name in in_key:
                    out.append(f"{where}.{name}: missing, requested {expected[name]!r}")
            elif name not in expected:
                out.append(f"{where}.{name}: stored {stored[name]!r}, not a field of the requested config")
            else:
                out += _config_differences(stored[name], expected[name], in_key.get(name), f"{where}.{name}")
        return out
    return [] if stored == expected else [f"{where}: stored {stored!r}, requested {expected!r}"]


def non_finite_paths(value: Any, where: str) -> list[str]:
    """The paths of NaN or infinite numbers inside ``value`` (nested dicts and lists)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_paths(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_finite_paths(v, f"{where}[{i}]")]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{where} = {value}"]
    return []


def _recovery(path: Path) -> str:
    return (f"the store never serves a record it cannot vouch for: restore {path.name} from version control "
            "(git checkout), or delete it and rerun (a full record needs --train-missing)")


def load_record(path: Path, *, experiment: str | None = None, config: Any = None, seed: int | None = None,
                required_metrics: Sequence[str] = ()) -> dict[str, Any]:
    """Read one record and check it before anyone uses its numbers.

    Always: the file is valid JSON with every key of the contract, every metric is finite, and the
    final metrics of :data:`LAST_EPOCH_METRICS` equal the last epoch of the history (an edited
    accuracy is caught there).
    With ``required_metrics``: those metrics are present (a record without ``test_acc`` would make
    a table average fewer seeds than it says). With a request (``experiment``, ``config`` and
    ``seed``): the stored key, experiment, seed and config are the requested ones, so a hand-edited
    record (another learning rate, seed or accuracy) is refused instead of served.
    Raises :class:`CorruptRecordError` or :class:`RecordMismatchError`, naming the file.
    """
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CorruptRecordError(f"{path}: not valid JSON (truncated or edited? {err}); {_recovery(path)}") from err
    if not isinstance(record, dict):
        raise CorruptRecordError(f"{path}: not a valid record (a JSON {type(record).__name__}); {_recovery(path)}")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise CorruptRecordError(f"{path}: not a valid record, missing keys {missing}; {_recovery(path)}")
    metrics = record["metrics"]
    if not isinstance(metrics, dict):
        raise CorruptRecordError(f"{path}: metrics must be a JSON object; {_recovery(path)}")
    problems = _content_problems(record, required_metrics)
    differences = _request_differences(record, experiment, config, seed) if experiment is not None else []
    if problems or differences:  # every problem at once: a user should not fix them one rerun at a time
        kind = RecordMismatchError if differences else CorruptRecordError
        what = "not the record of the requested run" if differences else "not a usable record"
        raise kind(f"{path}: {what} ({'; '.join(differences + problems)}); {_recovery(path)}")
    return record


def _content_problems(record: dict[str, Any], required_metrics: Sequence[str]) -> list[str]:
    """What is wrong with a record's numbers: non-finite or absent metrics, metrics that disagree
    with the last epoch of the history."""
    metrics = record["metrics"]
    out = [f"non-finite metrics {', '.join(bad)}" for bad in [non_finite_paths(metrics, "metrics")] if bad]
    absent = [m for m in required_metrics if m not in metrics]
    if absent:
        out.append(f"lacks the required metrics {absent}")
    last = record["history"][-1] if record["history"] and isinstance(record["history"][-1], dict) else {}
    out += [f"metrics disagree with the history: metrics.{m} = {metrics[m]!r} but its last epoch says {last[m]!r}"
            for m in LAST_EPOCH_METRICS if m in metrics and m in last and metrics[m] != last[m]]
    return out


def _request_differences(record: dict[str, Any], experiment: str, config: Any, seed: int | None) -> list[str]:
    """What of a record's identity (key, experiment, seed, config) differs from the request."""
    if seed is None or config is None:
        raise TypeError("a record request needs the experiment, the config and the seed")
    out = []
    if record["experiment"] != experiment:
        out.append(f"experiment: stored {record['experiment']!r}, requested {experiment!r}")
    if record["seed"] != seed:
        out.append(f"seed: stored {record['seed']!r}, requested {seed!r}")
    key = run_key(experiment, config, seed)
    if record.get("key") != key:
        out.append(f"key: stored {record.get('key')!r}, requested {key!r}")
    return out + _config_differences(_json_form(record["config"]), _json_form(config_dict(config)),
                                     _json_form(key_payload(config)))
