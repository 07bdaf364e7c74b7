"""Chapter 02: measuring representations, layer by layer.

Three questions, one record per seed:

* **Sanity check** (Kornblith et al., 2019): two copies of the same CNN trained from different
  seeds. For each layer of one, which layer of the other is most similar? A measure that is any
  use as a guidance loss should pick the corresponding layer. Every measure of
  :mod:`untrainable.similarity` is scored.
* **Trained vs untrained**: linear CKA between every layer of a trained CNN and every layer of
  the same network at its initialisation.
* **CNN vs FCN**: linear CKA between the layers of a trained CNN and a trained fully connected
  net, the two architectures of chapter 01.

Heatmaps use :class:`~untrainable.similarity.MinibatchCKA` over the test images (all 10,000 in the
``full`` profile); the sanity check computes every measure on ``n_probe`` test images.
Networks are trained through :func:`untrainable.results.run_or_load`, their weights cached under
:func:`untrainable.paths.cache_root` (never committed) so the analysis can reuse them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from untrainable import similarity as S
from untrainable.data import load_cifar10
from untrainable.experiments.inductive_bias import build_model
from untrainable.models import count_parameters
from untrainable.paths import cache_root
from untrainable.profiles import check_profile
from untrainable.recording import record_layers
from untrainable.results import record_path, run_key, run_or_load
from untrainable.runtime import seed_everything
from untrainable.train import FitSettings, fit

EXPERIMENT = "representations"
DEFAULT_SEEDS = {"quick": (0, 1), "full": (0, 1, 2), "paper": (0, 1, 2, 3, 4)}

#: Layers recorded in each architecture (module names) and their short labels for the figures.
LAYERS: dict[str, dict[str, str]] = {
    "cnn": {"features.1": "conv1", "features.2": "pool1", "features.4": "conv2", "features.5": "pool2",
            "features.7": "conv3", "features.8": "pool3", "classifier.1": "fc", "classifier.2": "logits"},
    "fcn": {"features.2": "fc1", "features.4": "fc2", "classifier": "logits"},
}
MEASURES = {
    "linear_cka": "linear CKA", "linear_cka_debiased": "linear CKA (debiased)", "rbf_cka": "RBF CKA (0.5)",
    "cca": "CCA (mean R²)", "svcca": "SVCCA (99% var.)", "procrustes": "Procrustes", "rsa": "RSA",
}
DISTANCES = ("procrustes",)  # smaller means more similar


@dataclass(frozen=True)
class NetConfig:
    """One network's training run (chapter 01's architectures, smaller budget)."""

    model: str  # "cnn" | "fcn"
    n_train: int | None
    n_test: int | None
    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    data_seed: int = 0


@dataclass(frozen=True)
class Config:
    """The analysis of one seed: its networks, and how many test images each measure sees."""

    cnn: NetConfig
    fcn: NetConfig
    partner_seed: int  # the second CNN of the sanity check
    n_probe: int  # test images for the sanity check (every measure, full batch)
    n_heatmap: int | None  # test images for the minibatch-CKA heatmaps (None: all 10,000)
    heatmap_batch: int = 500
    rbf_threshold: float = 0.5
    svcca_keep: float = 0.99


PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"n_train": 500, "n_test": 500, "epochs": 2, "n_probe": 300, "n_heatmap": 500, "heatmap_batch": 250},
    "full": {"n_train": 4000, "n_test": 2000, "epochs": 3, "n_probe": 600, "n_heatmap": None, "heatmap_batch": 500},
    "paper": {"n_train": None, "n_test": None, "epochs": 30, "n_probe": 5000, "n_heatmap": None, "heatmap_batch": 1000},
}
SMOKE = {"n_train": 128, "n_test": 128, "epochs": 1, "n_probe": 64, "n_heatmap": 128, "heatmap_batch": 64}


def config(profile: str, seed: int, partner_seed: int, smoke: bool = False) -> Config:
    """The analysis config of one seed."""
    p = dict(PRESETS[check_profile(profile)])
    if smoke:
        p.update(SMOKE)
    nets = {m: NetConfig(model=m, n_train=p["n_train"], n_test=p["n_test"], epochs=p["epochs"]) for m in ("cnn", "fcn")}
    return Config(cnn=nets["cnn"], fcn=nets["fcn"], partner_seed=partner_seed, n_probe=p["n_probe"],
                  n_heatmap=p["n_heatmap"], heatmap_batch=p["heatmap_batch"])


# ----------------------------------------------------------------------------- networks


def _weights_path(profile: str, net: NetConfig, seed: int) -> Path:
    key = run_key(EXPERIMENT, net, seed)
    return cache_root() / "weights" / profile / EXPERIMENT / f"{net.model}-seed{seed}-{key}.pt"


def _train_net(net: NetConfig, seed: int, device: torch.device, checkpoint: Path, weights: Path) -> dict[str, Any]:
    generator = seed_everything(seed)
    model = build_model(net.model)
    train = load_cifar10(train=True).subset(net.n_train, seed=net.data_seed)
    test = load_cifar10(train=False).subset(net.n_test, seed=net.data_seed)
    settings = FitSettings(epochs=net.epochs, batch_size=net.batch_size, lr=net.lr)
    history = fit(model, (train.normalized(), train.labels), (test.normalized(), test.labels), settings,
                  generator=generator, device=device, checkpoint=checkpoint, desc=f"{net.model} seed {seed}")
    weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), weights)
    last = history[-1]
    metrics = {k: last[k] for k in ("train_acc", "test_acc", "train_loss", "test_loss")}
    metrics["parameters"] = count_parameters(model)
    return {"metrics": metrics, "history": history}


def trained_net(profile: str, net: NetConfig, seed: int, device: str = "auto", force: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """The trained network of ``(net, seed)`` and its record; retrains when the weights are gone."""
    weights = _weights_path(profile, net, seed)

    def train_fn(cfg: NetConfig, s: int, dev: torch.device, checkpoint: Path) -> dict[str, Any]:
        return _train_net(cfg, s, dev, checkpoint, weights)

    stored = record_path(profile, EXPERIMENT, net.model, seed, run_key(EXPERIMENT, net, seed)).is_file()
    record = run_or_load(EXPERIMENT, profile, net.model, net, seed, train_fn, device=device,
                         force=force or (stored and not weights.is_file()))
    model = build_model(net.model)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval(), record


def untrained_net(net: NetConfig, seed: int) -> nn.Module:
    """The same network at its initialisation (the state training of ``seed`` starts from)."""
    seed_everything(seed)
    return build_model(net.model).eval()


# ----------------------------------------------------------------------------- measures


def _probe_images(n: int | None) -> torch.Tensor:
    return load_cifar10(train=False).subset(n, seed=123).normalized()


def measure_matrices(acts_a: dict[str, torch.Tensor], acts_b: dict[str, torch.Tensor],
                     rbf_threshold: float = 0.5, svcca_keep: float = 0.99) -> dict[str, list[list[float]]]:
    """Every measure for every layer pair: ``{measure: [[value for b] for a]}``.

    Rotation-invariant measures run on :func:`~untrainable.similarity.compress`-ed activations
    (same values, ``n`` columns at most); RSA compares each layer's RDM, computed once.
    """
    ca = {k: S.compress(v) for k, v in acts_a.items()}
    cb = {k: S.compress(v) for k, v in acts_b.items()}
    ra = {k: S.rdm(v) for k, v in acts_a.items()}
    rb = {k: S.rdm(v) for k, v in acts_b.items()}
    bases = {}  # orthonormal bases for CCA and SVCCA, one SVD per layer
    for side, acts in (("a", ca), ("b", cb)):
        for k, v in acts.items():
            bases[side, k, None] = S._left_basis(v, None, 1e-6)
            bases[side, k, svcca_keep] = S._left_basis(v, svcca_keep, 1e-6)

    def cca(a: str, b: str, keep: float | None) -> torch.Tensor:
        qa, qb = bases["a", a, keep], bases["b", b, keep]
        return (qb.T @ qa).pow(2).sum() / min(qa.shape[1], qb.shape[1])

    fns = {
        "linear_cka": lambda a, b: S.linear_cka(ca[a], cb[b]),
        "linear_cka_debiased": lambda a, b: S.linear_cka(ca[a], cb[b], debiased=True),
        "rbf_cka": lambda a, b: S.rbf_cka(ca[a], cb[b], threshold=rbf_threshold),
        "cca": lambda a, b: cca(a, b, None),  # = S.cca_similarity(ca[a], cb[b])
        "svcca": lambda a, b: cca(a, b, svcca_keep),  # = S.cca_similarity(..., keep=svcca_keep)
        "procrustes": lambda a, b: S.procrustes_distance(ca[a], cb[b]),
        "rsa": lambda a, b: S.compare_rdms(ra[a], rb[b]),
    }
    return {name: [[f(a, b).item() for b in acts_b] for a in acts_a] for name, f in fns.items()}


def sanity_accuracy(matrix: list[list[float]], distance: bool = False) -> float:
    """Fraction of layers of network A whose most similar layer of B is the corresponding one.

    Ties (CCA's all-ones rows) count as failures unless the corresponding layer is the only best.
    """
    m = torch.tensor(matrix)
    if distance:
        m = -m
    best = m.max(dim=1, keepdim=True).values
    hits = [bool(m[i, i] >= best[i, 0] - 1e-9) and int((m[i] >= best[i, 0] - 1e-9).sum()) == 1 for i in range(len(m))]
    return float(sum(hits) / len(hits))


def heatmap(model_a: nn.Module, layers_a: list[str], model_b: nn.Module, layers_b: list[str],
            images: torch.Tensor, batch: int, device: torch.device) -> list[list[float]]:
    """Minibatch linear CKA (Nguyen et al., 2021) of every layer pair over ``images``."""
    acc = S.MinibatchCKA()
    for start in range(0, len(images), batch):
        xb = images[start : start + batch]
        if len(xb) < 4:
            break
        a = record_layers(model_a, xb, layers_a, batch_size=batch, device=device)
        b = record_layers(model_b, xb, layers_b, batch_size=batch, device=device)
        acc.update(list(a.values()), list(b.values()))
    return acc.compute().tolist()


def analyze(cfg: Config, seed: int, device: torch.device, checkpoint: Path, *, profile: str, force: bool = False) -> dict[str, Any]:
    """Train (or load) the seed's networks and compute the sanity check and the three heatmaps."""
    dev = str(device)
    cnn, cnn_rec = trained_net(profile, cfg.cnn, seed, dev, force)
    partner, partner_rec = trained_net(profile, cfg.cnn, cfg.partner_seed, dev, force)
    fcn, fcn_rec = trained_net(profile, cfg.fcn, seed, dev, force)
    init = untrained_net(cfg.cnn, seed)
    for m in (cnn, partner, fcn, init):
        m.to(device)
    lc, lf = list(LAYERS["cnn"]), list(LAYERS["fcn"])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small LAPACK calls: one thread is many times faster on a busy CPU
    try:
        return _analyze(cfg, cnn, partner, fcn, init, cnn_rec, partner_rec, fcn_rec, device)
    finally:
        torch.set_num_threads(threads)


def _analyze(cfg: Config, cnn: nn.Module, partner: nn.Module, fcn: nn.Module, init: nn.Module,
             cnn_rec: dict, partner_rec: dict, fcn_rec: dict, device: torch.device) -> dict[str, Any]:
    lc, lf = list(LAYERS["cnn"]), list(LAYERS["fcn"])
    probe = _probe_images(cfg.n_probe)
    acts_a = record_layers(cnn, probe, lc, device=device, flatten=True)
    acts_b = record_layers(partner, probe, lc, device=device, flatten=True)
    sanity = measure_matrices(acts_a, acts_b, cfg.rbf_threshold, cfg.svcca_keep)
    accuracy = {name: sanity_accuracy(mat, name in DISTANCES) for name, mat in sanity.items()}

    images = _probe_images(cfg.n_heatmap)
    heatmaps = {
        "cnn_vs_cnn": heatmap(cnn, lc, partner, lc, images, cfg.heatmap_batch, device),
        "trained_vs_untrained": heatmap(cnn, lc, init, lc, images, cfg.heatmap_batch, device),
        "cnn_vs_fcn": heatmap(cnn, lc, fcn, lf, images, cfg.heatmap_batch, device),
    }
    return {
        "metrics": {
            "sanity": sanity, "sanity_accuracy": accuracy, "heatmaps": heatmaps,
            "layers": {arch: list(LAYERS[arch].values()) for arch in LAYERS},
            "test_acc": {"cnn": cnn_rec["metrics"]["test_acc"], "cnn_partner": partner_rec["metrics"]["test_acc"],
                         "fcn": fcn_rec["metrics"]["test_acc"]},
            "n_probe": len(probe), "n_heatmap": len(images),
        },
        "history": [],
    }


def run(profile: str = "quick", seeds: tuple[int, ...] | None = None, device: str = "auto",
        force: bool = False, smoke: bool = False) -> list[dict[str, Any]]:
    """One analysis record per seed (the CNN of seed ``s`` is paired with the next seed's CNN)."""
    seeds = DEFAULT_SEEDS[check_profile(profile)] if seeds is None else tuple(seeds)
    if len(seeds) < 2:
        raise ValueError("the sanity check pairs networks of different seeds: give at least two seeds")
    records = []
    for i, seed in enumerate(seeds):
        cfg = config(profile, seed, seeds[(i + 1) % len(seeds)], smoke)

        def analyze_fn(c: Config, s: int, dev: torch.device, ckpt: Path) -> dict[str, Any]:
            return analyze(c, s, dev, ckpt, profile=profile, force=force)

        records.append(run_or_load(EXPERIMENT, profile, "similarity", cfg, seed, analyze_fn, device=device, force=force))
    return records


def smoke_config(profile: str = "quick") -> Config:
    """A tiny config for tests."""
    return replace(config(profile, 0, 1, smoke=True))
