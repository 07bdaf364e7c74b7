"""Datasets, read from local disk only unless the reader asks for a download.

The dataset root comes from :func:`untrainable.paths.data_root` (``UNTRAINABLE_DATA``, else
``../shared/data``, else ``data/``) and uses torchvision's layout::

    <root>/cifar10/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}
    <root>/mnist/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    <root>/text/tinyshakespeare/input.txt

Images are returned as whole tensors (uint8, N x C x H x W) rather than ``Dataset`` objects: the
book's datasets fit in memory, and indexing one tensor per batch is several times faster on a
CPU than a ``DataLoader`` with per-image transforms.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets
from torchvision.datasets.utils import extract_archive

from untrainable.paths import cache_root, data_root

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
TINY_SHAKESPEARE_MD5 = "6fb458f1232090904fb40fe944165e91"

LAYOUTS = {
    "cifar10": "cifar10/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}",
    "mnist": "mnist/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz",
    "tinyshakespeare": "text/tinyshakespeare/input.txt",
}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is missing or corrupt; the message says where it was looked for and how to fix it."""


def _missing(name: str, root: Path, why: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"{name}: {why}\n"
        f"  looked in: {root}\n"
        f"  expected:  {root}/{LAYOUTS[name]}\n"
        "  fix: point UNTRAINABLE_DATA at a folder with that layout, or, with internet access, run\n"
        f"       python -m untrainable data download {name}   (downloads into {root})"
    )


def _download_wanted(download: bool | None) -> bool:
    """Downloads happen only when asked for, by argument or by ``UNTRAINABLE_DOWNLOAD=1``."""
    if download is not None:
        return download
    return os.environ.get("UNTRAINABLE_DOWNLOAD", "0") == "1"


@dataclass(frozen=True)
class ImageData:
    """A split of an image dataset: uint8 images ``(N, C, H, W)``, int64 labels, and class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None, seed: int = 0) -> "ImageData":
        """A class-balanced, seeded subset of ``n`` examples (all of them when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        idx = stratified_indices(self.labels, n, seed)
        return ImageData(self.images[idx], self.labels[idx], self.classes, self.mean, self.std)

    def normalized(self, images: torch.Tensor | None = None) -> torch.Tensor:
        """Float32 images (these, or other uint8 ``images`` of the same kind) scaled to [0, 1] and
        standardised with this dataset's per-channel mean and std."""
        x = (self.images if images is None else images).float().div_(255)
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return x.sub_(mean).div_(std)


def stratified_indices(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices of ``n`` examples with classes as balanced as possible, chosen by ``seed``.

    The same ``(labels, n, seed)`` always gives the same indices, on every machine.
    """
    gen = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    per_class = [torch.nonzero(labels == c).flatten() for c in classes]
    per_class = [idx[torch.randperm(len(idx), generator=gen)] for idx in per_class]
    base, extra = divmod(n, len(classes))
    chosen = [idx[: base + (i < extra)] for i, idx in enumerate(per_class)]
    out = torch.cat(chosen)
    return out[torch.randperm(len(out), generator=gen)].sort().values


@functools.lru_cache(maxsize=4)
def load_cifar10(train: bool = True, root: Path | None = None, download: bool | None = None) -> ImageData:
    """CIFAR-10 through ``torchvision.datasets.CIFAR10`` (which checks every batch's md5).

    Cached per process: the md5 check of 178 MB takes seconds, and chapters load it many times.
    """
    base = Path(root) if root else data_root()
    folder = base / "cifar10"
    try:
        ds = datasets.CIFAR10(str(folder), train=train, download=_download_wanted(download))
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise _missing("cifar10", base, "batch files not found or corrupted (md5 mismatch)") from err
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    labels = torch.tensor(ds.targets, dtype=torch.int64)
    return ImageData(images, labels, tuple(ds.classes), CIFAR10_MEAN, CIFAR10_STD)


def _mnist_folder(base: Path) -> Path:
    """torchvision's MNIST reads uncompressed idx files; unpack the gz files into the cache once."""
    raw = base / "mnist" / "MNIST" / "raw"
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    if all((raw / n).is_file() for n in names):
        return base / "mnist"
    if not all((raw / f"{n}.gz").is_file() for n in names):
        raise FileNotFoundError
    out = cache_root() / "mnist"
    out_raw = out / "MNIST" / "raw"
    out_raw.mkdir(parents=True, exist_ok=True)
    for n in names:
        if not (out_raw / n).is_file():
            shutil.copyfile(raw / f"{n}.gz", out_raw / f"{n}.gz")
            extract_archive(str(out_raw / f"{n}.gz"), str(out_raw), remove_finished=True)
    return out


@functools.lru_cache(maxsize=4)
def load_mnist(train: bool = True, root: Path | None = None, download: bool | None = None) -> ImageData:
    """MNIST through ``torchvision.datasets.MNIST``; gzipped files are unpacked into the cache."""
    base = Path(root) if root else data_root()
    try:
        folder = _mnist_folder(base)
        ds = datasets.MNIST(str(folder), train=train, download=False)
    except (FileNotFoundError, RuntimeError) as err:
        if _download_wanted(download):
            ds = datasets.MNIST(str(base / "mnist"), train=train, download=True)
        else:
            raise _missing("mnist", base, f"not found or corrupted ({err or 'missing files'})") from None
    return ImageData(ds.data.unsqueeze(1).contiguous(), ds.targets.long(), tuple(ds.classes), MNIST_MEAN, MNIST_STD)


def load_tiny_shakespeare(root: Path | None = None, check: bool = True) -> str:
    """The tiny-shakespeare corpus (1,115,394 characters), checked against its published md5."""
    base = Path(root) if root else data_root()
    path = base / "text" / "tinyshakespeare" / "input.txt"
    if not path.is_file():
        raise _missing("tinyshakespeare", base, "file not found")
    raw = path.read_bytes()
    if check and hashlib.md5(raw).hexdigest() != TINY_SHAKESPEARE_MD5:
        raise _missing("tinyshakespeare", base, f"md5 mismatch for {path}: the file is corrupt or another copy")
    return raw.decode("ascii")


def download(name: str, root: Path | None = None) -> Path:
    """Download ``name`` with torchvision into the data root (needs internet; never called by tests)."""
    base = Path(root) if root else data_root()
    if name == "cifar10":
        datasets.CIFAR10(str(base / "cifar10"), train=True, download=True)
        datasets.CIFAR10(str(base / "cifar10"), train=False, download=True)
    elif name == "mnist":
        datasets.MNIST(str(base / "mnist"), train=True, download=True)
        datasets.MNIST(str(base / "mnist"), train=False, download=True)
    elif name == "tinyshakespeare":
        from torchvision.datasets.utils import download_url

        url = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
        download_url(url, str(base / "text" / "tinyshakespeare"), "input.txt", md5=TINY_SHAKESPEARE_MD5)
    else:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(LAYOUTS)}")
    return base


def batches(n: int, batch_size: int, generator: torch.Generator | None = None, drop_last: bool = False):
    """Yield index tensors covering ``range(n)``, shuffled by ``generator`` when one is given."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]
