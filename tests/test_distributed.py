"""Several processes train one run as one process would (:mod:`untrainable.distributed`), tested on CPUs with
gloo and two processes started by ``torch.multiprocessing.spawn``: the guidance loss and its gradients on the
global batch, a whole :func:`untrainable.train.fit` (BatchNorm, augmentation, validation, checkpoints), a
killed run resumed, and one chapter shell entry under ``torchrun``, each against a single process.

Tolerances: one step agrees to 1e-5 (fp32; the sums run in another order); a few epochs of training to 1e-4
on losses and accuracies (rounding differences grow a little with every step).
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from untrainable import distributed as D
from untrainable import guidance as G
from untrainable.train import FitSettings, fit

WORLD = 2
STEP_TOL = 1e-5
FIT_TOL = 1e-4
ROOT = Path(__file__).resolve().parents[1]


def _spawn(worker, tmp_path: Path, *args) -> None:
    """Run ``worker(rank, store, *args)`` in ``WORLD`` processes joined by a file store in ``tmp_path``."""
    mp.spawn(worker, args=(str(tmp_path / "store"), *args), nprocs=WORLD, join=True)


def _join(rank: int, store: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)


def _target() -> nn.Module:
    """A small net with BatchNorm. Its first layer has no bias: before BatchNorm a bias's gradient is rounding
    noise, which Adam turns into full-size steps whose sign differs between the two ways of summing."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(),
                         nn.Linear(8, 3))


def _guide() -> nn.Module:
    torch.manual_seed(1)
    return G.freeze(nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 3)))


def _batch(n: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def _guided_step(distance: str) -> tuple[float, list[torch.Tensor]]:
    """One guided step's loss and gradients on the global batch, as this process group computes them
    (``"linear_cka-bank"``: the guide's side looked up in a Gram bank by the examples' indices)."""
    x, y = _batch()
    model, guide = _target(), _guide()
    bank = G.GuideBank(guide, G.guidance_layers(guide, x[:2]), x) if distance.endswith("-bank") else None
    loss_fn = G.GuidanceLoss(model, guide, x[:2], alpha=0.7, distance=distance.removesuffix("-bank"), bank=bank)
    part = D.local_part(torch.arange(len(y)))
    inputs = x[part] if bank is None else G.IndexedInputs(x)[part]
    with D.global_batch_norm(model):
        loss, _ = loss_fn(model, inputs, y[part])
        weight = D.label_weight(y[part])
        loss_sum, weights = D.all_sum([loss.item() * weight, weight])
        (loss * D.share(weight, weights)).backward()
        D.average_gradients(model)
    return loss_sum / weights, [p.grad.clone() for p in model.parameters()]


def _guided_step_worker(rank: int, store: str, distance: str) -> None:
    expected_loss, expected_grads = _guided_step(distance)  # before joining: one process, the whole batch
    _join(rank, store)
    loss, grads = _guided_step(distance)
    assert abs(loss - expected_loss) < STEP_TOL, (loss, expected_loss)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=STEP_TOL, atol=STEP_TOL)
    dist.destroy_process_group()


@pytest.mark.parametrize("distance", ["linear_cka", "procrustes", "linear_cka-bank"])
def test_guidance_loss_and_gradients_on_the_global_batch_match_one_process(tmp_path: Path, distance: str) -> None:
    """7 examples over 2 processes (4 + 3 rows: the padded gather), BatchNorm over the global batch."""
    _spawn(_guided_step_worker, tmp_path, distance)


def test_gather_rows_sends_each_process_its_rows_gradient(tmp_path: Path) -> None:
    _spawn(_gather_worker, tmp_path)


def _gather_worker(rank: int, store: str) -> None:
    _join(rank, store)
    x = torch.full((3 - rank, 2), float(rank + 1), requires_grad=True)  # 3 rows on rank 0, 2 on rank 1
    rows = D.gather_rows(x)
    assert rows.shape == (5, 2) and rows[:3].eq(1).all() and rows[3:].eq(2).all()
    (rows * torch.arange(5.0)[:, None]).sum().backward()
    # every process computes the same sum, so each row's gradient arrives once per process
    own = torch.arange(5.0)[:3] if rank == 0 else torch.arange(5.0)[3:]
    torch.testing.assert_close(x.grad, WORLD * own[:, None].expand(-1, 2))
    dist.destroy_process_group()


