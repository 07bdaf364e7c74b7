"""Checks on a stored record before anyone uses its numbers.

A stored record is served only if it is the record asked for: its ``key``, ``experiment``, ``seed``
and ``config`` match the request, and its metrics are complete (the chapter's required names) and
finite. Anything else is an error naming the file and what differs: a hand-edited or truncated
record must never become a number in the book.

Records are sealed: the store writes each one with a ``digest``, the sha256 of its canonical JSON
(:func:`record_digest`: sorted keys, the digest itself left out), and refuses one whose content no
longer matches it, so an edit that keeps a record consistent (an accuracy changed in the metrics
and in the last epoch alike) is caught too. A record without a digest was written before records
were sealed: every committed one is sealed, so in a guarded profile (:data:`SEALED_PROFILES`) it is
refused; elsewhere (a reader's old ``quick`` runs) it is served as a legacy record.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from untrainable.record_keys import config_dict, key_payload, run_key

__all__ = ["REQUIRED_KEYS", "LAST_EPOCH_METRICS", "DIGEST_KEY", "SEALED_PROFILES", "CorruptRecordError",
           "RecordMismatchError", "NewerRecordError", "load_record", "non_finite_paths", "config_differences",
           "record_digest", "seal", "RETRAIN"]

REQUIRED_KEYS = ("experiment", "profile", "seed", "config", "metrics", "history",
                 "git_commit", "device", "versions", "wall_time_s")

#: Final metrics that are the last epoch of the record's history, whenever that epoch has them.
LAST_EPOCH_METRICS: tuple[str, ...] = ("train_loss", "train_acc", "test_loss", "test_acc")


class CorruptRecordError(ValueError):
    """A stored record cannot be used as it is: unreadable, incomplete, or with non-finite metrics."""


class RecordMismatchError(ValueError):
    """A stored record is not the run asked for (its key, experiment, seed or config differ)."""


class NewerRecordError(RecordMismatchError):
    """A stored record was made by a newer version of untrainable: its config has fields this one lacks."""


#: Where a record's seal lives.
DIGEST_KEY = "digest"
#: Profiles whose records are committed and all sealed: an unsealed one there is refused.
SEALED_PROFILES: tuple[str, ...] = ("full",)
#: The command that retrains a record the store refuses, once the bad file is gone.
RETRAIN = "python -m untrainable reproduce --train-missing"


def _canonical(record: dict[str, Any]) -> str:
    """The text a record's digest is taken of: strict JSON (no NaN), sorted keys, no spaces, no digest."""
    body = {k: v for k, v in record.items() if k != DIGEST_KEY}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


def record_digest(record: dict[str, Any]) -> str:
    """``"sha256:<hex>"`` of a record's canonical JSON (its ``digest`` field left out)."""
    return "sha256:" + hashlib.sha256(_canonical(record).encode()).hexdigest()


def seal(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as it will read back from its file (tuples become lists, objects strings), with its digest.

    Raises ``ValueError`` for a NaN or infinity anywhere: strict JSON has no literal for them.
    """
    form = json.loads(_canonical(record))
    return {**form, DIGEST_KEY: record_digest(form)}


def _json_form(value: Any) -> Any:
    """``value`` as it reads back from a record: tuples become lists, other objects strings."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def config_differences(stored: dict[str, Any], config: Any, where: str = "config") -> list[str]:
    """Where a stored config (as read from a record) differs from ``config``, one line per field; an
    added field at its default (:func:`added_field`) may be absent from a record stored before it existed."""
    return _config_differences(_json_form(stored), _json_form(config_dict(config)), _json_form(key_payload(config)),
                               where)


#: How a stored config field the requested config lacks ends its line (a newer version's field).
_NOT_A_FIELD = ", not a field of the requested config"


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
                out.append(f"{where}.{name}: stored {stored[name]!r}{_NOT_A_FIELD}")
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
            f"(git checkout -- {path}), or delete it and rerun; `{RETRAIN}` retrains a missing full record")


