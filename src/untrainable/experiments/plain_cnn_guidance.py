"""Chapter 05: guiding a plain deep ConvNet (Subramaniam et al., 2024, the ImageNet table).

The target is a ResNet stack with every skip connection removed, trained with no guide, with a
trained and with an untrained ResNet guide: chapter 04's ResNet-18 here, and in the ``paper``
profile a ResNet-50 with the target's bottleneck layout, as in the paper. The shared machinery
(config, presets, one target run) is :mod:`.image_guidance`, the guides :mod:`.image_guides`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from untrainable.experiments import PlannedRun
from untrainable.experiments import image_guidance as ig
from untrainable.profiles import default_seeds

__all__ = ["EXPERIMENT", "PRESETS", "RUNS", "configs", "planned_runs", "run", "guide_records", "describe_models"]

EXPERIMENT = ig.EXPERIMENT
PRESETS = ig.PRESETS
#: (target, condition) of every run of the chapter.
RUNS: list[tuple[str, str]] = [("plain_cnn", c) for c in ("no_guide", "trained_guide", "untrained_guide")]


def configs(profile: str, smoke: bool = False, **overrides: Any) -> list[ig.Config]:
    """The chapter's runs in ``profile``: the preset's ``plain_epochs``/``plain_n_train`` when it has
    them; in ``paper`` a ResNet-50 guide and bottleneck blocks unless ``resnet_family`` is overridden."""
    p = ig.preset(profile, smoke, overrides)
    guides = ig.guide_configs(p)
    if profile == "paper" and "resnet_family" not in overrides:
        guides["resnet"] = dataclasses.replace(guides["resnet"], family="resnet50")
        p["plain_block"] = "bottleneck"
    p["n_train"] = p.get("plain_n_train", p["n_train"])
    return ig.target_configs(p, RUNS, guides, p.get("plain_epochs", p["epochs"]))


def planned_runs(profile: str, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """Every record the chapter needs in ``profile``: its trained guide, then the target runs."""
    return ig.planned_runs(configs(profile), default_seeds(profile) if seeds is None else tuple(seeds))


def run(profile: str = "quick", seeds: Iterable[int] | None = None, device: str = "auto", force: bool = False, *,
        train_missing: bool | None = None, smoke: bool = False, **overrides: Any) -> list[dict[str, Any]]:
    """The record of every run for every seed: stored ones loaded, missing ones trained (see
    :func:`untrainable.results.run_or_load` for when a missing ``full`` record may train)."""
    return ig.run_targets(profile, configs(profile, smoke, **overrides), seeds, device, force, train_missing)


def guide_records(profile: str, device: str = "auto", train_missing: bool | None = None, smoke: bool = False,
                  **overrides: Any) -> dict[str, dict[str, Any]]:
    """The record of the chapter's trained guide, keyed by family."""
    return ig.guide_records(profile, configs(profile, smoke, **overrides), device, train_missing)


def describe_models(profile: str) -> list[dict[str, Any]]:
    """The target and guide of the chapter: parameters and the number of recorded layers."""
    return ig.describe_models(configs(profile))
