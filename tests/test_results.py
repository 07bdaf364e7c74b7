"""The results store: the record contract, reuse of identical runs, atomic writes."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from untrainable import results
from untrainable.profiles import UnknownProfileError


@dataclass(frozen=True)
class Cfg:
    width: int
    epochs: int = 1


def _fake_train(calls):
    def train(config, seed, device, checkpoint):
        calls.append((config, seed))
        return {"metrics": {"test_acc": 0.5 + seed / 10}, "history": [{"epoch": 1, "test_acc": 0.5 + seed / 10}]}
    return train


def test_record_contract_and_reuse():
    calls = []
    rec = results.run_or_load("toy", "quick", "w8", Cfg(8), 0, _fake_train(calls))
    for key in results.REQUIRED_KEYS:
        assert key in rec
    assert rec["config"] == {"width": 8, "epochs": 1} and rec["device"].startswith("cpu")
    path = results.record_path("quick", "toy", "w8", 0, rec["key"])
    assert path.is_file() and path.parent.name == "toy" and path.parent.parent.name == "quick"
    again = results.run_or_load("toy", "quick", "w8", Cfg(8), 0, _fake_train(calls))
    assert again == json.loads(path.read_text()) and len(calls) == 1
    results.run_or_load("toy", "quick", "w8", Cfg(8), 0, _fake_train(calls), force=True)
    assert len(calls) == 2


def test_any_change_of_config_or_seed_is_a_new_run():
    keys = {results.run_key("toy", Cfg(8), 0), results.run_key("toy", Cfg(8), 1),
            results.run_key("toy", Cfg(8, epochs=2), 0), results.run_key("other", Cfg(8), 0)}
    assert len(keys) == 4
    assert results.run_key("toy", Cfg(8), 0) == results.run_key("toy", {"width": 8, "epochs": 1}, 0)


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(UnknownProfileError, match="quick, full, paper"):
        results.run_or_load("toy", "fast", "w8", Cfg(8), 0, _fake_train([]))


def test_failed_training_leaves_the_stored_record_intact():
    calls = []
    rec = results.run_or_load("toy", "quick", "w8", Cfg(8), 0, _fake_train(calls))
    path = results.record_path("quick", "toy", "w8", 0, rec["key"])
    before = path.read_text()

    def broken(config, seed, device, checkpoint):
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        results.run_or_load("toy", "quick", "w8", Cfg(8), 0, broken, force=True)
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left behind


def test_load_record_rejects_an_incomplete_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"experiment": "toy"}))
    with pytest.raises(ValueError, match="missing keys"):
        results.load_record(bad)


def test_summary_table_reports_mean_and_spread():
    recs = [results.run_or_load("toy", "quick", "w8", Cfg(8), s, _fake_train([])) for s in (0, 1, 2)]
    table = results.summary_table(recs, {"test_acc": "acc (%)"})
    assert table.loc["w8", "acc (%)"] == "60.0 ± 10.0" and table.loc["w8", "seeds"] == 3


def test_an_identical_run_under_another_name_is_reused():
    calls = []
    first = results.run_or_load("toy", "quick", "a", Cfg(8), 0, _fake_train(calls))
    second = results.run_or_load("toy", "quick", "b", Cfg(8), 0, _fake_train(calls))
    assert len(calls) == 1 and second["name"] == "b" and second["metrics"] == first["metrics"]
