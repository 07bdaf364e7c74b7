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
Each network has its own record; its weights are cached under :func:`untrainable.paths.cache_root`
(never committed) and resolved through :func:`untrainable.results.run_with_weights` before an
analysis that needs them runs, and only then: a stored analysis record needs no network.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from untrainable import similarity as S
from untrainable.config_checks import check_fields
from untrainable.data import load_cifar10
from untrainable.experiments import PlannedRun, checked_seeds
from untrainable.experiments.inductive_bias import build_model
from untrainable.files import load_torch, save_torch_atomic
from untrainable.models import count_parameters
from untrainable.paths import cache_root
from untrainable.precision import PRECISIONS
from untrainable.profiles import check_profile, default_seeds, preset_table, replace_preset
from untrainable.recording import record_layers
from untrainable.results import added_field, run_key, run_or_load, run_with_weights, will_train
from untrainable.runtime import log, seed_everything
from untrainable.train import FitSettings, fit

__all__ = ["EXPERIMENT", "ANALYSIS", "LAYERS", "MEASURES", "DISTANCE_MEASURES", "REQUIRED_METRICS", "NET_METRICS",
           "ComparedNetConfig", "Config", "Preset", "CHAPTER", "PRESETS", "SMOKE", "preset", "configs", "planned_runs",
           "weights_path", "train_net", "resolve_net", "untrained_net", "Networks", "measure_matrices",
           "sanity_accuracy", "heatmap", "analyze", "run"]

EXPERIMENT = "representations"
ANALYSIS = "similarity"  # the record name of a seed's analysis; the networks' records are named by model

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
#: The measures of :data:`MEASURES` that are distances: smaller means more similar.
DISTANCE_MEASURES = ("procrustes",)
#: What the chapter reads from an analysis record and from a network's record.
REQUIRED_METRICS = ("sanity", "sanity_accuracy", "heatmaps", "test_acc")
NET_METRICS = ("train_acc", "test_acc")


@dataclass(frozen=True)
class ComparedNetConfig:
    """The training run of one network whose layers are compared (chapter 01's architectures, smaller
    budget); every field is part of the record key."""

    model: str  # "cnn" | "fcn"
    n_train: int | None
    n_test: int | None
    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    data_seed: int = 0
    precision: str = added_field("fp32")  # "fp32" | "bf16" | "auto" (untrainable.precision); fp32 keeps old keys

    def __post_init__(self) -> None:
        check_fields(self, positive=("n_train", "n_test", "epochs", "batch_size", "lr"), non_negative=("data_seed",),
                     choices={"model": LAYERS, "precision": PRECISIONS})


@dataclass(frozen=True)
class Config:
    """The analysis of one seed: its networks, and how many test images each measure sees.

    Every field is part of the record key.
    """

    cnn: ComparedNetConfig
    fcn: ComparedNetConfig
    partner_seed: int  # the second CNN of the sanity check
    n_probe: int  # test images for the sanity check (every measure, full batch)
    n_heatmap: int | None  # test images for the minibatch-CKA heatmaps (None: all 10,000)
    heatmap_batch: int = 500
    rbf_threshold: float = 0.5
    svcca_keep: float = 0.99

    def __post_init__(self) -> None:
        check_fields(self, positive=("n_probe", "n_heatmap", "heatmap_batch", "rbf_threshold"),
                     non_negative=("partner_seed",), fractions=("svcca_keep",))


@dataclass(frozen=True)
class Preset:
    """The sizes of one profile: the compared networks' training and the analysis's test images.

    A field left None keeps the config's default.
    """

    n_train: int | None  # each network's training images (None: all 50,000)
    n_test: int | None  # each network's test images (None: all 10,000)
    epochs: int
    n_probe: int
    n_heatmap: int | None  # None: all 10,000 test images
    heatmap_batch: int | None = None
    precision: str | None = None  # the networks'


CHAPTER = "chapter 02 (measuring representations)"
PRESETS: dict[str, Preset] = preset_table(CHAPTER, {
    "quick": Preset(n_train=500, n_test=500, epochs=2, n_probe=300, n_heatmap=500, heatmap_batch=250,
                    precision="auto"),
    "full": Preset(n_train=4000, n_test=2000, epochs=3, n_probe=600, n_heatmap=None),
    "paper": Preset(n_train=None, n_test=None, epochs=30, n_probe=5000, n_heatmap=None, heatmap_batch=1000,
                    precision="auto"),
})
#: Overrides (checked by :func:`~untrainable.profiles.replace_preset`) that shrink any profile for tests.
SMOKE: dict[str, Any] = {"n_train": 128, "n_test": 128, "epochs": 1, "n_probe": 64, "n_heatmap": 128,
                         "heatmap_batch": 64}


def preset(profile: str, smoke: bool = False) -> Preset:
    """The profile's sizes; ``smoke`` shrinks them to a tiny slice (for tests)."""
    p = PRESETS[check_profile(profile)]
    return replace_preset(CHAPTER, p, **SMOKE) if smoke else p


