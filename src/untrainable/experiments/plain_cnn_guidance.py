"""Chapter 05: guiding a plain deep ConvNet (Subramaniam et al., 2024, the ImageNet table).

The target is a ResNet stack with every skip connection removed; its guide is its **residual twin**,
the same layout with its skips, as the paper's ResNet-50 guide is to its plain ResNet-50. The
regime is the one the pilots of appendix 92 chose from the two nets trained alone
(:mod:`.pilot_regimes`): 34 layers (3, 4, 6, 3 basic blocks, first stage 16 channels), 5,000
CIFAR-10 training images with random crop and flip, 60 epochs with the authors' step schedule,
where the plain net trains to a plateau and falls well short of its twin (47.7 vs 64.3 % in the
pilots).

The plain net is trained with no guide, with its trained twin and with an untrained twin
(randomly initialised, frozen). Because the targets see new crops every step, the guide runs on
them online (no Gram bank), and the CKA of its wide conv maps takes bf16 Gram products
(``gram_precision``, where the CPU multiplies bf16 natively). Training, validation and the reported
estimate are chapter 04's (:mod:`.fcn_guidance`): Adam, the learning rate x0.1 after each 30 % of
training, the test accuracy at the epoch of highest validation accuracy (``PRIMARY_RULE``). The learning
rate, 1e-3, is the pilots' (chosen on validation by :data:`.pilot_regimes.SELECTION`); alpha is chosen
on the validation split by a sweep of the trained-guide condition (:mod:`.image_chapter`), which the
untrained-guide condition follows. One target run is :mod:`.image_guidance`, the guide
:mod:`.image_guides`.

:func:`first_regime_configs` keeps the chapter's earlier, smaller configs: the precision
benchmarks of appendix 91 measured their plain ConvNet there.
"""

from __future__ import annotations

from typing import Any

from untrainable.analysis.estimates import PRIMARY_RULE, Rule, estimate_key, estimated
from untrainable.analysis.preconditions import CheckedPrecondition, falls_short_of_twin, guide_beats_target
from untrainable.experiments import image_guidance as ig
from untrainable.experiments.image_chapter import SWEEP_EXPERIMENT, SWEEP_SEED, ImageChapter, sweep_name
from untrainable.experiments.image_guides import scored_as
from untrainable.experiments.image_presets import FIRST_REGIME, GuideSpec, ImagePreset, PlainSizes, Run, RunSettings
from untrainable.experiments.image_presets import target_configs as preset_configs
from untrainable.profiles import check_profile, preset_table, replace_preset

__all__ = ["EXPERIMENT", "SWEEP_EXPERIMENT", "SWEEP_SEED", "NAME", "PRESETS", "smoke", "RUNS", "HEADLINE", "SWEPT",
           "CONDITION_LABELS", "TWIN", "CHAPTER", "preset", "guide_configs", "configs", "run_seeds", "sweep_configs",
           "sweep_name", "chosen_settings", "run_sweep", "planned_runs", "run", "guide_records", "describe_models",
           "preconditions", "first_regime_configs", "regime_text", "main"]

EXPERIMENT = ig.EXPERIMENT
#: (target, condition) of every run of the chapter.
RUNS: list[Run] = [Run("plain_cnn", c) for c in ("no_guide", "trained_guide", "untrained_guide")]
#: Five seeds for the control and the trained twin (the claim); three for the untrained twin, whose runs,
#: like every guided run here, cost about 37 one-thread minutes (the online guide and 34 CKA pairs of conv
#: maps, their Gram products in bf16), an unguided one about 23.
HEADLINE = RUNS[:2]
#: alpha is swept for the trained twin; the untrained twin takes its values, the control the pilots' lr.
SWEPT = [Run("plain_cnn", "trained_guide")]
CONDITION_LABELS = {"no_guide": "no guide", "trained_guide": "trained residual twin",
                    "untrained_guide": "untrained residual twin"}
#: The record name of the trained twin (the guide role ``"resnet"`` of :mod:`.image_guidance`).
TWIN = "residual-twin-same-images"


NAME = "untrainable.experiments.plain_cnn_guidance"


def _twin(epochs: int, n_test_curve: int | None = None) -> dict[str, GuideSpec]:
    """The guide spec: the residual twin (its layout is the plain net's, :mod:`.image_presets` sees to
    that), trained on the plain net's images."""
    return {"resnet": GuideSpec("residual_twin", epochs, label=TWIN, n_test_curve=n_test_curve)}


