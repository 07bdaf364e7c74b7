"""Benchmark: what one guided training step costs, against the unguided step plus a guide forward.

For the ``full`` profile's models and batch size (the Deep FCN with its ResNet-18 guide, and the
plain ConvNet with the same guide), each variant below is one optimiser step on one batch:

* ``target``: the unguided step (forward, cross-entropy, backward, Adam);
* ``guide_forward``: the guide's forward pass under ``no_grad`` in eval mode;
* ``naive``: guidance as the authors' code does it: a second target forward to record its layers,
  the guide run with autograd on, and Gram matrices formed in float32 and centred by ``H K H``
  (:func:`untrainable.similarity.authors_linear_cka`);
* ``online``: :class:`untrainable.guidance.GuidanceLoss` (one target forward, the guide under
  ``no_grad``, CKA from centred features);
* ``bank_features``: the guide's per-example features precomputed once over the training set and
  indexed per batch (:class:`untrainable.guidance.GuideBank`, ``mode="features"``);
* ``bank_gram``: the guide's Gram matrices over the training set precomputed once; a batch's is
  a sub-matrix (``mode="gram"``), so the guide costs nothing per step.

The ratio the book reports is ``step / (target + guide_forward)``; the goal is at most 1.25. The same
ratio in floating-point operations (PyTorch's FLOP counter: matrix products and convolutions) says
how much of it the arithmetic itself demands, whatever the implementation.
Every variant runs once per round, in turn, so that a change in the machine's load hits every
variant alike; the reported time is the fastest round (the one least disturbed by other work on a
shared machine), and the median is stored too.

Run ``python -m untrainable.benchmarks.guidance_step --profile full`` (the command line always
measures; chapters 04 and 05 load the stored record from
``results/<profile>/guidance_benchmark/guidance_benchmark.json``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from untrainable import guidance as G
from untrainable.data import load_image_data
from untrainable.experiments import fcn_guidance, plain_cnn_guidance
from untrainable.models import build_guide, build_target
from untrainable.paths import results_root
from untrainable.profiles import PROFILES, check_profile
from untrainable.recording import LayerRecorder
from untrainable.results import check_training_allowed, load_record, provenance, write_record
from untrainable.runtime import resolve_device, set_threads, timed
from untrainable.similarity import authors_linear_cka

__all__ = ["EXPERIMENT", "VARIANTS", "ROUNDS", "record_file", "measure", "count_flops", "run", "table", "main"]

EXPERIMENT = "guidance_benchmark"
VARIANTS = ("target", "guide_forward", "naive", "online", "bank_features", "bank_gram")
ROUNDS = {"quick": 3, "full": 9, "paper": 9}


def record_file(profile: str, parts: tuple[str, ...] = ("fcn", "plain")) -> Path:
    """Where the record of ``profile`` is stored (one file per set of measured parts)."""
    suffix = "" if set(parts) == {"fcn", "plain"} else "-" + "-".join(parts)
    return results_root() / profile / EXPERIMENT / f"{EXPERIMENT}{suffix}.json"


def _steps(target: nn.Module, guide: nn.Module, x_train: torch.Tensor,
           y_train: torch.Tensor) -> dict[str, Callable[[torch.Tensor], None]]:
    """One optimiser step per variant, each a function of a batch's indices."""
    example = x_train[:2]
    opt = torch.optim.Adam(target.parameters(), lr=1e-4)
    online = G.GuidanceLoss(target, guide, example)
    layers = G.guidance_layers(guide, example)
    banks = {mode: G.GuideBank(guide, layers, x_train, mode=mode, memory_gb=2.0) for mode in ("features", "gram")}
    banked = {mode: G.GuidanceLoss(target, guide, example, bank=b) for mode, b in banks.items()}
    indexed = G.IndexedInputs(x_train)
    pairs = online.pairs

    def optimise(loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def target_step(idx: torch.Tensor) -> None:
        target.train()
        optimise(F.cross_entropy(target(x_train[idx]), y_train[idx]))

    def guide_forward(idx: torch.Tensor) -> None:
        guide.eval()
        with torch.no_grad():
            guide(x_train[idx])

    def naive(idx: torch.Tensor) -> None:
        target.train()
        x, y = x_train[idx], y_train[idx]
        task = F.cross_entropy(target(x), y)
        with LayerRecorder(target, list(dict.fromkeys(t for _, t in pairs))) as rec_t:
            target(x)  # a second forward pass, only to record
        with torch.enable_grad(), LayerRecorder(guide, list(dict.fromkeys(g for g, _ in pairs))) as rec_g:
            guide(x)  # autograd on: the graph is built and thrown away
        terms = [1 - authors_linear_cka(rec_t.outputs[t], rec_g.outputs[g]) for g, t in pairs]
        optimise(task + torch.stack(terms).sum())

    def with_loss(loss_fn: G.GuidanceLoss, use_index: bool) -> Callable[[torch.Tensor], None]:
        def step(idx: torch.Tensor) -> None:
            target.train()
            loss_fn.step = 0
            x = indexed[idx] if use_index else x_train[idx]
            optimise(loss_fn(target, x, y_train[idx])[0])

        return step

    return {"target": target_step, "guide_forward": guide_forward, "naive": naive,
            "online": with_loss(online, False), "bank_features": with_loss(banked["features"], True),
            "bank_gram": with_loss(banked["gram"], True)}


def measure(target: nn.Module, guide: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor, batch_size: int,
            rounds: int, variants: tuple[str, ...] = VARIANTS) -> dict[str, Any]:
    """Median seconds per step of each variant, interleaved over ``rounds`` rounds (after one warm-up)."""
    t0 = time.perf_counter()
    steps = _steps(target, guide, x_train, y_train)
    setup_s = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(rounds + 1):
        idx = torch.randperm(len(x_train), generator=gen)[:batch_size].to(x_train.device)
        for v in variants:
            seconds = timed(lambda: steps[v](idx), x_train.device)
            if r > 0:
                times[v].append(seconds)
    best = {v: min(ts) for v, ts in times.items()}
    med = {v: statistics.median(ts) for v, ts in times.items()}
    base, base_med = best["target"] + best["guide_forward"], med["target"] + med["guide_forward"]
    others = [v for v in variants if v not in ("target", "guide_forward")]
    idx = torch.randperm(len(x_train), generator=gen)[:batch_size].to(x_train.device)
    flops = {v: count_flops(lambda: steps[v](idx)) for v in variants}
    base_flops = flops["target"] + flops["guide_forward"]
    return {"min_s": best, "median_s": med, "all_s": times, "bank_setup_s": setup_s,
            "ratio": {v: best[v] / base for v in others},
            "ratio_median": {v: med[v] / base_med for v in others},
            "flops": flops, "ratio_flops": {v: flops[v] / base_flops for v in others}}


def count_flops(step: Callable[[], None]) -> int:
    """Floating-point operations of one call, as PyTorch's FLOP counter sees them (matrix products
    and convolutions, forward and backward): the arithmetic any implementation of the step must do."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def run(profile: str = "full", device: str = "cpu", force: bool = False, rounds: int | None = None,
        parts: tuple[str, ...] = ("fcn", "plain"), dataset: str | None = None) -> dict[str, Any]:
    """Benchmark the profile's guided chapters (Deep FCN and plain ConvNet targets); store one record.

    ``dataset`` replaces the chapters' (e.g. ``"imagefolder:<root>"`` where CIFAR-10 is not on the
    machine): a step's cost depends on the images' shape, not on what they show.
    """
    check_profile(profile)
    path = record_file(profile, parts)
    if path.is_file() and not force:
        return load_record(path)
    check_training_allowed(profile, f"the guided-step benchmark ({path.name})", force)
    set_threads()
    dev = resolve_device(device)
    rounds = rounds or ROUNDS[profile]
    cases = []
    t_start = time.perf_counter()
    for part, target_name in (("fcn", "deep_fcn"), ("plain", "plain_cnn")):
        if part not in parts:
            continue
        chapter = fcn_guidance if part == "fcn" else plain_cnn_guidance
        c = next(c for c in chapter.configs(profile) if c.target == target_name and c.condition == "trained_guide")
        # per-step costs do not depend on the training-set size; 1,024 images keep the banks small
        (x_train, y_train), _ = load_image_data(dataset or c.dataset, min(c.n_train or 1024, 1024), 10, c.data_seed,
                                                c.image_size)
        x_train, y_train = x_train.to(dev), y_train.to(dev)
        torch.manual_seed(0)
        target, guide = build_target(c).to(dev), G.freeze(build_guide(c.guide)).to(dev)  # timing needs no trained weights
        out = measure(target, guide, x_train, y_train, c.batch_size, rounds)
        cases.append({"part": part, "target": target_name, "guide": c.guide.family, "guide_width": c.guide.width,
                      "batch_size": c.batch_size, "n_train": len(y_train),
                      "pairs": len(G.GuidanceLoss(target, guide, x_train[:2]).pairs), **out})
    config = {"rounds": rounds, **({"dataset": dataset} if dataset else {})}
    record = {"experiment": EXPERIMENT, "profile": profile, "seed": 0, "config": config,
              "metrics": {f"{c['target']}_{v}_ratio": r for c in cases for v, r in c["ratio"].items()},
              "history": [], "cases": cases, **provenance(dev, t_start)}
    write_record(record, path)
    return record


def table(record: dict[str, Any]) -> pd.DataFrame:
    """Milliseconds per step (fastest and median round) and the ratio to (target step + guide forward)."""
    rows = []
    for c in record["cases"]:
        for v in [v for v in VARIANTS if v in c["min_s"]]:
            s = c["min_s"][v]
            guided = v not in ("target", "guide_forward")
            rows.append({"target": c["target"], "variant": v, "ms per step": 1000 * s,
                         "ms per step (median)": 1000 * c["median_s"][v],
                         "ratio to target + guide forward": c["ratio"][v] if guided else None,
                         "ratio (medians)": c["ratio_median"][v] if guided else None,
                         "GFLOP per step": c["flops"][v] / 1e9,
                         "ratio (FLOPs)": c["ratio_flops"][v] if guided else None})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    """``python -m untrainable.benchmarks.guidance_step``: measure (always) and store a profile's record."""
    parser = argparse.ArgumentParser(prog="python -m untrainable.benchmarks.guidance_step", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=PROFILES, default="quick")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default: 3 quick, 9 full and paper)")
    parser.add_argument("--dataset", default=None,
                        help="replace the chapters' images (e.g. imagefolder:<root>); timings depend on their shape only")
    args = parser.parse_args(argv)
    record = run(args.profile, device=args.device, force=True, rounds=args.rounds, dataset=args.dataset)
    print(table(record).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"written: {record_file(args.profile)}")


if __name__ == "__main__":
    main()
