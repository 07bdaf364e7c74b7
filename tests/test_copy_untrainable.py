"""Copy-paste where the RNN fails (issue #31 item 4): chapter 06's runs at 10-20 digits, the pilots that chose
those lengths (appendix 93's committed records), the sweep's choice, the preconditions, the cost and the shell."""

from __future__ import annotations

import dataclasses
import math

import pytest

from untrainable.experiments import copy_untrainable as cu
from untrainable.experiments import sequence_configs as S
from untrainable.experiments import sequence_pilots as sp
from untrainable.paths import repo_root
from untrainable.profiles import PROFILES, PresetError, replace_preset
from untrainable.results import find_record


def test_every_profile_has_a_regime_and_full_runs_10_to_20_digits_with_five_seeds():
    assert set(cu.PRESETS) == set(PROFILES)
    full = cu.PRESETS["full"]
    assert full.lengths == (10, 20) and full.seeds == (0, 1, 2, 3, 4) and len(full.sweep_lrs) >= 2
    assert cu.PRESETS["paper"].lengths == (20, 40)  # the paper's own regime
    assert full.guide_lr == sp.PRESETS["full"].copy.lr  # the rate at which the pilots' guide reached 99.9 %
    with pytest.raises(PresetError, match="unknown preset key.*'length'"):
        replace_preset(cu.NAME, full, length=(5, 10))
    with pytest.raises(ValueError, match=r"unknown rows \['flatten'\]"):
        cu.rows(["flatten"])


def test_a_row_is_chapter_06s_copy_run_at_other_lengths_and_the_guide_is_shared_by_both_token_rows():
    chapter = {c.condition: c for c in S.configs("full", ("copy",))}
    for row in cu.ROWS:
        c = cu.row_config("full", row, 3e-4)
        assert (c.min_len, c.max_len, c.tokens, c.lr) == (10, 20, row.tokens, 3e-4)
        assert dataclasses.replace(c, min_len=5, max_len=10, tokens="per_token", lr=chapter[row.condition].lr,
                                   guide_lr=chapter[row.condition].guide_lr) == chapter[row.condition]
        # the trained guide each row is given (the control's guide_alone run, whatever the row's tokens)
        assert S.guide_alone_config(dataclasses.replace(c, tokens=cu.CONTROL.tokens)) == cu.guide_config("full")
    assert chapter["no_guide"].tokens == "per_token"  # chapter 06's copy treatment, the first row's
    assert {r.tokens for r in cu.ROWS if r.condition != "no_guide"} == set(S.TOKENS)
    assert [cu.run_name(cu.row_config("full", r, 1e-3)) for r in cu.ROWS[:2]] == ["copy-no_guide",
                                                                                  "copy-trained_guide-per_token"]
    g = cu.guide_config("full")
    assert (g.condition, g.net.family, g.lr, g.min_len, g.max_len) == ("guide_alone", "transformer", 1e-3, 10, 20)


def test_the_full_pilots_are_appendix_93s_committed_10_to_20_digit_cell_and_show_the_rnn_at_chance(monkeypatch):
    """The numbers the module docstring cites, read from the committed records."""
    monkeypatch.setenv("UNTRAINABLE_RESULTS", str(repo_root() / "results"))
    pilots = cu.pilot_configs("full")
    assert pilots and all(c in sp.configs("full") for c in pilots)
    assert {c.lr for c in pilots if c.net.family == "rnn"} == set(sp.TARGET_LRS)
    assert all(find_record(r.path("full")) for r in cu.planned_runs("full") if r.experiment == sp.EXPERIMENT)
    records = cu.run_pilots("full")
    rnn, tf = cu.pilot_preconditions(records)
    assert rnn.holds and tf.holds, (rnn.detail, tf.detail)
    tests = [r["metrics"]["test_acc"] for r in records if r["config"]["net"]["family"] == "rnn"]
    valid = [r["metrics"]["best_valid_acc"] for r in records if r["config"]["net"]["family"] == "rnn"]
    guide = next(r["metrics"]["test_acc"] for r in records if r["config"]["net"]["family"] == "transformer")
    assert (round(100 * min(tests), 1), round(100 * max(tests), 1)) == (9.4, 10.1)
    assert (round(100 * min(valid), 1), round(100 * max(valid), 1)) == (10.2, 10.5)
    assert round(100 * guide, 1) == 99.9
    assert "9.4 % to 10.1 %" in cu.__doc__ and "10.2 % to 10.5 %" in cu.__doc__ and "99.9 %" in cu.__doc__


