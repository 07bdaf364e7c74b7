"""Chapter 06: guidance across architecture families on sequences (Subramaniam et al., 2024, sequence table).

Three settings, each a target, a guide of the other family, and a task:

* ``copy``: a tanh RNN copies digit strings, guided by a causal Transformer;
* ``parity``: a Transformer encoder computes the parity of bit strings, guided by a tanh RNN;
* ``lm``: a tanh RNN models tiny-shakespeare character by character, guided by a causal Transformer
  (the paper: WikiText-103, word level).

Each setting has four runs per seed: the guide trained alone (``guide_alone``, whose weights are
cached and then serve as that seed's trained guide), and the target with no guide, with the
trained guide and with an untrained guide (randomly initialised from ``10_000 + seed`` and frozen).
:func:`run` looks each run up in the store of its profile; for a missing one (and only then) it
resolves the guides first (the trained one is its seed's ``guide_alone`` run, whose weights are
cached and retrained into the cache when a fresh clone lacks them, see
:func:`untrainable.results.run_with_weights`), then :func:`train_run` trains from the config, the
seed and the guides, resuming its per-epoch checkpoint. Its shell entry (:func:`main`) trains
missing ``full`` records, so settings can run as parallel background processes.

Activations: every recorded layer's output ``(B, T, D)`` is flattened per sequence to ``(B, T·D)``
as in the paper (``tokens="flatten"``), or compared token by token (``tokens="per_token"``, padded
positions dropped). Variable lengths are padded at the end to one ``T`` per task: RNNs and causal
models never see the padding before a sequence's last real token, the parity encoder masks it out
of attention and pooling, and in ``flatten`` mode the padded positions' outputs are part of the
flattened rows of both networks alike.

The chapter lives in three modules: :mod:`~untrainable.experiments.sequence_configs` (settings,
conditions, configs, the typed presets, the builder of its nets),
:mod:`~untrainable.experiments.sequence_runs` (training one run, its guides, the diagnoses of its
layers) and this one, the chapter contract (planned runs, the store, the validation sweep, the
preconditions, the shell entry), which re-exports what notebooks and tests use.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from untrainable.analysis.preconditions import (CheckedPrecondition, above_chance, every_guide_reaches,
                                                guide_beats_target)
from untrainable.analysis.selection import BOOK_CRITERION, choose, group_by
from untrainable.experiments import PlannedRun, shell_parser, shell_seeds
from untrainable.experiments.sequence_configs import (CHAPTER, CONDITIONS, CONDITION_LABELS, EVERY_WINDOW, EXPERIMENT,
                                                      PRESETS, REQUIRED_METRICS, SETTINGS, SETTING_LABELS, SETTING_NETS,
                                                      SWEEP_EXPERIMENT, SWEEP_SEED, SWEEP_STAGES, Config, NetConfig,
                                                      NetSizes, Run, RunSettings, SequencePreset, TaskPreset,
                                                      build_net, config_defaults, configs, guide_alone_config,
                                                      guide_seed, load_data, preset, record_name, run_name, setting_seeds,
                                                      stage_configs, sweep_configs, sweep_name)
from untrainable.experiments.sequence_runs import (TREATMENTS, guide_alone_record, initial_cka_overview,
                                                   initial_cka_table, mapping_table, resolve_guides, train_run,
                                                   trained_guide, untrained_guide, weights_path)
from untrainable.results import find_record, record_path, run_key, run_or_load, training_allowed

__all__ = [
    # the chapter contract
    "CHAPTER", "EXPERIMENT", "PRESETS", "configs", "planned_runs", "run", "main",
    # the validation sweep
    "SWEEP_EXPERIMENT", "SWEEP_SEED", "SWEEP_STAGES", "SELECTION", "sweep_configs", "sweep_name", "chosen_settings",
    "run_sweep",
    # preconditions
    "CHANCE", "GUIDE_BAR", "MIN_GAP", "used_guides", "preconditions",
    # re-exported from sequence_configs: settings, conditions, configs and typed presets
    "SETTINGS", "SETTING_NETS", "CONDITIONS", "SETTING_LABELS", "CONDITION_LABELS", "EVERY_WINDOW", "NetConfig",
    "Config", "config_defaults", "Run", "RunSettings", "NetSizes", "TaskPreset", "SequencePreset", "preset",
    "load_data", "build_net", "guide_alone_config", "guide_seed", "run_name",
    # re-exported from sequence_runs: training one run, its guides, the diagnoses
    "train_run", "weights_path", "guide_alone_record", "trained_guide", "untrained_guide", "resolve_guides",
    "mapping_table", "TREATMENTS", "initial_cka_table", "initial_cka_overview",
]

#: How the sweep chooses a learning rate (:func:`untrainable.analysis.selection.choose`).
SELECTION = BOOK_CRITERION


# ----------------------------------------------------------------------------- the validation sweep


def chosen_settings(records: list[dict[str, Any]]) -> dict[Run, RunSettings]:
    """Per run (setting, condition), the learning rate its sweep records choose on validation by the
    book's criterion (:data:`SELECTION`; the lowest validation loss, the paper's rule, chooses the same
    rates here): what a preset's ``run_settings`` hold."""
    groups = group_by(records, lambda r: Run(r["config"]["setting"], r["config"]["condition"]))
    return {k: RunSettings(lr=choose(rs, lambda r: r["config"]["lr"], SELECTION)) for k, rs in sorted(groups.items())}


