"""The datasets load from local disk with the documented contents, and fail loudly when missing."""

from __future__ import annotations

import pytest
import torch

from untrainable import data
from untrainable.paths import data_root


def test_cifar10_matches_the_published_files():
    train, test = data.load_cifar10(train=True), data.load_cifar10(train=False)
    assert train.images.shape == (50_000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (10_000, 3, 32, 32)
    assert train.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert test.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert torch.bincount(train.labels).tolist() == [5000] * 10


def test_normalized_cifar10_is_standardised_per_channel():
    x = data.load_cifar10(train=True).subset(5000, seed=0).normalized()
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(3), atol=0.05) and torch.allclose(std, torch.ones(3), atol=0.05)


def test_mnist_label_counts():
    test = data.load_mnist(train=False)
    assert test.images.shape == (10_000, 1, 28, 28)
    assert torch.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_tiny_shakespeare_text():
    text = data.load_tiny_shakespeare()
    assert len(text) == 1_115_394 and len(set(text)) == 65
    assert text.startswith("First Citizen:\nBefore we proceed any further, hear me speak.")


def test_subset_is_balanced_seeded_and_stable():
    full = data.load_cifar10(train=False)
    a, b, c = full.subset(1000, seed=0), full.subset(1000, seed=0), full.subset(1000, seed=1)
    assert torch.bincount(a.labels).tolist() == [100] * 10
    assert torch.equal(a.images, b.images) and not torch.equal(a.labels, c.labels)
    assert full.subset(None) is full


def test_missing_dataset_names_the_path_layout_and_fix(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load_cifar10.__wrapped__(train=True, root=tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path) in message
    assert "cifar-10-batches-py" in message
    assert "UNTRAINABLE_DATA" in message and "python -m untrainable data download cifar10" in message


def test_missing_mnist_and_corrupt_text(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match="mnist"):
        data.load_mnist.__wrapped__(train=True, root=tmp_path, download=False)
    path = tmp_path / "text" / "tinyshakespeare" / "input.txt"
    path.parent.mkdir(parents=True)
    path.write_text("not shakespeare")
    with pytest.raises(data.DatasetNotFoundError, match="md5 mismatch"):
        data.load_tiny_shakespeare(root=tmp_path)


def test_data_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("UNTRAINABLE_DATA", str(tmp_path))
    assert data_root() == tmp_path.resolve()
    monkeypatch.delenv("UNTRAINABLE_DATA")
    assert data_root() != tmp_path.resolve()


def test_batches_cover_every_index_once():
    gen = torch.Generator().manual_seed(0)
    idx = torch.cat(list(data.batches(103, 10, gen)))
    assert sorted(idx.tolist()) == list(range(103))
    assert [len(b) for b in data.batches(103, 10, drop_last=True)] == [10] * 10


# ----------------------------------------------------------------------------- checked files (small fakes)


def idx_bytes(array) -> bytes:
    """An idx file of unsigned bytes: magic 0x0803 (3-d) or 0x0801 (1-d), big-endian sizes, the data."""
    import numpy as np

    array = np.asarray(array, dtype=np.uint8)
    magic = {3: 0x0803, 1: 0x0801}[array.ndim]
    sizes = b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return magic.to_bytes(4, "big") + sizes + array.tobytes()


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """A five-image test split, gzipped, with its md5 sums standing in for the published ones."""
    import gzip
    import hashlib

    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = torch.arange(5 * 28 * 28).reshape(5, 28, 28) % 251
    contents = {"t10k-images-idx3-ubyte": idx_bytes(images), "t10k-labels-idx1-ubyte": idx_bytes([3, 1, 4, 1, 5])}
    sums = dict(data.MNIST_MD5)
    for stem, blob in contents.items():
        packed = gzip.compress(blob)
        (raw / f"{stem}.gz").write_bytes(packed)
        sums[stem] = hashlib.md5(packed).hexdigest()
    monkeypatch.setattr(data, "MNIST_MD5", sums)
    return tmp_path


def load_fake_mnist(root):
    return data.load_mnist.__wrapped__(train=False, root=root, download=False)


def test_fake_mnist_loads_and_writes_nothing(fake_mnist, tmp_path):
    before = sorted(p for p in tmp_path.rglob("*"))
    test = load_fake_mnist(fake_mnist)
    assert test.images.shape == (5, 1, 28, 28) and test.images.dtype == torch.uint8
    assert test.labels.tolist() == [3, 1, 4, 1, 5] and test.images[1, 0, 0, 0].item() == (28 * 28) % 251
    assert sorted(p for p in tmp_path.rglob("*")) == before  # no unpacked copy, so none can go stale


def test_mnist_checksum_names_the_bad_file_and_the_good_file_loads_again(fake_mnist):
    gz = fake_mnist / "mnist" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    good = gz.read_bytes()
    gz.write_bytes(good[:-7])  # a truncated download
    with pytest.raises(data.DatasetNotFoundError, match=f"md5 mismatch for {gz}"):
        load_fake_mnist(fake_mnist)
    gz.write_bytes(good)  # the real file returns: nothing stale stands in its way
    assert load_fake_mnist(fake_mnist).labels.tolist() == [3, 1, 4, 1, 5]


def test_missing_mnist_file_is_named(fake_mnist):
    gz = fake_mnist / "mnist" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    gz.unlink()
    with pytest.raises(data.DatasetNotFoundError, match=f"missing file {gz}"):
        load_fake_mnist(fake_mnist)


def test_a_corrupt_uncompressed_idx_file_is_named_not_a_traceback(fake_mnist):
    import gzip

    raw = fake_mnist / "mnist" / "MNIST" / "raw"
    gz = raw / "t10k-images-idx3-ubyte.gz"
    plain = raw / "t10k-images-idx3-ubyte"
    plain.write_bytes(gzip.decompress(gz.read_bytes())[:-100])  # uncompressed, truncated
    gz.unlink()
    with pytest.raises(data.DatasetNotFoundError, match=f"{plain} holds .* truncated"):
        load_fake_mnist(fake_mnist)
    plain.write_bytes(b"\x00\x00")  # not even a header
    with pytest.raises(data.DatasetNotFoundError, match="wrong header"):
        load_fake_mnist(fake_mnist)


def test_mnist_images_and_labels_must_agree(fake_mnist):
    import gzip
    import hashlib

    gz = fake_mnist / "mnist" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    packed = gzip.compress(idx_bytes([1, 2]))
    gz.write_bytes(packed)
    data.MNIST_MD5["t10k-labels-idx1-ubyte"] = hashlib.md5(packed).hexdigest()  # the fixture's copy
    with pytest.raises(data.DatasetNotFoundError, match="5 images but .* 2 labels"):
        load_fake_mnist(fake_mnist)


def test_cifar10_says_missing_for_missing_files_and_names_them(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "test_batch").write_bytes(b"present")
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load_cifar10.__wrapped__(train=False, root=tmp_path, download=False)
    assert f"missing file(s) {folder / 'batches.meta'}" in str(err.value) and "md5" not in str(err.value)


def test_cifar10_md5_mismatch_names_the_bad_file(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in ("test_batch", "batches.meta"):
        (folder / name).write_bytes(b"not a cifar batch")
    with pytest.raises(data.DatasetNotFoundError, match=f"md5 mismatch for {folder / 'test_batch'}"):
        data.load_cifar10.__wrapped__(train=False, root=tmp_path, download=False)
