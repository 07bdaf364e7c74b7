"""The results store: one JSON record per (experiment, profile, config, seed).

A run is one call, config in and record out: :func:`run_or_load` returns the stored record when
an identical config was already run, and trains otherwise. So "read the book's results" and
"reproduce them from scratch" are the same code path, and plots are drawn from records only.

Record contract (other chapters and checks rely on it)::

    results/<profile>/<experiment>/<name>-seed<seed>-<key>.json
    {experiment, profile, seed, name, key, config, metrics, history, precision, git_commit, device,
     machine, versions, wall_time_s, created, digest}

``world_size`` (only in a record trained by several processes, torchrun: :mod:`untrainable.distributed`) is
how many trained it; a record without it was trained by one. It is not part of the config, so it moves no key.
Only rank 0 of such a run writes its record and checkpoint; every process reads the record back.

``precision`` is what the run trained in (``"fp32"`` or ``"bf16"``), as its training loop resolved
it (:func:`untrainable.precision.training_precision`); a run that trained nothing itself has none.

``key`` is a hash of (experiment, config, seed): change any setting and the run is new (the key
and how a field is added without changing it: :mod:`untrainable.record_keys`).

The ``full`` records are the book: :func:`run_or_load` never trains a missing ``full`` record
unless asked (``train_missing=True``, ``force=True`` or ``UNTRAINABLE_TRAIN_MISSING=1``), so a
changed config can never send ``reproduce --profile full`` into hours of silent training.

A stored record is served only if it is the record asked for and sealed by the store
(:mod:`untrainable.record_checks`): anything else is an error naming the file and what differs,
and nothing is overwritten.

Nothing trained is lost: a run's checkpoint is removed only once its record is written and read
back. A record that cannot be written (a full disk, a read-only folder, a NaN anywhere in it) is a
:class:`RecordWriteError` naming the run and the cause, and the checkpoint stays, so a rerun resumes.
A checkpoint that cannot be read (a truncated file) is moved aside as ``*.corrupt`` and the run
starts over, with a :class:`CorruptCheckpointWarning`.

The key helpers and the record checks live in their own modules; every name of both is importable
from here too, so ``results`` stays the one door to the store.
"""

from __future__ import annotations

import contextlib
import functools
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
from untrainable import distributed as D
from untrainable.files import CorruptFileError, exclusive, load_torch, write_json_atomic
from untrainable.paths import cache_root, repo_root, results_root
from untrainable.profiles import check_profile
from untrainable.precision import recorded_precision
from untrainable.record_checks import (DIGEST_KEY, LAST_EPOCH_METRICS, REQUIRED_KEYS, RETRAIN, SEALED_PROFILES,
                                       CorruptRecordError, NewerRecordError, RecordMismatchError, config_differences,
                                       load_record, non_finite_paths, record_digest, seal)
from untrainable.record_keys import added_field, config_dict, key_payload, run_key
from untrainable.runtime import device_description, log, machine_description, resolve_device, set_threads

__all__ = ["REQUIRED_KEYS", "DEFAULT_REQUIRED_METRICS", "LAST_EPOCH_METRICS", "GUARDED_PROFILES", "SEALED_PROFILES",
           "DIGEST_KEY", "RETRAIN", "TRAIN_MISSING_ENV", "TrainFn", "MissingRecordError", "CorruptRecordError",
           "RecordMismatchError", "NewerRecordError", "RecordWriteError", "NonFiniteRecordError",
           "WeightsMismatchWarning", "CorruptCheckpointWarning", "run_or_load_resolved", "added_field", "config_dict",
           "key_payload", "run_key", "record_path", "checkpoint_path", "git_commit", "versions", "find_record",
           "training_allowed", "check_training_allowed", "will_train", "load_record", "config_differences",
           "non_finite_paths", "record_digest", "seal", "write_record", "verify_records", "run_or_load",
           "train_record", "trained_precision", "elapsed_before", "run_with_weights", "history_frame", "metrics_frame",
           "summary_table"]

TrainFn = Callable[[Any, int, torch.device, Path], dict[str, Any]]


#: Profiles whose records are committed (and sealed): a missing one is never trained without being asked.
GUARDED_PROFILES = SEALED_PROFILES
TRAIN_MISSING_ENV = "UNTRAINABLE_TRAIN_MISSING"


#: Metrics every chapter record must carry unless the chapter names its own.
DEFAULT_REQUIRED_METRICS: tuple[str, ...] = ("test_acc",)


class MissingRecordError(LookupError):
    """A guarded (``full``) record is not stored and training it was not asked for."""


class RecordWriteError(RuntimeError):
    """A trained run's record could not be written and read back; its checkpoint is kept for a rerun."""


class NonFiniteRecordError(RecordWriteError, ValueError):
    """A trained run's record holds a NaN or infinity (named by its JSON path), so it was not written."""


class CorruptCheckpointWarning(UserWarning):
    """A run's checkpoint could not be read: it was moved aside and the run starts over."""


def record_path(profile: str, experiment: str, name: str, seed: int, key: str) -> Path:
    """Where the record of one run lives."""
    return results_root() / profile / experiment / f"{name}-seed{seed}-{key}.json"


