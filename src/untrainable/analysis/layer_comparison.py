"""Chapter 02 (measuring representations): what each similarity measure ignores, why the arithmetic of
linear CKA matters in float32, and what the chapter's records say about matching layers.

The toy data and the float32 comparison need no training; everything else reads the records of
:mod:`untrainable.experiments.representations` (one per seed, with the sanity-check matrices under
``metrics.sanity`` and the minibatch-CKA heatmaps under ``metrics.heatmaps``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from untrainable import similarity as S
from untrainable.synthetic import post_relu_pair

__all__ = ["TOY_MEASURES", "HEATMAPS", "LayerMatrix", "toy_clouds", "procrustes_similarity",
           "invariance_table", "invariance_summary", "float32_errors", "network_table", "sanity_table",
           "mean_matrix", "sanity_panels", "heatmap_panels", "sanity_summary", "heatmap_summary"]


def procrustes_similarity(x: Any, y: Any) -> float:
    """``1 - d/2`` for the Procrustes distance ``d`` (in [0, 2]): 1 for the same representation,
    so that it reads like the similarities beside it."""
    return 1 - float(S.procrustes_distance(x, y)) / 2


#: The measures the toy comparison applies, each a similarity (1 = the same representation).
TOY_MEASURES: dict[str, Callable[[Any, Any], Any]] = {
    "linear CKA": S.linear_cka, "RBF CKA": S.rbf_cka, "CCA": S.cca_similarity,
    "1 - Procrustes/2": procrustes_similarity, "RSA": S.rsa_similarity,
}

#: The three heatmaps of each record: key -> (what the trained CNN is compared with, its architecture).
HEATMAPS: dict[str, tuple[str, str]] = {
    "trained_vs_untrained": ("CNN at initialisation", "cnn"),
    "cnn_vs_cnn": ("CNN, other seed", "cnn"),
    "cnn_vs_fcn": ("FCN (trained)", "fcn"),
}


def toy_clouds(n: int = 300, seed: int = 0, angle: float = 0.9) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """A noisy 2-D spiral of ``n`` points, each point's position along it (for colouring), and five
    transformed copies: a rotation by ``angle``, an isotropic scaling, a stretch along one axis, a
    non-linear warp, and unrelated noise of the same shape (all drawn from one generator)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 3 * np.pi, n)
    points = np.c_[t * np.cos(t), t * np.sin(t)] / 5 + 0.1 * rng.standard_normal((n, 2))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    copies = {"rotated": points @ rotation, "scaled x3": 3 * points, "stretched": points * np.array([4.0, 0.5]),
              "warped": np.tanh(points), "unrelated": rng.standard_normal((n, 2))}
    return points, t, copies


def invariance_table(original: np.ndarray, copies: dict[str, np.ndarray],
                     measures: dict[str, Callable[[Any, Any], Any]] = TOY_MEASURES) -> pd.DataFrame:
    """Each measure (rows) between the original and each copy (columns)."""
    return pd.DataFrame({name: {m: float(f(original, copy)) for m, f in measures.items()}
                         for name, copy in copies.items()})


def invariance_summary(table: pd.DataFrame) -> str:
    """What :func:`invariance_table` shows: which transforms each measure ignores, with its numbers."""
    t = table
    return (f"Every measure gives the rotated and the isotropically scaled copy "
            f"{t.loc['linear CKA', 'rotated']:.2f}/{t.loc['linear CKA', 'scaled x3']:.2f} (linear CKA) or close to "
            f"it: they ignore orthogonal transforms and overall scale, except RSA, whose correlations across features "
            f"are tied to the feature basis ({t.loc['RSA', 'rotated']:.2f} for the rotation). Only CCA ignores the "
            f"stretch ({t.loc['CCA', 'stretched']:.2f}, against {t.loc['linear CKA', 'stretched']:.2f} for linear "
            "CKA): it is invariant to every invertible linear map, which is what will make it fail below.")


def float32_errors(offsets: Sequence[float] = (0, 1, 10, 100, 1000), n: int = 256, d: int = 2048,
                   seed: int = 0) -> pd.DataFrame:
    """|CKA in float32 - CKA in float64| of our linear CKA and of the authors' ``HKH`` form, per common
    offset added to post-ReLU-like data (one draw of :func:`untrainable.synthetic.post_relu_pair`)."""
    x, y = post_relu_pair(n, d, seed=seed)
    rows = []
    for offset in offsets:
        xo, yo = (x.double() + offset).float(), (y.double() + offset).float()
        exact = S.linear_cka(xo.double(), yo.double()).item()
        rows.append({"offset": offset, "ours (float32)": abs(S.linear_cka(xo, yo).item() - exact),
                     "authors' HKH (float32)": abs(S.authors_linear_cka(xo, yo).item() - exact)})
    return pd.DataFrame(rows).set_index("offset")


