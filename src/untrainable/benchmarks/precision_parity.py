"""Accuracy parity: does bf16 training land where fp32 training does, within the spread of seeds?

Speed is worth nothing if bf16 changes the results. For each chapter's main model (chapter 01's
small CNN, 04's Deep FCN and 05's plain ConvNet without a guide, 06's character-level RNN language
model, 07's label-trained shallow student with its conv front end: a mimic student needs trained
teachers, which a short study cannot afford), a short run is trained in fp32 and in bf16 over three
seeds, from the chapter's own ``full`` config shrunk to about half a minute per run on one thread
(:data:`SIZES`). Each run is a record of experiment ``precision_parity`` (:func:`run_or_load`), so a
stored study reloads.

bf16 is *within the seed spread* of fp32 when the difference of the means is at most twice the
larger of the two standard deviations over seeds; Welch's two-sided p-value
(:func:`untrainable.analysis.welch_effect`) is shown with it. A model that fails stays fp32.
The ``quick`` profile runs a tiny slice, its second arm ``auto`` (fp32 on a CPU without native
bf16 products, so it runs anywhere).

    python -m untrainable.benchmarks.precision_parity --profile full --seeds 0 1 2   # trains what is missing
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from untrainable.analysis import welch_effect
from untrainable.data import load_image_data
from untrainable.experiments import (PlannedRun, checked_seeds, fcn_guidance, inductive_bias, mimic_students,
                                     plain_cnn_guidance, sequence_guidance, shell_parser, shell_seeds)
from untrainable.models import build_target
from untrainable.profiles import check_profile
from untrainable.results import run_or_load
from untrainable.runtime import seed_everything, set_threads
from untrainable.train import FitSettings, fit

__all__ = ["EXPERIMENT", "SEEDS", "REQUIRED_METRICS", "SIZES", "MODELS", "arms", "parity_configs", "train_parity",
           "planned_runs", "run", "parity_frame", "parity_table", "parity_summary", "main"]

EXPERIMENT = "precision_parity"
SEEDS = (0, 1, 2)
#: What appendix 91 reads of a parity record.
REQUIRED_METRICS = ("test_acc", "train_acc")
#: The main model of each chapter: label -> (chapter, run or model name in the chapter's configs)
MODELS = {"01 small CNN": "01", "04 Deep FCN, no guide": "04", "05 plain ConvNet, no guide": "05",
          "06 RNN language model, no guide": "06", "07 shallow student (labels, conv front end)": "07"}
#: Per profile and chapter: the sizes that replace the chapter's own (about 30 s per run on one thread in full).
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {"01": dict(n_train=4000, n_test=2000, epochs=3), "04": dict(n_train=3000, n_test=2000, epochs=20),
             "05": dict(n_train=2000, n_test=1000, epochs=6),
             "06": dict(n_train=4000, n_valid=200, n_test=400, epochs=3),
             "07": dict(n_train=5000, n_test=2000, epochs=4)},
    "quick": {"01": dict(n_train=256, n_test=256, epochs=1), "04": dict(n_train=256, n_test=256, epochs=2),
              "05": dict(n_train=128, n_test=128, epochs=1), "06": dict(n_train=64, n_valid=16, n_test=32, epochs=1),
              "07": dict(n_train=256, n_test=256, epochs=1)},
}
SIZES["paper"] = SIZES["full"]


def arms(profile: str) -> tuple[str, str]:
    """The two precisions compared: fp32 and bf16 (``auto`` in quick, which must run on any CPU)."""
    return ("fp32", "auto") if profile == "quick" else ("fp32", "bf16")


def _chapter_config(profile: str, chapter: str) -> Any:
    """The chapter's own config of its main model in ``profile``."""
    if chapter == "01":
        return next(c for c in inductive_bias.configs(profile) if c.model == "cnn")
    if chapter == "04":  # the Deep FCN the parity was measured on: chapter 04's model before its pilots (20x256)
        return fcn_guidance.first_regime_config(profile)
    if chapter == "05":  # the plain ConvNet the parity was measured on: chapter 05's first regime (width 8)
        return next(c for c in plain_cnn_guidance.first_regime_configs(profile) if c.condition == "no_guide")
    if chapter == "06":
        return next(c for c in sequence_guidance.configs(profile, settings=("lm",)) if c.condition == "no_guide")
    # chapter 07's label-trained student as the parity was measured: before every student shared the
    # transfer set, it trained on the original images alone, without the linear bottleneck
    widths = mimic_students.preset(profile).widths
    return dataclasses.replace(mimic_students.configs(profile)["size"][f"labels-h{widths[len(widths) // 2]}"],
                               views=0, bottleneck=None)


def parity_configs(profile: str) -> dict[tuple[str, str], Any]:
    """``(model label, precision) -> config``: each chapter's config with the parity sizes and the precision."""
    out = {}
    for label, chapter in MODELS.items():
        base = _chapter_config(check_profile(profile), chapter)
        for precision in arms(profile):
            out[(label, precision)] = dataclasses.replace(base, precision=precision, **SIZES[profile][chapter])
    return out


