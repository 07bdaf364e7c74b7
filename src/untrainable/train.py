"""One training loop for every classifier and sequence model in the book.

The loop is deliberately plain (whole-tensor datasets indexed per batch, Adam or SGD, an optional
cosine schedule) so that what differs between chapters is only the loss: guidance and mimicry
plug in through ``loss_fn``, and per-epoch measurements (alignment, a guidance loss's diagnostics)
through ``on_epoch_start``/``on_epoch_end``. Optional, for runs that choose by validation as a
practitioner would: a held-out validation split evaluated every epoch (``valid_loss``/``valid_acc``),
the best-validation weights kept (and restored at the end when asked), and per-batch augmentation
(``augment(xb, generator)``, drawn from the run's generator so a resumed run sees the same views).
It shows a tqdm bar, trains in the precision its settings resolve to (:mod:`untrainable.precision`), and
writes an atomic checkpoint after every epoch (weights, optimiser, random states, the history with
every per-epoch measurement, the caller's extra ``state`` and the training seconds so far), so an
interrupted ``full`` run resumes where it stopped and ends with the same record as an uninterrupted one.

No non-finite number reaches a record: a NaN or infinite training loss, test loss or output stops
training with :class:`NonFiniteLossError`, naming the run, the epoch and the step.

Sequence targets need nothing else: when the logits are ``(B, T, V)`` and the labels ``(B, T)``,
loss and accuracy are per token (:func:`cross_entropy`), and label ``-100`` (:data:`IGNORE`) marks
positions that count for neither (the prompt of the copy task, padding).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.std import tqdm

from untrainable import distributed as D
from untrainable.config_checks import check_fields
from untrainable.data import batches
from untrainable.files import load_torch, save_torch_atomic
from untrainable.precision import PRECISIONS, autocast, channels_last, training_precision
from untrainable.runtime import eval_mode, log

__all__ = ["IGNORE", "BEST_BY", "OPTIMIZERS", "SCHEDULES", "NonFiniteLossError", "FitSettings", "LossFn", "EpochHook",
           "Augment", "cross_entropy", "cross_entropy_loss", "correct_and_count", "correct_string", "rule_pickable", "make_optimizer",
           "lr_factor", "evaluate", "best_epoch", "fit"]

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

#: The label of positions that count for neither loss nor accuracy (``F.cross_entropy``'s ignore_index).
IGNORE = -100


#: ``on_epoch_end(epoch, model)``: values to merge into that epoch's history row (or None).
EpochHook = Callable[[int, nn.Module], "dict[str, Any] | None"]

#: ``augment(xb, generator)``: a batch of training inputs (on the CPU) -> augmented views of the same shape.
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

#: The validation metrics the best weights can be chosen by: the lowest loss, or the highest accuracy.
BEST_BY = ("valid_loss", "valid_acc")
#: The optimisers :func:`make_optimizer` builds and the schedules :func:`lr_factor` knows: a config's choices.
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step")


class NonFiniteLossError(FloatingPointError):
    """A loss or a model output became NaN or infinite; the message says where."""


def _per_token(logits: torch.Tensor, y: torch.Tensor) -> bool:
    """Sequence logits ``(B, T, V)`` with hard labels ``(B, T)``."""
    return logits.dim() > 2 and y.dim() == logits.dim() - 1


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of class logits ``(B, C)``, or per token of sequence logits ``(B, T, V)`` with
    labels ``(B, T)``; positions labelled :data:`IGNORE` are left out (the mean is over the rest)."""
    if _per_token(logits, y):
        logits, y = logits.reshape(-1, logits.shape[-1]), y.reshape(-1)
    return F.cross_entropy(logits, y, reduction=reduction, ignore_index=IGNORE)