_FULL = ImagePreset(
    n_train=5000, n_valid=1000, n_test=None, epochs=60, batch_size=128, probe_n=256,
    plain=PlainSizes((3, 4, 6, 3), 16), augment=True, guide_bank="none", precision="bf16", gram_precision="bf16",
    schedule="step", guides=_twin(40, n_test_curve=1000),
    sweep_lrs=(1e-3,), sweep_alphas=(0.3, 1.0), sweep_alpha_lr=1e-3, headline_seeds=(0, 1, 2, 3, 4),
    # no_guide: the pilots' learning rate; trained_guide: chosen by the validation sweep (a test holds it)
    run_settings={Run("plain_cnn", "no_guide"): RunSettings(1e-3),
                  Run("plain_cnn", "trained_guide"): RunSettings(1e-3, 1.0)},
)
PRESETS: dict[str, ImagePreset] = preset_table(NAME, {
    "quick": replace_preset(NAME, _FULL, n_train=512, n_valid=256, n_test=512, epochs=3, probe_n=128,
                            precision="auto", gram_precision="auto",
                            plain=PlainSizes((1, 1, 1, 1), 8), guides=_twin(2), sweep_alphas=(1.0,),
                            headline_seeds=None),
    "full": _FULL,
    "paper": replace_preset(NAME, _FULL, n_train=None, n_valid=10000, epochs=100, batch_size=256,
                            precision="auto", gram_precision="auto", plain=PlainSizes((3, 4, 6, 3), 64, "bottleneck"),
                            guides=_twin(100),
                            sweep_lrs=(3e-3, 1e-3, 3e-4), sweep_alphas=(0.1, 0.3, 1.0), headline_seeds=None,
                            run_settings={Run("plain_cnn", "no_guide"): RunSettings(1e-3)}),
})


def smoke(p: ImagePreset) -> ImagePreset:
    """A tiny slice of any profile's preset, for testing that its code paths run."""
    return replace_preset(NAME, p, n_train=128, n_valid=32, n_test=64, epochs=1, probe_n=32,
                          plain=replace_preset(NAME, p.plain, plain_layers=(1, 1, 1, 1), plain_width=4),
                          sweep_lrs=(1e-3,), sweep_alphas=(1.0,), guides=_twin(1))


CHAPTER = ImageChapter(NAME, RUNS, HEADLINE, SWEPT, PRESETS, smoke)
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
                  rule: Rule = PRIMARY_RULE) -> list[CheckedPrecondition]:
    """What the chapter's claim needs from its records, checked at the book's estimate (test accuracy at
    ``rule``'s epoch; the twin at its kept checkpoint): the unguided plain net trains to a plateau and falls
    short of its trained residual twin by more than its seed spread (the failure guidance is to cure), so the
    twin, its guide, has something to give."""
    metric = estimate_key("test_acc", rule)
    control = estimated([r for r in records if r["name"] == "plain_cnn-no_guide"], "test_acc", rule)
    twin = scored_as([guides[TWIN]] if TWIN in guides else [], metric)
    return [falls_short_of_twin(control, twin, "the unguided plain ConvNet", metric),
            guide_beats_target(twin, control, "the trained residual twin", metric)]


#: The ResNet whose layout a plain stack copies, by (blocks per stage, block kind).
LAYOUTS = {((3, 4, 6, 3), "basic"): "ResNet-34", ((3, 4, 6, 3), "bottleneck"): "ResNet-50",
           ((2, 2, 2, 2), "basic"): "ResNet-18"}


def regime_text(profile: str) -> str:
    """The chapter's regime in words (Markdown), from the profile's trained-guide config: target, data,
    training and guide, so the page states what ran rather than what was meant to."""
    c = next(c for c in configs(profile) if c.condition == "trained_guide")
    g = c.guide
    n_train, n_test = c.n_train or 50_000, c.n_test or 10_000
    layers = sum(c.plain_layers) * {"basic": 2, "bottleneck": 3}[c.plain_block] + 2
    layout = LAYOUTS.get((tuple(c.plain_layers), c.plain_block), "a reduced ResNet")
    augment = "(as practitioners train ConvNets)" if c.augment else "(none)"
    return f"""
Profile **{profile}**:

* **target**: a plain stack of {c.plain_block} blocks, {tuple(c.plain_layers)} per stage (the layout of {layout}
  without its shortcuts: {layers} weight layers), first-stage width {c.plain_width}.
* **data**: {n_train:,} CIFAR-10 training images (class-balanced), a validation split of {c.n_valid:,} other
  training images, {n_test:,} test images; random crop (padding 4) and flip on every batch {augment};
  batches of {c.batch_size}: {-(-n_train // c.batch_size)} steps per epoch, {c.epochs} epochs.
* **training**: Adam at {c.lr:g}, the rate divided by ten after each 30 % of training, the checkpoint of lowest
  validation loss reported; guidance by linear CKA, alpha = {c.alpha:g}, the guide run on each batch as the
  target sees it (the crops differ every step, so no bank of the guide's side can be precomputed).
* **guide**: the {g.family.replace("_", " ")} (the same layout with its skips), trained on the same {g.n_train or 50_000:,}
  images as a practitioner would: crop and flip, SGD with a cosine schedule, {g.epochs} epochs, the
  best-validation checkpoint kept. The untrained guide is the same network at a random initialisation, one per seed.
"""


def first_regime_configs(profile: str) -> list[ig.Config]:
    """The chapter's configs before its pilots (width 8, 2,000 images, 10 epochs, a ResNet-18 guide; the
    paper profile a ResNet-50 and bottleneck blocks): the precision benchmarks of appendix 91 were
    measured on this plain ConvNet."""
    p = FIRST_REGIME[check_profile(profile)]
    if profile == "full":
        p = replace_preset(NAME, p, n_train=2000, epochs=10)
    if profile == "paper":
        guides = {"resnet": replace_preset(NAME, p.guides["resnet"], family="resnet50")}
        p = replace_preset(NAME, p, plain=replace_preset(NAME, p.plain, plain_block="bottleneck"), guides=guides)
    return preset_configs(p, RUNS)


if __name__ == "__main__":
    main()
