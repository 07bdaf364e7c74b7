"""Benchmark: one training step of every ``full`` model in fp32 and in bf16, side by side.

Every figure of the book is trained on a CPU; :mod:`untrainable.precision` lets the training loop
run under bf16 autocast (with channels_last memory for conv nets) where the CPU multiplies bf16
natively. This benchmark measures what that buys for each model a ``full`` chapter trains,
built from the chapter's own config (:mod:`.precision_models`): forward, loss, backward and optimiser step at the chapter's
batch size and with its optimiser, once in fp32 and once in bf16 (+ channels_last for conv nets).

* The two precisions take turns step by step (the order alternating), so a change in the machine's
  load hits both alike; after two warm-up steps each, the fastest of ``rounds`` steps is the time
  (the median is stored too). One thread: on a shared machine multi-threaded timings are noise.
* The guided step (with the guide's Gram bank) of chapter 04's Deep FCN and chapter 05's plain
  ConvNet is measured the same way.
* Goals: at least 2.5x for conv nets and 1.5x for fully connected nets. For a model that misses,
  the record holds profiler evidence: the ops with the most self CPU time in a bf16 step and the
  dtypes of their inputs (which ops stay fp32).
* ``torch.compile`` is timed for one FCN and one ConvNet step (compile time, steady-state step),
  with what it would save over a whole ``full`` run of the chapter, compile time included.

The measurement forces bf16 autocast even on a CPU without native bf16 products (there it is slow:
that is what ``precision="auto"`` avoids). Accuracy parity is :mod:`.precision_parity`.

Run ``python -m untrainable.benchmarks.precision --profile full`` (the command line always
measures; ``--parity`` runs the parity study instead); the appendix page loads the stored record
from ``results/<profile>/precision_benchmark/precision_benchmark.json``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from untrainable.benchmarks.precision_models import Case, Workload, full_run_steps, guided_cases, kind_of, model_cases
from untrainable.paths import results_root
from untrainable.precision import bf16_native
from untrainable.profiles import PROFILES, check_profile
from untrainable.results import (check_training_allowed, config_dict, git_commit, load_record, provenance, run_key,
                                write_record)
from untrainable.runtime import machine_description, parse_device, resolve_device, set_threads, timed
from untrainable.train import make_optimizer, to_device

__all__ = ["EXPERIMENT", "ROUNDS", "GOALS", "measure_case", "profile_step", "compile_finding", "Config", "record_file",
           "run", "table", "misses", "evidence", "compile_table", "figure", "summary", "compile_summary", "main"]

EXPERIMENT = "precision_benchmark"
ROUNDS = {"quick": 2, "full": 7, "paper": 7}
#: The smallest fp32 / bf16 step-time ratio each kind of network should reach (sequence nets: none set).
GOALS = {"conv": 2.5, "fcn": 1.5}
WARMUP = 2
TOP_OPS = 8


# ----------------------------------------------------------------------------- measuring


def _prepared(w: Workload, bf16: bool, device: torch.device) -> Callable[[], None]:
    """One training step of a private copy of ``w.model`` in fp32, or in bf16 as ``fit`` runs it
    (channels_last for conv nets, the fused optimiser update)."""
    model = copy.deepcopy(w.model).to(device)
    if bf16 and kind_of(model) == "conv":
        model = model.to(memory_format=torch.channels_last)
    loss_fn = w.loss_for(model)
    opt = make_optimizer(model.parameters(), dataclasses.replace(w.settings, precision="bf16" if bf16 else "fp32"))
    x, y = to_device(w.x, device, model), w.y.to(device)

    def step() -> None:
        model.train()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = loss_fn(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if w.settings.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), w.settings.clip_grad_norm)
        opt.step()

    return step


def measure_case(case: Case, rounds: int, device: torch.device) -> dict[str, Any]:
    """Seconds per step in fp32 and bf16, interleaved over ``rounds`` rounds after warm-up; the ratio."""
    w = case.make()
    steps = {"fp32": _prepared(w, False, device), "bf16": _prepared(w, True, device)}
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for r in range(WARMUP + rounds):
        for p in (("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")):
            seconds = timed(steps[p], device)
            if r >= WARMUP:
                times[p].append(seconds)
    best = {p: min(t) for p, t in times.items()}
    med = {p: statistics.median(t) for p, t in times.items()}
    goal = GOALS.get(case.kind)
    ratio = best["fp32"] / best["bf16"]
    out = {"chapter": case.chapter, "model": case.name, "kind": case.kind, "guided": case.guided,
           "batch_size": w.settings.batch_size, "optimizer": w.settings.optimizer,
           "parameters": sum(p.numel() for p in w.model.parameters()), "min_s": best, "median_s": med,
           "all_s": times, "ratio": ratio, "ratio_median": med["fp32"] / med["bf16"], "goal": goal,
           "goal_met": None if goal is None else ratio >= goal}
    if goal is not None and ratio < goal:
        out["profile"] = profile_step(steps["bf16"])
    return out


def profile_step(step: Callable[[], None], top: int = TOP_OPS) -> list[dict[str, Any]]:
    """The ops with the most self CPU time over two steps, with the dtypes of their inputs."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
        step()
    ops: dict[str, dict[str, Any]] = {}
    for e in prof.events():
        op = ops.setdefault(e.name, {"op": e.name, "self_ms": 0.0, "calls": 0, "dtypes": set()})
        op["self_ms"] += e.self_cpu_time_total / 1000 / 2
        op["calls"] += 1
        op["dtypes"].update(d for d in (e.input_dtypes or []) if d)
    total = sum(o["self_ms"] for o in ops.values()) or 1.0
    ranked = sorted(ops.values(), key=lambda o: -o["self_ms"])[:top]
    return [{**o, "calls": o["calls"] // 2, "share": o["self_ms"] / total, "dtypes": sorted(o["dtypes"])}
            for o in ranked]


def compile_finding(case: Case, device: torch.device, rounds: int, profile: str) -> dict[str, Any]:
    """``torch.compile`` of one bf16 training step: compile time, steady-state step, and whether it pays
    over every run of the model in the chapter (compile time paid once per run)."""
    w = case.make()
    eager = _prepared(w, True, device)
    compiled_w = dataclasses.replace(w, model=torch.compile(copy.deepcopy(w.model)))
    try:
        compiled = _prepared(compiled_w, True, device)
        compile_s = timed(compiled, device)  # the first call compiles forward and backward graphs
    except Exception as err:  # a CPU without a working C++ toolchain cannot compile: say so
        return {"model": case.name, "error": f"{type(err).__name__}: {err}"[:500]}
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for r in range(WARMUP + rounds):
        for name, step in (("eager", eager), ("compiled", compiled)):
            seconds = timed(step, device)
            if r >= WARMUP:
                times[name].append(seconds)
    best = {k: min(v) for k, v in times.items()}
    steps, runs = full_run_steps(case.chapter, profile)
    saved_per_run = steps * (best["eager"] - best["compiled"]) - compile_s
    return {"model": case.name, "chapter": case.chapter, "compile_s": compile_s, "eager_s": best["eager"],
            "compiled_s": best["compiled"], "speedup": best["eager"] / best["compiled"], "steps_per_run": steps,
            "runs": runs, "saved_per_run_s": saved_per_run, "saved_chapter_s": saved_per_run * runs,
            "pays": saved_per_run > 0.1 * steps * best["eager"]}


# ----------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class Config:
    """What defines a benchmark run: an identical config reloads the stored record."""

    profile: str
    rounds: int
    threads: int = 1
    compile: bool = True  # time torch.compile too (slow: minutes of compilation)


def record_file(profile: str) -> Path:
    """Where the benchmark record of ``profile`` is stored."""
    return results_root() / profile / EXPERIMENT / f"{EXPERIMENT}.json"


def _machine(device: torch.device) -> dict[str, Any]:
    return {**machine_description(device), "bf16_native": bf16_native(device),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def run(profile: str = "quick", device: str = "cpu", force: bool = False, rounds: int | None = None,
        progress: bool = False) -> dict[str, Any]:
    """Measure every model of ``profile`` (or load the stored record of an identical config)."""
    config = Config(check_profile(profile), rounds or ROUNDS[profile], compile=profile != "quick")
    path = record_file(profile)
    if path.is_file() and not force:
        stored = load_record(path)
        if stored["config"] == config_dict(config):
            return stored
    check_training_allowed(profile, f"the precision benchmark ({path.name})", force)
    set_threads(config.threads)
    dev = resolve_device(device)
    machine_before, commit, t0 = _machine(dev), git_commit(), time.perf_counter()  # the code that measures
    results: dict[str, list[dict[str, Any]]] = {"cases": [], "guided": []}
    for part, cases in (("cases", model_cases(profile)), ("guided", guided_cases(profile))):
        for case in cases:
            results[part].append(measure_case(case, config.rounds, dev))
            if progress:
                r = results[part][-1]
                print(f"{r['chapter']} {r['model']:34s} fp32 {r['min_s']['fp32']:.4f}s bf16 {r['min_s']['bf16']:.4f}s "
                      f"ratio {r['ratio']:.2f}", flush=True)
    compiled = []
    if config.compile:
        cases = {(c.chapter, c.name): c for c in model_cases(profile)}
        for key in (("04", "deep_fcn"), ("05", "plain_cnn")):
            compiled.append(compile_finding(cases[key], dev, config.rounds, profile))
            if progress:
                print(compiled[-1], flush=True)
    record = {"experiment": EXPERIMENT, "profile": profile, "seed": 0, "name": EXPERIMENT,
              "key": run_key(EXPERIMENT, config, 0), "config": config_dict(config),
              "metrics": {f"{r['chapter']} {r['model']}": r["ratio"] for r in results["cases"] + results["guided"]},
              "history": [], **results, "compile": compiled,
              "load_average_after": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
              **provenance(dev, t0, commit=commit), "machine": machine_before}
    write_record(record, path)
    return record


# ----------------------------------------------------------------------------- what the page shows


def table(record: dict[str, Any]) -> pd.DataFrame:
    """One row per model (and guided step): milliseconds per step in each precision, the ratio, the goal."""
    rows = []
    for r in record["cases"] + record["guided"]:
        rows.append({"chapter": r["chapter"], "model": r["model"], "kind": r["kind"], "batch": r["batch_size"],
                     "fp32 ms": 1000 * r["min_s"]["fp32"], "bf16 ms": 1000 * r["min_s"]["bf16"],
                     "fp32 / bf16": r["ratio"], "(medians)": r["ratio_median"], "goal": r["goal"],
                     "met": {None: "-", True: "yes", False: "no"}[r["goal_met"]]})
    return pd.DataFrame(rows)


def misses(record: dict[str, Any]) -> pd.DataFrame:
    """Profiler evidence for each model that misses its goal: the top ops of a bf16 step and their input dtypes."""
    rows = [{"model": f"{r['chapter']} {r['model']}", "op": o["op"], "self ms per step": o["self_ms"],
             "share of self time": o["share"], "calls": o["calls"], "input dtypes": ", ".join(o["dtypes"]) or "-"}
            for r in record["cases"] + record["guided"] if r.get("profile") for o in r["profile"]]
    return pd.DataFrame(rows, columns=["model", "op", "self ms per step", "share of self time", "calls", "input dtypes"])


def evidence(record: dict[str, Any], top: int = 4) -> str:
    """For each model that misses its goal: its heaviest ops in a bf16 step, and which of them run in fp32."""
    lines = []
    for r in record["cases"] + record["guided"]:
        ops = r.get("profile") or []
        if not ops:
            continue
        heavy = "; ".join(f"`{o['op']}` {100 * o['share']:.0f} % ({_precision_of(o['dtypes'])})" for o in ops[:top])
        fp32 = [o for o in ops if _precision_of(o["dtypes"]) == "fp32"]
        names = ", ".join(f"`{o['op']}`" for o in fp32[:4])
        lines.append(f"* **{r['chapter']} {r['model']}** ({r['ratio']:.2f}x): {heavy}. Of the step's self time, "
                     f"{100 * sum(o['share'] for o in fp32):.0f} % is in fp32 ops among the top {len(ops)}"
                     + (f" ({names})." if fp32 else "."))
    return "\n".join(lines) or "* Every model meets its goal: nothing to explain."


def _precision_of(dtypes: list[str]) -> str:
    """``bf16``, ``fp32``, ``mixed`` or ``-`` (no tensor inputs) from an op's input dtypes."""
    bf, fp = any("BFloat16" in d for d in dtypes), any(d == "float" for d in dtypes)
    return "mixed" if bf and fp else "bf16" if bf else "fp32" if fp else "-"


def compile_table(record: dict[str, Any]) -> pd.DataFrame:
    """The torch.compile finding per model: compile time, steady steps, net saving over the chapter."""
    return pd.DataFrame(record.get("compile", []))


def figure(record: dict[str, Any]):
    """Bars of the fp32 / bf16 ratio per model, with the goal of each kind as a line."""
    import matplotlib.pyplot as plt

    t = table(record)
    labels = (t["chapter"] + " " + t["model"]).tolist()
    colours = t["kind"].map({"conv": "tab:blue", "fcn": "tab:orange", "sequence": "tab:green"}).tolist()
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(t) + 1.2))
    ax.barh(labels, t["fp32 / bf16"], color=colours)
    for kind, goal in GOALS.items():
        ax.axvline(goal, ls="--", color={"conv": "tab:blue", "fcn": "tab:orange"}[kind], lw=1, label=f"goal, {kind}")
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("fp32 step time / bf16 step time (higher: bf16 faster)")
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    return fig