def checkpoint_path(profile: str, experiment: str, record: Path) -> Path:
    """Where the run of ``record`` keeps its checkpoint while it trains (the cache, never committed)."""
    return cache_root() / "checkpoints" / profile / experiment / f"{record.stem}.pt"


def write_record(record: dict[str, Any], path: Path) -> dict[str, Any]:
    """Seal ``record`` (:func:`untrainable.record_checks.seal`) and write it atomically; return what was written.

    Every writer of the store goes through here (runs and benchmarks alike), so every record
    carries the digest :func:`load_record` checks. A NaN or infinity anywhere is a ``ValueError``
    naming its JSON path, and nothing is written.
    """
    bad = non_finite_paths(record, "$")
    if bad:  # a made-up number must never reach the store (nor a non-standard NaN literal the JSON)
        raise NonFiniteRecordError(f"non-finite {', '.join(bad)} (lower the learning rate or check the inputs)")
    sealed = seal(record)
    write_json_atomic(sealed, path)
    return sealed


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit the code ran at, with ``-dirty`` when tracked files had uncommitted changes.

    Read once per process, when this module is imported: a run that trains for an hour ran the code
    it started with, whatever was committed while it trained, and its record must name that code.
    """
    try:
        root = repo_root()
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "src"],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


git_commit()  # the code this process imported (see the docstring)


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


def check_training_allowed(profile: str, what: str, force: bool = False, train_missing: bool | None = None) -> None:
    """Raise :class:`MissingRecordError` unless a missing record of ``profile`` (``what``) may be made.

    For writers outside :func:`run_or_load` (the benchmarks), so that no ``full`` record is ever
    measured or trained without being asked.
    """
    if not training_allowed(profile, force, train_missing):
        raise MissingRecordError(
            f"no stored {profile} record for {what}; the committed {profile} records are the book, so nothing is "
            f"measured silently: pass --train-missing (or set {TRAIN_MISSING_ENV}=1), or --force to remeasure")


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
    removed once the record is written and read back; ``force=True`` retrains from scratch. A missing ``full``
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
    return _store(record, path, f"{experiment}/{name} seed {seed}", checkpoint_path(profile, experiment, path),
                  lambda: load_record(path, experiment=experiment, config=config, seed=seed,
                                      required_metrics=required_metrics))


def _store(record: dict[str, Any], path: Path, run: str, checkpoint: Path,
           read_back: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Write ``record``, read it back with ``read_back`` (exactly what a later call will load, checked the
    same way), and only then remove the run's ``checkpoint``.

    Any failure names the run and the cause (:class:`NonFiniteRecordError` for a NaN, else
    :class:`RecordWriteError`); a record written but not read back is removed again, and the checkpoint
    stays, so a rerun resumes from it instead of training again.
    """
    kept = (f"its checkpoint {checkpoint} is kept, so a rerun resumes there" if checkpoint.is_file()
            else "it left no checkpoint")
    written = False
    try:
        D.main_only(lambda: write_record(record, path), f"write the record {path}")  # rank 0 writes, all wait
        written = True
        stored = read_back()
    except (OSError, ValueError) as err:
        if written and D.is_main():
            path.unlink(missing_ok=True)
        kind = NonFiniteRecordError if isinstance(err, NonFiniteRecordError) else RecordWriteError
        cause = f"{type(err).__name__}: {err}" if isinstance(err, OSError) else str(err)
        raise kind(f"{run}: trained, but its record was not stored ({cause}); {kept}: fix the cause, then "
                   "rerun") from err
    if D.is_main():
        checkpoint.unlink(missing_ok=True)
    return stored


def run_or_load_resolved(experiment: str, profile: str, name: str, config: Any, seed: int, train_fn: Callable[..., Any],
                         resolve: Callable[[], dict[str, Any]], *, device: str = "auto", force: bool = False,
                         train_missing: bool | None = None,
                         required_metrics: Sequence[str] = DEFAULT_REQUIRED_METRICS) -> dict[str, Any]:
    """:func:`run_or_load` for a run whose training needs inputs (its guide, its teacher) that cost time
    to build: ``resolve()`` returns them as keyword arguments of ``train_fn``, and is called only when
    the run will train, so loading a stored record never builds (or trains) a guide."""
    path = record_path(profile, experiment, name, seed, run_key(experiment, config, seed))
    needed = force or (find_record(path) is None and training_allowed(profile, force, train_missing))
    train = functools.partial(train_fn, **resolve()) if needed else train_fn
    return run_or_load(experiment, profile, name, config, seed, train, device=device, force=force,
                       train_missing=train_missing, required_metrics=required_metrics)