def _data() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(90, 6, generator=g), torch.randint(0, 3, (90,), generator=g)
    return {"train": (x[:50], y[:50]), "valid": (x[50:70], y[50:70]), "test": (x[70:], y[70:])}


def _jitter(xb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """An augmentation that draws from the run's generator."""
    return xb + 0.1 * torch.randn(xb.shape, generator=generator)


def _fit(checkpoint: Path | None, stop_after: int | None = None) -> list[dict]:
    """A guided run of 3 epochs with BatchNorm, augmentation and validation; batches of 16 (the last 2 rows)."""
    data = _data()
    model = _target()
    loss_fn = G.GuidanceLoss(model, _guide(), data["train"][0][:2], alpha=0.5)

    def end(epoch: int, _: nn.Module) -> None:
        if epoch == stop_after:
            raise KeyboardInterrupt("killed")

    settings = FitSettings(epochs=3, batch_size=16, lr=1e-2, schedule="cosine")
    return fit(model, data["train"], data["test"], settings, generator=torch.Generator().manual_seed(4),
               device=torch.device("cpu"), loss_fn=loss_fn, checkpoint=checkpoint, progress=False, valid=data["valid"],
               augment=_jitter, on_epoch_end=end, keep_test_correct=True)


def _compare(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        for k in ("train_loss", "train_acc", "valid_loss", "valid_acc", "test_loss", "test_acc"):
            assert abs(g[k] - w[k]) < FIT_TOL, (g["epoch"], k, g[k], w[k])
        assert g.get("test_correct") == w.get("test_correct")


def _fit_worker(rank: int, store: str, out: str) -> None:
    _join(rank, store)
    checkpoint = Path(out) / "run.pt"
    history = _fit(checkpoint)
    assert checkpoint.is_file() and not list(Path(out).glob(".*.tmp"))
    dist.barrier()
    if rank == 0:
        checkpoint.unlink()
    dist.barrier()
    with pytest.raises(KeyboardInterrupt):
        _fit(checkpoint, stop_after=2)  # killed after epoch 2: its checkpoint holds epoch 1
    resumed = _fit(checkpoint)
    assert [h["train_loss"] for h in resumed] == [h["train_loss"] for h in history]  # exactly the same run
    if rank == 0:
        torch.save(history, Path(out) / "history.pt")
    dist.destroy_process_group()


def test_fit_on_two_processes_is_the_single_process_run_and_resumes_exactly(tmp_path: Path) -> None:
    _spawn(_fit_worker, tmp_path, str(tmp_path))
    _compare(torch.load(tmp_path / "history.pt"), _fit(None))


def test_a_batch_too_small_to_split_is_refused(tmp_path: Path) -> None:
    _spawn(_small_batch_worker, tmp_path)


def _small_batch_worker(rank: int, store: str) -> None:
    _join(rank, store)
    with pytest.raises(ValueError, match="cannot be split over 2 processes"):
        D.check_batch_size(17, 16)  # the last batch holds one example
    D.check_batch_size(18, 16)
    dist.destroy_process_group()


def test_one_process_changes_nothing() -> None:
    """Without a process group every helper is the identity, so single-process runs stay bit-identical."""
    index = torch.arange(5)
    assert D.world_size() == 1 and D.is_main() and D.local_part(index) is index
    x = torch.randn(3, 2)
    assert D.gather_rows(x) is x and D.all_sum([1.5, 2.0]) == [1.5, 2.0] and D.share(4, 4) == 1.0
    model = _target()
    before = copy.deepcopy(model.state_dict())
    with D.global_batch_norm(model):
        assert isinstance(model[1], nn.BatchNorm1d) and not isinstance(model[1], nn.SyncBatchNorm)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shell_entry(tmp_path: Path, name: str, launcher: list[str]) -> list[dict]:
    """Records of chapter 06's quick parity runs (no guide, the trained guide, and the guide itself), trained into a
    results folder of their own."""
    results = tmp_path / name
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "UNTRAINABLE_RESULTS": str(results),
           "UNTRAINABLE_CACHE": str(tmp_path / f"{name}-cache"), "UNTRAINABLE_THREADS": "1", "OMP_NUM_THREADS": "1",
           "UNTRAINABLE_PROGRESS": "0"}
    command = [*launcher, "-m", "untrainable.experiments.sequence_guidance", "--profile", "quick",
               "--settings", "parity", "--conditions", "no_guide", "trained_guide", "--seeds", "0", "--device", "cpu"]
    subprocess.run(command, env=env, check=True, cwd=tmp_path, timeout=240)
    return [json.loads(p.read_text()) for p in sorted(results.rglob("*.json"))]


def test_a_chapter_shell_entry_under_torchrun_writes_the_single_process_records(tmp_path: Path) -> None:
    single = _shell_entry(tmp_path, "single", [sys.executable])
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
                f"--master_port={_free_port()}"]
    shared = _shell_entry(tmp_path, "two", torchrun)
    assert len(single) == 3 and [r["key"] for r in shared] == [r["key"] for r in single]
    for one, two in zip(single, shared):
        assert two["world_size"] == 2 and "world_size" not in one
        assert two["config"] == one["config"]
        _close(two["metrics"], one["metrics"], one["name"])
        for row_two, row_one in zip(two["history"], one["history"], strict=True):
            _close(row_two, row_one, f"{one['name']} epoch {row_one['epoch']}")


