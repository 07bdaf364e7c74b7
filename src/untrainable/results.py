"""The results store: one JSON record per (experiment, profile, config, seed).

A run is one call, config in and record out: :func:`run_or_load` returns the stored record when
an identical config was already run, and trains otherwise. So "read the book's results" and
"reproduce them from scratch" are the same code path, and plots are drawn from records only.

Record contract (other chapters and checks rely on it)::

    results/<profile>/<experiment>/<name>-seed<seed>-<key>.json
    {experiment, profile, seed, name, key, config, metrics, history, git_commit, device,
     versions, wall_time_s, created}

``key`` is a hash of (experiment, config, seed): change any setting and the run is new. Every
field of a config is part of the key, so adding a field would orphan every stored record; a field
added later is declared with :func:`added_field`, whose default leaves existing keys unchanged.

The ``full`` records are the book: :func:`run_or_load` never trains a missing ``full`` record
unless asked (``train_missing=True``, ``force=True`` or ``UNTRAINABLE_TRAIN_MISSING=1``), so a
changed config can never send ``reproduce --profile full`` into hours of silent training.

A stored record is served only if it is the record asked for: its ``key``, ``experiment``, ``seed``
and ``config`` match the request, and its metrics are complete (the chapter's required names) and
finite. Anything else is an error naming the file and what differs, and nothing is overwritten:
a hand-edited or truncated record must never become a number in the book.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import subprocess
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import untrainable
from untrainable.files import CorruptFileError, exclusive, load_torch, write_json_atomic
from untrainable.paths import cache_root, repo_root, results_root
from untrainable.profiles import check_profile
from untrainable.precision import resolve_precision
from untrainable.runtime import device_description, log, machine_description, resolve_device, set_threads

__all__ = ["REQUIRED_KEYS", "DEFAULT_REQUIRED_METRICS", "LAST_EPOCH_METRICS", "GUARDED_PROFILES",
           "TRAIN_MISSING_ENV", "TrainFn", "MissingRecordError", "CorruptRecordError", "RecordMismatchError",
           "WeightsMismatchWarning",
           "added_field", "config_dict", "key_payload", "run_key", "record_path", "git_commit", "versions",
           "find_record", "training_allowed", "will_train", "load_record", "run_or_load", "train_record",
           "elapsed_before", "run_with_weights", "history_frame", "metrics_frame", "summary_table"]

REQUIRED_KEYS = ("experiment", "profile", "seed", "config", "metrics", "history",
                 "git_commit", "device", "versions", "wall_time_s")

TrainFn = Callable[[Any, int, torch.device, Path], dict[str, Any]]


#: Profiles whose records are committed: a missing one is never trained without being asked.
GUARDED_PROFILES = ("full",)
TRAIN_MISSING_ENV = "UNTRAINABLE_TRAIN_MISSING"


#: Metrics every chapter record must carry unless the chapter names its own.
DEFAULT_REQUIRED_METRICS: tuple[str, ...] = ("test_acc",)
#: Final metrics that are the last epoch of the record's history, whenever that epoch has them.
LAST_EPOCH_METRICS: tuple[str, ...] = ("train_loss", "train_acc", "test_loss", "test_acc")


class MissingRecordError(LookupError):
    """A guarded (``full``) record is not stored and training it was not asked for."""


class CorruptRecordError(ValueError):
    """A stored record cannot be used as it is: unreadable, incomplete, or with non-finite metrics."""


class RecordMismatchError(ValueError):
    """A stored record is not the run asked for (its key, experiment, seed or config differ)."""


def added_field(default: Any) -> Any:
    """A config field added after records were stored: at ``default`` it is left out of the key.

    Use it for a new setting whose default reproduces the old behaviour (``precision="fp32"``);
    every other value makes a new run with a new key.
    """
    return dataclasses.field(default=default, metadata={"key_default": default})


def config_dict(config: Any) -> dict[str, Any]:
    """A plain, JSON-ready dict of a dataclass config (or a dict passed through)."""
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)


def _drop_key_defaults(config: Any, d: dict[str, Any]) -> dict[str, Any]:
    """Remove from ``d`` (``asdict(config)``) the added fields that sit at their key default."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if "key_default" in f.metadata and value == f.metadata["key_default"]:
            d.pop(f.name)
        elif dataclasses.is_dataclass(value) and isinstance(d.get(f.name), dict):
            _drop_key_defaults(value, d[f.name])
    return d