def correct_and_count(logits: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    """``(correct, counted)``: examples (or tokens) whose top logit is the label, and how many count.

    With soft targets (a teacher's logits, same shape as ``logits``) it is the agreement with the
    teacher's top class; positions labelled :data:`IGNORE` are not counted.
    """
    hard = y.argmax(-1) if y.shape == logits.shape else y
    keep = hard != IGNORE
    return int(((logits.argmax(-1) == hard) & keep).sum()), int(keep.sum())


def cross_entropy_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain task loss: returns ``(loss, logits)``."""
    logits = model(x)
    return cross_entropy(logits, y), logits


@dataclass(frozen=True)
class FitSettings:
    """Optimisation settings shared by every classifier run, checked when made (a zero batch size or
    epoch count would otherwise train nothing and store a record of it)."""

    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" | "adamw" | "sgd"
    schedule: str = "constant"  # "constant" | "cosine" | "step" (x0.1 after 30 %, 60 % and 90 % of the steps)
    eval_batch_size: int = 1000
    clip_grad_norm: float | None = None  # clip the gradient's global norm (recurrent nets), None: never
    precision: str = "fp32"  # "fp32" | "bf16" | "auto": bf16 autocast where products are native (untrainable.precision)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        check_fields(self, positive=("epochs", "batch_size", "lr", "eval_batch_size", "clip_grad_norm"),
                     non_negative=("weight_decay",), choices={"optimizer": OPTIMIZERS, "schedule": SCHEDULES})


def make_optimizer(params, s: FitSettings) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD with Nesterov momentum 0.9.

    Adam and AdamW use PyTorch's fused kernels (one pass per parameter instead of several
    element-wise ones) unless the run is pinned to ``precision="fp32"``: the committed fp32 records
    were trained with the default implementation, which rounds differently. On a CPU the fused update
    makes a bf16 step of a fully connected net about a fifth faster (appendix 91).
    """
    fused = {"fused": True} if s.precision != "fp32" else {}
    if s.optimizer == "adam":
        return torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay, **fused)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay, **fused)
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.lr, momentum=0.9, nesterov=True, weight_decay=s.weight_decay)
    raise ValueError(f"unknown optimizer {s.optimizer!r}: choose adam, adamw or sgd")


def lr_factor(s: FitSettings, step: int, total_steps: int) -> float:
    """Multiplier on the base learning rate at ``step``: cosine decays to zero at the end; step
    multiplies by 0.1 after each 30 % of the steps, as the guidance paper's image runs do (x0.1
    every 30 of their 100 epochs)."""
    if s.schedule == "constant":
        return 1.0
    if s.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    if s.schedule == "step":
        return 0.1 ** math.floor(min(step, total_steps) / (0.3 * total_steps))
    raise ValueError(f"unknown schedule {s.schedule!r}: choose constant, cosine or step")


def to_device(x: Any, device: torch.device, model: nn.Module) -> Any:
    """A batch on ``device``, in channels_last memory when ``model`` is (images into a bf16 conv net).

    An ``IndexedBatch`` of the guidance bank moves the same way (it has ``dim`` and ``to``).
    """
    if x.dim() == 4 and _is_channels_last(model):
        return x.to(device, non_blocking=True, memory_format=torch.channels_last)
    return x.to(device, non_blocking=True)