def _close(got: dict, want: dict, where: str) -> None:
    """Every number of ``want`` is in ``got`` within :data:`FIT_TOL`; everything else is equal."""
    assert got.keys() == want.keys(), where
    for k, v in want.items():
        if k.endswith("_time_s"):
            continue
        if isinstance(v, float):
            assert abs(got[k] - v) < FIT_TOL, (where, k, got[k], v)
        elif isinstance(v, list) and all(isinstance(x, float) for x in v):
            assert max(abs(a - b) for a, b in zip(got[k], v, strict=True)) < FIT_TOL, (where, k)
        else:
            assert got[k] == v, (where, k, got[k], v)


# ----------------------------------------------------------------------------- the torchrun path of reproduce


def _together_worker(rank: int, store: str, port: int) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from untrainable.cli import train_together

    goes_on = train_together("quick", ["03"], None, "cpu", False, False)  # notebook 03 trains nothing
    assert goes_on == (rank == 0) and not dist.is_initialized()
    assert not any(name in os.environ for name in D.TORCHRUN_ENV)  # the notebook kernels will run alone


def test_train_together_leaves_rank_0_alone_for_the_notebooks(tmp_path: Path) -> None:
    _spawn(_together_worker, tmp_path, _free_port())


# ----------------------------------------------------------------------------- data that keeps GPUs fed


def image_folder(root: Path, classes: int = 2, per_class: int = 6, size: tuple[int, int] = (70, 50)) -> Path:
    """A small ImageFolder of random JPEGs (``root/train/<class>/*.jpg``); returns ``root/train``."""
    from PIL import Image

    g = torch.Generator().manual_seed(5)
    for c in range(classes):
        folder = root / "train" / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=g, dtype=torch.uint8).numpy()
            Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)
    return root / "train"


def test_image_folder_decodes_the_same_images_with_workers(tmp_path: Path) -> None:
    from torchvision import datasets

    from untrainable.data import image_folder_transform, load_image_folder, stratified_indices

    folder = image_folder(tmp_path)
    alone = load_image_folder(f"imagefolder:{tmp_path}", True, 32, 8, seed=0, workers=0)
    helped = load_image_folder(f"imagefolder:{tmp_path}", True, 32, 8, seed=0, workers=1)
    assert alone.images.shape == (8, 3, 32, 32) and alone.images.dtype == torch.uint8
    assert torch.equal(alone.images, helped.images) and torch.equal(alone.labels, helped.labels)
    ds = datasets.ImageFolder(str(folder), transform=image_folder_transform(32))
    idx = stratified_indices(torch.tensor(ds.targets), 8, 0)
    assert torch.equal(alone.images, torch.stack([ds[int(i)][0] for i in idx]))  # what one image at a time gives


def test_decode_rate_is_measured_per_worker(tmp_path: Path) -> None:
    from untrainable.data import decode_rate

    folder = image_folder(tmp_path, per_class=8)
    rate = decode_rate(folder, 32, workers=1, augment=True, passes=2, batch_size=4)
    assert 0 < rate < 1e6
