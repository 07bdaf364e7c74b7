"""Guidance: train a target network while aligning its layers with a frozen guide's (Subramaniam et al., 2024).

The loss, for one mini-batch of ``n`` examples::

    L = task_loss(target) + alpha * sum over mapped pairs (g -> t) of (1 - similarity(A_t, A_g))

``A_t`` is the output of target layer ``t`` and ``A_g`` of guide layer ``g`` on the same inputs,
each flattened per example (a conv map ``(n, C, H, W)`` becomes ``(n, C*H*W)``). The similarity is
linear CKA (Kornblith et al., 2019) by default; any measure of :mod:`untrainable.similarity`
can be used (:data:`GUIDANCE_DISTANCES`). The pair terms are summed, not averaged, as in the authors' code.

What this module guarantees, and tests:

* **one target forward pass.** The target's activations are recorded by forward hooks during the
  forward pass that computes the task loss; nothing is run twice.
* **a frozen guide.** :func:`freeze` turns gradients off and puts the guide in eval mode
  (BatchNorm uses its running statistics, dropout is off); the guide never enters the optimiser
  and runs under ``torch.no_grad``. Its weights and buffers stay bit-identical through training.
* **which layers count** (:func:`guidance_layers`): outputs of convolutions, linear layers,
  adaptive average pooling, RNN/LSTM/GRU (the output sequence), LayerNorm, multi-head attention
  and Transformer layers, in the order the forward pass runs them; the last one (the logits) is
  dropped, so guidance never matches outputs and is not distillation.
* **the mapping** (:func:`even_mapping`): guide layers spread evenly over the target's depth, first
  to first and last to last; or an explicit list of pairs, checked (:func:`resolve_mapping`).
* **sequences**: a layer's output ``(n, T, D)`` is flattened per sequence to ``(n, T·D)``, as in
  the paper (``tokens="flatten"``); ``tokens="per_token"`` compares tokens instead, the rows
  ``(n·T, D)`` (padded positions dropped when ``pad_id`` is given), see :func:`sequence_rows`.
* **a schedule**: ``guide_steps=N`` guides the first ``N`` optimiser steps only, then trains on the
  task loss alone (the paper's "guidance as initialisation").
* **a degenerate batch does not stop training**: when one side of a pair is constant over the
  batch (a dead layer), its similarity is ``0/0`` and :mod:`untrainable.similarity` raises; the loss
  then counts that pair as unrelated representations (``GuidanceDistance.unrelated``, 1 for
  ``1 - similarity``) with zero gradient, logs it (``constant_pairs``) and warns.

A frozen guide on un-augmented inputs computes the same representation of an example at every
epoch, so that work can be done once: :class:`GuideBank` precomputes, over the training set, the
guide's per-example features (any similarity) or, for linear CKA, the Gram matrix of each guide
layer, and the loss looks up each batch's rows by index (:class:`IndexedInputs`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from untrainable import distributed as D
from untrainable import similarity as S
from untrainable.precision import PRECISIONS, full_precision, resolve_precision
from untrainable.recording import LayerRecorder, record_layers, resolve_layers
from untrainable.runtime import eval_mode

__all__ = [
    "RECORDED_KINDS", "guidance_layers", "even_mapping", "resolve_mapping", "MappingError", "freeze",
    "GUIDANCE_DISTANCES", "GuidanceDistance", "GuideBank", "IndexedInputs", "IndexedBatch", "GuidanceLoss",
    "SimilarityProbe", "mean_defined", "linear_cka_against_gram", "linear_cka_bf16_gram", "SymmetricGram",
    "sequence_rows", "TOKEN_MODES",
]

#: Module kinds whose outputs guidance aligns (the authors' list). BatchNorm, activations,
#: dropout and embeddings are not recorded.
RECORDED_KINDS: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.RNNBase,
    nn.LayerNorm, nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
)


class MappingError(ValueError):
    """A layer mapping that does not fit the two networks; the message says why."""


# ----------------------------------------------------------------------------- which layers


def _check_batch_first(name: str, module: nn.Module) -> None:
    inner = getattr(module, "self_attn", None)
    batch_first = getattr(module, "batch_first", getattr(inner, "batch_first", True))
    if not batch_first:
        raise ValueError(
            f"layer {name!r} ({type(module).__name__}) is sequence-first (batch_first=False): its outputs are "
            "(T, B, ...), and flattening them per example would mix examples. Build it with batch_first=True."
        )


@torch.no_grad()
def guidance_layers(
    model: nn.Module,
    example_input: torch.Tensor,
    kinds: tuple[type[nn.Module], ...] = RECORDED_KINDS,
    drop_last: bool = True,
) -> list[str]:
    """Names of the layers guidance records, in the order one forward pass runs them.

    Runs ``model`` once on ``example_input`` (eval mode, no gradients) with a hook on every module
    of one of ``kinds``; a recorded module's own submodules are not recorded again (a Transformer
    layer counts once, not also its attention and LayerNorms). Modules defined but never run are
    left out. The last recorded layer (the logits) is dropped when ``drop_last``. A recorded module
    that runs twice in one forward pass (a shared layer) is an error: it would have one output too many.
    """
    chosen: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if not name or not isinstance(module, kinds):
            continue
        if any(name.startswith(parent + ".") for parent in chosen):
            continue  # inside a recorded module
        chosen[name] = module
    calls: list[str] = []
    handles = [m.register_forward_hook(lambda mod, args, out, name=name: calls.append(name))
               for name, m in chosen.items()]
    try:
        with eval_mode(model):
            model(example_input)
    finally:
        for h in handles:
            h.remove()
    repeated = sorted({n for n in calls if calls.count(n) > 1})
    if repeated:
        raise ValueError(
            f"layers {repeated} run more than once per forward pass of {type(model).__name__} (one module "
            "instance used as several layers); give each layer its own module"
        )
    for name in calls:
        _check_batch_first(name, chosen[name])
    if drop_last:
        calls = calls[:-1]
    if not calls:
        raise ValueError(f"{type(model).__name__} has no layer of the recorded kinds besides its output")
    return calls


# ----------------------------------------------------------------------------- the mapping


def even_mapping(n_guide: int, n_target: int) -> list[tuple[int, int]]:
    """(guide index, target index) pairs that spread the guide's layers evenly over the target's.

    With ``G`` guide and ``S`` target layers, guide layer ``i`` goes to target layer
    ``round(i (S-1) / (G-1))``: first to first, last to last. When ``G > S`` several guide layers
    round to the same target layer and the authors' code keeps one per target layer, so there are
    ``min(G, S)`` pairs; which one it keeps is not stated, and we keep for target layer ``j`` the
    guide layer nearest its exact even position, ``round(j (G-1) / (S-1))`` (which also satisfies
    the rule above), so that first-to-first and last-to-last still hold. Python's ``round``
    (half to even) is used, as in the authors' code.

    >>> even_mapping(3, 5)
    [(0, 0), (1, 2), (2, 4)]
    >>> even_mapping(5, 3)
    [(0, 0), (2, 1), (4, 2)]
    """
    if n_guide < 1 or n_target < 1:
        raise MappingError(f"both networks need at least one layer to map: guide has {n_guide}, target {n_target}")
    if n_guide == 1 or n_target == 1:
        return [(0, 0)]
    if n_guide <= n_target:
        return [(i, round(i * (n_target - 1) / (n_guide - 1))) for i in range(n_guide)]
    return [(round(j * (n_guide - 1) / (n_target - 1)), j) for j in range(n_target)]


Pair = tuple[int | str, int | str]


def resolve_mapping(
    guide_layers: Sequence[str],
    target_layers: Sequence[str],
    mapping: Sequence[Pair] | None = None,
    guide: nn.Module | None = None,
    target: nn.Module | None = None,
) -> list[tuple[str, str]]:
    """The (guide layer, target layer) name pairs: the even mapping, or ``mapping`` checked.

    An explicit ``mapping`` holds pairs of indices into the recorded layer lists or module names
    (any module of the network, when ``guide``/``target`` are given to look names up). Raises
    :class:`MappingError` for an empty mapping, an index out of range, an unknown name or a
    repeated pair.
    """
    guide_layers, target_layers = list(guide_layers), list(target_layers)
    if mapping is None:
        return [(guide_layers[g], target_layers[t]) for g, t in even_mapping(len(guide_layers), len(target_layers))]
    mapping = [tuple(p) for p in mapping]
    if not mapping:
        raise MappingError("the mapping is empty: give at least one (guide layer, target layer) pair, or None")

    def name_of(ref: int | str, layers: list[str], net: nn.Module | None, side: str) -> str:
        if isinstance(ref, bool) or not isinstance(ref, (int, str)):
            raise MappingError(f"{side} layer {ref!r}: use an index into the recorded layers or a module name")
        if isinstance(ref, int):
            if not -len(layers) <= ref < len(layers):
                raise MappingError(
                    f"{side} layer index {ref} is out of range: the {side} has {len(layers)} recorded layers "
                    f"(0..{len(layers) - 1}): {layers}"
                )
            return layers[ref]
        if ref in layers:
            return ref
        if net is None:
            raise MappingError(f"{side} layer {ref!r} is not one of the {side}'s recorded layers: {layers}")
        try:
            resolve_layers(net, [ref])
        except KeyError as err:
            raise MappingError(str(err)) from None
        return ref

    pairs = []
    for p in mapping:
        if len(p) != 2:
            raise MappingError(f"each mapping entry is a (guide layer, target layer) pair, got {p!r}")
        pairs.append((name_of(p[0], guide_layers, guide, "guide"), name_of(p[1], target_layers, target, "target")))
    if len(set(pairs)) != len(pairs):
        raise MappingError(f"a pair is listed twice in the mapping: {pairs}")
    return pairs


# ----------------------------------------------------------------------------- the guide


def freeze(guide: nn.Module) -> nn.Module:
    """Freeze ``guide`` for real: no gradients, eval mode. Returns it (changed in place)."""
    guide.requires_grad_(False)
    guide.eval()
    return guide


def _check_frozen(guide: nn.Module, target: nn.Module) -> None:
    if any(p.requires_grad for p in guide.parameters()):
        raise ValueError("the guide has parameters that require gradients: call freeze(guide) first")
    shared = {id(p) for p in guide.parameters()} & {id(p) for p in target.parameters()}
    if shared:
        raise ValueError("the guide and the target share parameters: the guide would not stay frozen")


# ----------------------------------------------------------------------------- distances


class SymmetricGram(torch.autograd.Function):
    """``K = X Xᵀ`` with a backward pass of one product, ``dX = (dK + dKᵀ) X``.

    Autograd sees ``X`` twice in ``X @ X.T`` and spends two ``n x n x d`` products on the gradient;
    on a flattened conv map (``d`` in the thousands) those products are most of what guidance
    costs, so using the symmetry saves a third of the Gram work of every guided step.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x @ x.T

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return (grad + grad.T) @ x


