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
images (never the test split), by a sweep stored as records of its own (:data:`SWEEP_EXPERIMENT`,
seed :data:`SWEEP_SEED`, which no reported run uses): for each guided condition alpha at the
control's learning rate, then for every swept condition the learning rate from five values, each
by the lowest validation loss. The chosen values are written into the preset (``run_settings``);
:func:`chosen_settings` recomputes them from the sweep's records, and a test holds the two equal.
Conditions that are not swept take the trained-guide condition's values. The shared machinery
(config, one target run) is :mod:`.image_guidance`, the guides :mod:`.image_guides`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from untrainable.analysis.preconditions import CheckedPrecondition, guide_beats_target, overfits
from untrainable.experiments import PlannedRun
from untrainable.experiments import image_guidance as ig
from untrainable.experiments.image_guides import GuideConfig, scored_as
from untrainable.profiles import check_profile, default_seeds

__all__ = ["EXPERIMENT", "SWEEP_EXPERIMENT", "SWEEP_SEED", "PRESETS", "RUNS", "HEADLINE", "SWEPT", "KAPPA_GUIDES", "preset",
           "guide_configs", "configs", "run_seeds", "sweep_configs", "sweep_name", "chosen_settings", "planned_runs", "preconditions", "TARGET_LABELS", "GUIDE_TARGETS",
           "run", "run_sweep", "guide_records", "describe_models"]

EXPERIMENT = ig.EXPERIMENT
SWEEP_EXPERIMENT = "image_sweeps"
#: The seed of every sweep run: no reported run uses it, so the choice does not favour a reported seed.
SWEEP_SEED = 100
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

_PRACTITIONER = dict(optimizer="sgd", schedule="cosine", lr=0.05, weight_decay=5e-4, augment=True,
                     best_by="valid_acc", batch_size=128, precision="auto")
_FULL: dict[str, Any] = dict(
    n_train=2000, n_valid=1000, n_test=None, epochs=60, batch_size=128, probe_n=256, optimizer="adam",
    fcn_depth=12, fcn_width=512, fcn_first_width=None, fcn_dropout=0.1, wide_width=1024, wide_depth=3,
    guide_steps=48, guide_steps_long=192, precision="auto", lr=1e-3, alpha=1.0, schedule="step",
    guides={"resnet": dict(family="resnet18", label="resnet18-same-images", width=32, epochs=40, n_test_curve=1000),
            "small_cnn": dict(family="small_cnn", label="small_cnn-same-images", epochs=40, n_test_curve=1000),
            "resnet_all": dict(family="resnet18", label="resnet18-every-image", width=16, epochs=15, n_train=None,
                               n_test_curve=1000)},
    sweep_lrs=(3e-3, 1e-3, 3e-4, 1e-4, 3e-5), sweep_alphas=(0.1, 0.3, 1.0), sweep_alpha_lr=1e-3,
    seeds=(0, 1, 2), headline_seeds=(0, 1, 2, 3, 4),
    run_settings={},
)
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {**_FULL, "n_train": 512, "n_valid": 256, "n_test": 512, "epochs": 6, "probe_n": 128,
              "fcn_depth": 6, "fcn_width": 64, "wide_width": 256, "guide_steps": 2, "guide_steps_long": 8,
              "guides": {"resnet": dict(family="resnet18", label="resnet18-same-images", width=4, epochs=3),
                         "small_cnn": dict(family="small_cnn", label="small_cnn-same-images", channels=(8, 16, 32),
                                           hidden=64, epochs=3),
                         "resnet_all": dict(family="resnet18", label="resnet18-every-image", width=4, epochs=1,
                                            n_train=2048)},
              "sweep_lrs": (1e-3, 3e-4), "sweep_alphas": (1.0,), "seeds": (0, 1), "headline_seeds": (0, 1)},
    "full": _FULL,
    "paper": {**_FULL, "n_train": None, "n_valid": 10000, "epochs": 100, "batch_size": 256,
              "fcn_depth": 48, "fcn_width": 1024, "fcn_first_width": 2048, "wide_width": 8192,
              "guide_steps": 300, "guide_steps_long": 3000,
              "guides": {"resnet": dict(family="resnet18", label="resnet18-same-images", width=64, epochs=100),
                         "small_cnn": dict(family="small_cnn", label="small_cnn-same-images", epochs=100),
                         "resnet_all": dict(family="resnet18", label="resnet18-every-image", width=64, epochs=100,
                                            n_train=None)},
              "seeds": (0, 1, 2, 3, 4), "headline_seeds": (0, 1, 2, 3, 4)},
}
#: A tiny slice of any profile, for testing that its code paths run.
SMOKE = dict(n_train=128, n_valid=32, n_test=64, epochs=1, guide_steps=1, guide_steps_long=2, probe_n=32,
             fcn_depth=3, fcn_width=16, wide_width=32, sweep_lrs=(1e-3,), sweep_alphas=(1.0,),
             guides={"resnet": dict(family="resnet18", label="resnet18-same-images", width=4, epochs=1),
                     "small_cnn": dict(family="small_cnn", label="small_cnn-same-images", channels=(4, 8),
                                       hidden=16, epochs=1),
                     "resnet_all": dict(family="resnet18", label="resnet18-every-image", width=4, epochs=1,
                                        n_train=256)})


