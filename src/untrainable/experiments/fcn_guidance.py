"""Chapter 04: guiding fully connected networks on images (Subramaniam et al., 2024, the ImageNet table).

Targets: a Deep FCN and a Wide FCN. The Deep FCN is trained with no guide, with a trained and with
an untrained ResNet-18 guide, guided for its first steps only ("guidance as initialisation") and
guided by a second guide family (a small plain CNN) for the error-consistency study; the Wide FCN
with no guide, a trained and an untrained guide. The shared machinery (config, presets, one target
run) is :mod:`.image_guidance`, the guides :mod:`.image_guides`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from untrainable.experiments import PlannedRun
from untrainable.experiments import image_guidance as ig
from untrainable.profiles import default_seeds

__all__ = ["EXPERIMENT", "PRESETS", "RUNS", "configs", "planned_runs", "run", "guide_records", "describe_models"]

EXPERIMENT = ig.EXPERIMENT
PRESETS = ig.PRESETS
#: (target, condition) of every run of the chapter, in the order of its tables.
RUNS: list[tuple[str, str]] = [
    *[("deep_fcn", c) for c in ("no_guide", "trained_guide", "untrained_guide", "trained_guide_init",
                                "small_cnn_guide")],
    *[("wide_fcn", c) for c in ("no_guide", "trained_guide", "untrained_guide")],
]


def configs(profile: str, smoke: bool = False, **overrides: Any) -> list[ig.Config]:
    """The chapter's runs in ``profile`` (``smoke``: a tiny slice; ``overrides`` replace preset values)."""
    p = ig.preset(profile, smoke, overrides)
    return ig.target_configs(p, RUNS, ig.guide_configs(p), p["epochs"])


def planned_runs(profile: str, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """Every record the chapter needs in ``profile``: its two trained guides, then the target runs."""
    return ig.planned_runs(configs(profile), default_seeds(profile) if seeds is None else tuple(seeds))


def run(profile: str = "quick", seeds: Iterable[int] | None = None, device: str = "auto", force: bool = False, *,
        train_missing: bool | None = None, smoke: bool = False, **overrides: Any) -> list[dict[str, Any]]:
    """The record of every run for every seed: stored ones loaded, missing ones trained (see
    :func:`untrainable.results.run_or_load` for when a missing ``full`` record may train)."""
    return ig.run_targets(profile, configs(profile, smoke, **overrides), seeds, device, force, train_missing)


def guide_records(profile: str, device: str = "auto", train_missing: bool | None = None, smoke: bool = False,
                  **overrides: Any) -> dict[str, dict[str, Any]]:
    """The records of the chapter's trained guides (ResNet-18 and small CNN), keyed by family."""
    return ig.guide_records(profile, configs(profile, smoke, **overrides), device, train_missing)


def describe_models(profile: str) -> list[dict[str, Any]]:
    """Each target and guide of the chapter: parameters and the number of recorded layers."""
    return ig.describe_models(configs(profile))