def _is_channels_last(model: nn.Module) -> bool:
    """Whether the model's first 4-d weight is stored channels_last."""
    weight = next((p for p in model.parameters() if p.dim() == 4), None)
    return (weight is not None and weight.is_contiguous(memory_format=torch.channels_last)
            and not weight.is_contiguous())


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch_size: int = 1000,
    precision: str = "fp32", keep_correct: bool = False,
) -> dict[str, Any]:
    """Mean cross-entropy and accuracy of ``model`` (in eval mode) on ``(x, y)``: per example, or
    per counted token for sequence labels (see :func:`cross_entropy`). The forward pass runs in
    ``precision`` (as in training); the loss is summed in fp32. ``keep_correct`` (example labels only)
    adds ``correct``, :func:`correct_string` of the same forward pass: one pass over the test split where
    an epoch needs both (it was a third of a small net's epoch)."""
    total_loss, correct, count, right = 0.0, 0, 0, []
    with eval_mode(model):
        for idx in batches(len(y), batch_size):
            xb, yb = to_device(x[idx], device, model), y[idx].to(device, non_blocking=True)
            with autocast(device, precision):
                logits = model(xb)
            if not torch.isfinite(logits).all():  # accuracy from NaN logits would be a made-up number
                raise NonFiniteLossError(f"the model's outputs are not finite on evaluation examples "
                                         f"{int(idx[0])}..{int(idx[-1])}")
            total_loss += cross_entropy(logits.float(), yb, reduction="sum").item()
            c, n = correct_and_count(logits, yb)
            correct, count = correct + c, count + n
            if keep_correct:
                right.append(logits.argmax(1).cpu() == y[idx])
    if not math.isfinite(total_loss):
        raise NonFiniteLossError(f"the evaluation loss is {total_loss / count}")
    metrics: dict[str, Any] = {"loss": total_loss / count, "acc": correct / count}
    if keep_correct:
        metrics["correct"] = _as_string(right)
    return metrics


def _as_string(right: list[torch.Tensor]) -> str:
    """Per-batch right/wrong masks as one string of 0/1."""
    return "".join("1" if v else "0" for v in torch.cat(right).tolist())


@torch.no_grad()
def correct_string(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                   batch_size: int = 1000, precision: str = "fp32") -> str:
    """Which examples the model (in eval mode) gets right, as a string of 0/1 (for error consistency)."""
    out = []
    with eval_mode(model):
        for idx in batches(len(y), batch_size):
            with autocast(device, precision):
                logits = model(to_device(x[idx], device, model))
            out.append(logits.argmax(1).cpu() == y[idx])
    return _as_string(out)


def rule_pickable(history: list[dict[str, Any]], epoch: int) -> bool:
    """Whether a checkpoint rule could report ``epoch`` (1-based, the last row of ``history`` so far): it is
    the best so far by validation loss, or by validation accuracy, the first of equal accuracies
    (:func:`best_epoch`) or the one of lower validation loss among them (the book's estimate,
    ``untrainable.analysis.estimates.rule_epoch``). A run keeps its test numbers at such epochs."""
    if any(best_epoch(history, b) == epoch for b in BEST_BY):
        return True
    return min(history, key=lambda h: (-h["valid_acc"], h["valid_loss"]))["epoch"] == epoch


def best_epoch(history: list[dict[str, Any]], best_by: str = "valid_loss") -> int:
    """The 1-based epoch whose validation metric is best (lowest loss, highest accuracy; the first on ties)."""
    if best_by not in BEST_BY:
        raise ValueError(f"unknown best_by {best_by!r}: choose one of {', '.join(BEST_BY)}")
    sign = 1 if best_by == "valid_loss" else -1
    return min(history, key=lambda h: sign * h[best_by])["epoch"]


@dataclass(frozen=True)
class _Loop:
    """The training loop of one :func:`fit` call: its arguments and optimiser, which every epoch's helpers read."""

    model: nn.Module
    train: tuple[Any, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    valid: tuple[torch.Tensor, torch.Tensor] | None
    settings: FitSettings
    opt: torch.optim.Optimizer
    generator: torch.Generator
    device: torch.device
    loss_fn: LossFn
    augment: Augment | None
    on_epoch_start: Callable[[int, nn.Module], None] | None
    on_epoch_end: EpochHook | None
    desc: str
    best_by: str
    test_every_epoch: bool
    keep_test_correct: bool

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train[1]) / self.settings.batch_size)