def key_payload(config: Any) -> dict[str, Any]:
    """What of a config enters the record key: every field, except added fields at their default."""
    d = config_dict(config)
    return _drop_key_defaults(config, d) if dataclasses.is_dataclass(config) else d


def run_key(experiment: str, config: Any, seed: int) -> str:
    """A short, stable hash of what defines a run: the experiment, its full config and the seed."""
    payload = json.dumps({"experiment": experiment, "config": key_payload(config), "seed": seed},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def record_path(profile: str, experiment: str, name: str, seed: int, key: str) -> Path:
    """Where the record of one run lives."""
    return results_root() / profile / experiment / f"{name}-seed{seed}-{key}.json"


def git_commit() -> str:
    """The commit the code ran at, with ``-dirty`` when tracked files had uncommitted changes."""
    try:
        root = repo_root()
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "src"],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour changes numbers."""
    import numpy
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": numpy.__version__,
            "untrainable": untrainable.__version__}


def find_record(path: Path) -> Path | None:
    """``path`` if stored, else the same run stored under another condition name, else None.

    Figures may share runs: the key (``-seed<seed>-<key>.json``) identifies a run, the name only labels it.
    """
    if path.is_file():
        return path
    suffix = path.name.rsplit("-seed", 1)[-1]
    return next(iter(sorted(path.parent.glob(f"*-seed{suffix}"))), None)


def training_allowed(profile: str, force: bool = False, train_missing: bool | None = None) -> bool:
    """Whether a missing record of ``profile`` may be trained (always, except guarded profiles)."""
    if profile not in GUARDED_PROFILES or force:
        return True
    if train_missing is None:
        train_missing = os.environ.get(TRAIN_MISSING_ENV) == "1"
    return train_missing


def _json_form(value: Any) -> Any:
    """``value`` as it reads back from a record: tuples become lists, other objects strings."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


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


