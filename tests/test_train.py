"""The training loop learns, is deterministic, resumes exactly (per-epoch values included) and stops
on a NaN loss. Its reliability probes (crafted checkpoints, NaN at the last step) are in
``test_reliability.py``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from untrainable.files import load_torch
from untrainable.runtime import resolve_device, seed_everything
from untrainable.train import FitSettings, NonFiniteLossError, cross_entropy_loss, fit

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
    return [{k: v for k, v in h.items() if k not in ("epoch_time_s", "train_time_s")} for h in history]


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


def _train_with_valid(test_every_epoch: bool) -> list[dict]:
    """A run that overfits a small training set, so its validation loss has an early best epoch."""
    gen = seed_everything(0)
    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 3))
    x, y = _blobs(60, 0)
    y[:20] = (y[:20] + 1) % 3  # noisy labels: memorising them hurts the validation loss
    return fit(model, (x, y), _blobs(300, 1), FitSettings(epochs=12, batch_size=20, lr=3e-2), generator=gen,
               device=CPU, progress=False, valid=_blobs(200, 2), test_every_epoch=test_every_epoch)


def test_testing_only_the_best_and_last_epochs_trains_the_same():
    every, some = _strip_time(_train_with_valid(True)), _strip_time(_train_with_valid(False))
    by_loss = [h["epoch"] for i, h in enumerate(every)
               if h["valid_loss"] < min((e["valid_loss"] for e in every[:i]), default=float("inf"))]
    by_acc = [h["epoch"] for i, h in enumerate(every)
              if h["valid_acc"] > max((e["valid_acc"] for e in every[:i]), default=-1.0)]
    tested = [h["epoch"] for h in some if h["test_acc"] is not None]
    assert tested == sorted({*by_loss, *by_acc, 12}) and len(tested) < 12  # the best so far by each, the last
    for full, part in zip(every, some):
        assert {k: v for k, v in part.items() if v is not None} == \
               {k: v for k, v in full.items() if part[k] is not None}  # same training, same numbers
    with pytest.raises(ValueError, match="needs a validation split"):
        fit(nn.Linear(10, 3), _blobs(60, 0), _blobs(60, 1), FitSettings(epochs=1), generator=seed_everything(0),
            device=CPU, progress=False, test_every_epoch=False)


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


def _hooks(seen: list[int]):
    """Per-epoch hooks that record what they saw and add two values to each row."""

    def start(epoch, model):
        seen.append(epoch)

    def end(epoch, model):
        return {"weight_norm": float(model[0].weight.detach().norm()), "epoch_squared": epoch**2}

    return start, end


def test_per_epoch_values_and_extra_state_survive_a_kill_and_resume(tmp_path):
    """Killed in the middle of epoch 3: the resumed history, hook values included, and the state measured
    before training are those of an uninterrupted run; the checkpoint sums the seconds of both parts."""

    def train(checkpoint, kill_at_step=None):
        gen = seed_everything(0)
        model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
        state = {"initial_norm": float(model[0].weight.detach().norm())}
        seen: list[int] = []
        start, end = _hooks(seen)
        calls = []

        def loss_fn(m, x, y):
            calls.append(1)
            if len(calls) == kill_at_step:
                raise KeyboardInterrupt
            return cross_entropy_loss(m, x, y)

        history = fit(model, _blobs(600, 0), _blobs(300, 1), FitSettings(epochs=4, batch_size=50, lr=1e-2),
                      generator=gen, device=CPU, loss_fn=loss_fn, checkpoint=checkpoint, progress=False,
                      on_epoch_start=start, on_epoch_end=end, state=state)
        return history, state, seen

    straight, straight_state, _ = train(tmp_path / "a.pt")
    assert all("weight_norm" in h and h["epoch_squared"] == h["epoch"] ** 2 for h in straight)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "b.pt", kill_at_step=2 * 12 + 5)  # 12 steps per epoch
    first = load_torch(tmp_path / "b.pt")
    assert first["epoch"] == 2 and first["state"] == straight_state and first["elapsed_s"] > 0
    resumed, state, seen = train(tmp_path / "b.pt")
    assert seen == [3, 4]
    assert _strip_time(resumed) == _strip_time(straight) and state == straight_state
    assert load_torch(tmp_path / "b.pt")["elapsed_s"] > first["elapsed_s"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_an_epochs_right_and_wrong_string_comes_from_its_test_pass_and_equals_a_separate_one(precision):
    """``keep_test_correct`` reads the right/wrong string off the epoch's own test pass (one forward over the
    test split, not two): the same string :func:`correct_string` computes in a pass of its own, in every precision,
    with a batch size that does not divide the split, and consistent with the epoch's accuracy."""
    from untrainable.train import correct_string, evaluate

    gen = seed_everything(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    x, y = _blobs(301, 1)
    settings = FitSettings(epochs=2, batch_size=50, lr=1e-2, precision=precision, eval_batch_size=64)
    history = fit(model, _blobs(600, 0), (x, y), settings, generator=gen, device=CPU, progress=False,
                  keep_test_correct=True)
    last = history[-1]["test_correct"]
    assert last == correct_string(model, x, y, CPU, 64, precision)
    assert last.count("1") / len(last) == pytest.approx(history[-1]["test_acc"]) and len(last) == 301
    both = evaluate(model, x, y, CPU, 64, precision, keep_correct=True)
    assert both["correct"] == last and "correct" not in evaluate(model, x, y, CPU, 64, precision)
