"""One selection rule for every chapter: known choices under each criterion, ties, pooling seeds."""

from __future__ import annotations

import pytest

from untrainable.analysis.selection import best_record, choose, validation_score


def _rec(lr: float, valid_acc: list[float], valid_loss: list[float], seed: int = 0) -> dict:
    history = [{"epoch": i + 1, "valid_acc": a, "valid_loss": l} for i, (a, l) in enumerate(zip(valid_acc, valid_loss))]
    return {"name": f"lr{lr}", "seed": seed, "config": {"lr": lr}, "history": history,
            "metrics": {"min_valid_loss": min(valid_loss)}}


def test_the_two_criteria_can_choose_different_settings():
    # lr 0.1 reaches the lowest loss early; lr 0.01 the highest accuracy later (an overfitting run's shape)
    records = [_rec(0.1, [0.30, 0.35], [1.0, 1.6]), _rec(0.01, [0.20, 0.40], [1.2, 1.3])]
    lr = lambda r: r["config"]["lr"]  # noqa: E731
    assert choose(records, lr, "valid_loss") == 0.1
    assert choose(records, lr, "valid_acc") == 0.01


def test_accuracy_ties_are_broken_by_the_lower_validation_loss():
    records = [_rec(0.1, [0.5], [1.4]), _rec(0.01, [0.5], [1.1])]
    assert best_record(records, "valid_acc")["config"]["lr"] == 0.01
    assert validation_score(records[1], "valid_acc") == (-0.5, 1.1)


def test_equal_settings_keep_the_first_seen():
    records = [_rec(0.1, [0.5], [1.0]), _rec(0.01, [0.5], [1.0])]
    assert choose(records, lambda r: r["config"]["lr"], "valid_loss") == 0.1


def test_seeds_of_one_setting_count_by_their_mean():
    # lr 0.1 has the single best seed, but lr 0.01 the better mean
    records = [_rec(0.1, [0.5], [0.8], 0), _rec(0.1, [0.5], [1.6], 1),
               _rec(0.01, [0.5], [1.0], 0), _rec(0.01, [0.5], [1.1], 1)]
    assert choose(records, lambda r: r["config"]["lr"], "valid_loss") == 0.01


def test_an_unknown_criterion_or_nothing_to_choose_from_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown selection criterion 'test_acc'"):
        choose([_rec(0.1, [0.5], [1.0])], lambda r: r["config"]["lr"], "test_acc")
    with pytest.raises(ValueError, match="no records"):
        best_record([], "valid_loss")


def test_a_record_without_validation_cannot_be_chosen_on_it():
    record = {"name": "teacher", "history": [{"epoch": 1, "test_acc": 0.9}], "metrics": {}}
    with pytest.raises(KeyError, match="has no validation accuracy"):
        validation_score(record, "valid_acc")


# ----------------------------------------------------------------------------- typed presets

from dataclasses import dataclass  # noqa: E402

from untrainable.profiles import PresetError, make_preset, preset_table, replace_preset  # noqa: E402


@dataclass(frozen=True)
class _Preset:
    epochs: int
    lr: float = 1e-3


def test_an_unknown_preset_key_is_an_error_naming_the_key_and_the_chapter():
    with pytest.raises(PresetError, match=r"chapter 04: unknown preset key\(s\) 'epoch' for _Preset"):
        make_preset("chapter 04", _Preset, {"epoch": 3})
    p = make_preset("chapter 04", _Preset, {"epochs": 3})
    assert replace_preset("chapter 04", p, lr=0.1) == _Preset(3, 0.1)
    with pytest.raises(PresetError, match="'lrr'"):
        replace_preset("chapter 04", p, lrr=0.1)


def test_a_preset_table_covers_every_profile():
    with pytest.raises(PresetError, match="missing \\['paper'\\]"):
        preset_table("chapter 04", {"quick": _Preset(1), "full": _Preset(2)})
