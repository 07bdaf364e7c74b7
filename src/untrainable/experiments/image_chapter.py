"""What chapters 04 and 05 share as chapters: presets, seeds per run, the validation sweep, the shell.

An :class:`ImageChapter` is a chapter's list of (target, condition) runs, which of them are headline
runs (more seeds) and which are swept, and its typed presets (:mod:`.image_presets`); its methods are
the chapter contract of :mod:`untrainable.experiments` (``configs``, ``planned_runs``, ``run``) plus the sweep:

* **the validation sweep** (records of their own, :data:`SWEEP_EXPERIMENT`, seed :data:`SWEEP_SEED`,
  which no reported run uses): for each swept guided condition alpha at ``sweep_alpha_lr``, then for
  every swept condition the learning rate from ``sweep_lrs`` at that alpha, each by the lowest
  validation loss. The values chosen are written into the preset (``run_settings``);
  :meth:`ImageChapter.chosen_settings` recomputes them from the records, and a test holds the two
  equal. A run that is not swept takes its target's trained-guide settings.
* **guides** are trained as a practitioner would (:data:`~.image_presets.PRACTITIONER`: random crop and
  flip, SGD with a cosine schedule, the best-validation checkpoint) on the targets' training images and
  validation split, unless the preset's guide spec says otherwise.

One target run and the guides themselves are :mod:`.image_guidance` and :mod:`.image_guides`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from untrainable.analysis.selection import BOOK_CRITERION, choose
from untrainable.experiments import PlannedRun, shell_parser, shell_seeds
from untrainable.experiments import image_guidance as ig
from untrainable.experiments import image_presets as ip
from untrainable.experiments.image_guides import GuideConfig
from untrainable.experiments.image_presets import ImagePreset, Run, RunSettings
from untrainable.profiles import check_profile, check_seeds, default_seeds, replace_preset

__all__ = ["SWEEP_EXPERIMENT", "SWEEP_SEED", "STAGES", "ImageChapter", "sweep_name"]

SWEEP_EXPERIMENT = "image_sweeps"
#: The seed of every sweep run: no reported run uses it, so the choice does not favour a reported seed.
SWEEP_SEED = 100
#: What a shell run trains, one stage at a time.
STAGES = ("guides", "alpha", "lr", "runs")


def sweep_name(c: ig.Config) -> str:
    """A sweep run's record name: target, condition, learning rate and (guided) alpha."""
    alpha = "" if c.guide is None else f"-a{c.alpha:g}"
    return f"{c.target}-{c.condition}-lr{c.lr:g}{alpha}"


def _best(records: list[dict[str, Any]], field_name: str, criterion: str) -> Any:
    """The ``field_name`` value chosen on validation by ``criterion`` (:func:`untrainable.analysis.selection.choose`)."""
    return choose(records, lambda r: r["config"][field_name], criterion)


def _guided(condition: str) -> bool:
    return ig.CONDITIONS[condition][0] is not None


def _alpha(p: ImagePreset, run: Run | None = None) -> float:
    """The alpha a run is swept and trained at: the one chosen for it, else the preset's, else the config's."""
    chosen = p.run_settings.get(run) if run is not None else None
    if chosen is not None and chosen.alpha is not None:
        return chosen.alpha
    return p.alpha if p.alpha is not None else ip.config_default("alpha")


