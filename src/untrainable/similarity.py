"""Representational similarity: how alike are two sets of activations of the same inputs?

Every measure takes ``x`` of shape ``(n, ...)`` and ``y`` of shape ``(n, ...)``: the responses
of two layers (or two networks) to the same ``n`` inputs. Each example is flattened, so a conv map
``(n, c, h, w)`` becomes ``(n, c*h*w)``. All functions are differentiable torch code that runs on
CPU and CUDA and returns a 0-d tensor.

The measures and what they ignore (``Q`` orthogonal, ``a`` a scalar, ``A`` invertible, ``b`` a
constant row added to every example):

======================  ==========  =========  ============  ========================
measure                 X Q         a X        X + b         X A (any linear map)
======================  ==========  =========  ============  ========================
linear CKA              invariant   invariant  invariant     not invariant
RBF CKA                 invariant   invariant  invariant     not invariant
Procrustes distance     invariant   invariant  invariant     not invariant
CCA (mean R^2)          invariant   invariant  invariant     invariant
RSA (correlation RDM)   not         invariant  invariant     not invariant
======================  ==========  =========  ============  ========================

Being invariant to every invertible linear map is why CCA cannot tell layers apart when the
number of features approaches the number of examples (Kornblith et al., 2019).

Numerics (the reason this module exists): the authors' code forms the Gram matrix ``K = X Xᵀ`` in
float32 and centres it afterwards as ``H K H``. Post-ReLU activations share a large common offset,
so ``K`` holds huge, nearly equal entries and the centring subtracts them from each other:
catastrophic cancellation. Here the *features* are centred first,
products run in the input's precision (half precision is upcast to float32), and reductions that
sum many terms are done in float64. Each measure is computed in feature space (``d x d``
matrices) or Gram space (``n x n`` matrices), whichever costs fewer operations.
:func:`authors_linear_cka` keeps the authors' formulation, for the comparisons the book draws.

A representation that does not vary over the examples (a dead layer, a constant input) has a zero
centred Gram matrix, and every normalised measure is then ``0/0``. Instead of a NaN, the measures
raise :class:`ConstantRepresentationError`, naming the argument. "Zero" allows for rounding: the
centred features count as zero when ``‖Xc‖_F <= SPREAD_TOLERANCE · eps · ‖X‖_F`` (``eps`` the
precision of the input's dtype; centring a constant column leaves a few ``eps`` of rounding).
Activations holding NaN or infinities, or so large that their products overflow the dtype, raise
:class:`NonFiniteRepresentationError` instead (an overflow is not a constant).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "linear_cka", "rbf_cka", "procrustes_distance", "cca_similarity", "rsa_similarity",
    "MinibatchCKA", "flatten", "center", "use_feature_space", "gram_basis", "compress",
    "rdm", "compare_rdms", "centered_gram", "orthonormal_basis", "authors_linear_cka",
    "ConstantRepresentationError", "NonFiniteRepresentationError", "check_spread", "SPREAD_TOLERANCE", "CKA_SPACES",
]

#: Centred features at most this many ``eps`` of the raw features' norm count as constant.
SPREAD_TOLERANCE = 64

#: Where :func:`linear_cka` computes: the cheaper space, or always ``d x d`` / ``n x n`` products.
CKA_SPACES = ("auto", "feature", "gram")


class NonFiniteRepresentationError(ValueError):
    """A representation holds NaN or infinities, or its products overflow its dtype: the message says which."""


class ConstantRepresentationError(ValueError):
    """A representation is the same for every example: its centred Gram matrix is zero, so a
    normalised similarity is ``0/0``. The message names the argument."""


# ----------------------------------------------------------------------------- helpers


def flatten(x: torch.Tensor) -> torch.Tensor:
    """``(n, ...)`` to ``(n, d)``; float16/bfloat16 upcast to float32, integers to float32.

    NumPy arrays are accepted too (they are wrapped as tensors without a copy).
    """
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if x.dim() == 0:
        raise ValueError("activations must have shape (n, ...), got a scalar")
    x = x.reshape(x.shape[0], -1) if x.dim() != 2 else x
    if x.dtype in (torch.float16, torch.bfloat16) or not x.is_floating_point():
        x = x.float()
    return x


def center(x: torch.Tensor) -> torch.Tensor:
    """Subtract each feature's mean over the examples.

    Centring the features first is what keeps float32 exact enough: ``(HX)(HX)ᵀ = H K H``. The
    mean is taken in the input's precision (torch sums float32 pairwise, so its error is about
    float32's resolution of the mean itself); what remains is a common offset of that size, far
    too small to matter, where the uncentred Gram matrix carries the whole offset squared.
    """
    return x - x.mean(dim=0, keepdim=True)


def _pair(x: torch.Tensor, y: torch.Tensor, min_n: int = 2, what: str = "this measure") -> tuple[torch.Tensor, torch.Tensor]:
    x, y = flatten(x), flatten(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must hold the same examples: x has n={x.shape[0]}, y has n={y.shape[0]} "
            "(the first dimension is the example index)"
        )
    if x.shape[0] < min_n:
        raise ValueError(f"{what} needs at least n={min_n} examples, got n={x.shape[0]}")
    if x.device != y.device:
        raise ValueError(f"x is on {x.device} but y is on {y.device}")
    if x.dtype == y.dtype:  # the common case; .to() costs microseconds even when it copies nothing
        return x, y
    dtype = torch.promote_types(x.dtype, y.dtype)
    return x.to(dtype), y.to(dtype)


def use_feature_space(n: int, dx: int, dy: int) -> bool:
    """True when ``d x d`` products are cheaper than ``n x n`` ones for a CKA-like measure.

    Feature space costs about ``n (dx dy + dx² + dy²)`` multiply-adds (``Xᵀ Y``, ``Xᵀ X``,
    ``Yᵀ Y``), Gram space ``n² (dx + dy) + n²`` (``X Xᵀ``, ``Y Yᵀ`` and their inner product).
    """
    return n * (dx * dy + dx * dx + dy * dy) < n * n * (dx + dy + 1)


def check_spread(centered_sq_norm: torch.Tensor, x: torch.Tensor, side: str, what: str) -> None:
    """Raise :class:`ConstantRepresentationError` when ``x`` does not vary over its examples, and
    :class:`NonFiniteRepresentationError` when ``x`` holds NaN or infinities or its products overflow.

    ``centered_sq_norm`` is ``‖Xc‖_F²`` (the trace of the centred Gram matrix, which every caller
    has at hand); it is compared with ``(SPREAD_TOLERANCE · eps · ‖X‖_F)²``. One float32 norm of
    ``x`` is the only extra work, and the comparison runs without gradients. A non-finite norm is
    told apart first: an overflow is not a constant, and a NaN must never become a similarity.
    """
    with torch.no_grad():
        if not bool(torch.isfinite(centered_sq_norm)):
            raise _non_finite(x, side, what)
        eps = torch.finfo(x.dtype).eps if x.is_floating_point() else torch.finfo(torch.float32).eps
        raw = torch.linalg.vector_norm(x).double()
        if not bool(torch.isfinite(raw)):  # a huge common offset overflows the raw norm, not the centred one
            raw = torch.linalg.vector_norm(x.double())
        if bool(centered_sq_norm.double() <= (SPREAD_TOLERANCE * eps * raw) ** 2):
            raise ConstantRepresentationError(
                f"{what}: {side} is constant over its {x.shape[0]} examples (its centred Gram matrix is zero), "
                "so the similarity is 0/0; a dead or saturated layer, or identical inputs?"
            )


def _non_finite(x: torch.Tensor, side: str, what: str) -> NonFiniteRepresentationError:
    """Why ``x``'s squared norm is not finite: NaN or infinite activations, else an overflow of its dtype."""
    nan, inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
    if nan or inf:
        return NonFiniteRepresentationError(
            f"{what}: {side} holds {nan} NaN and {inf} infinite value(s) of {x.numel()}: a diverged network or "
            "broken inputs; a similarity of them is undefined")
    return NonFiniteRepresentationError(
        f"{what}: {side}'s products overflow {x.dtype} (its largest |value| is {float(x.abs().max()):.3g}): pass "
        "it in float64 (x.double()) or rescale it; its similarity is not 0/0 and it is not constant")


