"""Device choice, seeding and threads: everything that makes a run fast and repeatable."""

from __future__ import annotations

import contextlib
import os
import platform
import random
from collections.abc import Iterator

import numpy as np
import torch


def log(message: str) -> None:
    """A timestamped progress line for long background runs, printed when ``UNTRAINABLE_LOG=1``.

    Notebooks show tqdm bars instead; a shell running chapters side by side wants one line per epoch.
    """
    if os.environ.get("UNTRAINABLE_LOG") == "1":
        from datetime import datetime, timezone

        print(f"{datetime.now(timezone.utc):%H:%M:%S} {message}", flush=True)


def resolve_device(device: str = "auto") -> torch.device:
    """Map ``"auto"`` to the best device present (cuda, then mps, then cpu); check the others."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for but CUDA is not available; use 'auto' or 'cpu'")
    return dev


def set_threads(n: int | None = None) -> int:
    """Use every core present (or ``UNTRAINABLE_THREADS``) for intra-op parallelism on the CPU."""
    n = n or int(os.environ.get("UNTRAINABLE_THREADS", 0)) or (os.cpu_count() or 1)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for data order, so order is per-run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision (bf16) on CUDA GPUs that support it, a no-op elsewhere.

    bf16 keeps fp32's exponent range, so no gradient scaler is needed; older GPUs run in fp32.
    """
    if device.type != "cuda" or not torch.cuda.is_bf16_supported():
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16)


def device_description(device: torch.device) -> str:
    """A human-readable device string for records: GPU name or CPU model and thread count."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"{device.type}:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``model`` in eval mode and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