@dataclass(frozen=True)
class ImageChapter:
    """A guidance chapter on images: its runs, headline and swept runs, presets and smoke slice
    (``smoke``: the preset of any profile shrunk to a tiny run, for testing that its code paths run)."""

    name: str  # the shell's program name, e.g. "untrainable.experiments.fcn_guidance"
    runs: list[Run]
    headline: list[Run]  # these get the preset's ``headline_seeds``, the others its ``seeds``
    swept: list[Run]  # the runs whose learning rate (and, guided, alpha) the sweep chooses
    presets: Mapping[str, ImagePreset]
    smoke: Callable[[ImagePreset], ImagePreset]
    selection: str = BOOK_CRITERION  # how the sweep chooses (analysis.selection)

    def preset(self, profile: str, smoke: bool = False, overrides: Mapping[str, Any] | None = None) -> ImagePreset:
        """The preset of ``profile`` (shrunk by ``self.smoke`` when ``smoke``), with ``overrides`` applied
        (an unknown key is an error naming it and the chapter)."""
        p = self.presets[check_profile(profile)]
        p = self.smoke(p) if smoke else p
        return replace_preset(self.name, p, **overrides) if overrides else p

    def guide_configs(self, p: ImagePreset) -> dict[str, GuideConfig]:
        """The chapter's guides by role (:func:`.image_presets.guide_configs`)."""
        return ip.guide_configs(p)

    def target_configs(self, p: ImagePreset, runs: Iterable[tuple[str, str]]) -> list[ig.Config]:
        """The configs of ``runs``; a run that is not swept takes its target's trained-guide settings."""
        runs = [Run(*r) for r in runs]
        settings = dict(p.run_settings)
        for run in runs:
            trained = settings.get(Run(run.target, "trained_guide"))
            if run not in self.swept and run not in settings and trained is not None:
                settings[run] = trained
        return ip.target_configs(p, runs, settings)

    def configs(self, profile: str, smoke: bool = False, **overrides: Any) -> list[ig.Config]:
        """The chapter's runs in ``profile`` (``smoke``: a tiny slice; ``overrides`` replace preset values)."""
        return self.target_configs(self.preset(profile, smoke, overrides), self.runs)

    def run_seeds(self, profile: str, c: ig.Config, seeds: Iterable[int] | None = None) -> tuple[int, ...]:
        """The seeds of run ``c``: ``seeds`` when given (checked as a set), else the preset's: its ``run_seeds``
        for the run, else the headline runs' or the others'."""
        if seeds is not None:
            return check_seeds(tuple(seeds))
        p = self.presets[check_profile(profile)]
        if (c.target, c.condition) in p.run_seeds:
            return check_seeds(p.run_seeds[Run(c.target, c.condition)])
        own = p.seeds if p.seeds is not None else default_seeds(profile)
        headline = p.headline_seeds if p.headline_seeds is not None else own
        return tuple(headline if (c.target, c.condition) in self.headline else own)

    # ------------------------------------------------------------------------- the validation sweep

    def sweep_configs(self, profile: str, smoke: bool = False, **overrides: Any) -> list[ig.Config]:
        """Every sweep run: alpha at ``sweep_alpha_lr`` for each swept guided condition, then the learning
        rates at the alpha chosen in ``run_settings`` (the preset's alpha before one is chosen)."""
        p = self.preset(profile, smoke, overrides)
        settings: list[tuple[Run, RunSettings]] = []
        for run in self.swept:
            if _guided(run.condition):
                settings += [(run, RunSettings(p.sweep_alpha_lr, a)) for a in p.sweep_alphas]
            settings += [(run, RunSettings(lr, _alpha(p, run))) for lr in p.sweep_lrs]
        return list(dict.fromkeys(ip.target_configs(p, [run], {run: s})[0] for run, s in settings))

    def chosen_settings(self, profile: str, records: list[dict[str, Any]],
                        criterion: str | None = None) -> dict[Run, RunSettings]:
        """The settings chosen from the sweep's ``records`` by ``criterion`` (default: the chapter's
        :attr:`selection`): alpha at ``sweep_alpha_lr``, then the learning rate at that alpha (unguided runs:
        the learning rate only). A run whose learning rates were not all swept at its alpha is left out
        (a sweep half done chooses nothing)."""
        choices = {run: self._choice(profile, records, run, criterion or self.selection) for run in self.swept}
        return {run: RunSettings(lr, alpha) for run, (alpha, lr) in choices.items() if lr is not None}

    def changes_under(self, profile: str, records: list[dict[str, Any]],
                      criterion: str) -> dict[Run, tuple[RunSettings, RunSettings | None]]:
        """The swept runs ``criterion`` would set differently: ``run -> (what the chapter chose, what
        criterion chooses)``; the second is None where its alpha's learning rates were never swept."""
        out = {}
        for run in self.swept:
            ours, theirs = (self._choice(profile, records, run, c) for c in (self.selection, criterion))
            if ours != theirs:
                out[run] = (RunSettings(ours[1], ours[0]), RunSettings(theirs[1], theirs[0]) if theirs[1] else None)
        return out

    def _choice(self, profile: str, records: list[dict[str, Any]], run: Run,
                criterion: str) -> tuple[float | None, float | None]:
        """``(alpha or None unguided, learning rate or None unswept)`` chosen for ``run`` by ``criterion``."""
        p = self.presets[check_profile(profile)]
        mine = [r for r in records if (r["config"]["target"], r["config"]["condition"]) == run]
        alpha = _alpha(p)
        if _guided(run.condition):
            at_lr = [r for r in mine if r["config"]["lr"] == p.sweep_alpha_lr and r["config"]["alpha"] in p.sweep_alphas]
            alpha = _best(at_lr, "alpha", criterion) if at_lr else alpha
        at_alpha = [r for r in mine if r["config"]["alpha"] == alpha and r["config"]["lr"] in p.sweep_lrs]
        swept_all = {r["config"]["lr"] for r in at_alpha} == set(p.sweep_lrs)
        lr = _best(at_alpha, "lr", criterion) if swept_all else None
        return (alpha if _guided(run.condition) else None), lr

    def run_sweep(self, profile: str = "quick", device: str = "auto", force: bool = False, *,
                  train_missing: bool | None = None, smoke: bool = False, **overrides: Any) -> list[dict[str, Any]]:
        """The record of every sweep run (seed :data:`SWEEP_SEED`): stored ones loaded, missing ones trained."""
        return ig.run_targets(profile, self.sweep_configs(profile, smoke, **overrides), (SWEEP_SEED,), device,
                              force, train_missing, experiment=SWEEP_EXPERIMENT, name=sweep_name)

    # ------------------------------------------------------------------------- the chapter's runs

    def planned_runs(self, profile: str, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
        """Every record the chapter needs in ``profile``: its trained guides, the sweep, then the target runs."""
        cfgs = self.configs(profile)
        guides = [r for r in ig.planned_runs(cfgs, ()) if r.experiment != ig.EXPERIMENT]
        sweep = [PlannedRun(SWEEP_EXPERIMENT, sweep_name(c), c, SWEEP_SEED, ig.required_metrics(c))
                 for c in self.sweep_configs(profile)]
        targets = [PlannedRun(ig.EXPERIMENT, ig.run_name(c), c, s, ig.required_metrics(c)) for c in cfgs
                   for s in self.run_seeds(profile, c, seeds)]
        return guides + sweep + targets

    def run(self, profile: str = "quick", seeds: Iterable[int] | None = None, device: str = "auto",
            force: bool = False, *, train_missing: bool | None = None, smoke: bool = False,
            **overrides: Any) -> list[dict[str, Any]]:
        """The record of every run for every seed (:meth:`run_seeds`): stored ones loaded, missing ones trained
        (see :func:`untrainable.results.run_or_load` for when a missing ``full`` record may train)."""
        records = []
        for c in self.configs(profile, smoke, **overrides):
            records += ig.run_targets(profile, [c], self.run_seeds(profile, c, seeds), device, force, train_missing)
        return records

    def guide_records(self, profile: str, device: str = "auto", train_missing: bool | None = None,
                      smoke: bool = False, **overrides: Any) -> dict[str, dict[str, Any]]:
        """The records of the chapter's trained guides, keyed by record name."""
        return ig.guide_records(profile, self.configs(profile, smoke, **overrides), device, train_missing)

    def describe_models(self, profile: str) -> list[dict[str, Any]]:
        """Each target and guide of the chapter: parameters and the number of recorded layers."""
        return ig.describe_models(self.configs(profile))

    # ------------------------------------------------------------------------- from a shell

    def stage_configs(self, profile: str, stage: str) -> list[ig.Config]:
        """The configs a shell stage trains: the alpha sweep, the learning-rate sweep or the chapter's runs."""
        p = self.presets[check_profile(profile)]
        if stage in ("runs", "guides"):
            return self.configs(profile)
        sweep = self.sweep_configs(profile)
        if stage == "alpha":
            return [c for c in sweep if c.guide is not None and c.lr == p.sweep_alpha_lr]
        return [c for c in sweep if c.lr in p.sweep_lrs and
                (c.guide is None or c.alpha == _alpha(p, Run(c.target, c.condition)))]

    def main(self, argv: list[str] | None = None) -> None:
        """Train the chapter's records from a shell, one stage at a time (missing records are trained).

        Stages: ``guides`` (the trained guides the named runs need), ``alpha`` and ``lr`` (the validation
        sweep), ``runs`` (the chapter's runs). ``--runs deep_fcn/trained_guide ...`` trains only those
        (target, condition) pairs, so a stage can be split over parallel one-thread processes; an
        interrupted run resumes.
        """
        parser = shell_parser(f"python -m {self.name}", self.main.__doc__,
                              "distinct seeds (default: the preset's; headline runs get more)")
        parser.add_argument("--stage", choices=STAGES, required=True)
        parser.add_argument("--runs", nargs="*", help="target/condition pairs (default: all of the stage)")
        args = parser.parse_args(argv)
        seeds = shell_seeds(parser, args.seeds)
        cfgs = [c for c in self.stage_configs(args.profile, args.stage)
                if not args.runs or f"{c.target}/{c.condition}" in args.runs]
        if not cfgs:
            parser.error(f"no {args.stage} runs match {args.runs}: name target/condition pairs of {self.runs}")
        if args.stage == "guides":
            ig.guide_records(args.profile, cfgs, args.device, train_missing=True)
            return
        for c in cfgs:
            if args.stage == "runs":
                ig.run_targets(args.profile, [c], self.run_seeds(args.profile, c, seeds), args.device, False, True)
            else:
                ig.run_targets(args.profile, [c], (SWEEP_SEED,), args.device, False, True,
                               experiment=SWEEP_EXPERIMENT, name=sweep_name)
