"""Chapter 04: guiding fully connected networks on images (Subramaniam et al., 2024, the ImageNet table).

Targets: a Deep FCN and a Wide FCN, in the regime the pilots of appendix 92 chose from the unguided
controls and the guides alone (:mod:`.pilot_regimes`): 2,000 CIFAR-10 training images, 60 epochs,
where both FCNs overfit and a ResNet-18 trained on the same images does far better.

The Deep FCN is trained with no guide, with a trained and with an untrained ResNet-18 guide, guided
for its first steps only ("guidance as initialisation", 5 % and 20 % of its steps), guided by a
second trained family (a small plain CNN, for error consistency) and by a ResNet-18 trained on every
training image (a separate condition: that guide brings data as well as bias). The Wide FCN is
trained with no guide, a trained and an untrained guide.

Training follows the authors' image code: Adam, the learning rate multiplied by 0.1 after each
30 % of training (their 30 of 100 epochs), the validation loss measured every epoch and the
checkpoint of lowest validation loss the one reported (``checkpoint_test_acc``); the last epoch's
numbers are kept too, for the learning curves.

Hyper-parameters are chosen as the paper did, on a validation split held out from the training
images (never the test split), by a sweep stored as records of its own: for each headline guided
condition alpha at the control's learning rate, then for every headline condition the learning
rate from five values, each by the lowest validation loss (:mod:`.image_chapter`, which also holds
the chapter contract this module exposes as functions). Conditions that are not swept take the
trained-guide condition's values. One target run is :mod:`.image_guidance`, the guides
:mod:`.image_guides`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from untrainable.analysis.preconditions import CheckedPrecondition, guide_beats_target, overfits
from untrainable.experiments import image_guidance as ig
from untrainable.experiments.image_chapter import SWEEP_EXPERIMENT, SWEEP_SEED, ImageChapter, sweep_name
from untrainable.experiments.image_guides import scored_as

__all__ = ["EXPERIMENT", "SWEEP_EXPERIMENT", "SWEEP_SEED", "PRESETS", "SMOKE", "RUNS", "HEADLINE", "SWEPT",
           "TARGET_LABELS", "GUIDE_TARGETS", "KAPPA_GUIDES", "CHAPTER", "preset", "guide_configs", "configs",
           "run_seeds", "sweep_configs", "sweep_name", "chosen_settings", "run_sweep", "planned_runs", "run",
           "guide_records", "describe_models", "preconditions", "main"]

EXPERIMENT = ig.EXPERIMENT
#: (target, condition) of every run of the chapter, in the order of its tables.
RUNS: list[tuple[str, str]] = [
    *[("deep_fcn", c) for c in ("no_guide", "trained_guide", "untrained_guide", "trained_guide_init",
                                "trained_guide_init_long", "small_cnn_guide", "all_images_guide")],
    *[("wide_fcn", c) for c in ("no_guide", "trained_guide", "untrained_guide")],
]
#: The headline runs: these get the profile's ``headline_seeds``, the others its ``seeds``.
HEADLINE = [(t, c) for t in ("deep_fcn", "wide_fcn") for c in ("no_guide", "trained_guide", "untrained_guide")]
#: The runs whose learning rate (and, guided, alpha) the sweep chooses; the others take the trained guide's.
SWEPT = HEADLINE
#: Display names of the targets.
TARGET_LABELS = {"deep_fcn": "Deep FCN", "wide_fcn": "Wide FCN"}
#: Each trained-guide condition and the targets whose unguided control its guide must beat.
GUIDE_TARGETS = {"trained_guide": ("deep_fcn", "wide_fcn"), "small_cnn_guide": ("deep_fcn",),
                 "all_images_guide": ("deep_fcn",)}
#: The two trained guide families of the error-consistency study: condition -> the guide's record name.
KAPPA_GUIDES = {"trained_guide": "resnet18-same-images", "small_cnn_guide": "small_cnn-same-images"}


def _guides(width: int, epochs: int, all_width: int, all_epochs: int, all_n: int | None,
            small: dict[str, Any] | None = None, **common: Any) -> dict[str, dict[str, Any]]:
    """The specs of the three guide roles: a ResNet-18 and a small CNN on the targets' images, and a
    ResNet-18 on ``all_n`` training images (None: every one); ``common`` applies to all three."""
    return {"resnet": dict(family="resnet18", label="resnet18-same-images", width=width, epochs=epochs, **common),
            "small_cnn": dict(family="small_cnn", label="small_cnn-same-images", epochs=epochs, **(small or {}),
                              **common),
            "resnet_all": dict(family="resnet18", label="resnet18-every-image", width=all_width, epochs=all_epochs,
                               n_train=all_n, **common)}


_FULL: dict[str, Any] = dict(
    n_train=2000, n_valid=1000, n_test=None, epochs=60, batch_size=128, probe_n=256, optimizer="adam",
    fcn_depth=12, fcn_width=512, fcn_first_width=None, fcn_dropout=0.1, wide_width=1024, wide_depth=3,
    guide_steps=48, guide_steps_long=192, precision="auto", lr=1e-3, alpha=1.0, schedule="step",
    guides=_guides(32, 40, 16, 15, None, n_test_curve=1000),
    sweep_lrs=(3e-3, 1e-3, 3e-4, 1e-4, 3e-5), sweep_alphas=(0.1, 0.3, 1.0), sweep_alpha_lr=1e-3,
    seeds=(0, 1, 2), headline_seeds=(0, 1, 2, 3, 4),
    # chosen by the validation sweep (image_sweeps records; a test holds these equal to what they pick)
    run_settings={"deep_fcn/no_guide": {"lr": 3e-4}, "deep_fcn/trained_guide": {"lr": 3e-4, "alpha": 1.0},
                  "deep_fcn/untrained_guide": {"lr": 3e-4, "alpha": 1.0}, "wide_fcn/no_guide": {"lr": 1e-4},
                  "wide_fcn/trained_guide": {"lr": 3e-5, "alpha": 1.0},
                  "wide_fcn/untrained_guide": {"lr": 1e-4, "alpha": 1.0}},
)
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {**_FULL, "n_train": 512, "n_valid": 256, "n_test": 512, "epochs": 6, "probe_n": 128,
              "fcn_depth": 6, "fcn_width": 64, "wide_width": 256, "guide_steps": 2, "guide_steps_long": 8,
              "guides": _guides(4, 3, 4, 1, 2048, small=dict(channels=(8, 16, 32), hidden=64)),
              "sweep_lrs": (1e-3, 3e-4), "sweep_alphas": (1.0,), "seeds": (0, 1), "headline_seeds": (0, 1),
              "run_settings": {}},
    "full": _FULL,
    "paper": {**_FULL, "n_train": None, "n_valid": 10000, "epochs": 100, "batch_size": 256,
              "fcn_depth": 48, "fcn_width": 1024, "fcn_first_width": 2048, "wide_width": 8192,
              "guide_steps": 300, "guide_steps_long": 3000,
              "guides": _guides(64, 100, 64, 100, None),
              "seeds": (0, 1, 2, 3, 4), "headline_seeds": (0, 1, 2, 3, 4), "run_settings": {}},
}
#: A tiny slice of any profile, for testing that its code paths run.
SMOKE = dict(n_train=128, n_valid=32, n_test=64, epochs=1, guide_steps=1, guide_steps_long=2, probe_n=32,
             fcn_depth=3, fcn_width=16, wide_width=32, sweep_lrs=(1e-3,), sweep_alphas=(1.0,),
             guides=_guides(4, 1, 4, 1, 256, small=dict(channels=(4, 8), hidden=16)))


CHAPTER = ImageChapter("untrainable.experiments.fcn_guidance", RUNS, HEADLINE, SWEPT, PRESETS, SMOKE)
preset = CHAPTER.preset
guide_configs = CHAPTER.guide_configs
configs = CHAPTER.configs
run_seeds = CHAPTER.run_seeds
sweep_configs = CHAPTER.sweep_configs
chosen_settings = CHAPTER.chosen_settings
run_sweep = CHAPTER.run_sweep
planned_runs = CHAPTER.planned_runs
run = CHAPTER.run
guide_records = CHAPTER.guide_records
describe_models = CHAPTER.describe_models
main = CHAPTER.main


def preconditions(records: list[dict[str, Any]], guides: dict[str, dict[str, Any]],
                  metric: str = "checkpoint_test_acc") -> list[CheckedPrecondition]:
    """What the chapter's claims need from its records, checked: each unguided FCN overfits (the failure
    guidance is to cure), and each trained guide beats each unguided target it guides on ``metric``
    (by more than the seed spread), so that it has something to give."""
    control = {t: [r for r in records if r["name"] == f"{t}-no_guide"] for t in ("deep_fcn", "wide_fcn")}
    checks = [overfits(control[t], f"the unguided {label}") for t, label in TARGET_LABELS.items()]
    for condition, targets in GUIDE_TARGETS.items():
        guide = guides.get(_guide_of(records, condition))
        for t in targets:
            checks.append(guide_beats_target(scored_as([guide] if guide else [], metric), control[t],
                                             f"the {ig.CONDITION_LABELS[condition]}", metric))
            checks[-1] = dataclasses.replace(checks[-1], name=f"{checks[-1].name} ({TARGET_LABELS[t]})")
    return checks


def _guide_of(records: list[dict[str, Any]], condition: str) -> str | None:
    """The record name of the trained guide the runs of ``condition`` followed (None without such runs)."""
    guide = next((r["config"]["guide"] for r in records if r["config"]["condition"] == condition), None)
    return None if guide is None else guide.get("label") or guide["family"]


if __name__ == "__main__":
    main()
