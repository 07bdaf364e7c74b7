"""Device choice, seeding and threads: everything that makes a run fast and repeatable."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import re
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import numpy as np
import torch

__all__ = ["log", "DEVICE_FORMS", "check_device", "parse_device", "resolve_device", "THREADS_ENV", "threads_from_env",
           "set_threads", "synchronize", "seed_everything", "cpu_model", "cpu_flags", "machine_description", "device_description", "eval_mode"]

#: CPU features that decide which kernels torch runs, hence the last bits of a result and the speed.
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8",
                "asimd", "sve", "sve2")
CPUINFO = Path("/proc/cpuinfo")


def log(message: str) -> None:
    """A timestamped progress line for long background runs, printed when ``UNTRAINABLE_LOG=1``.

    Notebooks show tqdm bars instead; a shell running chapters side by side wants one line per epoch.
    """
    if os.environ.get("UNTRAINABLE_LOG") == "1":
        from datetime import datetime, timezone

        print(f"{datetime.now(timezone.utc):%H:%M:%S} {message}", flush=True)


#: The devices ``--device`` accepts.
DEVICE_FORMS = "auto, cpu, cuda, cuda:N or mps"


def check_device(text: str) -> str:
    """A device name, normalised: one of :data:`DEVICE_FORMS`, else a ``ValueError`` naming it; TPUs are
    refused by name (PyTorch needs torch_xla). For every entry point that takes a device."""
    device = text.strip().lower()
    if device in ("tpu", "xla") or device.startswith(("tpu:", "xla:")):
        raise ValueError(
            f"{text!r}: TPUs are not supported (this book runs plain PyTorch, without torch_xla); choose {DEVICE_FORMS}"
        )
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
        raise ValueError(f"unknown device {text!r}: choose {DEVICE_FORMS}")
    return device


def parse_device(text: str) -> str:
    """``--device``: :func:`check_device`, its error argparse's (the command ends at once, exit status 2)."""
    try:
        return check_device(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


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


def synchronize(device: torch.device) -> None:
    """Wait for the GPU: its kernels run asynchronously, so a timed step's wall time is only known once they end."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call of ``step``, the GPU's queued kernels finished before and after (see :func:`synchronize`)."""
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


#: The environment variable that sets the CPU threads of every run.
THREADS_ENV = "UNTRAINABLE_THREADS"


def threads_from_env() -> int | None:
    """``UNTRAINABLE_THREADS`` as a positive integer; None when unset, empty or 0 (every core); anything
    else is a ``ValueError`` naming the variable, raised before a run starts rather than deep inside it."""
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text.isdigit():
        if not text:
            return None
        raise ValueError(f"{THREADS_ENV}={text!r}: give a whole number of CPU threads (e.g. {THREADS_ENV}=1), "
                         "or 0 or nothing for every core")
    return int(text) or None


def set_threads(n: int | None = None) -> int:
    """Use every core present (or ``UNTRAINABLE_THREADS``) for intra-op parallelism on the CPU."""
    n = n or threads_from_env() or (os.cpu_count() or 1)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for data order, so order is per-run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _cpuinfo_fields() -> dict[str, str]:
    """The first processor's ``name: value`` lines of ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    return fields


@cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` where present, else what :mod:`platform` knows)."""
    fields = _cpuinfo_fields()
    return (fields.get("model name") or fields.get("Model") or fields.get("Hardware")
            or platform.processor() or platform.machine() or "unknown CPU")


@cache
def cpu_flags() -> tuple[str, ...]:
    """Which of :data:`KERNEL_FLAGS` the CPU has (x86 ``flags``, Arm ``Features``); empty if unknown."""
    fields = _cpuinfo_fields()
    present = set((fields.get("flags") or fields.get("Features") or "").split())
    return tuple(f for f in KERNEL_FLAGS if f in present)


def machine_description(device: torch.device) -> dict[str, object]:
    """What a record says about the machine, so that two CPUs (or GPUs) can be told apart.

    Two CPUs of one architecture can round differently (AVX-512 or AMX kernels against AVX2), so
    the model name, the kernel-relevant flags and the instruction-set cap oneDNN ran under
    (:data:`untrainable.ONEDNN_ISA_CAP`, empty where none was set) travel with every number.
    """
    info: dict[str, object] = {"cpu": cpu_model(), "cpu_flags": list(cpu_flags()), "threads": torch.get_num_threads(),
                               "logical_cpus": os.cpu_count(), "platform": platform.platform(),
                               "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "")}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def device_description(device: torch.device) -> str:
    """A one-line device string for records: the GPU's name, or the CPU model and the thread count."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"{device.type}:{cpu_model()} ({platform.machine()}) x{torch.get_num_threads()} threads"


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``model`` in eval mode and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