def _non_finite(value: Any, where: str) -> list[str]:
    """The paths of NaN or infinite numbers inside ``value`` (nested dicts and lists)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _non_finite(v, f"{where}[{i}]")]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{where} = {value}"]
    return []


def _recovery(path: Path) -> str:
    return (f"the store never serves a record it cannot vouch for: restore {path.name} from version control "
            "(git checkout), or delete it and rerun (a full record needs --train-missing)")


def will_train(experiment: str, profile: str, name: str, config: Any, seed: int, force: bool = False,
               train_missing: bool | None = None) -> bool:
    """Whether :func:`run_or_load` would train this run: forced, or not stored and allowed to train.

    A chapter asks before resolving what only training needs (a guide's or teacher's weights), so a
    stored record never costs a retrain of its inputs.
    """
    if force:
        return True
    stored = find_record(record_path(profile, experiment, name, seed, run_key(experiment, config, seed)))
    return stored is None and training_allowed(profile, force, train_missing)


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
    bad = _non_finite(metrics, "metrics")
    if bad:
        raise CorruptRecordError(f"{path}: non-finite metrics {', '.join(bad)}; {_recovery(path)}")
    absent = [m for m in required_metrics if m not in metrics]
    if absent:
        raise CorruptRecordError(f"{path}: lacks the required metrics {absent}; {_recovery(path)}")
    last = record["history"][-1] if record["history"] and isinstance(record["history"][-1], dict) else {}
    edited = [f"metrics.{m} = {metrics[m]!r} but its last epoch says {last[m]!r}"
              for m in LAST_EPOCH_METRICS if m in metrics and m in last and metrics[m] != last[m]]
    if edited:
        raise CorruptRecordError(f"{path}: metrics disagree with the history ({'; '.join(edited)}); {_recovery(path)}")
    if experiment is not None:
        differences = _request_differences(record, experiment, config, seed)
        if differences:
            raise RecordMismatchError(f"{path}: not the record of the requested run ({'; '.join(differences)}); "
                                      f"{_recovery(path)}")
    return record


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


def run_or_load(
    experiment: str,
    profile: str,
    name: str,
    config: Any,
    seed: int,
    train_fn: TrainFn,
    *,
    device: str = "auto",
    force: bool = False,
    train_missing: bool | None = None,
    required_metrics: Sequence[str] = DEFAULT_REQUIRED_METRICS,
) -> dict[str, Any]:
    """Return the record for this run, training it first if no identical run is stored.

    ``train_fn(config, seed, device, checkpoint_path)`` must return ``{"metrics": ...,
    "history": ...}`` (plus any extra keys to store). The checkpoint lives under the cache and is
    removed once the record is written; ``force=True`` retrains from scratch. A missing ``full``
    record raises :class:`MissingRecordError` unless ``train_missing`` (or
    ``UNTRAINABLE_TRAIN_MISSING=1``) allows training it. A stored record that is not the requested
    run, or lacks one of ``required_metrics``, raises (see :func:`load_record`); it is never retrained
    over, except by ``force``.
    """
    check_profile(profile)
    key = run_key(experiment, config, seed)
    path = record_path(profile, experiment, name, seed, key)
    if not force:
        stored = find_record(path)
        if stored is not None:
            return {**load_record(stored, experiment=experiment, config=config, seed=seed,
                                  required_metrics=required_metrics), "name": name}
        if not training_allowed(profile, force, train_missing):
            raise MissingRecordError(
                f"no stored {profile} record for {experiment}/{name} seed {seed} (expected {path.name} in "
                f"{path.parent}); the committed {profile} records are the book, so nothing is trained "
                f"silently: pass --train-missing (or set {TRAIN_MISSING_ENV}=1) to train it, --force to retrain all"
            )
    record = train_record(experiment, profile, name, config, seed, train_fn, device=device, force=force)
    write_json_atomic(record, path)
    # exactly what a later call will load (tuples become lists, etc.), checked the same way
    return load_record(path, experiment=experiment, config=config, seed=seed, required_metrics=required_metrics)


def train_record(experiment: str, profile: str, name: str, config: Any, seed: int, train_fn: TrainFn, *,
                 device: str = "auto", force: bool = False) -> dict[str, Any]:
    """Train one run (resuming its checkpoint) and return its record, without storing it.

    ``wall_time_s`` covers every part of a resumed run: the ``elapsed_s`` the training loop keeps in
    its checkpoint (the parts before an interruption) plus this call's time.
    """
    key = run_key(experiment, config, seed)
    path = record_path(profile, experiment, name, seed, key)
    checkpoint = cache_root() / "checkpoints" / profile / experiment / f"{path.stem}.pt"
    if force and checkpoint.exists():
        checkpoint.unlink()
    set_threads()
    dev = resolve_device(device)
    before = elapsed_before(checkpoint)
    t0 = time.perf_counter()
    out = train_fn(config, seed, dev, checkpoint)
    record = {
        "experiment": experiment, "profile": profile, "seed": seed, "name": name, "key": key,
        "config": config_dict(config), **out,
        "git_commit": git_commit(), "device": device_description(dev), "machine": machine_description(dev),
        "precision": resolve_precision(getattr(config, "precision", "fp32"), dev),  # what "auto" became here
        "versions": versions(), "wall_time_s": before + time.perf_counter() - t0,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    checkpoint.unlink(missing_ok=True)
    return record


def elapsed_before(checkpoint: Path) -> float:
    """Seconds a resumed run already trained: the checkpoint's ``elapsed_s``, 0 without one."""
    if not checkpoint.is_file():
        return 0.0
    try:
        state = load_torch(checkpoint)
    except CorruptFileError as err:
        log(f"{err} (the training loop decides what to do with it; its time is not counted)")
        return 0.0
    elapsed = state.get("elapsed_s", 0.0) if isinstance(state, dict) else 0.0
    return float(elapsed) if isinstance(elapsed, (int, float)) and math.isfinite(elapsed) else 0.0


