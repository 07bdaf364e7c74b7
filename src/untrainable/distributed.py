"""Several processes train one run (``torchrun``): the global batch split over them, one set of weights.

``torchrun --nproc_per_node=N -m untrainable ...`` starts ``N`` copies of a command with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in their environment. :func:`setup` joins
them into one process group (NCCL between GPUs, gloo between CPU processes), each process on its own
GPU. Without those variables (or with ``WORLD_SIZE=1``) nothing here does anything, so a single
process trains exactly as it always did.

What each process does, and why the run is the single-process run on more hardware:

* **the same batches.** Every process draws the same permutation from the run's generator and takes
  its contiguous part of each global batch (:func:`local_part`), so the global batch is the batch one
  process would take; augmentation is drawn for the whole global batch on every process (the
  generator stays in step across processes and with a single-process run) and each keeps its part.
* **one loss.** Each process scales its loss by its share of the global batch's counted labels
  (:func:`share`) and the gradients are averaged (:func:`average_gradients`), which is the gradient of
  the global batch's mean loss. A term that needs the whole batch (guidance's CKA) is computed on rows
  gathered from every process with gradients flowing back to each process's own rows
  (:func:`gather_rows`); every process computes the same value, and the scaling gives it weight one.
* **one BatchNorm.** Batch statistics are those of the global batch (:func:`global_batch_norm`):
  PyTorch's ``SyncBatchNorm`` on GPUs, :class:`GlobalBatchNorm` on CPUs (gloo), which ``SyncBatchNorm``
  does not serve.
* **one writer.** Only rank 0 writes records and checkpoints (:func:`main_only`); every process reads
  a checkpoint when it resumes, so a killed run goes on exactly where its last checkpoint left it.

Not the same as one process: dropout masks are drawn per process (each draws its own part's), and sums
run in another order, so numbers agree to float tolerance, not bit for bit (``tests/test_distributed.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn.functional as F
from torch import nn

from untrainable.data import IGNORE

__all__ = ["TORCHRUN_ENV", "launched", "setup", "teardown", "world_size", "rank", "is_main", "barrier",
           "local_part", "check_batch_size", "share", "label_weight", "all_sum", "gather_rows", "average_gradients",
           "broadcast_model", "main_only", "GlobalBatchNorm", "global_batch_norm"]

#: The variables torchrun sets in each process it starts (removed before a notebook kernel trains alone).
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "ROLE_WORLD_SIZE",
                "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_USE_AGENT_STORE")

T = TypeVar("T")


def launched() -> bool:
    """Whether this process was started as one of several (torchrun's ``WORLD_SIZE`` above 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(gpu: bool | None = None) -> int:
    """Join the process group torchrun's environment describes (once; later calls do nothing) and return the
    number of processes. On GPUs (``gpu``; None: when CUDA is present) NCCL, each process on GPU ``LOCAL_RANK``
    (so ``"cuda"`` means its own GPU); gloo otherwise. A single process (no torchrun) returns 1 and changes
    nothing."""
    if dist.is_initialized() or not launched():
        return world_size()
    if torch.cuda.is_available() if gpu is None else gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return world_size()


def teardown() -> None:
    """Leave the process group (nothing when there is none)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    """How many processes train together (1 without a process group)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    """This process's rank: its process group's, or torchrun's ``RANK`` before :func:`setup` joined the group (so a
    lock taken before training knows its writer), 0 for a single process."""
    if dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0")) if launched() else 0


def is_main() -> bool:
    """Whether this process is rank 0, the one that writes."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process (nothing for a single one)."""
    if world_size() > 1:
        dist.barrier()


def _comm_device() -> torch.device:
    """Where small tensors for a collective live: NCCL moves CUDA tensors only, gloo CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def local_part(index: torch.Tensor) -> torch.Tensor:
    """This process's contiguous part of a global batch's ``index`` (parts differ in size by at most one)."""
    if world_size() == 1:
        return index
    return torch.tensor_split(index, world_size())[rank()]


def check_batch_size(n: int, batch_size: int) -> None:
    """Refuse batches that would leave a process without examples (every process must run every step)."""
    n_proc = world_size()
    smallest = min(batch_size, n % batch_size or batch_size, n)
    if n_proc > 1 and smallest < n_proc:
        raise ValueError(f"a batch of {smallest} examples cannot be split over {n_proc} processes: "
                         f"use fewer processes, or a batch size and training set that leave at least {n_proc} "
                         "examples in every batch")


def label_weight(y: torch.Tensor) -> int:
    """How many labels a mean loss over ``y`` averages: the positions not :data:`~untrainable.data.IGNORE`
    of hard labels (examples or tokens), the rows of soft targets (a teacher's logits)."""
    if y.is_floating_point():
        return len(y)
    return int((y != IGNORE).sum())


def all_sum(values: list[float]) -> list[float]:
    """The sum over processes of each of ``values`` (float64; one collective for all of them)."""
    if world_size() == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.tolist()


def share(local_weight: int, global_weight: float) -> float:
    """The factor on this process's mean loss that makes the averaged gradients the global batch's: its
    share of the global batch's counted labels, times the number of processes (which the average divides by)."""
    return world_size() * local_weight / global_weight


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """The rows of ``x`` from every process, in rank order (the global batch's rows), differentiable: the
    gradient of the gathered rows flows back to each process's own ``x`` (summed over processes, so a
    value every process computes alike counts once per process, as :func:`share` expects).

    Processes may hold one row more or fewer (:func:`local_part`): rows are padded to the longest part
    for the collective and the padding is cut off again."""
    if world_size() == 1:
        return x
    sizes = [int(s) for s in all_sum([float(len(x)) if i == rank() else 0.0 for i in range(world_size())])]
    longest = max(sizes)
    padded = x if len(x) == longest else torch.cat([x, x.new_zeros(longest - len(x), *x.shape[1:])])
    parts = dist_fn.all_gather(padded.contiguous()) if x.requires_grad else _gather_plain(padded.contiguous())
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


def _gather_plain(x: torch.Tensor) -> list[torch.Tensor]:
    """All-gather without autograd (a frozen guide's activations, indices, masks)."""
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x)
    return parts


def average_gradients(model: nn.Module) -> None:
    """Replace each parameter's gradient by its mean over processes (one collective over a flat buffer).

    A parameter without a gradient on this step counts as zero, so every process sends the same layout."""
    if world_size() == 1:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset: offset + n].view_as(p).clone()
        offset += n


