"""Chapter 06's training: one run from its config, the guides it needs, and the diagnoses of its layers.

:func:`train_run` trains one network from a :class:`~untrainable.experiments.sequence_configs.Config`,
a seed and its guides, resuming its per-epoch checkpoint; it knows nothing of profiles or stores. The
guides are resolved before: the trained one is its seed's ``guide_alone`` run, whose weights are
cached (and retrained into the cache when a fresh clone lacks them, see
:func:`untrainable.results.run_with_weights`); the untrained one is randomly initialised from
``10_000 + seed`` and frozen. :func:`mapping_table` and :func:`initial_cka_table` show which layers
guidance pairs and how alike they already are before any step.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from untrainable import guidance as G
from untrainable.data import LM_TASKS, SequenceData, fresh_strings
from untrainable.experiments.sequence_configs import (EXPERIMENT, REQUIRED_METRICS, SETTINGS, Config, build_net,
                                                      configs, guide_alone_config, guide_seed, load_data, record_name,
                                                      run_name)
from untrainable.files import load_torch, save_torch_atomic
from untrainable.models import count_parameters
from untrainable.paths import cache_root
from untrainable.recording import record_layers
from untrainable.results import run_key, run_with_weights
from untrainable.runtime import log, seed_everything
from untrainable.train import FitSettings, cross_entropy, cross_entropy_loss, evaluate, fit

__all__ = ["UNTRAINED_GUIDE_SEED", "train_run", "weights_path", "guide_alone_record", "trained_guide",
           "untrained_guide", "resolve_guides", "mapping_table", "TREATMENTS", "initial_cka_table",
           "initial_cka_overview"]

UNTRAINED_GUIDE_SEED = 10_000  # an untrained guide for run seed s is initialised from 10_000 + s


# ----------------------------------------------------------------------------- one run


def _settings(c: Config) -> FitSettings:
    return FitSettings(epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, weight_decay=c.weight_decay,
                       optimizer=c.optimizer, clip_grad_norm=c.clip_grad_norm, eval_batch_size=256,
                       precision=c.precision)


def _probes(model: nn.Module, guides: dict[str, nn.Module], example: torch.Tensor, x_probe: torch.Tensor,
            tokens: str = "flatten", pad_id: int | None = None) -> dict[str, G.SimilarityProbe]:
    """A linear-CKA probe per guide (trained, untrained), over the evenly mapped layer pairs, with
    the run's token treatment (so the probe measures what the guidance term aligns)."""
    probes = {}
    for label, g in guides.items():
        pairs = G.resolve_mapping(G.guidance_layers(g, example), G.guidance_layers(model, example))
        probes[label] = G.SimilarityProbe(g, pairs, x_probe, tokens=tokens, pad_id=pad_id)
    return probes


def _test_metrics(model: nn.Module, data: SequenceData, history: list[dict[str, Any]], device: torch.device,
                  precision: str = "fp32") -> dict[str, Any]:
    """Accuracy and loss on the test split (with perplexity and bits per character), and the last epoch's."""
    test = evaluate(model, *data.test, device, 256, precision)
    return {"test_acc": test["acc"], "test_loss": test["loss"], "perplexity": math.exp(test["loss"]),
            "bits_per_char": test["loss"] / math.log(2), "valid_acc": history[-1]["valid_acc"],
            "valid_loss": history[-1]["valid_loss"], "train_acc": history[-1]["train_acc"],
            "train_loss": history[-1]["train_loss"], "best_valid_acc": max(h["valid_acc"] for h in history),
            "min_valid_loss": min(h["valid_loss"] for h in history),
            "parameters": count_parameters(model)}


