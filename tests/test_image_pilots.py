"""Appendix 92: the pilot runs, the preconditions against hand-made records, the regime chooser, and
the new optional features of the training loop (validation split, best checkpoint, augmentation)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from untrainable.analysis import preconditions as P
from untrainable.experiments import CHAPTERS, image_pilots as IP, pilot_regimes as R
from untrainable.train import FitSettings, best_epoch, fit


def _history(train_acc, test_acc, valid_loss, test_loss=None, train_loss=None):
    n = len(valid_loss)
    test_loss = test_loss or valid_loss
    train_loss = train_loss or [2.0 - 0.1 * i for i in range(n)]
    return [{"epoch": i + 1, "train_loss": train_loss[i], "train_acc": train_acc, "valid_loss": valid_loss[i],
             "valid_acc": test_acc, "test_loss": test_loss[i], "test_acc": test_acc} for i in range(n)]


def _record(name="r", seed=0, *, group="deep_fcn", model="deep_fcn", depth=24, n_train=5000, lr=1e-3, width=512,
            history=None, best_test_acc=0.3, minutes=1.0):
    history = history or _history(0.9, 0.3, [2.0, 1.8, 2.1, 2.3])
    return {"name": name, "seed": seed, "wall_time_s": 60 * minutes, "history": history,
            "config": {"group": group, "model": model, "depth": depth, "n_train": n_train, "lr": lr, "width": width},
            "metrics": {"best_test_acc": best_test_acc, "min_valid_loss": min(h["valid_loss"] for h in history),
                        "train_acc": history[-1]["train_acc"], "test_acc": history[-1]["test_acc"]}}


# ----------------------------------------------------------------------------- preconditions


def test_overfits_needs_both_a_loss_rise_and_an_accuracy_gap():
    rising = _history(0.9, 0.3, [2.0, 1.8, 2.1])  # rise 0.3, gap 60 points
    assert P.overfits([_record(history=rising)]).holds
    flat = _history(0.9, 0.3, [2.0, 1.8, 1.9])  # rise 0.1
    check = P.overfits([_record(history=flat)])
    assert not check.holds and check.numbers["valid_rise"] == pytest.approx(0.1) and check.status == "does not hold"
    small_gap = _history(0.4, 0.3, [2.0, 1.8, 2.1])  # gap 10 points
    assert not P.overfits([_record(history=small_gap)]).holds
    test_only = _history(0.9, 0.3, [2.0, 1.8, 1.8], test_loss=[2.0, 1.7, 2.0])  # the test curve rises 0.3
    assert P.overfits([_record(history=test_only)]).numbers["test_rise"] == pytest.approx(0.3)
    assert P.overfits([_record(history=test_only)]).holds
    assert P.overfits([]).status == "no records"


def test_fails_to_train_needs_a_shallow_net_that_trains():
    stuck = [_record(history=_history(0.15, 0.12, [2.3, 2.3]))]
    trains = [_record(history=_history(0.6, 0.4, [1.8, 1.7]))]
    assert P.fails_to_train(stuck, trains).holds
    assert not P.fails_to_train(stuck, stuck).holds  # the shallow net is stuck too: nothing to compare
    assert not P.fails_to_train(trains, trains).holds
    assert P.fails_to_train(stuck, []).status == "no records"


def test_a_margin_must_beat_the_seed_spread_or_the_stated_threshold_with_one_seed():
    def runs(*accs):
        return [_record(seed=i, best_test_acc=a) for i, a in enumerate(accs)]
    assert P.guide_beats_target(runs(0.6), runs(0.5)).holds  # 10 points > 5-point threshold
    assert not P.guide_beats_target(runs(0.53), runs(0.5)).holds
    check = P.guide_beats_target(runs(0.60, 0.40), runs(0.45, 0.47))  # margin 4 points, spread 14
    assert not check.holds and check.numbers["threshold"] == pytest.approx(0.1414, abs=1e-3)
    assert P.guide_beats_target(runs(0.52, 0.53), runs(0.50, 0.50)).holds  # margin 2.5 points > spread 0.7


def test_the_plain_net_must_reach_a_plateau_before_it_is_compared():
    still_falling = _history(0.5, 0.4, [1.5] * 7, train_loss=[2.0, 1.8, 1.6, 1.4, 1.2, 1.0, 0.8])
    flat = _history(0.5, 0.4, [1.5] * 7, train_loss=[2.0, 1.0, 0.99, 0.98, 0.98, 0.97, 0.97])  # last 5: 1.0 -> 0.97
    twin = [_record(best_test_acc=0.7)]
    assert not P.falls_short_of_twin([_record(history=still_falling, best_test_acc=0.4)], twin).holds
    check = P.falls_short_of_twin([_record(history=flat, best_test_acc=0.4)], twin)
    assert check.holds and check.numbers["plateau_drop"] == pytest.approx(0.03)
    assert not P.falls_short_of_twin([_record(history=flat, best_test_acc=0.68)], twin).holds


# ----------------------------------------------------------------------------- the regime chooser


def _grid(small_overfits: bool, guide_small: float = 0.6):
    """A hand-made pilot grid: Deep FCN cells at 2000 and 5000 images (two learning rates each)."""
    rise = [2.0, 1.8, 2.2] if small_overfits else [2.0, 1.8, 1.8]
    recs = [_record("d2000-hi", n_train=2000, history=_history(0.95, 0.3, rise), best_test_acc=0.3, minutes=1),
            _record("d2000-lo", n_train=2000, lr=1e-4, history=_history(0.95, 0.3, [2.0, 1.9, 2.3]), minutes=1),
            _record("d5000", n_train=5000, history=_history(0.9, 0.35, [2.0, 1.7, 2.0]), best_test_acc=0.35,
                    minutes=3),
            _record("g2000", group="guides", model="resnet18", depth=0, n_train=2000, best_test_acc=guide_small),
            _record("g5000", group="guides", model="resnet18", depth=0, n_train=5000, best_test_acc=0.7)]
    return recs


def test_the_chooser_picks_the_cheapest_cell_where_control_fails_and_guide_beats_it():
    regimes = [r for r in R.choose_regimes(_grid(small_overfits=True)) if r.claim == "deep_fcn"]
    chosen = [r for r in regimes if r.chosen]
    assert [r.control for r in chosen] == ["d2000-hi"]  # the learning rate with the lower validation loss
    assert "2000 training images" in chosen[0].cell


def test_the_chooser_moves_on_when_the_cheap_cell_does_not_qualify():
    no_rise = [r for r in R.choose_regimes(_grid(small_overfits=False)) if r.chosen and r.claim == "deep_fcn"]
    assert [r.control for r in no_rise] == ["d5000"]
    weak_guide = [r for r in R.choose_regimes(_grid(True, guide_small=0.31)) if r.chosen and r.claim == "deep_fcn"]
    assert [r.control for r in weak_guide] == ["d5000"]


def test_a_claim_without_a_qualifying_cell_is_not_testable_with_what_was_tried():
    regimes = R.choose_regimes(_grid(True))
    text = R.regime_summary(regimes)
    assert "**Wide FCN (chapter 04)**: not testable here; tried nothing" in text
    assert "**Deep FCN (chapter 04)**: 24x512, 2000 training images" in text


# ----------------------------------------------------------------------------- the pilot grid


def test_the_full_grid_has_every_group_and_no_guided_run():
    runs = IP.configs("full")
    assert {c.group for c in runs} == set(IP.GROUPS)
    assert len({IP.run_name(c) for c in runs}) == len(runs), "run names are unique"
    assert all(c.precision == "bf16" and c.n_valid > 0 for c in runs)  # as the committed records trained
    guides = [c for c in runs if c.group in ("guides", "guide_all")]
    assert all(c.augment and c.schedule == "cosine" for c in guides)
    augmented = ("convnets_aug", "deeper_convnets", "convnets_long")
    assert not any(c.augment for c in runs if c.group not in ("guides", "guide_all", *augmented))
    assert all(c.augment for c in runs if c.group in augmented)
    assert all(c.schedule == "step" and c.epochs == 60 for c in runs if c.group == "convnets_long")
    assert CHAPTERS["92"] == "untrainable.experiments.image_pilots"


def test_presets_are_typed_and_an_unknown_override_names_itself_and_the_chapter():
    import re

    from untrainable.profiles import PresetError, replace_preset

    assert set(IP.PRESETS) == {"quick", "full", "paper"} and all(isinstance(p, IP.Preset) for p in IP.PRESETS.values())
    with pytest.raises(PresetError, match=re.escape(f"{IP.CHAPTER}: unknown preset key(s) 'guide_sizes'")):
        replace_preset(IP.CHAPTER, IP.PRESETS["full"], guide_sizes=(64,))
    # the splits a profile leaves None are the config's defaults; quick sets its own
    defaults = IP.PilotConfig("deep_fcn", "deep_fcn", 8)
    assert {(c.n_valid, c.n_test, c.n_test_curve) for c in IP.configs("full")} == {
        (defaults.n_valid, defaults.n_test, defaults.n_test_curve)}
    assert {(c.n_valid, c.n_test, c.n_test_curve) for c in IP.configs("quick")} == {(256, 512, 256)}
    smoke = IP.configs("quick", smoke=True)
    assert [c.n_train for c in smoke if c.group == "guides"] == list(IP.SMOKE["guide_epochs"])


def test_cells_select_groups_and_runs_and_refuse_unknown_names():
    runs = IP.configs("full")
    one = IP.run_name(runs[0])
    picked = IP.select(runs, ["convnets", one])
    assert picked[0] == runs[0] and {c.group for c in picked[1:]} == {"convnets"}
    with pytest.raises(ValueError, match="unknown pilot cells"):
        IP.select(runs, ["no-such-cell"])


def test_validation_images_are_held_out_from_training_and_shared_by_every_size():
    small, large = (IP.configs("quick", smoke=True)[i] for i in (0, 1))
    a, b = IP.pilot_data(small), IP.pilot_data(large)
    assert torch.equal(a.valid[0], b.valid[0]) and len(a.train[1]) < len(b.train[1])
    train_rows = {tuple(x.flatten()[:64].tolist()) for x in b.train[0]}
    assert not any(tuple(x.flatten()[:64].tolist()) in train_rows for x in b.valid[0])


def test_a_smoke_run_stores_the_best_checkpoint_metrics():
    name = IP.run_name(next(c for c in IP.configs("quick", smoke=True) if c.group == "shallow_fcn"))
    records = IP.run("quick", smoke=True, cells=[name])
    assert len(records) == 1
    m, history = records[0]["metrics"], records[0]["history"]
    assert m["best_epoch"] == best_epoch(history, "valid_acc")
    assert "valid_loss" in history[0] and m["min_valid_loss"] == min(h["valid_loss"] for h in history)


# ----------------------------------------------------------------------------- the training loop's new options


def _toy_problem(n=64):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=gen)
    y = (x[:, 0] > 0).long()
    return (x, y), (x[:16], y[:16])


def test_fit_restores_the_best_validation_weights_when_asked():
    train, test = _toy_problem()
    valid = (test[0], 1 - test[1])  # flipped labels: the more the net learns, the worse it does here
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    seen = []
    history = fit(model, train, test, FitSettings(epochs=4, lr=0.5), generator=torch.Generator().manual_seed(0),
                  device=torch.device("cpu"), progress=False, valid=valid, best_by="valid_loss", restore_best=True,
                  on_epoch_end=lambda e, m: seen.append({k: v.clone() for k, v in m.state_dict().items()}))
    best = best_epoch(history, "valid_loss")
    assert best < len(history), "the last epoch is not the best, so restoring must change the weights"
    assert all(torch.equal(model.state_dict()[k], seen[best - 1][k]) for k in seen[0])
    assert {"valid_loss", "valid_acc", "test_loss"} <= set(history[0])
    with pytest.raises(ValueError, match="restore_best needs a validation split"):
        fit(model, train, valid, FitSettings(epochs=1), generator=torch.Generator(), device=torch.device("cpu"),
            progress=False, restore_best=True)


def test_fit_augments_training_batches_only():
    train, valid = _toy_problem()
    calls = []

    def augment(xb, generator):
        calls.append(len(xb))
        return xb + 0.01 * torch.randn(xb.shape, generator=generator)

    fit(nn.Linear(4, 2), train, valid, FitSettings(epochs=2, batch_size=32), generator=torch.Generator().manual_seed(0),
        device=torch.device("cpu"), progress=False, augment=augment)
    assert calls == [32, 32, 32, 32]


def test_without_the_new_options_a_history_row_keeps_its_keys():
    train, valid = _toy_problem()
    history = fit(nn.Linear(4, 2), train, valid, FitSettings(epochs=1), generator=torch.Generator().manual_seed(0),
                  device=torch.device("cpu"), progress=False)
    assert list(history[0]) == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_time_s",
                                "train_time_s"]


def test_an_interrupted_run_resumes_with_its_best_weights(tmp_path):
    train, test = _toy_problem()
    valid = (test[0], 1 - test[1])

    def trained(checkpoint, stop_at=None):
        def hook(epoch, model):
            if epoch == stop_at:
                raise KeyboardInterrupt
        torch.manual_seed(0)
        model = nn.Linear(4, 2)
        history = fit(model, train, test, FitSettings(epochs=4, lr=0.5), generator=torch.Generator().manual_seed(0),
                      device=torch.device("cpu"), progress=False, valid=valid, best_by="valid_loss",
                      restore_best=True, checkpoint=checkpoint, on_epoch_end=hook)
        return model, history

    whole, _ = trained(tmp_path / "whole.pt")
    with pytest.raises(KeyboardInterrupt):
        trained(tmp_path / "cut.pt", stop_at=3)  # epoch 3's checkpoint is never written
    resumed, history = trained(tmp_path / "cut.pt")
    assert best_epoch(history, "valid_loss") < 3, "the best epoch was found before the interruption"
    assert all(torch.equal(whole.state_dict()[k], resumed.state_dict()[k]) for k in whole.state_dict())


def test_the_books_criterion_and_the_first_are_compared_on_the_same_pilot_records():
    """In the 2000-image cell the higher rate reaches the higher validation accuracy (the book's criterion) and the
    lower one the lower validation loss (the pilots' first criterion): the page shows both rates, and that the
    chosen cell is the same under each."""
    recs = _grid(small_overfits=True)
    recs[1] = _record("d2000-lo", n_train=2000, lr=1e-4, minutes=1,
                      history=[{**h, "valid_acc": 0.25, "valid_loss": v} for h, v in
                               zip(_history(0.95, 0.3, [2.0, 1.6, 2.3]), [2.0, 1.6, 2.3])])
    assert R.SELECTION == "valid_acc" and R.FIRST_SELECTION == "valid_loss"
    assert [r["name"] for r in R.chosen_lr(recs[:2])] == ["d2000-hi"]
    assert [r["name"] for r in R.chosen_lr(recs[:2], R.FIRST_SELECTION)] == ["d2000-lo"]
    changes = R.criterion_changes(recs).set_index("cell")
    row = changes.loc["24x512, 2000 training images"]
    assert (row["lr now"], row["lr first"]) == (1e-3, 1e-4) and row["chosen now"] == row["chosen first"] == "yes"
    text = R.criterion_summary(changes.reset_index())
    assert "changes the learning rate of 1 of 2 cells" in text and "no claim's regime" in text