def run_sweep(profile: str = "quick", device: str = "auto", force: bool = False, *,
              stages: Iterable[str] = SWEEP_STAGES, train_missing: bool | None = None) -> list[dict[str, Any]]:
    """The record of every sweep run (seed :data:`SWEEP_SEED`): stored ones loaded, missing ones trained."""
    return [_record(profile, c, SWEEP_SEED, device, force, train_missing, experiment=SWEEP_EXPERIMENT)
            for stage in stages for c in stage_configs(profile, stage)]


# ----------------------------------------------------------------------------- the chapter's runs


def planned_runs(profile: str, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """Every record of the chapter in ``profile``: the sweep, then each setting's ``guide_alone`` runs
    (a reseeded guide's too) and its target runs."""
    sweep = [PlannedRun(SWEEP_EXPERIMENT, sweep_name(c), c, SWEEP_SEED, REQUIRED_METRICS)
             for c in sweep_configs(profile)]
    runs = [PlannedRun(EXPERIMENT, run_name(c), c, s, REQUIRED_METRICS) for c in configs(profile)
            for s in setting_seeds(profile, c.setting, seeds)]
    reseeded = [PlannedRun(EXPERIMENT, run_name(guide_alone_config(c)), guide_alone_config(c), g, REQUIRED_METRICS)
                for c in configs(profile) if c.condition == "no_guide" for s, g in c.guide_reseeds
                if s in setting_seeds(profile, c.setting, seeds)]
    return list({r.path(profile): r for r in sweep + runs + reseeded}.values())


def _record(profile: str, c: Config, seed: int, device: str, force: bool, train_missing: bool | None,
            experiment: str = EXPERIMENT) -> dict[str, Any]:
    """One run's record in ``profile``: loaded when stored, else (when allowed) its guides resolved, then trained."""
    name = record_name(experiment, c)
    path = record_path(profile, experiment, name, seed, run_key(experiment, c, seed))
    needed = force or (find_record(path) is None and training_allowed(profile, force, train_missing))
    if needed and c.condition == "guide_alone":  # its weights are a later run's guide: trained under a lock
        return guide_alone_record(profile, c, seed, device, force, train_missing, experiment, name)
    guides = resolve_guides(profile, c, seed, device, train_missing, experiment) if needed else None
    return run_or_load(experiment, profile, name, c, seed, functools.partial(train_run, guides=guides),
                       device=device, force=force, train_missing=train_missing, required_metrics=REQUIRED_METRICS)


def run(profile: str = "quick", seeds: Iterable[int] | None = None, device: str = "auto", force: bool = False, *,
        settings: Iterable[str] = SETTINGS, conditions: Iterable[str] = CONDITIONS, train_missing: bool | None = None,
        smoke: bool = False, **overrides: Any) -> list[dict[str, Any]]:
    """The record of every run of the chapter (or of some settings and conditions) for every seed.

    Stored records are loaded; a missing one is trained when allowed (a missing ``full`` record
    only with ``train_missing`` or ``force``, see :func:`untrainable.results.run_or_load`).
    """
    conditions = list(conditions)
    return [_record(profile, c, s, device, force, train_missing)
            for c in configs(profile, settings, smoke, **overrides) if c.condition in conditions
            for s in setting_seeds(profile, c.setting, seeds)]


# ----------------------------------------------------------------------------- preconditions


#: Chance accuracy of the generated tasks; the bar every trained parity guide must reach on validation.
CHANCE = {"copy": 0.10, "parity": 0.50}
GUIDE_BAR = {"parity": 0.95}
#: How far the guide must be ahead of the unguided target (the pilots' rule, appendix 93): a target within
#: a few points of a perfect guide shows no failure for guidance to cure.
MIN_GAP = {"copy": 0.20, "parity": 0.10}
NET_LABELS = {"rnn": "RNN", "lstm": "LSTM", "transformer": "Transformer"}


def used_guides(records: list[dict[str, Any]], setting: str) -> list[dict[str, Any]]:
    """The ``guide_alone`` records of ``setting`` that guided its target runs (a reseeded seed's
    replacement in place of its own)."""
    mine = [r for r in records if r["config"]["setting"] == setting]
    seeds = {dict(map(tuple, r["config"].get("guide_reseeds", ()))).get(r["seed"], r["seed"])
             for r in mine if r["config"]["condition"] != "guide_alone"}
    return [r for r in mine if r["config"]["condition"] == "guide_alone" and r["seed"] in seeds]


def preconditions(records: list[dict[str, Any]]) -> list[CheckedPrecondition]:
    """What each setting's claims need from its records, checked: the unguided target learns something
    (copy-paste, parity: at least 10 points above chance), every trained guide succeeds (parity: ≥ 95 % on
    validation), and the guides beat the unguided target (accuracy; perplexity for the language model) by
    more than the seed spread."""
    checks = []
    for setting in SETTINGS:
        mine = [r for r in records if r["config"]["setting"] == setting]
        if not mine:
            continue
        control = [r for r in mine if r["config"]["condition"] == "no_guide"]
        guides = used_guides(records, setting)
        target, guide = (NET_LABELS[SETTING_NETS[setting][i]] for i in (1, 2))
        if setting in CHANCE:
            checks.append(above_chance(control, CHANCE[setting], f"the unguided {target} ({setting})"))
        if setting in GUIDE_BAR:
            checks.append(every_guide_reaches(guides, GUIDE_BAR[setting], f"every trained {guide} guide ({setting})"))
        metric = "perplexity" if setting == "lm" else "test_acc"
        checks.append(guide_beats_target(guides, control, f"the trained {guide} ({setting})", metric,
                                         min_gap=MIN_GAP.get(setting, 0.0)))
    return checks


def main(argv: list[str] | None = None) -> None:
    """Run the chapter from a shell, e.g. settings in parallel background processes (records are shared).

    Missing records are trained (this is how the ``full`` records are made). A guided run trains
    its seed's guide first when that is missing, so give each process whole settings.
    """
    parser = shell_parser("python -m untrainable.experiments.sequence_guidance", main.__doc__,
                          "distinct seeds (default: each setting's seeds, the preset's)")
    parser.add_argument("--settings", nargs="*", choices=SETTINGS, help="default: all")
    parser.add_argument("--conditions", nargs="*", choices=CONDITIONS, help="default: all")
    parser.add_argument("--sweep", choices=SWEEP_STAGES, help="train a stage of the validation sweep instead")
    args = parser.parse_args(argv)
    seeds = shell_seeds(parser, args.seeds)
    settings, conditions = set(args.settings or SETTINGS), set(args.conditions or CONDITIONS)
    if args.sweep:
        for c in stage_configs(args.profile, args.sweep):
            if c.setting in settings and c.condition in conditions:
                _record(args.profile, c, SWEEP_SEED, args.device, False, True, experiment=SWEEP_EXPERIMENT)
        return
    run(args.profile, seeds=seeds, device=args.device,
        settings=tuple(sorted(settings, key=SETTINGS.index)), conditions=conditions, train_missing=True)


if __name__ == "__main__":
    main()