def load_record(path: Path, *, experiment: str | None = None, config: Any = None, seed: int | None = None,
                required_metrics: Sequence[str] = ()) -> dict[str, Any]:
    """Read one record and check it before anyone uses its numbers.

    Always: the file is valid JSON with every key of the contract, its content matches its digest
    (unsealed: see the module's docstring), every metric is finite, and the final metrics of
    :data:`LAST_EPOCH_METRICS` equal the last epoch of the history.
    With ``required_metrics``: those metrics are present (a record without ``test_acc`` would make
    a table average fewer seeds than it says). With a request (``experiment``, ``config`` and
    ``seed``): the stored key, experiment, seed and config are the requested ones, so a hand-edited
    record (another learning rate, seed or accuracy) is refused instead of served.
    Raises :class:`CorruptRecordError`, :class:`RecordMismatchError` or (a config with fields this
    version does not know, and nothing else wrong) :class:`NewerRecordError`, naming the file.
    """
    record = _read(path)
    problems = _seal_problems(record, path) + _content_problems(record, required_metrics)
    differences = _request_differences(record, experiment, config, seed) if experiment is not None else []
    unknown = [d for d in differences if d.endswith(_NOT_A_FIELD)]
    if unknown and unknown == differences and not problems:
        raise NewerRecordError(
            f"{path}: made by a newer version of untrainable (untrainable "
            f"{record['versions'].get('untrainable', '?')}; its config has {'; '.join(unknown)}): it is left as it "
            "is; update untrainable (git pull) to use it, or ask for another run")
    if problems or differences:  # every problem at once: a user should not fix them one rerun at a time
        kind = RecordMismatchError if differences else CorruptRecordError
        what = "not the record of the requested run" if differences else "not a usable record"
        raise kind(f"{path}: {what} ({'; '.join(differences + problems)}); {_recovery(path)}")
    return record


def _read(path: Path) -> dict[str, Any]:
    """The JSON object of ``path`` with every key of the contract, or :class:`CorruptRecordError`."""
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CorruptRecordError(f"{path}: not valid JSON (truncated or edited? {err}); {_recovery(path)}") from err
    if not isinstance(record, dict):
        raise CorruptRecordError(f"{path}: not a valid record (a JSON {type(record).__name__}); {_recovery(path)}")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise CorruptRecordError(f"{path}: not a valid record, missing keys {missing}; {_recovery(path)}")
    if not isinstance(record["metrics"], dict):
        raise CorruptRecordError(f"{path}: metrics must be a JSON object; {_recovery(path)}")
    return record


def _seal_problems(record: dict[str, Any], path: Path) -> list[str]:
    """Whether a record's content is what the store wrote: its digest matches, or, unsealed, it is neither
    a sealed profile's record nor stored in one's folder (``<results>/<profile>/<experiment>/``)."""
    if DIGEST_KEY not in record:
        profile = next((p for p in (record.get("profile"), path.parent.parent.name) if p in SEALED_PROFILES), None)
        if profile is not None:
            return [f"unsealed (no {DIGEST_KEY}): every {profile} record is written with one, so this one was made "
                    "or edited by hand"]
        return []
    try:
        digest = record_digest(record)
    except ValueError:  # a NaN literal: reported by the metric checks when it is a metric
        return ["its content is not strict JSON (NaN or infinity), so it cannot match its digest"]
    if record[DIGEST_KEY] != digest:
        return [f"its content does not match its {DIGEST_KEY}: it was edited after the store wrote it"]
    return []


def _content_problems(record: dict[str, Any], required_metrics: Sequence[str]) -> list[str]:
    """What is wrong with a record's numbers: non-finite or absent metrics, metrics that disagree
    with the last epoch of the history."""
    metrics = record["metrics"]
    out = [f"non-finite metrics {', '.join(bad)}" for bad in [non_finite_paths(metrics, "metrics")] if bad]
    absent = [m for m in required_metrics if m not in metrics]
    if absent:
        out.append(f"lacks the required metrics {absent} (its chapter reads them)")
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
