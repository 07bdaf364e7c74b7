"""Benchmark: our linear CKA against the authors' float32 formulation and two fixed formulations.

Four ways to compute the same number, timed on the same data:

* ``ours``: :func:`untrainable.similarity.linear_cka`, which centres the features and picks
  feature or Gram space by operation count;
* ``feature``: always ``d x d`` products (``‖Yᵀ X‖_F² / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F)``);
* ``gram``: always ``n x n`` Gram matrices of the centred features;
* ``authors``: the guidance paper's formulation, Gram matrices ``X Xᵀ`` formed in float32 and
  centred afterwards by an explicit ``H K H`` product (:func:`untrainable.similarity.authors_linear_cka`).

The error of each is measured against the same inputs in float64. The data are post-ReLU-like:
``relu(z + 1)``, whose common offset is what makes centring the Gram matrix cancel badly.

A second part times :class:`untrainable.similarity.MinibatchCKA` for every layer pair of two
ResNet-18s (:func:`untrainable.models.resnet18`) over the CIFAR-10 test set (10,000 images). The
accumulator's cost depends only on the activations' shapes, so it is timed on activations of
exactly ResNet-18's shapes; the forward passes, which any use of the accumulator also needs, are
timed separately on real batches.

Run ``python -m untrainable.benchmarks.cka --profile quick|full`` (the command line always
measures; the appendix notebook loads the stored record); the record lands in
``results/<profile>/cka_benchmark/cka_benchmark.json``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from untrainable import similarity as S
from untrainable.models import resnet18
from untrainable.paths import results_root
from untrainable.profiles import check_profile
from untrainable.recording import record_layers
from untrainable.results import check_training_allowed, config_dict, load_record, provenance, run_key, write_record
from untrainable.runtime import resolve_device, set_threads, synchronize
from untrainable.synthetic import post_relu_pair

__all__ = [
    "EXPERIMENT", "METHODS", "FUNCTIONS", "Config", "PRESETS", "RESNET_LAYERS", "peak_bytes",
    "bench_cell", "add_ratios", "bench_minibatch", "record_file", "run", "goals", "cells_frame", "main",
]

EXPERIMENT = "cka_benchmark"
METHODS = ("ours", "feature", "gram", "authors")


@dataclass(frozen=True)
class Config:
    """The grid and the repeat policy of one benchmark run."""

    ns: tuple[int, ...]
    ds: tuple[int, ...]
    min_repeats: int = 7  # each timing is the minimum over rounds ...
    min_seconds: float = 2.0  # ... and rounds continue until this much time is spent
    call_seconds: float = 0.2  # a fast method is called repeatedly within a round for about this long
    memory_budget_gb: float = 12.0  # a method whose estimated peak exceeds this is skipped
    resnet_images: int = 10_000
    resnet_batch: int = 256
    resnet_forward_batches: int = 2  # batches whose forward pass is timed, to extrapolate
    seed: int = 0
    threads: int = 1  # one thread: on a shared machine, multi-threaded timings of small products are noise
    error_offsets: tuple[float, ...] = (100.0,)  # extra common offsets at which only errors are measured
    error_offsets_max_nd: int = 2**26  # ... in cells with n * d at most this (float64 references are slow)


PRESETS: dict[str, Config] = {
    "quick": Config(ns=(64, 256), ds=(64, 512, 2048), min_repeats=5, min_seconds=0.2,
                    resnet_images=512, resnet_batch=128, resnet_forward_batches=1),
    "full": Config(ns=(64, 256, 1024, 4096), ds=(64, 512, 8192, 65536)),
}
PRESETS["paper"] = PRESETS["full"]


# ----------------------------------------------------------------------------- the four formulations

#: The four formulations timed: ours (the cheaper space), each space fixed, and the authors'.
FUNCTIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "ours": S.linear_cka,
    "feature": functools.partial(S.linear_cka, space="feature"),
    "gram": functools.partial(S.linear_cka, space="gram"),
    "authors": S.authors_linear_cka,
}


def peak_bytes(method: str, n: int, d: int, itemsize: int = 4) -> int:
    """A generous estimate of the extra memory a method needs beyond its two inputs."""
    centred = 2 * n * d * itemsize
    if method == "ours":
        method = "feature" if S.use_feature_space(n, d, d) else "gram"
    if method == "feature":
        return centred + 3 * d * d * itemsize + d * d * 8
    if method == "gram":
        return centred + 2 * n * n * itemsize + 3 * n * n * 8
    if method == "authors":
        return 7 * n * n * itemsize
    if method == "float64":
        return 2 * n * d * 8 + peak_bytes("ours", n, d, 8)
    raise ValueError(method)


def bench_cell(n: int, d: int, config: Config) -> dict[str, Any]:
    """Time the four formulations at one ``(n, d)`` and measure their error against float64.

    The methods take turns (the order rotating from round to round), so a change in the machine's
    load affects them alike; each time is the minimum over all calls. Rounds continue until
    ``min_repeats`` are done and ``min_seconds`` spent (one or two rounds for cells that take many
    seconds); within a round a fast method is called for about ``call_seconds``, so that it still
    gets many samples when a slow method in the same cell allows only two rounds.
    """
    budget = config.memory_budget_gb * 2**30
    x, y = post_relu_pair(n, d, config.seed)
    row: dict[str, Any] = {"n": n, "d": d, "space": "feature" if S.use_feature_space(n, d, d) else "gram"}
    ref = S.linear_cka(x.double(), y.double()).item() if peak_bytes("float64", n, d) <= budget else None
    row["cka_float64"] = ref
    methods = []
    for method in METHODS:
        if peak_bytes(method, n, d) > budget:
            row[f"{method}_s"] = row[f"{method}_err"] = None
            row[f"{method}_skipped"] = f"needs about {peak_bytes(method, n, d) / 2**30:.0f} GiB"
        else:
            methods.append(method)
    times: dict[str, list[float]] = {m: [] for m in methods}
    values: dict[str, float] = {}
    calls = dict.fromkeys(methods, 1)  # calls per round, set after the first round
    start, rounds = time.perf_counter(), 0
    while True:
        shift = rounds % len(methods)  # rotate who goes first: no method always runs on a cold cache
        for method in methods[shift:] + methods[:shift]:
            for _ in range(calls[method]):
                t0 = time.perf_counter()
                values[method] = FUNCTIONS[method](x, y).item()
                times[method].append(time.perf_counter() - t0)
        rounds += 1
        slowest = max(t[-1] for t in times.values())
        if rounds == 1:  # a fast method gets many calls per round, so a slow neighbour cannot starve it of samples
            calls = {m: max(1, min(10_000, int(config.call_seconds / max(times[m][0], 1e-7)))) for m in methods}
        if rounds >= config.min_repeats and time.perf_counter() - start >= config.min_seconds:
            break
        if slowest > 30 or (slowest > 5 and rounds >= 2):
            break
    for method in methods:
        row[f"{method}_s"] = min(times[method])
        row[f"{method}_err"] = abs(values[method] - ref) if ref is not None else None
    row["rounds"] = rounds
    row["calls"] = {m: len(t) for m, t in times.items()}
    for offset in config.error_offsets:  # same data plus a common offset, rounded to float32 again
        key = f"offset{offset:g}"
        if n * d > config.error_offsets_max_nd:
            row[f"ours_err_{key}"] = row[f"authors_err_{key}"] = None
            continue
        xo, yo = (x.double() + offset).float(), (y.double() + offset).float()
        ref_o = S.linear_cka(xo.double(), yo.double()).item()
        row[f"ours_err_{key}"] = abs(S.linear_cka(xo, yo).item() - ref_o)
        row[f"authors_err_{key}"] = abs(S.authors_linear_cka(xo, yo).item() - ref_o)
        del xo, yo
    del x, y
    gc.collect()
    return row


def add_ratios(row: dict[str, Any]) -> dict[str, Any]:
    """Ratios to the better and worse fixed formulation, the authors' and the goals they test."""
    f, g, ours = row.get("feature_s"), row.get("gram_s"), row["ours_s"]
    fixed = [t for t in (f, g) if t is not None]
    row["ours_vs_best_fixed"] = ours / min(fixed) if fixed else None
    row["worst_fixed_vs_ours"] = max(fixed) / ours if len(fixed) == 2 else None
    row["authors_vs_ours"] = row["authors_s"] / ours if row.get("authors_s") else None
    big_gap = max(row["n"], row["d"]) / min(row["n"], row["d"]) >= 16
    row["goal_not_slower"] = row["ours_vs_best_fixed"] is not None and row["ours_vs_best_fixed"] <= 1.10
    row["goal_3x_applies"] = big_gap
    row["goal_3x"] = (row["worst_fixed_vs_ours"] >= 3.0) if big_gap and row["worst_fixed_vs_ours"] else None
    pairs = [(row[k], row["ours" + k[len("authors"):]]) for k in row
             if k.startswith("authors_err") and row[k] is not None]
    bad = [(a, o) for a, o in pairs if a > 1e-3]
    row["goal_precision_applies"] = bool(bad)
    row["goal_precision"] = all(o < 1e-5 for _, o in bad) if bad else None
    return row