def train_run(c: Config, seed: int, device: torch.device, checkpoint: Path, guides: dict[str, nn.Module] | None = None,
              weights: Path | None = None) -> dict[str, Any]:
    """Train one network under one condition; return metrics, a per-epoch history and the mapping.

    ``guides``: the trained and the untrained guide (target conditions; both probe the alignment,
    the condition's one guides); ``weights``: where to save the trained weights (``guide_alone``).
    The curves are on the validation split; the final metrics on the fixed test split: accuracy
    (per copied token, per parity string, per character), the test loss in nats per token, and
    for the language model the perplexity ``exp(loss)`` and bits per character ``loss / ln 2``.
    A guided epoch's row also has ``train_task_loss``, ``guidance_term`` and ``pair_distance``
    (means over its steps); these, like the CKA at initialisation, are checkpointed every epoch.
    """
    data = load_data(c)
    generator = seed_everything(seed)
    model = build_net(c.net, data).to(device)  # same initialisation for every target condition of a seed
    example = data.train[0][:4].to(device)
    guides = {k: g.to(device) for k, g in (guides or {}).items()}
    guidance = None
    if c.condition in ("trained_guide", "untrained_guide"):
        guidance = G.GuidanceLoss(model, guides[c.condition.split("_")[0]], example, alpha=c.alpha,
                                  distance=c.distance, task_loss=cross_entropy, tokens=c.tokens, pad_id=data.pad_id)
    probes = _probes(model, guides, example, data.valid[0][: c.probe_n].to(device), c.tokens, data.pad_id)
    steps_per_epoch = math.ceil(len(data.train[1]) / c.batch_size)

    def start_epoch(epoch: int, _: nn.Module) -> None:
        if c.fresh:  # this epoch's strings, in place (the same again when a run resumes at this epoch)
            for held, new in zip(data.train, fresh_strings(c.task, len(data.train[1]), c.data_seed, epoch,
                                                          c.min_len, c.max_len)):
                held.copy_(new)
        if guidance is not None:
            guidance.step, guidance.log = (epoch - 1) * steps_per_epoch, []

    def end_epoch(epoch: int, _: nn.Module) -> dict[str, Any] | None:
        if guidance is None or not guidance.log:
            return None
        means = guidance.epoch_means(steps_per_epoch)[-1]
        return {"train_task_loss": means["task"], "guidance_term": means["guidance"], "pair_distance": means["terms"]}

    state = {"initial_cka": {k: p.measure(model) for k, p in probes.items()}}
    # the test split is evaluated at every epoch a checkpoint rule can pick (the best by validation
    # accuracy or loss so far, and the last), so each rule's test numbers are in the history
    history = fit(model, data.train, data.test, _settings(c), generator=generator, device=device,
                  loss_fn=guidance or cross_entropy_loss, checkpoint=checkpoint,
                  desc=f"{c.setting}/{c.condition} seed {seed}", progress=False, on_epoch_start=start_epoch,
                  on_epoch_end=end_epoch, state=state, valid=data.valid, test_every_epoch=False)
    metrics = _test_metrics(model, data, history, device, c.precision)
    log(f"{c.setting}/{c.condition} seed {seed}: test acc {metrics['test_acc']:.3f} test loss {metrics['test_loss']:.3f}")
    out: dict[str, Any] = {"metrics": metrics, "history": history}
    if probes:
        final = {k: p.measure(model) for k, p in probes.items()}
        metrics.update(mean_cka_trained=G.mean_defined(final["trained"]),
                       mean_cka_untrained=G.mean_defined(final["untrained"]))
        out.update(initial_cka=state["initial_cka"], final_cka=final, probe_pairs={k: p.pairs for k, p in probes.items()})
    if guidance is not None:
        out["pairs"] = guidance.pairs
    if weights is not None:
        save_torch_atomic(model.state_dict(), weights)
    return out


# ----------------------------------------------------------------------------- guides


def weights_path(profile: str, c: Config, seed: int, experiment: str = EXPERIMENT) -> Path:
    """Where the weights of a ``guide_alone`` run are cached (never committed)."""
    return cache_root() / "guides" / profile / experiment / f"{run_name(c)}-seed{seed}-{run_key(experiment, c, seed)}.pt"


def guide_alone_record(profile: str, g: Config, seed: int, device: str = "auto", force: bool = False,
                       train_missing: bool | None = None, experiment: str = EXPERIMENT,
                       name: str | None = None) -> dict[str, Any]:
    """The record of ``guide_alone`` run ``g`` in ``profile``, with its weights in the cache.

    A stored record is loaded and its weights retrained into the cache when they are missing (the
    record untouched); a missing record is trained when allowed. A lock on the weight file makes
    parallel processes train it once; the global random state is left as it was.
    """
    weights = weights_path(profile, g, seed, experiment)
    with torch.random.fork_rng():
        return run_with_weights(experiment, profile, name or record_name(experiment, g), g, seed, weights,
                                functools.partial(train_run, weights=weights), device=device, force=force,
                                train_missing=train_missing, required_metrics=REQUIRED_METRICS)


