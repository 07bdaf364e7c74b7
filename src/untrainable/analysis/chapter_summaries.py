"""What chapters 01 (inductive bias) and 07 (mimic students) conclude, as frames and prose from their
records: every clause follows the numbers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from untrainable.results import history_frame, metrics_frame

__all__ = ["inductive_bias_summary", "size_frame", "size_summary", "quality_frame", "quality_summary",
           "mimic_loss_labels"]


def inductive_bias_summary(records: list[dict[str, Any]]) -> str:
    """Chapter 01's findings as Markdown, from its records (``fcn``, ``cnn``, ``deep_fcn``): who fits,
    who generalises, and whether the deep FCN trains; every clause follows the numbers."""
    m = metrics_frame(records).groupby("name")[["train_acc", "test_acc", "best_test_acc"]].mean() * 100
    loss = history_frame(records).groupby(["name", "epoch"])["test_loss"].mean()
    fcn_best, last, cnn_best = int(loss["fcn"].idxmin()), int(loss["fcn"].index.max()), int(loss["cnn"].idxmin())
    gap = {k: m.loc[k, "train_acc"] - m.loc[k, "test_acc"] for k in ("fcn", "cnn")}
    fcn_curve = (f"its test loss is lowest at epoch {fcn_best} of {last} and rises after that, the signature of overfitting"
                 if fcn_best < last else f"its test loss is still falling at epoch {last}")
    gain = m.loc["cnn", "test_acc"] - m.loc["fcn", "test_acc"]
    if gap["cnn"] < gap["fcn"]:
        cnn = (f"**The CNN generalises better.** With the same number of parameters it reaches "
               f"{m.loc['cnn', 'test_acc']:.1f}% test accuracy, {gain:+.1f} points over the FCN, with a smaller "
               f"train-test gap ({gap['cnn']:.1f} points against {gap['fcn']:.1f}).")
    else:
        cnn = (f"**The CNN learns what transfers.** With the same number of parameters it reaches "
               f"{m.loc['cnn', 'test_acc']:.1f}% test accuracy (best epoch {m.loc['cnn', 'best_test_acc']:.1f}%), "
               f"{gain:+.1f} points over the FCN. It overfits too: its train-test gap ({gap['cnn']:.1f} points) "
               f"is no smaller than the FCN's ({gap['fcn']:.1f}), and its test loss turns up after epoch {cnn_best}. "
               "Without augmentation or regularisation both nets overfit; the architecture decides how much of "
               "what they fit carries over to new images.")
    deep = "hardly trains" if m.loc["deep_fcn", "train_acc"] < m.loc["fcn", "train_acc"] / 2 else "trains more slowly"
    return (f"* **The FCN fits the training set better than the test set.** It reaches {m.loc['fcn', 'train_acc']:.1f}% "
            f"on the training images but {m.loc['fcn', 'test_acc']:.1f}% on the test images; {fcn_curve}.\n"
            f"* {cnn}\n"
            f"* **The deep FCN {deep}.** Sixteen plain layers of 128 units reach {m.loc['deep_fcn', 'train_acc']:.1f}% on "
            f"the *training* set, against the shallow FCN's {m.loc['fcn', 'train_acc']:.1f}%: its problem is "
            "optimisation, not overfitting.")



def size_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per student of the size sweep: family (``labels``, ``mimic``, ...), width, parameters, test acc (%)."""
    df = pd.DataFrame([{"name": r["name"], "seed": r["seed"], "family": r["name"].rsplit("-h", 1)[0],
                        "width": int(r["name"].rsplit("-h", 1)[1]), "parameters": r["metrics"]["parameters"],
                        "test_acc": 100 * r["metrics"]["test_acc"]} for r in records])
    return df


def best_means(size: pd.DataFrame) -> pd.Series:
    """Per family, the best width's mean test accuracy over seeds (the highest point of the plotted means)."""
    return size.groupby(["family", "width"])["test_acc"].mean().groupby("family").max()


def size_summary(size: pd.DataFrame, teacher_acc: float, mlp_depth: int) -> str:
    """What the size sweep shows: each family's best width (its mean over seeds, as plotted), and mimic vs
    labels at the largest width."""
    best = best_means(size)
    widest = size[size["width"] == size["width"].max()].groupby("family")["test_acc"].mean()
    verb = "beats" if widest["mimic"] > widest["labels"] else "does not beat"
    return (f"At its best width (means over seeds, as plotted) the label-trained shallow net reaches "
            f"{best['labels']:.1f}%, the mimic student "
            f"{best['mimic']:.1f}% and the convolution-free mimic {best['mimic_noconv']:.1f}%, against "
            f"{teacher_acc:.1f}% for the deep teacher. At the largest width ({size['width'].max():,} hidden units), "
            f"mimicry {verb} label training ({widest['mimic']:.1f}% vs {widest['labels']:.1f}%, means over seeds). "
            f"Without convolution, {mlp_depth} hidden layers of the same size reach at best "
            f"{best['deep_mlp_mimic']:.1f}% by mimicry and {best['deep_mlp_labels']:.1f}% on labels, against "
            f"{best['mimic_noconv']:.1f}% for one hidden layer by mimicry and {best['mimic']:.1f}% with the convolution.")


def quality_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per student of the teacher-quality study: width, teacher and student test accuracy (%)."""
    return pd.DataFrame([{"name": r["name"], "seed": r["seed"], "width": int(r["name"].rsplit("-h", 1)[1]),
                          "teacher_test_acc": 100 * r["metrics"]["teacher_test_acc"],
                          "test_acc": 100 * r["metrics"]["test_acc"]} for r in records])


def quality_summary(quality: pd.DataFrame) -> str:
    """Per width, the correlation of student with teacher accuracy, and how often a student beats its teacher."""
    corr = "; ".join(f"width {w:,}: r = {np.corrcoef(g['teacher_test_acc'], g['test_acc'])[0, 1]:.2f}"
                     for w, g in quality.groupby("width"))
    beat = quality[quality["test_acc"] > quality["teacher_test_acc"]]
    which = "none" if beat.empty else "; ".join(
        f"{r['name']} seed {r['seed']} ({r['test_acc']:.1f}% against its teacher's {r['teacher_test_acc']:.1f}%)"
        for _, r in beat.iterrows())
    return (f"Correlation over runs of student with teacher accuracy, per student width: {corr}. "
            f"Students that beat their teacher: {len(beat)} of {len(quality)} runs ({which}).")


def mimic_loss_labels(temperatures: Iterable[float]) -> dict[str, str]:
    """Display names of the loss study's runs (``loss-logits``, ``loss-kd-T4``, ...)."""
    return {"loss-logits": "L2 on logits (mimic)", "loss-probs": "cross-entropy on teacher probabilities",
            "loss-labels": "labels only", **{f"loss-kd-T{t:g}": f"Hinton KD, T = {t:g}" for t in temperatures}}