def _net(p: Preset, model: str) -> ComparedNetConfig:
    """The training run of the ``model`` whose layers the profile compares."""
    net = ComparedNetConfig(model=model, n_train=p.n_train, n_test=p.n_test, epochs=p.epochs)
    return net if p.precision is None else replace(net, precision=p.precision)


def configs(profile: str, seeds: tuple[int, ...] | None = None, smoke: bool = False) -> list[Config]:
    """One analysis config per seed, in the order of ``seeds``: the CNN of each seed is paired with
    the next seed's CNN (the last with the first); ``smoke`` shrinks everything for tests."""
    p = preset(profile, smoke)
    seeds = checked_seeds(seeds, default_seeds(profile))
    if len(seeds) < 2:
        raise ValueError("the sanity check pairs networks of different seeds: give at least two seeds")
    analyses = [Config(cnn=_net(p, "cnn"), fcn=_net(p, "fcn"), partner_seed=seeds[(i + 1) % len(seeds)],
                       n_probe=p.n_probe, n_heatmap=p.n_heatmap) for i in range(len(seeds))]
    return analyses if p.heatmap_batch is None else [replace(c, heatmap_batch=p.heatmap_batch) for c in analyses]


def _nets_of(cfg: Config, seed: int) -> list[PlannedRun]:
    """The network records one analysis needs: its CNN, the partner CNN and its FCN."""
    return [PlannedRun(EXPERIMENT, cfg.cnn.model, cfg.cnn, seed, NET_METRICS),
            PlannedRun(EXPERIMENT, cfg.cnn.model, cfg.cnn, cfg.partner_seed, NET_METRICS),
            PlannedRun(EXPERIMENT, cfg.fcn.model, cfg.fcn, seed, NET_METRICS)]


def planned_runs(profile: str, seeds: tuple[int, ...] | None = None) -> list[PlannedRun]:
    """Every record of the chapter: each seed's analysis and the networks it compares."""
    seeds = checked_seeds(seeds, default_seeds(profile))
    runs: dict[PlannedRun, None] = {}
    for seed, cfg in zip(seeds, configs(profile, seeds)):
        analysis = PlannedRun(EXPERIMENT, ANALYSIS, cfg, seed, REQUIRED_METRICS)
        runs.update(dict.fromkeys([analysis, *_nets_of(cfg, seed)]))
    return list(runs)


# ----------------------------------------------------------------------------- networks


def weights_path(net: ComparedNetConfig, seed: int) -> Path:
    """Where the trained weights of ``(net, seed)`` are cached: named by the run's key, so by its config."""
    return cache_root() / "weights" / EXPERIMENT / f"{net.model}-seed{seed}-{run_key(EXPERIMENT, net, seed)}.pt"


def train_net(net: ComparedNetConfig, seed: int, device: torch.device, checkpoint: Path) -> dict[str, Any]:
    """Train one network, cache its weights (atomically) and return its metrics and history."""
    generator = seed_everything(seed)
    model = build_model(net.model)
    train = load_cifar10(train=True).subset(net.n_train, seed=net.data_seed)
    test = load_cifar10(train=False).subset(net.n_test, seed=net.data_seed)
    settings = FitSettings(epochs=net.epochs, batch_size=net.batch_size, lr=net.lr, precision=net.precision)
    history = fit(model, train.tensors(), test.tensors(), settings,
                  generator=generator, device=device, checkpoint=checkpoint, desc=f"{net.model} seed {seed}")
    save_torch_atomic(model.state_dict(), weights_path(net, seed))
    last = history[-1]
    metrics = {k: last[k] for k in ("train_acc", "test_acc", "train_loss", "test_loss")}
    metrics["parameters"] = count_parameters(model)
    return {"metrics": metrics, "history": history}


