"""Numeric precision of training: bf16 autocast where the hardware multiplies bf16 natively.

Every figure of the book is trained on a CPU, so the matrix units decide how many steps a
``full`` run can afford. On x86 CPUs with ``avx512_bf16`` (and more so with AMX tiles,
``amx_bf16``) oneDNN runs bf16 matrix products and convolutions several times faster than fp32;
on CUDA GPUs with bf16 support the same autocast applies. bf16 keeps fp32's exponent range, so no
gradient scaler is needed.

What stays in fp32 (or fp64): losses, BatchNorm statistics, optimiser state and every similarity
computation. Inside an autocast region even a product of fp32 tensors is cast down to bf16, so the
CKA and Gram computations run under :func:`full_precision`, which switches autocast off.

* ``"fp32"``: no autocast (the default of every record made before this setting existed);
* ``"bf16"``: autocast to bf16; on a CPU without native bf16 products torch emulates them, so the
  run is the same run, only several times slower: :func:`training_precision` warns
  (:class:`EmulatedBf16Warning`) instead of refusing, so a reader can still retrain a committed bf16 run;
* ``"auto"``: bf16 where :func:`bf16_native` says the hardware has it, fp32 elsewhere. What it becomes
  depends on the machine, so no committed (``full``) config says ``"auto"``: its record key would name
  bf16 on one machine and fp32 on another.

What a run trained in is what its record says: the training loop resolves its precision once through
:func:`training_precision`, which notes the value for the store while :func:`recorded_precision` is
open (the store opens it around a run), so a record's ``precision`` is what ran, never a guess from
its config.
"""

from __future__ import annotations

import contextlib
import contextvars
import warnings
from collections.abc import Iterator

import torch

from untrainable.runtime import cpu_flags

__all__ = ["PRECISIONS", "BF16_CPU_FLAGS", "EmulatedBf16Warning", "bf16_native", "resolve_precision",
           "training_precision", "recorded_precision", "autocast", "full_precision", "channels_last"]

PRECISIONS = ("auto", "fp32", "bf16")

#: CPU flags that oneDNN uses for bf16 products: AVX-512 BF16 instructions and AMX tiles.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")

#: The precisions resolved by training since the innermost open :func:`recorded_precision` (None: none open).
_RESOLVED: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("untrainable_resolved_precision",
                                                                             default=None)


class EmulatedBf16Warning(UserWarning):
    """A run trains in bf16 on a CPU that lacks native bf16 products: torch emulates them, slowly."""


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 matrices natively (so autocast to bf16 pays)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":  # torch's get_cpu_capability() says only "AVX512": read the flags
        return any(f in cpu_flags() for f in BF16_CPU_FLAGS)
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"fp32"`` or ``"bf16"`` for this device; ``"auto"`` picks bf16 where it is native."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if bf16_native(device) else "fp32"
    return precision


def training_precision(precision: str, device: torch.device) -> str:
    """What a run given ``precision`` trains in on ``device`` (``"fp32"`` or ``"bf16"``), noted for its record.

    Every training loop calls it once before its first step (:func:`untrainable.train.fit` does), so the
    store writes what ran. bf16 without native products is allowed, since a reader must be able to retrain
    a committed bf16 run anywhere, but it warns: the products are emulated, several times slower than fp32.
    """
    resolved = resolve_precision(precision, device)
    if resolved == "bf16" and not bf16_native(device):
        flags = f"CPU flags {' or '.join(BF16_CPU_FLAGS)}" if device.type == "cpu" else "bf16 support"
        warnings.warn(f"precision 'bf16' on {device}, which lacks native bf16 matrix products ({flags}): torch "
                      "emulates them, so this run trains several times slower than in fp32 (same settings, same "
                      "record key). For speed, run a config with precision 'fp32' (another run, with its own key).",
                      EmulatedBf16Warning, stacklevel=2)
    noted = _RESOLVED.get()
    if noted is not None:
        noted.append(resolved)
    return resolved


@contextlib.contextmanager
def recorded_precision() -> Iterator[list[str]]:
    """Collect the precisions that training resolves (:func:`training_precision`) inside the block.

    Nested blocks (a guide trained while its target's run is open) each see only their own training.
    """
    noted: list[str] = []
    token = _RESOLVED.set(noted)
    try:
        yield noted
    finally:
        _RESOLVED.reset(token)


def autocast(device: torch.device, precision: str = "fp32") -> contextlib.AbstractContextManager:
    """The autocast region of a training or evaluation step (a no-op in fp32)."""
    if resolve_precision(precision, device) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def full_precision(device: torch.device | str) -> contextlib.AbstractContextManager:
    """Switch autocast off for a block (similarity math), whatever region it is called from."""
    dev_type = device.type if isinstance(device, torch.device) else torch.device(device).type
    if dev_type not in ("cpu", "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(dev_type, enabled=False)


def channels_last(model: torch.nn.Module, precision: str, device: torch.device) -> torch.nn.Module:
    """Move a network with 2-d convolutions to channels_last memory when it trains in bf16.

    oneDNN's bf16 convolutions are fastest on NHWC tensors; a network without convolutions is
    returned unchanged (the memory format means nothing to a linear layer).
    """
    has_conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    if has_conv and resolve_precision(precision, device) == "bf16":
        return model.to(memory_format=torch.channels_last)
    return model