def _sq_frobenius(m: torch.Tensor) -> torch.Tensor:
    """``‖M‖_F²`` summed in float64."""
    m = m.double()
    return (m * m).sum()


def _check_debiased(n: int) -> None:
    if n < 4:
        raise ValueError(
            f"the debiased (unbiased HSIC) estimator divides by n(n-3) and needs n >= 4 examples, got n={n}"
        )


# ----------------------------------------------------------------------------- HSIC


def _hsic_biased_gram(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """``tr(K H L H)``; with already centred ``K`` and ``L`` this is ``<K, L>_F`` (no 1/(n-1)²)."""
    return (k.double() * l.double()).sum()


def _hsic_unbiased_gram(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Song et al. (2012), eq. 5, without the ``1/(n(n-3))`` factor, which cancels in CKA.

    ``tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n-1)(n-2)) - 2/(n-2) · 1ᵀK̃L̃1`` with ``K̃``, ``L̃`` the Gram
    matrices with their diagonals set to zero. Accumulated in float64.
    """
    n = k.shape[0]
    k, l = k.double(), l.double()
    k = k - torch.diag_embed(torch.diagonal(k))
    l = l - torch.diag_embed(torch.diagonal(l))
    ks, ls = k.sum(1), l.sum(1)
    return (k * l).sum() + ks.sum() * ls.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (ks @ ls)


def _hsic_unbiased_features(x: torch.Tensor, y: torch.Tensor, xty: torch.Tensor | None = None) -> torch.Tensor:
    """The same unbiased HSIC for linear kernels, in ``O(n d²)`` without forming ``n x n`` matrices.

    With ``K = X Xᵀ``: ``<K, L> = ‖Xᵀ Y‖_F²``, ``diag K = ‖x_i‖²``, ``K̃1 = X (Xᵀ1) - diag K``.
    """
    n = x.shape[0]
    if xty is None:
        xty = x.T @ y
    kd = (x.double() ** 2).sum(1)
    ld = (y.double() ** 2).sum(1)
    ks = (x @ x.sum(0)).double() - kd  # row sums of K̃ (the column sums are in float32 already)
    ls = (y @ y.sum(0)).double() - ld
    tr = _sq_frobenius(xty) - (kd * ld).sum()
    return tr + ks.sum() * ls.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (ks @ ls)


# ----------------------------------------------------------------------------- CKA


def _linear_cka_features(x: torch.Tensor, y: torch.Tensor, debiased: bool,
                         products: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Linear CKA from the ``d x d`` products ``(Xᵀ Y, Xᵀ X, Yᵀ Y)`` of flattened, centred ``x``, ``y``."""
    xty, xtx, yty = products
    if debiased:
        num = _hsic_unbiased_features(x, y, xty)
        den = (_hsic_unbiased_features(x, x, xtx) * _hsic_unbiased_features(y, y, yty)).sqrt()
    else:
        num = _sq_frobenius(xty)
        den = (_sq_frobenius(xtx) * _sq_frobenius(yty)).sqrt()
    return num / den


