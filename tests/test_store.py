"""The guarded store: every planned ``full`` run has its committed record, and none is trained silently."""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass

import pytest

from untrainable import results
from untrainable.results import MissingRecordError
from untrainable.experiments import CHAPTERS, missing_records, planned_runs
from untrainable.paths import results_root


def _chapter_or_skip(prefix: str):
    """The chapter module of ``prefix``, or a skip while it is not on the chapter contract yet."""
    try:
        module = importlib.import_module(CHAPTERS[prefix])
    except ImportError as err:
        pytest.skip(f"chapter {prefix} ({CHAPTERS[prefix]}) does not import yet: {err}")
    if not hasattr(module, "planned_runs"):
        pytest.skip(f"chapter {prefix} ({CHAPTERS[prefix]}) has no planned_runs yet")
    return module


@pytest.mark.parametrize("prefix", list(CHAPTERS))
def test_every_planned_full_run_has_its_committed_record(prefix, committed_store):
    _chapter_or_skip(prefix)
    missing = missing_records("full", [prefix])
    listing = "\n".join(f"  {r.experiment}/{r.path('full').name} ({r.name}, seed {r.seed})" for r in missing)
    assert not missing, (f"chapter {prefix}: {len(missing)} planned full run(s) without a committed record (a "
                         f"config change orphans its records; see results.added_field):\n{listing}")


@pytest.mark.parametrize("prefix", list(CHAPTERS))
def test_every_committed_full_record_is_the_run_planned(prefix, committed_store):
    """Found is not enough: the record under a planned key must be that run (config, seed), complete and finite,
    with every metric its chapter reads (the chapter's ``REQUIRED_METRICS``, carried by the planned run)."""
    _chapter_or_skip(prefix)
    runs = planned_runs("full", [prefix])
    assert runs, f"chapter {prefix} plans no full run"
    for run in runs:
        assert run.required_metrics, f"chapter {prefix}: {run.experiment}/{run.name} declares no required metrics"
        record = run.load("full")  # checked as the chapter loads it: with every metric its pages read
        if record is not None:  # a missing one is reported by the test above
            # what its training loop resolved is its config's setting (no full config says "auto"); a record
            # older than the precision setting trained in fp32
            setting = getattr(run.config, "precision", "fp32")
            assert record.get("precision", "fp32") == setting, f"{run.path('full').name}: precision"


def _settings_of(obj, path: str = "config") -> list[tuple[str, object]]:
    """Every ``(path, value)`` of a config's fields, nested dataclasses included."""
    if not dataclasses.is_dataclass(obj):
        return [(path, obj)]
    return [pair for f in dataclasses.fields(obj) for pair in _settings_of(getattr(obj, f.name), f"{path}.{f.name}")]


def test_no_planned_full_config_says_auto():
    """A committed run's key must name what it trained in: ``"auto"`` is bf16 on one machine and fp32 on
    another (``paper`` may keep it; nothing of it is committed)."""
    found = [f"{run.experiment}/{run.name} seed {run.seed}: {path}" for run in planned_runs("full")
             for path, value in _settings_of(run.config) if value == "auto"]
    assert not found, "full configs with 'auto' settings:\n" + "\n".join(found[:20])


def test_committed_bf16_records_load_on_a_cpu_without_native_bf16(monkeypatch, committed_store):
    """Reading the book needs no bf16 hardware: loading a record checks nothing of the reader's CPU."""
    from untrainable import precision, runtime

    monkeypatch.setattr(precision, "cpu_flags", lambda: ("avx2",))
    monkeypatch.setattr(runtime, "cpu_flags", lambda: ("avx2",))

    def no_training(*args):
        raise AssertionError("a committed record was retrained instead of loaded")

    runs = [r for r in planned_runs("full", ["04"]) if getattr(r.config, "precision", None) == "bf16"]
    assert runs
    for run in runs[:5]:
        record = results.run_or_load(run.experiment, "full", run.name, run.config, run.seed, no_training)
        assert record["precision"] == "bf16"


@dataclass(frozen=True)
class Toy:
    width: int
    epochs: int = 1


def _train(calls: list):
    def train(config, seed, device, checkpoint):
        calls.append(seed)
        return {"metrics": {"test_acc": 0.5}, "history": []}
    return train


def test_a_missing_full_record_is_not_trained_without_being_asked(monkeypatch):
    monkeypatch.delenv(results.TRAIN_MISSING_ENV, raising=False)
    calls: list = []
    with pytest.raises(results.MissingRecordError, match=r"toy/w8 seed 0.*--train-missing"):
        results.run_or_load("toy", "full", "w8", Toy(8), 0, _train(calls))
    assert calls == [] and not any(results_root().rglob("*.json"))
    results.run_or_load("toy", "quick", "w8", Toy(8), 0, _train(calls))  # other profiles train freely
    assert calls == [0]


def test_a_missing_full_record_is_trained_when_asked(monkeypatch):
    calls: list = []
    record = results.run_or_load("toy", "full", "w8", Toy(8), 0, _train(calls), train_missing=True)
    assert calls == [0] and results.record_path("full", "toy", "w8", 0, record["key"]).is_file()
    monkeypatch.setenv(results.TRAIN_MISSING_ENV, "1")
    results.run_or_load("toy", "full", "w8", Toy(8), 1, _train(calls))
    assert calls == [0, 1]
    monkeypatch.delenv(results.TRAIN_MISSING_ENV)
    results.run_or_load("toy", "full", "w8", Toy(8), 1, _train(calls))  # stored now: loaded, not trained
    assert calls == [0, 1]


def test_an_added_field_at_its_default_keeps_the_key():
    @dataclass(frozen=True)
    class Grown:
        width: int
        epochs: int = 1
        precision: str = results.added_field("fp32")

    assert results.run_key("toy", Grown(8), 0) == results.run_key("toy", Toy(8), 0)
    assert results.run_key("toy", Grown(8, precision="bf16"), 0) != results.run_key("toy", Toy(8), 0)
    # a record stored before the field existed is still the requested run
    calls: list = []
    old = results.run_or_load("toy", "quick", "w8", Toy(8), 0, _train(calls))
    new = results.run_or_load("toy", "quick", "w8", Grown(8), 0, _train(calls))
    assert calls == [0] and new["key"] == old["key"]


@pytest.mark.parametrize("module", ["cka", "guidance_step", "precision"])
def test_a_missing_full_benchmark_record_is_not_measured_silently(module):
    """The benchmarks write committed full records too: a missing one stops with the guard's message
    (the autouse fixture points the store at an empty folder) instead of measuring for minutes."""
    bench = importlib.import_module(f"untrainable.benchmarks.{module}")
    with pytest.raises(MissingRecordError, match="nothing is measured silently"):
        bench.run("full")


def test_a_missing_full_parity_record_is_not_trained_silently():
    from untrainable.benchmarks import precision_parity

    with pytest.raises(MissingRecordError):
        precision_parity.run("full")


def test_the_committed_full_records_draw_chapter_07s_ensemble_line(monkeypatch):
    """The ensemble's accuracy is read from the committed students that mimic it, whose stored teacher
    configs predate the added ``precision`` field: they must still be recognised."""
    from untrainable.experiments import mimic_students as M
    from untrainable.paths import repo_root

    monkeypatch.setenv("UNTRAINABLE_RESULTS", str(repo_root() / "results"))
    records = M.records_by_sweep(M.run("full"))["size"]
    assert 0.5 < M.ensemble_accuracy(records, "full") < 1.0