def train_record(experiment: str, profile: str, name: str, config: Any, seed: int, train_fn: TrainFn, *,
                 device: str = "auto", force: bool = False) -> dict[str, Any]:
    """Train one run (resuming its checkpoint) and return its record, without storing it.

    The checkpoint is left in place: the caller removes it once the record is safe (:func:`_store`).

    ``wall_time_s`` covers every part of a resumed run: the ``elapsed_s`` the training loop keeps in
    its checkpoint (the parts before an interruption) plus this call's time.
    """
    key = run_key(experiment, config, seed)
    checkpoint = checkpoint_path(profile, experiment, record_path(profile, experiment, name, seed, key))
    if force:
        checkpoint.unlink(missing_ok=True)  # several processes may all remove it
    set_threads()
    # torchrun: join the other processes (each on its own GPU) before "cuda" names one
    processes = D.setup(gpu=resolve_device(device).type == "cuda")
    dev = resolve_device(device)
    before = elapsed_before(checkpoint)
    t0 = time.perf_counter()
    with recorded_precision() as resolved:
        out = train_fn(config, seed, dev, checkpoint)
    record = {
        "experiment": experiment, "profile": profile, "seed": seed, "name": name, "key": key,
        "config": config_dict(config), **out,
        **trained_precision(f"{experiment}/{name} seed {seed}", config, resolved),
        **provenance(dev, t0, elapsed_before=before), **({"world_size": processes} if processes > 1 else {}),
    }
    return record


def trained_precision(run: str, config: Any, resolved: Sequence[str]) -> dict[str, str]:
    """``{"precision": ...}``: what the training loop of ``run`` resolved (``resolved``, noted by
    :func:`untrainable.precision.training_precision`), so a record says what ran, not what its config asked.

    A run that trained nothing (an analysis of networks trained by their own runs) has no precision to
    state: ``{}``. But one whose config sets a ``precision`` and resolved none, or that trained in two
    precisions, is an error: its record would misstate what ran.
    """
    ran = sorted(set(resolved))
    if len(ran) > 1:
        raise RuntimeError(f"{run} trained in several precisions ({', '.join(ran)}): a record states one")
    if not ran and hasattr(config, "precision"):
        raise RuntimeError(f"{run}: its config sets precision {config.precision!r} but its training resolved none; "
                           "train through untrainable.train.fit or call untrainable.precision.training_precision")
    return {"precision": ran[0]} if ran else {}


def provenance(dev: torch.device, started: float, commit: str | None = None,
               elapsed_before: float = 0.0) -> dict[str, Any]:
    """What made a record, for every writer of the store (runs and benchmarks alike): the commit
    (``commit`` when it was read before the work began), the device and machine, the library
    versions, the wall time since ``started`` (a ``time.perf_counter()``) plus ``elapsed_before``,
    and when it was written."""
    return {"git_commit": commit or git_commit(), "device": device_description(dev),
            "machine": machine_description(dev), "versions": versions(),
            "wall_time_s": elapsed_before + time.perf_counter() - started,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def elapsed_before(checkpoint: Path) -> float:
    """Seconds a resumed run already trained: the checkpoint's ``elapsed_s``, 0 without one.

    A checkpoint that cannot be read (truncated by a crash or a full disk) would stop every rerun: it
    is moved aside as ``<name>.corrupt`` (kept for a look, never read again) and the run starts over,
    with a :class:`CorruptCheckpointWarning`.
    """
    if not checkpoint.is_file():
        return 0.0
    try:
        state = load_torch(checkpoint)
    except CorruptFileError as err:
        aside = checkpoint.with_name(checkpoint.name + ".corrupt")
        os.replace(checkpoint, aside)
        warnings.warn(f"{err.args[0].split(';')[0]}; moved aside to {aside.name}, the run starts over",
                      CorruptCheckpointWarning, stacklevel=3)
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
    A lock on the weight file makes parallel processes train a shared guide once (the processes of one
    torchrun run train it together: rank 0 alone takes the lock).
    """
    path = record_path(profile, experiment, name, seed, run_key(experiment, config, seed))
    with exclusive(weights) if D.is_main() else contextlib.nullcontext():
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
        checkpoint_path(profile, experiment, path).unlink(missing_ok=True)  # the weights are saved: nothing to resume
        old, new = record["metrics"][metric], fresh["metrics"][metric]
        if abs(new - old) > tolerance:
            warnings.warn(
                f"{experiment}/{name} seed {seed}: the retrained weights reach {metric} = {new:.4f}, the stored "
                f"record {old:.4f} (more than {tolerance} apart; another machine rounds differently). The record "
                "is kept; runs that use these weights differ from the committed ones accordingly.",
                WeightsMismatchWarning, stacklevel=2)
        return {**record, "retrained_weights_metrics": fresh["metrics"]}


def verify_records(profile: str | None = None) -> tuple[int, list[str]]:
    """Check every record of the store (of ``profile``, else of every profile) as :func:`load_record` does.

    Returns how many files were checked and one line per file the store would refuse (naming it and
    why), so ``python -m untrainable records verify`` can list them all at once.
    """
    root = results_root() / check_profile(profile) if profile else results_root()
    paths = sorted(root.rglob("*.json")) if root.is_dir() else []
    problems = []
    for path in paths:
        try:
            load_record(path)
        except (CorruptRecordError, RecordMismatchError) as err:
            problems.append(str(err))
    return len(paths), problems


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
