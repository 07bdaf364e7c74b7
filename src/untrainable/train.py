"""One training loop for every classifier and sequence model in the book.

The loop is deliberately plain (whole-tensor datasets indexed per batch, Adam or SGD, an optional
cosine schedule) so that what differs between chapters is only the loss: guidance and mimicry
plug in through ``loss_fn``. It shows a tqdm bar, uses mixed precision on CUDA, and writes an
atomic checkpoint after every epoch so that an interrupted ``full`` run resumes where it stopped.

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

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.std import tqdm

from untrainable.data import batches
from untrainable.runtime import autocast, eval_mode

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

#: The label of positions that count for neither loss nor accuracy (``F.cross_entropy``'s ignore_index).
IGNORE = -100


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message says where."""


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
    """Optimisation settings shared by every classifier run."""

    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" | "adamw" | "sgd"
    schedule: str = "constant"  # "constant" | "cosine"
    eval_batch_size: int = 1000
    clip_grad_norm: float | None = None  # clip the gradient's global norm (recurrent nets), None: never


def make_optimizer(params, s: FitSettings) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD with Nesterov momentum 0.9."""
    if s.optimizer == "adam":
        return torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.lr, momentum=0.9, nesterov=True, weight_decay=s.weight_decay)
    raise ValueError(f"unknown optimizer {s.optimizer!r}: choose adam, adamw or sgd")


def lr_factor(s: FitSettings, step: int, total_steps: int) -> float:
    """Multiplier on the base learning rate at ``step`` (cosine decays to zero at the end)."""
    if s.schedule == "constant":
        return 1.0
    if s.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    raise ValueError(f"unknown schedule {s.schedule!r}: choose constant or cosine")


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch_size: int = 1000
) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` (in eval mode) on ``(x, y)``: per example, or
    per counted token for sequence labels (see :func:`cross_entropy`)."""
    total_loss, correct, count = 0.0, 0, 0
    with eval_mode(model):
        for idx in batches(len(y), batch_size):
            xb, yb = x[idx].to(device, non_blocking=True), y[idx].to(device, non_blocking=True)
            with autocast(device):
                logits = model(xb)
            total_loss += cross_entropy(logits.float(), yb, reduction="sum").item()
            c, n = correct_and_count(logits, yb)
            correct, count = correct + c, count + n
    return {"loss": total_loss / count, "acc": correct / count}


def _save_atomic(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    settings: FitSettings,
    *,
    generator: torch.Generator,
    device: torch.device,
    loss_fn: LossFn = cross_entropy_loss,
    checkpoint: Path | None = None,
    desc: str = "train",
    progress: bool | None = None,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` and return its history: one dict of metrics per epoch.

    ``train_loss``/``train_acc`` are running means over the epoch's mini-batches (in train mode,
    as the optimiser saw them; with soft targets such as a teacher's logits, ``train_acc`` is the
    agreement with the teacher's top class; with sequence labels it is per counted token);
    ``test_loss``/``test_acc`` are computed after the epoch in eval mode. If ``checkpoint`` exists,
    training resumes from it, data order included.
    ``on_epoch_end(epoch, model)`` is called after each epoch (e.g. to keep snapshots of a teacher).
    """
    x_train, y_train = train
    model.to(device)
    opt = make_optimizer(model.parameters(), settings)
    steps_per_epoch = math.ceil(len(y_train) / settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    history: list[dict[str, float]] = []
    start_epoch = 0
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, start_epoch = state["history"], state["epoch"]

    show = progress if progress is not None else os.environ.get("UNTRAINABLE_PROGRESS", "1") != "0"
    bar = tqdm(range(start_epoch, settings.epochs), desc=desc, initial=start_epoch, total=settings.epochs,
               disable=not show, leave=True, dynamic_ncols=True, mininterval=2.0)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        sum_loss, sum_correct, seen, counted = 0.0, 0, 0, 0
        for i, idx in enumerate(batches(len(y_train), settings.batch_size, generator)):
            step = epoch * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = settings.lr * lr_factor(settings, step, total_steps)
            xb, yb = x_train[idx].to(device, non_blocking=True), y_train[idx].to(device, non_blocking=True)
            with autocast(device):
                loss, logits = loss_fn(model, xb, yb)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"{desc}: the loss became {loss.item()} at epoch {epoch + 1}, step {i + 1}; "
                    "lower the learning rate or check the inputs"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if settings.clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad_norm)
            opt.step()
            sum_loss += loss.item() * len(yb)
            c, n = correct_and_count(logits.detach(), yb)
            sum_correct, counted, seen = sum_correct + c, counted + n, seen + len(yb)
        test_metrics = evaluate(model, *test, device, settings.eval_batch_size)
        history.append({
            "epoch": epoch + 1,
            "train_loss": sum_loss / seen,
            "train_acc": sum_correct / max(counted, 1),
            "test_loss": test_metrics["loss"],
            "test_acc": test_metrics["acc"],
            "epoch_time_s": time.perf_counter() - t0,
        })
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, model)
        bar.set_postfix(train_acc=f"{history[-1]['train_acc']:.3f}", test_acc=f"{test_metrics['acc']:.3f}")
        if checkpoint is not None:
            _save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(),
                          "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                          "history": history, "epoch": epoch + 1}, checkpoint)
    bar.close()
    return history