def summary(record: dict[str, Any]) -> str:
    """The page's prose: the machine, which goals are met, and what torch.compile would buy."""
    m = record["machine"]
    rows = record["cases"] + record["guided"]
    lines = [f"* **Machine**: {m['cpu']}; kernel-relevant flags: {', '.join(m['cpu_flags']) or 'none'}; "
             f"{m['threads']} thread(s) of {m['logical_cpus']}; native bf16 products: "
             f"{'yes' if m['bf16_native'] else 'no (bf16 is emulated here, so slow)'}; load average when it started "
             f"{', '.join(f'{v:.1f}' for v in m['load_average'] or [])}."]
    for kind, goal in GOALS.items():
        of_kind = [r for r in rows if r["kind"] == kind]
        met = [r for r in of_kind if r["goal_met"]]
        missed = ", ".join(f"{r['chapter']} {r['model']} ({r['ratio']:.2f}x)" for r in of_kind if not r["goal_met"])
        lines.append(f"* **{kind} nets, goal {goal}x**: met by {len(met)} of {len(of_kind)}"
                     + (f"; missed by {missed}." if missed else "."))
    seq = [r for r in rows if r["kind"] == "sequence"]
    if seq:
        lines.append(f"* **Sequence nets** (no goal): ratios {min(r['ratio'] for r in seq):.2f}x to "
                     f"{max(r['ratio'] for r in seq):.2f}x.")
    return "\n".join(lines)