# ----------------------------------------------------------------------------- ResNet-18 and minibatch CKA

#: The 11 layers compared: the stem (its ReLU), the eight residual blocks, the pooled features, the logits.
RESNET_LAYERS = ["relu"] + [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)] + ["avgpool", "fc"]


def bench_minibatch(config: Config, device: torch.device) -> dict[str, Any]:
    """Time MinibatchCKA over all 11 x 11 layer pairs of two ResNet-18s on ``resnet_images`` images."""
    m, total = config.resnet_batch, config.resnet_images
    batches = math.ceil(total / m)
    nets = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        nets.append(resnet18().to(device).eval())
    g = torch.Generator().manual_seed(config.seed)
    images = torch.randn(m, 3, 32, 32, generator=g)
    # the forward passes: real, timed on a few batches, extrapolated to the whole set
    forward_times = []
    for _ in range(config.resnet_forward_batches):
        t0 = time.perf_counter()
        acts = [record_layers(net, images, RESNET_LAYERS, batch_size=m, device=device, out_device=device) for net in nets]
        forward_times.append(time.perf_counter() - t0)
    shapes = {name: list(a.shape[1:]) for name, a in acts[0].items()}
    # the accumulator: timed on every batch of the set, on activations of exactly these shapes
    acc = S.MinibatchCKA()
    acc_seconds = 0.0
    for b in range(batches):
        mb = min(m, total - b * m)
        xs = [torch.randn(mb, *s, generator=g).relu_().to(device) for s in shapes.values()]
        ys = [torch.randn(mb, *s, generator=g).relu_().to(device) for s in shapes.values()]
        synchronize(device)
        t0 = time.perf_counter()
        acc.update(xs, ys)
        synchronize(device)
        acc_seconds += time.perf_counter() - t0
        del xs, ys
    heat = acc.compute()
    forward_per_batch = min(forward_times)
    return {
        "layers": RESNET_LAYERS, "shapes": shapes, "features_per_image": sum(math.prod(s) for s in shapes.values()),
        "images": total, "batch_size": m, "batches": batches, "pairs": len(RESNET_LAYERS) ** 2,
        "accumulator_s": acc_seconds, "accumulator_ms_per_batch": 1000 * acc_seconds / batches,
        "forward_two_nets_s_per_batch": forward_per_batch,
        "forward_two_nets_s_estimated_total": forward_per_batch * batches,
        "heatmap_finite": bool(torch.isfinite(heat).all()),
    }


