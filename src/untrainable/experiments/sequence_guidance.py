"""Chapter 06: guidance across architecture families on sequences (Subramaniam et al., 2024, sequence table).

Three settings, each a target, a guide of the other family, and a task:

* ``copy``: a tanh RNN copies digit strings, guided by a causal Transformer;
* ``parity``: a Transformer encoder computes the parity of bit strings, guided by a tanh RNN;
* ``lm``: a tanh RNN models tiny-shakespeare character by character, guided by a causal Transformer
  (the paper: WikiText-103, word level).

Each setting has four runs per seed: the guide trained alone (``guide_alone``, whose weights are
cached and then serve as that seed's trained guide), and the target with no guide, with the
trained guide and with an untrained guide (randomly initialised from ``10_000 + seed`` and frozen).
:func:`run` looks each run up in the store of its profile; for a missing one (and only then) it
resolves the guides first (the trained one is its seed's ``guide_alone`` run, whose weights are
cached and retrained into the cache when a fresh clone lacks them, see
:func:`untrainable.results.run_with_weights`), then :func:`train_run` trains from the config, the
seed and the guides, resuming its per-epoch checkpoint. Its shell entry (:func:`main`) trains
missing ``full`` records, so settings can run as parallel background processes.

Activations: every recorded layer's output ``(B, T, D)`` is flattened per sequence to ``(B, T·D)``
as in the paper (``tokens="flatten"``), or compared token by token (``tokens="per_token"``, padded
positions dropped). Variable lengths are padded at the end to one ``T`` per task: RNNs and causal
models never see the padding before a sequence's last real token, the parity encoder masks it out
of attention and pooling, and in ``flatten`` mode the padded positions' outputs are part of the
flattened rows of both networks alike.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from untrainable import guidance as G
from untrainable.analysis.preconditions import (CheckedPrecondition, above_chance, every_guide_reaches,
                                                guide_beats_target)
from untrainable.analysis.selection import choose
from untrainable.data import LM_TASKS, SequenceData, fresh_strings, sequence_data
from untrainable.experiments import PlannedRun
from untrainable.files import load_torch, save_torch_atomic
from untrainable.models import CausalTransformer, StackedRNN, TransformerClassifier, count_parameters
from untrainable.paths import cache_root
from untrainable.profiles import check_profile, default_seeds
from untrainable.recording import record_layers
from untrainable.results import added_field, find_record, record_path, run_key, run_or_load, run_with_weights, training_allowed
from untrainable.runtime import log, seed_everything
from untrainable.train import FitSettings, cross_entropy, cross_entropy_loss, evaluate, fit

__all__ = ["EXPERIMENT", "SWEEP_EXPERIMENT", "SWEEP_SEED", "SWEEP_STAGES", "sweep_configs", "sweep_name",
           "chosen_settings", "run_sweep", "guide_seed", "CHANCE", "GUIDE_BAR", "used_guides", "preconditions", "PRESETS", "SETTINGS", "CONDITIONS", "SETTING_LABELS", "CONDITION_LABELS", "NetConfig",
           "Config", "configs", "planned_runs", "run", "load_data", "build_net", "guide_alone_config", "weights_path",
           "guide_alone_record", "trained_guide", "untrained_guide", "resolve_guides", "mapping_table", "TREATMENTS",
           "initial_cka_table", "initial_cka_overview", "train_run", "run_name", "main"]

EXPERIMENT = "sequence_guidance"
#: The validation sweep's records and seed (no reported run uses it), and its stages in order.
SWEEP_EXPERIMENT, SWEEP_SEED = "sequence_sweeps", 100
SWEEP_STAGES = ("guides", "targets")
#: How the sweep chooses a learning rate (:func:`untrainable.analysis.selection.choose`).
SELECTION = "valid_loss"
UNTRAINED_GUIDE_SEED = 10_000  # an untrained guide for run seed s is initialised from 10_000 + s
SETTINGS = ("copy", "parity", "lm")
#: Per setting: (task, target family, guide family)
SETTING_NETS = {"copy": ("copy", "rnn", "transformer"), "parity": ("parity", "transformer", "rnn"),
                "lm": ("char_lm", "rnn", "transformer")}
CONDITIONS = ("guide_alone", "no_guide", "trained_guide", "untrained_guide")
SETTING_LABELS = {"copy": "RNN on copy-paste, Transformer guide", "parity": "Transformer on parity, RNN guide",
                  "lm": "RNN character language model, Transformer guide"}
CONDITION_LABELS = {"guide_alone": "guide alone", "no_guide": "no guide", "trained_guide": "trained guide",
                    "untrained_guide": "untrained guide"}


@dataclass(frozen=True)
class NetConfig:
    """A sequence network: a stacked recurrent net (``rnn``/``lstm``) or a Transformer."""

    family: str  # "rnn" | "lstm" | "transformer"
    width: int  # RNN hidden size, or the Transformer's d_model
    layers: int
    embed: int = 64  # RNN embedding size
    heads: int = 4  # Transformer
    ff: int = 256  # Transformer feed-forward width
    dropout: float = 0.0


@dataclass(frozen=True)
class Config:
    """Everything that defines one run apart from the seed. Every field is part of the record key:
    a field added later must be declared with :func:`untrainable.results.added_field`."""

    setting: str  # a key of SETTING_NETS
    condition: str  # one of CONDITIONS
    task: str
    net: NetConfig  # the network this run trains (the guide itself for guide_alone)
    guide: NetConfig | None  # the other family's net (the guide, trained or not; the probes' reference); None for guide_alone
    n_train: int
    n_valid: int
    n_test: int
    epochs: int
    min_len: int | None = None  # copy, parity
    max_len: int | None = None
    seq_len: int = 128  # language-model window (characters or words)
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    clip_grad_norm: float | None = 1.0
    alpha: float = 1.0
    distance: str = "linear_cka"
    tokens: str = "flatten"  # "flatten" (the paper's) | "per_token"
    data_seed: int = 0
    probe_n: int = 256
    precision: str = added_field("fp32")  # "fp32" | "bf16" | "auto" (untrainable.precision); fp32 keeps old keys
    fresh: bool = added_field(False)  # copy, parity: new training strings every epoch (the paper's loader)
    guide_lr: float | None = added_field(None)  # the trained guide's learning rate (None: this run's lr)
    # (run seed, guide seed) where a run seed's own guide missed its bar and another seed's guide serves
    guide_reseeds: tuple[tuple[int, int], ...] = added_field(())

    def __post_init__(self) -> None:
        if self.fresh and self.task in LM_TASKS:
            raise ValueError("fresh=True draws new strings every epoch, which a text corpus cannot: "
                             "use it with the copy and parity tasks")


def _nets(p: dict[str, Any], setting: str) -> dict[str, NetConfig]:
    rnn = NetConfig("lstm" if p.get("lstm") else "rnn", p["rnn_hidden"], p["rnn_layers"], embed=p["rnn_embed"])
    tf = NetConfig("transformer", p["d_model"], p["tf_layers"], heads=p["heads"], ff=p["ff"])
    if setting == "parity":  # the parity RNN guide may be smaller than the language-model RNN
        rnn = dataclasses.replace(rnn, width=p.get("parity_rnn_hidden", rnn.width),
                                  layers=p.get("parity_rnn_layers", rnn.layers))
    return {"rnn": rnn, "transformer": tf}


#: Sizes and lengths per profile and setting; ``paper`` has the paper's models. Precision stays
#: fp32 on the CPU profiles: the precision benchmark (appendix 91) measured these small Transformers
#: and RNNs slower, or barely faster, in bf16 on a CPU.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(rnn_hidden=32, rnn_layers=2, rnn_embed=16, d_model=32, tf_layers=2, heads=2, ff=64, batch_size=64,
                  probe_n=64,
                  copy=dict(n_train=512, n_valid=128, n_test=256, epochs=2, min_len=5, max_len=10, lr=3e-3),
                  parity=dict(n_train=512, n_valid=128, n_test=256, epochs=2, min_len=2, max_len=10, lr=3e-3),
                  lm=dict(n_train=256, n_valid=32, n_test=64, epochs=2, seq_len=32, lr=3e-3)),
    # The regimes appendix 93 chose from the targets and guides trained alone: strings drawn fresh every
    # epoch (16,000 a epoch), copy-paste strings of 5 to 10 digits, parity strings of 2 to 30 bits (with
    # each target at its learning rate of lowest validation loss); token rows as what CKA compares; each
    # condition's learning rate chosen on validation (run_settings).
    "full": dict(rnn_hidden=128, rnn_layers=4, rnn_embed=64, d_model=64, tf_layers=4, heads=4, ff=256, batch_size=64,
                 parity_rnn_hidden=64, parity_rnn_layers=2, probe_n=256,
                 sweep_lrs=(3e-3, 1e-3, 3e-4, 1e-4, 3e-5), sweep_settings=("copy", "parity"),
                 # chosen by the sweep (sequence_sweeps records; a test holds these equal to what they pick)
                 run_settings={"copy/guide_alone": {"lr": 3e-3}, "copy/no_guide": {"lr": 3e-4},
                               "copy/trained_guide": {"lr": 1e-3}, "copy/untrained_guide": {"lr": 1e-3},
                               "parity/guide_alone": {"lr": 3e-3}, "parity/no_guide": {"lr": 1e-3},
                               "parity/trained_guide": {"lr": 1e-3}, "parity/untrained_guide": {"lr": 3e-4}},
                 copy=dict(n_train=16_000, n_valid=500, n_test=1000, epochs=8, min_len=5, max_len=10, lr=1e-3,
                           fresh=True, tokens="per_token"),
                 parity=dict(n_train=16_000, n_valid=500, n_test=1000, epochs=8, min_len=2, max_len=30, lr=3e-3,
                             fresh=True, tokens="per_token"),
                 # no Transformer the pilots tried beats the RNN here (appendix 93): the first regime's runs
                 # stay, to show that this claim's precondition fails
                 lm=dict(n_train=9600, n_valid=400, n_test=871, epochs=6, seq_len=64, lr=2e-3)),
    "paper": dict(rnn_hidden=512, rnn_layers=4, rnn_embed=256, d_model=512, tf_layers=4, heads=16, ff=2048,
                  batch_size=256, probe_n=256, precision="auto",  # bf16 on a GPU (appendix 91: not on a CPU)
                  copy=dict(n_train=100_000, n_valid=5000, n_test=10_000, epochs=100, min_len=20, max_len=40, lr=1e-3),
                  parity=dict(n_train=100_000, n_valid=5000, n_test=10_000, epochs=100, min_len=2, max_len=50,
                              lr=1e-3),
                  lm=dict(n_train=None, n_valid=None, n_test=None, epochs=100, seq_len=256, lr=1e-3)),
}
#: A tiny slice of any profile, for testing that its code paths run.
SMOKE = dict(rnn_hidden=16, rnn_layers=2, rnn_embed=8, d_model=16, tf_layers=2, heads=2, ff=32, batch_size=32,
             probe_n=32, parity_rnn_hidden=16, parity_rnn_layers=2,
             copy=dict(n_train=64, n_valid=32, n_test=32, epochs=1),
             parity=dict(n_train=64, n_valid=32, n_test=32, epochs=1),
             lm=dict(n_train=32, n_valid=8, n_test=8, epochs=1, seq_len=32))


def configs(profile: str, settings: Iterable[str] = SETTINGS, smoke: bool = False, **overrides: Any) -> list[Config]:
    """The runs of the chapter in a profile: per setting, the guide alone and the three conditions.

    ``overrides`` replace preset values for every setting (``tokens="per_token"``, ``lstm=True``,
    ``epochs=...``).
    """
    p = {k: (dict(v) if isinstance(v, dict) else v) for k, v in PRESETS[check_profile(profile)].items()}
    if smoke:
        for k, v in SMOKE.items():
            if isinstance(v, dict):
                p[k].update(v)
            else:
                p[k] = v
    fields = {f.name for f in dataclasses.fields(Config)}
    out = []
    for setting in settings:
        if setting not in SETTING_NETS:
            raise ValueError(f"unknown setting {setting!r}: choose one of {', '.join(SETTINGS)}")
        task, target_family, guide_family = SETTING_NETS[setting]
        nets = _nets({**p, **{k: v for k, v in overrides.items() if k not in fields}}, setting)
        values = {k: v for k, v in p.items() if k in fields}
        values.update(p[setting])
        values.update({k: v for k, v in overrides.items() if k in fields})
        if task in LM_TASKS and values.get("n_train") is None:
            values.update(n_train=10**9, n_valid=10**9, n_test=10**9)  # every window
        target, guide = nets[target_family], nets[guide_family]
        chosen = p.get("run_settings", {})
        guide_lr = chosen.get(f"{setting}/guide_alone", {}).get("lr")
        targets = [Config(setting=setting, condition=condition, task=task, net=target, guide=guide,
                          **{**values, **chosen.get(f"{setting}/{condition}", {}), "guide_lr": guide_lr,
                             "guide_reseeds": tuple(p.get("guide_reseeds", {}).get(setting, ()))})
                   for condition in CONDITIONS[1:]]
        out += [guide_alone_config(targets[0]), *targets]
    return out


def _stage_configs(profile: str, stage: str) -> list[Config]:
    """The sweep's configs of ``stage`` for the preset's ``sweep_settings``: ``"guides"``, each guide alone
    at every learning rate of its ``sweep_lrs``; ``"targets"``, each target condition at every learning
    rate (guided by the guide trained at its chosen learning rate)."""
    if stage not in SWEEP_STAGES:
        raise ValueError(f"unknown sweep stage {stage!r}: choose one of {', '.join(SWEEP_STAGES)}")
    p = PRESETS[check_profile(profile)]
    lrs, settings = p.get("sweep_lrs", ()), p.get("sweep_settings", SETTINGS)
    return [dataclasses.replace(c, lr=lr) for c in configs(profile, settings)
            if (c.condition == "guide_alone") == (stage == "guides") for lr in lrs]


def sweep_configs(profile: str) -> list[Config]:
    """Every run of the validation sweep (seed :data:`SWEEP_SEED`, its own records): guides, then targets."""
    return [c for stage in SWEEP_STAGES for c in _stage_configs(profile, stage)]


def sweep_name(c: Config) -> str:
    return f"{run_name(c)}-lr{c.lr:g}"


def chosen_settings(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``"setting/condition" -> {"lr": ...}``: per setting and condition, the learning rate of the sweep
    record with the lowest validation loss (as the paper chose its learning rates)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(f"{r['config']['setting']}/{r['config']['condition']}", []).append(r)
    return {k: {"lr": choose(rs, lambda r: r["config"]["lr"], SELECTION)} for k, rs in sorted(groups.items())}


def run_sweep(profile: str = "quick", device: str = "auto", force: bool = False, *,
              stages: Iterable[str] = SWEEP_STAGES, train_missing: bool | None = None) -> list[dict[str, Any]]:
    """The record of every sweep run (seed :data:`SWEEP_SEED`): stored ones loaded, missing ones trained."""
    return [_record(profile, c, SWEEP_SEED, device, force, train_missing, experiment=SWEEP_EXPERIMENT,
                    name=sweep_name(c)) for stage in stages for c in _stage_configs(profile, stage)]


def planned_runs(profile: str, seeds: Iterable[int] | None = None) -> list[PlannedRun]:
    """Every record of the chapter in ``profile``: the sweep, then each setting's ``guide_alone`` runs
    (a reseeded guide's too) and its target runs."""
    seeds = default_seeds(profile) if seeds is None else tuple(seeds)
    sweep = [PlannedRun(SWEEP_EXPERIMENT, sweep_name(c), c, SWEEP_SEED) for c in sweep_configs(profile)]
    runs = [PlannedRun(EXPERIMENT, run_name(c), c, s) for c in configs(profile) for s in seeds]
    reseeded = [PlannedRun(EXPERIMENT, run_name(guide_alone_config(c)), guide_alone_config(c), g)
                for c in configs(profile) if c.condition == "no_guide" for s, g in c.guide_reseeds if s in seeds]
    return list({r.path(profile): r for r in sweep + runs + reseeded}.values())


# ----------------------------------------------------------------------------- data and models


def load_data(c: Config) -> SequenceData:
    """The fixed splits of the run's task (the training strings drawn from ``data_seed``)."""
    return sequence_data(c.task, c.n_train, c.n_valid, c.n_test, c.data_seed, min_len=c.min_len, max_len=c.max_len,
                         seq_len=c.seq_len)


def build_net(n: NetConfig, data: SequenceData) -> nn.Module:
    """A network for the task: per-token outputs for copy and the language model, one label for parity."""
    per_sequence = data.task == "parity"
    max_len = data.train[0].shape[1]
    if n.family in ("rnn", "lstm"):
        return StackedRNN(data.vocab_size, n.width, n.layers, n.embed, data.num_outputs, kind=n.family,
                          head="last" if per_sequence else "token", pad_id=data.pad_id)
    if n.family == "transformer":
        if per_sequence:
            return TransformerClassifier(data.vocab_size, n.width, n.heads, n.ff, n.layers, max_len, n.dropout,
                                         data.num_outputs, pad_id=data.pad_id)
        return CausalTransformer(data.vocab_size, n.width, n.heads, n.ff, n.layers, max_len, n.dropout,
                                 data.num_outputs)
    raise ValueError(f"unknown network family {n.family!r}: choose rnn, lstm or transformer")


def guide_alone_config(c: Config) -> Config:
    """The ``guide_alone`` run whose weights are the trained guide of run ``c``: the guide's net at the
    guide's learning rate, with nothing of the target's guidance in its key."""
    return dataclasses.replace(c, condition="guide_alone", net=c.guide, guide=None, lr=c.guide_lr or c.lr, alpha=1.0,
                               guide_lr=None, guide_reseeds=())


def guide_seed(c: Config, seed: int) -> int:
    """The seed of the ``guide_alone`` run that guides run (``c``, ``seed``): its own, unless reseeded."""
    return dict(c.guide_reseeds).get(seed, seed)



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
        return run_with_weights(experiment, profile, name or _name(experiment, g), g, seed, weights,
                                functools.partial(train_run, weights=weights), device=device, force=force,
                                train_missing=train_missing)


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
    history = fit(model, data.train, data.valid, _settings(c), generator=generator, device=device,
                  loss_fn=guidance or cross_entropy_loss, checkpoint=checkpoint,
                  desc=f"{c.setting}/{c.condition} seed {seed}", progress=False, on_epoch_start=start_epoch,
                  on_epoch_end=end_epoch, state=state)
    for h in history:
        h["valid_loss"], h["valid_acc"] = h.pop("test_loss"), h.pop("test_acc")
    metrics = _test_metrics(model, data, history, device, c.precision)
    log(f"{c.setting}/{c.condition} seed {seed}: test acc {metrics['test_acc']:.3f} test loss {metrics['test_loss']:.3f}")
    out: dict[str, Any] = {"metrics": metrics, "history": history}
    if probes:
        final = {k: p.measure(model) for k, p in probes.items()}
        metrics.update(mean_cka_trained=float(np.mean(final["trained"])),
                       mean_cka_untrained=float(np.mean(final["untrained"])))
        out.update(initial_cka=state["initial_cka"], final_cka=final, probe_pairs={k: p.pairs for k, p in probes.items()})
    if guidance is not None:
        out["pairs"] = guidance.pairs
    if weights is not None:
        save_torch_atomic(model.state_dict(), weights)
    return out


def run_name(c: Config) -> str:
    return f"{c.setting}-{c.condition}"


def _name(experiment: str, c: Config) -> str:
    """A record's name: the run's, with its learning rate in the sweep."""
    return sweep_name(c) if experiment == SWEEP_EXPERIMENT else run_name(c)


def _record(profile: str, c: Config, seed: int, device: str, force: bool, train_missing: bool | None,
            experiment: str = EXPERIMENT, name: str | None = None) -> dict[str, Any]:
    """One run's record in ``profile``: loaded when stored, else (when allowed) its guides resolved, then trained."""
    name = name or _name(experiment, c)
    path = record_path(profile, experiment, name, seed, run_key(experiment, c, seed))
    needed = force or (find_record(path) is None and training_allowed(profile, force, train_missing))
    if needed and c.condition == "guide_alone":  # its weights are a later run's guide: trained under a lock
        return guide_alone_record(profile, c, seed, device, force, train_missing, experiment, name)
    guides = resolve_guides(profile, c, seed, device, train_missing, experiment) if needed else None
    return run_or_load(experiment, profile, name, c, seed, functools.partial(train_run, guides=guides),
                       device=device, force=force, train_missing=train_missing)


def run(profile: str = "quick", seeds: Iterable[int] | None = None, device: str = "auto", force: bool = False, *,
        settings: Iterable[str] = SETTINGS, conditions: Iterable[str] = CONDITIONS, train_missing: bool | None = None,
        smoke: bool = False, **overrides: Any) -> list[dict[str, Any]]:
    """The record of every run of the chapter (or of some settings and conditions) for every seed.

    Stored records are loaded; a missing one is trained when allowed (a missing ``full`` record
    only with ``train_missing`` or ``force``, see :func:`untrainable.results.run_or_load`).
    """
    seeds = default_seeds(profile) if seeds is None else tuple(seeds)
    conditions = list(conditions)
    return [_record(profile, c, s, device, force, train_missing)
            for c in configs(profile, settings, smoke, **overrides) if c.condition in conditions for s in seeds]


#: Chance accuracy of the generated tasks; the bar every trained parity guide must reach on validation.
CHANCE = {"copy": 0.10, "parity": 0.50}
GUIDE_BAR = {"parity": 0.95}
#: How far the guide must be ahead of the unguided target (the pilots' rule, appendix 93): a target within
#: a few points of a perfect guide shows no failure for guidance to cure.
MIN_GAP = {"copy": 0.20, "parity": 0.10}
NET_LABELS = {"rnn": "RNN", "lstm": "LSTM", "transformer": "Transformer"}


def used_guides(records: list[dict[str, Any]], setting: str) -> list[dict[str, Any]]:
    """The ``guide_alone`` records of ``setting`` that guided its target runs (a reseeded seed's
    replacement in place of its own)."""
    mine = [r for r in records if r["config"]["setting"] == setting]
    seeds = {dict(map(tuple, r["config"].get("guide_reseeds", ()))).get(r["seed"], r["seed"])
             for r in mine if r["config"]["condition"] != "guide_alone"}
    return [r for r in mine if r["config"]["condition"] == "guide_alone" and r["seed"] in seeds]


def preconditions(records: list[dict[str, Any]]) -> list[CheckedPrecondition]:
    """What each setting's claims need from its records, checked: the unguided target learns something
    (copy-paste, parity: at least 10 points above chance), every trained guide succeeds (parity: ≥ 95 % on validation), and the
    guides beat the unguided target (accuracy; perplexity for the language model) by more than the
    seed spread."""
    checks = []
    for setting in SETTINGS:
        mine = [r for r in records if r["config"]["setting"] == setting]
        if not mine:
            continue
        control = [r for r in mine if r["config"]["condition"] == "no_guide"]
        guides = used_guides(records, setting)
        target, guide = (NET_LABELS[SETTING_NETS[setting][i]] for i in (1, 2))
        if setting in CHANCE:
            checks.append(above_chance(control, CHANCE[setting], f"the unguided {target} ({setting})"))
        if setting in GUIDE_BAR:
            checks.append(every_guide_reaches(guides, GUIDE_BAR[setting], f"every trained {guide} guide ({setting})"))
        metric = "perplexity" if setting == "lm" else "test_acc"
        checks.append(guide_beats_target(guides, control, f"the trained {guide} ({setting})", metric,
                                         min_gap=MIN_GAP.get(setting, 0.0)))
    return checks


def main(argv: list[str] | None = None) -> None:
    """Run the chapter from a shell, e.g. settings in parallel background processes (records are shared).

    Missing records are trained (this is how the ``full`` records are made). A guided run trains
    its seed's guide first when that is missing, so give each process whole settings.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m untrainable.experiments.sequence_guidance",
                                     description=main.__doc__)
    parser.add_argument("--profile", default="full")
    parser.add_argument("--settings", nargs="*", choices=SETTINGS, help="default: all")
    parser.add_argument("--seeds", type=int, nargs="*", help="default: the profile's seeds")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--conditions", nargs="*", choices=CONDITIONS, help="default: all")
    parser.add_argument("--sweep", choices=SWEEP_STAGES, help="train a stage of the validation sweep instead")
    args = parser.parse_args(argv)
    settings, conditions = set(args.settings or SETTINGS), set(args.conditions or CONDITIONS)
    if args.sweep:
        for c in _stage_configs(args.profile, args.sweep):
            if c.setting in settings and c.condition in conditions:
                _record(args.profile, c, SWEEP_SEED, args.device, False, True, experiment=SWEEP_EXPERIMENT)
        return
    run(args.profile, seeds=tuple(args.seeds) if args.seeds else None, device=args.device,
        settings=tuple(sorted(settings, key=SETTINGS.index)), conditions=conditions, train_missing=True)


if __name__ == "__main__":
    main()