def centered_gram(x: torch.Tensor, block: int | None = None) -> torch.Tensor:
    """``(HX)(HX)ᵀ``: the Gram matrix of the centred features, centred before the product.

    On the CPU, without gradients, the features are centred ``block`` columns at a time (default:
    a buffer of about 4 MB) into one
    reused buffer and the products summed: a centred copy of a wide ``X`` would cost more in
    freshly touched memory than the product itself when ``n`` is small.
    """
    n, d = x.shape
    block = block or max(1024, (1 << 20) // max(n, 1))  # a buffer of about 4 MB in float32
    if d <= block or x.requires_grad or x.device.type != "cpu":
        xc = center(x)
        return xc @ xc.T
    mean = x.mean(dim=0)
    k = torch.zeros(n, n, dtype=x.dtype)
    buf = torch.empty(n, block, dtype=x.dtype)
    for start in range(0, d, block):
        w = min(block, d - start)
        b = buf[:, :w]
        torch.sub(x[:, start : start + w], mean[start : start + w], out=b)
        k.addmm_(b, b.T)
    return k


def _linear_cka_gram(x: torch.Tensor, y: torch.Tensor, debiased: bool) -> torch.Tensor:
    """Linear CKA from ``n x n`` Gram matrices of the centred features (``x``, ``y`` flattened)."""
    k, l = centered_gram(x), centered_gram(y)
    check_spread(k.diagonal().sum(), x, "x", "CKA")
    check_spread(l.diagonal().sum(), y, "y", "CKA")
    f = _hsic_unbiased_gram if debiased else _hsic_biased_gram
    return f(k, l) / (f(k, k) * f(l, l)).sqrt()


def linear_cka(x: torch.Tensor, y: torch.Tensor, debiased: bool = False, space: str = "auto") -> torch.Tensor:
    """Linear centred kernel alignment (Kornblith et al., 2019), in [0, 1].

    ``CKA(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with ``K = X Xᵀ``, ``L = Y Yᵀ``.
    For centred ``X`` and ``Y`` the biased form is ``‖Yᵀ X‖_F² / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F)``.
    ``debiased=True`` uses the unbiased HSIC estimator (Song et al., 2012; needs ``n >= 4``), whose
    expectation does not depend on ``n``; it can be slightly negative for unrelated representations.

    Invariant to orthogonal transforms and isotropic scaling of either argument (and to adding a
    constant to every example); *not* invariant to general invertible linear maps.
    Computed in feature or Gram space, whichever is cheaper (:func:`use_feature_space`), unless
    ``space`` fixes one (``"feature"``, ``"gram"``: the same number, for benchmarks). A constant
    argument raises :class:`ConstantRepresentationError`.
    """
    if space not in CKA_SPACES:
        raise ValueError(f"unknown space {space!r}: choose one of {', '.join(CKA_SPACES)}")
    x, y = _pair(x, y, 4 if debiased else 2, "debiased CKA" if debiased else "CKA")
    if debiased:
        _check_debiased(x.shape[0])
    if space == "gram" or (space == "auto" and not use_feature_space(x.shape[0], x.shape[1], y.shape[1])):
        return _linear_cka_gram(x, y, debiased)
    xc, yc = center(x), center(y)
    xty, xtx, yty = xc.T @ yc, xc.T @ xc, yc.T @ yc
    check_spread(xtx.diagonal().sum(), x, "x", "CKA")
    check_spread(yty.diagonal().sum(), y, "y", "CKA")
    return _linear_cka_features(xc, yc, debiased, (xty, xtx, yty))


def authors_linear_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Linear CKA as the guidance authors' code computes it, kept as the reference to compare with.

    ``K = X Xᵀ`` formed in float32, then centred by the explicit product ``H K H`` (two
    ``n x n x n`` products per matrix), then ``<K, L> / (‖K‖_F ‖L‖_F)`` in float32. Post-ReLU
    activations share a large common offset, so ``K``'s entries are huge and nearly equal and the
    centring cancels them: the error grows with the offset (chapter 02, the CKA benchmark). Use
    :func:`linear_cka` to measure anything; this one exists to show and time that formulation.
    """
    x, y = flatten(x).float(), flatten(y).float()
    n = x.shape[0]
    h = torch.eye(n, device=x.device) - torch.ones(n, n, device=x.device) / n
    k = h @ (x @ x.T) @ h
    l = h @ (y @ y.T) @ h
    return (k * l).sum() / ((k * k).sum().sqrt() * (l * l).sum().sqrt())


def _rbf_gram(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """``exp(-‖x_i - x_j‖² / (2σ²))`` with ``σ = threshold · median_{i<j} ‖x_i - x_j‖`` (float64)."""
    g = (x @ x.T).double()  # x centred: the norms are small, so is the cancellation below
    sq = g.diagonal()
    d2 = (sq[:, None] + sq[None, :] - 2 * g).clamp_min(0)
    n = d2.shape[0]
    iu = torch.triu_indices(n, n, 1, device=d2.device)
    median = _median(d2[iu[0], iu[1]])
    if median <= 0:
        raise ValueError("RBF CKA: the median pairwise distance is 0 (most examples are identical)")
    sigma2 = threshold**2 * median
    return torch.exp(-d2 / (2 * sigma2))


def _median(v: torch.Tensor) -> torch.Tensor:
    """The median, averaging the two middle values of an even count (as NumPy does)."""
    m = v.numel()
    lo = torch.kthvalue(v, (m + 1) // 2).values
    return lo if m % 2 else (lo + torch.kthvalue(v, m // 2 + 1).values) / 2


def rbf_cka(x: torch.Tensor, y: torch.Tensor, threshold: float = 0.5, debiased: bool = False) -> torch.Tensor:
    """CKA with Gaussian (RBF) kernels (Kornblith et al., 2019), in [0, 1].

    ``K_ij = exp(-‖x_i - x_j‖² / (2σ²))`` with bandwidth ``σ = threshold × median pairwise
    distance`` (the median over pairs ``i < j``, the middle two averaged), likewise ``L``; then
    ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))``, biased or (``debiased=True``) unbiased.
    Small thresholds weight local neighbourhoods; large ones approach linear CKA.

    Invariant to orthogonal transforms, isotropic scaling (the bandwidth scales with the data) and
    translation; not invariant to general linear maps. Always computed in Gram space.
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    x, y = _pair(x, y, 4 if debiased else 2, "debiased CKA" if debiased else "CKA")
    if debiased:
        _check_debiased(x.shape[0])
    xc, yc = center(x), center(y)
    check_spread(torch.linalg.vector_norm(xc).double() ** 2, x, "x", "RBF CKA")
    check_spread(torch.linalg.vector_norm(yc).double() ** 2, y, "y", "RBF CKA")
    k, l = _rbf_gram(xc, threshold), _rbf_gram(yc, threshold)
    if debiased:
        f = _hsic_unbiased_gram
    else:
        k, l = center(k), center(l)  # H K H: centre columns, then rows (K is symmetric)
        k, l = center(k.T), center(l.T)
        f = _hsic_biased_gram
    return f(k, l) / (f(k, k) * f(l, l)).sqrt()