def trained_guide(profile: str, c: Config, seed: int, device: str = "auto",
                  train_missing: bool | None = None, experiment: str = EXPERIMENT) -> tuple[nn.Module, dict[str, Any]]:
    """Seed ``seed``'s trained, frozen guide for target run ``c`` (:func:`guide_seed`) and its ``guide_alone`` record."""
    g, seed = guide_alone_config(c), guide_seed(c, seed)
    record = guide_alone_record(profile, g, seed, device, train_missing=train_missing, experiment=experiment)
    with torch.random.fork_rng():
        model = build_net(g.net, load_data(g))
    model.load_state_dict(load_torch(weights_path(profile, g, seed, experiment)))
    return G.freeze(model), record


def untrained_guide(c: Config, data: SequenceData, seed: int) -> nn.Module:
    """A randomly initialised, frozen guide for run seed ``seed`` (the global RNG is left untouched)."""
    with torch.random.fork_rng():
        torch.manual_seed(UNTRAINED_GUIDE_SEED + seed)
        return G.freeze(build_net(c.guide, data))


def resolve_guides(profile: str, c: Config, seed: int, device: str = "auto",
                   train_missing: bool | None = None, experiment: str = EXPERIMENT) -> dict[str, nn.Module]:
    """The trained and the untrained guide of target run (``c``, ``seed``) in ``profile`` (a sweep run's
    trained guide is the sweep's own guide record)."""
    return {"trained": trained_guide(profile, c, seed, device, train_missing=train_missing, experiment=experiment)[0],
            "untrained": untrained_guide(c, load_data(c), seed)}


# ----------------------------------------------------------------------------- diagnoses


def mapping_table(guide: nn.Module, target: nn.Module, example: torch.Tensor) -> list[dict[str, Any]]:
    """The recorded layers of a guide and a target, the even mapping between them, and output shapes."""
    g_layers, t_layers = G.guidance_layers(guide, example), G.guidance_layers(target, example)
    g_out = record_layers(guide, example, g_layers)
    t_out = record_layers(target, example, t_layers)
    mods_g, mods_t = dict(guide.named_modules()), dict(target.named_modules())
    rows = []
    for i, j in G.even_mapping(len(g_layers), len(t_layers)):
        g, t = g_layers[i], t_layers[j]
        rows.append({"guide layer": g, "guide kind": type(mods_g[g]).__name__,
                     "guide output": tuple(g_out[g].shape[1:]), "target layer": t,
                     "target kind": type(mods_t[t]).__name__, "target output": tuple(t_out[t].shape[1:])})
    return rows


#: How a diagnosis may treat a sequence layer's outputs: label -> (token mode, strings of one length).
TREATMENTS = {"flattened (the paper's)": ("flatten", False), "flattened, strings of one length": ("flatten", True),
              "per token, padding dropped": ("per_token", False)}


def initial_cka_table(profile: str, setting: str, seed: int = 0, n: int = 256, **overrides: Any) -> pd.DataFrame:
    """Linear CKA of each mapped layer pair of ``setting``'s untrained target and untrained guide,
    before any step, under each of :data:`TREATMENTS`, on ``n`` validation strings.

    Why it matters: guidance pulls ``1 - CKA`` towards 0, so a pair already near 1 at
    initialisation gives the target almost no gradient. Flattened sequences of random networks
    agree because both represent *which token sits where* and, with end padding, *where each
    string ends*; strings of one length remove the second part, token rows both.
    """
    c = next(c for c in configs(profile, (setting,), **overrides) if c.condition == "untrained_guide")
    rows = []
    for label, (tokens, one_length) in TREATMENTS.items():
        if one_length and c.task in LM_TASKS:
            continue  # windows of a text are all of one length already
        cc = dataclasses.replace(c, min_len=c.max_len, n_valid=n) if one_length else dataclasses.replace(c, n_valid=n)
        data = load_data(cc)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            target = build_net(c.net, data).eval()
        guide = untrained_guide(c, data, seed).eval()
        x = data.valid[0][:n]
        pairs = G.resolve_mapping(G.guidance_layers(guide, x[:4]), G.guidance_layers(target, x[:4]))
        values = G.SimilarityProbe(guide, pairs, x, tokens=tokens, pad_id=data.pad_id).measure(target)
        rows += [{"treatment": label, "pair": f"{g} → {t}", "cka": v} for (g, t), v in zip(pairs, values)]
    return pd.DataFrame(rows)


def initial_cka_overview(profile: str, n: int = 256) -> pd.DataFrame:
    """:func:`initial_cka_table` of every setting, one column per treatment, one row per (setting, pair)."""
    tables = {setting: initial_cka_table(profile, setting, n=n) for setting in SETTINGS}
    return pd.concat(tables, names=["setting"]).pivot_table(index=["setting", "pair"], columns="treatment",
                                                            values="cka", sort=False)