# ----------------------------------------------------------------------------- the run


def record_file(profile: str) -> Path:
    """Where the benchmark record of ``profile`` is stored."""
    return results_root() / profile / EXPERIMENT / "cka_benchmark.json"


def run(profile: str = "quick", device: str = "cpu", force: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run the benchmark of ``profile`` (or load its stored record) and return the record."""
    config = PRESETS[check_profile(profile)]
    path = record_file(profile)
    if path.is_file() and not force:
        return load_record(path)
    check_training_allowed(profile, f"the CKA benchmark ({path.name})", force)
    set_threads(config.threads)
    dev = resolve_device(device)
    t0 = time.perf_counter()
    rows = []
    for n in config.ns:
        for d in config.ds:
            tc = time.perf_counter()
            rows.append(add_ratios(bench_cell(n, d, config)))
            if progress:
                r = rows[-1]
                print(f"n={n:5d} d={d:6d}  ours {r['ours_s']:.4f}s  feature {r['feature_s'] or float('nan'):.4f}s  "
                      f"gram {r['gram_s'] or float('nan'):.4f}s  authors {r['authors_s'] or float('nan'):.4f}s  "
                      f"err ours {r['ours_err'] or 0:.1e} authors {r['authors_err'] or 0:.1e}  "
                      f"({time.perf_counter() - tc:.0f}s)", flush=True)
    minibatch = bench_minibatch(config, dev)
    if progress:
        print(f"minibatch CKA, 11 x 11 layer pairs, {minibatch['images']} images: "
              f"{minibatch['accumulator_s']:.1f}s accumulator", flush=True)
    record = {
        "experiment": EXPERIMENT, "profile": profile, "seed": config.seed, "name": "cka_benchmark",
        "key": run_key(EXPERIMENT, config, config.seed), "config": config_dict(config),
        "metrics": {"cells": rows, "minibatch": minibatch, "goals": goals(rows)},
        "history": [], "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        **provenance(dev, t0),
    }
    write_record(record, path)
    return record


def goals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether each of the issue's three goals held, over the cells where it applies."""
    def summary(key: str, applies: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        cells = [r for r in rows if applies(r) and r.get(key) is not None]
        return {"cells": len(cells), "met": sum(bool(r[key]) for r in cells),
                "failed_at": [(r["n"], r["d"]) for r in cells if not r[key]]}

    return {
        "not_more_than_10pct_slower_than_best_fixed": summary("goal_not_slower", lambda r: r["ours_vs_best_fixed"] is not None),
        "at_least_3x_faster_than_worse_fixed_when_16x_apart": summary("goal_3x", lambda r: r["goal_3x_applies"]),
        "within_1e-5_where_authors_off_by_1e-3": summary("goal_precision", lambda r: r["goal_precision_applies"]),
        "skipped": [(r["n"], r["d"], m, r[f"{m}_skipped"]) for r in rows for m in METHODS if r.get(f"{m}_skipped")],
    }


def cells_frame(record: dict[str, Any]) -> pd.DataFrame:
    """One row per (n, d): times, ratios and errors."""
    return pd.DataFrame(record["metrics"]["cells"])


def main(argv: list[str] | None = None) -> None:
    """``python -m untrainable.benchmarks.cka``: measure (always) and store the record of a profile."""
    parser = argparse.ArgumentParser(prog="python -m untrainable.benchmarks.cka", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("quick", "full"), default="quick")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    args = parser.parse_args(argv)
    record = run(args.profile, device=args.device, force=True)
    print(cells_frame(record)[["n", "d", "space", "ours_s", "feature_s", "gram_s", "authors_s",
                               "ours_vs_best_fixed", "worst_fixed_vs_ours", "authors_vs_ours",
                               "ours_err", "authors_err"]].to_string(index=False))
    print(record["metrics"]["goals"])
    print(f"written: {record_file(args.profile)}")


if __name__ == "__main__":
    main()
