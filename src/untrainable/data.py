"""Datasets, read from local disk only unless the reader asks for a download.

The dataset root comes from :func:`untrainable.paths.data_root` (``UNTRAINABLE_DATA``, else
``../shared/data``, else ``data/``) and uses torchvision's layout::

    <root>/cifar10/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}
    <root>/mnist/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    <root>/text/tinyshakespeare/input.txt

Images are returned as whole tensors (uint8, N x C x H x W) rather than ``Dataset`` objects: the
book's datasets fit in memory, and indexing one tensor per batch is several times faster on a
CPU than a ``DataLoader`` with per-image transforms.

Every file is checked before it is read: CIFAR-10's batches and MNIST's gzipped files against
their published md5 sums, MNIST's uncompressed files against the sums of the published files
unpacked, tiny-shakespeare against its own. :func:`check_dataset` checks every file a dataset
serves, both splits (``python -m untrainable data check``). A problem is reported as
:class:`DatasetNotFoundError` naming the file and what is wrong with it ("missing", "md5
mismatch", "not an idx file"). MNIST is unpacked in memory (about 0.3 s), so no unpacked copy can
go stale or be left half-written.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets

from untrainable.paths import data_root

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
TINY_SHAKESPEARE_MD5 = "6fb458f1232090904fb40fe944165e91"
#: The md5 sums published for the official gzipped MNIST files (as torchvision lists them).
MNIST_MD5 = {name.removesuffix(".gz"): md5 for name, md5 in datasets.MNIST.resources}
#: The md5 sums of the official MNIST files unpacked (for readers who keep them uncompressed).
MNIST_RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
#: The md5 sums published for CIFAR-10's python batches, per split (``batches.meta`` in both).
CIFAR10_MD5 = {
    True: dict(datasets.CIFAR10.train_list + [[datasets.CIFAR10.meta["filename"], datasets.CIFAR10.meta["md5"]]]),
    False: dict(datasets.CIFAR10.test_list + [[datasets.CIFAR10.meta["filename"], datasets.CIFAR10.meta["md5"]]]),
}

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


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(normalised images, labels)``: the pair every training loop takes."""
        return self.normalized(), self.labels


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


def check_cifar10(base: Path, train: bool) -> None:
    """Raise :class:`DatasetNotFoundError` naming the first missing batch file, else the first whose md5
    differs from the published one."""
    folder = base / "cifar10" / datasets.CIFAR10.base_folder
    files = CIFAR10_MD5[train]
    missing = [name for name in files if not (folder / name).is_file()]
    if missing:
        raise _missing("cifar10", base, f"missing file(s) {', '.join(str(folder / m) for m in missing)}")
    for name, md5 in files.items():
        if _md5(folder / name) != md5:
            raise _missing("cifar10", base, f"md5 mismatch for {folder / name}: the file is corrupt or another "
                                            "version; replace it")


@functools.lru_cache(maxsize=4)
def load_cifar10(train: bool = True, root: Path | None = None, download: bool | None = None) -> ImageData:
    """CIFAR-10's python batches, checked against their published md5 sums, read by torchvision.

    Cached per process: the md5 check of 178 MB takes seconds, and chapters load it many times.
    """
    base = Path(root) if root else data_root()
    folder = base / "cifar10"
    try:
        check_cifar10(base, train)
    except DatasetNotFoundError:
        if not _download_wanted(download):
            raise
        datasets.CIFAR10(str(folder), train=train, download=True)
        check_cifar10(base, train)
    ds = datasets.CIFAR10(str(folder), train=train, download=False)
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    labels = torch.tensor(ds.targets, dtype=torch.int64)
    return ImageData(images, labels, tuple(ds.classes), CIFAR10_MEAN, CIFAR10_STD)


#: The idx format's magic numbers: unsigned bytes (0x08) in 3 dimensions (images) or 1 (labels).
IDX_MAGIC = {3: 0x0803, 1: 0x0801}