class WeightsMismatchWarning(UserWarning):
    """Weights retrained into the cache do not reproduce their stored record's numbers."""


def run_with_weights(experiment: str, profile: str, name: str, config: Any, seed: int, weights: Path,
                     train_fn: TrainFn, *, device: str = "auto", force: bool = False,
                     train_missing: bool | None = None, metric: str = "test_acc",
                     tolerance: float = 0.02,
                     required_metrics: Sequence[str] = DEFAULT_REQUIRED_METRICS) -> dict[str, Any]:
    """The record of a run whose weights are used later (a guide, a teacher), with its weights cached.

    ``train_fn`` must save the weights to ``weights`` (through :func:`untrainable.files.save_torch_atomic`)
    besides returning metrics and history. Weights are never committed, so in a fresh clone a stored
    record can lack them: they are then retrained into the cache only. The stored record is never
    replaced (only ``force`` does that); if the retrained ``metric`` differs from the stored one by
    more than ``tolerance`` (another CPU rounds differently), a :class:`WeightsMismatchWarning` says so.
    A lock on the weight file makes parallel processes train a shared guide once.
    """
    path = record_path(profile, experiment, name, seed, run_key(experiment, config, seed))
    with exclusive(weights):
        stored = None if force else find_record(path)
        if stored is None or force:
            return run_or_load(experiment, profile, name, config, seed, train_fn, device=device, force=force,
                               train_missing=train_missing, required_metrics=required_metrics)
        record = {**load_record(stored, experiment=experiment, config=config, seed=seed,
                                required_metrics=(*required_metrics, metric)), "name": name}
        if weights.is_file():
            return record
        log(f"{experiment}/{name} seed {seed}: record stored, weights missing: retraining into {weights.parent}")
        fresh = train_record(experiment, profile, name, config, seed, train_fn, device=device)
        old, new = record["metrics"][metric], fresh["metrics"][metric]
        if abs(new - old) > tolerance:
            warnings.warn(
                f"{experiment}/{name} seed {seed}: the retrained weights reach {metric} = {new:.4f}, the stored "
                f"record {old:.4f} (more than {tolerance} apart; another machine rounds differently). The record "
                "is kept; runs that use these weights differ from the committed ones accordingly.",
                WeightsMismatchWarning, stacklevel=2)
        return {**record, "retrained_weights_metrics": fresh["metrics"]}


def history_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Long-form per-epoch history of many records, with ``name``, ``seed`` and ``profile`` columns."""
    rows = [{"name": r["name"], "seed": r["seed"], "profile": r["profile"], **h}
            for r in records for h in r["history"]]
    return pd.DataFrame(rows)


def metrics_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per record: name, seed, profile and the final metrics."""
    return pd.DataFrame([{"name": r["name"], "seed": r["seed"], "profile": r["profile"], **r["metrics"]}
                         for r in records])


def summary_table(records: list[dict[str, Any]], metrics: dict[str, str], labels: dict[str, str] | None = None,
                  scale: float = 100.0, digits: int = 1) -> pd.DataFrame:
    """A display table: one row per condition, one 'mean ± std' column per metric (scaled, e.g. to %)."""
    df = metrics_frame(records)
    rows = []
    for name, g in df.groupby("name", sort=False):
        row = {"condition": (labels or {}).get(name, name), "seeds": g["seed"].nunique()}
        for key, title in metrics.items():
            v = g[key] * scale
            row[title] = f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.{digits}f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("condition")
