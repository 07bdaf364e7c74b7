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