def _idx_dims(stem: str) -> int:
    """The dimensions of MNIST's idx file ``stem``: 3 for images (``idx3``), 1 for labels (``idx1``)."""
    return 3 if "-idx3-" in stem else 1


def mnist_file_bytes(base: Path, stem: str) -> bytes:
    """The unpacked bytes of MNIST's ``stem`` (``"train-images-idx3-ubyte"``), checked.

    The gzipped file must match its published md5 and is unpacked in memory; without it, an
    uncompressed ``stem`` beside it must match the md5 of the published file unpacked (a wrong
    header or size is named as such, see :func:`parse_idx`). Nothing is written.
    """
    raw = base / "mnist" / "MNIST" / "raw"
    gz, plain = raw / f"{stem}.gz", raw / stem
    if gz.is_file():
        blob = gz.read_bytes()
        if hashlib.md5(blob).hexdigest() != MNIST_MD5[stem]:
            raise _missing("mnist", base, f"md5 mismatch for {gz}: the file is corrupt or another version; replace it")
        return gzip.decompress(blob)
    if plain.is_file():
        blob = plain.read_bytes()
        if hashlib.md5(blob).hexdigest() != MNIST_RAW_MD5[stem]:
            parse_idx(blob, _idx_dims(stem), plain)  # names a wrong header or a truncated file as such
            raise _missing("mnist", base, f"md5 mismatch for {plain}: the file is corrupt or another version; "
                                          "replace it")
        return blob
    raise _missing("mnist", base, f"missing file {gz}")


