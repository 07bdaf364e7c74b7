"""The same code on a GPU: guided steps, a mimic step and a paper-profile slice under ``precision="auto"``.

Marked ``cuda`` and skipped where no CUDA device is present (every CPU-only machine, CI included).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from untrainable import guidance as G
from untrainable import mimic
from untrainable.precision import resolve_precision
from untrainable.runtime import seed_everything
from untrainable.train import FitSettings, fit

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")]
CUDA = torch.device("cuda")


def _images(n: int, seed: int, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=gen)
    return torch.randn(n, 3, 16, 16, generator=gen) + y[:, None, None, None].float(), y


def test_a_guided_image_step_with_the_gram_bank_runs_in_auto_precision():
    from untrainable.models import resnet18

    seed_everything(0)
    guide, target = G.freeze(resnet18(8, 4, 16)).to(CUDA), nn.Sequential(
        nn.Flatten(), nn.Linear(768, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    train, test = _images(256, 0), _images(64, 1)
    loss = G.GuidanceLoss(target.to(CUDA), guide, train[0][:2].to(CUDA))
    bank = G.GuideBank(guide, [g for g, _ in loss.pairs], train[0].to(CUDA), mode="gram")
    loss = G.GuidanceLoss(target, guide, train[0][:2].to(CUDA), bank=bank)
    settings = FitSettings(epochs=1, batch_size=64, precision="auto")
    history = fit(target, (G.IndexedInputs(train[0]), train[1]), test, settings, generator=seed_everything(0),
                  device=CUDA, loss_fn=loss, progress=False)
    assert resolve_precision("auto", CUDA) in ("bf16", "fp32") and torch.isfinite(torch.tensor(history[-1]["train_loss"]))
    assert loss.log and all(0.0 <= t <= 1.0 + 1e-5 for t in loss.log[-1]["terms"])


def test_a_guided_sequence_run_and_a_mimic_step_run_on_cuda():
    from untrainable.experiments import sequence_guidance as sg

    records = sg.run("quick", seeds=(0,), device="cuda", settings=["parity"], smoke=True)
    assert records and all(r["device"].startswith("cuda") for r in records)
    student = nn.Sequential(nn.Flatten(), nn.Linear(768, 32), nn.ReLU(), nn.Linear(32, 4))
    x, _ = _images(128, 2)
    teacher_logits = torch.randn(128, 4)
    history = fit(student, (x, teacher_logits), _images(32, 3), FitSettings(epochs=1, batch_size=32, precision="auto"),
                  generator=seed_everything(0), device=CUDA, loss_fn=mimic.mimic_loss_fn("logits"), progress=False)
    assert history[-1]["train_loss"] > 0


def test_a_paper_profile_slice_runs_end_to_end_on_cuda(tmp_path):
    from test_image_guidance import _image_folder

    from untrainable.experiments import fcn_guidance

    root = _image_folder(tmp_path / "folder")
    overrides = dict(dataset=f"imagefolder:{root}", num_classes=2, n_train=16, n_valid=4, n_test=8,
                     batch_size=8, probe_n=8)
    records = fcn_guidance.run("paper", seeds=(0,), device="cuda", smoke=True, **overrides)
    assert records and all(r["device"].startswith("cuda") for r in records)