# ----------------------------------------------------------------------------- other measures


def gram_basis(x: torch.Tensor) -> torch.Tensor:
    """An ``(n-1) x d`` matrix ``Eᵀ X`` with ``E`` an orthonormal basis of the vectors orthogonal to 1.

    ``(EᵀX)ᵀ(EᵀY) = Xᵀ H Y``: every centred product is preserved, but the rows are no longer forced
    to sum to zero, so full-rank decompositions (QR, SVD) stay well defined and differentiable.
    Built with one Householder reflection in ``O(n d)``.
    """
    n = x.shape[0]
    u = torch.full((n,), 1 / math.sqrt(n), dtype=x.dtype, device=x.device)
    u[-1] -= 1  # the reflection I - 2vvᵀ/‖v‖² with v = 1/√n - e_n maps 1/√n to e_n
    u = u / u.norm()
    rx = x - 2 * u[:, None] * (u @ x)[None, :]
    return rx[:-1]


def compress(x: torch.Tensor) -> torch.Tensor:
    """An ``n x min(n, d)`` float64 matrix with the same centred Gram matrix as ``x``.

    ``H X = U S Vᵀ`` gives ``H X V = U S``: the examples keep their rows, only the feature basis
    rotates. Every measure invariant to orthogonal transforms and translation (linear and RBF CKA,
    Procrustes, CCA) gives the same value on ``compress(x)`` as on ``x``, at a fraction of the
    cost when many comparisons share one wide layer. RSA is *not* invariant; give it ``x``.
    Computed from the eigendecomposition of the ``n x n`` Gram matrix when ``d > n``.
    """
    x = center(flatten(x))
    n, d = x.shape
    if d <= n:
        return x.double()
    evals, evecs = torch.linalg.eigh((x @ x.T).double())
    return evecs * evals.clamp_min(0).sqrt()