def _fit_and_report(model: torch.nn.Module, train: tuple, test: tuple, settings: FitSettings, generator, device,
                    checkpoint: Path, desc: str) -> dict[str, Any]:
    history = fit(model, train, test, settings, generator=generator, device=device, checkpoint=checkpoint, desc=desc,
                  progress=False)
    last = history[-1]
    return {"metrics": {k: last[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}, "history": history}


def train_parity(c: Any, seed: int, device: torch.device, checkpoint: Path) -> dict[str, Any]:
    """Train one parity run with the trainer of its chapter (a plain fit where the chapter's needs guides)."""
    if isinstance(c, inductive_bias.Config):
        return inductive_bias.train_one(c, seed, device, checkpoint)
    if isinstance(c, mimic_students.StudentConfig):
        return mimic_students.train_student(c, seed, device, checkpoint)
    if isinstance(c, sequence_guidance.Config):
        data = sequence_guidance.load_data(c)
        generator = seed_everything(seed)
        model = sequence_guidance.build_net(c.net, data)
        settings = FitSettings(epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, weight_decay=c.weight_decay,
                               optimizer=c.optimizer, clip_grad_norm=c.clip_grad_norm, eval_batch_size=256,
                               precision=c.precision)
        return _fit_and_report(model, data.train, data.test, settings, generator, device, checkpoint,
                               f"{c.setting} {c.precision}")
    train, test = load_image_data(c.dataset, c.n_train, c.n_test, c.data_seed, c.image_size)
    generator = seed_everything(seed)
    settings = FitSettings(epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, weight_decay=c.weight_decay,
                           optimizer=c.optimizer, precision=c.precision)
    return _fit_and_report(build_target(c), train, test, settings, generator, device, checkpoint,
                           f"{c.target} {c.precision}")


def planned_runs(profile: str, seeds: tuple[int, ...] | None = None) -> list[PlannedRun]:
    """Every parity run of ``profile`` (appendix 91's records), so the store's checks and ``reproduce``
    see a missing or orphaned one before the page is executed."""
    seeds = checked_seeds(seeds, SEEDS)
    return [PlannedRun(EXPERIMENT, f"{MODELS[label]}-{precision}", c, s, REQUIRED_METRICS)
            for (label, precision), c in parity_configs(profile).items() for s in seeds]


def run(profile: str = "quick", seeds: tuple[int, ...] | None = None, device: str = "cpu",
        force: bool = False, train_missing: bool | None = None) -> list[dict[str, Any]]:
    """Every parity run of ``profile``: stored records reload; missing ones train (a ``full`` one only
    when asked: ``train_missing`` or ``--train-missing``, as everywhere)."""
    set_threads()
    label = {chapter: model for model, chapter in MODELS.items()}  # a run's name starts with its chapter
    records = []
    for planned in planned_runs(profile, seeds):
        r = run_or_load(EXPERIMENT, profile, planned.name, planned.config, planned.seed, train_parity, device=device,
                        force=force, train_missing=train_missing, required_metrics=REQUIRED_METRICS)
        records.append({**r, "parity_model": label[planned.name.split("-", 1)[0]],
                        "parity_arm": planned.config.precision})
    return records


def parity_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: model, precision asked for, precision it ran in, seed, test accuracy."""
    return pd.DataFrame([{"model": r["parity_model"], "arm": r["parity_arm"],
                          "ran in": r.get("precision", r["config"].get("precision")), "seed": r["seed"],
                          "test_acc": r["metrics"]["test_acc"], "wall_time_s": r.get("wall_time_s")}
                         for r in records])


def _row(model: str, a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    sd_a, sd_b = (float(v.std(ddof=1)) if v.size > 1 else float("nan") for v in (a, b))
    diff = float(b.mean() - a.mean())
    spread = 2 * max(sd_a, sd_b)
    p = welch_effect(a, b).p_value if min(a.size, b.size) > 1 else float("nan")
    within = bool(abs(diff) <= spread) if math.isfinite(spread) else False
    return {"model": model, "fp32 mean": float(a.mean()), "fp32 sd": sd_a, "bf16 mean": float(b.mean()),
            "bf16 sd": sd_b, "bf16 - fp32": diff, "2 x larger sd": spread, "Welch p": p, "seeds": min(a.size, b.size),
            "within seed spread": within, "use": "bf16" if within else "fp32"}


def parity_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Per model: mean and sd of test accuracy per precision, the difference, Welch's p, and the verdict."""
    f = parity_frame(records)
    rows = []
    for model, sub in f.groupby("model", sort=False):
        arms_ = list(dict.fromkeys(sub["arm"]))
        a, b = (sub.loc[sub["arm"] == arm, "test_acc"].to_numpy(dtype=float) for arm in arms_[:2])
        rows.append(_row(model, a, b))
    return pd.DataFrame(rows)


def parity_summary(records: list[dict[str, Any]]) -> str:
    """One sentence per model for the page: the two means, whether bf16 is within the spread."""
    lines = []
    for r in parity_table(records).to_dict("records"):
        verdict = ("within the seed spread: bf16 may be used" if r["within seed spread"]
                   else "outside the seed spread: this model stays fp32")
        lines.append(f"* **{r['model']}**: fp32 {100 * r['fp32 mean']:.2f} ± {100 * r['fp32 sd']:.2f} %, bf16 "
                     f"{100 * r['bf16 mean']:.2f} ± {100 * r['bf16 sd']:.2f} % over {r['seeds']} seeds "
                     f"(difference {100 * r['bf16 - fp32']:+.2f} points, Welch p = {r['Welch p']:.2f}): {verdict}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Train the parity runs of a profile from a shell (missing records are trained) and print the table."""
    parser = shell_parser("python -m untrainable.benchmarks.precision_parity", main.__doc__,
                          f"distinct seeds (default: {SEEDS})", device="cpu")  # as run(): a study of the CPU's bf16
    args = parser.parse_args(argv)
    records = run(args.profile, shell_seeds(parser, args.seeds), args.device, train_missing=True)
    print(parity_table(records).to_string(index=False))


if __name__ == "__main__":
    main()