def parse_idx(blob: bytes, dims: int, path: Path | str) -> np.ndarray:
    """An idx array of unsigned bytes (LeCun's format: magic, big-endian int32 sizes, then the data)."""
    header = 4 + 4 * dims
    if len(blob) < header or int.from_bytes(blob[:4], "big") != IDX_MAGIC[dims]:
        raise DatasetNotFoundError(f"mnist: {path} is not an idx file of {dims}-d unsigned bytes (wrong header)")
    shape = tuple(int.from_bytes(blob[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    if len(blob) != header + int(np.prod(shape)):
        raise DatasetNotFoundError(f"mnist: {path} holds {len(blob) - header} bytes of data where its header "
                                   f"announces {shape} = {int(np.prod(shape))}: the file is truncated or corrupt")
    return np.frombuffer(blob, dtype=np.uint8, offset=header).reshape(shape)


def _mnist_stems(train: bool) -> tuple[str, str]:
    prefix = "train" if train else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _mnist_arrays(base: Path, train: bool, blobs: list[bytes] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One split's images ``(N, 28, 28)`` and labels ``(N,)``, every file checked (from ``blobs`` when read)."""
    stems = _mnist_stems(train)
    blobs = blobs or [mnist_file_bytes(base, stem) for stem in stems]
    raw = base / "mnist" / "MNIST" / "raw"
    images = parse_idx(blobs[0], 3, raw / stems[0])
    labels = parse_idx(blobs[1], 1, raw / stems[1])
    if len(images) != len(labels):
        raise DatasetNotFoundError(f"mnist: {raw / stems[0]} holds {len(images)} images but {raw / stems[1]} "
                                   f"{len(labels)} labels")
    return images, labels


@functools.lru_cache(maxsize=4)
def load_mnist(train: bool = True, root: Path | None = None, download: bool | None = None) -> ImageData:
    """MNIST from the official idx files, checked against the md5 sums of the published files."""
    base = Path(root) if root else data_root()
    try:
        blobs = [mnist_file_bytes(base, stem) for stem in _mnist_stems(train)]
    except DatasetNotFoundError:
        if not _download_wanted(download):
            raise
        datasets.MNIST(str(base / "mnist"), train=train, download=True)
        blobs = [mnist_file_bytes(base, stem) for stem in _mnist_stems(train)]
    images, labels = _mnist_arrays(base, train, blobs)
    images_t = torch.from_numpy(images.copy()).unsqueeze(1)
    return ImageData(images_t, torch.from_numpy(labels.astype(np.int64)), tuple(datasets.MNIST.classes),
                     MNIST_MEAN, MNIST_STD)


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


def check_dataset(name: str, root: Path | None = None) -> None:
    """Check every file ``name`` serves, training and test splits alike (``python -m untrainable data check``).

    Raises :class:`DatasetNotFoundError` naming the first file that is missing or wrong and how to
    fix it; reads nothing into a cache and downloads nothing.
    """
    base = Path(root) if root else data_root()
    if name == "cifar10":
        check_cifar10(base, train=True)
        check_cifar10(base, train=False)
    elif name == "mnist":
        _mnist_arrays(base, train=True)
        _mnist_arrays(base, train=False)
    elif name == "tinyshakespeare":
        load_tiny_shakespeare(base)
    else:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(LAYOUTS)}")


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


# ----------------------------------------------------------------------------- sequence tasks (chapter 06)
#
# The guidance paper's sequence tasks (Subramaniam et al., 2024). Every sequence is a row of token
# ids, batch first: inputs ``(N, T)``, labels ``(N, T)`` per token or ``(N,)`` per sequence.
# Variable lengths are padded at the end to one fixed ``T`` per task; a causal model or an RNN never
# sees the padding before the last real token, and labels at padded positions are ``IGNORE``.

IGNORE = -100  # the label of positions that count for neither loss nor accuracy (as in untrainable.train)
COPY_TOKEN, COPY_PAD, COPY_VOCAB = 10, 11, 12  # digits are tokens 0-9
PARITY_PAD, PARITY_VOCAB = 2, 3  # bits are tokens 0 and 1
SEQUENCE_TASKS = ("copy", "parity", "char_lm", "word_lm")
#: The language-model tasks: windows of one text, no padding, nothing drawn fresh.
LM_TASKS = ("char_lm", "word_lm")
#: Seeds of the fixed validation and test sets of the generated tasks (the training set's is the run's ``data_seed``).
VALID_SEED, TEST_SEED = 1_000_001, 1_000_002
#: The string lengths of the generated tasks when a config gives none (the paper's).
DEFAULT_LENGTHS = {"copy": (20, 40), "parity": (2, 50)}
#: Fresh training strings: epoch ``e`` of data seed ``d`` draws from ``FRESH_SEED + 1000 d + e``
#: (never a validation or test seed), so a resumed run draws the same strings again.
FRESH_SEED = 2_000_000


def fresh_strings(task: str, n: int, data_seed: int, epoch: int, min_len: int | None = None,
                  max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Epoch ``epoch``'s ``n`` training strings of ``copy`` or ``parity``, drawn anew for every epoch
    as the paper's data loader does (so no string is learnt by heart)."""
    makers = {"copy": copy_task, "parity": parity_task}
    if task not in makers:
        raise ValueError(f"fresh strings exist for the generated tasks {sorted(makers)}, not {task!r}: "
                         f"a corpus has only the strings it has")
    lo, hi = DEFAULT_LENGTHS[task]
    return makers[task](n, min_len or lo, max_len or hi, FRESH_SEED + 1000 * data_seed + epoch)


def _check_lengths(min_len: int, max_len: int, task: str) -> None:
    if isinstance(min_len, bool) or isinstance(max_len, bool) or not (1 <= min_len <= max_len):
        raise ValueError(f"{task}: lengths must satisfy 1 <= min_len <= max_len, got min_len={min_len}, "
                         f"max_len={max_len}")


def _lengths_and_tokens(n: int, min_len: int, max_len: int, high: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=gen)
    tokens = torch.randint(0, high, (n, max_len), generator=gen)
    return lengths, tokens


def copy_task(n: int, min_len: int = 20, max_len: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy-paste: ``n`` digit strings ``s`` of length ``L`` in ``[min_len, max_len]``, then a copy token.

    The sequence is ``s + [COPY] + s``; a causal model reads it shifted by one, so the input is its
    first ``2L`` tokens and the label at position ``t`` is token ``t + 1``. Only the copied part is
    labelled: positions ``L .. 2L-1`` (from the copy token on) predict ``s[0] .. s[L-1]``; the
    prompt and the padding (``COPY_PAD`` up to ``T = 2 max_len``) are ``IGNORE``. Chance is 10 %.
    Returns ``x`` ``(n, 2 max_len)`` and ``y`` ``(n, 2 max_len)``, int64, the same for the same seed.
    """
    _check_lengths(min_len, max_len, "copy task")
    lengths, digits = _lengths_and_tokens(n, min_len, max_len, 10, seed)
    L = lengths[:, None]
    p = torch.arange(2 * max_len)[None, :]
    source = digits.gather(1, (p - L - 1).clamp(0, max_len - 1))
    x = torch.where(p < L, digits.gather(1, p.clamp(max=max_len - 1).expand(n, -1)), source)
    x = torch.where(p == L, torch.tensor(COPY_TOKEN), x)
    x = torch.where(p >= 2 * L, torch.tensor(COPY_PAD), x)
    target = digits.gather(1, (p - L).clamp(0, max_len - 1))
    y = torch.where((p >= L) & (p < 2 * L), target, torch.tensor(IGNORE))
    return x, y


def parity_task(n: int, min_len: int = 2, max_len: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Parity: ``n`` bit strings of length ``L`` in ``[min_len, max_len]``; the label is the sum mod 2.

    Strings are padded at the end with ``PARITY_PAD`` to ``T = max_len``. Returns ``x`` ``(n, max_len)``
    and ``y`` ``(n,)``, int64, the same for the same seed. Chance is 50 %.
    """
    _check_lengths(min_len, max_len, "parity task")
    lengths, bits = _lengths_and_tokens(n, min_len, max_len, 2, seed)
    real = torch.arange(max_len)[None, :] < lengths[:, None]
    x = torch.where(real, bits, torch.tensor(PARITY_PAD))
    return x, (bits * real).sum(1) % 2


@dataclass(frozen=True)
class TextCorpus:
    """A text as token ids (characters or words), split into contiguous train / validation / test parts."""

    vocab: str | tuple[str, ...]  # id -> token: the sorted characters, or the words with "<unk>" first
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    separator: str = ""  # what :meth:`decode` puts between tokens: nothing for characters, a space for words

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def decode(self, ids: torch.Tensor) -> str:
        return self.separator.join(self.vocab[i] for i in ids.tolist())


def char_corpus(text: str, fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)) -> TextCorpus:
    """Character ids of ``text`` split in order: the first 90 % train, the next 5 % validation, the
    last 5 % test (contiguous and disjoint, the same on every machine). The vocabulary is every
    character of the whole text, so the splits share one."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    vocab = "".join(sorted(set(text)))
    lookup = torch.full((max(map(ord, vocab)) + 1,), -1, dtype=torch.int64)
    lookup[torch.tensor([ord(c) for c in vocab])] = torch.arange(len(vocab))
    ids = lookup[torch.frombuffer(bytearray(text.encode("latin-1")), dtype=torch.uint8).long()]
    a = int(len(ids) * fractions[0])
    b = a + int(len(ids) * fractions[1])
    return TextCorpus(vocab, ids[:a], ids[a:b], ids[b:])


#: The word-level model's vocabulary: the most frequent tokens of the training part (95.8 % of its
#: tokens with tiny-shakespeare), every other one read as ``<unk>`` (id 0).
WORD_VOCAB = 4096
#: A word token: a lower-cased run of letters and apostrophes, one punctuation mark, or a line break
#: (a speaker's name ends its line in the plays, so the breaks carry structure).
_WORD = re.compile(r"[a-z']+|[^\sa-z']|\n")


def word_corpus(text: str, vocab_size: int = WORD_VOCAB,
                fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)) -> TextCorpus:
    """Word ids of ``text`` (lower-cased words, punctuation marks and line breaks), split in order as
    :func:`char_corpus` splits characters. The vocabulary is read from the training part alone (the
    ``vocab_size - 1`` most frequent tokens, ties in order of first appearance), so validation and
    test words it never saw are ``<unk>`` as they would be for a new text."""
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be at least 2 (<unk> and one word), got {vocab_size}")
    tokens = _WORD.findall(text.lower())
    a = int(len(tokens) * fractions[0])
    b = a + int(len(tokens) * fractions[1])
    vocab = ("<unk>", *(w for w, _ in Counter(tokens[:a]).most_common(vocab_size - 1)))
    lookup = {w: i for i, w in enumerate(vocab)}
    ids = torch.tensor([lookup.get(w, 0) for w in tokens], dtype=torch.int64)
    return TextCorpus(vocab, ids[:a], ids[a:b], ids[b:], separator=" ")


def lm_sequences(ids: torch.Tensor, seq_len: int, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping windows of a character stream for next-character prediction.

    Window ``i`` is ``ids[i T : (i+1) T + 1]``: input its first ``T`` characters, labels its last ``T``
    (each character's successor). Returns ``x``, ``y`` ``(windows, T)``; the first ``n`` windows when given.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be at least 1, got {seq_len}")
    windows = (len(ids) - 1) // seq_len
    if windows < 1:
        raise ValueError(f"a stream of {len(ids)} characters holds no window of {seq_len + 1}")
    if n is not None:
        windows = min(windows, n)
    x = ids[: windows * seq_len].view(windows, seq_len)
    y = ids[1 : windows * seq_len + 1].view(windows, seq_len)
    return x.clone(), y.clone()


@dataclass(frozen=True)
class SequenceData:
    """One sequence task's fixed splits, batch first, and what a model needs to know about it."""

    task: str
    train: tuple[torch.Tensor, torch.Tensor]
    valid: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    vocab_size: int
    pad_id: int | None  # the padding token (None: no padding, as in the language model)
    num_outputs: int  # classes per sequence (parity) or per token


def sequence_data(task: str, n_train: int, n_valid: int, n_test: int, seed: int = 0, *, min_len: int | None = None,
                  max_len: int | None = None, seq_len: int = 128) -> SequenceData:
    """The splits of one of :data:`SEQUENCE_TASKS`.

    ``copy`` and ``parity`` draw the training set from ``seed`` and the validation and test sets
    from the fixed :data:`VALID_SEED` and :data:`TEST_SEED`, so every run is scored on the same
    strings. ``char_lm`` cuts tiny-shakespeare's contiguous 90/5/5 split into windows of
    ``seq_len`` characters (``n_*`` windows at most; ``seed`` is not used: the split is fixed);
    ``word_lm`` does the same with words (:func:`word_corpus`).
    """
    if task == "copy":
        lo, hi = min_len or DEFAULT_LENGTHS["copy"][0], max_len or DEFAULT_LENGTHS["copy"][1]
        make = lambda n, s: copy_task(n, lo, hi, s)  # noqa: E731
        vocab, pad, out = COPY_VOCAB, COPY_PAD, COPY_VOCAB
    elif task == "parity":
        lo, hi = min_len or DEFAULT_LENGTHS["parity"][0], max_len or DEFAULT_LENGTHS["parity"][1]
        make = lambda n, s: parity_task(n, lo, hi, s)  # noqa: E731
        vocab, pad, out = PARITY_VOCAB, PARITY_PAD, 2
    elif task in LM_TASKS:
        corpus = char_corpus(load_tiny_shakespeare()) if task == "char_lm" else word_corpus(load_tiny_shakespeare())
        return SequenceData(task, lm_sequences(corpus.train, seq_len, n_train), lm_sequences(corpus.valid, seq_len, n_valid),
                            lm_sequences(corpus.test, seq_len, n_test), corpus.vocab_size, None, corpus.vocab_size)
    else:
        raise ValueError(f"unknown sequence task {task!r}: choose one of {', '.join(SEQUENCE_TASKS)}")
    return SequenceData(task, make(n_train, seed), make(n_valid, VALID_SEED), make(n_test, TEST_SEED), vocab, pad, out)


# ----------------------------------------------------------------------------- image datasets of the guidance chapters
#
# Chapters 04 and 05 train on CIFAR-10; readers with ImageNet or Imagenette and a GPU point them at
# an ImageFolder tree instead (``dataset="imagefolder:<root>"``, the ``paper`` profile).


#: Decoding processes of an ImageFolder loader unless ``UNTRAINABLE_LOADER_WORKERS`` says otherwise.
DEFAULT_LOADER_WORKERS = min(8, max((os.cpu_count() or 1) - 1, 0))


def loader_workers() -> int:
    """How many processes decode images (``UNTRAINABLE_LOADER_WORKERS``, else :data:`DEFAULT_LOADER_WORKERS`)."""
    text = os.environ.get("UNTRAINABLE_LOADER_WORKERS")
    if text is None:
        return DEFAULT_LOADER_WORKERS
    if not text.isdigit():
        raise ValueError(f"UNTRAINABLE_LOADER_WORKERS={text!r}: give a number of processes (0: decode in this one)")
    return int(text)


def image_folder_transform(image_size: int, augment: bool = False):
    """PIL image -> uint8 tensor ``(C, image_size, image_size)``: resized (shorter side ``image_size·8/7``) and
    centre-cropped, or with ``augment`` a random resized crop and flip (the usual ImageNet training views)."""
    from torchvision import transforms

    if augment:
        views = [transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip()]
    else:
        views = [transforms.Resize(image_size * 8 // 7), transforms.CenterCrop(image_size)]
    return transforms.Compose([*views, transforms.PILToTensor()])


def image_folder_loader(folder: Path, image_size: int, indices: Sequence[int] | None = None, *, batch_size: int = 256,
                        workers: int | None = None, augment: bool = False) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` of ``(uint8 images, labels)`` batches of an ImageFolder ``folder`` (``indices``: those
    images, in that order), decoded by ``workers`` processes (:func:`loader_workers` when None) that stay up
    between passes, into pinned memory when a GPU will take the batches (its copies then overlap the compute)."""
    workers = loader_workers() if workers is None else workers
    ds = datasets.ImageFolder(str(folder), transform=image_folder_transform(image_size, augment))
    chosen = ds if indices is None else torch.utils.data.Subset(ds, [int(i) for i in indices])
    return torch.utils.data.DataLoader(chosen, batch_size=batch_size, shuffle=False, num_workers=workers,
                                       pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0)


def decode_rate(folder: Path, image_size: int, workers: int = 1, augment: bool = True, passes: int = 2,
                batch_size: int = 32) -> float:
    """Images per second per decoding process: what reading, decoding and (``augment``) the random views of
    the ImageFolder ``folder`` cost on this CPU. The first pass starts the workers and is not timed; the
    others are. A GPU's images per second divided by this is how many workers keep it fed."""
    loader = image_folder_loader(folder, image_size, batch_size=batch_size, workers=workers, augment=augment)
    n = sum(len(y) for _, y in loader)  # warm-up: workers started, files in the page cache
    t0 = time.perf_counter()
    for _ in range(passes - 1):
        for _ in loader:
            pass
    return n * (passes - 1) / (time.perf_counter() - t0) / max(workers, 1)


def load_image_folder(spec: str, train: bool, image_size: int, n: int | None, seed: int,
                      workers: int | None = None) -> ImageData:
    """An ImageFolder dataset (ImageNet, Imagenette: ``<root>/train/<class>/*.JPEG``, ``<root>/val/...``).

    ``spec`` is ``"imagefolder:<root>"``. Images are resized (shorter side ``image_size·8/7``),
    centre-cropped to ``image_size`` and held in memory as uint8, a class-balanced subset of ``n``
    when ``n`` is given; they are standardised with ImageNet's channel statistics. ``workers`` processes
    decode them (:func:`image_folder_loader`); the images are the same whatever their number.
    """
    root = Path(spec.split(":", 1)[1]).expanduser()
    folder = root / ("train" if train else "val")
    if not folder.is_dir():
        raise FileNotFoundError(f"ImageFolder dataset: {folder} does not exist (expected {root}/train and {root}/val)")
    ds = datasets.ImageFolder(str(folder))
    labels = torch.tensor(ds.targets)
    idx = stratified_indices(labels, n, seed) if n is not None and n < len(labels) else torch.arange(len(labels))
    loader = image_folder_loader(folder, image_size, idx.tolist(), workers=workers)
    images = torch.cat([batch for batch, _ in loader])
    return ImageData(images, labels[idx], tuple(ds.classes), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _image_split(dataset: str, train: bool, n: int | None, data_seed: int, image_size: int) -> ImageData:
    """One split of ``"cifar10"`` or ``"imagefolder:<root>"``, a class-balanced subset of ``n``."""
    if dataset == "cifar10":
        return load_cifar10(train=train).subset(n, seed=data_seed)
    if dataset.startswith("imagefolder:"):
        return load_image_folder(dataset, train, image_size, n, data_seed)
    raise ValueError(f"unknown dataset {dataset!r}: use cifar10 or imagefolder:<path>")


def load_image_data(dataset: str, n_train: int | None, n_test: int | None, data_seed: int, image_size: int = 32
                    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``((x_train, y_train), (x_test, y_test))`` of ``"cifar10"`` or ``"imagefolder:<root>"``:
    normalised float32 images and int64 labels, class-balanced subsets drawn from ``data_seed``."""
    train = _image_split(dataset, True, n_train, data_seed, image_size)
    test = _image_split(dataset, False, n_test, data_seed, image_size)
    return train.tensors(), test.tensors()


@dataclass(frozen=True)
class HeldOutSplits:
    """Training images, a validation split held out from the training images, and test images."""

    train: ImageData
    valid: ImageData
    test: ImageData


def held_out_splits(dataset: str, n_train: int | None, n_valid: int, n_test: int | None, data_seed: int,
                    image_size: int = 32) -> HeldOutSplits:
    """Training, validation and test images, the validation split held out from the training images.

    The ``n_valid`` validation images are drawn first (class-balanced, ``data_seed``) and the
    ``n_train`` training images from the rest, so runs of every training-set size share one
    validation split, and no image is in two splits. Hyper-parameters are chosen on this split;
    the test split is for reporting only.
    """
    if n_valid < 1:
        raise ValueError(f"n_valid must be at least 1, got {n_valid}")
    full = _image_split(dataset, True, None, data_seed, image_size)
    if n_valid >= len(full):
        raise ValueError(f"n_valid={n_valid} leaves no training images: {dataset!r} has {len(full)} in its training "
                         "split; ask for fewer validation images")
    held = torch.zeros(len(full), dtype=torch.bool)
    held[stratified_indices(full.labels, n_valid, data_seed)] = True
    valid = ImageData(full.images[held], full.labels[held], full.classes, full.mean, full.std)
    rest = ImageData(full.images[~held], full.labels[~held], full.classes, full.mean, full.std)
    test = _image_split(dataset, False, n_test, data_seed, image_size)
    return HeldOutSplits(rest.subset(n_train, seed=data_seed), valid, test)