def resolve_net(profile: str, net: ComparedNetConfig, seed: int, device: str = "auto",
                force: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """The trained network of ``(net, seed)`` and its record.

    Weights missing from the cache are retrained into it; the stored record stays as it is.
    """
    weights = weights_path(net, seed)
    record = run_with_weights(EXPERIMENT, profile, net.model, net, seed, weights, train_net, device=device,
                              force=force, required_metrics=NET_METRICS)
    model = build_model(net.model)
    model.load_state_dict(load_torch(weights))
    return model.eval(), record


def untrained_net(net: ComparedNetConfig, seed: int) -> nn.Module:
    """The same network at its initialisation (the state training of ``seed`` starts from)."""
    seed_everything(seed)
    return build_model(net.model).eval()


@dataclass(frozen=True)
class Networks:
    """The trained networks one analysis compares, with their test accuracies (from their records)."""

    cnn: nn.Module
    partner: nn.Module
    fcn: nn.Module
    test_acc: dict[str, float]


def _resolve_networks(profile: str, cfg: Config, seed: int, device: str, force: bool,
                      resolved: dict[PlannedRun, tuple[nn.Module, dict[str, Any]]]) -> Networks:
    """The networks of one analysis; ``resolved`` keeps those of earlier seeds (a CNN is also a partner),
    so that ``force`` retrains each network once."""
    for r in _nets_of(cfg, seed):
        if r not in resolved:
            resolved[r] = resolve_net(profile, r.config, r.seed, device, force)
    (cnn, cnn_rec), (partner, partner_rec), (fcn, fcn_rec) = (resolved[r] for r in _nets_of(cfg, seed))
    return Networks(cnn, partner, fcn, {"cnn": cnn_rec["metrics"]["test_acc"],
                                        "cnn_partner": partner_rec["metrics"]["test_acc"],
                                        "fcn": fcn_rec["metrics"]["test_acc"]})


# ----------------------------------------------------------------------------- measures


def _probe_images(n: int | None) -> torch.Tensor:
    return load_cifar10(train=False).subset(n, seed=123).normalized()


def measure_matrices(acts_a: dict[str, torch.Tensor], acts_b: dict[str, torch.Tensor],
                     rbf_threshold: float = 0.5, svcca_keep: float = 0.99) -> dict[str, list[list[float]]]:
    """Every measure for every layer pair: ``{measure: [[value for b] for a]}``.

    Rotation-invariant measures run on :func:`~untrainable.similarity.compress`-ed activations
    (same values, ``n`` columns at most); RSA compares each layer's RDM, computed once.
    CCA is the mean squared canonical correlation, SVCCA the same after keeping the top
    ``svcca_keep`` of each layer's variance.
    """
    ca = {k: S.compress(v) for k, v in acts_a.items()}
    cb = {k: S.compress(v) for k, v in acts_b.items()}
    ra = {k: S.rdm(v) for k, v in acts_a.items()}
    rb = {k: S.rdm(v) for k, v in acts_b.items()}
    fns = {
        "linear_cka": lambda a, b: S.linear_cka(ca[a], cb[b]),
        "linear_cka_debiased": lambda a, b: S.linear_cka(ca[a], cb[b], debiased=True),
        "rbf_cka": lambda a, b: S.rbf_cka(ca[a], cb[b], threshold=rbf_threshold),
        "cca": lambda a, b: S.cca_similarity(ca[a], cb[b]),
        "svcca": lambda a, b: S.cca_similarity(ca[a], cb[b], keep=svcca_keep),
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


def analyze(cfg: Config, seed: int, device: torch.device, checkpoint: Path, networks: Networks) -> dict[str, Any]:
    """The sanity check and the three heatmaps of one seed, from its resolved ``networks``."""
    init = untrained_net(cfg.cnn, seed)
    for m in (networks.cnn, networks.partner, networks.fcn, init):
        m.to(device)
    lc, lf = list(LAYERS["cnn"]), list(LAYERS["fcn"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small LAPACK calls: one thread is many times faster on a busy CPU
    try:
        probe = _probe_images(cfg.n_probe)
        acts_a = record_layers(networks.cnn, probe, lc, device=device, flatten=True)
        acts_b = record_layers(networks.partner, probe, lc, device=device, flatten=True)
        sanity = measure_matrices(acts_a, acts_b, cfg.rbf_threshold, cfg.svcca_keep)
        images = _probe_images(cfg.n_heatmap)
        heatmaps = {
            "cnn_vs_cnn": heatmap(networks.cnn, lc, networks.partner, lc, images, cfg.heatmap_batch, device),
            "trained_vs_untrained": heatmap(networks.cnn, lc, init, lc, images, cfg.heatmap_batch, device),
            "cnn_vs_fcn": heatmap(networks.cnn, lc, networks.fcn, lf, images, cfg.heatmap_batch, device),
        }
    finally:
        torch.set_num_threads(threads)
    return {
        "metrics": {
            "sanity": sanity,
            "sanity_accuracy": {name: sanity_accuracy(mat, name in DISTANCE_MEASURES) for name, mat in sanity.items()},
            "heatmaps": heatmaps, "layers": {arch: list(LAYERS[arch].values()) for arch in LAYERS},
            "test_acc": networks.test_acc, "n_probe": len(probe), "n_heatmap": len(images),
        },
        "history": [],
    }


def run(profile: str = "quick", seeds: tuple[int, ...] | None = None, device: str = "auto",
        force: bool = False, smoke: bool = False) -> list[dict[str, Any]]:
    """One analysis record per seed; the networks are resolved only for an analysis that must be computed."""
    seeds = checked_seeds(seeds, default_seeds(profile))
    records, resolved = [], {}
    for seed, cfg in zip(seeds, configs(profile, seeds, smoke)):
        log(f"{EXPERIMENT}/{ANALYSIS} seed {seed} ({profile})")
        networks = (_resolve_networks(profile, cfg, seed, device, force, resolved)
                    if will_train(EXPERIMENT, profile, ANALYSIS, cfg, seed, force) else None)
        records.append(run_or_load(EXPERIMENT, profile, ANALYSIS, cfg, seed, partial(analyze, networks=networks),
                                   device=device, force=force, required_metrics=REQUIRED_METRICS))
    return records
