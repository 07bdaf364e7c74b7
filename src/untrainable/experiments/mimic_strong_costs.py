"""What mimicry with a strong teacher (:mod:`untrainable.experiments.mimic_strong`) costs: a stage's planned work,
each row's one-thread seconds estimated from steps timed once per network on this machine (:func:`estimate`,
the chapter's ``--estimate``).

In ``full``, the issue's budget is about 4 hours of the 2-core machine, 8 one-thread hours, for two new teachers
(seed 0 is stored), 12 sweep runs and 22 runs of 30 epochs over a transfer set of 12,000 images and two views
(36,000 an epoch). Timed on one thread of the shared 2-core CPU (6 Dec 2026, with two other trainings running; the
fastest of five steps): a student step 41-66 ms (bf16, widths 256-4096), a teacher step 372-392 ms (its stored
seed-0 record took 26 minutes on a quieter machine, where the estimate says 36-38), so about 72 one-thread minutes
for the teachers, 2 for the ensemble's logits, 96 for the sweep and 182 for the runs: about 350 one-thread
minutes, 3 hours on both cores. The rest of the budget is the margin of a busy machine over these lower bounds; a
transfer set of 15,000 images came to about 500 one-thread minutes (4.1 hours) in a first, busier timing: too
close to the budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from untrainable import mimic
from untrainable.experiments import PlannedRun
from untrainable.experiments import image_guides as guides
from untrainable.experiments.mimic_strong_configs import (EXPERIMENT, SWEEP_EXPERIMENT, SWEEP_SEED, TEACHER_EXPERIMENT,
                                                          StrongPreset, StudentConfig, cell_of, cells, preset,
                                                          run_configs, run_name, run_seeds, sweep_configs, sweep_name)
from untrainable.models import build_guide
from untrainable.precision import autocast, channels_last
from untrainable.profiles import check_seeds
from untrainable.results import find_record
from untrainable.train import to_device

__all__ = ["EVAL_BATCH", "step_seconds", "teacher_step_seconds", "student_seconds", "estimate"]


#: Images per evaluation batch (:class:`untrainable.train.FitSettings`' default).
EVAL_BATCH = 1000


def _fastest(step: Any, steps: int) -> float:
    """The fastest of ``steps`` calls of ``step`` after one warm-up: on a shared machine the fastest is the
    one least disturbed, so an estimate from it is a lower bound of what a busy machine takes."""
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return min(times[1:])


def _timed(model: nn.Module, loss_fn: Any, target: torch.Tensor, batch: int, lr: float, precision: str,
           steps: int, optimizer: str = "adam") -> dict[str, float]:
    """Seconds per training step of ``model`` on random images (one thread, ``precision``) and per evaluation
    batch of :data:`EVAL_BATCH` images without gradients."""
    device = torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    channels_last(model, precision, device)  # as fit() lays out a bf16 convolutional net, before its optimiser
    x = to_device(torch.randn(EVAL_BATCH, 3, 32, 32, generator=gen), device, model)
    opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def train_step() -> None:
        opt.zero_grad()
        with autocast(device, precision):
            loss = loss_fn(model, x[:batch], target[:batch])[0]
        loss.backward()
        opt.step()

    def eval_batch() -> None:
        with torch.no_grad(), autocast(device, precision):
            model(x)

    try:
        model.train()
        step_s = _fastest(train_step, steps)
        model.eval()
        return {"step_s": step_s, "eval_batch_s": _fastest(eval_batch, steps)}
    finally:
        torch.set_num_threads(threads)


def step_seconds(c: StudentConfig, steps: int = 5) -> dict[str, float]:
    """Seconds per training step of student ``c`` and per evaluation batch, on one thread of this machine."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = mimic.ShallowStudent(hidden=c.hidden, bottleneck=c.bottleneck, conv_channels=c.conv_channels,
                                     dropout=c.dropout)
        target = torch.randint(0, 10, (c.batch_size,)) if c.loss == "labels" else torch.randn(c.batch_size, 10)
        return _timed(model, mimic.mimic_loss_fn(c.loss), target, c.batch_size, c.lr, c.precision, steps)


def teacher_step_seconds(g: guides.GuideConfig, steps: int = 3) -> dict[str, float]:
    """Seconds per training step of teacher ``g`` (untrained weights: the same shapes) and per evaluation batch."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_guide(g, g.num_classes)
        return _timed(model, mimic.mimic_loss_fn("labels"), torch.randint(0, 10, (g.batch_size,)), g.batch_size,
                      g.lr, g.precision, steps, g.optimizer)


def _n_train(n_train: int | None, n_valid: int) -> int:
    """Training images: ``n_train``, or CIFAR-10's 50,000 less the validation split."""
    return n_train if n_train is not None else 50_000 - n_valid