def procrustes_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Orthogonal Procrustes distance (Ding et al., 2021; Williams et al., 2021), in [0, 2].

    With ``X``, ``Y`` centred and scaled to unit Frobenius norm (zero-padded to equal width),
    ``min_Q ‖X - Y Q‖_F² = 2 - 2 ‖Xᵀ Y‖_*`` over orthogonal ``Q`` (``‖·‖_*``: the nuclear norm,
    the sum of singular values). 0 means identical up to rotation; it is a *distance*.

    Invariant to orthogonal transforms, isotropic scaling and translation; not invariant to
    general linear maps. The nuclear norm is taken of ``Xᵀ Y`` (feature space) or, when ``d ≥ n``,
    of ``R_X R_Yᵀ`` from QR factorisations ``Xᵀ = Q_X R_X`` of the centred data (Gram space,
    ``n x n``): ``Xᵀ Y = Q_X R_X R_Yᵀ Q_Yᵀ`` has the singular values of ``R_X R_Yᵀ``.
    """
    x, y = _pair(x, y, 2, "Procrustes distance")
    n, dx, dy = x.shape[0], x.shape[1], y.shape[1]
    if dx * dy <= n * n:
        xc, yc = center(x), center(y)
        nx, ny = _sq_frobenius(xc).sqrt(), _sq_frobenius(yc).sqrt()
        nuc = torch.linalg.svdvals((xc.T @ yc).double()).sum()
    else:
        rx = _r_factor(gram_basis(x))
        ry = _r_factor(gram_basis(y))
        nx, ny = _sq_frobenius(rx).sqrt(), _sq_frobenius(ry).sqrt()
        nuc = torch.linalg.svdvals((rx.T @ ry).double()).sum()
    check_spread(nx**2, x, "x", "Procrustes distance")
    check_spread(ny**2, y, "y", "Procrustes distance")
    return (2 - 2 * nuc / (nx * ny)).clamp_min(0)


def _r_factor(x: torch.Tensor) -> torch.Tensor:
    """An ``m x min(m, d)`` matrix ``A`` with ``X = A Wᵀ``, ``W`` with orthonormal columns.

    ``A = Rᵀ`` from the QR factorisation ``Xᵀ = Q R`` (``X`` itself when ``d <= m``), so that the
    singular values of ``Xᵀ Y`` are those of ``A_Xᵀ A_Y``.
    """
    if x.shape[1] <= x.shape[0]:
        return x
    mode = "reduced" if x.requires_grad else "r"  # mode "r" skips Q but has no backward
    return torch.linalg.qr(x.T, mode=mode).R.T


def orthonormal_basis(x: torch.Tensor, keep: float | int | None = None, rtol: float = 1e-6) -> torch.Tensor:
    """An orthonormal basis ``Q`` (``(n-1) x p``) of the centred column space of flattened ``x``.

    From the thin SVD of :func:`gram_basis` ``(x) = U S Vᵀ``: the columns of ``U`` whose singular
    values exceed ``rtol · s_max`` (``p`` is the numerical rank). ``keep`` keeps only the top
    directions, as SVCCA does: an int keeps that many, a float in (0, 1] the fewest that explain
    that fraction of the variance (``Σ s²``). CCA compares two such bases; chapter 02 reuses them.
    A constant ``x`` raises :class:`ConstantRepresentationError`.
    """
    x = flatten(x)
    xr = gram_basis(x).double()
    check_spread(_sq_frobenius(xr), x, "a representation", "CCA")
    u, s, _ = torch.linalg.svd(xr, full_matrices=False)
    rank = int((s > rtol * s[0]).sum()) if s.numel() and s[0] > 0 else 0
    if rank == 0:
        raise ConstantRepresentationError("CCA: a representation is constant over the examples")
    k = rank
    if isinstance(keep, int) and not isinstance(keep, bool):
        k = min(keep, rank)
    elif keep is not None:
        if not 0 < keep <= 1:
            raise ValueError(f"keep must be an int (directions) or a fraction of variance in (0, 1], got {keep}")
        var = (s[:rank] ** 2).cumsum(0) / (s[:rank] ** 2).sum()
        k = int((var < keep - 1e-12).sum()) + 1
    return u[:, :k]


def cca_similarity(x: torch.Tensor, y: torch.Tensor, keep: float | int | None = None, rtol: float = 1e-6) -> torch.Tensor:
    """Mean squared canonical correlation ``R²_CCA`` (Kornblith et al., 2019), in [0, 1]; SVCCA with ``keep``.

    ``R²_CCA = ‖Q_Yᵀ Q_X‖_F² / min(p_X, p_Y)`` with ``Q_X`` an orthonormal basis of the centred
    ``X``'s column space (``p_X`` its rank): the mean of the squared canonical correlations.
    ``keep`` first reduces each representation to its top singular directions, as SVCCA does
    (Raghu et al., 2017): an int keeps that many, a float that fraction of the variance (0.99).

    Invariant to every invertible linear map (and translation). Hence its weakness: when a
    representation has ``d ≥ n - 1`` independent features its basis spans every centred vector
    and every correlation is 1, whatever the other representation is. Computed from the thin
    SVD, which costs ``O(n d min(n, d))``, the cheaper space automatically.
    """
    x, y = _pair(x, y, 3, "CCA")
    qx, qy = orthonormal_basis(x, keep, rtol), orthonormal_basis(y, keep, rtol)
    return _sq_frobenius(qy.T @ qx) / min(qx.shape[1], qy.shape[1])


def _standardize_rows(x: torch.Tensor) -> torch.Tensor:
    """Each example centred and scaled over its own features: ``z_i · z_j / d`` is their correlation."""
    x = x - x.mean(dim=1, keepdim=True, dtype=torch.float64).to(x.dtype)
    norm = (x.double() ** 2).sum(1, keepdim=True).sqrt()
    if (norm == 0).any():
        raise ValueError("RSA: an example has the same value in every feature (its correlation is undefined)")
    return x / norm.to(x.dtype)


def rsa_similarity(x: torch.Tensor, y: torch.Tensor, method: str = "pearson") -> torch.Tensor:
    """Representational similarity analysis (Kriegeskorte et al., 2008), in [-1, 1].

    Each representation gives a representational dissimilarity matrix,
    ``RDM_ij = 1 - corr(x_i, x_j)`` (correlation across the features of examples ``i`` and
    ``j``); the similarity is the correlation of the two RDMs' upper triangles (``i < j``):
    Pearson (``method="pearson"``, differentiable) or Spearman (``"spearman"``, rank-based, not
    differentiable).

    Invariant to isotropic scaling and to adding a constant to all features; *not* invariant to
    orthogonal transforms of the features (correlation across features is tied to the basis).
    Pearson RSA is computed in feature space when ``d < n`` (sums of ``RDM`` entries and of their
    products follow from ``Zᵀ Z``-type products), otherwise from the ``n x n`` RDMs.
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    x, y = _pair(x, y, 3, "RSA")
    n, dx, dy = x.shape[0], x.shape[1], y.shape[1]
    check_spread(torch.linalg.vector_norm(center(x)).double() ** 2, x, "x", "RSA")
    check_spread(torch.linalg.vector_norm(center(y)).double() ** 2, y, "y", "RSA")
    zx, zy = _standardize_rows(x), _standardize_rows(y)
    m = n * (n - 1) / 2  # number of pairs i < j
    if method == "pearson" and use_feature_space(n, dx, dy):
        # C = Z Zᵀ has unit diagonal; sums over i<j from feature-space products.
        sx = (_sq_frobenius(zx.sum(0)) - n) / 2
        sy = (_sq_frobenius(zy.sum(0)) - n) / 2
        sxx = (_sq_frobenius(zx.T @ zx) - n) / 2
        syy = (_sq_frobenius(zy.T @ zy) - n) / 2
        sxy = (_sq_frobenius(zx.T @ zy) - n) / 2
        cov = sxy - sx * sy / m
        return cov / ((sxx - sx**2 / m) * (syy - sy**2 / m)).sqrt()
    return compare_rdms(1 - (zx @ zx.T).double(), 1 - (zy @ zy.T).double(), method)


