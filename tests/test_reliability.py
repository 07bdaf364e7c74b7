"""Reliability probes of the results store, the chapter weights and the shared caches.

Each test is one way a hostile or unlucky user got a wrong number or a crash out of the store
before it was hardened: a hand-edited, incomplete or truncated record, a missing or half-written
weight file, two processes building one cached file, a crafted pickle in the cache folder, and
records that could not tell two machines (or a resumed run's parts) apart.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from untrainable import mimic, results, runtime
from untrainable.files import CorruptFileError, save_torch_atomic


@dataclass(frozen=True)
class Toy:
    width: int
    lr: float = 1e-3


def _train(calls: list | None = None):
    def train(config, seed, device, checkpoint):
        if calls is not None:
            calls.append(seed)
        return {"metrics": {"test_acc": 0.528, "train_acc": 0.9},
                "history": [{"epoch": 1, "test_acc": 0.528, "train_acc": 0.9}]}
    return train


def _stored(seed: int = 0) -> Path:
    record = results.run_or_load("toy", "quick", "fcn", Toy(8), seed, _train())
    return results.record_path("quick", "toy", "fcn", seed, record["key"])


def _edit(path: Path, change) -> bytes:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))
    return path.read_bytes()


@pytest.mark.parametrize("what, change, message", [
    ("learning rate", lambda r: r["config"].update(lr=0.5), r"config\.lr: stored 0\.5, requested 0\.001"),
    ("seed", lambda r: r.update(seed=7), r"seed: stored 7, requested 0"),
    ("accuracy", lambda r: r["metrics"].update(test_acc=0.99), r"metrics\.test_acc = 0\.99 but its last epoch"),
    ("experiment", lambda r: r.update(experiment="other"), r"experiment: stored 'other'"),
    ("non-finite metric", lambda r: r["metrics"].update(train_acc=float("nan")), r"non-finite metrics"),
])
def test_a_hand_edited_record_is_refused_naming_the_file(what, change, message):
    path = _stored()
    edited = _edit(path, change)
    calls: list = []
    with pytest.raises((results.RecordMismatchError, results.CorruptRecordError), match=message) as err:
        results.run_or_load("toy", "quick", "fcn", Toy(8), 0, _train(calls))
    assert path.name in str(err.value) and calls == []
    assert path.read_bytes() == edited  # refused, not retrained over


def test_a_record_without_its_required_metric_is_refused():
    path = _stored()
    _edit(path, lambda r: r["metrics"].pop("test_acc"))
    with pytest.raises(results.CorruptRecordError, match=r"lacks the required metrics \['test_acc'\]") as err:
        results.run_or_load("toy", "quick", "fcn", Toy(8), 0, _train())
    assert path.name in str(err.value)
    from untrainable.experiments import inductive_bias as ib

    assert "test_acc" in ib.REQUIRED_METRICS and "generalization_gap" in ib.REQUIRED_METRICS


def test_a_truncated_record_names_the_file():
    path = _stored()
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(results.CorruptRecordError, match="not valid JSON") as err:
        results.run_or_load("toy", "quick", "fcn", Toy(8), 0, _train())
    assert str(path) in str(err.value)


def test_records_carry_the_machine():
    record = json.loads(_stored().read_text())
    assert record["machine"]["cpu"] == runtime.cpu_model() != ""
    assert runtime.cpu_model() in record["device"] and record["machine"]["threads"] >= 1
    assert set(record["machine"]["cpu_flags"]) <= set(runtime.KERNEL_FLAGS)


def test_a_cpu_model_is_read_from_cpuinfo(tmp_path, monkeypatch):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: Example CPU 9000\nflags\t\t: fpu avx2 avx512f amx_tile\n\n"
                    "processor\t: 1\nmodel name\t: Example CPU 9000\n")
    monkeypatch.setattr(runtime, "CPUINFO", fake)
    runtime.cpu_model.cache_clear(), runtime.cpu_flags.cache_clear()
    try:
        assert runtime.cpu_model() == "Example CPU 9000"
        assert runtime.cpu_flags() == ("avx2", "avx512f", "amx_tile")
    finally:
        runtime.cpu_model.cache_clear(), runtime.cpu_flags.cache_clear()


def test_wall_time_counts_the_parts_before_a_resume():
    key = results.run_key("toy", Toy(8), 0)
    stem = results.record_path("quick", "toy", "fcn", 0, key).stem
    checkpoint = results.cache_root() / "checkpoints" / "quick" / "toy" / f"{stem}.pt"
    save_torch_atomic({"epoch": 3, "elapsed_s": 1234.5}, checkpoint)
    record = results.train_record("toy", "quick", "fcn", Toy(8), 0, _train())
    assert 1234.5 <= record["wall_time_s"] < 1234.5 + 60
    assert results.train_record("toy", "quick", "fcn", Toy(8), 0, _train())["wall_time_s"] < 60  # no checkpoint


def test_a_missing_weight_file_is_retrained_into_the_cache_and_the_records_stay(monkeypatch):
    from untrainable.experiments import representations as rep

    monkeypatch.setenv("UNTRAINABLE_TRAIN_MISSING", "1")
    rep.run("full", seeds=(0, 1), smoke=True)
    folder = results.results_root() / "full" / rep.EXPERIMENT
    nets = {p: p.read_bytes() for p in folder.glob("*.json") if not p.name.startswith(rep.ANALYSIS)}
    for analysis in folder.glob(f"{rep.ANALYSIS}-*.json"):
        analysis.unlink()  # an analysis to compute again, in a clone whose cache is empty
    weights = list((results.cache_root() / "weights" / rep.EXPERIMENT).glob("*.pt"))
    assert len(weights) == len(nets) == 4  # a CNN and an FCN per seed
    for w in weights:
        w.unlink()
    records = rep.run("full", seeds=(0, 1), smoke=True)
    assert all(w.is_file() for w in weights) and len(records) == 2
    assert {p: p.read_bytes() for p in nets} == nets  # byte-identical: the stored records were not replaced


def test_a_half_written_weight_file_names_itself():
    from untrainable.experiments import representations as rep

    records = rep.run("quick", smoke=True)
    cfg = rep.configs("quick", smoke=True)[0]
    weights = rep.weights_path(cfg.cnn, 0)
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CorruptFileError, match="delete it and rerun") as err:
        rep.resolve_net("quick", cfg.cnn, 0)
    assert str(weights) in str(err.value) and records


def _build_transfer_sets(cache: str, keys: list[str], barrier) -> None:
    os.environ["UNTRAINABLE_CACHE"] = cache
    torch.manual_seed(0)
    teachers = [nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10))]
    images = torch.randint(0, 256, (2000, 3, 16, 16), dtype=torch.uint8)
    barrier.wait()
    for key in keys:
        mimic.transfer_set(teachers, images, lambda u: u.float() / 255, views=1, seed=0,
                           device=torch.device("cpu"), cache_key=key)


def test_two_processes_building_the_same_cached_file_both_succeed(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    keys = [f"shared-{i}" for i in range(8)]
    procs = [ctx.Process(target=_build_transfer_sets, args=(str(tmp_path / "cache"), keys, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(list((tmp_path / "cache" / "transfer").glob("*.pt"))) == len(keys)
    assert not list((tmp_path / "cache" / "transfer").glob("*.tmp"))


class _Payload:
    """A pickle that runs a command when loaded with ``weights_only=False``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_pickle_in_the_cache_is_refused_not_run(tmp_path):
    teachers = [nn.Sequential(nn.Flatten(), nn.Linear(12, 3))]
    images = torch.randint(0, 256, (5, 3, 2, 2), dtype=torch.uint8)

    def normalize(u):
        return u.float() / 255

    x, z = mimic.transfer_set(teachers, images, normalize, views=1, seed=0, device=torch.device("cpu"), cache_key="k")
    (cached,) = (results.cache_root() / "transfer").glob("*.pt")
    marker = tmp_path / "ran"
    torch.save({"images": _Payload(marker), "logits": z}, cached)
    x2, z2 = mimic.transfer_set(teachers, images, normalize, views=1, seed=0, device=torch.device("cpu"), cache_key="k")
    assert not marker.exists()  # the payload never ran
    assert torch.equal(x2, x) and torch.equal(z2, z)  # the unreadable cache file was rebuilt
    with pytest.raises(CorruptFileError, match=cached.name):
        from untrainable.files import load_torch

        torch.save({"images": _Payload(marker), "logits": z}, cached)
        load_torch(cached)
    assert not marker.exists()
