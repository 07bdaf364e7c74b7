"""Chapter 03 (guides and targets): the models of the image chapters in one table, and what the even
mapping between a guide's and a target's recorded layers leaves out, counted and said in prose.

Functions take what the chapter modules and :mod:`untrainable.guidance` already computed (rows of
``describe_models``, lists of recorded layer names); nothing here builds or trains a model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from untrainable.guidance import even_mapping

__all__ = ["kind_names", "model_table", "guide_layer_summary", "unpaired_layers", "mapping_summary", "mapping_counts"]


def kind_names(kinds: Iterable[type]) -> str:
    """The class names of module kinds, comma-separated (``"Conv2d, Linear, ..."``)."""
    return ", ".join(k.__name__ for k in kinds)


def model_table(rows_by_chapter: dict[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """One row per distinct model of several chapters (``{chapter: describe_models(profile)}``).

    A model that several chapters share (one built at the same size by both) is listed
    once, with every chapter that uses it; the same name at another size stays a row of its own.
    """
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for chapter, chapter_rows in rows_by_chapter.items():
        for row in chapter_rows:
            seen = rows.setdefault(tuple(row.items()), {**row, "chapters": []})
            seen["chapters"].append(chapter)
    table = pd.DataFrame(list(rows.values()))
    return table.assign(chapters=table["chapters"].str.join(", ")).set_index("model")


def guide_layer_summary(guide_layers: list[str], target_layers: list[str], guide_width: int, target_depth: int) -> str:
    """The recorded layers of a ResNet-18 guide by kind, and of a Deep FCN target, in a sentence."""
    blocks = sum("layer" in n and "downsample" not in n for n in guide_layers)
    downsamples = sum("downsample" in n for n in guide_layers)
    return (f"The ResNet-18 guide (width {guide_width}) has **{len(guide_layers)}** recorded layers: its stem "
            f"convolution, {blocks} block convolutions, {downsamples} downsample convolutions and the average pool "
            f"(its final linear layer, the logits, is dropped). The Deep FCN ({target_depth} blocks) has "
            f"**{len(target_layers)}**: one per Linear layer, the classifier dropped.")


def unpaired_layers(guide_layers: list[str], target_layers: list[str],
                    pairs: list[tuple[int, int]]) -> tuple[list[str], list[str]]:
    """The guide layers and the target layers that no pair of ``pairs`` uses."""
    used_guide, used_target = {i for i, _ in pairs}, {j for _, j in pairs}
    return ([g for i, g in enumerate(guide_layers) if i not in used_guide],
            [t for j, t in enumerate(target_layers) if j not in used_target])


def mapping_summary(guide_layers: list[str], target_layers: list[str], pairs: list[tuple[int, int]]) -> str:
    """How many pairs the mapping makes and which side's layers are left without a partner."""
    free_guide, free_target = unpaired_layers(guide_layers, target_layers, pairs)
    if len(guide_layers) > len(target_layers):
        verb = "is" if len(free_guide) == 1 else "are"
        return (f"{len(pairs)} pairs: each of the {len(target_layers)} target layers has one guide layer, and "
                f"{len(free_guide)} of the {len(guide_layers)} guide layers ({', '.join(free_guide)}) {verb} not used.")
    text = f"{len(pairs)} pairs: each of the {len(guide_layers)} guide layers has one target layer"
    if not free_target:
        return text + "."
    return (f"{text}, and {len(free_target)} of the {len(target_layers)} target layers have no partner: only the "
            "task loss shapes them directly.")


def mapping_counts(layers: dict[str, tuple[list[str], list[str]]]) -> pd.DataFrame:
    """Per labelled (guide layers, target layers): the two counts and the number of pairs of the even mapping."""
    return pd.DataFrame([{"guide -> target": label, "guide layers": len(g), "target layers": len(t),
                          "pairs": len(even_mapping(len(g), len(t)))}
                         for label, (g, t) in layers.items()]).set_index("guide -> target")