def rdm(x: torch.Tensor) -> torch.Tensor:
    """The representational dissimilarity matrix ``1 - corr(x_i, x_j)`` (``n x n``, float64)."""
    z = _standardize_rows(flatten(x))
    return 1 - (z @ z.T).double()


def compare_rdms(a: torch.Tensor, b: torch.Tensor, method: str = "pearson") -> torch.Tensor:
    """Pearson or Spearman correlation of the upper triangles (``i < j``) of two RDMs."""
    if a.shape != b.shape or a.dim() != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"RDMs must be square and of the same size, got {tuple(a.shape)} and {tuple(b.shape)}")
    n = a.shape[0]
    iu = torch.triu_indices(n, n, 1, device=a.device)
    a, b = a[iu[0], iu[1]].double(), b[iu[0], iu[1]].double()
    if method == "spearman":
        a, b = _ranks(a), _ranks(b)
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / ((a * a).sum() * (b * b).sum()).sqrt()


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks with ties averaged (for Spearman correlation)."""
    v = v.detach()
    _, inv, counts = torch.unique(v, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    mid = ends - (counts.double() - 1) / 2
    return mid[inv]


# ----------------------------------------------------------------------------- minibatch CKA


class MinibatchCKA:
    """Linear CKA of every layer pair of two networks, accumulated over minibatches.

    Nguyen, Raghu and Kornblith (2021): for minibatches ``i = 1..k`` of ``m`` examples,
    ``CKA = mean_i HSIC₁(K_i, L_i) / sqrt(mean_i HSIC₁(K_i, K_i) · mean_i HSIC₁(L_i, L_i))``
    with ``HSIC₁`` the unbiased estimator, so the estimate converges to the full-data
    debiased CKA as batches are added, without ever holding more than one batch.

    Usage::

        acc = MinibatchCKA()
        for xb in loader:
            acc.update(acts_of_net_a(xb), acts_of_net_b(xb))  # two lists of (m, ...) tensors
        heatmap = acc.compute()  # (layers of a, layers of b)

    ``update`` forms each layer's ``m x m`` Gram matrix once (centred features, float64
    accumulation) and all pairwise HSIC terms at once. Pass ``ys=None`` to compare a network
    with itself. Batches must have ``m >= 4`` examples.
    """

    def __init__(self) -> None:
        self.xy: torch.Tensor | None = None
        self.xx: torch.Tensor | None = None
        self.yy: torch.Tensor | None = None
        self.batches = 0
        self.examples = 0
        self.x_varies: torch.Tensor | None = None  # per layer: did it vary over the examples of any batch?
        self.y_varies: torch.Tensor | None = None

    @staticmethod
    def _grams(acts: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each layer's centred Gram matrix (float64), and whether the layer varies in this batch."""
        mats, varies = [], []
        for a in acts:
            a = flatten(a)
            k = centered_gram(a)
            try:
                check_spread(k.diagonal().sum(), a, "layer", "minibatch CKA")
                varies.append(True)
            except ConstantRepresentationError:
                varies.append(False)
            mats.append(k.double())
        return torch.stack(mats), torch.tensor(varies)

    @staticmethod
    def _hsic_all(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
        """Unbiased HSIC (without 1/(n(n-3)), which is the same in every term) of every pair (a, b)."""
        n = k.shape[-1]
        k = k - torch.diag_embed(torch.diagonal(k, dim1=-2, dim2=-1))
        l = l - torch.diag_embed(torch.diagonal(l, dim1=-2, dim2=-1))
        ks, ls = k.sum(-1), l.sum(-1)  # (A, n), (B, n)
        tr = k.flatten(1) @ l.flatten(1).T
        return tr + ks.sum(1)[:, None] * ls.sum(1)[None, :] / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (ks @ ls.T)

    def update(self, xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor] | None = None) -> None:
        """Add one minibatch: ``xs`` the layers of network A, ``ys`` those of network B."""
        xs = list(xs)
        same = ys is None
        ys = xs if same else list(ys)
        if not xs or not ys:
            raise ValueError("MinibatchCKA.update needs at least one layer per network")
        m = xs[0].shape[0]
        if any(a.shape[0] != m for a in xs + ys):
            raise ValueError(f"every layer must hold the same examples: first dimensions {[a.shape[0] for a in xs + ys]}")
        _check_debiased(m)
        with torch.no_grad():
            kx, x_varies = self._grams(xs)
            ky, y_varies = (kx, x_varies) if same else self._grams(ys)
            xy = self._hsic_all(kx, ky)
            xx = torch.diagonal(xy) if same else torch.diagonal(self._hsic_all(kx, kx))
            yy = xx if same else torch.diagonal(self._hsic_all(ky, ky))
            xy, xx, yy = xy / (m * (m - 3)), xx / (m * (m - 3)), yy / (m * (m - 3))
        if self.xy is None:
            self.xy, self.xx, self.yy = xy, xx.clone(), yy.clone()
            self.x_varies, self.y_varies = x_varies, y_varies
        else:
            if self.xy.shape != xy.shape:
                raise ValueError(f"layer counts changed between batches: {tuple(self.xy.shape)} then {tuple(xy.shape)}")
            self.xy += xy
            self.xx += xx
            self.yy += yy
            self.x_varies |= x_varies
            self.y_varies |= y_varies
        self.batches += 1
        self.examples += m

    def compute(self) -> torch.Tensor:
        """The ``(layers of A, layers of B)`` matrix of minibatch CKA values (float64)."""
        if self.xy is None:
            raise ValueError("MinibatchCKA.compute called before any update")
        for side, varies in (("A", self.x_varies), ("B", self.y_varies)):
            if not bool(varies.all()):
                constant = torch.nonzero(~varies).flatten().tolist()
                raise ConstantRepresentationError(
                    f"minibatch CKA: layers {constant} (0-based, in update order) of network {side} are constant "
                    f"over the examples of every batch (their centred Gram matrices are zero): CKA is 0/0"
                )
        return self.xy / (self.xx[:, None] * self.yy[None, :]).sqrt()