def _check_validation_options(valid: tuple[torch.Tensor, torch.Tensor] | None, best_by: str, restore_best: bool,
                              test_every_epoch: bool) -> None:
    """Fail before training on options that need a validation split without one, or on an unknown metric."""
    if restore_best and valid is None:
        raise ValueError("restore_best needs a validation split (valid=...) to choose the best epoch by")
    if not test_every_epoch and valid is None:
        raise ValueError("test_every_epoch=False needs a validation split (valid=...): it tests the best epochs")
    if best_by not in BEST_BY:
        raise ValueError(f"unknown best_by {best_by!r}: choose one of {', '.join(BEST_BY)}")


def _resume(loop: _Loop, checkpoint: Path | None,
            state: dict[str, Any] | None) -> tuple[list[dict[str, Any]], int, float, dict[str, Any] | None]:
    """``(history, epochs done, training seconds so far, best-validation weights)`` of an interrupted run,
    its weights, optimiser and random states loaded and its saved ``state`` put in the caller's dict;
    a run with no checkpoint yet starts from nothing."""
    if checkpoint is None or not checkpoint.is_file():
        return [], 0, 0.0, None
    saved = load_torch(checkpoint, map_location=loop.device)
    loop.model.load_state_dict(saved["model"])
    loop.opt.load_state_dict(saved["optimizer"])
    loop.generator.set_state(saved["generator"].cpu())
    torch.set_rng_state(saved["torch_rng"].cpu())
    if state is not None:
        state.clear()
        state.update(saved.get("state", {}))
    return saved["history"], saved["epoch"], saved.get("elapsed_s", 0.0), saved.get("best")


def _save_checkpoint(loop: _Loop, checkpoint: Path, history: list[dict[str, Any]], state: dict[str, Any] | None,
                     best: dict[str, Any] | None, elapsed_s: float) -> None:
    """Everything :func:`_resume` needs to go on as if never stopped, written atomically."""
    save_torch_atomic({"model": loop.model.state_dict(), "optimizer": loop.opt.state_dict(),
                       "generator": loop.generator.get_state(), "torch_rng": torch.get_rng_state(),
                       "history": history, "epoch": len(history), "state": state or {}, "best": best,
                       "elapsed_s": elapsed_s}, checkpoint)


def _check_finite(desc: str, what: str, value: float, epoch: int, step: int) -> None:
    if not math.isfinite(value):
        raise NonFiniteLossError(f"{desc}: the {what} became {value} at epoch {epoch}, step {step}; "
                                 "lower the learning rate or check the inputs")


def _train_epoch(loop: _Loop, epoch: int) -> tuple[dict[str, float], int]:
    """One epoch of optimiser steps (``epoch`` 0-based); running means of loss and accuracy, and its steps."""
    y_train, s = loop.train[1], loop.settings
    loop.model.train()
    step = _step if D.world_size() == 1 else _shared_step
    sum_loss, sum_correct, seen, counted, steps = 0.0, 0, 0, 0, 0
    for i, idx in enumerate(batches(len(y_train), s.batch_size, loop.generator)):
        for group in loop.opt.param_groups:
            group["lr"] = s.lr * lr_factor(s, epoch * loop.steps_per_epoch + i, s.epochs * loop.steps_per_epoch)
        loss, c, n, examples = step(loop, idx, epoch, i)
        sum_loss += loss * examples
        sum_correct, counted, seen, steps = sum_correct + c, counted + n, seen + examples, i + 1
    return {"train_loss": sum_loss / seen, "train_acc": sum_correct / max(counted, 1)}, steps


def _step(loop: _Loop, idx: torch.Tensor, epoch: int, i: int) -> tuple[float, int, int, int]:
    """One optimiser step of a single process on the batch ``idx``: its loss, correct and counted labels, examples."""
    (x_train, y_train), model, s = loop.train, loop.model, loop.settings
    xb = x_train[idx] if loop.augment is None else loop.augment(x_train[idx], loop.generator)
    xb, yb = to_device(xb, loop.device, model), y_train[idx].to(loop.device, non_blocking=True)
    with autocast(loop.device, s.precision):
        loss, logits = loop.loss_fn(model, xb, yb)
    _check_finite(loop.desc, "loss", loss.item(), epoch + 1, i + 1)
    loop.opt.zero_grad(set_to_none=True)
    loss.backward()
    if s.clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), s.clip_grad_norm)
    loop.opt.step()
    c, n = correct_and_count(logits.detach(), yb)
    return loss.item(), c, n, len(yb)