def test_the_full_plan_names_pilots_sweep_and_guides_and_each_rows_runs_once_its_rate_is_chosen(monkeypatch):
    full = replace_preset(cu.NAME, cu.PRESETS["full"], chosen_lrs={})
    monkeypatch.setitem(cu.PRESETS, "full", full)
    planned = cu.planned_runs("full")
    sweep = [r for r in planned if r.experiment == cu.SWEEP_EXPERIMENT]
    assert len(sweep) == 1 + len(cu.ROWS) * len(full.sweep_lrs) and {r.seed for r in sweep} == {cu.SWEEP_SEED}
    assert [r.name for r in planned if r.experiment == cu.EXPERIMENT] == ["copy-guide_alone"] * 5
    assert len(planned) == len(cu.pilot_configs("full")) + len(sweep) + 5
    with pytest.raises(ValueError, match=r"no learning rate chosen for rows \['no_guide'.*--stage sweep"):
        cu.run_configs("full", {})
    chosen = replace_preset(cu.NAME, full, chosen_lrs={r: 1e-3 for r in cu.ROWS})
    monkeypatch.setitem(cu.PRESETS, "full", chosen)
    planned = cu.planned_runs("full")
    assert len(planned) == len(cu.pilot_configs("full")) + len(sweep) + 5 * (1 + len(cu.ROWS))
    assert len({r.path("full") for r in planned}) == len(planned)
    assert len(cu.planned_runs("full", seeds=(7,))) == len(planned) - 4 * (1 + len(cu.ROWS))


def _record(condition: str, lr: float = 1e-3, valid_acc: float = 0.1, test_acc: float = 0.1, tokens: str = "per_token",
            seed: int = 0, best_valid_acc: float | None = None) -> dict:
    best = valid_acc if best_valid_acc is None else best_valid_acc
    return {"seed": seed, "config": {"condition": condition, "tokens": tokens, "lr": lr},
            "metrics": {"test_acc": test_acc, "best_valid_acc": best},
            "history": [{"valid_acc": valid_acc, "valid_loss": 1.0}]}


def test_the_full_presets_learning_rates_are_what_the_committed_sweep_chooses(committed_store):
    sweep = cu.run_sweep("full", train_missing=False)
    assert len(sweep) == 1 + len(cu.ROWS) * len(cu.PRESETS["full"].sweep_lrs)
    assert cu.learning_rates(cu.PRESETS["full"], sweep) == dict(cu.PRESETS["full"].chosen_lrs)
    assert set(cu.PRESETS["full"].chosen_lrs) == set(cu.ROWS)


def test_the_sweep_chooses_each_rows_learning_rate_by_validation_accuracy():
    sweep = [_record("guide_alone", valid_acc=0.99), _record("no_guide", 1e-3, 0.10), _record("no_guide", 3e-4, 0.11),
             _record("trained_guide", 1e-3, 0.40, tokens="flatten"), _record("trained_guide", 3e-3, 0.30,
                                                                            tokens="flatten")]
    assert cu.chosen_lrs(sweep) == {cu.CONTROL: 3e-4, cu.Row("trained_guide", "flatten"): 1e-3}
    written = replace_preset(cu.NAME, cu.PRESETS["quick"], chosen_lrs={cu.CONTROL: 1e-3})
    with pytest.raises(ValueError, match=r"disagree with what the sweep chooses.*'no_guide': \(0.001, 0.0003\)"):
        cu.learning_rates(written, sweep)


def test_the_regime_holds_where_every_control_seed_is_at_chance_and_every_guide_learns():
    at_chance = [_record("no_guide", test_acc=a, seed=s) for s, a in enumerate((0.10, 0.12, 0.149))]
    one_learns = at_chance + [_record("no_guide", test_acc=0.30, seed=3)]
    guides = [_record("guide_alone", best_valid_acc=v, seed=s) for s, v in enumerate((0.99, 0.97, 0.999))]
    ok = cu.preconditions(at_chance + guides)
    assert [(c.name, c.holds) for c in ok] == [("the unguided RNN stays at chance", True),
                                               ("every trained Transformer guide reaches 95%", True)]
    assert ok[0].numbers["highest"] == pytest.approx(0.149) and "each needs ≤ 15%" in ok[0].detail
    failing = cu.preconditions(one_learns + guides[:2] + [_record("guide_alone", best_valid_acc=0.6, seed=2)])
    assert [c.holds for c in failing] == [False, False] and "30.0%" in failing[0].detail
    assert "seed 2: 60.0%" in failing[1].detail
    assert [c.status for c in cu.preconditions([])] == ["no records", "no records"]