def network_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per seed: the compared networks' test accuracies (%, as everywhere in the book) and how many
    images each analysis saw."""
    return pd.DataFrame([{"seed": r["seed"], **{f"test acc {k} (%)": round(100 * v, 1)
                                                for k, v in r["metrics"]["test_acc"].items()},
                          "probe images": r["metrics"]["n_probe"], "heatmap images": r["metrics"]["n_heatmap"]}
                         for r in records])


def sanity_table(records: list[dict[str, Any]], labels: dict[str, str]) -> pd.DataFrame:
    """Per measure (``labels`` names and orders them): the fraction of layers matched, mean and sd over
    seed pairs, and how many pairs."""
    accuracy = pd.DataFrame([{"measure": labels[m], "accuracy": r["metrics"]["sanity_accuracy"][m]}
                             for m in labels for r in records])
    return (accuracy.groupby("measure", sort=False)["accuracy"].agg(["mean", "std", "count"])
            .rename(columns={"mean": "layers matched (mean)", "std": "std over seed pairs", "count": "seed pairs"}))


def mean_matrix(records: list[dict[str, Any]], group: str, key: str) -> np.ndarray:
    """The mean over seeds of one stored matrix (``group`` is ``"sanity"`` or ``"heatmaps"``)."""
    return np.mean([r["metrics"][group][key] for r in records], axis=0)


@dataclass(frozen=True)
class LayerMatrix:
    """One panel of layer-by-layer values: rows are the layers of one network, columns of another."""

    values: np.ndarray
    title: str
    rows: list[str]
    columns: list[str]
    xlabel: str
    ylabel: str
    distance: bool = False  # smaller means more similar: drawn with the colour map reversed


def sanity_panels(records: list[dict[str, Any]], labels: dict[str, str], distances: Sequence[str] = (),
                  measures: Sequence[str] = ("linear_cka", "cca", "procrustes", "rsa")) -> list[LayerMatrix]:
    """The sanity-check matrices of ``measures``, averaged over seed pairs, one panel each."""
    layers = records[0]["metrics"]["layers"]["cnn"]
    return [LayerMatrix(mean_matrix(records, "sanity", m), labels[m] + (" (distance)" if m in distances else ""),
                        layers, layers, "CNN, other seed", "CNN", m in distances) for m in measures]


def heatmap_panels(records: list[dict[str, Any]]) -> list[LayerMatrix]:
    """The three minibatch-CKA heatmaps of :data:`HEATMAPS`, averaged over seeds."""
    layers = records[0]["metrics"]["layers"]
    return [LayerMatrix(mean_matrix(records, "heatmaps", key), f"trained CNN vs {other}", layers["cnn"],
                        layers[arch], other, "trained CNN") for key, (other, arch) in HEATMAPS.items()]


def sanity_summary(records: list[dict[str, Any]]) -> str:
    """What the sanity check shows, measure by measure (means over seed pairs)."""
    s = {m: float(np.mean([r["metrics"]["sanity_accuracy"][m] for r in records]))
         for m in records[0]["metrics"]["sanity_accuracy"]}
    return (f"On {records[0]['metrics']['n_probe']} test images, linear CKA matches {s['linear_cka']:.0%} of the "
            f"layers and RBF CKA {s['rbf_cka']:.0%}; plain CCA matches {s['cca']:.0%}: the convolutional layers "
            "have more features than there are images, so their centred activations span every direction and "
            "every canonical correlation is 1, whichever layer they are compared with. SVCCA's reduction to the "
            f"top directions gives {s['svcca']:.0%}; Procrustes {s['procrustes']:.0%} and RSA {s['rsa']:.0%}. "
            "Adjacent layers (a convolution and the max-pool right after it) are the hardest pairs to tell "
            "apart, as the near-equal neighbouring cells of the heatmaps above show.")


def sanity_result(records: list[dict[str, Any]], labels: dict[str, str], run: str) -> str:
    """The chapter summary's result: every measure ranked by the share of layers it matched (means over seed pairs)."""
    table = sanity_table(records, labels)["layers matched (mean)"].sort_values(ascending=False, kind="stable")
    ranked = "; ".join(f"{measure} {share:.0%}" for measure, share in table.items())
    return (f"* **Our result** ({run}, a small CIFAR-10 CNN rather than the paper's 10-layer one): the share of "
            f"layers each measure matches to the same layer of a network trained from another seed, best first: "
            f"{ranked}.")


def heatmap_summary(records: list[dict[str, Any]]) -> str:
    """What the three heatmaps show: how far training moves each layer, how alike two seeds are layer
    by layer, which FCN layer is most like each CNN layer, and the largest spread over seeds."""
    tu, cc, cf = (mean_matrix(records, "heatmaps", k) for k in HEATMAPS)
    spread = max(np.std([r["metrics"]["heatmaps"][k] for r in records], axis=0).max() for k in HEATMAPS)
    fcn_layers = records[0]["metrics"]["layers"]["fcn"]
    return (f"* **Trained vs untrained.** CKA between each layer and the same layer at initialisation: first "
            f"convolution {tu[0, 0]:.2f}, hidden fully connected layer {tu[-2, -2]:.2f}, logits {tu[-1, -1]:.2f} "
            "(lower means training moved the layer further from where it started).\n"
            f"* **Two seeds.** The diagonal of the CNN-vs-CNN map is high throughout (from {np.diag(cc).min():.2f} "
            f"to {np.diag(cc).max():.2f}): networks trained from different seeds learn similar representations "
            "layer by layer.\n"
            f"* **CNN vs FCN.** The FCN's first layer against the CNN's conv1: {cf[0, 0]:.2f}; the two networks' "
            f"logits: {cf[-1, -1]:.2f}; the FCN layer most like each CNN layer, top to bottom: "
            f"{', '.join(fcn_layers[j] for j in cf.argmax(1))}.\n"
            f"* **Spread.** The largest standard deviation of any cell over seeds is {spread:.3f}.")
