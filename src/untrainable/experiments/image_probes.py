"""The alignment probes of an image run (chapters 04-05): linear CKA of a target's layers with a reference
guide's, on a fixed probe set of test images, in eval mode, measured at initialisation and after every epoch
(the mapped pairs) or at initialisation and at the end (every pair: the heatmaps). A probe is a diagnostic:
a layer constant over the probe set gives None with its reason, never a stopped run."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from untrainable import guidance as G

__all__ = ["probes_for", "grid_probes", "cka_grid", "measure"]


def probes_for(model: nn.Module, references: dict[str, nn.Module], example: torch.Tensor, x_probe: torch.Tensor,
            device: torch.device) -> dict[str, G.SimilarityProbe]:
    """A linear-CKA probe per reference guide, over the evenly mapped layer pairs."""
    probes = {}
    for label, guide in references.items():
        guide = guide.to(device)
        pairs = G.resolve_mapping(G.guidance_layers(guide, example), G.guidance_layers(model, example))
        probes[label] = G.SimilarityProbe(guide, pairs, x_probe)
    return probes


def grid_probes(model: nn.Module, references: dict[str, nn.Module], example: torch.Tensor, x_probe: torch.Tensor,
                 device: torch.device) -> dict[str, G.SimilarityProbe]:
    """A linear-CKA probe per reference guide over every (guide layer, target layer) pair, not only the
    mapped ones: the heatmaps of chapter 04, measured at initialisation and after training only."""
    grids = {}
    for label, guide in references.items():
        guide = guide.to(device)
        pairs = [(g, t) for g in G.guidance_layers(guide, example) for t in G.guidance_layers(model, example)]
        grids[label] = G.SimilarityProbe(guide, pairs, x_probe)
    return grids


def cka_grid(grids: dict[str, G.SimilarityProbe], model: nn.Module) -> dict[str, dict[str, Any]]:
    """Each grid probe's CKA as a matrix: ``cka[i][j]`` of guide layer ``i`` and target layer ``j`` (None:
    a constant side), with both layer lists."""
    out = {}
    for label, p in grids.items():
        values = dict(zip(p.pairs, p.measure(model), strict=True))
        guide_layers = list(dict.fromkeys(g for g, _ in p.pairs))
        target_layers = list(dict.fromkeys(t for _, t in p.pairs))
        out[label] = {"guide_layers": guide_layers, "target_layers": target_layers,
                      "cka": [[values[(g, t)] for t in target_layers] for g in guide_layers]}
    return out


def measure(probes: dict[str, G.SimilarityProbe], model: nn.Module, undefined: dict[str, dict[str, str]]
             ) -> dict[str, list[float | None]]:
    """Each probe's CKA per pair (None: undefined, a side constant over the probe set); the reasons go into
    ``undefined`` as ``{reference: {pair index: reason}}``, so a record says why a value is null."""
    out = {}
    for k, p in probes.items():
        out[k] = p.measure(model)
        if p.undefined:
            undefined[k] = {str(i): why for i, why in p.undefined.items()}
    return out