def _shared_step(loop: _Loop, idx: torch.Tensor, epoch: int, i: int) -> tuple[float, int, int, int]:
    """:func:`_step` of one of several processes (:mod:`untrainable.distributed`): this process's part of the
    global batch ``idx`` (augmented whole, so the generator stays in step), its loss scaled by its share of the
    labels and the gradients averaged: the step one process takes on the global batch. Returns the global
    batch's loss, correct and counted labels and examples, the same on every process."""
    (x_train, y_train), model, s = loop.train, loop.model, loop.settings
    if loop.augment is None:
        part = D.local_part(idx)
        xb, yb = x_train[part], y_train[part]
    else:
        part = D.local_part(torch.arange(len(idx)))
        xb, yb = loop.augment(x_train[idx], loop.generator)[part], y_train[idx][part]
    xb, yb = to_device(xb, loop.device, model), yb.to(loop.device, non_blocking=True)
    with autocast(loop.device, s.precision):
        loss, logits = loop.loss_fn(model, xb, yb)
    c, n = correct_and_count(logits.detach(), yb)
    weight = D.label_weight(yb)
    loss_sum, weights, c, n, examples = D.all_sum([loss.item() * weight, weight, c, n, len(yb)])
    _check_finite(loop.desc, "loss", loss_sum / weights, epoch + 1, i + 1)  # every process stops alike
    loop.opt.zero_grad(set_to_none=True)
    (loss * D.share(weight, weights)).backward()
    D.average_gradients(model)
    if s.clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), s.clip_grad_norm)
    loop.opt.step()
    return loss_sum / weights, int(c), int(n), int(examples)


def _evaluated(loop: _Loop, split: str, data: tuple[torch.Tensor, torch.Tensor], epoch: int,
               steps: int, keep_correct: bool = False) -> dict[str, Any]:
    """``{split}_loss`` and ``{split}_acc`` of the model on ``data`` after the 0-based ``epoch`` (and, with
    ``keep_correct``, ``{split}_correct`` from the same pass)."""
    try:
        metrics = evaluate(loop.model, data[0], data[1], loop.device, loop.settings.eval_batch_size,
                           loop.settings.precision, keep_correct=keep_correct)
    except NonFiniteLossError as err:  # the epoch's last steps broke the weights
        raise NonFiniteLossError(f"{loop.desc}: after epoch {epoch + 1}, step {steps}: {err}") from err
    row = {f"{split}_loss": metrics["loss"], f"{split}_acc": metrics["acc"]}
    if keep_correct:
        row[f"{split}_correct"] = metrics["correct"]
    return row


def _evaluate_epoch(loop: _Loop, epoch: int, steps: int, row: dict[str, Any],
                    history: list[dict[str, Any]]) -> bool:
    """Add the validation and test metrics to the 0-based ``epoch``'s ``row``; whether the epoch is the best
    so far by ``best_by``. The test split is skipped (None) where :func:`fit`'s ``test_every_epoch`` allows."""
    if loop.valid is not None:
        row.update(_evaluated(loop, "valid", loop.valid, epoch, steps))
    so_far = [*history, {"epoch": epoch + 1, **row}]
    is_best = loop.valid is not None and best_epoch(so_far, loop.best_by) == epoch + 1
    last = epoch + 1 == loop.settings.epochs
    pickable = loop.valid is not None and rule_pickable(so_far, epoch + 1)
    if loop.test_every_epoch or pickable or last:  # the right/wrong string from the same pass
        row.update(_evaluated(loop, "test", loop.test, epoch, steps, loop.keep_test_correct and (pickable or last)))
    else:
        row.update(test_loss=None, test_acc=None)
    return is_best


