"""Issue #33's checks as every chapter wires them: seeds are a set and devices are named ones at every shell
entry and ``run``; configs refuse a bad size, batch or epoch count when made; a record without a metric
its chapter reads is refused when the chapter loads it."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from untrainable.experiments import CHAPTERS, chapter, checked_seeds, planned_runs
from untrainable.results import CorruptRecordError, config_dict, write_record
from untrainable.train import FitSettings

#: Every chapter shell entry, with the arguments it needs besides the probed one.
SHELL_ENTRIES = {
    "untrainable.experiments.fcn_guidance": ["--stage", "runs"],
    "untrainable.experiments.plain_cnn_guidance": ["--stage", "runs"],
    "untrainable.experiments.image_pilots": [],
    "untrainable.experiments.sequence_guidance": [],
    "untrainable.experiments.sequence_pilots": [],
    "untrainable.experiments.mimic_students": [],
    "untrainable.experiments.transfer_comparison": ["--stage", "runs"],
    "untrainable.benchmarks.precision_parity": [],
}


def _shell_error(module: str, *argv: str, capsys) -> str:
    """Run a shell entry that must stop at its arguments (exit status 2, nothing trained); its message."""
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as stopped:
        main(["--profile", "quick", *SHELL_ENTRIES[module], *argv])
    assert stopped.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("module", list(SHELL_ENTRIES))
def test_a_repeated_seed_stops_a_shell_entry_naming_it(module, capsys):
    assert "0 repeated" in _shell_error(module, "--seeds", "0", "0", capsys=capsys)


@pytest.mark.parametrize("module", list(SHELL_ENTRIES))
def test_a_negative_seed_stops_a_shell_entry_naming_it(module, capsys):
    assert "seed(s) -1 out of range" in _shell_error(module, "--seeds", "-1", capsys=capsys)


@pytest.mark.parametrize("module", list(SHELL_ENTRIES))
def test_a_tpu_stops_a_shell_entry_naming_it(module, capsys):
    assert "'tpu': TPUs are not supported" in _shell_error(module, "--device", "tpu", capsys=capsys)


def test_a_chapters_run_checks_its_seeds_before_anything_loads():
    from untrainable.experiments import fcn_guidance, image_pilots, inductive_bias, sequence_guidance

    assert checked_seeds(None, (0, 1)) == (0, 1) and checked_seeds([2, 0], (0, 1)) == (2, 0)
    for run in (fcn_guidance.run, image_pilots.run, inductive_bias.run, sequence_guidance.run):
        with pytest.raises(ValueError, match="0 repeated"):
            run("quick", seeds=(0, 0))
    with pytest.raises(ValueError, match="out of range"):
        inductive_bias.run("quick", seeds=(2**31,))
    with pytest.raises(ValueError, match="0 repeated"):
        chapter("04").planned_runs("quick", (0, 0))


# ----------------------------------------------------------------------------- configs


def _configs() -> dict[str, object]:
    """One planned quick config of each config type of the chapters (a guide's, a teacher's, ...)."""
    found: dict[str, object] = {}
    for run in planned_runs("quick"):
        for config in (run.config, getattr(run.config, "student", None), getattr(run.config, "cnn", None),
                       getattr(run.config, "net", None), getattr(run.config, "guide", None),
                       getattr(getattr(run.config, "teacher", None), "config", None)):
            if config is not None:
                found.setdefault(type(config).__qualname__ + " " + type(config).__module__, config)
    return found


CONFIGS = _configs()


def _field_cases(field: str) -> list[tuple[str, object]]:
    return [(name, c) for name, c in CONFIGS.items() if field in {f.name for f in dataclasses.fields(c)}]


def test_every_chapter_config_type_is_probed():
    names = {name.split()[0] for name in CONFIGS}
    assert {"Config", "GuideConfig", "PilotConfig", "NetConfig", "TeacherConfig", "StudentConfig",
            "ComparedNetConfig"} <= names
    assert len(_field_cases("n_train")) >= 7 and len(_field_cases("epochs")) >= 8


@pytest.mark.parametrize("field, value", [("n_train", -3), ("batch_size", 0), ("epochs", 0)])
def test_a_config_with_a_bad_size_is_refused_when_made_naming_the_field(field, value):
    cases = _field_cases(field)
    assert cases
    for name, config in cases:
        with pytest.raises(ValueError, match=rf"\.{field} must be a finite number > 0, got {value}"):
            dataclasses.replace(config, **{field: value})


@pytest.mark.parametrize("field, value, rule", [("lr", 0.0, "> 0"), ("lr", float("nan"), "> 0"),
                                                ("weight_decay", -1e-4, ">= 0"), ("alpha", -1.0, ">= 0")])
def test_a_config_with_a_bad_rate_is_refused_naming_the_field(field, value, rule):
    cases = _field_cases(field)
    assert cases
    for name, config in cases:
        with pytest.raises(ValueError, match=rf"\.{field} must be a finite number {rule}"):
            dataclasses.replace(config, **{field: value})


@pytest.mark.parametrize("field", ["condition", "target", "precision", "optimizer", "family", "model"])
def test_a_config_with_an_unknown_choice_is_refused_naming_it(field):
    cases = _field_cases(field)
    assert cases
    for name, config in cases:
        with pytest.raises(ValueError, match=rf"\.{field} must be one of .*got 'nonsense'"):
            dataclasses.replace(config, **{field: "nonsense"})


def test_fit_settings_refuse_what_would_train_nothing():
    for bad in ({"epochs": 0}, {"batch_size": 0}, {"lr": -1.0}, {"optimizer": "adagrad"}, {"schedule": "linear"}):
        with pytest.raises(ValueError, match=f"FitSettings.{next(iter(bad))}"):
            FitSettings(**{"epochs": 1, **bad})


# ----------------------------------------------------------------------------- required metrics

#: Per chapter: its module and a metric its pages read that the store's default (``test_acc``) does not ask for.
DROPPED = {"04": "test_correct", "05": "best_test_acc", "06": "perplexity", "08": "mean_cka_teacher",
           "92": "min_valid_loss", "93": "best_valid_acc", "91": "train_acc"}


@pytest.mark.parametrize("prefix", list(DROPPED))
def test_a_record_without_a_metric_its_chapter_reads_is_refused(prefix):
    """Every planned record of the chapter's own experiment stored with all its required metrics but one:
    the chapter's ``run`` refuses the first it loads, naming the metric, instead of drawing a page from it."""
    module = importlib.import_module(CHAPTERS[prefix])
    dropped = DROPPED[prefix]
    runs = [r for r in module.planned_runs("quick") if r.experiment == module.EXPERIMENT]
    assert runs and all(dropped in r.required_metrics for r in runs)
    for run in runs:
        metrics = {m: 0.5 for m in run.required_metrics if m != dropped}
        write_record({"experiment": run.experiment, "profile": "quick", "seed": run.seed, "name": run.name,
                      "key": run.path("quick").stem.rsplit("-", 1)[1], "config": config_dict(run.config),
                      "metrics": metrics, "history": [], "git_commit": "x", "device": "cpu", "versions": {},
                      "wall_time_s": 1.0}, run.path("quick"))
    with pytest.raises(CorruptRecordError, match=dropped):
        module.run("quick")


def test_a_chapters_sections_are_planned_with_it():
    """Chapter 04 shows the depth map (a section, :data:`untrainable.experiments.SECTIONS`): its pilots and runs
    are planned with the chapter's own, so the store checks, page 98 and ``reproduce`` see them."""
    from untrainable.experiments import SECTIONS, chapter_modules

    assert [m.__name__ for m in chapter_modules("04")] == [CHAPTERS["04"], *SECTIONS["04"]]
    experiments = {r.experiment for r in planned_runs("full", ["04"])}  # full: its learning rates are chosen
    assert {"image_guidance", "depth_map_pilots", "depth_map"} <= experiments
    assert "depth_map" not in {r.experiment for r in planned_runs("full", ["05"])}