def student_seconds(c: StudentConfig, timing: Mapping[str, float]) -> float:
    """One student's estimated seconds: its steps over the transfer set, and every epoch's evaluation of the
    validation and test splits (an upper bound: the test split is evaluated only where a rule can pick)."""
    batches = math.ceil(_n_train(c.n_train, c.n_valid) * (1 + c.views) / c.batch_size)
    evaluated = math.ceil(c.n_valid / EVAL_BATCH) + math.ceil((c.n_test or 10_000) / EVAL_BATCH)
    return c.epochs * (batches * timing["step_s"] + evaluated * timing["eval_batch_s"])


def _teacher_seconds(g: guides.GuideConfig, timing: Mapping[str, float]) -> float:
    """One teacher's estimated seconds: its steps, and every epoch's validation and test-curve evaluation."""
    batches = math.ceil(_n_train(g.n_train, g.n_valid) / g.batch_size)
    evaluated = math.ceil(g.n_valid / EVAL_BATCH) + math.ceil((g.n_test_curve or g.n_test or 10_000) / EVAL_BATCH)
    return g.epochs * (batches * timing["step_s"] + evaluated * timing["eval_batch_s"])


def _logit_seconds(p: StrongPreset, timing: Mapping[str, float]) -> float:
    """The ensemble's forward passes over the transfer set and the test split, computed once and cached (timed in
    the teachers' training precision; the logits are computed in fp32, so in bf16 profiles a lower bound)."""
    images = _n_train(p.n_train, p.teacher.n_valid) * (1 + p.views) + (p.n_test or 10_000)
    return len(p.ensemble) * math.ceil(images / EVAL_BATCH) * timing["eval_batch_s"]


def estimate(profile: str, stage: str, widths: Iterable[int] | None = None, seeds: Iterable[int] | None = None,
             steps: int = 5, timings: dict[Any, dict[str, float]] | None = None) -> list[dict[str, Any]]:
    """The planned work of ``stage``, a row each (a teacher, the ensemble's logits, a student): whether it
    is stored and its estimated one-thread seconds, from steps timed once per network on this machine
    (:func:`step_seconds`, :func:`teacher_step_seconds`; ``timings``: the ones already measured, by cell or
    ``"teacher"``, filled in); a cell whose learning rate is not chosen yet is timed at the first sweep rate
    (time does not depend on it)."""
    p = preset(profile)
    timings = {} if timings is None else timings
    if "teacher" not in timings and stage in ("teachers", "sweep"):
        timings["teacher"] = teacher_step_seconds(p.teacher)
    if stage == "teachers":
        wanted = p.ensemble if seeds is None else check_seeds(tuple(seeds))
        return [{"name": f"{TEACHER_EXPERIMENT}/{guides.guide_name(p.teacher)} seed {s}", **timings["teacher"],
                 "stored": find_record(PlannedRun(TEACHER_EXPERIMENT, guides.guide_name(p.teacher), p.teacher,
                                                  s).path(profile)) is not None,
                 "lr chosen": True, "estimated_s": _teacher_seconds(p.teacher, timings["teacher"])} for s in wanted]
    if stage == "sweep":
        planned = [PlannedRun(SWEEP_EXPERIMENT, sweep_name(c), c, SWEEP_SEED) for c in sweep_configs(p, widths)]
        rows = [{"name": f"the ensemble's logits ({len(p.ensemble)} teachers, computed once)", **timings["teacher"],
                 "stored": False, "lr chosen": True, "estimated_s": _logit_seconds(p, timings["teacher"])}]
    else:
        lrs = {cell: p.chosen_lrs.get(cell, p.sweep_lrs[0]) for cell in cells(p, widths)}
        planned = [PlannedRun(EXPERIMENT, run_name(c), c, s) for c in run_configs(p, lrs, widths)
                   for s in run_seeds(p, c, seeds)]
        rows = []
    for r in planned:
        cell = cell_of(r.config)
        if cell not in timings:
            timings[cell] = step_seconds(r.config, steps)
        rows.append({"name": f"{r.experiment}/{r.name} seed {r.seed}", **timings[cell],
                     "stored": find_record(r.path(profile)) is not None,
                     "lr chosen": stage == "sweep" or cell in p.chosen_lrs,
                     "estimated_s": student_seconds(r.config, timings[cell])})
    return rows
