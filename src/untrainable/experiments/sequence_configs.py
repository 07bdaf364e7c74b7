"""Chapter 06's runs as configs: the settings and conditions, each profile's typed preset, and what a
config builds (its data, its nets).

What is trained is decided here and nowhere else: a network (:class:`NetConfig`, built by
:func:`build_net`), a run (:class:`Config`, every field part of its record key), the sizes and
lengths of each profile (:data:`PRESETS`, one :class:`SequencePreset` per profile) and the learning
rate the validation sweep chose for each run (:class:`Run` -> :class:`RunSettings`). Each
hyper-parameter's default lives in its config field; a preset field at ``None`` keeps it. How a run
is trained is :mod:`untrainable.experiments.sequence_runs`; the chapter itself is
:mod:`untrainable.experiments.sequence_guidance`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from torch import nn

from untrainable.config_checks import check_fields
from untrainable.data import LM_TASKS, SEQUENCE_TASKS, SequenceData, sequence_data
from untrainable.models import CausalTransformer, StackedRNN, TransformerClassifier
from untrainable.guidance import GUIDANCE_DISTANCES
from untrainable.precision import PRECISIONS
from untrainable.profiles import PresetError, check_profile, check_seeds, default_seeds, preset_table, replace_preset
from untrainable.results import added_field
from untrainable.train import OPTIMIZERS

__all__ = ["CHAPTER", "EXPERIMENT", "SWEEP_EXPERIMENT", "SWEEP_SEED", "SWEEP_STAGES", "SETTINGS", "SETTING_NETS",
           "CONDITIONS", "PILOT_CONDITION", "SETTING_LABELS", "CONDITION_LABELS", "EVERY_WINDOW", "FAMILIES", "TOKENS",
           "REQUIRED_METRICS", "NetConfig", "build_net", "Config",
           "config_defaults", "load_data", "Run", "RunSettings", "NetSizes", "TaskPreset", "SequencePreset",
           "PRESETS", "SMOKE", "SMOKE_TASKS", "preset", "configs", "stage_configs", "sweep_configs",
           "guide_alone_config", "guide_seed", "run_name", "sweep_name", "record_name"]

#: How errors in this chapter's presets name it.
CHAPTER = "chapter 06 (sequence guidance)"
EXPERIMENT = "sequence_guidance"
#: The validation sweep's records and seed (no reported run uses it), and its stages in order.
SWEEP_EXPERIMENT, SWEEP_SEED = "sequence_sweeps", 100
SWEEP_STAGES = ("guides", "targets")
SETTINGS = ("copy", "parity", "lm")
#: Per setting: (task, target family, guide family)
SETTING_NETS = {"copy": ("copy", "rnn", "transformer"), "parity": ("parity", "transformer", "rnn"),
                "lm": ("char_lm", "rnn", "transformer")}
CONDITIONS = ("guide_alone", "no_guide", "trained_guide", "untrained_guide")
#: The condition of a pilot run (appendix 93): one network trained alone, target or guide.
PILOT_CONDITION = "alone"
SETTING_LABELS = {"copy": "RNN on copy-paste, Transformer guide", "parity": "Transformer on parity, RNN guide",
                  "lm": "RNN character language model, Transformer guide"}
CONDITION_LABELS = {"guide_alone": "guide alone", "no_guide": "no guide", "trained_guide": "trained guide",
                    "untrained_guide": "untrained guide"}
#: The split sizes that stand for "every window" of a text corpus.
EVERY_WINDOW = 10**9
#: The networks :func:`build_net` builds, and how guidance compares sequences (:mod:`untrainable.guidance`).
FAMILIES = ("rnn", "lstm", "transformer")
TOKENS = ("flatten", "per_token")
#: What chapter 06, appendix 93 and page 98 read of every sequence record (the test split's numbers,
#: the validation curve's last and best): :func:`~.sequence_runs.train_run`'s metrics.
REQUIRED_METRICS = ("train_acc", "train_loss", "valid_acc", "valid_loss", "best_valid_acc", "test_acc", "test_loss",
                    "perplexity", "bits_per_char", "parameters")


# ----------------------------------------------------------------------------- configs and what they build


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

    def __post_init__(self) -> None:
        check_fields(self, positive=("width", "layers", "embed", "heads", "ff"), fractions=("dropout",),
                     choices={"family": FAMILIES})


def build_net(n: NetConfig, data: SequenceData) -> nn.Module:
    """The builder of chapter 06's nets: the network ``n`` describes, shaped for ``data``'s task (per-token
    outputs for copy and the language models, one label per string for parity), so every run, guide and
    benchmark of the chapter builds its nets the same way."""
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


@dataclass(frozen=True)
class Config:
    """Everything that defines one run apart from the seed. Every field is part of the record key:
    a field added later must be declared with :func:`untrainable.results.added_field`."""

    setting: str  # a key of SETTING_NETS
    condition: str  # one of CONDITIONS
    task: str
    net: NetConfig  # the network this run trains (the guide itself for guide_alone)
    # the other family's net (the guide, trained or not; the probes' reference); None for guide_alone
    guide: NetConfig | None
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
        check_fields(self, positive=("n_train", "n_valid", "n_test", "epochs", "min_len", "max_len", "seq_len",
                                     "batch_size", "lr", "clip_grad_norm", "probe_n", "guide_lr"),
                     non_negative=("weight_decay", "alpha", "data_seed"),
                     choices={"setting": SETTING_NETS, "condition": (*CONDITIONS, PILOT_CONDITION),
                              "task": SEQUENCE_TASKS, "optimizer": OPTIMIZERS, "distance": GUIDANCE_DISTANCES,
                              "tokens": TOKENS, "precision": PRECISIONS})
        if self.fresh and self.task in LM_TASKS:
            raise ValueError("fresh=True draws new strings every epoch, which a text corpus cannot: "
                             "use it with the copy and parity tasks")


def config_defaults(*names: str) -> dict[str, Any]:
    """The :class:`Config` defaults of ``names``, read from the fields (their one place), for a run
    that must drop what another run set (a guide alone drops its target's guidance)."""
    defaults = {f.name: f.default for f in dataclasses.fields(Config) if f.default is not dataclasses.MISSING}
    unknown = [n for n in names if n not in defaults]
    if unknown:
        raise KeyError(f"{CHAPTER}: Config has no field with a default named {', '.join(map(repr, unknown))}")
    return {n: defaults[n] for n in names}


def load_data(c: Config) -> SequenceData:
    """The fixed splits of the run's task (the training strings drawn from ``data_seed``)."""
    return sequence_data(c.task, c.n_train, c.n_valid, c.n_test, c.data_seed, min_len=c.min_len, max_len=c.max_len,
                         seq_len=c.seq_len)


# ----------------------------------------------------------------------------- typed presets


class Run(NamedTuple):
    """One run of a setting, the key of a per-run override."""

    setting: str
    condition: str


@dataclass(frozen=True)
class RunSettings:
    """What the validation sweep chose for one :class:`Run`."""

    lr: float


@dataclass(frozen=True)
class NetSizes:
    """A profile's network sizes: the RNN (``lstm``: an LSTM in its place) and the Transformer."""

    rnn_hidden: int
    rnn_layers: int
    rnn_embed: int
    d_model: int
    tf_layers: int
    heads: int
    ff: int
    lstm: bool = False  # an LSTM for every RNN (the precision benchmark times one)
    parity_rnn_hidden: int | None = None  # the parity RNN guide may be smaller than the others (None: rnn_hidden)
    parity_rnn_layers: int | None = None  # (None: rnn_layers)

    def nets(self, setting: str) -> dict[str, NetConfig]:
        """The RNN and the Transformer of ``setting``, by family."""
        rnn = NetConfig("lstm" if self.lstm else "rnn", self.rnn_hidden, self.rnn_layers, embed=self.rnn_embed)
        tf = NetConfig("transformer", self.d_model, self.tf_layers, heads=self.heads, ff=self.ff)
        if setting == "parity":
            rnn = dataclasses.replace(rnn, width=self.parity_rnn_hidden or rnn.width,
                                      layers=self.parity_rnn_layers or rnn.layers)
        return {"rnn": rnn, "transformer": tf}


@dataclass(frozen=True)
class TaskPreset:
    """One setting's data, lengths and schedule in a profile; an optional field at ``None`` keeps the
    :class:`Config` default."""

    n_train: int | None  # None (a text corpus): every window of the split
    n_valid: int | None
    n_test: int | None
    epochs: int
    lr: float  # every condition's, unless the sweep chose another (SequencePreset.run_settings)
    seeds: tuple[int, ...] | None = None  # the setting's seeds (None: the profile's default seeds)
    min_len: int | None = None  # copy, parity
    max_len: int | None = None
    seq_len: int | None = None  # language model
    fresh: bool | None = None
    tokens: str | None = None

    def values(self, task: str) -> dict[str, Any]:
        """The config values this preset sets for ``task`` (a text corpus's ``None`` sizes: every window)."""
        sizes = {k: getattr(self, k) for k in ("n_train", "n_valid", "n_test")}
        sizes = {k: EVERY_WINDOW if v is None and task in LM_TASKS else v for k, v in sizes.items()}
        optional = {k: getattr(self, k) for k in ("min_len", "max_len", "seq_len", "fresh", "tokens")}
        return {**sizes, "epochs": self.epochs, "lr": self.lr, **{k: v for k, v in optional.items() if v is not None}}

    def seeds_of(self, profile: str) -> tuple[int, ...]:
        """The seeds this setting runs in ``profile``."""
        return default_seeds(profile) if self.seeds is None else self.seeds


@dataclass(frozen=True)
class SequencePreset:
    """One profile of the chapter: its nets, each setting's task, the values every run shares (``None``:
    the config default), the validation sweep, and what the sweep chose per run."""

    nets: NetSizes
    tasks: Mapping[str, TaskPreset]  # one per setting
    batch_size: int | None = None
    probe_n: int | None = None
    precision: str | None = None
    sweep_lrs: tuple[float, ...] = ()  # the sweep's learning rates (none: the profile has no sweep)
    sweep_settings: tuple[str, ...] = SETTINGS
    run_settings: Mapping[Run, RunSettings] = field(default_factory=dict)  # chosen by the sweep
    guide_reseeds: Mapping[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)  # per setting

    def __post_init__(self) -> None:
        if set(self.tasks) != set(SETTINGS):
            raise PresetError(f"{CHAPTER}: a preset needs one task per setting ({', '.join(SETTINGS)}), "
                              f"not {', '.join(map(repr, self.tasks))}")
        unknown = [r for r in self.run_settings if r.setting not in SETTINGS or r.condition not in CONDITIONS]
        unknown += [s for s in (*self.sweep_settings, *self.guide_reseeds) if s not in SETTINGS]
        if unknown:
            raise PresetError(f"{CHAPTER}: unknown setting or run {', '.join(map(repr, unknown))}: the settings "
                              f"are {', '.join(SETTINGS)}, the conditions {', '.join(CONDITIONS)}")

    def shared_values(self) -> dict[str, Any]:
        """The config values every run of the profile shares (those the preset sets)."""
        values = {"batch_size": self.batch_size, "probe_n": self.probe_n, "precision": self.precision}
        return {k: v for k, v in values.items() if v is not None}

    def chosen(self, run: Run) -> dict[str, Any]:
        """The config values the sweep chose for ``run`` (none where it chose nothing)."""
        return dataclasses.asdict(self.run_settings[run]) if run in self.run_settings else {}


#: Sizes and lengths per profile and setting; ``paper`` has the paper's models. Precision stays
#: fp32 on the CPU profiles: the precision benchmark (appendix 91) measured these small Transformers
#: and RNNs slower, or barely faster, in bf16 on a CPU.
PRESETS: dict[str, SequencePreset] = preset_table(CHAPTER, {
    "quick": SequencePreset(
        nets=NetSizes(rnn_hidden=32, rnn_layers=2, rnn_embed=16, d_model=32, tf_layers=2, heads=2, ff=64),
        batch_size=64, probe_n=64,
        tasks={"copy": TaskPreset(n_train=512, n_valid=128, n_test=256, epochs=2, min_len=5, max_len=10, lr=3e-3),
               "parity": TaskPreset(n_train=512, n_valid=128, n_test=256, epochs=2, min_len=2, max_len=10, lr=3e-3),
               "lm": TaskPreset(n_train=256, n_valid=32, n_test=64, epochs=2, seq_len=32, lr=3e-3)}),
    # The regimes appendix 93 chose from the targets and guides trained alone: strings drawn fresh every
    # epoch (16,000 a epoch), copy-paste strings of 5 to 10 digits, parity strings of 2 to 30 bits (with
    # each target at its learning rate of lowest validation loss); token rows as what CKA compares; each
    # condition's learning rate chosen on validation (run_settings).
    "full": SequencePreset(
        nets=NetSizes(rnn_hidden=128, rnn_layers=4, rnn_embed=64, d_model=64, tf_layers=4, heads=4, ff=256,
                      parity_rnn_hidden=64, parity_rnn_layers=2),
        batch_size=64, probe_n=256, sweep_lrs=(3e-3, 1e-3, 3e-4, 1e-4, 3e-5), sweep_settings=("copy", "parity"),
        # chosen by the sweep (sequence_sweeps records; a test holds these equal to what they pick)
        run_settings={Run("copy", "guide_alone"): RunSettings(lr=3e-3), Run("copy", "no_guide"): RunSettings(lr=3e-4),
                      Run("copy", "trained_guide"): RunSettings(lr=1e-3),
                      Run("copy", "untrained_guide"): RunSettings(lr=1e-3),
                      Run("parity", "guide_alone"): RunSettings(lr=3e-3),
                      Run("parity", "no_guide"): RunSettings(lr=1e-3),
                      Run("parity", "trained_guide"): RunSettings(lr=1e-3),
                      Run("parity", "untrained_guide"): RunSettings(lr=3e-4)},
        # copy-paste is a headline claim: 5 seeds a condition
        tasks={"copy": TaskPreset(n_train=16_000, n_valid=500, n_test=1000, epochs=8, min_len=5, max_len=10, lr=1e-3,
                                  fresh=True, tokens="per_token", seeds=tuple(range(5))),
               # parity's control splits into seeds stuck at chance and seeds that learn: the share that escapes
               # chance is compared (Fisher's exact test) beside Welch's; its rows came out inconclusive at 8 seeds
               # a condition, so they get the 10 the book allows a headline row whose run costs <= 10 minutes
               "parity": TaskPreset(n_train=16_000, n_valid=500, n_test=1000, epochs=8, min_len=2, max_len=30,
                                    lr=3e-3, fresh=True, tokens="per_token", seeds=tuple(range(10))),
               # no Transformer the pilots tried beats the RNN here (appendix 93): the first regime's runs
               # stay, to show that this claim's precondition fails
               "lm": TaskPreset(n_train=9600, n_valid=400, n_test=871, epochs=6, seq_len=64, lr=2e-3)}),
    "paper": SequencePreset(
        nets=NetSizes(rnn_hidden=512, rnn_layers=4, rnn_embed=256, d_model=512, tf_layers=4, heads=16, ff=2048),
        batch_size=256, probe_n=256, precision="auto",  # bf16 on a GPU (appendix 91: not on a CPU)
        tasks={"copy": TaskPreset(n_train=100_000, n_valid=5000, n_test=10_000, epochs=100, min_len=20, max_len=40,
                                  lr=1e-3),
               "parity": TaskPreset(n_train=100_000, n_valid=5000, n_test=10_000, epochs=100, min_len=2, max_len=50,
                                    lr=1e-3),
               "lm": TaskPreset(n_train=None, n_valid=None, n_test=None, epochs=100, seq_len=256, lr=1e-3)}),
})
#: A tiny slice of any profile, for testing that its code paths run: these preset values, and per
#: setting these task values (both checked as :func:`untrainable.profiles.replace_preset` checks keys).
SMOKE: dict[str, Any] = dict(
    nets=NetSizes(rnn_hidden=16, rnn_layers=2, rnn_embed=8, d_model=16, tf_layers=2, heads=2, ff=32,
                  parity_rnn_hidden=16, parity_rnn_layers=2),
    batch_size=32, probe_n=32)
SMOKE_TASKS: dict[str, dict[str, Any]] = {"copy": dict(n_train=64, n_valid=32, n_test=32, epochs=1),
                                          "parity": dict(n_train=64, n_valid=32, n_test=32, epochs=1),
                                          "lm": dict(n_train=32, n_valid=8, n_test=8, epochs=1, seq_len=32)}


def setting_seeds(profile: str, setting: str, seeds: Iterable[int] | None = None) -> tuple[int, ...]:
    """The seeds of ``setting``'s runs: ``seeds`` when given (checked as a set), else its task preset's (parity
    runs more)."""
    if seeds is not None:
        return check_seeds(tuple(seeds))
    return PRESETS[check_profile(profile)].tasks[setting].seeds_of(profile)


def preset(profile: str, smoke: bool = False) -> SequencePreset:
    """The preset of ``profile``; ``smoke`` shrinks it to :data:`SMOKE` (for tests)."""
    p = PRESETS[check_profile(profile)]
    if not smoke:
        return p
    tasks = {s: replace_preset(CHAPTER, t, **SMOKE_TASKS[s]) for s, t in p.tasks.items()}
    return replace_preset(CHAPTER, p, tasks=tasks, **SMOKE)


def _split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(net sizes, config values) of ``overrides``; a key that is neither is an error naming it and the chapter."""
    sizes, fields = {f.name for f in dataclasses.fields(NetSizes)}, {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(overrides) - sizes - fields)
    if unknown:
        raise PresetError(f"{CHAPTER}: unknown override(s) {', '.join(map(repr, unknown))}: name a field of "
                          f"NetSizes ({', '.join(sorted(sizes))}) or of Config ({', '.join(sorted(fields))})")
    return ({k: v for k, v in overrides.items() if k in sizes}, {k: v for k, v in overrides.items() if k in fields})


# ----------------------------------------------------------------------------- the runs of a profile


def configs(profile: str, settings: Iterable[str] = SETTINGS, smoke: bool = False, **overrides: Any) -> list[Config]:
    """The runs of the chapter in a profile: per setting, the guide alone and the three conditions.

    ``overrides`` replace preset values for every setting: net sizes (``lstm=True``) or config
    fields (``tokens="per_token"``, ``epochs=...``); the sweep's chosen learning rates still apply.
    """
    p = preset(profile, smoke)
    size_overrides, value_overrides = _split_overrides(overrides)
    sizes = replace_preset(CHAPTER, p.nets, **size_overrides)
    out = []
    for setting in settings:
        if setting not in SETTING_NETS:
            raise ValueError(f"unknown setting {setting!r}: choose one of {', '.join(SETTINGS)}")
        task, target_family, guide_family = SETTING_NETS[setting]
        nets = sizes.nets(setting)
        values = {**p.shared_values(), **p.tasks[setting].values(task), **value_overrides}
        guide_lr = p.chosen(Run(setting, "guide_alone")).get("lr")
        targets = [Config(setting=setting, condition=condition, task=task, net=nets[target_family],
                          guide=nets[guide_family],
                          **{**values, **p.chosen(Run(setting, condition)), "guide_lr": guide_lr,
                             "guide_reseeds": tuple(p.guide_reseeds.get(setting, ()))})
                   for condition in CONDITIONS[1:]]
        out += [guide_alone_config(targets[0]), *targets]
    return out


def stage_configs(profile: str, stage: str) -> list[Config]:
    """The sweep's configs of ``stage`` for the preset's ``sweep_settings``: ``"guides"``, each guide alone
    at every learning rate of its ``sweep_lrs``; ``"targets"``, each target condition at every learning
    rate (guided by the guide trained at its chosen learning rate)."""
    if stage not in SWEEP_STAGES:
        raise ValueError(f"unknown sweep stage {stage!r}: choose one of {', '.join(SWEEP_STAGES)}")
    p = preset(profile)
    return [dataclasses.replace(c, lr=lr) for c in configs(profile, p.sweep_settings)
            if (c.condition == "guide_alone") == (stage == "guides") for lr in p.sweep_lrs]


def sweep_configs(profile: str) -> list[Config]:
    """Every run of the validation sweep (seed :data:`SWEEP_SEED`, its own records): guides, then targets."""
    return [c for stage in SWEEP_STAGES for c in stage_configs(profile, stage)]


def guide_alone_config(c: Config) -> Config:
    """The ``guide_alone`` run whose weights are the trained guide of run ``c``: the guide's net at the
    guide's learning rate, with nothing of the target's guidance in its key."""
    return dataclasses.replace(c, condition="guide_alone", net=c.guide, guide=None, lr=c.guide_lr or c.lr,
                               **config_defaults("alpha", "guide_lr", "guide_reseeds"))


def guide_seed(c: Config, seed: int) -> int:
    """The seed of the ``guide_alone`` run that guides run (``c``, ``seed``): its own, unless reseeded."""
    return dict(c.guide_reseeds).get(seed, seed)


def run_name(c: Config) -> str:
    """A chapter run's record name: its setting and condition."""
    return f"{c.setting}-{c.condition}"


def sweep_name(c: Config) -> str:
    """A sweep run's record name: the run's, with its learning rate."""
    return f"{run_name(c)}-lr{c.lr:g}"


def record_name(experiment: str, c: Config) -> str:
    """A record's name in ``experiment``: the sweep's or the chapter's."""
    return sweep_name(c) if experiment == SWEEP_EXPERIMENT else run_name(c)
