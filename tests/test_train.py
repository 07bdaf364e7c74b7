"""The training loop learns, is deterministic, resumes exactly, and stops on a NaN loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from untrainable.runtime import resolve_device, seed_everything
from untrainable.train import FitSettings, NonFiniteLossError, fit

CPU = torch.device("cpu")


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian blobs in 10 dimensions: easy for a small MLP, impossible for chance."""
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(3, 10, generator=torch.Generator().manual_seed(123)) * 3
    y = torch.randint(0, 3, (n,), generator=gen)
    return centers[y] + torch.randn(n, 10, generator=gen), y


def _train(seed: int, epochs: int, checkpoint=None, lr: float = 1e-2) -> list[dict]:
    gen = seed_everything(seed)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    return fit(model, _blobs(600, 0), _blobs(300, 1), FitSettings(epochs=epochs, batch_size=50, lr=lr),
               generator=gen, device=CPU, checkpoint=checkpoint, progress=False)


def _strip_time(history):
    return [{k: v for k, v in h.items() if k != "epoch_time_s"} for h in history]


def test_a_tiny_training_learns():
    history = _train(0, epochs=5)
    assert history[0]["epoch"] == 1 and len(history) == 5
    assert history[-1]["test_acc"] > 0.9
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_same_seed_same_numbers_and_other_seed_other_numbers():
    assert _strip_time(_train(3, 2)) == _strip_time(_train(3, 2))
    assert _strip_time(_train(3, 2)) != _strip_time(_train(4, 2))


def test_resume_from_a_checkpoint_is_exact(tmp_path):
    straight = _train(0, 4)
    ckpt = tmp_path / "run.pt"
    _train(0, 2, checkpoint=ckpt)  # "interrupted" after two epochs
    resumed = _train(0, 4, checkpoint=ckpt)
    assert _strip_time(resumed) == _strip_time(straight)


def test_nan_loss_is_a_clear_error():
    x, y = _blobs(100, 0)
    x[:] = float("nan")
    model = nn.Linear(10, 3)
    with pytest.raises(NonFiniteLossError, match="loss became nan at epoch 1, step 1"):
        fit(model, (x, y), (x, y), FitSettings(epochs=1), generator=seed_everything(0), device=CPU, progress=False)


def test_device_auto_and_bad_device():
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")
