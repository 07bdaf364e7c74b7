"""Files that are never half-written and never clobbered by a parallel process.

Every writer in the project goes through this module, because the book recommends running
one-thread training processes side by side and those processes share caches (a guide's weights,
a Gram bank, a transfer set):

* :func:`write_json_atomic` and :func:`save_torch_atomic` write to a temporary file whose name is
  unique to the process and call, then rename it over the target (``os.replace`` is atomic on one
  file system), so a crash or a second writer never leaves a truncated file;
* :func:`exclusive` is an advisory lock (``fcntl.flock``) around "compute once, then share", so
  two processes that need the same cached guide train it once;
* :func:`load_torch` loads with ``weights_only=True`` (a checkpoint from the cache folder can hold
  tensors and plain containers only, never code), and names the file when it is unreadable.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

__all__ = ["write_json_atomic", "save_torch_atomic", "load_torch", "exclusive", "CorruptFileError"]


class CorruptFileError(RuntimeError):
    """A cached file could not be read; the message names it and says how to recover."""


def _temporary(path: Path) -> Path:
    """A sibling name no other process or call will pick (pid plus a random suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def write_json_atomic(obj: Any, path: Path) -> None:
    """Write ``obj`` as JSON (strict: NaN and infinities are refused) through an atomic rename."""
    text = json.dumps(obj, indent=1, sort_keys=True, default=str, allow_nan=False) + "\n"
    tmp = _temporary(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_torch_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` through an atomic rename: readers see the old file or the whole new one."""
    tmp = _temporary(path)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_torch(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """Load a checkpoint or weight file safely (``weights_only=True``), naming the file on failure."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError... for bad files
        raise CorruptFileError(
            f"{path}: cannot be read as a PyTorch file ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
            "it is a cache file: delete it and rerun to rebuild it"
        ) from err


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock named after ``path`` (``<path>.lock``) for the body of the ``with``.

    Used as "first writer wins": take the lock, look whether the file exists, build it if not.
    A second process blocks until the first is done, then finds the file. It says so on stderr
    before it blocks: the wait can last as long as a guide's training, and a silent process looks hung.
    """
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process to finish {path.name} (it holds {lock.name})",
                  file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