def _epoch(loop: _Loop, epoch: int, history: list[dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """The 0-based ``epoch``: the caller's hooks around its steps and evaluation. Its history row, and
    whether it is the best epoch so far by validation."""
    t0 = time.perf_counter()
    if loop.on_epoch_start is not None:
        loop.on_epoch_start(epoch + 1, loop.model)
    row, steps = _train_epoch(loop, epoch)
    train_time = time.perf_counter() - t0
    _check_finite(loop.desc, "mean training loss", row["train_loss"], epoch + 1, steps)
    is_best = _evaluate_epoch(loop, epoch, steps, row, history)
    row = {"epoch": epoch + 1, **row, "epoch_time_s": time.perf_counter() - t0, "train_time_s": train_time}
    if loop.on_epoch_end is not None:
        row.update(loop.on_epoch_end(epoch + 1, loop.model) or {})
    return row, is_best


def _shown(row: dict[str, Any], split: str, only: str | None = None) -> str:
    """A row's ``split`` accuracy and loss for the log (``only="acc"``: the accuracy alone), or
    "<split> not evaluated" for an epoch that skipped it."""
    if row[f"{split}_acc"] is None:
        return f"{split} not evaluated"
    acc = f"{row[f'{split}_acc']:.3f}"
    return acc if only == "acc" else f"{split} acc {acc} {split} loss {row[f'{split}_loss']:.3f}"


def _report(loop: _Loop, row: dict[str, Any], bar: tqdm) -> None:
    """An epoch's accuracies in the log and on the progress bar (of rank 0 alone, when several processes train)."""
    if not D.is_main():
        return
    log(f"{loop.desc} epoch {row['epoch']}/{loop.settings.epochs}: train acc {row['train_acc']:.3f} "
        f"{_shown(row, 'test')} ({row['epoch_time_s']:.1f} s)")
    bar.set_postfix(train_acc=f"{row['train_acc']:.3f}", test_acc=_shown(row, "test", "acc"))


def fit(
    model: nn.Module, train: tuple[Any, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor], settings: FitSettings,
    *, generator: torch.Generator, device: torch.device, loss_fn: LossFn = cross_entropy_loss,
    checkpoint: Path | None = None, desc: str = "train", progress: bool | None = None,
    on_epoch_start: Callable[[int, nn.Module], None] | None = None, on_epoch_end: EpochHook | None = None,
    state: dict[str, Any] | None = None, valid: tuple[torch.Tensor, torch.Tensor] | None = None,
    best_by: str = "valid_loss", restore_best: bool = False, augment: Augment | None = None,
    test_every_epoch: bool = True, keep_test_correct: bool = False,
) -> list[dict[str, Any]]:
    """Train ``model`` and return its history: one dict of metrics per epoch.

    ``train_loss``/``train_acc`` are running means over the epoch's mini-batches (in train mode,
    as the optimiser saw them; with soft targets such as a teacher's logits, ``train_acc`` is the
    agreement with the teacher's top class; with sequence labels it is per counted token);
    ``test_loss``/``test_acc`` are computed after the epoch in eval mode. ``epoch_time_s`` is the
    epoch's whole time, ``train_time_s`` its optimiser steps alone (what a method's cost per step is).

    Per-epoch work of the caller: ``on_epoch_start(epoch, model)`` runs before each epoch
    (1-based; e.g. to set a step-based schedule of the loss, which also holds after a resume), and
    ``on_epoch_end(epoch, model)`` after it, its returned dict merged into that epoch's history
    row (alignment, guidance diagnostics), so it is checkpointed with the rest.

    ``state``: extra values of the caller kept in the checkpoint (e.g. alignment measured at
    initialisation). When ``checkpoint`` exists, training resumes from it (data order included)
    and the dict's contents are replaced by the saved ones, so what was measured before the
    interruption is what the caller ends with. The checkpoint's ``elapsed_s`` is the training time
    summed over every resumed part.

    ``valid``: a held-out split (never the test split) evaluated after every epoch like the test
    split (``valid_loss``/``valid_acc``); the weights of the epoch that is best by ``best_by``
    (:func:`best_epoch`) are kept, in the checkpoint too, and ``restore_best`` loads them into
    ``model`` at the end, so the caller evaluates the best-validation checkpoint. ``augment``
    transforms each training batch before the step (never the validation or test inputs).

    ``test_every_epoch=False`` (with ``valid``) evaluates the test split only where a run's numbers
    are read: at each epoch that is the best so far by validation loss or by validation accuracy
    (either checkpoint can be reported), and at the last epoch; the other rows have
    ``test_loss``/``test_acc`` None. Evaluation draws no random numbers, so the training is
    the same; a run whose test curve is not plotted saves most of its evaluation time (the test split
    is often several times the training set). Where two epochs tie on validation accuracy, the one of
    lower validation loss is tested too (:func:`rule_pickable`): the book's estimate picks it.

    ``keep_test_correct`` adds ``test_correct`` (:func:`correct_string`) to the row of every such epoch and
    of the last, so error consistency can be read at the checkpoint its accuracy is read at.

    The precision the run trains in (``settings.precision`` resolved on ``device``) is noted through
    :func:`untrainable.precision.training_precision`, so the store records what ran.

    Started by torchrun (``untrainable.distributed.setup`` joined a process group), each process trains
    on its part of every global batch and the step is the global batch's (``_shared_step``); BatchNorm
    normalises by the global batch, every process evaluates the whole validation and test splits, and only
    rank 0 writes the checkpoint. With one process none of this runs.
    """
    _check_validation_options(valid, best_by, restore_best, test_every_epoch)
    precision = training_precision(settings.precision, device)  # what "auto" becomes here, noted for the record
    model.to(device)
    channels_last(model, precision, device)  # before the optimiser sees the parameters
    loop = _Loop(model=model, train=train, test=test, valid=valid, settings=settings,
                 opt=make_optimizer(model.parameters(), settings), generator=generator, device=device,
                 loss_fn=loss_fn, augment=augment, on_epoch_start=on_epoch_start, on_epoch_end=on_epoch_end,
                 desc=desc, best_by=best_by, test_every_epoch=test_every_epoch,
                 keep_test_correct=keep_test_correct)
    t_start = time.perf_counter()
    D.check_batch_size(len(train[1]), settings.batch_size)
    history, start_epoch, elapsed_before, best = _resume(loop, checkpoint, state)
    D.broadcast_model(model)  # several processes: all start from rank 0's weights
    show = progress if progress is not None else os.environ.get("UNTRAINABLE_PROGRESS", "1") != "0"
    bar = tqdm(range(start_epoch, settings.epochs), desc=desc, initial=start_epoch, total=settings.epochs,
               disable=not show or not D.is_main(), leave=True, dynamic_ncols=True, mininterval=2.0)
    with D.global_batch_norm(model):
        for epoch in bar:
            row, is_best = _epoch(loop, epoch, history)
            history.append(row)
            if is_best:
                best = {"epoch": epoch + 1, "model": {k: v.detach().clone() for k, v in model.state_dict().items()}}
            _report(loop, row, bar)
            if checkpoint is not None:
                elapsed = elapsed_before + time.perf_counter() - t_start
                D.main_only(lambda: _save_checkpoint(loop, checkpoint, history, state, best, elapsed),
                            f"write the checkpoint {checkpoint}")
    bar.close()
    if restore_best and best is not None:
        model.load_state_dict(best["model"])
    return history