def compile_summary(record: dict[str, Any]) -> str:
    """What torch.compile did to each measured bf16 step, and whether it pays over a ``full`` run."""
    lines = []
    for c in record.get("compile", []):
        if "error" in c:
            lines.append(f"* **torch.compile** of {c['model']} failed here: {c['error']}")
            continue
        verdict = "pays" if c["pays"] else "does not pay"
        lines.append(f"* **torch.compile** of the {c['model']} bf16 step: {c['compile_s']:.0f} s to compile, then "
                     f"{1000 * c['compiled_s']:.0f} ms per step against {1000 * c['eager_s']:.0f} ms eager "
                     f"({c['speedup']:.2f}x); over one `full` run ({c['steps_per_run']} steps) it saves "
                     f"{c['saved_per_run_s']:.0f} s net, {c['saved_chapter_s'] / 60:.1f} min over the chapter's "
                     f"{c['runs']} runs: it {verdict}.")
    return "\n".join(lines) or "* `torch.compile` was not measured in this profile."


def main(argv: list[str] | None = None) -> None:
    """``python -m untrainable.benchmarks.precision``: measure (always) and store a profile's record."""
    parser = argparse.ArgumentParser(prog="python -m untrainable.benchmarks.precision", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=PROFILES, default="quick")
    parser.add_argument("--device", type=parse_device, default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--rounds", type=int, default=None, help="timed steps per precision (default: 2 quick, 7 full)")
    parser.add_argument("--parity", action="store_true", help="run the accuracy-parity study instead")
    args = parser.parse_args(argv)
    if args.parity:
        from untrainable.benchmarks import precision_parity

        records = precision_parity.run(args.profile, device=args.device, train_missing=True)
        print(precision_parity.parity_table(records).to_string(index=False))
        return
    record = run(args.profile, device=args.device, force=True, rounds=args.rounds, progress=True)
    print(table(record).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(summary(record))
    print(f"written: {record_file(args.profile)}")


if __name__ == "__main__":
    main()