def preset(profile: str, smoke: bool = False, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The preset of ``profile`` (shrunk by :data:`SMOKE` when ``smoke``), with ``overrides`` applied."""
    p = dict(PRESETS[check_profile(profile)])
    if smoke:
        p.update(SMOKE)
    p.update(overrides or {})
    return p


def guide_configs(p: dict[str, Any]) -> dict[str, GuideConfig]:
    """The chapter's guides by role, trained as a practitioner would (:data:`_PRACTITIONER`) on the
    targets' training images and validation split (``resnet_all``: on every training image)."""
    common = dict(_PRACTITIONER, n_train=p["n_train"], n_valid=p["n_valid"], n_test=p["n_test"],
                  precision=p["precision"], batch_size=min(_PRACTITIONER["batch_size"], p["batch_size"]),
                  **{k: p[k] for k in ("dataset", "image_size", "num_classes", "data_seed") if k in p})
    return {role: GuideConfig(**{**common, **spec}) for role, spec in p["guides"].items()}


def _target_configs(p: dict[str, Any], runs: Iterable[tuple[str, str]]) -> list[ig.Config]:
    """The configs of ``runs``; an unswept condition takes the trained-guide condition's settings."""
    settings = dict(p["run_settings"])
    for target, condition in runs:
        if (target, condition) not in SWEPT:
            settings.setdefault(f"{target}/{condition}", settings.get(f"{target}/trained_guide", {}))
    return ig.target_configs({**p, "run_settings": settings}, runs, guide_configs(p), p["epochs"])


def configs(profile: str, smoke: bool = False, **overrides: Any) -> list[ig.Config]:
    """The chapter's runs in ``profile`` (``smoke``: a tiny slice; ``overrides`` replace preset values)."""
    return _target_configs(preset(profile, smoke, overrides), RUNS)


def run_seeds(profile: str, c: ig.Config, seeds: Iterable[int] | None = None) -> tuple[int, ...]:
    """The seeds of run ``c``: ``seeds`` when given, else the preset's (headline runs get more)."""
    if seeds is not None:
        return tuple(seeds)
    p = PRESETS[check_profile(profile)]
    return tuple(p["headline_seeds"] if (c.target, c.condition) in HEADLINE else p["seeds"])


# ----------------------------------------------------------------------------- the validation sweep


def sweep_name(c: ig.Config) -> str:
    """A sweep run's record name: target, condition, learning rate and (guided) alpha."""
    alpha = "" if c.guide is None else f"-a{c.alpha:g}"
    return f"{c.target}-{c.condition}-lr{c.lr:g}{alpha}"


def sweep_configs(profile: str, smoke: bool = False, **overrides: Any) -> list[ig.Config]:
    """Every sweep run: alpha at ``sweep_alpha_lr`` for each swept guided condition, then the learning
    rates at the alpha chosen in ``run_settings`` (or the preset's alpha before one is chosen)."""
    p = preset(profile, smoke, overrides)
    out: list[ig.Config] = []
    for target, condition in SWEPT:
        chosen = p["run_settings"].get(f"{target}/{condition}", {})
        guided = ig.CONDITIONS[condition][0] is not None
        if guided:
            out += [_one(p, target, condition, lr=p["sweep_alpha_lr"], alpha=a) for a in p["sweep_alphas"]]
        alpha = chosen.get("alpha", p["alpha"]) if guided else p["alpha"]
        out += [_one(p, target, condition, lr=lr, alpha=alpha) for lr in p["sweep_lrs"]]
    return list(dict.fromkeys(out))


def _one(p: dict[str, Any], target: str, condition: str, **values: Any) -> ig.Config:
    return _target_configs({**p, "run_settings": {f"{target}/{condition}": values}}, [(target, condition)])[0]


def _best(records: list[dict[str, Any]], field: str) -> Any:
    """The ``field`` value of the record with the lowest validation loss."""
    return min(records, key=lambda r: r["metrics"]["min_valid_loss"])["config"][field]


def chosen_settings(profile: str, records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``"target/condition" -> {"lr", "alpha"}`` chosen from the sweep's ``records``, as the chapter
    chooses: alpha by the lowest validation loss at ``sweep_alpha_lr``, then the learning rate by the
    lowest validation loss at that alpha (unguided runs: the learning rate only)."""
    p = PRESETS[check_profile(profile)]
    out = {}
    for target, condition in SWEPT:
        mine = [r for r in records if r["config"]["target"] == target and r["config"]["condition"] == condition]
        guided = ig.CONDITIONS[condition][0] is not None
        alpha = p["alpha"]
        if guided:
            at_lr = [r for r in mine if r["config"]["lr"] == p["sweep_alpha_lr"] and
                     r["config"]["alpha"] in p["sweep_alphas"]]
            alpha = _best(at_lr, "alpha") if at_lr else alpha
        at_alpha = [r for r in mine if r["config"]["alpha"] == alpha and r["config"]["lr"] in p["sweep_lrs"]]
        if at_alpha:
            out[f"{target}/{condition}"] = {"lr": _best(at_alpha, "lr"), **({"alpha": alpha} if guided else {})}
    return out


def run_sweep(profile: str = "quick", device: str = "auto", force: bool = False, *,
              train_missing: bool | None = None, smoke: bool = False, **overrides: Any) -> list[dict[str, Any]]:
    """The record of every sweep run (seed :data:`SWEEP_SEED`): stored ones loaded, missing ones trained."""
    return ig.run_targets(profile, sweep_configs(profile, smoke, **overrides), (SWEEP_SEED,), device, force,
                          train_missing, experiment=SWEEP_EXPERIMENT, name=sweep_name)


# ----------------------------------------------------------------------------- the chapter's runs


def planned_runs(profile: str, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """Every record the chapter needs in ``profile``: its trained guides, the sweep, then the target runs."""
    cfgs = configs(profile)
    guides = [r for r in ig.planned_runs(cfgs, ()) if r.experiment != EXPERIMENT]
    sweep = [PlannedRun(SWEEP_EXPERIMENT, sweep_name(c), c, SWEEP_SEED) for c in sweep_configs(profile)]
    targets = [PlannedRun(EXPERIMENT, ig.run_name(c), c, s) for c in cfgs for s in run_seeds(profile, c, seeds)]
    return guides + sweep + targets


def run(profile: str = "quick", seeds: Iterable[int] | None = None, device: str = "auto", force: bool = False, *,
        train_missing: bool | None = None, smoke: bool = False, **overrides: Any) -> list[dict[str, Any]]:
    """The record of every run for every seed (:func:`run_seeds`): stored ones loaded, missing ones
    trained (see :func:`untrainable.results.run_or_load` for when a missing ``full`` record may train)."""
    records = []
    for c in configs(profile, smoke, **overrides):
        records += ig.run_targets(profile, [c], run_seeds(profile, c, seeds), device, force, train_missing)
    return records


def preconditions(records: list[dict[str, Any]], guides: dict[str, dict[str, Any]],
                  metric: str = "checkpoint_test_acc") -> list[CheckedPrecondition]:
    """What the chapter's claims need from its records, checked: each unguided FCN overfits (the failure
    guidance is to cure), and each trained guide beats each unguided target it guides on ``metric``
    (by more than the seed spread), so that it has something to give."""
    control = {t: [r for r in records if r["name"] == f"{t}-no_guide"] for t in ("deep_fcn", "wide_fcn")}
    checks = [overfits(control[t], f"the unguided {label}") for t, label in TARGET_LABELS.items()]
    for condition, targets in GUIDE_TARGETS.items():
        guide = next((g for g in guides.values() if _guides_condition(records, g, condition)), None)
        for t in targets:
            checks.append(guide_beats_target(scored_as([guide] if guide else [], metric), control[t],
                                             f"the {ig.CONDITION_LABELS[condition]}", metric))
            checks[-1] = dataclasses.replace(checks[-1], name=f"{checks[-1].name} ({TARGET_LABELS[t]})")
    return checks


def _guides_condition(records: list[dict[str, Any]], guide: dict[str, Any], condition: str) -> bool:
    """Is ``guide`` the trained guide of ``condition`` in these records?"""
    return any(r["config"]["condition"] == condition and r["config"]["guide"] == guide["config"] for r in records)


def guide_records(profile: str, device: str = "auto", train_missing: bool | None = None, smoke: bool = False,
                  **overrides: Any) -> dict[str, dict[str, Any]]:
    """The records of the chapter's trained guides, keyed by record name."""
    return ig.guide_records(profile, configs(profile, smoke, **overrides), device, train_missing)


def describe_models(profile: str) -> list[dict[str, Any]]:
    """Each target and guide of the chapter: parameters and the number of recorded layers."""
    return ig.describe_models(configs(profile))



# ----------------------------------------------------------------------------- from a shell

STAGES = ("guides", "alpha", "lr", "runs")


def _stage_configs(profile: str, stage: str) -> list[ig.Config]:
    """The configs a shell stage trains: the alpha sweep, the learning-rate sweep or the chapter's runs."""
    p = PRESETS[profile]
    if stage == "runs":
        return configs(profile)
    sweep = sweep_configs(profile)
    if stage == "alpha":
        return [c for c in sweep if c.guide is not None and c.lr == p["sweep_alpha_lr"]]
    return [c for c in sweep if c.lr in p["sweep_lrs"] and (c.guide is None or c.alpha == p["run_settings"].get(
        f"{c.target}/{c.condition}", {}).get("alpha", p["alpha"]))]


def main(argv: list[str] | None = None) -> None:
    """Train the chapter's records from a shell, one stage at a time (missing records are trained).

    Stages: ``guides`` (the trained guides), ``alpha`` and ``lr`` (the validation sweep), ``runs``
    (the chapter's runs). ``--runs deep_fcn/trained_guide ...`` trains only those (target, condition)
    pairs, so a stage can be split over parallel one-thread processes; an interrupted run resumes.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m untrainable.experiments.fcn_guidance", description=main.__doc__)
    parser.add_argument("--profile", default="full")
    parser.add_argument("--stage", choices=STAGES, required=True)
    parser.add_argument("--runs", nargs="*", help="target/condition pairs (default: all of the stage)")
    parser.add_argument("--seeds", type=int, nargs="*", help="default: the preset's (headline runs get more)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    cfgs = [c for c in _stage_configs(args.profile, "runs" if args.stage == "guides" else args.stage)
            if not args.runs or f"{c.target}/{c.condition}" in args.runs]
    if not cfgs:
        parser.error(f"no {args.stage} runs match {args.runs}: name target/condition pairs of {RUNS}")
    if args.stage == "guides":  # the trained guides the named runs need
        ig.guide_records(args.profile, cfgs, args.device, train_missing=True)
        return
    for c in cfgs:
        if args.stage == "runs":
            ig.run_targets(args.profile, [c], run_seeds(args.profile, c, args.seeds), args.device, False, True)
        else:
            ig.run_targets(args.profile, [c], (SWEEP_SEED,), args.device, False, True, experiment=SWEEP_EXPERIMENT,
                           name=sweep_name)


if __name__ == "__main__":
    main()