def broadcast_model(model: nn.Module) -> None:
    """Give every process rank 0's parameters and buffers (so all start alike whatever each initialised)."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, src=0)


def main_only(fn: Callable[[], T], what: str) -> T | None:
    """Run ``fn`` on rank 0 alone (a write), and make every process wait for it and share its failure: an
    error on rank 0 is raised on every process (as a ``RuntimeError`` naming ``what`` on the others), so none
    waits forever for a writer that stopped. Returns ``fn()``'s value on rank 0, None elsewhere."""
    if world_size() == 1:
        return fn()
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except Exception as err:  # shared with every process below, then raised here as it was
            error = err
    message = [None if error is None else f"{type(error).__name__}: {error}"]
    dist.broadcast_object_list(message, src=0)
    if error is not None:
        raise error
    if message[0] is not None:
        raise RuntimeError(f"rank 0 failed to {what}: {message[0]}")
    return result


class GlobalBatchNorm(nn.SyncBatchNorm):
    """BatchNorm over the global batch for processes that ``SyncBatchNorm`` does not serve (gloo on CPUs).

    In training, the per-channel sums are all-reduced with gradients (two collectives: the mean, then
    the centred squares, as a two-pass variance), and the running statistics move with the global
    batch's mean and unbiased variance, as one process's BatchNorm over that batch would. In eval mode
    it is plain BatchNorm on the running statistics (a layer that tracks none normalises by the global batch).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and self.running_mean is not None:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = x.new_tensor(float(x.numel() // x.shape[1]))
        total = dist_fn.all_reduce(torch.cat([x.sum(dims), count.reshape(1)]))
        n = total[-1]
        mean = total[:-1] / n
        centred = x - mean.reshape(shape)
        var = dist_fn.all_reduce((centred * centred).sum(dims)) / n
        if self.training and self.track_running_stats:
            self._update_running(mean.detach(), var.detach(), n.item())
        y = centred / torch.sqrt(var.reshape(shape) + self.eps)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape) if self.affine else y

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, n: float) -> None:
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - momentum).add_(mean.to(self.running_mean.dtype), alpha=momentum)
        self.running_var.mul_(1 - momentum).add_((var * n / max(n - 1, 1)).to(self.running_var.dtype),
                                                  alpha=momentum)


def _swap(model: nn.Module, kind: type[nn.SyncBatchNorm]) -> list[tuple[nn.Module, str, nn.Module]]:
    """Replace every BatchNorm of ``model`` by ``kind`` sharing its parameters and buffers (the same tensors,
    so what it learns and tracks is the original's); the replaced modules, to put back."""
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d):
                new = kind(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
                new.weight, new.bias = child.weight, child.bias
                new.running_mean, new.running_var = child.running_mean, child.running_var
                new.num_batches_tracked = child.num_batches_tracked
                new.train(child.training)
                setattr(parent, name, new)
                swapped.append((parent, name, child))
    return swapped


@contextmanager
def global_batch_norm(model: nn.Module) -> Iterator[None]:
    """Within the ``with``, ``model``'s BatchNorm layers normalise by the global batch (a single process:
    nothing changes). The original modules are put back afterwards, holding what was learnt."""
    if world_size() == 1:
        yield
        return
    kind: Any = nn.SyncBatchNorm if dist.get_backend() == "nccl" else GlobalBatchNorm
    swapped = _swap(model, kind)
    try:
        yield
    finally:
        for parent, name, original in swapped:
            original.train(getattr(parent, name).training)
            setattr(parent, name, original)