def linear_cka_bf16_gram(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Linear CKA through Gram matrices multiplied in bf16 (float32 accumulation), for wide layers.

    Each side is flattened and centred in float32, then rounded to bf16, and ``K = X Xᵀ`` is one bf16
    matrix product (its gradient one more, :class:`SymmetricGram`): about twice as fast as float32 on a CPU with native bf16 and
    many times on a GPU. Centring before the rounding keeps the large mean of post-ReLU features out
    of the rounded numbers; against float32, CKA moves by about 1e-4 (tests/test_guidance.py).
    A side that is constant over the batch raises :class:`~untrainable.similarity.ConstantRepresentationError`,
    as the float32 forms do (its centred features round to bf16 as the same few ``eps`` of its offset).
    """
    def gram(z: torch.Tensor, side: str) -> torch.Tensor:
        z = z.flatten(1).float()
        k = SymmetricGram.apply((z - z.mean(0, keepdim=True)).to(torch.bfloat16)).float()
        S.check_spread(k.diagonal().sum(), z, side, "CKA of bf16 Gram matrices")
        return k

    k, l = gram(x, "the target's activations"), gram(y, "the guide's activations")
    return (k * l).sum() / (k.norm() * l.norm()).clamp_min(torch.finfo(torch.float32).tiny)


def linear_cka_against_gram(x: torch.Tensor, l_centered: torch.Tensor) -> torch.Tensor:
    """Linear CKA of activations ``x`` ``(n, ...)`` with a guide's centred Gram matrix ``L`` ``(n, n)``.

    ``CKA = <K, L> / (‖K‖_F ‖L‖_F)`` with ``K = Xc Xcᵀ`` (``Xc`` the centred features) and ``L``
    already centred (``H L H``). One ``n x n`` product ``K`` serves the numerator and ``‖K‖``, and
    the backward pass needs one more (``dX = (dK + dKᵀ) Xc``, :class:`SymmetricGram`): with ``L`` given, this is cheaper
    than any feature-space form, whatever ``d``. Sums in float64. Equal to
    :func:`untrainable.similarity.linear_cka` of ``x`` and any ``Y`` with ``H Y Yᵀ H = L``.
    A constant ``x`` or a zero ``L`` raises :class:`~untrainable.similarity.ConstantRepresentationError`.
    """
    x = S.flatten(x)
    xc = S.center(x)
    k = SymmetricGram.apply(xc).double()
    S.check_spread(k.diagonal().sum(), x, "the target's activations", "CKA against a Gram matrix")
    l_centered = l_centered.double()
    if not bool(l_centered.abs().sum() > 0):
        raise S.ConstantRepresentationError(
            "CKA against a Gram matrix: the guide's centred Gram matrix is zero (its layer is constant over the batch)"
        )
    return (k * l_centered).sum() / ((k * k).sum() * (l_centered * l_centered).sum()).sqrt()


def _one_minus(fn: Callable[..., torch.Tensor], **kw: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def term(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 1 - fn(x, y, **kw)

    return term


@dataclass(frozen=True)
class GuidanceDistance:
    """One guidance distance: ``measure(target activations, guide activations) -> 0-d tensor``, 0 when
    alike, and ``unrelated``, its value for unrelated representations, which a pair with a constant
    side (similarity ``0/0``) contributes, with zero gradient."""

    measure: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    unrelated: float


#: The guidance distances by name. Similarities in [0, 1] enter as ``1 - similarity`` (unrelated: 1;
#: RSA's correlation of unrelated RDMs is 0 too); the Procrustes distance as it is (unrelated,
#: orthogonal representations: 2).
GUIDANCE_DISTANCES: dict[str, GuidanceDistance] = {
    "linear_cka": GuidanceDistance(_one_minus(S.linear_cka), 1.0),
    "debiased_cka": GuidanceDistance(_one_minus(S.linear_cka, debiased=True), 1.0),
    "rbf_cka": GuidanceDistance(_one_minus(S.rbf_cka), 1.0),
    "cca": GuidanceDistance(_one_minus(S.cca_similarity), 1.0),
    "rsa": GuidanceDistance(_one_minus(S.rsa_similarity), 1.0),
    "procrustes": GuidanceDistance(S.procrustes_distance, 2.0),
}


def _distance(name: str) -> GuidanceDistance:
    if name not in GUIDANCE_DISTANCES:
        raise ValueError(f"unknown distance {name!r}: choose one of {', '.join(GUIDANCE_DISTANCES)}")
    return GUIDANCE_DISTANCES[name]


#: How a sequence layer's ``(n, T, D)`` output becomes the rows CKA compares.
TOKEN_MODES = ("flatten", "per_token")


def sequence_rows(a: torch.Tensor, tokens: str = "flatten", keep: torch.Tensor | None = None) -> torch.Tensor:
    """The rows a similarity compares, from a layer's output ``a``.

    ``"flatten"`` (the paper's): one row per example, ``(n, ...)`` to ``(n, d)``; a sequence
    ``(n, T, D)`` becomes ``(n, T·D)``, so CKA compares how the layer represents whole sequences.
    ``"per_token"``: one row per token, ``(n, T, D)`` to ``(n·T, D)``, keeping only the positions
    where ``keep`` ``(n, T)`` is true (e.g. not padding); CKA then compares token representations,
    and its Gram matrix is ``(n·T)²``. Outputs without a time axis (``(n, D)``) are left as they are.
    """
    if tokens not in TOKEN_MODES:
        raise ValueError(f"unknown token mode {tokens!r}: choose one of {', '.join(TOKEN_MODES)}")
    if tokens == "flatten" or a.dim() != 3:
        return S.flatten(a)
    if keep is not None:
        if keep.shape != a.shape[:2]:
            raise ValueError(f"the token mask has shape {tuple(keep.shape)} but the layer's output is {tuple(a.shape)}")
        return a[keep]
    return a.reshape(-1, a.shape[-1])


# ----------------------------------------------------------------------------- precomputed guide


@dataclass(frozen=True)
class IndexedBatch:
    """A batch of inputs together with the indices of its examples in the training set."""

    x: torch.Tensor
    index: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False,
           memory_format: torch.memory_format = torch.preserve_format) -> "IndexedBatch":
        return IndexedBatch(self.x.to(device, non_blocking=non_blocking, memory_format=memory_format), self.index)

    def dim(self) -> int:
        """The inputs' number of dimensions (a batch of images: 4)."""
        return self.x.dim()

    def __len__(self) -> int:
        return len(self.x)


class IndexedInputs:
    """Training inputs that remember which examples a batch holds.

    :func:`untrainable.train.fit` indexes its training inputs with each batch's indices; wrapped in
    this class they return an :class:`IndexedBatch`, so the guidance loss can look the batch's rows
    up in a :class:`GuideBank` instead of running the guide.
    """

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __getitem__(self, index: torch.Tensor) -> IndexedBatch:
        return IndexedBatch(self.x[index], index)

    def __len__(self) -> int:
        return len(self.x)


def _unit_gram(y: torch.Tensor, name: str) -> torch.Tensor:
    """The centred Gram matrix of ``y`` scaled to unit mean diagonal; zero for a layer constant over the set,
    whose centred features are rounding noise that the scaling would blow up into a made-up Gram matrix
    (a zero one makes every CKA against it the constant case the loss handles)."""
    yc = S.center(y)
    k = yc @ yc.T
    try:
        S.check_spread(k.diagonal().sum(), y, f"guide layer {name!r}", "the guide bank")
    except S.ConstantRepresentationError:
        return torch.zeros_like(k)
    return k / k.diagonal().mean().clamp_min(torch.finfo(k.dtype).tiny)


class GuideBank:
    """What a frozen guide computes on the training set, computed once and looked up per batch.

    ``mode="features"``: each chosen guide layer's flattened activations for every training
    example (``N x d``, stored as ``dtype``), for any distance. ``mode="gram"``: for linear CKA only,
    each layer's Gram matrix over the training set (``N x N``, float32) of the features centred
    over the whole set and scaled to unit mean diagonal (CKA ignores the scale). A batch's Gram is
    the sub-matrix of its rows and columns, centred again over the batch: exact, and it costs
    ``n²`` per layer instead of the guide's forward pass and ``n² d`` products.

    Memory: ``N · Σd · bytes`` (features) or ``N² · layers · 4`` bytes (gram).
    """

    def __init__(self, guide: nn.Module, layers: Sequence[str], x_train: torch.Tensor, mode: str = "gram",
                 dtype: torch.dtype = torch.float32, batch_size: int = 256, memory_gb: float = 1.0) -> None:
        if mode not in ("features", "gram"):
            raise ValueError(f"unknown bank mode {mode!r}: choose features or gram")
        self.mode, self.layers, self.n = mode, list(dict.fromkeys(layers)), len(x_train)
        self.store: dict[str, torch.Tensor] = {}
        per_layer = {name: a.shape[1:].numel() for name, a in
                     record_layers(guide, x_train[:2], self.layers, batch_size=2).items()}
        groups: list[list[str]] = [[]]
        budget = memory_gb * 2**30 / 4 / max(self.n, 1)  # floats per example held at once
        for name in self.layers:  # record a group of layers per pass, within the memory budget
            if groups[-1] and sum(per_layer[g] for g in groups[-1]) + per_layer[name] > budget:
                groups.append([])
            groups[-1].append(name)
        for group in groups:
            acts = record_layers(guide, x_train, group, batch_size=batch_size, flatten=True)
            for name in group:
                y = acts.pop(name)
                if mode == "features":
                    self.store[name] = y.to(dtype)
                else:
                    self.store[name] = _unit_gram(y, name)
                del y

    def lookup(self, name: str, index: torch.Tensor, device: torch.device | str) -> torch.Tensor:
        """The batch's guide features ``(n, d)`` (float32), or its centred Gram matrix ``(n, n)``."""
        index = index.to(self.store[name].device)  # the bank may stay in host memory while the batch is on a GPU
        if self.mode == "features":
            return self.store[name][index].to(device, torch.float32)
        k = torch.take(self.store[name], index[:, None] * self.n + index[None, :]).to(device)  # the n x n block
        row = k.mean(0, keepdim=True)
        return k - row - row.T + row.mean()


# ----------------------------------------------------------------------------- the loss


class GuidanceLoss:
    """``task + alpha · Σ distance(target layer, guide layer)``, a ``loss_fn`` for :func:`~untrainable.train.fit`.

    Call it as ``loss, logits = guidance(target, x, y)``: it runs the target once, recording the
    mapped target layers by hooks on that forward pass, and runs the frozen guide under
    ``no_grad`` (or looks its representations up in ``bank`` when ``x`` is an
    :class:`IndexedBatch`). Each training call is one step; from step ``guide_steps`` on (when
    given) it returns the task loss alone and runs nothing else. ``log`` keeps, per guided step,
    the task loss, the guidance term and each pair's distance.

    ``pairs`` are the (guide layer, target layer) names; by default from :func:`guidance_layers`
    and :func:`even_mapping` on ``example_input``. For sequence models, ``tokens`` chooses what
    a row of the compared matrices is (:func:`sequence_rows`): a whole sequence (``"flatten"``,
    the paper's) or a token (``"per_token"``, without the positions whose input is ``pad_id``).

    **A layer constant over the batch** (a dead ReLU layer, a saturated one, a batch of identical
    examples), on either side of a pair, makes that pair's similarity ``0/0``. Training goes on: for
    that step the pair counts as unrelated representations, ``distance.unrelated`` (1 for
    ``1 - similarity``), a constant with zero gradient, so the target is neither pushed by a made-up
    number nor stopped; the other pairs and the task loss train as usual. The step's log lists the
    pair's index under ``constant_pairs`` (so a diagnostic can count such steps) and a
    ``RuntimeWarning`` names the pair. Counting the pair as unrelated, rather than dropping its term,
    keeps the logged guidance term on one scale whether or not a pair was degenerate; an
    epsilon-regularised CKA was not chosen because its gradient at a constant layer would push the
    layer's few ``eps`` of rounding noise towards the guide. Non-finite activations (a diverged
    network) still raise: a NaN must never become a distance.
    """

    def __init__(
        self,
        target: nn.Module,
        guide: nn.Module,
        example_input: torch.Tensor | None = None,
        *,
        alpha: float = 1.0,
        distance: str = "linear_cka",
        mapping: Sequence[Pair] | None = None,
        guide_steps: int | None = None,
        bank: GuideBank | None = None,
        task_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
        tokens: str = "flatten",
        pad_id: int | None = None,
        gram_precision: str = "fp32",
    ) -> None:
        freeze(guide)
        _check_frozen(guide, target)
        self.target, self.guide = target, guide
        self.alpha, self.distance_name, self.guide_steps = float(alpha), distance, guide_steps
        self.distance = _distance(distance)
        self.task_loss = task_loss
        if tokens not in TOKEN_MODES:
            raise ValueError(f"unknown token mode {tokens!r}: choose one of {', '.join(TOKEN_MODES)}")
        if tokens != "flatten" and bank is not None:
            raise ValueError("a guide bank stores one row per example: use it with tokens='flatten' only")
        self.tokens, self.pad_id = tokens, pad_id
        if gram_precision not in PRECISIONS:
            raise ValueError(f"unknown gram_precision {gram_precision!r}: choose one of {', '.join(PRECISIONS)}")
        self.gram_precision = gram_precision
        self._keep: torch.Tensor | None = None  # the current batch's token mask (per_token with pad_id)
        if mapping is None or any(isinstance(r, int) for p in mapping for r in p):
            if example_input is None:
                raise ValueError("example_input is needed to find the recorded layers (or give a mapping by names)")
            self.guide_layers = guidance_layers(guide, example_input)
            self.target_layers = guidance_layers(target, example_input)
        else:
            self.guide_layers, self.target_layers = [p[0] for p in mapping], [p[1] for p in mapping]
        self.pairs = resolve_mapping(self.guide_layers, self.target_layers, mapping, guide, target)
        if bank is not None:
            missing = [g for g, _ in self.pairs if g not in bank.store]
            if missing:
                raise ValueError(f"the guide bank lacks guide layers {missing}")
            if bank.mode == "gram" and distance != "linear_cka":
                raise ValueError(f"a Gram bank serves linear CKA only, not {distance!r}: use mode='features'")
        self.bank = bank
        self.step = 0
        self.log: list[dict[str, Any]] = []
        self.constant_pairs: list[int] = []

    @property
    def guiding(self) -> bool:
        """Whether the next training step is guided."""
        return self.alpha != 0 and (self.guide_steps is None or self.step < self.guide_steps)

    @torch.no_grad()
    def guide_representations(self, x: torch.Tensor | IndexedBatch) -> list[torch.Tensor]:
        """Per pair, the guide's side on this batch: features, or centred Gram matrices from the bank."""
        if isinstance(x, IndexedBatch) and self.bank is not None:
            return [self.bank.lookup(g, x.index, x.x.device) for g, _ in self.pairs]
        x = x.x if isinstance(x, IndexedBatch) else x
        names = list(dict.fromkeys(g for g, _ in self.pairs))
        self.guide.eval()
        with LayerRecorder(self.guide, names, detach=True) as rec:
            self.guide(x)
        acts = rec.check_complete()
        return [acts[g] for g, _ in self.pairs]

    def pair_terms(self, target_acts: list[torch.Tensor], guide_reps: list[torch.Tensor]) -> torch.Tensor:
        """The distance of each pair, as one tensor (differentiable in the target's activations).

        A pair with a side that is constant over the batch counts as unrelated, with zero gradient
        (see the module's docstring); ``constant_pairs`` lists the pairs of the last call.
        """
        terms = []
        self.constant_pairs = []
        for i, ((g, t), a, b) in enumerate(zip(self.pairs, target_acts, guide_reps)):
            if a.shape[0] != b.shape[0]:
                raise ValueError(f"pair ({g} -> {t}): target batch {a.shape[0]} but guide batch {b.shape[0]}")
            try:
                with full_precision(a.device):  # under bf16 autocast even fp32 products would be cast down
                    if self._bf16_gram(a):
                        terms.append(1 - linear_cka_bf16_gram(a, b))
                    else:
                        terms.append(self._pair_distance(a.float(), b.float()))
            except S.ConstantRepresentationError as err:
                self.constant_pairs.append(i)
                warnings.warn(f"guidance pair ({g} -> {t}) counted as unrelated, without gradient: {err}",
                              RuntimeWarning, stacklevel=2)
                terms.append(a.new_tensor(self.distance.unrelated))  # a constant: no gradient
        return torch.stack([t.float() for t in terms])

    def _bf16_gram(self, a: torch.Tensor) -> bool:
        """Whether this pair's linear CKA takes the bf16 Gram path: asked for (``"auto"``: where native), and
        the Gram matrices are the cheaper route (more features than examples, whole examples as rows)."""
        return (self.distance_name == "linear_cka" and self.bank is None and self.tokens == "flatten"
                and a[0].numel() > a.shape[0] and resolve_precision(self.gram_precision, a.device) == "bf16")

    def _pair_distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.bank is not None and self.bank.mode == "gram" and b.dim() == 2 and b.shape == (len(b), len(b)):
            return 1 - linear_cka_against_gram(a, b)
        if self.tokens == "flatten":
            return self.distance.measure(a, b)
        return self.distance.measure(sequence_rows(a, self.tokens, self._keep), sequence_rows(b, self.tokens, self._keep))

    def __call__(self, model: nn.Module, x: torch.Tensor | IndexedBatch, y: torch.Tensor):
        if model is not self.target:
            raise ValueError("this GuidanceLoss was built for another target model")
        inputs = x.x if isinstance(x, IndexedBatch) else x
        training = model.training
        if not (training and self.guiding):
            logits = model(inputs)
            if training:
                self.step += 1
            return self.task_loss(logits, y), logits
        target_names = list(dict.fromkeys(t for _, t in self.pairs))
        with LayerRecorder(model, target_names) as rec:
            logits = model(inputs)
        acts = rec.check_complete()
        if D.world_size() > 1:
            target_acts, guide_reps, self._keep = self._global_batch([acts[t] for _, t in self.pairs], x, inputs)
        else:
            guide_reps = self.guide_representations(x)
            self._keep = (inputs != self.pad_id) if self.tokens == "per_token" and self.pad_id is not None else None
            target_acts = [acts[t] for _, t in self.pairs]
        terms = self.pair_terms(target_acts, guide_reps)
        task = self.task_loss(logits, y)
        guidance = terms.sum()
        n, task_value = self._logged_task(task, y)
        self.log.append({"step": self.step, "n": n, "task": task_value, "guidance": guidance.item(),
                         "terms": terms.detach().tolist(), "constant_pairs": list(self.constant_pairs)})
        self.step += 1
        return task + self.alpha * guidance, logits

    def _global_batch(self, target_acts: list[torch.Tensor], x: torch.Tensor | IndexedBatch, inputs: torch.Tensor
                      ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor | None]:
        """Several processes (:mod:`untrainable.distributed`): the mapped layers' rows of the whole global
        batch, the target's gathered with gradients flowing back to this process's rows, the guide's side
        (from the bank by the gathered indices, or gathered from each process's guide), and the token mask."""
        target_acts = [D.gather_rows(a) for a in target_acts]
        if isinstance(x, IndexedBatch) and self.bank is not None:
            index = D.gather_rows(x.index.to(inputs.device)).cpu()
            guide_reps = self.guide_representations(IndexedBatch(x.x, index))
        else:
            guide_reps = [D.gather_rows(r) for r in self.guide_representations(x)]
        keep = None
        if self.tokens == "per_token" and self.pad_id is not None:
            keep = D.gather_rows((inputs != self.pad_id).to(torch.uint8)).bool()  # gloo gathers no bool
        return target_acts, guide_reps, keep

    @staticmethod
    def _logged_task(task: torch.Tensor, y: torch.Tensor) -> tuple[int, float]:
        """The examples and the task loss of the step for the log: this batch's, or with several processes the
        global batch's (each process's mean weighted by its counted labels)."""
        if D.world_size() == 1:
            return len(y), task.item()
        weight = D.label_weight(y)
        examples, weighted, weights = D.all_sum([len(y), task.item() * weight, weight])
        return int(examples), weighted / weights

    def epoch_means(self, steps_per_epoch: int) -> list[dict[str, Any]]:
        """The log per epoch, for guided epochs: means over guided steps (weighted by batch size) of
        ``task``, ``guidance`` and each pair's ``terms``, and ``guidance_sum``, the sum of
        ``guidance × batch size`` (divided by the epoch's examples it is the guidance part of the
        epoch's mean training loss)."""
        out: dict[int, list[dict[str, Any]]] = {}
        for entry in self.log:
            out.setdefault(entry["step"] // steps_per_epoch + 1, []).append(entry)
        rows = []
        for epoch, entries in sorted(out.items()):
            w = torch.tensor([float(e["n"]) for e in entries])
            terms = (torch.tensor([e["terms"] for e in entries]) * w[:, None]).sum(0) / w.sum()
            rows.append({"epoch": epoch, "steps": len(entries),
                         "task": float(sum(e["task"] * e["n"] for e in entries) / w.sum()),
                         "guidance": float(sum(e["guidance"] * e["n"] for e in entries) / w.sum()),
                         "guidance_sum": float(sum(e["guidance"] * e["n"] for e in entries)),
                         "terms": terms.tolist()})
        return rows


# ----------------------------------------------------------------------------- measuring alignment


class SimilarityProbe:
    """Linear CKA of each mapped pair on a fixed probe set, in eval mode: alignment over training.

    The guide's side is recorded once; :meth:`measure` records the target's and returns one value
    per pair. Used for every condition, including the unguided one, so the curves compare.
    ``tokens`` and ``pad_id`` treat sequence outputs as :class:`GuidanceLoss` does (:func:`sequence_rows`):
    ``"per_token"`` compares token rows, padded positions dropped, in feature space (the
    ``(n·T)²`` Gram matrix is never formed).

    A pair whose target or guide layer is constant over the probe set has no CKA (``0/0``): its value
    is None (JSON's null; the store refuses NaN), and ``undefined`` maps its index to the reason,
    for the last :meth:`measure`. A probe is a diagnostic, so such a layer never stops a run: a deep
    BatchNorm FCN at initialisation, measured in eval mode, has layers that are constant over the batch
    (its running statistics are still the initial ones, so nothing rescales the shrinking signal).
    """

    def __init__(self, guide: nn.Module, pairs: Sequence[tuple[str, str]], x_probe: torch.Tensor,
                 batch_size: int = 256, tokens: str = "flatten", pad_id: int | None = None) -> None:
        if tokens not in TOKEN_MODES:
            raise ValueError(f"unknown token mode {tokens!r}: choose one of {', '.join(TOKEN_MODES)}")
        self.pairs = list(pairs)
        self.x_probe, self.batch_size, self.tokens = x_probe, batch_size, tokens
        self.keep = (x_probe != pad_id) if tokens == "per_token" and pad_id is not None else None
        self.undefined: dict[int, str] = {}
        names = list(dict.fromkeys(g for g, _ in self.pairs))
        acts = record_layers(guide, x_probe, names, batch_size=batch_size, flatten=tokens == "flatten")
        self.guide_grams = {}  # the guide's side, computed once: centred Gram matrices, or token rows
        self.constant_guide: dict[str, str] = {}  # guide layers constant over the probe set, with the reason
        for name in names:
            y = acts.pop(name)
            rows = y if tokens == "flatten" else sequence_rows(y, tokens, self.keep)
            try:
                S.check_spread(torch.linalg.vector_norm(S.center(S.flatten(rows))).double() ** 2, rows,
                               f"guide layer {name!r}", "the alignment probe")
            except S.ConstantRepresentationError as err:
                self.constant_guide[name] = str(err)
            if tokens == "flatten":
                y = S.center(y)
                self.guide_grams[name] = y @ y.T
            else:
                self.guide_grams[name] = rows

    @torch.no_grad()
    def measure(self, target: nn.Module) -> list[float | None]:
        """The linear CKA of each mapped pair, ``target``'s layers against the guide's recorded side; None
        for a pair with a constant side (the reason in ``undefined``)."""
        names = list(dict.fromkeys(t for _, t in self.pairs))
        device = next(target.parameters()).device
        acts = record_layers(target, self.x_probe, names, batch_size=self.batch_size,
                             flatten=self.tokens == "flatten", device=device)
        keep = None if self.keep is None else self.keep.to(device)
        self.undefined = {}
        values: list[float | None] = []
        for i, (g, t) in enumerate(self.pairs):
            a, b = acts[t].to(device), self.guide_grams[g].to(device)
            if g in self.constant_guide:
                self.undefined[i] = f"pair {i} ({g} -> {t}): {self.constant_guide[g]}"
                values.append(None)
                continue
            try:
                if self.tokens == "flatten":
                    values.append(float(linear_cka_against_gram(a, b)))
                else:
                    values.append(float(S.linear_cka(sequence_rows(a.float(), self.tokens, keep), b.float())))
            except S.ConstantRepresentationError as err:
                self.undefined[i] = f"pair {i} ({g} -> {t}): {err}"
                values.append(None)
        return values


def mean_defined(values: Sequence[float | None]) -> float | None:
    """The mean of the defined values of a probe's :meth:`SimilarityProbe.measure` (None when none is)."""
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None