def test_a_tiny_regime_trains_every_row_end_to_end_with_one_guide_per_seed(isolated_store, monkeypatch):
    records = cu.run("quick", seeds=(0,), smoke=True)
    assert [r["name"] for r in records] == ["copy-guide_alone", *(f"copy-{row}" for row in cu.ROWS)]
    for r in records[1:]:
        row = cu.ROWS[records.index(r) - 1]
        assert (r["config"]["condition"], r["config"]["tokens"]) == tuple(row)
        assert (r["config"]["min_len"], r["config"]["max_len"]) == (10, 20)
        assert ("pairs" in r) == (row.condition != "no_guide") and set(r["final_cka"]) == {"trained", "untrained"}
        assert all(math.isfinite(h["train_loss"]) for h in r["history"])
    assert {r["config"]["lr"] for r in records[1:]} == set(cu.preset("quick", smoke=True).sweep_lrs)
    stored = sorted(p.name.split("-seed")[0] for p in (isolated_store / "results" / "quick").rglob("*.json"))
    assert stored.count("copy-guide_alone") == 2  # the sweep's (seed 100) and seed 0's: both token rows share it
    assert len(stored) == 2 * (1 + len(cu.ROWS))
    monkeypatch.setattr(cu, "resolve_guides", lambda *a, **k: pytest.fail("resolved guides for a stored record"))
    again = cu.run("quick", seeds=(0,), smoke=True)
    assert [r["key"] for r in again] == [r["key"] for r in records]


def test_a_runs_cost_is_its_steps_and_evaluations_and_a_step_is_timed_on_one_thread():
    c = cu.row_config("full", cu.ROWS[1], 1e-3)
    assert cu.run_seconds(c, {"step_s": 0.1, "eval_batch_s": 0.2}) == pytest.approx(
        8 * (250 * 0.1 + (2 + 4) * 0.2))  # 16,000 strings in batches of 64; 500 + 1000 in batches of 256
    tiny = cu.row_config("quick", cu.ROWS[4], 1e-3, cu.preset("quick", smoke=True))
    timing = cu.step_seconds(tiny, steps=1)
    assert timing["step_s"] > 0 and timing["eval_batch_s"] > 0


def test_the_shell_estimate_lists_the_stage_and_its_cost_without_training(monkeypatch, capsys):
    monkeypatch.setattr(cu, "step_seconds", lambda c, steps=5: {"step_s": 0.1, "eval_batch_s": 0.2})
    monkeypatch.setattr(cu, "_record", lambda *a, **k: pytest.fail("an estimate trained something"))
    monkeypatch.setitem(cu.PRESETS, "full", replace_preset(cu.NAME, cu.PRESETS["full"], chosen_lrs={}))
    cu.main(["--stage", "runs", "--rows", "no_guide", "trained_guide-flatten", "--seeds", "0", "1", "--estimate"])
    out = capsys.readouterr().out
    assert "copy_untrainable/copy-trained_guide-flatten seed 1: missing" in out and "(lr not chosen yet)" in out
    assert "6 runs, 6 missing: about 21 minutes" in out  # 6 runs x 8 epochs x (250 x 0.1 + 6 x 0.2) s


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: --stage"),
    (["--stage", "grid"], "invalid choice: 'grid'"),
    (["--stage", "runs", "--rows", "flatten"], "invalid choice: 'flatten'"),
    (["--stage", "runs", "--seeds", "1", "1"], "--seeds: seeds must be distinct"),
    (["--stage", "sweep", "--seeds", "0"], "the sweep stage has its own seed"),
    (["--stage", "pilots", "--rows", "no_guide"], "the pilots stage has no rows"),
    (["--stage", "runs", "--profile", "huge"], "invalid choice: 'huge'"),
])
def test_the_shell_entry_refuses_wrong_arguments_by_name(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(cu, "_record", lambda *a, **k: pytest.fail("a refused command trained something"))
    with pytest.raises(SystemExit) as exit_:
        cu.main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_the_shell_runs_stage_needs_the_stored_sweep_in_full(monkeypatch):
    from untrainable.results import MissingRecordError

    monkeypatch.delenv("UNTRAINABLE_TRAIN_MISSING", raising=False)
    with pytest.raises(MissingRecordError, match="copy_untrainable_sweeps/copy-guide_alone seed 100"):
        cu.main(["--stage", "runs", "--rows", "no_guide"])
