"""The record keys and checks, on their own and through the store's one door (``untrainable.results``)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from untrainable import record_checks, record_keys, results


@dataclass(frozen=True)
class Cfg:
    width: int
    note: str = record_keys.added_field("none")


def test_results_still_offers_every_name_of_the_split_modules():
    for module in (record_keys, record_checks):
        for name in module.__all__:
            assert getattr(results, name) is getattr(module, name), name


def test_an_added_field_leaves_the_key_until_it_leaves_its_default():
    assert record_keys.key_payload(Cfg(8)) == {"width": 8}
    assert record_keys.run_key("toy", Cfg(8), 0) == record_keys.run_key("toy", {"width": 8}, 0)
    assert record_keys.run_key("toy", Cfg(8, note="x"), 0) != record_keys.run_key("toy", Cfg(8), 0)


def _record(**changes):
    record = {"experiment": "toy", "profile": "quick", "seed": 0, "key": record_keys.run_key("toy", Cfg(8), 0),
              "config": {"width": 8}, "metrics": {"test_acc": 0.5}, "history": [{"epoch": 1, "test_acc": 0.5}],
              "git_commit": "abc", "device": "cpu", "versions": {}, "wall_time_s": 1.0}
    return {**record, **changes}


def test_a_requested_record_loads_and_another_config_is_named(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_record()))
    assert record_checks.load_record(path, experiment="toy", config=Cfg(8), seed=0)["metrics"]["test_acc"] == 0.5
    path.write_text(json.dumps(_record(config={"width": 9})))
    with pytest.raises(record_checks.RecordMismatchError, match=r"config\.width: stored 9, requested 8"):
        record_checks.load_record(path, experiment="toy", config=Cfg(8), seed=0)


def test_a_final_metric_that_is_not_the_last_epoch_is_refused(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_record(metrics={"test_acc": 0.9})))
    with pytest.raises(record_checks.CorruptRecordError, match="disagree with the history"):
        record_checks.load_record(path)
