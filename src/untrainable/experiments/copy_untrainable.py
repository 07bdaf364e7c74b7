"""Copy-paste where the RNN fails (issue #31, item 4): does a Transformer guide rescue an RNN at chance?

Chapter 06 tests the paper's copy-paste claim at 5-10 digits, where the 4 x 128 tanh RNN already
learns (about 77 % token accuracy). The paper's claim is a rescue: at 20-40 digits its RNN is at chance
(14.35 %: chance plus the predictable end token) and a trained (43 %) or an untrained Transformer guide
(42.56 %) lifts it. This module trains that regime, at **10 to 20 digits**: appendix 93's committed
pilots (``results/full/sequence_pilots``, seed 0, strings drawn fresh every epoch) show the RNN at chance
from 10 digits on, whatever its learning rate (10-20 digits: test token accuracy 9.4 % to 10.1 % and best
validation accuracy 10.2 % to 10.5 % at 1e-4, 3e-4, 1e-3 and 3e-3; 20-40 digits: 9.8 % to 10.2 %), while
the Transformer guide alone learns the task (99.9 % at 10-20 digits, 99.7 % at 20-40). Both ranges show
the failure; at 20-40 digits every guided step takes about twice as long (a guided run: about 25 one-thread
minutes on this shared CPU), which does not fit the issue's budget beside the depth map, so the CPU profiles
run 10-20 digits (the ``paper`` profile keeps the paper's 20-40). :func:`pilot_preconditions` reads these
numbers from the records; the tests hold them.

Everything but the lengths comes from chapter 06's copy-paste configs of the same profile
(:func:`untrainable.experiments.sequence_configs.configs`: nets, data sizes, epochs, fresh strings, probes),
and every run is trained by chapter 06's :func:`~untrainable.experiments.sequence_runs.train_run`: the
trained guide is the seed's ``guide_alone`` run (at the pilots' guide learning rate, which reached 99.9 %),
the untrained guide is initialised from ``10_000 + seed``. The rows (:data:`ROWS`) are the control and each
guide under chapter 06's per-token CKA (``tokens="per_token"``), then each guide under the flattened-sequence
CKA the paper used (``tokens="flatten"``). The control trains without a guidance term, so one control
serves both token rows (its probes measure per token); one ``guide_alone`` run per seed guides both.

Stages (:data:`STAGES`):

1. **pilots**: the RNN alone at each of appendix 93's learning rates and the Transformer alone, at these
   lengths: in ``full`` the committed 10-20-digit cell of appendix 93 itself (same configs, same records);
2. **sweep**: the guide alone and every row at each of ``sweep_lrs``, seed :data:`SWEEP_SEED` (no reported
   run uses it); each row's learning rate is chosen on validation by
   :func:`untrainable.analysis.selection.choose` with the book's criterion :data:`SELECTION`;
3. **runs**: each seed's guide alone, then every row at its chosen learning rate.

:func:`preconditions` says whether the regime holds in the runs: the control fails (every seed's token
accuracy within :data:`MARGIN` of chance, :func:`control_fails`) and every trained guide reaches
:data:`GUIDE_BAR`. It is a section of chapter 06 (:data:`untrainable.experiments.SECTIONS`), beside the
chapter's 5-10 digit regime, where the RNN learns; page 98 judges its rows (``seq-copyfail-*``).

What it costs (:func:`estimate`, ``--estimate``): the fastest of five steps on one thread of the shared 2-core
CPU (6 Dec 2026) was 41-81 ms for the RNN, 121-185 ms guided (per token or flattened), 128-171 ms for the
Transformer alone, so about 80 one-thread minutes for the sweep's 16 runs and 165 for the 30 runs of five
seeds; the pilots' wall times ran up to twice such estimates on the busy machine.

The rows, configs and presets are :mod:`untrainable.experiments.copy_untrainable_configs` (re-exported here).

From a shell (``UNTRAINABLE_THREADS=1``; ``--rows`` splits a stage over parallel processes)::

    python -m untrainable.experiments.copy_untrainable --stage sweep --estimate
    python -m untrainable.experiments.copy_untrainable --stage sweep --rows no_guide trained_guide-per_token
    python -m untrainable.experiments.copy_untrainable --stage runs --seeds 0 1
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from untrainable import guidance as G
from untrainable.analysis.preconditions import CheckedPrecondition, every_guide_reaches, stays_at_chance
from untrainable.experiments import PlannedRun, print_estimate, shell_parser, shell_seeds
from untrainable.experiments import sequence_configs as S
from untrainable.experiments import sequence_pilots as sp
from untrainable.experiments.copy_untrainable_configs import (CONDITIONS, CONTROL, EXPERIMENT, NAME, PRESETS,
                                                              REQUIRED_METRICS, ROWS, SELECTION, STAGES,
                                                              SWEEP_EXPERIMENT, SWEEP_SEED, CopyPreset, Row,
                                                              chosen_lrs, guide_config, learning_rates, pilot_configs,
                                                              preset, row_config, row_of, rows, run_configs, run_name,
                                                              run_seeds, shrink, sweep_configs, sweep_name)
from untrainable.experiments.sequence_guidance import CHANCE
from untrainable.experiments.sequence_runs import guide_alone_record, resolve_guides, train_run, untrained_guide
from untrainable.results import find_record, run_or_load, run_or_load_resolved, will_train
from untrainable.runtime import log
from untrainable.train import cross_entropy, cross_entropy_loss

# with the names of copy_untrainable_configs (rows, configs, presets), re-exported
__all__ = ["EXPERIMENT", "SWEEP_EXPERIMENT", "SWEEP_SEED", "SELECTION", "NAME", "STAGES", "CONDITIONS", "Row",
           "ROWS", "CONTROL", "REQUIRED_METRICS", "MARGIN", "GUIDE_BAR", "CopyPreset", "PRESETS", "shrink", "preset",
           "rows", "row_config", "guide_config", "run_name", "sweep_name", "pilot_configs", "sweep_configs",
           "run_configs", "chosen_lrs", "learning_rates", "run_pilots", "run_sweep", "run", "planned_runs",
           "control_fails", "preconditions", "pilot_preconditions", "LABELS", "CONTRASTS", "shown", "sweep_choices", "EVAL_BATCH", "step_seconds", "run_seconds",
           "estimate", "main"]

#: The control fails when every seed's token accuracy is at most this far above chance (chapter 06's
#: copy-paste chance, one of ten digits); the trained guide has something to give when it reaches the bar.
MARGIN = 0.05
GUIDE_BAR = 0.95


# ----------------------------------------------------------------------------- training


def _record(profile: str, experiment: str, name: str, c: S.Config, seed: int, device: str, force: bool,
            train_missing: bool | None) -> dict[str, Any]:
    """One record: loaded when stored, else (when allowed) trained, a guided row after its guides."""
    log(f"{experiment}/{name} seed {seed} ({profile})")
    if c.condition == "guide_alone" and will_train(experiment, profile, name, c, seed, force, train_missing):
        return guide_alone_record(profile, c, seed, device, force, train_missing, experiment, name)
    # the trained guide is the control's guide_alone run (guide_config), whatever the row's tokens
    source = dataclasses.replace(c, tokens=CONTROL.tokens)
    return run_or_load_resolved(experiment, profile, name, c, seed, train_run,
                                lambda: {} if c.condition == "guide_alone" else
                                {"guides": resolve_guides(profile, source, seed, device, train_missing, experiment)},
                                device=device, force=force, train_missing=train_missing,
                                required_metrics=REQUIRED_METRICS)


def run_pilots(profile: str, device: str = "auto", force: bool = False, *,
               train_missing: bool | None = None) -> list[dict[str, Any]]:
    """The record of every pilot (appendix 93's store, seed 0): stored ones loaded, missing ones trained."""
    return [run_or_load(sp.EXPERIMENT, profile, sp.run_name(c), c, s, train_run, device=device, force=force,
                        train_missing=train_missing, required_metrics=REQUIRED_METRICS)
            for c in pilot_configs(profile) for s in sp.DEFAULT_SEEDS]


def run_sweep(profile: str, names: Iterable[str] | None = None, device: str = "auto", force: bool = False, *,
              train_missing: bool | None = None, smoke: bool = False) -> list[dict[str, Any]]:
    """The record of every sweep run (of the rows ``names``; seed :data:`SWEEP_SEED`): loaded or trained."""
    return [_record(profile, SWEEP_EXPERIMENT, sweep_name(c), c, SWEEP_SEED, device, force, train_missing)
            for c in sweep_configs(profile, names, preset(profile, smoke))]


def run(profile: str = "quick", seeds: Iterable[int] | None = None, device: str = "auto", force: bool = False, *,
        names: Iterable[str] | None = None, train_missing: bool | None = None,
        smoke: bool = False) -> list[dict[str, Any]]:
    """The record of each seed's guide alone and of every row (or of the rows ``names``) for every seed:
    the sweep first (loaded, or trained where allowed), then each row at the learning rate it chose."""
    p = preset(profile, smoke)
    lrs = learning_rates(p, run_sweep(profile, names, device, train_missing=train_missing, smoke=smoke))
    return [_record(profile, EXPERIMENT, run_name(c), c, s, device, force, train_missing)
            for s in run_seeds(p, profile, seeds) for c in run_configs(profile, lrs, names, p)]


def planned_runs(profile: str, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """Every record the regime needs that can be named now: the pilots, the sweep, each seed's guide alone,
    and the runs of the rows whose learning rate the preset holds (the others await the sweep)."""
    p = preset(profile)
    pilots = [PlannedRun(sp.EXPERIMENT, sp.run_name(c), c, s, REQUIRED_METRICS)
              for c in pilot_configs(profile) for s in sp.DEFAULT_SEEDS]
    sweep = [PlannedRun(SWEEP_EXPERIMENT, sweep_name(c), c, SWEEP_SEED, REQUIRED_METRICS)
             for c in sweep_configs(profile, p=p)]
    chosen = [r for r in ROWS if r in p.chosen_lrs]
    runs = [guide_config(profile, p)] + [row_config(profile, r, p.chosen_lrs[r], p) for r in chosen]
    return pilots + sweep + [PlannedRun(EXPERIMENT, run_name(c), c, s, REQUIRED_METRICS)
                             for s in run_seeds(p, profile, seeds) for c in runs]


# ----------------------------------------------------------------------------- where the regime holds


def control_fails(records: list[dict[str, Any]], name: str = "the control", chance: float = CHANCE["copy"],
                  margin: float = MARGIN, metric: str = "test_acc") -> CheckedPrecondition:
    """Does the control fail, so that a guided gain is a rescue? Every record's ``metric`` (each seed, or
    each pilot learning rate) is at most ``margin`` above ``chance``
    (:func:`untrainable.analysis.preconditions.stays_at_chance`, which page 98's ``at_chance`` rows read too)."""
    return stays_at_chance(records, chance, name, metric, margin)


def preconditions(records: list[dict[str, Any]]) -> list[CheckedPrecondition]:
    """Whether the regime holds in the runs' records: the unguided RNN stays at chance on every seed
    (:func:`control_fails`), and every seed's trained Transformer guide reaches :data:`GUIDE_BAR` on
    validation."""
    control = [r for r in records if r["config"]["condition"] == "no_guide"]
    guides = [r for r in records if r["config"]["condition"] == "guide_alone"]
    return [control_fails(control, "the unguided RNN"),
            every_guide_reaches(guides, GUIDE_BAR, "every trained Transformer guide")]


def pilot_preconditions(records: list[dict[str, Any]]) -> list[CheckedPrecondition]:
    """Why these lengths: in the pilots' records the RNN alone stays at chance at every learning rate, and
    the Transformer alone reaches :data:`GUIDE_BAR` on validation."""
    target = S.SETTING_NETS["copy"][1]
    rnn = [r for r in records if r["config"]["net"]["family"] == target]
    tf = [r for r in records if r["config"]["net"]["family"] != target]
    return [control_fails(rnn, "the RNN alone at every pilot learning rate"),
            every_guide_reaches(tf, GUIDE_BAR, "the Transformer alone")]


# ----------------------------------------------------------------------------- what the chapter shows

#: Each record name as the chapter labels it, in the order it shows them.
LABELS = {"copy-no_guide": "no guide", "copy-trained_guide-per_token": "trained guide (CKA per token)",
          "copy-untrained_guide-per_token": "untrained guide (CKA per token)",
          "copy-trained_guide-flatten": "trained guide (flattened CKA)",
          "copy-untrained_guide-flatten": "untrained guide (flattened CKA)", "copy-guide_alone": "guide alone"}
#: Each guided row against the control (record names, as :func:`untrainable.analysis.contrasts_table` reads them).
CONTRASTS = tuple((name, "copy-no_guide") for name in list(LABELS)[1:5])


def shown(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of the rows the chapter shows (:data:`LABELS`), in that order."""
    return [r for name in LABELS for r in records if r["name"] == name]


def sweep_choices(lrs: Mapping[Row, float]) -> dict[tuple[str, str], dict[str, float]]:
    """The rows' chosen learning rates keyed as :func:`untrainable.analysis.sweep_table` reads them with
    ``group="tokens"``: ``(tokens, condition) -> {"lr": ...}``."""
    return {(r.tokens, r.condition): {"lr": lr} for r, lr in lrs.items()}


# ----------------------------------------------------------------------------- what it costs

#: Strings per evaluation batch (chapter 06's ``eval_batch_size``).
EVAL_BATCH = 256


def step_seconds(c: S.Config, steps: int = 5) -> dict[str, float]:
    """Seconds per training step of run ``c`` on one thread of this machine (random strings of its lengths,
    untrained weights, an untrained guide in the trained guide's place: the same shapes) and per evaluation
    batch, each the fastest of ``steps`` after a warm-up: on a shared machine the fastest is the one least
    disturbed, so the estimate is a lower bound of what a busy machine takes."""
    data = S.load_data(dataclasses.replace(c, n_train=2 * c.batch_size, n_valid=EVAL_BATCH, n_test=EVAL_BATCH))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = S.build_net(c.net, data)
            loss_fn: Any = cross_entropy_loss
            if c.condition in ("trained_guide", "untrained_guide"):
                loss_fn = G.GuidanceLoss(model, untrained_guide(c, data, 0), data.train[0][:4], alpha=c.alpha,
                                         distance=c.distance, task_loss=cross_entropy, tokens=c.tokens,
                                         pad_id=data.pad_id)
            return {"step_s": _fastest_step(model, loss_fn, data, c, steps),
                    "eval_batch_s": _fastest_eval(model, data.valid[0], steps)}
    finally:
        torch.set_num_threads(threads)


def _fastest_step(model: torch.nn.Module, loss_fn: Any, data: S.SequenceData, c: S.Config, steps: int) -> float:
    """The fastest of ``steps`` training steps (Adam, gradient clipping as the run has it), after one warm-up."""
    opt = torch.optim.Adam(model.parameters(), lr=c.lr)
    x, y = data.train
    model.train()
    times = []
    for i in range(steps + 1):
        idx = torch.randperm(len(y))[: c.batch_size]
        t0 = time.perf_counter()
        opt.zero_grad()
        loss_fn(model, x[idx], y[idx])[0].backward()
        if c.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), c.clip_grad_norm)
        opt.step()
        times.append(time.perf_counter() - t0)
    return min(times[1:])


def _fastest_eval(model: torch.nn.Module, x: torch.Tensor, steps: int) -> float:
    """The fastest of ``steps`` forward passes over one evaluation batch without gradients, after a warm-up."""
    model.eval()
    times = []
    with torch.no_grad():
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return min(times[1:])


def run_seconds(c: S.Config, timing: Mapping[str, float]) -> float:
    """One run's estimated seconds: its training steps, and every epoch's evaluation of its validation and
    test splits (an upper bound: the test split is evaluated only at epochs a checkpoint rule can pick)."""
    batches = math.ceil(c.n_valid / EVAL_BATCH) + math.ceil(c.n_test / EVAL_BATCH)
    return c.epochs * (math.ceil(c.n_train / c.batch_size) * timing["step_s"] + batches * timing["eval_batch_s"])


def _shape(c: S.Config) -> tuple[str, str]:
    """What a step's time depends on: the network trained, and the guidance term's token treatment (if any)."""
    guided = c.condition in ("trained_guide", "untrained_guide")
    return c.net.family, c.tokens if guided else "none"


def estimate(profile: str, stage: str, names: Iterable[str] | None = None, seeds: Iterable[int] | None = None,
             steps: int = 5) -> list[dict[str, Any]]:
    """The runs of ``stage`` (``pilots``, ``sweep`` or ``runs``), each with whether it is stored and its
    estimated one-thread seconds (:func:`step_seconds`, measured once per :func:`_shape`; a row whose
    learning rate is not chosen yet is timed at the first sweep rate: time does not depend on it)."""
    p = preset(profile)
    if stage == "pilots":
        planned = [PlannedRun(sp.EXPERIMENT, sp.run_name(c), c, s) for c in pilot_configs(profile)
                   for s in sp.DEFAULT_SEEDS]
    elif stage == "sweep":
        planned = [PlannedRun(SWEEP_EXPERIMENT, sweep_name(c), c, SWEEP_SEED) for c in sweep_configs(profile, names)]
    else:
        lrs = {r: p.chosen_lrs.get(r, p.sweep_lrs[0]) for r in ROWS}
        planned = [PlannedRun(EXPERIMENT, run_name(c), c, s) for s in run_seeds(p, profile, seeds)
                   for c in run_configs(profile, lrs, names)]
    timings: dict[tuple[str, str], dict[str, float]] = {}
    out = []
    for r in planned:
        shape = _shape(r.config)
        if shape not in timings:
            timings[shape] = step_seconds(r.config, steps)
        out.append({"experiment": r.experiment, "name": r.name, "seed": r.seed,
                    "lr chosen": stage != "runs" or r.config.condition == "guide_alone" or row_of(r.config) in
                    p.chosen_lrs, "stored": find_record(r.path(profile)) is not None, **timings[shape],
                    "estimated_s": run_seconds(r.config, timings[shape])})
    return out


# ----------------------------------------------------------------------------- from a shell


def main(argv: list[str] | None = None) -> None:
    """Train the regime's records from a shell, one stage at a time (missing records are trained), or with
    ``--estimate`` print the stage's planned runs and their estimated one-thread cost (nothing trains).

    Stages: ``pilots`` (appendix 93's RNN and Transformer alone at these lengths: stored in ``full``),
    ``sweep`` (the guide alone and each row at each sweep learning rate, seed 100), ``runs`` (each seed's
    guide alone and every row at the learning rate the sweep chose; the sweep must be stored first).
    ``--rows`` splits the sweep or the runs over parallel one-thread processes (each seed's guide is trained
    once, under a lock); an interrupted run resumes.
    """
    parser = shell_parser(f"python -m {NAME}", main.__doc__, "distinct seeds of the runs stage (default: the "
                                                             "preset's)")
    parser.add_argument("--stage", choices=STAGES, required=True)
    parser.add_argument("--rows", nargs="*", choices=[str(r) for r in ROWS], help="default: every row")
    parser.add_argument("--estimate", action="store_true", help="print the planned runs and their cost; train nothing")
    args = parser.parse_args(argv)
    seeds = shell_seeds(parser, args.seeds)
    if args.stage != "runs" and seeds is not None:
        parser.error(f"--seeds: the {args.stage} stage has its own seed (the pilots' 0, the sweep's {SWEEP_SEED})")
    if args.stage == "pilots" and args.rows:
        parser.error("--rows: the pilots stage has no rows (the RNN and the Transformer alone)")
    if args.estimate:
        print_estimate(estimate(args.profile, args.stage, args.rows, seeds),
                       cost=lambda r: f"{r['step_s'] * 1000:.1f} ms/step",
                       note="training steps and per-epoch evaluation at the fastest measured step; probes not counted")
    elif args.stage == "pilots":
        run_pilots(args.profile, args.device, train_missing=True)
    elif args.stage == "sweep":
        run_sweep(args.profile, args.rows, args.device, train_missing=True)
    else:
        p = preset(args.profile)
        lrs = learning_rates(p, run_sweep(args.profile, args.rows, args.device, train_missing=False))
        for s in run_seeds(p, args.profile, seeds):
            for c in run_configs(args.profile, lrs, args.rows, p):
                _record(args.profile, EXPERIMENT, run_name(c), c, s, args.device, False, True)


if __name__ == "__main__":
    main()
