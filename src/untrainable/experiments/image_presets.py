"""The typed presets of chapters 04 and 05, and how a preset becomes the configs of their runs.

An :class:`ImagePreset` says what a chapter sets in one profile; every field that mirrors a field of
:class:`~.image_guidance.Config` (or, in a :class:`GuideSpec`, of :class:`~.image_guides.GuideConfig`)
is either required or defaults to None, "the config's default", so each default lives in one place:
the config's field. A field of the preset that the config lacks is a ``TypeError`` when the config is
built, never a value dropped in silence. Per-run values chosen on validation are a
``{Run: RunSettings}`` map.

:data:`FIRST_REGIME` is the preset the two chapters shared before their pilots (appendix 92): the
precision benchmarks of appendix 91 were measured on its Deep FCN and plain ConvNet, and the keys of
their records hold its values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from untrainable.experiments.image_guidance import CONDITIONS, Config
from untrainable.experiments.image_guides import GuideConfig
from untrainable.profiles import PresetError, preset_table

__all__ = ["Run", "RunSettings", "GuideSpec", "FcnSizes", "PlainSizes", "ImagePreset", "PRACTITIONER",
           "FIRST_REGIME", "given", "config_default", "guide_configs", "target_configs"]


class Run(NamedTuple):
    """One run of a chapter: a target under a condition (a key of :data:`~.image_guidance.CONDITIONS`)."""

    target: str
    condition: str

    def __str__(self) -> str:
        return f"{self.target}/{self.condition}"


@dataclass(frozen=True)
class RunSettings:
    """What the validation sweep chose for one run: its learning rate and, guided, its alpha (None: unguided,
    the preset's alpha)."""

    lr: float
    alpha: float | None = None

    def as_dict(self) -> dict[str, float]:
        """``{"lr", "alpha"}`` (no alpha where none was chosen), as :func:`untrainable.analysis.sweep_table`
        reads it."""
        return {"lr": self.lr} if self.alpha is None else {"lr": self.lr, "alpha": self.alpha}


#: How every guide of chapters 04 and 05 is trained unless its spec says otherwise (``practitioner``):
#: random crop and flip, SGD with a cosine schedule, the best-validation checkpoint.
PRACTITIONER: dict[str, Any] = dict(optimizer="sgd", schedule="cosine", lr=0.05, weight_decay=5e-4, augment=True,
                                    best_by="valid_acc", batch_size=128, precision="auto")


@dataclass(frozen=True)
class GuideSpec:
    """One guide role of a chapter. None: the :class:`~.image_guides.GuideConfig` default (``practitioner``:
    :data:`PRACTITIONER`'s). ``n_train``: ``"targets"`` (the targets' training images), a number, or None
    (every training image). ``practitioner=False`` trains with the config's own defaults (the first regime)."""

    family: str
    epochs: int
    label: str | None = None
    width: int | None = None
    channels: tuple[int, ...] | None = None
    hidden: int | None = None
    n_train: int | None | Literal["targets"] = "targets"
    n_test_curve: int | None = None
    practitioner: bool = True


@dataclass(frozen=True)
class FcnSizes:
    """The FCN targets' sizes (the config's ``fcn_*`` and ``wide_*`` fields). ``fcn_first_width`` is
    required: None is a size there (no wider first layer)."""

    fcn_depth: int
    fcn_width: int
    fcn_first_width: int | None
    wide_width: int
    fcn_dropout: float | None = None
    wide_depth: int | None = None


@dataclass(frozen=True)
class PlainSizes:
    """The plain ConvNet's layout (the config's ``plain_*`` fields); a residual twin guide copies it."""

    plain_layers: tuple[int, ...]
    plain_width: int
    plain_block: str | None = None


@dataclass(frozen=True, kw_only=True)
class ImagePreset:
    """What a chapter sets in one profile. The fields after ``run_settings`` mirror config fields of the
    same name: required, or None for the config's default; ``fcn``/``plain`` hold the targets' sizes (None:
    the config's). ``guide_steps``/``guide_steps_long``: the steps of the first-steps-only conditions;
    ``seeds`` None: the profile's default seeds; ``headline_seeds`` None: ``seeds``; ``run_seeds``: the runs
    whose seeds are their own."""

    # what the chapter does with its runs (not config fields)
    guides: Mapping[str, GuideSpec]
    seeds: tuple[int, ...] | None = None
    headline_seeds: tuple[int, ...] | None = None
    sweep_lrs: tuple[float, ...] = ()
    sweep_alphas: tuple[float, ...] = ()
    sweep_alpha_lr: float | None = None
    guide_steps: int | None = None
    guide_steps_long: int | None = None
    fcn: FcnSizes | None = None
    plain: PlainSizes | None = None
    run_settings: Mapping[Run, RunSettings] = field(default_factory=dict)
    #: runs that need other seeds than their class's (the error-consistency study's disjoint pairs)
    run_seeds: Mapping[Run, tuple[int, ...]] = field(default_factory=dict)
    # config fields
    n_train: int | None
    n_valid: int
    n_test: int | None
    epochs: int
    batch_size: int
    probe_n: int
    lr: float | None = None
    alpha: float | None = None
    schedule: str | None = None
    optimizer: str | None = None
    weight_decay: float | None = None
    precision: str | None = None
    gram_precision: str | None = None
    augment: bool | None = None
    guide_bank: str | None = None
    distance: str | None = None
    dataset: str | None = None
    image_size: int | None = None
    num_classes: int | None = None
    data_seed: int | None = None


#: The fields of :class:`ImagePreset` that are not config fields.
_CHAPTER_FIELDS = ("guides", "seeds", "headline_seeds", "sweep_lrs", "sweep_alphas", "sweep_alpha_lr", "guide_steps",
                   "guide_steps_long", "fcn", "plain", "run_settings", "run_seeds")


def given(obj: Any, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The fields of ``obj`` (a preset or spec) to pass to a config: each required one, and each optional
    one that is set (None: leave the config's default)."""
    skip = set(exclude)
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)
            if f.name not in skip and (f.default is dataclasses.MISSING or getattr(obj, f.name) is not None)}


def config_default(name: str) -> Any:
    """The default of :class:`~.image_guidance.Config`'s field ``name``: the one place it is set."""
    return next(f.default for f in dataclasses.fields(Config) if f.name == name)


def _common(p: ImagePreset) -> dict[str, Any]:
    """What every guide of a preset shares with its targets: their images (and precision, when set)."""
    shared = ("n_train", "n_valid", "n_test", "precision", "dataset", "image_size", "num_classes", "data_seed")
    return {k: v for k, v in given(p).items() if k in shared}


def _guide_config(p: ImagePreset, spec: GuideSpec) -> GuideConfig:
    """One guide role's config: :data:`PRACTITIONER` (when the spec asks), the targets' images, the spec's
    values; a residual twin takes its plain net's layout, so the comparison is the skips alone."""
    values = dict(PRACTITIONER, batch_size=min(PRACTITIONER["batch_size"], p.batch_size)) if spec.practitioner else {}
    values.update(_common(p), **given(spec, ("n_train", "practitioner")))
    if spec.n_train != "targets":
        values["n_train"] = spec.n_train
    if spec.family == "residual_twin":
        if p.plain is None:
            raise PresetError("a residual twin guide copies its plain net's layout: the preset needs plain sizes")
        values.update(layers=tuple(p.plain.plain_layers), width=p.plain.plain_width,
                      block=p.plain.plain_block or config_default("plain_block"))
    return GuideConfig(**values)


def guide_configs(p: ImagePreset) -> dict[str, GuideConfig]:
    """The guides of preset ``p`` by role (the roles of :data:`~.image_guidance.CONDITIONS`)."""
    return {role: _guide_config(p, spec) for role, spec in p.guides.items()}


def target_configs(p: ImagePreset, runs: Iterable[tuple[str, str]],
                   settings: Mapping[Run, RunSettings] | None = None) -> list[Config]:
    """One config per (target, condition) of ``runs``, sized by preset ``p``, probed against its ``"resnet"``
    guide; ``settings`` (default: the preset's ``run_settings``) holds the values chosen for a run alone."""
    settings = p.run_settings if settings is None else settings
    guides = guide_configs(p)
    base = {**given(p, _CHAPTER_FIELDS), **(given(p.fcn) if p.fcn else {}), **(given(p.plain) if p.plain else {})}
    out = []
    for target, condition in runs:
        role, _, steps = CONDITIONS[condition]
        own = settings.get(Run(target, condition))
        out.append(Config(target=target, condition=condition, guide=guides[role] if role else None,
                          guide_steps=getattr(p, steps) if steps else None, reference_guide=guides["resnet"],
                          **{**base, **(given(own) if own else {})}))
    return out


def _first_guide(width: int, epochs: int, n_train: int | None) -> dict[str, GuideSpec]:
    """The first regime's one guide: a ResNet-18 trained with the config's defaults (no practitioner's recipe)."""
    return {"resnet": GuideSpec("resnet18", epochs, width=width, n_train=n_train, practitioner=False)}


#: The preset chapters 04 and 05 shared before their pilots (no validation split, a 20x256 Deep FCN,
#: a width-8 plain ConvNet, a ResNet-18 guide on more images than its targets'); its runs carry both
#: nets' sizes, as the keys of appendix 91's records do.
FIRST_REGIME: dict[str, ImagePreset] = preset_table("the image chapters' first regime", {
    "quick": ImagePreset(n_train=768, n_valid=0, n_test=500, epochs=3, batch_size=128, probe_n=128,
                         fcn=FcnSizes(8, 64, 128, 256), plain=PlainSizes((1, 1, 1, 1), 8), precision="auto",
                         guides=_first_guide(8, 4, 1000)),
    "full": ImagePreset(n_train=3000, n_valid=0, n_test=2000, epochs=20, batch_size=256, probe_n=256,
                        fcn=FcnSizes(20, 256, 512, 1024), plain=PlainSizes((3, 4, 6, 3), 8),
                        guides=_first_guide(16, 6, 10000)),
    "paper": ImagePreset(n_train=None, n_valid=0, n_test=None, epochs=100, batch_size=256, probe_n=256,
                         fcn=FcnSizes(48, 1024, 2048, 8192), plain=PlainSizes((3, 4, 6, 3), 64), precision="auto",
                         guides=_first_guide(64, 100, None)),
})
